"""Partition-mode dump writer (zfcpdump 3.0 design) against a zipl-style dump disk
built from the spec's structures, and a stand-in for zcore/mem (both in tests/builders/).

The stand-in (`FakeZcore`) serves a header built with formats/s390dump plus
pseudo-random memory from a file, refuses HSA reads after the HSA was released,
and can raise after N bytes (an interrupted dump).  The real zcore is used in
tests/dump/test_verify.py.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import pytest
from builders.disks import dumpto_disk
from builders.dumps import TOD as HEADER_TOD
from builders.dumps import make_zcore_file
from builders.fakes import FakeZcore, Interrupted, quiet_ui

from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.dump.locate import locate_dump
from zipldump.dump.s390 import FileSource, open_dump
from zipldump.dump.write_partition import (
    BUSY_MARKER,
    DirectFile,
    dump_to_partition,
    locate_dump_partition,
)
from zipldump.errors import (
    DumpError,
    DumpSpaceError,
    DumpTargetChangedError,
    IncompleteDumpError,
    MagicError,
)
from zipldump.formats.bootrecord import build_boot_record, patch_block0
from zipldump.formats.dump_superblock import (
    SB_SEED,
    DumpSuperblock,
    build_superblock,
    cksm,
)
from zipldump.formats.s390dump import (
    END_MARKER_SIZE,
    HEADER_SIZE,
    parse_end_marker,
)

MiB = 1 << 20


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


def file_range_sha(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        while length:
            chunk = fh.read(min(length, 8 * MiB))
            assert chunk
            h.update(chunk)
            length -= len(chunk)
    return h.hexdigest()


# --- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("block_size", [512, 4096])
def test_dump_to_partition_complete(tmp_path, block_size):
    mem_size, hsa = 32 * MiB, 8 * MiB
    zfile = tmp_path / "zcore.mem"
    header, mem_sha = make_zcore_file(zfile, mem_size)
    disk, sb_offset, dump_size = dumpto_disk(tmp_path, block_size, 48 * MiB)
    zc = FakeZcore(zfile, hsa)

    result = dump_to_partition(disk, zc, quiet_ui(), block_size=block_size, chunk_size=4 * MiB)

    assert result.partition == 1
    assert result.bytes_written == HEADER_SIZE + mem_size + END_MARKER_SIZE
    start = result.image_offset
    assert start == 1 * MiB  # first partition at 1 MiB, dump_offset 0
    # Byte-exact content: the zcore header, then memory, then the end marker.
    with open(disk, "rb") as fh:
        fh.seek(start)
        assert fh.read(HEADER_SIZE) == header
        fh.seek(start + HEADER_SIZE + mem_size)
        marker = fh.read(END_MARKER_SIZE)
    assert marker[:8] == b"DUMP_END"
    assert parse_end_marker(marker) == result.end_tod >= HEADER_TOD
    assert file_range_sha(disk, start + HEADER_SIZE, mem_size) == mem_sha
    # HSA released exactly once, right when the HSA part had been read.
    assert zc.release_positions == [HEADER_SIZE + hsa]
    # The superblock checksum now covers the dump header; the next run accepts the partition.
    with DiskImage(disk, block_size) as d:
        sb = DumpSuperblock.parse(d.read_at(sb_offset, 72))
        assert sb.csum == cksm(header[:4096], SB_SEED) != SB_SEED
        assert sb.dump_size == dump_size
        assert locate_dump_partition(d).partition == 1
    # The project's dump reader (zgetdump's rules) accepts it as complete.
    with open_dump(FileSource(disk, start, dump_size)) as dump:
        assert dump.complete
        assert dump.mem_size == mem_size
        assert dump.header.prefixes == (0x10000, 0x12000)


def _expect_untouched(disk: Path, func, exc_type, match: str):
    before = sha(disk)
    with pytest.raises(exc_type, match=match) as info:
        func()
    assert sha(disk) == before, "the image was modified although the dump was refused"
    return info.value


def test_changed_checksum_refused_nothing_written(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, sb_offset, _ = dumpto_disk(tmp_path, 512, 24 * MiB)
    with open(disk, "r+b") as fh:  # someone wrote to the partition (e.g. mkfs)
        fh.seek(1 * MiB + 1024)
        fh.write(b"\x53\xef")
    err = _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), DumpTargetChangedError, "checksum wrong")
    assert "field csum" in err.where and f"{sb_offset:#x}" in err.where


def test_changed_checksum_refused_on_4k_disk(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, _, _ = dumpto_disk(tmp_path, 4096, 24 * MiB)
    with open(disk, "r+b") as fh:
        fh.seek(1 * MiB + 4095)
        fh.write(b"\x01")
    _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), block_size=4096), DumpTargetChangedError, "checksum wrong")


def test_superblock_magic_overwritten_refused(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, sb_offset, _ = dumpto_disk(tmp_path, 512, 24 * MiB)
    with open(disk, "r+b") as fh:
        fh.seek(sb_offset)
        fh.write(b"XFCPDUMP")
    err = _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), DumpTargetChangedError, "ZFCPDUMP")
    assert "field magic" in err.where


def test_partition_table_changed_refused(tmp_path):
    """Superblock and checksum fine, but no partition with that start/size any more."""
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, sb_offset, _ = dumpto_disk(tmp_path, 512, 24 * MiB)
    with DiskImage(disk, 512, writable=True) as d:
        raw = DumpSuperblock.parse(d.read_at(sb_offset, 72))
        d.write_at(sb_offset, build_superblock(raw.part_start, raw.part_size - 512, raw.dump_size, csum=raw.csum))
    _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), DumpTargetChangedError, "partition not found")


def test_dump_area_covering_the_superblock_refused(tmp_path):
    """zipl's dump_size ends before its bootmap tail; a superblock whose dump area
    covers the superblock itself (and the dump tool) is not what zipl wrote, and
    a dump written there would overwrite both."""
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk, sb_offset, _ = dumpto_disk(tmp_path, 512, 24 * MiB, dump_size=24 * MiB)
    err = _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), DumpTargetChangedError, "covers the superblock")
    assert "field dump_size" in err.where


def test_not_a_dump_disk(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    disk = tmp_path / "plain.img"
    make_disk(disk, 16 * MiB, parts=[PartSpec(8 * MiB)])
    _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), MagicError, "zIPL")
    # An IPL disk: boot record without boot_info.
    with DiskImage(disk, 512, writable=True) as d:
        d.write_block(0, patch_block0(d.read_block(0), build_boot_record(5, 512)))
    _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui()), MagicError, "no dump tool")


@pytest.mark.parametrize("block_size", [512, 4096])
def test_dump_too_big_refused_exact_fit_accepted(tmp_path, block_size):
    mem_size = 8 * MiB
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, mem_size)
    need = HEADER_SIZE + mem_size + END_MARKER_SIZE
    # One byte short: refused, nothing written.
    disk, _, _ = dumpto_disk(tmp_path, block_size, 24 * MiB, dump_size=need - 1, name="small.img")
    err = _expect_untouched(
        disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), block_size=block_size), DumpSpaceError, "disk too small"
    )
    assert "field dump_size" in err.where
    # Exactly enough: accepted.
    disk2, _, _ = dumpto_disk(tmp_path, block_size, 24 * MiB, dump_size=need, name="exact.img")
    result = dump_to_partition(disk2, FakeZcore(zfile, 4 * MiB), quiet_ui(), block_size=block_size)
    with open_dump(FileSource(disk2, result.image_offset, need)) as dump:
        assert dump.complete


@pytest.mark.parametrize("fail_after", [HEADER_SIZE + 100, HEADER_SIZE + 6 * MiB, HEADER_SIZE + 16 * MiB - 5, "before-header"])
def test_interrupted_dump_is_not_complete_and_partition_stays_usable(tmp_path, fail_after, monkeypatch):
    mem_size = 16 * MiB
    zfile = tmp_path / "zcore.mem"
    header, _ = make_zcore_file(zfile, mem_size)
    disk, sb_offset, dump_size = dumpto_disk(tmp_path, 512, 24 * MiB)
    # A complete older dump of the same size is on the partition: its end marker
    # sits exactly where the new one goes, so only the header protects us.
    dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), clock=lambda: HEADER_TOD + 1)
    if fail_after == "before-header":
        # Memory and end marker are on disk; the power goes when the header is due.
        real_write = DiskImage.write_at

        def write_at(self, offset, data):
            if bytes(data[:8]) == header[:8]:
                raise Interrupted("power lost before the header was written")
            real_write(self, offset, data)

        monkeypatch.setattr(DiskImage, "write_at", write_at)
        zc = FakeZcore(zfile, 4 * MiB)
    else:
        zc = FakeZcore(zfile, 4 * MiB, fail_after=fail_after)
    with pytest.raises(Interrupted):
        dump_to_partition(disk, zc, quiet_ui(), chunk_size=1 * MiB)
    monkeypatch.undo()
    with open(disk, "rb") as fh:
        fh.seek(1 * MiB)
        assert fh.read(len(BUSY_MARKER)) == BUSY_MARKER
    # The dump locator (zipldump getdump/dumpinfo) calls it incomplete; the plain
    # stream reader finds no s390 magic where the header belongs.
    with pytest.raises(IncompleteDumpError, match="busy"):
        locate_dump(disk)
    with pytest.raises(MagicError):
        open_dump(FileSource(disk, 1 * MiB, dump_size))
    # The superblock checksum was updated for the busy page: the next run goes ahead.
    with DiskImage(disk, 512) as d:
        assert locate_dump_partition(d).partition == 1
    result = dump_to_partition(disk, FakeZcore(zfile, 4 * MiB), quiet_ui())
    with open_dump(FileSource(disk, result.image_offset, dump_size)) as dump:
        assert dump.complete
    with open(disk, "rb") as fh:
        fh.seek(1 * MiB)
        assert fh.read(HEADER_SIZE) == header


class HoleyZcore(FakeZcore):
    """zcore with a memory hole: header mem_size = present bytes, mem_end = end (§2.3),
    memmap lists the present ranges, reads inside the hole fail with EFAULT."""

    def __init__(self, path: Path, hsa: int, ranges: list[tuple[int, int]]) -> None:
        super().__init__(path, hsa)
        self.ranges = ranges
        real_readinto = self.mem.readinto

        def readinto(buf):
            addr = self.mem.pos - HEADER_SIZE
            end = addr + len(buf)
            if addr >= 0 and not any(s <= addr and end <= s + n for s, n in ranges):
                raise OSError(14, f"EFAULT: memory hole in 0x{addr:x}..0x{end - 1:x}")
            return real_readinto(buf)

        self.mem.readinto = readinto

    def memmap(self) -> str:
        return "".join(f"{s:016x} {n:016x} " for s, n in self.ranges)


def test_memory_hole_written_as_zeros(tmp_path):
    mem_end = 16 * MiB
    ranges = [(0, 6 * MiB), (10 * MiB, 6 * MiB)]
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, mem_end)
    # zcore's header for this layout: mem_size counts the present 12 MiB only.
    from zipldump.formats.s390dump import DumpHeader

    holey = DumpHeader(mem_size=12 * MiB, mem_end=mem_end, tod=HEADER_TOD, prefixes=(0x10000,), real_cpu_cnt=1).build()
    with open(zfile, "r+b") as fh:
        fh.write(holey)
    disk, _, dump_size = dumpto_disk(tmp_path, 512, 24 * MiB)
    result = dump_to_partition(disk, HoleyZcore(zfile, 4 * MiB, ranges), quiet_ui(), chunk_size=1 * MiB)
    assert result.mem_size == mem_end and result.bytes_written == HEADER_SIZE + mem_end + END_MARKER_SIZE
    with open_dump(FileSource(disk, result.image_offset, dump_size)) as dump:
        assert dump.complete
        assert (dump.header.mem_size, dump.header.end, dump.header.pages) == (mem_end, mem_end, mem_end // 4096)
        assert dump.read_memory(6 * MiB, 4 * MiB) == bytes(4 * MiB)  # the hole
        with open(zfile, "rb") as fh:
            fh.seek(HEADER_SIZE + 10 * MiB)
            assert dump.read_memory(10 * MiB, 4096) == fh.read(4096)
            fh.seek(HEADER_SIZE + 6 * MiB - 4096)
            assert dump.read_memory(6 * MiB - 4096, 4096) == fh.read(4096)


def test_memmap_parse_errors():
    from zipldump.dump.write_partition import parse_memmap

    assert parse_memmap("0000000000000000 0000000000100000 0000000000200000 0000000000100000 ") == [(0, 1 << 20), (2 << 20, 1 << 20)]
    # chunks style: a zero-size record ends the list, NULs after it are ignored
    assert parse_memmap("0000000000000000 0000000000100000 0000000000000000 0000000000000000 " + "\0" * 34) == [(0, 1 << 20)]
    with pytest.raises(DumpError, match="invalid contents of memory map file"):
        parse_memmap("000000000000000g 0000000000100000 ")
    with pytest.raises(DumpError, match="record 0"):
        parse_memmap("0000000000000000-0000000000100000 ")


def test_zcore_shorter_than_header_says(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 8 * MiB)
    with open(zfile, "r+b") as fh:
        fh.truncate(HEADER_SIZE + 3 * MiB)
    disk, _, dump_size = dumpto_disk(tmp_path, 512, 24 * MiB)
    with pytest.raises(DumpError, match="zcore/mem ended at absolute address 0x300000"):
        dump_to_partition(disk, FakeZcore(zfile, 1 * MiB), quiet_ui())
    with open(disk, "rb") as fh:
        fh.seek(1 * MiB)
        assert fh.read(len(BUSY_MARKER)) == BUSY_MARKER


def test_end_tod_never_before_header_tod(tmp_path):
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, _, _ = dumpto_disk(tmp_path, 512, 24 * MiB)
    result = dump_to_partition(disk, FakeZcore(zfile, 1 * MiB), quiet_ui(), clock=lambda: HEADER_TOD - 0x800)
    assert result.end_tod == HEADER_TOD  # equality is what zgetdump accepts


@pytest.mark.slow
def test_write_error_at_every_write_never_looks_complete(tmp_path, monkeypatch):
    """Crash loop: an EIO on write N, for every N of a whole run, on a partition that
    holds an older complete dump of the same size.  Afterwards the partition holds
    the old dump untouched (nothing landed), an incomplete (busy) one, or the
    complete new one -- never a complete-looking mix -- and the next dump run on it
    succeeds every time."""
    from zipldump.errors import DiskError

    mem_size = 4 * MiB
    old_file, new_file = tmp_path / "old.mem", tmp_path / "new.mem"
    old_header, old_sha = make_zcore_file(old_file, mem_size, seed=1, prefixes=(0x20000,))
    new_header, new_sha = make_zcore_file(new_file, mem_size, seed=2)
    assert old_header != new_header
    template, _, dump_size = dumpto_disk(tmp_path, 512, 16 * MiB, name="template.img")
    dump_to_partition(template, FakeZcore(old_file, 1 * MiB), quiet_ui(), clock=lambda: HEADER_TOD + 10**9)

    count = {"n": 0, "fail": None}

    def failing(real_write):
        def write_at(self, offset, data):
            if count["n"] == count["fail"]:
                count["n"] += 1
                raise DiskError("injected EIO", where=f"offset {offset:#x}")
            count["n"] += 1
            real_write(self, offset, data)

        return write_at

    def dump_state(disk: Path) -> str:
        """'busy', 'old' or 'new' (the last two complete and byte-exact)."""
        with open(disk, "rb") as fh:
            fh.seek(1 * MiB)
            head = fh.read(HEADER_SIZE)
        if head[: len(BUSY_MARKER)] == BUSY_MARKER:
            with pytest.raises((IncompleteDumpError, DumpTargetChangedError)):
                locate_dump(disk)  # busy, or busy with the checksum update lost
            return "busy"
        with open_dump(FileSource(disk, 1 * MiB, dump_size)) as dump:
            assert dump.complete
        for name, header, digest in (("old", old_header, old_sha), ("new", new_header, new_sha)):
            if head == header:
                assert file_range_sha(disk, 1 * MiB + HEADER_SIZE, mem_size) == digest, f"{name} header over other memory"
                return name
        raise AssertionError("unknown header")

    # Buffered writes (header, marker, superblock) and the O_DIRECT memory writes.
    monkeypatch.setattr(DiskImage, "write_at", failing(DiskImage.write_at))
    monkeypatch.setattr(DirectFile, "write_at", failing(DirectFile.write_at))
    clean = tmp_path / "clean.img"
    shutil.copyfile(template, clean)
    dump_to_partition(clean, FakeZcore(new_file, 1 * MiB), quiet_ui(), chunk_size=1 * MiB)
    total = count["n"]
    assert total >= 8  # busy, checksum, memory chunks, end marker, header, checksum

    states = []
    for n in range(total):
        disk = tmp_path / f"crash{n}.img"
        shutil.copyfile(template, disk)
        count.update(n=0, fail=n)
        with pytest.raises(DiskError, match="injected"):
            dump_to_partition(disk, FakeZcore(new_file, 1 * MiB), quiet_ui(), chunk_size=1 * MiB)
        states.append(dump_state(disk))
        # The next dump run accepts the partition and completes.
        count.update(n=0, fail=None)
        dump_to_partition(disk, FakeZcore(new_file, 1 * MiB), quiet_ui(), chunk_size=1 * MiB)
        assert dump_state(disk) == "new"
        with DiskImage(disk, 512) as d:
            assert locate_dump_partition(d).note is None  # checksum right again
        disk.unlink()
    # Write 0 is the busy page: nothing changed.  The last one is the superblock
    # after the header: the new dump is complete, only its checksum is stale.
    assert states[0] == "old" and states[-1] == "new"
    assert set(states[1:-1]) == {"busy"}


def test_checksum_relaxation_only_for_writer_artefacts(tmp_path):
    """A busy page followed by foreign bytes is not one of our own states: refused."""
    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, 4 * MiB)
    disk, _, _ = dumpto_disk(tmp_path, 512, 16 * MiB)
    with open(disk, "r+b") as fh:
        fh.seek(1 * MiB)
        fh.write(BUSY_MARKER)
        fh.seek(1 * MiB + 1024 + 0x38)
        fh.write(b"\x53\xef")  # an ext superblock magic appeared
    _expect_untouched(disk, lambda: dump_to_partition(disk, FakeZcore(zfile, 1 * MiB), quiet_ui()), DumpTargetChangedError, "checksum wrong")
    # The bare busy page with a stale checksum is accepted, with a warning in the result.
    with open(disk, "r+b") as fh:
        fh.seek(1 * MiB + 1024 + 0x38)
        fh.write(b"\0\0")
    result = dump_to_partition(disk, FakeZcore(zfile, 1 * MiB), quiet_ui())
    assert any("busy marker of an interrupted dump" in w for w in result.warnings)


def test_memory_goes_direct_where_possible_and_buffered_otherwise(tmp_path, monkeypatch):
    """The memory chunks take the O_DIRECT path when the image's file system has it
    and the buffered path when it does not (or refuses the alignment); the image
    bytes are the same either way."""
    mem_size = 12 * MiB

    def after_mbr(path: Path) -> str:  # the msdos disk identifier is random
        return file_range_sha(path, 512, path.stat().st_size - 512)

    zfile = tmp_path / "zcore.mem"
    make_zcore_file(zfile, mem_size)
    direct_disk, _, _ = dumpto_disk(tmp_path, 512, 24 * MiB, name="direct.img")
    direct_writes = []
    real_direct = DirectFile.write_at

    def counting(self, offset, data):
        direct_writes.append((offset, len(data)))
        real_direct(self, offset, data)

    monkeypatch.setattr(DirectFile, "write_at", counting)
    dump_to_partition(direct_disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), chunk_size=1 * MiB, clock=lambda: HEADER_TOD + 7)
    probe = DirectFile.open(str(direct_disk))
    if probe is not None:
        probe.close()
        # Every memory byte, and nothing else (header, marker, superblock stay buffered).
        assert sum(n for _, n in direct_writes) == mem_size
        assert all(off % 4096 == 0 and n % 4096 == 0 for off, n in direct_writes)
    # No O_DIRECT at all.
    monkeypatch.setattr(DirectFile, "open", classmethod(lambda cls, path: None))
    plain_disk, _, _ = dumpto_disk(tmp_path, 512, 24 * MiB, name="plain.img")
    dump_to_partition(plain_disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), chunk_size=1 * MiB, clock=lambda: HEADER_TOD + 7)
    assert after_mbr(plain_disk) == after_mbr(direct_disk)

    # O_DIRECT opens but the first write says EINVAL (another alignment wanted): buffered from then on.
    def einval(self, offset, data):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.undo()
    monkeypatch.setattr(DirectFile, "open", classmethod(lambda cls, path: cls(path, -1)))
    monkeypatch.setattr(DirectFile, "close", lambda self: None)
    monkeypatch.setattr(DirectFile, "write_at", einval)
    einval_disk, _, _ = dumpto_disk(tmp_path, 512, 24 * MiB, name="einval.img")
    dump_to_partition(einval_disk, FakeZcore(zfile, 4 * MiB), quiet_ui(), chunk_size=1 * MiB, clock=lambda: HEADER_TOD + 7)
    assert after_mbr(einval_disk) == after_mbr(direct_disk)


def test_a_dump_area_over_the_dump_tool_is_refused_as_inspect_refuses_it(tmp_path):
    """The writer applies inspect's dump-area rule: a dump there would overwrite the tool that writes it."""
    import struct

    from zipldump.cli import main as cli_main
    from zipldump.errors import SuperblockError
    from zipldump.formats.dump_superblock import DumpSuperblock
    from zipldump.formats.fields import offset_of
    from zipldump.sim.payloads import write_demo_payloads
    from zipldump.zipl.check import inspect_disk

    img, sb_off, _ = dumpto_disk(tmp_path, 512, 64 * MiB)
    p = write_demo_payloads(tmp_path / "p")
    assert cli_main(["-q", "install", str(img), "--dumpto", "1", "--image", str(p.image), "--ramdisk", str(p.ramdisk), "-n"]) == 0
    rep = inspect_disk(img, 512)
    kernel = next(c for c in rep.programs[0].components if c.kind == "load" and c.extents)
    first_lba = kernel.extents[0].block
    data = bytearray(img.read_bytes())
    sb_off = int.from_bytes(data[0x78:0x80], "big")
    sb = DumpSuperblock.parse(bytes(data[sb_off : sb_off + 72]), offset=sb_off)
    assert first_lba * 512 > sb_off, "the tool's data lies after the superblock"
    struct.pack_into(">Q", data, sb_off + offset_of(DumpSuperblock, "dump_offset"), first_lba * 512 - sb.part_start)
    struct.pack_into(">Q", data, sb_off + offset_of(DumpSuperblock, "dump_size"), 4 * MiB)
    img.write_bytes(bytes(data))
    before = img.read_bytes()
    assert cli_main(["-q", "inspect", str(img)]) == SuperblockError.exit_code
    assert cli_main(["-q", "ipl", str(img), "--memory", "2M", "--cpus", "1"]) == SuperblockError.exit_code
    assert img.read_bytes() == before
