"""zipl/dumppart.py: the dump-partition chain judged once, and each consumer's policy over its findings.

The disk is the spec's worked example (§13, built by zipldump.zipl.installer):
partition 1 at byte 0x8000 (0xf8000 bytes), dump area its first 0xf0000 bytes,
the superblock at byte 0xf8400, CKSM over the partition's first 4 KiB.  Each
test damages one link and checks the finding, then what inspect, the partition
writer and the locator make of it (docs/dump-writers.md has the table).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zipldump.cli import main as cli_main
from zipldump.disk.image import DiskImage
from zipldump.dump.locate import locate_dump
from zipldump.dump.write_partition import WRITER_REFUSES, locate_dump_partition
from zipldump.errors import (
    ChecksumError,
    DiskError,
    DumpError,
    DumpTargetChangedError,
    FormatError,
    MagicError,
    PointerError,
    SuperblockError,
)
from zipldump.formats.dump_superblock import DumpSuperblock
from zipldump.formats.fields import offset_of
from zipldump.formats.s390dump import build_end_marker, build_header
from zipldump.zipl.check import inspect_disk
from zipldump.zipl.dumppart import Code, read_dump_partition
from zipldump.zipl.installer import build_spec_example

SB = 0xF8400
PART_START, PART_SIZE, DUMP_SIZE = 0x8000, 1984 * 512, 1920 * 512


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("example")
    build_spec_example(d / "ex.img", d / "work")
    return d / "ex.img"


@pytest.fixture
def disk(example: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(example, tmp_path / "d.img"))


def poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def sb_field(path: Path, name: str, value: int, sb: int = SB) -> None:
    poke(path, sb + offset_of(DumpSuperblock, name), value.to_bytes(8, "big"))


def move_superblock(path: Path, to: int) -> None:
    raw = path.read_bytes()[SB : SB + 72]
    poke(path, to, raw)
    poke(path, 0x78, to.to_bytes(8, "big"))


def judge(path: Path):
    with DiskImage(path, 512) as d:
        return read_dump_partition(d)


def test_a_clean_dump_disk_has_no_findings(disk: Path) -> None:
    dp = judge(disk)
    assert dp.findings == [] and dp.partition == 1 == dp.partition_at_start and dp.table_label == "msdos"
    assert dp.superblock is not None and dp.checksum == dp.superblock.csum == 0x12345678


# (damage, the code, its severity, where inspect says it is)
DAMAGES = {
    "block0-magic": (lambda p: poke(p, 0, b"XIPL"), Code.BLOCK0_MAGIC, "error", "block 0 offset 0x0 field magic"),
    "boot-info-empty": (lambda p: poke(p, 0x70, bytes(40)), Code.BOOT_INFO_EMPTY, "note", "block 0x0 offset 0x70 (boot_info) field magic"),
    "boot-info-magic": (lambda p: poke(p, 0x70, b"ABCD"), Code.BOOT_INFO_MAGIC, "error", "block 0x0 offset 0x70 (boot_info) field magic"),
    "boot-info-version": (lambda p: poke(p, 0x74, b"\x02"), Code.BOOT_INFO_VERSION, "warning", "block 0x0 offset 0x70 (boot_info) field version"),
    "dev-type": (lambda p: poke(p, 0x76, b"\x01"), Code.BOOT_INFO_DEV_TYPE, "error", "block 0x0 offset 0x70 (boot_info) field dev_type"),
    "bp-type-ipl": (lambda p: poke(p, 0x75, b"\x00"), Code.BOOT_INFO_IPL, "note", "block 0x0 offset 0x70 (boot_info) field bp_type"),
    "bp-type": (lambda p: poke(p, 0x75, b"\x07"), Code.BOOT_INFO_BP_TYPE, "error", "block 0x0 offset 0x70 (boot_info) field bp_type"),
    "sb-outside-disk": (lambda p: poke(p, 0x78, (1 << 40).to_bytes(8, "big")), Code.SUPERBLOCK_OUTSIDE_DISK, "error",
                        "block 0x0 offset 0x78 (boot_info) field dump_sb_offset"),
    "sb-magic": (lambda p: poke(p, SB, b"X"), Code.SUPERBLOCK_MAGIC, "error",
                 "byte offset 0xf8400 (block 0x7c2 offset 0x0, dump superblock) field magic"),
    "sb-unaligned": (lambda p: move_superblock(p, SB + 0x208), Code.SUPERBLOCK_UNALIGNED, "warning",
                     "block 0x0 offset 0x70 (boot_info) field dump_sb_offset"),
    "sb-version": (lambda p: sb_field(p, "version", 2), Code.SUPERBLOCK_VERSION, "warning", "superblock at byte 0xf8400 offset 0x8 field version"),
    "part-unaligned": (lambda p: sb_field(p, "part_size", PART_SIZE - 8), Code.PARTITION_UNALIGNED, "error",
                       "superblock at byte 0xf8400 offset 0x10 field part_start"),
    "part-outside-disk": (lambda p: sb_field(p, "part_size", 1 << 40), Code.PARTITION_OUTSIDE_DISK, "error",
                          "superblock at byte 0xf8400 offset 0x18 field part_size"),
    "dump-start-outside": (lambda p: (sb_field(p, "dump_offset", PART_SIZE), sb_field(p, "dump_size", 0)),
                           Code.DUMP_START_OUTSIDE_PARTITION, "warning", "superblock at byte 0xf8400 offset 0x20 field dump_offset"),
    "dump-area-outside": (lambda p: sb_field(p, "dump_size", PART_SIZE + 512), Code.DUMP_AREA_OUTSIDE_PARTITION, "error",
                          "superblock at byte 0xf8400 offset 0x28 field dump_size"),
    "csum-range-empty": (lambda p: sb_field(p, "csum_size", 0), Code.CHECKSUM_RANGE_BAD, "error",
                         "superblock at byte 0xf8400 offset 0x38 field csum_size"),
    "csum-range-outside-disk": (lambda p: sb_field(p, "csum_offset", 1 << 40), Code.CHECKSUM_RANGE_OUTSIDE_DISK, "error",
                                "superblock at byte 0xf8400 offset 0x38 field csum_size"),
    "checksum": (lambda p: poke(p, PART_START, b"\x01"), Code.CHECKSUM_MISMATCH, "error", "superblock at byte 0xf8400 offset 0x40 field csum"),
    "sb-outside-partition": (lambda p: move_superblock(p, 0x4000), Code.SUPERBLOCK_OUTSIDE_PARTITION, "warning",
                             "block 0x0 offset 0x70 (boot_info) field dump_sb_offset"),
    "dump-covers-sb": (lambda p: sb_field(p, "dump_size", PART_SIZE), Code.DUMP_AREA_COVERS_SUPERBLOCK, "error",
                       "superblock at byte 0xf8400 offset 0x28 field dump_size"),
    "dump-overlaps-sb": (lambda p: (sb_field(p, "dump_offset", SB + 8 - PART_START), sb_field(p, "dump_size", 0x100)),
                         Code.DUMP_AREA_OVERLAPS_SUPERBLOCK, "warning", "superblock at byte 0xf8400 offset 0x28 field dump_size"),
    "no-table": (lambda p: poke(p, 510, b"\0\0"), Code.PARTITION_TABLE_UNREADABLE, "error", "superblock at byte 0xf8400 offset 0x10 field part_start"),
    "no-partition-at-start": (lambda p: sb_field(p, "part_start", PART_START - 512), Code.NO_PARTITION_AT_START, "error",
                              "superblock at byte 0xf8400 offset 0x10 field part_start"),
    "partition-size": (lambda p: sb_field(p, "part_size", PART_SIZE - 512), Code.PARTITION_SIZE_MISMATCH, "error",
                       "superblock at byte 0xf8400 offset 0x18 field part_size"),
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_each_finding(disk: Path, name: str) -> None:
    damage, code, severity, where = DAMAGES[name]
    damage(disk)
    dp = judge(disk)
    f = dp.get(code)
    assert f is not None, dp.codes
    assert f.severity == severity and str(f.place) == where and f.message
    # One finding per rule: the damage shows up once.
    assert dp.codes.count(code) == 1


def test_the_chain_stops_where_the_next_link_means_nothing(disk: Path) -> None:
    poke(disk, 0x76, b"\x01")
    dp = judge(disk)
    assert dp.codes == [Code.BOOT_INFO_DEV_TYPE] and dp.superblock is None
    sb_field(disk, "part_size", 1 << 40)
    poke(disk, 0x76, b"\x02")
    dp = judge(disk)
    assert dp.codes == [Code.PARTITION_OUTSIDE_DISK] and dp.table_label is None  # the table is not compared


def test_disk_smaller_than_a_boot_record(tmp_path: Path) -> None:
    path = tmp_path / "tiny.img"
    path.write_bytes(b"zIPL" + bytes(96))
    dp = judge(path)
    assert dp.codes == [Code.DISK_TOO_SMALL] and str(dp.findings[0].place) == "block 0x0"


# --- the consumers' policies --------------------------------------------------------------
def inspected(path: Path) -> tuple[int, list[tuple[str, str, str]]]:
    r = inspect_disk(path, 512)
    return r.exit_code, [(p.severity, p.kind, p.where) for p in r.problems]


def test_inspect_reports_every_finding_with_its_class(disk: Path) -> None:
    poke(disk, 0x74, b"\x02")  # warning
    poke(disk, PART_START, b"\x01")  # checksum
    sb_field(disk, "part_size", PART_SIZE - 512)  # size mismatch (and the dump area still fits)
    rc, problems = inspected(disk)
    assert rc == ChecksumError.exit_code  # the first error's code
    assert problems == [
        ("warning", "format", "block 0x0 offset 0x70 (boot_info) field version"),
        ("error", ChecksumError.kind, "superblock at byte 0xf8400 offset 0x40 field csum"),
        ("error", SuperblockError.kind, "superblock at byte 0xf8400 offset 0x18 field part_size"),
    ]


def test_inspect_takes_checksum_only_over_a_valid_range(disk: Path) -> None:
    sb_field(disk, "csum_size", 0)
    r = inspect_disk(disk, 512)
    assert [p.kind for p in r.errors] == [SuperblockError.kind]
    assert r.dump is not None and r.dump.checksum_ok is None and "checksum_computed" not in r.dump.to_json()


def test_inspect_keeps_its_exit_code_where_the_writer_is_stricter(disk: Path) -> None:
    """A superblock whose tail only reaches into the dump area: the writer refuses, inspect warns (exit 0 as before)."""
    DAMAGES["dump-overlaps-sb"][0](disk)
    rc, problems = inspected(disk)
    assert rc == 0 and [p[0] for p in problems] == ["warning"]
    with DiskImage(disk, 512) as d, pytest.raises(DumpTargetChangedError, match="covers the superblock"):
        locate_dump_partition(d)


# The writer: (damage, error class, words of its message, its place).
WRITER = {
    "block0-magic": (MagicError, "not a zipl disk", "block 0 offset 0x0 field magic"),
    "boot-info-empty": (MagicError, "no dump tool installed (IPL disk?)", "block 0 offset 0x70 boot_info field magic"),
    "boot-info-version": (FormatError, "boot_info version is 2, not 1", "block 0 offset 0x70 boot_info field version (offset 0x74)"),
    "dev-type": (FormatError, "dev_type is 1, not 2 (SCSI)", "block 0 offset 0x70 boot_info field dev_type (offset 0x76)"),
    "bp-type-ipl": (FormatError, "bp_type is 0, not 1 (dump)", "block 0 offset 0x70 boot_info field bp_type (offset 0x75)"),
    "sb-outside-disk": (PointerError, "outside the disk", "block 0x0 offset 0x78 (boot_info) field dump_sb_offset"),
    "sb-magic": (DumpTargetChangedError, "the dump tool's data block was overwritten", "superblock at byte 0xf8400 offset 0x0 field magic"),
    "part-outside-disk": (DumpTargetChangedError, "is not inside the disk", "superblock at byte 0xf8400 offset 0x18 field part_size"),
    "dump-area-outside": (DumpTargetChangedError, "does not fit the partition", "superblock at byte 0xf8400 offset 0x28 field dump_size"),
    "csum-range-empty": (DumpTargetChangedError, "checksummed range", "superblock at byte 0xf8400 offset 0x38 field csum_size"),
    "checksum": (DumpTargetChangedError, "checksum wrong, partition changed", "superblock at byte 0xf8400 offset 0x40 field csum"),
    "dump-covers-sb": (DumpTargetChangedError, "covers the superblock at 0xf8400", "superblock at byte 0xf8400 offset 0x28 field dump_size"),
    "no-table": (DiskError, "", None),  # the table reader's own error
    "partition-size": (DumpTargetChangedError, "dump partition not found", "superblock at byte 0xf8400 offset 0x10 field part_start"),
}


@pytest.mark.parametrize("name", list(WRITER))
def test_writer_refuses_on_its_findings(disk: Path, name: str) -> None:
    cls, words, where = WRITER[name]
    DAMAGES[name][0](disk)
    with DiskImage(disk, 512) as d, pytest.raises(cls) as ei:
        locate_dump_partition(d)
    assert words in ei.value.message
    if where is not None:
        assert ei.value.where == where


@pytest.mark.parametrize("name", ["sb-version", "sb-outside-partition", "dump-start-outside"])
def test_writer_tolerates_what_zfcpdump_does_not_check(disk: Path, name: str) -> None:
    DAMAGES[name][0](disk)
    assert DAMAGES[name][1] not in WRITER_REFUSES
    with DiskImage(disk, 512) as d:
        assert locate_dump_partition(d).partition == 1


def put_dump(path: Path) -> None:
    """A small complete s390 dump at the dump start, the checksum updated as a writer does."""
    from zipldump.formats.dump_superblock import cksm

    mem = 64 * 1024
    poke(path, PART_START, build_header(mem, prefixes=()))
    poke(path, PART_START + 4096 + mem, build_end_marker(0xFFFF_0000_0000_0000))
    sb_field(path, "csum", cksm(path.read_bytes()[PART_START : PART_START + 4096]))


def test_locate_refuses_the_checksum_unless_forced(disk: Path) -> None:
    put_dump(disk)
    with locate_dump(disk) as loc:
        assert loc.kind == "partition" and loc.partition == 1
    sb_field(disk, "csum", 0x1234)
    with pytest.raises(DumpTargetChangedError) as ei:
        locate_dump(disk)
    assert ei.value.where == f"{disk} superblock at byte 0xf8400 (from block 0 offset 0x78) field csum"
    assert "the partition changed after the dump was written" in ei.value.message
    locate_dump(disk, verify_checksum=False).close()
    assert cli_main(["-q", "dumpinfo", str(disk)]) == DumpTargetChangedError.exit_code


def test_locate_ignores_the_partition_table_and_reads_the_dump(disk: Path) -> None:
    put_dump(disk)
    poke(disk, 510, b"\0\0")  # no partition table: the writer refuses, locate only loses the number
    with locate_dump(disk) as loc:
        assert loc.partition is None and loc.source.size == DUMP_SIZE


def test_locate_dev_type_place_is_the_field_offset(disk: Path) -> None:
    poke(disk, 0x76, b"\x01")
    with pytest.raises(DumpError) as ei:
        locate_dump(disk)
    assert ei.value.where == f"{disk} block 0 offset 0x76 field dev_type"  # not 0x72 (house-review P1)


def test_locate_names_the_superblock_for_reader_errors(disk: Path) -> None:
    poke(disk, SB, b"X")
    with pytest.raises(MagicError) as ei:
        locate_dump(disk)
    assert ei.value.where == f"{disk} superblock at byte 0xf8400 (from block 0 offset 0x78)"
    assert ei.value.message.startswith("dump superblock magic is")


def test_the_same_checksum_damage_per_command(disk: Path) -> None:
    """One finding, three policies, each command's exit code as before."""
    poke(disk, PART_START + 100, b"\xff")
    assert inspect_disk(disk, 512).exit_code == ChecksumError.exit_code  # 24
    with DiskImage(disk, 512) as d, pytest.raises(DumpTargetChangedError):  # 43
        locate_dump_partition(d)
    with pytest.raises(DumpTargetChangedError):  # 43, unless --force
        locate_dump(disk)
