"""File-system dump writer (--dumptofs, dump.N in ext2/3/4): content, numbering,
disk-full policy per dump_mode, dump_mem, interruption; e2fsck -fn after every case."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from builders.disks import make_fs_disk
from builders.dumps import TOD as HEADER_TOD
from builders.dumps import make_zcore_file
from builders.fakes import FakeZcore, Interrupted, quiet_ui
from builders.tools import have_tool

from zipldump.disk.extfs import ExtFs
from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import read_partition_table
from zipldump.dump.params import DumpParams, parse_c_integer, parse_dump_cmdline
from zipldump.dump.s390 import open_dump
from zipldump.dump.write_fs import dump_numbers, dump_to_fs, limit_header
from zipldump.dump.write_partition import DirectFile
from zipldump.errors import (
    DiskError,
    DumpError,
    DumpSpaceError,
    IncompleteDumpError,
    MagicError,
    UsageError,
)
from zipldump.formats.s390dump import (
    END_MARKER_SIZE,
    HEADER_SIZE,
    parse_end_marker,
    parse_header,
)
from zipldump.ui import UI

pytestmark = pytest.mark.skipif(not have_tool("debugfs") or not have_tool("e2fsck"), reason="e2fsprogs not installed")

MiB = 1 << 20


def copy_out_sha(fs: ExtFs, fs_path: str, tmp_path: Path) -> tuple[Path, str]:
    """Read the file back through debugfs (not through our block map)."""
    host = tmp_path / (fs_path.strip("/").replace("/", "_") + ".out")
    fs.copy_out(fs_path, host)
    h = hashlib.sha256()
    with open(host, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            h.update(chunk)
    return host, h.hexdigest()


def expected_sha(zfile: Path, mem_size: int, end_marker: bytes, header: bytes | None = None) -> str:
    h = hashlib.sha256()
    with open(zfile, "rb") as fh:
        zh = fh.read(HEADER_SIZE)
        h.update(header if header is not None else zh)
        left = mem_size
        while left:
            chunk = fh.read(min(left, 8 * MiB))
            h.update(chunk)
            left -= len(chunk)
    h.update(end_marker)
    return h.hexdigest()


def fsck_clean(fs: ExtFs) -> None:
    rc = fs.fsck(fix=False)
    assert rc == 0, fs.last_fsck_output


@pytest.mark.parametrize("block_size,fstype,fs_block", [(512, "ext2", 1024), (4096, "ext4", 4096), (512, "ext3", 4096)])
def test_dump_to_fs_complete(tmp_path, block_size, fstype, fs_block):
    mem_size, hsa = 64 * MiB, 16 * MiB
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, mem_size)
    disk, fs = make_fs_disk(tmp_path, block_size, 96 * MiB, fstype, fs_block)
    fs.mkdir("/dumps")
    zc = FakeZcore(zfile, hsa)
    params = parse_dump_cmdline("root=/dev/ram0 dump_part=2 dump_dir=/dumps dump_mode=auto possible_cpus=1")

    result = dump_to_fs(disk, zc, quiet_ui(), params, block_size=block_size, chunk_size=4 * MiB)

    assert result.fs_path == "/dumps/dump.0" and result.partition == 2
    assert result.bytes_written == HEADER_SIZE + mem_size + END_MARKER_SIZE
    assert fs.file_size("/dumps/dump.0") == result.bytes_written
    assert zc.release_positions == [HEADER_SIZE + hsa]
    fsck_clean(fs)
    host, got = copy_out_sha(fs, "/dumps/dump.0", tmp_path)
    marker = _tail(host, END_MARKER_SIZE)
    assert parse_end_marker(marker) == result.end_tod >= HEADER_TOD
    assert got == expected_sha(zfile, mem_size, marker)
    with open_dump(host) as dump:
        assert dump.complete and dump.mem_size == mem_size


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-n, os.SEEK_END)
        return fh.read()


def test_dump_numbering_follows_existing_dumps(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    for name in ("dump.0", "dump.3", "dump.007", "dump.5.incomplete", "dump.-9", "dump.x", "notes"):
        fs.write_file(f"/{name}", b"old")
    assert dump_numbers(fs.listdir("/")) == [0, 3]
    result = dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"))
    assert result.fs_path == "/dump.4"
    fsck_clean(fs)


def _old_dump(fs: ExtFs, name: str, size: int, tmp_path: Path) -> None:
    host = tmp_path / "old.bin"
    with open(host, "wb") as fh:
        fh.write(os.urandom(size))  # random: debugfs would store zero blocks as holes
    fs.write_file(name, host)


def _full_fs(tmp_path: Path) -> tuple[Path, Path, ExtFs]:
    """A 12 MiB zcore and a 32 MiB file system already holding dump.1 and dump.2 (10 MiB each)."""
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 12 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    _old_dump(fs, "/dump.1", 10 * MiB, tmp_path)
    _old_dump(fs, "/dump.2", 10 * MiB, tmp_path)
    return zfile, disk, fs


def test_full_fs_auto_mode_deletes_oldest_and_succeeds(tmp_path):
    zfile, disk, fs = _full_fs(tmp_path)
    assert fs.free_bytes() < 13 * MiB
    result = dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2 dump_mode=auto"))
    assert result.deleted == ["/dump.1"]  # only the oldest, and only as many as needed
    assert sorted(fs.listdir("/")) == sorted(["lost+found", "dump.2", "dump.3"])
    fsck_clean(fs)
    host, _ = copy_out_sha(fs, "/dump.3", tmp_path)
    with open_dump(host) as dump:
        assert dump.complete


def test_full_fs_interactive_no_terminal_means_no(tmp_path):
    zfile, disk, fs = _full_fs(tmp_path)
    with pytest.raises(DumpSpaceError, match="kept"):
        dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"))  # default: interactive
    assert sorted(fs.listdir("/")) == sorted(["lost+found", "dump.1", "dump.2"])
    fsck_clean(fs)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_full_fs_interactive_yes_deletes(tmp_path):
    zfile, disk, fs = _full_fs(tmp_path)
    err = io.StringIO()
    ui = UI(interactive=True, stdin=_Tty("y\n"), stderr=err)
    result = dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), ui, parse_dump_cmdline("dump_part=2 dump_mode=interactive"))
    assert result.deleted == ["/dump.1"]
    assert "Remove oldest dump: '/dump.1'" in err.getvalue()
    fsck_clean(fs)


def test_full_fs_interactive_operator_says_no(tmp_path):
    zfile, disk, fs = _full_fs(tmp_path)
    ui = UI(interactive=True, stdin=_Tty("n\n"), stderr=io.StringIO())
    with pytest.raises(DumpSpaceError):
        dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), ui, parse_dump_cmdline("dump_part=2 dump_mode=interactive"))
    assert "dump.1" in fs.listdir("/") and "dump.3" not in fs.listdir("/")
    fsck_clean(fs)


def test_fs_too_small_even_when_empty_deletes_nothing(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 40 * MiB)
    disk, fs = make_fs_disk(tmp_path, 4096, 32 * MiB, "ext4", 4096)
    _old_dump(fs, "/dump.0", 4 * MiB, tmp_path)
    with pytest.raises(DumpSpaceError, match="nothing deleted"):
        dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2 dump_mode=auto"), block_size=4096)
    assert sorted(fs.listdir("/")) == ["dump.0", "lost+found"]
    fsck_clean(fs)


def test_dump_mem_limits_memory_and_cpu_list(tmp_path):
    mem_size = 16 * MiB
    zfile = tmp_path / "zcore.mem"
    # CPU 0's lowcore ends exactly at 6 MiB (kept), CPU 1's lies above it (dropped).
    zheader, _ = make_zcore_file(zfile, mem_size, prefixes=(6 * MiB - 0x2000, 12 * MiB))
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    # 6 MiB - 100 bytes: rounded up to whole pages = 6 MiB.
    params = parse_dump_cmdline(f"dump_part=2 dump_mem={6 * MiB - 100:#x}")
    result = dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), params)
    assert result.mem_size == 6 * MiB
    assert any("prefix 0xc00000" in w for w in result.warnings)
    host, got = copy_out_sha(fs, result.fs_path, tmp_path)
    data_header = parse_header(host.read_bytes()[:HEADER_SIZE])
    assert (data_header.mem_size, data_header.end, data_header.pages) == (6 * MiB, 6 * MiB, 6 * MiB // 4096)
    assert data_header.real_mem == mem_size
    assert data_header.prefixes == (6 * MiB - 0x2000,) and data_header.real_cpus == 2
    marker = _tail(host, END_MARKER_SIZE)
    assert got == expected_sha(zfile, 6 * MiB, marker, header=data_header.build())
    with open_dump(host) as dump:
        assert dump.complete
        assert dump.info.registers_available
    fsck_clean(fs)


def test_limit_header_noop_when_limit_exceeds_memory():
    from zipldump.formats.s390dump import build_header

    h = parse_header(build_header(8 * MiB, prefixes=(0x10000,)))
    assert limit_header(h, 64 * MiB) == (h, [])
    assert limit_header(h, None) == (h, [])


@pytest.mark.parametrize("fail_after", [HEADER_SIZE + 10, HEADER_SIZE + 5 * MiB + 3, "before-end-marker"])
def test_interrupted_fs_dump_not_complete_fs_clean(tmp_path, fail_after, monkeypatch):
    zfile = tmp_path / "zcore.mem"
    zheader, _ = make_zcore_file(zfile, 8 * MiB)
    disk, fs = make_fs_disk(tmp_path, 4096, 32 * MiB, "ext4", 4096)
    if fail_after == "before-end-marker":
        # All memory is on disk; the power goes when the end marker is due.
        real_write = DiskImage.write_at

        def write_at(self, offset, data):
            if bytes(data[:8]) == b"DUMP_END":
                raise Interrupted("power lost before the end marker was written")
            real_write(self, offset, data)

        monkeypatch.setattr(DiskImage, "write_at", write_at)
        zc = FakeZcore(zfile, 2 * MiB)
    else:
        zc = FakeZcore(zfile, 2 * MiB, fail_after=fail_after)
    with pytest.raises(Interrupted):
        dump_to_fs(disk, zc, quiet_ui(), parse_dump_cmdline("dump_part=2"), block_size=4096, chunk_size=1 * MiB)
    monkeypatch.undo()
    fsck_clean(fs)
    host, _ = copy_out_sha(fs, "/dump.0", tmp_path)
    assert host.read_bytes()[:HEADER_SIZE] == zheader
    # The dump reader (zgetdump's rule): header fine, no end marker -> not complete.
    with open_dump(host) as dump:
        assert not dump.complete
        assert "end marker" in dump.info.incomplete_reason
        with pytest.raises(IncompleteDumpError):
            dump.require_complete()
    # The next dump gets the next number and is complete.
    result = dump_to_fs(disk, FakeZcore(zfile, 2 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"), block_size=4096)
    assert result.fs_path == "/dump.1"
    fsck_clean(fs)


def test_stale_end_marker_in_reused_blocks_does_not_complete(tmp_path, monkeypatch):
    """ExtFs.allocate promises allocated blocks, not zeroed ones (today debugfs
    happens to zero them).  Put a complete older dump's end marker (TOD later
    than the header TOD) exactly where the new one goes: an interrupted dump must
    still read as incomplete."""
    from zipldump.formats.s390dump import build_end_marker

    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, fs = make_fs_disk(tmp_path, 4096, 32 * MiB, "ext2", 4096)
    stale = build_end_marker(HEADER_TOD + 10**9)
    real_allocate = ExtFs.allocate

    def allocate(self, fs_path, size):
        blocks = real_allocate(self, fs_path, size)
        at = size - END_MARKER_SIZE
        with open(disk, "r+b") as fh:  # what a deleted dump of the same size left there
            fh.seek(self.block_offset(blocks[at // self.block_size]) + at % self.block_size)
            fh.write(stale)
        return blocks

    monkeypatch.setattr(ExtFs, "allocate", allocate)
    with pytest.raises(Interrupted):
        dump_to_fs(disk, FakeZcore(zfile, 2 * MiB, fail_after=HEADER_SIZE + 3 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"),
                   block_size=4096)
    monkeypatch.undo()
    host, _ = copy_out_sha(fs, "/dump.0", tmp_path)
    with open_dump(host) as dump:
        assert not dump.complete
    fsck_clean(fs)


def test_missing_dump_dir_refused(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    with pytest.raises(DumpError, match="dump dir '/nowhere' not found"):
        dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2 dump_dir=/nowhere"))
    fs.write_file("/afile", b"x")
    with pytest.raises(DumpError, match="not a directory"):
        dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2 dump_dir=afile"))


def test_no_such_partition_or_no_fs(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, _ = make_fs_disk(tmp_path, 512, 32 * MiB)
    with pytest.raises(DiskError, match="no partition 3"):
        dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=3"))
    with pytest.raises(DiskError):
        dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=1"))  # no file system there


def test_uncorrectable_fsck_refuses(tmp_path, monkeypatch):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    monkeypatch.setattr(ExtFs, "fsck", lambda self, fix=False: 4)
    with pytest.raises(DumpError, match="e2fsck could not correct"):
        dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"))
    monkeypatch.undo()
    assert fs.listdir("/") == ["lost+found"]


# --- the dump kernel command line (dump/params.py) ---------------------------------------


def test_cmdline_defaults_and_zipl_parmlines():
    p = parse_dump_cmdline("root=/dev/ram0 possible_cpus=1 cgroup_disable=memory")
    assert (p.dump_part, p.dump_dir, p.dump_mode, p.dump_mem, p.dump_debug, p.warnings) == (1, "/", "interactive", None, 2, ())
    # zipl <= 1.23 --dumptofs parmline with user parameters in front (zipl-scsi-format.md §8.6).
    p = parse_dump_cmdline(
        "dump_dir=/mydumps dump_compress=none dump_mode=auto root=/dev/ram0 dump_part=2 dump_mem=0x4000000 possible_cpus=1 cgroup_disable=memory "
    )
    assert (p.dump_part, p.dump_dir, p.dump_mode, p.dump_mem) == (2, "/mydumps", "auto", 0x4000000)
    assert p.auto
    # zipl 1.24-2.25 --dumpto: dump_mem carries the partition number; the partition tool ignores it.
    p = parse_dump_cmdline("root=/dev/ram0 dump_mem=4096 possible_cpus=1 cgroup_disable=memory ")
    assert p.dump_mem == 4096 and p.for_partition().dump_mem is None


def test_cmdline_numbers_like_strtoll_base0():
    assert parse_c_integer("64") == 64
    assert parse_c_integer("0x40") == 64
    assert parse_c_integer("0100") == 64
    assert parse_c_integer("0") == 0
    for bad in ("", "0x", "12ab", "08", "1_000", "+", "64M"):
        assert parse_c_integer(bad) is None, bad
    # strtoll takes a sign only before the "0x"/"0" prefix; after it, parsing stops.
    for bad in ("0x+10", "0x-10", "0+7", "0-7", "+-1"):
        assert parse_c_integer(bad) is None, bad
    assert parse_c_integer("+0x10") == 16 and parse_c_integer("-010") == -8
    assert parse_dump_cmdline("dump_mem=0x10000000").dump_mem == 1 << 28
    assert parse_dump_cmdline("dump_mem=0400000").dump_mem == 0o400000


@pytest.mark.parametrize("line,match", [
    ("dump_part=", "dump_part needs"),
    ("dump_part=abc", "dump_part needs"),
    ("dump_part=16", "dump_part needs"),
    ("dump_mem=", "dump_mem needs"),
    ("dump_mem=64M", "dump_mem needs"),
    ("dump_mem=100", "less than one"),
])
def test_cmdline_errors_name_the_token(line, match):
    with pytest.raises(UsageError, match=match) as info:
        parse_dump_cmdline("root=/dev/ram0 " + line)
    assert f"token 2 '{line}'" in info.value.where


def test_cmdline_warnings_keep_defaults():
    p = parse_dump_cmdline("dump_dir= dump_mode=fast dump_debug=9 dump_compress=bzip2 dump_part=3 dump_part=4 dump_dir=a/b/../c/")
    assert p.dump_mode == "interactive" and p.dump_debug == 2 and p.dump_compress == "none"
    assert p.dump_part == 4  # the later token wins
    assert p.dump_dir == "/a/c"
    assert len(p.warnings) == 4
    assert any("gzip" in w for w in parse_dump_cmdline("dump_compress=gzip").warnings)
    assert DumpParams().to_json()["dump_mode"] == "interactive"


def test_fsck_fixes_then_dump_proceeds(tmp_path):
    """An inode with a wrong link count: e2fsck -y corrects it (exit 1), the
    writer warns and dumps; afterwards the file system is clean."""
    import shutil
    import subprocess

    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    fs.write_file("/notes", b"x")
    debugfs = shutil.which("debugfs") or "/sbin/debugfs"
    subprocess.run([debugfs, "-w", "-R", "sif /notes links_count 5", fs.spec], check=True, capture_output=True)
    assert fs.fsck(fix=False) != 0  # really damaged
    err = io.StringIO()
    result = dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), UI(stderr=err, interactive=False), parse_dump_cmdline("dump_part=2"))
    assert "e2fsck corrected errors" in err.getvalue()
    assert result.fs_path == "/dump.0"
    fsck_clean(fs)


def test_result_json(tmp_path):
    import json

    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, _ = make_fs_disk(tmp_path, 512, 32 * MiB)
    result = dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2"), clock=lambda: HEADER_TOD + 5)
    data = json.loads(json.dumps(result.to_json()))
    assert data["mode"] == "fs" and data["fs_path"] == "/dump.0" and data["partition"] == 2
    assert data["bytes_written"] == HEADER_SIZE + 4 * MiB + END_MARKER_SIZE
    assert data["end_tod"] == f"0x{HEADER_TOD + 5:016x}" and data["header_tod"] == f"0x{HEADER_TOD:016x}"


def test_fs_write_error_at_every_write(tmp_path, monkeypatch):
    """Crash loop for dump.N: an EIO on write N, for every N of a whole run.  The
    file is never complete, the file system stays clean, the next run works."""
    import shutil

    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    template, _ = make_fs_disk(tmp_path, 512, 24 * MiB, "ext2", 4096, name="template.img")
    count = {"n": 0, "fail": None}

    def failing(real_write):
        def write_at(self, offset, data):
            count["n"] += 1
            if count["n"] - 1 == count["fail"]:
                raise DiskError("injected EIO", where=f"offset {offset:#x}")
            real_write(self, offset, data)

        return write_at

    # Buffered writes (marker slot, header, end marker) and the O_DIRECT memory writes.
    monkeypatch.setattr(DiskImage, "write_at", failing(DiskImage.write_at))
    monkeypatch.setattr(DirectFile, "write_at", failing(DirectFile.write_at))
    params = parse_dump_cmdline("dump_part=2")
    clean = tmp_path / "clean.img"
    shutil.copyfile(template, clean)
    dump_to_fs(clean, FakeZcore(zfile, 1 * MiB), quiet_ui(), params, chunk_size=1 * MiB)
    total = count["n"]
    assert total >= 6  # marker slot, header, memory chunks, end marker
    for n in range(total):
        disk = tmp_path / f"crash{n}.img"
        shutil.copyfile(template, disk)
        count.update(n=0, fail=n)
        with pytest.raises(DiskError, match="injected"):
            dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), params, chunk_size=1 * MiB)
        count.update(n=0, fail=None)
        part = read_partition_table(disk).get(2)
        fs = ExtFs(disk, part.start_bytes, part.size_bytes)
        fsck_clean(fs)
        host, _ = copy_out_sha(fs, "/dump.0", tmp_path)
        try:
            with open_dump(host) as dump:
                assert not dump.complete, f"write {n} failed but dump.0 looks complete"
        except MagicError:
            assert n <= 1  # the header itself was not written
        result = dump_to_fs(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), params, chunk_size=1 * MiB)
        assert result.fs_path == "/dump.1"
        host, _ = copy_out_sha(fs, "/dump.1", tmp_path)
        with open_dump(host) as dump:
            assert dump.complete
        disk.unlink()


def test_auto_mode_deletes_nothing_when_the_old_dumps_would_not_make_room(tmp_path):
    """Sparse old dumps are large files holding few blocks: their sizes once passed the space
    pre-check, every old dump was deleted and still nothing was written."""
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 20 * MiB)
    disk, fs = make_fs_disk(tmp_path, 512, 32 * MiB)
    for name in ("/dump.1", "/dump.2"):
        host = tmp_path / "sparse.bin"
        host.write_bytes(bytes(14 * MiB))  # all zero: debugfs stores holes
        fs.write_file(name, host)
    _old_dump(fs, "/other", 14 * MiB, tmp_path)  # a file that is not a dump holds the space
    assert fs.free_bytes() < 21 * MiB
    with pytest.raises(DumpSpaceError, match="nothing deleted"):
        dump_to_fs(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), parse_dump_cmdline("dump_part=2 dump_mode=auto"))
    assert sorted(fs.listdir("/")) == ["dump.1", "dump.2", "lost+found", "other"]
    fsck_clean(fs)
