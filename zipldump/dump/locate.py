"""Find the dump on a disk image: a zipl SCSI dump partition, or `dump.N` files in an ext2/3/4 file system.

Dump partition (zipl `dumpto=`, zfcpdump v3 layout, zipl-scsi-format.md §7.4):
block 0 `boot_info` (offset 0x70) says "zIPL", bp_type 1 (dump), dev_type 2
(SCSI) and gives the byte offset of the `ZFCPDUMP` superblock; the dump starts at
part_start + dump_offset and may use dump_size bytes.  The superblock checksum
(CKSM, seed 0x12345678, over csum_size bytes at part_start + csum_offset) is
recomputed by the dump writer when it finishes, so a mismatch means the
partition changed after the dump was written (DumpTargetChangedError, unless
verify_checksum=False).

File system dump (old `dumptofs`, zfcpdump v2 layout): files named `dump.N` (N
decimal without leading zeros, as zfcpdump numbers them) in a directory of an
ext2/3/4 partition, read through zipldump.disk.extfs.ExtFs's physical block map
without copying the file out.  The highest N is taken unless `number` is given.

Without a dump boot_info, every partition holding an ext file system is searched
(or only `partition`).  The result carries a ByteSource for dump.s390.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from zipldump.disk.extfs import ExtFs
from zipldump.disk.image import DiskImage
from zipldump.disk.io import ByteSource, RunSource, runs_of_blocks
from zipldump.dump.elfdump import open_dump_any
from zipldump.dump.s390 import FileSource
from zipldump.errors import (
    DiskError,
    DumpChangedError,
    DumpError,
    DumpTargetChangedError,
    Form,
    IncompleteDumpError,
    MagicError,
    Place,
    PointerError,
    UsageError,
    ZiplDumpError,
)
from zipldump.formats.dump_superblock import DumpSuperblock
from zipldump.formats.s390dump import BUSY_MARKER
from zipldump.jsonout import JsonMixin, member
from zipldump.zipl import bootmap as reader
from zipldump.zipl.bootmap import DUMP_SB_OFFSET_AT
from zipldump.zipl.dumppart import Code, DumpPartition, read_dump_partition

DUMP_NAME = re.compile(r"^dump\.(0|[1-9][0-9]*)$")


class ExtFileSource(RunSource):
    """A file inside an ext file system read through its physical block map (0: a hole)."""

    def __init__(self, image_path: str, fs_offset: int, fs_block_size: int, blocks: list[int], size: int, name: str) -> None:
        if size > len(blocks) * fs_block_size:
            raise DumpError(
                f"file size {size} exceeds its {len(blocks)} blocks of {fs_block_size} bytes", where=name
            )
        super().__init__(image_path, runs_of_blocks(blocks), size=size, unit=fs_block_size, base=fs_offset, name=name)


def _superblock_json(d: LocatedDump) -> dict[str, int] | None:
    """The superblock's fields without its offset (inspect's "dump" has the offset)."""
    return None if d.superblock is None else {k: v for k, v in d.superblock.to_json().items() if k != "offset"}


@dataclass
class LocatedDump(JsonMixin):
    kind: str  # "partition" or "filesystem"
    source: ByteSource
    where: str
    partition: int | None = None
    superblock: DumpSuperblock | None = None  # partition mode
    fs_path: str | None = None
    number: int | None = None
    available: list[int] = field(default_factory=list)  # dump numbers found (filesystem mode)
    # The image, open with a shared flock for as long as the dump is read: the
    # dump writers hold the exclusive one, so no dump is written under a reader.
    disk: DiskImage | None = None
    # Re-reads what proves the dump unchanged (the partition checksum); raises
    # DumpChangedError.  Called by readers after a copy.
    recheck: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)  # what the search passed over, for the operator

    JSON = (
        *map(member, ("kind", "where", "partition")),
        member("superblock", _superblock_json),
        *map(member, ("fs_path", "number", "available", "notes")),
        member("size", lambda d: d.source.size),
    )

    def close(self) -> None:
        self.source.close()
        if self.disk is not None:
            self.disk.close()

    def __enter__(self) -> LocatedDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def locate_dump(
    image: str | os.PathLike[str],
    *,
    block_size: int = 512,
    number: int | None = None,
    partition: int | None = None,
    directory: str = "/",
    verify_checksum: bool = True,
    lock: bool = True,
) -> LocatedDump:
    """The dump on the image; the result keeps the image open (shared flock) until closed."""
    path = os.fspath(image)
    disk = DiskImage(path, block_size, lock=lock)
    try:
        located = _locate(disk, path, number, partition, directory, verify_checksum)
    except BaseException:
        disk.close()
        raise
    located.disk = disk
    return located


# No dump partition here: look for dump.N files instead.
_NOT_A_DUMP_DISK = (Code.BLOCK0_MAGIC, Code.BOOT_INFO_EMPTY, Code.BOOT_INFO_MAGIC, Code.BOOT_INFO_IPL, Code.BOOT_INFO_BP_TYPE)


def _locate(disk: DiskImage, path: str, number: int | None, partition: int | None, directory: str, verify: bool) -> LocatedDump:
    dp = read_dump_partition(disk)
    if dp.has(Code.DISK_TOO_SMALL):
        raise DiskError(f"image has only {disk.size} bytes", where=path)
    if dp.has(*_NOT_A_DUMP_DISK):
        return _locate_fs(path, disk.block_size, number, partition, directory)
    if (f := dp.get(Code.BOOT_INFO_DEV_TYPE)) is not None:
        at = (f.place.offset or 0) + (f.place.field_offset or 0)
        raise DumpError(
            f"boot_info dev_type {f.values['dev_type']} is not SCSI (2)",
            where=Place(disk=path, lba=0, offset=at, fields=f.place.fields, form=Form.BLOCK0),
        )
    if number is not None:
        raise UsageError("--number applies to file system dumps; this disk has a dump partition", where="--number")
    return _locate_partition(disk, path, dp, verify)


def _locate_partition(disk: DiskImage, path: str, dp: DumpPartition, verify: bool) -> LocatedDump:
    """Locate's policy over zipldump.zipl.dumppart's findings: the superblock must be
    readable and its partition inside the disk, the checksum right unless not
    verifying (--force); nothing else is judged.  Its errors name the image, and a
    busy marker or an empty dump area is no dump to read."""
    assert dp.boot_info is not None
    sb_off = dp.boot_info.dump_sb_offset
    where_sb = Place(disk=path, byte=sb_off, structure="dump superblock", via=f"block 0 offset {DUMP_SB_OFFSET_AT:#x}", form=Form.SUPERBLOCK)
    for code, cls in ((Code.SUPERBLOCK_OUTSIDE_DISK, PointerError), (Code.SUPERBLOCK_MAGIC, MagicError)):
        if (f := dp.get(code)) is not None:
            raise cls(f.message, where=where_sb)
    sb = dp.superblock
    assert sb is not None
    dump_start = sb.part_start + sb.dump_offset
    if dp.has(Code.PARTITION_OUTSIDE_DISK, Code.DUMP_START_OUTSIDE_PARTITION):
        raise PointerError(
            f"partition 0x{sb.part_start:x}+0x{sb.part_size:x} (dump at 0x{dump_start:x}) lies outside the disk ({disk.size} bytes)",
            where=where_sb,
        )
    csum_at = sb.part_start + sb.csum_offset
    if verify and dp.has(Code.CHECKSUM_RANGE_OUTSIDE_DISK):
        raise PointerError(f"checksummed range 0x{csum_at:x}+{sb.csum_size} lies outside the disk", where=where_sb)
    if verify and dp.has(Code.CHECKSUM_MISMATCH):
        raise DumpTargetChangedError(
            f"checksum over {sb.csum_size} bytes at 0x{csum_at:x} is 0x{dp.checksum:08x}, the superblock says 0x{sb.csum:08x}: "
            "the partition changed after the dump was written",
            where=where_sb.with_field("csum"),
        )

    def recheck() -> None:
        # The same superblock has the same checksummed range, which was inside the disk when verified.
        now_sb = reader.read_superblock(disk, sb_off)
        if now_sb != sb or (verify and reader.superblock_checksum(disk, sb) != sb.csum):
            raise DumpChangedError(
                "the dump partition's superblock or checksum changed while the dump was read: the copy may mix two dumps",
                where=where_sb.with_field("csum"),
            )

    length = min(sb.dump_size, sb.part_size - sb.dump_offset)
    head = disk.read_at(dump_start, min(len(BUSY_MARKER), length))
    at_start = Place(disk=path, byte=dump_start, form=Form.BYTE)
    if head == BUSY_MARKER[: len(head)] and len(head) == len(BUSY_MARKER):
        raise IncompleteDumpError("the dump writer did not finish ('zfcpdump busy' at the dump start)", where=at_start)
    if not any(disk.read_at(dump_start, min(4096, length))):
        raise DumpError("no dump on the dump partition (its first 4 KiB are zero)", where=at_start)
    src = FileSource(path, dump_start, length, name=f"{path} dump partition at byte 0x{dump_start:x}")
    return LocatedDump("partition", src, src.name, partition=dp.partition, superblock=sb, recheck=recheck)


def _dump_file(fs: ExtFs, path: str, part: int, d: str, n: int, found: list[int]) -> LocatedDump:
    fs_path = (d.rstrip("/") + f"/dump.{n}") if d != "/" else f"/dump.{n}"
    size = fs.file_size(fs_path)
    blocks = fs.block_map(fs_path)
    name = f"{path} partition {part} {fs_path}"
    src = ExtFileSource(path, fs.offset, fs.block_size, blocks, size, name)

    def recheck() -> None:
        if not fs.exists(fs_path) or fs.file_size(fs_path) != size or fs.block_map(fs_path) != blocks:
            raise DumpChangedError(f"{fs_path} was deleted or rewritten while it was read: the copy may mix two dumps", where=name)

    return LocatedDump("filesystem", src, name, partition=part, fs_path=fs_path, number=n, available=found, recheck=recheck)


def _incomplete(source: ByteSource) -> str | None:
    """Why the dump in `source` is not complete, or None when it is."""
    try:
        with open_dump_any(source) as dump:  # s390 or ELF (zfcpdump v3), as the first bytes say
            return None if dump.complete else dump.info.incomplete_reason
    except ZiplDumpError as exc:
        return exc.message


def _locate_fs(path: str, block_size: int, number: int | None, partition: int | None, directory: str) -> LocatedDump:
    from zipldump.disk.partitions import read_partition_table

    try:
        table = read_partition_table(path, block_size)
    except DiskError as exc:
        raise DumpError(f"no dump partition (no zipl dump boot_info in block 0) and no partition table: {exc.message}", where=path) from exc
    parts = [table.get(partition)] if partition is not None else table.partitions
    candidates = [p for p in parts if p.fs_type in ("ext2", "ext3", "ext4")]
    if not candidates:
        what = f"partition {partition}" if partition is not None else "any partition"
        raise DumpError(f"no zipl dump boot_info in block 0 and no ext2/3/4 file system on {what}", where=path)
    searched: list[str] = []
    for p in candidates:
        fs = ExtFs(path, p.start_bytes, p.size_bytes)
        d = directory.rstrip("/") or "/"
        if not fs.exists(d):
            searched.append(f"partition {p.number}: no directory {d}")
            continue
        names = [n if isinstance(n, str) else getattr(n, "name", str(n)) for n in fs.listdir(d)]
        found = sorted(int(m.group(1)) for n in names if (m := DUMP_NAME.match(n)))
        if not found:
            searched.append(f"partition {p.number}: no dump.N in {d}")
            continue
        if number is not None and number not in found:
            raise DumpError(
                f"no dump.{number} in {d} (found: {', '.join(f'dump.{x}' for x in found)})", where=f"{path} partition {p.number}"
            )
        # Without --number: the newest complete dump; an interrupted newer one (a dump
        # that died, even a 0-byte file) is named, not allowed to hide the older ones.
        if number is not None:
            return _dump_file(fs, path, p.number, d, number, found)
        notes: list[str] = []
        for n in sorted(found, reverse=True):
            located = _dump_file(fs, path, p.number, d, n, found)
            reason = _incomplete(located.source)
            if reason is None:
                located.notes = notes
                return located
            located.close()
            notes.append(f"dump.{n} is not complete ({reason})")
        located = _dump_file(fs, path, p.number, d, found[-1], found)  # none is complete: the newest, reported as such
        located.notes = notes[1:]
        return located
    raise DumpError("no dump found (" + "; ".join(searched) + ")", where=path)
