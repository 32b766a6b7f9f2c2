"""Is this a usable zipl SCSI dump partition?  The chain is read and judged once, here.

block 0 boot_info -> ZFCPDUMP superblock -> its geometry against the disk ->
CKSM -> the partition table (zipl-scsi-format.md §3, §7.4-§7.5).
`read_dump_partition(disk)` reads it and returns a `DumpPartition`: what was
read, plus every problem as a `Finding(code, place, message, severity)`.  Bad
bytes never raise here (an unreadable disk does: DiskError); the chain stops
only where the next link cannot be trusted (no dump boot_info, no superblock,
a partition outside the disk).

The consumers apply their own policy to the same findings
(docs/dump-writers.md has the table):

* inspect (zipl/check.py) reports every finding, as error, warning or note;
* the partition writer (dump/write_partition.py) refuses on the first finding
  its table lists, before anything is written;
* the dump locator (dump/locate.py) refuses on the few it lists, the checksum
  only when verifying (dumpinfo/getdump --force skip it).

Messages and places are inspect's wording; a consumer with a wording of its
own formats its template with `Finding.values`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from zipldump.disk.partitions import read_partition_table
from zipldump.errors import Form, FormatError, Place, Reason, ZiplDumpError
from zipldump.formats.bootrecord import (
    BOOT_INFO_OFFSET,
    BOOT_INFO_VERSION,
    BOOT_RECORD_SIZE,
    BP_TYPE_DUMP,
    BP_TYPE_IPL,
    DEV_TYPE_SCSI,
    ZIPL_MAGIC,
    BootInfo,
)
from zipldump.formats.dump_superblock import SB_VERSION, SUPERBLOCK_SIZE, DumpSuperblock
from zipldump.zipl import bootmap
from zipldump.zipl.bootmap import Disk


class Code(enum.Enum):
    """One per rule, in the order inspect reports them."""

    DISK_TOO_SMALL = "disk-too-small"
    BLOCK0_MAGIC = "block0-magic"
    BOOT_INFO_EMPTY = "boot-info-empty"  # an IPL disk (note)
    BOOT_INFO_MAGIC = "boot-info-magic"
    BOOT_INFO_VERSION = "boot-info-version"
    BOOT_INFO_DEV_TYPE = "boot-info-dev-type"
    BOOT_INFO_IPL = "boot-info-ipl"  # bp_type 0 (note)
    BOOT_INFO_BP_TYPE = "boot-info-bp-type"
    SUPERBLOCK_OUTSIDE_DISK = "superblock-outside-disk"
    SUPERBLOCK_MAGIC = "superblock-magic"
    SUPERBLOCK_UNALIGNED = "superblock-unaligned"
    SUPERBLOCK_VERSION = "superblock-version"
    PARTITION_UNALIGNED = "partition-unaligned"
    PARTITION_OUTSIDE_DISK = "partition-outside-disk"
    DUMP_START_OUTSIDE_PARTITION = "dump-start-outside-partition"
    DUMP_AREA_OUTSIDE_PARTITION = "dump-area-outside-partition"
    CHECKSUM_RANGE_BAD = "checksum-range-bad"  # empty, or not inside the partition
    CHECKSUM_RANGE_OUTSIDE_DISK = "checksum-range-outside-disk"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    SUPERBLOCK_OUTSIDE_PARTITION = "superblock-outside-partition"
    DUMP_AREA_COVERS_SUPERBLOCK = "dump-area-covers-superblock"  # the superblock's first byte is in the dump area
    DUMP_AREA_OVERLAPS_SUPERBLOCK = "dump-area-overlaps-superblock"  # only its tail is
    PARTITION_TABLE_UNREADABLE = "partition-table-unreadable"
    NO_PARTITION_AT_START = "no-partition-at-start"
    PARTITION_SIZE_MISMATCH = "partition-size-mismatch"


# Which link of the chain a code belongs to (inspect runs its own checks between them).
BOOT_INFO_CODES = frozenset(list(Code)[: list(Code).index(Code.SUPERBLOCK_OUTSIDE_DISK)])
SUPERBLOCK_READ_CODES = frozenset({Code.SUPERBLOCK_OUTSIDE_DISK, Code.SUPERBLOCK_MAGIC})
PARTITION_TABLE_CODES = frozenset({Code.PARTITION_TABLE_UNREADABLE, Code.NO_PARTITION_AT_START, Code.PARTITION_SIZE_MISMATCH})

_READ_ERRORS = {Reason.SUPERBLOCK_OUTSIDE_DISK: Code.SUPERBLOCK_OUTSIDE_DISK, Reason.SUPERBLOCK_MAGIC: Code.SUPERBLOCK_MAGIC}


@dataclass(frozen=True)
class Finding:
    code: Code
    place: Place
    message: str
    severity: str  # "error" | "warning" | "note" (inspect's judgement; other consumers have their own tables)
    values: dict[str, Any] = field(default_factory=dict)  # for the consumers' own wordings
    cause: ZiplDumpError | None = None  # the reader's error, when one was caught (partition table)


@dataclass
class DumpPartition:
    """What the chain holds, as far as it could be read, and what is wrong with it."""

    boot_info: BootInfo | None = None
    superblock: DumpSuperblock | None = None
    checksum: int | None = None  # CKSM of the checksummed range, when it lies inside the disk
    table_label: str | None = None
    partition_at_start: int | None = None  # number of the partition starting at part_start
    partition: int | None = None  # ... with part_size as well: the dump partition
    findings: list[Finding] = field(default_factory=list)

    def get(self, code: Code) -> Finding | None:
        return next((f for f in self.findings if f.code is code), None)

    def has(self, *codes: Code) -> bool:
        return any(f.code in codes for f in self.findings)

    @property
    def codes(self) -> list[Code]:
        return [f.code for f in self.findings]


def boot_info_place(fld: str | None = None) -> Place:
    """'block 0x0 offset 0x70 (boot_info) field dev_type' (the field's offset from BootInfo)."""
    p = Place(lba=0, offset=BOOT_INFO_OFFSET, structure="boot_info")
    return p if fld is None else p.with_field(fld, BootInfo)


def superblock_field(sb_offset: int, fld: str | None = None) -> Place:
    """'superblock at byte 0xf8400 offset 0x40 field csum' (the field's offset from DumpSuperblock)."""
    p = Place(byte=sb_offset, structure="dump superblock", form=Form.SUPERBLOCK)
    return p if fld is None else p.with_field(fld, DumpSuperblock)


def read_dump_partition(disk: Disk, boot_info: BootInfo | None = None) -> DumpPartition:
    """Read and judge the dump-partition chain of `disk` once.

    `boot_info` is block 0's, when the caller has read block 0 already (inspect);
    else block 0 is read here as a dump tool reads it (only its 'zIPL' magic).
    """
    out = DumpPartition()
    add = out.findings.append
    if boot_info is None:
        if disk.size < BOOT_RECORD_SIZE:
            add(Finding(Code.DISK_TOO_SMALL, bootmap.place(0), f"the disk is {disk.size} bytes, smaller than its boot record", "error",
                        {"size": disk.size}))
            return out
        block0 = disk.read_at(0, BOOT_RECORD_SIZE)
        if block0[:4] != ZIPL_MAGIC:
            add(Finding(Code.BLOCK0_MAGIC, Place(lba=0, offset=0, fields=("magic",), form=Form.BLOCK0),
                        f"block 0 starts with {block0[:4].hex()}, not 'zIPL': not a zipl disk", "error"))
            return out
        boot_info = bootmap.parse_boot_info(block0)
    bi = out.boot_info = boot_info
    vals: dict[str, Any] = {"magic": bi.magic.hex(), "version": bi.version, "dev_type": bi.dev_type, "bp_type": bi.bp_type}
    if bi.is_empty:
        add(Finding(Code.BOOT_INFO_EMPTY, boot_info_place("magic"), "boot_info is empty: an IPL disk, no dump superblock", "note", vals))
        return out
    if not bi.has_magic:
        add(Finding(Code.BOOT_INFO_MAGIC, boot_info_place("magic"), f"boot_info magic is {bi.magic.hex()}, expected 7a49504c ('zIPL')",
                    "error", vals))
        return out
    if bi.version != BOOT_INFO_VERSION:
        add(Finding(Code.BOOT_INFO_VERSION, boot_info_place("version"), f"boot_info version {bi.version}, expected 1", "warning", vals))
    if bi.dev_type != DEV_TYPE_SCSI:
        add(Finding(Code.BOOT_INFO_DEV_TYPE, boot_info_place("dev_type"), f"boot_info dev_type is {bi.dev_type}, expected 2 (SCSI)",
                    "error", vals))
    if bi.bp_type == BP_TYPE_IPL:
        add(Finding(Code.BOOT_INFO_IPL, boot_info_place("bp_type"), "boot_info says IPL (bp_type 0): no dump superblock", "note", vals))
    elif bi.bp_type != BP_TYPE_DUMP:
        add(Finding(Code.BOOT_INFO_BP_TYPE, boot_info_place("bp_type"), f"boot_info bp_type is {bi.bp_type}, expected 1 (DUMP)",
                    "error", vals))
    if out.has(Code.BOOT_INFO_DEV_TYPE, Code.BOOT_INFO_IPL, Code.BOOT_INFO_BP_TYPE):
        return out  # not a SCSI dump boot_info: dump_sb_offset means nothing

    try:
        sb = bootmap.read_superblock(disk, bi.dump_sb_offset)
    except FormatError as exc:
        code = _READ_ERRORS.get(exc.reason) if exc.reason is not None else None
        if code is None or exc.place is None:
            raise
        add(Finding(code, exc.place, exc.message, "error", {**vals, "sb_offset": bi.dump_sb_offset}, exc))
        return out
    out.superblock = sb
    _judge_superblock(disk, sb, out, vals)
    if not out.has(Code.PARTITION_OUTSIDE_DISK):
        _judge_partition_table(disk, sb, out)
    return out


def _judge_superblock(disk: Disk, sb: DumpSuperblock, out: DumpPartition, vals: dict[str, Any]) -> None:
    bs = disk.block_size
    dump_start = sb.part_start + sb.dump_offset
    part_end = sb.part_start + sb.part_size
    csum_at = sb.part_start + sb.csum_offset
    v = {**vals, **sb.to_json(), "sb_offset": sb.offset, "dump_start": dump_start, "dump_end": dump_start + sb.dump_size,
         "part_end": part_end, "csum_at": csum_at, "disk_size": disk.size, "block_size": bs}

    def add(code: Code, fld: str | None, message: str, severity: str = "error", place: Place | None = None) -> None:
        out.findings.append(Finding(code, place or superblock_field(sb.offset, fld), message, severity, v))

    if sb.offset % bs:
        add(Code.SUPERBLOCK_UNALIGNED, None, f"superblock offset {sb.offset:#x} is not block aligned", "warning",
            boot_info_place("dump_sb_offset"))
    if sb.version != SB_VERSION:
        add(Code.SUPERBLOCK_VERSION, "version", f"dump superblock version {sb.version}, expected 1", "warning")
    if sb.part_start % bs or sb.part_size % bs:
        add(Code.PARTITION_UNALIGNED, "part_start",
            f"part_start {sb.part_start:#x} / part_size {sb.part_size:#x} are not multiples of the block size {bs}")
    if sb.part_size == 0 or part_end > disk.size:
        add(Code.PARTITION_OUTSIDE_DISK, "part_size",
            f"partition {sb.part_start:#x}+{sb.part_size:#x} is not inside the disk ({disk.size:#x} bytes)")
        return  # nothing else can be judged
    if sb.dump_offset >= sb.part_size:
        add(Code.DUMP_START_OUTSIDE_PARTITION, "dump_offset",
            f"dump_offset {sb.dump_offset:#x} is not inside the partition ({sb.part_size:#x} bytes)", "warning")
    if sb.dump_offset + sb.dump_size > sb.part_size:
        add(Code.DUMP_AREA_OUTSIDE_PARTITION, "dump_size",
            f"dump area {sb.dump_offset:#x}+{sb.dump_size:#x} does not fit the partition size {sb.part_size:#x}")
    if sb.csum_offset + sb.csum_size > sb.part_size or sb.csum_size == 0:
        add(Code.CHECKSUM_RANGE_BAD, "csum_size",
            f"checksummed range {sb.csum_offset:#x}+{sb.csum_size:#x} is empty or does not fit the partition size {sb.part_size:#x}")
    try:
        out.checksum = bootmap.superblock_checksum(disk, sb)
    except FormatError as exc:
        if exc.reason is not Reason.CHECKSUM_RANGE_OUTSIDE_DISK:
            raise
        add(Code.CHECKSUM_RANGE_OUTSIDE_DISK, "csum_size", exc.message)
    if out.checksum is not None and out.checksum != sb.csum:
        v["computed"] = out.checksum
        add(Code.CHECKSUM_MISMATCH, "csum",
            f"stored checksum {sb.csum:#x} != CKSM of the {sb.csum_size} bytes at {csum_at:#x} "
            f"({out.checksum:#x}): the partition start changed since zipl ran")
    if not sb.part_start <= sb.offset < part_end:
        add(Code.SUPERBLOCK_OUTSIDE_PARTITION, None, f"superblock at {sb.offset:#x} lies outside its partition", "warning",
            boot_info_place("dump_sb_offset"))
    dump_end = dump_start + sb.dump_size
    if dump_start <= sb.offset < dump_end:
        add(Code.DUMP_AREA_COVERS_SUPERBLOCK, "dump_size",
            f"the dump area {dump_start:#x}-{dump_end - 1:#x} covers the superblock itself at {sb.offset:#x}")
    elif dump_start < sb.offset + SUPERBLOCK_SIZE and sb.offset < dump_end:
        add(Code.DUMP_AREA_OVERLAPS_SUPERBLOCK, "dump_size",
            f"the dump area {dump_start:#x}-{dump_end - 1:#x} overlaps the end of the superblock at {sb.offset:#x}", "warning")


def _judge_partition_table(disk: Disk, sb: DumpSuperblock, out: DumpPartition) -> None:
    v = {**sb.to_json(), "sb_offset": sb.offset}

    def add(code: Code, fld: str, message: str, cause: ZiplDumpError | None = None) -> None:
        out.findings.append(Finding(code, superblock_field(sb.offset, fld), message, "error", v, cause))

    try:
        table = read_partition_table(disk)  # type: ignore[arg-type]  # a DiskImage, or a Disk with its interface
    except ZiplDumpError as exc:
        add(Code.PARTITION_TABLE_UNREADABLE, "part_start",
            f"cannot compare part_start {sb.part_start:#x}/part_size {sb.part_size:#x} with the partition table: {exc}", exc)
        return
    out.table_label = v["label"] = table.label
    parts = table.partitions
    match = next((p for p in parts if p.start_bytes == sb.part_start), None)
    out.partition = next((int(p.number) for p in parts if p.start_bytes == sb.part_start and p.size_bytes == sb.part_size), None)
    if match is None:
        have = ", ".join(f"{p.number} at {p.start_bytes:#x} size {p.size_bytes:#x}" for p in parts) or "none"
        add(Code.NO_PARTITION_AT_START, "part_start",
            f"superblock part_start {sb.part_start:#x} is not the start of any partition (partition table {table.label}: {have})")
        return
    out.partition_at_start = v["number"] = match.number
    if match.size_bytes != sb.part_size:
        add(Code.PARTITION_SIZE_MISMATCH, "part_size",
            f"superblock part_size {sb.part_size:#x} != partition {match.number} size {match.size_bytes:#x} in the {table.label} table")
