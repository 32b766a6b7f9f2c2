"""Hostile text input: zipl.conf files and gen_init_cpio lists (docs/robustness.md).

Seeded mutations of valid inputs (line garbage, deleted/duplicated/swapped lines,
unterminated quotes, huge and non-ASCII numbers, menus naming missing sections)
must give a result or a UsageError whose one-line message names FILE:LINE.  For
lists also: bad modes, missing files, bad major/minor, names that climb out of
the archive root (`..`); and `mkinitramfs` exits with UsageError's code.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest

from zipldump.cli import main as cli_main
from zipldump.disk.initramfs import build_initramfs, parse_list
from zipldump.errors import UsageError, ZiplDumpError
from zipldump.formats.cpio import CpioFormatError, iter_archive
from zipldump.zipl.config import parse_config_text

CONF = """\
[defaultboot]
defaultmenu = menu1

[linux]
image = /boot/image
ramdisk = /boot/initrd,0x2000000
parameters = "root=/dev/sda1 console=ttysclp0"
target = 2

[rescue]
image = rescue.img
parmfile = rescue.parm
target=2

[dumpfs]
dumptofs = 3
image = /boot/dump.img

[dump]
dumpto = 1
image = /boot/dump.img

:menu1
1 = linux
2 = rescue
3 = dumpfs
default = 2
prompt = 1
timeout = 10
target = 2
"""

GARBAGE = ["[", "]", "[]", "[a b]", ":", ":x-y", "=", "==", "key", "image", "image =", "image = 'x", 'parameters = "a',
           "parameters = 'a' b", "target = -1", "target = 99999999999999999999999999", "target = ²", "target = ١",
           "target = 0x10", "1 = ", "31 = linux", "0 = linux", "9" * 5000 + " = linux", "timeout = " + "9" * 5000,
           "prompt = 2", "default = 7", "default = ²", "dumpto = 1,2G", "image = /x," + "f" * 40, "mvdump = x",
           "\x00", "\ufeff[linux]", "defaultauto", "defaultmenu = nosuch", "default = nosuch", "[linux]", ":menu1",
           "4 = nosuch", "5 = dump", "\t#x", "image = " + "a" * 100000]


def one_line_place(exc: BaseException, label: str) -> None:
    assert isinstance(exc, UsageError), f"{type(exc).__name__}: {exc}"
    assert "\n" not in str(exc), repr(str(exc))
    assert exc.where and exc.where.startswith(label), exc.where
    assert len(str(exc)) < 2000, "message repeats a huge input"


def conf_outcome(text: str) -> str:
    try:
        cfg = parse_config_text(text, "/etc/zipl.conf")
        results = []
        for name in list(cfg.sections) + [None]:
            for menu in [None, *cfg.menus]:
                if name is not None and menu is not None:
                    continue
                try:
                    sel = cfg.select(name, menu)
                    assert sel.default in sel.entries.values()
                    results.append("ok")
                except ZiplDumpError as exc:
                    one_line_place(exc, "/etc/zipl.conf")
                    results.append("usage")
        return "parsed"
    except ZiplDumpError as exc:
        one_line_place(exc, "/etc/zipl.conf")
        return exc.kind
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r:.200}")


def test_valid_conf() -> None:
    assert conf_outcome(CONF) == "parsed"
    cfg = parse_config_text(CONF, "/etc/zipl.conf")
    assert cfg.select().default.name == "rescue"


def test_each_garbage_line_at_each_place() -> None:
    lines = CONF.splitlines()
    kinds = set()
    for g in GARBAGE:
        for at in range(0, len(lines) + 1, 3):
            kinds.add(conf_outcome("\n".join(lines[:at] + [g] + lines[at:])))
    assert kinds == {"parsed", "usage"}


def test_numbers_are_checked_not_crashed() -> None:
    for value in ("²", "١", "9" * 5000, "-1", "0", " 1", "1e3", "0x2"):
        text = CONF.replace("target = 2\n\n[rescue]", f"target = {value}\n\n[rescue]")
        assert conf_outcome(text) in ("parsed", "usage")
        text = CONF.replace("timeout = 10", f"timeout = {value}")
        assert conf_outcome(text) in ("parsed", "usage")
        text = CONF.replace("2 = rescue", f"{value} = rescue")
        assert conf_outcome(text) in ("parsed", "usage")
    with pytest.raises(UsageError) as ei:
        parse_config_text(CONF.replace("target = 2\n\n[rescue]", "target = ²\n\n[rescue]"), "/etc/zipl.conf")
    assert ei.value.where == "/etc/zipl.conf:8"


def test_random_line_mutations() -> None:
    rng = random.Random(0x21F)
    lines = CONF.splitlines()
    for _ in range(1500):
        cur = list(lines)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(6)
            i = rng.randrange(len(cur)) if cur else 0
            if op == 0 and cur:
                del cur[i]
            elif op == 1 and cur:
                cur.insert(i, cur[rng.randrange(len(cur))])  # duplicate a line
            elif op == 2:
                cur.insert(i, rng.choice(GARBAGE))
            elif op == 3 and cur:
                s = cur[i]
                if s:
                    j = rng.randrange(len(s))
                    cur[i] = s[:j] + rng.choice("[]:=\"' \t#,\x00é²") + s[j + 1 :]
            elif op == 4 and len(cur) > 1:
                j = rng.randrange(len(cur))
                cur[i], cur[j] = cur[j], cur[i]
            elif op == 5 and cur:
                cur[i] = cur[i][: rng.randrange(len(cur[i]) + 1)]  # cut a line
        conf_outcome("\n".join(cur))


def test_menus_referencing_missing_and_dump_sections() -> None:
    for pos, name in (("1", "nosuch"), ("1", "dump"), ("30", "nosuch")):
        cfg = parse_config_text(CONF.replace("1 = linux", f"{pos} = {name}"), "/etc/zipl.conf")
        with pytest.raises(UsageError) as ei:
            cfg.select(menu="menu1")
        one_line_place(ei.value, "/etc/zipl.conf:")


# --- gen_init_cpio lists ------------------------------------------------------------
@pytest.fixture
def list_dir(tmp_path: Path) -> Path:
    (tmp_path / "init").write_bytes(b"#!/bin/sh\necho hi\n")
    (tmp_path / "busybox").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "adir").mkdir()
    return tmp_path


LIST = """\
# a list
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/sda 0660 0 6 b 8 0
dir /bin 0755 0 0
file /bin/busybox busybox 0755 0 0 /bin/sh
slink /bin/ls busybox 0777 0 0
pipe /fifo 0644 0 0
sock /sock 0644 0 0
file /init init 0755 0 0
"""

LIST_GARBAGE = ["file", "file /x", "file /x nosuch 0755 0 0", "file /x adir 0755 0 0", "file /x init 0855 0 0",
                "file /x init 99999 0 0", "file /x init 0755 -1 0", "file /x init 0755 0 4294967296",
                "file /x init 0755 0 " + "9" * 5000, "nod /d 0600 0 0 x 1 1", "nod /d 0600 0 0 c -1 1",
                "nod /d 0600 0 0 c 1 4294967296", "nod /d 0600 0 0 c ² 1", "dir /a 0755 0 0 extra", "dir", "slink /l",
                "bogus /a", "dir / 0755 0 0", "dir // 0755 0 0", "dir ../etc 0755 0 0", "dir /a/../../etc 0755 0 0",
                "file ../../x init 0644 0 0", "slink /.. x 0777 0 0", "dir /a/. 0755 0 0", "dir /dev 0755 0 0",
                "file /y init 0644 0 0 ../z", "file /y init 0644 0 0 /init", "dir /\x00x 0755 0 0", "mode ² ",
                "dir /é 0755 0 0", "dir /" + "n" * 10000 + " 0755 0 0", "file /big /dev/zero 0644 0 0"]


def list_outcome(text: str, base: Path) -> str:
    try:
        data = build_initramfs(text, base, compress="none")
        names = [e.name for e, _ in iter_archive(io.BytesIO(data))]
        for n in names:
            assert ".." not in n.split("/") and not n.startswith("/"), n
        return "ok"
    except ZiplDumpError as exc:
        one_line_place(exc, "<list>:")
        return exc.kind
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r:.200}")


def test_valid_list(list_dir: Path) -> None:
    assert list_outcome(LIST, list_dir) == "ok"


def test_list_garbage_lines(list_dir: Path) -> None:
    lines = LIST.splitlines()
    kinds: dict[str, str] = {}
    for g in LIST_GARBAGE:
        kinds[g] = list_outcome("\n".join(lines + [g]), list_dir)
    assert kinds["dir ../etc 0755 0 0"] == "usage"
    assert kinds["dir /a/../../etc 0755 0 0"] == "usage"
    assert kinds["file ../../x init 0644 0 0"] == "usage"
    assert kinds["file /y init 0644 0 0 ../z"] == "usage"
    assert kinds["nod /d 0600 0 0 c ² 1"] == "usage"
    assert kinds["file /x adir 0755 0 0"] == "usage"
    assert kinds["file /big /dev/zero 0644 0 0"] == "usage"


def test_list_random_mutations(list_dir: Path) -> None:
    rng = random.Random(0xC910)
    lines = LIST.splitlines()
    for _ in range(800):
        cur = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(cur))
            op = rng.randrange(4)
            if op == 0:
                cur.insert(i, rng.choice(LIST_GARBAGE))
            elif op == 1:
                cur.insert(i, cur[rng.randrange(len(cur))])
            elif op == 2 and cur[i]:
                words = cur[i].split()
                if words:
                    j = rng.randrange(len(words))
                    words[j] = rng.choice(["0", "-1", "777777", "x", "..", "../a", "4294967295", "²", "c", "b", ""])
                    cur[i] = " ".join(words)
            else:
                del cur[i]
        list_outcome("\n".join(cur), list_dir)


def test_cpio_reader_on_mutants(list_dir: Path) -> None:
    data = build_initramfs(LIST, list_dir, compress="none")
    rng = random.Random(0xA2C)
    for _ in range(600):
        raw = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(min(len(raw), 1200))] = rng.choice(b"0123456789abcdefFgz\x00\xff")
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw))]
        try:
            for _ in iter_archive(io.BytesIO(bytes(raw))):
                pass
        except CpioFormatError as exc:
            assert isinstance(exc, ZiplDumpError)
            assert "\n" not in str(exc) and re.search(r"offset 0x[0-9a-f]+", str(exc)), str(exc)


def test_mkinitramfs_cli_exit_codes(list_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("dir ../etc 0755 0 0", "file /x nosuch 0644 0 0", "nod /d 0600 0 0 q 1 1", "file /x init 0955 0 0"):
        lst = list_dir / "list.txt"
        lst.write_text(LIST + bad + "\n")
        assert cli_main(["mkinitramfs", str(lst), str(list_dir / "out.cpio")]) == UsageError.exit_code
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{lst}:11" in err
        assert not (list_dir / "out.cpio").exists()
    lst.write_bytes(b"\xff\xfe garbage")
    assert cli_main(["mkinitramfs", str(lst), str(list_dir / "out.cpio")]) == UsageError.exit_code
    assert cli_main(["mkinitramfs", str(list_dir / "nosuch"), str(list_dir / "out.cpio")]) == UsageError.exit_code
    assert cli_main(["mkinitramfs", str(lst), str(list_dir / "nodir" / "out.cpio")]) == UsageError.exit_code


# --- files that never end or are not text -------------------------------------------
def test_endless_or_binary_files_are_refused_not_read(tmp_path: Path, list_dir: Path) -> None:
    from zipldump.zipl.config import parse_config

    with pytest.raises(UsageError, match="is a character device, not a regular file"):
        parse_config("/dev/zero")
    (tmp_path / "bin.conf").write_bytes(b"[a]\nimage=x\n\xff\xfe\n")
    with pytest.raises(UsageError) as ei:
        parse_config(tmp_path / "bin.conf")
    assert ei.value.where == f"{tmp_path / 'bin.conf'}:3"
    # parmfile=/dev/zero: refused with the section's line, not read into memory.
    (tmp_path / "z.conf").write_text("[a]\nimage=x\nparmfile=/dev/zero\n")
    with pytest.raises(UsageError, match="is a character device") as ei:
        parse_config(tmp_path / "z.conf").select("a").default.command_line()
    assert ei.value.where == f"{tmp_path / 'z.conf'}:1"
    (tmp_path / "p.bin").write_bytes(b"root=/dev/ram0 \xe9")
    (tmp_path / "p.conf").write_text(f"[a]\nimage=x\nparmfile={tmp_path / 'p.bin'}\n")
    with pytest.raises(UsageError, match="non-ASCII byte at offset 15"):
        parse_config(tmp_path / "p.conf").select("a").default.command_line()
    with pytest.raises(UsageError, match="is a character device"):
        parse_list(Path("/dev/zero"))
    (list_dir / "bin.list").write_bytes(b"dir /a 0755 0 0\n\xff\n")
    with pytest.raises(UsageError) as ei:
        parse_list(list_dir / "bin.list")
    assert ei.value.where == f"{list_dir / 'bin.list'}:2"
