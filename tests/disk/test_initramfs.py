"""Initramfs builder: newc archives checked with GNU cpio and by parsing them back."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from zipldump.cli import main
from zipldump.disk.initramfs import build_initramfs, write_initramfs
from zipldump.errors import UsageError
from zipldump.formats.cpio import HEADER_SIZE, NewcHeader, iter_archive

SEED = Path("/work/shared/seed/zfcpdump.txt")

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")


def cpio_list(archive: bytes, verbose: bool = False) -> list[str]:
    out = subprocess.run(
        ["cpio", "-itv" if verbose else "-it", "--quiet"], input=archive, capture_output=True, check=True
    )
    return out.stdout.decode().splitlines()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "init.sh").write_text("#!/bin/sh\necho hello\n")
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 5000 + b"xyz")  # size not a multiple of 4
    return tmp_path


LIST = """\
# test list
dir /dev 755 0 0
nod /dev/console 600 0 0 c 5 1
nod /dev/sda1 660 0 6 b 8 1
dir /bin 755 0 0

file /init init.sh 755 0 0
file /bin/busybox big.bin 4755 0 0 /bin/sh /bin/ls
slink /bin/cat busybox 777 0 0
pipe /run-fifo 644 1000 1000
sock /run-sock 600 0 0
"""


def test_roundtrip_parse(tree: Path) -> None:
    data = build_initramfs(LIST, base_dir=tree, compress="none")
    assert len(data) % 512 == 0
    entries = list(iter_archive(io.BytesIO(data)))
    names = [e.name for e, _ in entries]
    assert names == ["dev", "dev/console", "dev/sda1", "bin", "init", "bin/busybox", "bin/sh", "bin/ls", "bin/cat", "run-fifo", "run-sock"]
    by = {e.name: (e, d) for e, d in entries}
    con = by["dev/console"][0]
    assert stat.S_ISCHR(con.mode) and (con.rdevmajor, con.rdevminor) == (5, 1) and stat.S_IMODE(con.mode) == 0o600
    sda = by["dev/sda1"][0]
    assert stat.S_ISBLK(sda.mode) and (sda.rdevmajor, sda.rdevminor, sda.gid) == (8, 1, 6)
    assert by["init"][1] == (tree / "init.sh").read_bytes()
    # hard links: one inode, nlink 3, data with the last link only
    bb, sh, ls = by["bin/busybox"][0], by["bin/sh"][0], by["bin/ls"][0]
    assert bb.ino == sh.ino == ls.ino and bb.nlink == 3
    assert (bb.filesize, sh.filesize) == (0, 0) and by["bin/ls"][1] == (tree / "big.bin").read_bytes()
    assert stat.S_IMODE(bb.mode) == 0o4755
    cat = by["bin/cat"]
    assert stat.S_ISLNK(cat[0].mode) and cat[1] == b"busybox"
    assert stat.S_ISFIFO(by["run-fifo"][0].mode) and by["run-fifo"][0].uid == 1000
    assert stat.S_ISSOCK(by["run-sock"][0].mode)
    # header bytes follow the newc layout exactly
    first = NewcHeader.parse(data[:HEADER_SIZE])
    assert data[:6] == b"070701" and first.namesize == 4 and data[HEADER_SIZE : HEADER_SIZE + 4] == b"dev\0"


@needs_cpio
def test_gnu_cpio_lists_it(tree: Path) -> None:
    data = build_initramfs(LIST, base_dir=tree, compress="none")
    assert cpio_list(data) == ["dev", "dev/console", "dev/sda1", "bin", "init", "bin/busybox", "bin/sh", "bin/ls", "bin/cat", "run-fifo", "run-sock"]
    lines = cpio_list(data, verbose=True)
    assert re.match(r"^crw-------\s+1 root\s+root\s+5,\s+1 .* dev/console$", lines[1]), lines[1]
    assert re.match(r"^brw-rw----\s+1 root\s+\S+\s+8,\s+1 .* dev/sda1$", lines[2]), lines[2]
    assert lines[8].startswith("lrwxrwxrwx") and lines[8].endswith("bin/cat -> busybox")
    assert lines[7].startswith("-rwsr-xr-x") and " 1280003 " in lines[7]


@needs_cpio
def test_gnu_cpio_extracts_same_bytes(tree: Path, tmp_path: Path) -> None:
    data = build_initramfs("file /a/b.bin big.bin 644 0 0\n", base_dir=tree, compress="none")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=data, cwd=out, check=True)
    assert (out / "a/b.bin").read_bytes() == (tree / "big.bin").read_bytes()


def test_gzip_deterministic_and_source_date_epoch(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = build_initramfs(LIST, base_dir=tree)
    assert a[:2] == b"\x1f\x8b" and a == build_initramfs(LIST, base_dir=tree)
    raw = gzip.decompress(a)
    assert raw == build_initramfs(LIST, base_dir=tree, compress="none")
    assert all(e.mtime == 0 for e, _ in iter_archive(io.BytesIO(raw)))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    raw2 = build_initramfs(LIST, base_dir=tree, compress="none")
    assert all(e.mtime == 1700000000 for e, _ in iter_archive(io.BytesIO(raw2)))


def seed_list() -> str:
    """The list from the seed document (which was flattened onto one line) as list text."""
    text = SEED.read_text()
    start = text.index("dir /dev 755 0 0")
    end = text.index("* Issue")
    return re.sub(r"\s+(?=(dir|nod|file) /)", "\n", text[start:end].strip()) + "\n"


@needs_cpio
@pytest.mark.skipif(not SEED.exists(), reason="seed document not present")
def test_seed_list(tmp_path: Path) -> None:
    lst = seed_list()
    assert lst.count("\n") == 24
    (tmp_path / "arch/s390/boot").mkdir(parents=True)
    (tmp_path / "arch/s390/boot/zfcpdump").write_bytes(b"\x7fELF dumper")
    (tmp_path / "arch/s390/boot/e2fsck").write_bytes(b"\x7fELF e2fsck")
    listfile = tmp_path / "zfcpdump.list"
    listfile.write_text(lst)
    out = tmp_path / "initramfs.cpio"
    assert main(["mkinitramfs", str(listfile), str(out), "--compress", "none"]) == 0
    lines = cpio_list(out.read_bytes(), verbose=True)
    assert len(lines) == 24
    sda15 = next(line for line in lines if line.endswith(" dev/sda15"))
    assert sda15.startswith("brw-r--r--") and re.search(r"\b8,\s+15\b", sda15)
    assert any(line.startswith("-rwxr-xr-x") and line.endswith(" init") for line in lines)


def test_write_streaming_matches(tree: Path, tmp_path: Path) -> None:
    listfile = tree / "l.txt"
    listfile.write_text(LIST)
    out = tmp_path / "out" / "i.gz"
    out.parent.mkdir()
    size = write_initramfs(listfile, out)  # relative files from the list's directory
    assert size == out.stat().st_size
    assert out.read_bytes() == build_initramfs(LIST, base_dir=tree)
    assert [p.name for p in out.parent.iterdir()] == ["i.gz"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("dir /a 755 0 0\nfile /x missing.bin 644 0 0\n", 2, "cannot read"),
        ("dir /a 7z5 0 0\n", 1, "not an octal number"),
        ("\n# c\nnod /dev/x 644 0 0 q 1 2\n", 3, "must be c"),
        ("nod /dev/x 644 0 0 c 1\n", 1, "expected: nod"),
        ("dir /a 755 0\n", 1, "expected: dir"),
        ("blob /a 755 0 0\n", 1, "unknown entry type"),
        ("dir /a 755 0 0\ndir a 755 0 0\n", 2, "already defined at line 1"),
        ("dir /a 755 x 0\n", 1, "uid"),
        ("file /d . 755 0 0\n", 1, "not a regular file"),
    ],
)
def test_bad_lines(tree: Path, text: str, line: int, fragment: str) -> None:
    listfile = tree / "bad.list"
    listfile.write_text(text)
    with pytest.raises(UsageError) as ei:
        build_initramfs(listfile)
    assert ei.value.where == f"{listfile}:{line}"
    assert fragment in ei.value.message


def test_cli_error_exit_code_and_nothing_written(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listfile = tree / "bad.list"
    listfile.write_text("file /x nope 644 0 0\n")
    out = tmp_path / "o.cpio"
    assert main(["mkinitramfs", str(listfile), str(out)]) == UsageError.exit_code
    assert f"{listfile}:1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("odd", ["\xa0", "\u2028", "\x85", "\x1c"])
def test_fields_split_at_ascii_blanks_only(tree: Path, odd: str) -> None:
    """gen_init_cpio reads lines with fgets and fields with sscanf %s: U+00A0 or U+2028 in a name is
    part of the name, not a field break or a line break, and later line numbers stay right."""
    data = build_initramfs(f"dir /a{odd}b 755 0 0\r\ndir /c 755 0 0\r\n", base_dir=tree, compress="none")
    assert [e.name for e, _ in iter_archive(io.BytesIO(data))] == [f"a{odd}b", "c"]
    listfile = tree / "odd.list"
    listfile.write_text(f"dir /a{odd}b 755 0 0\ndir /c 755 0 0 extra\n")
    with pytest.raises(UsageError) as ei:
        build_initramfs(listfile)
    assert ei.value.where == f"{listfile}:2" and "expected: dir" in ei.value.message


def test_control_characters_in_messages_are_escaped(tree: Path) -> None:
    """A name with an escape sequence is quoted escaped in the one-line message, as zipl.conf text is."""
    with pytest.raises(UsageError) as ei:
        build_initramfs("file /a\x1b[2J nosuch 755 0 0\n", base_dir=tree)
    assert "\x1b" not in str(ei.value) and "/a\\x1b[2J" in str(ei.value)
