"""Partition tables: make them with exact geometry (pyparted) and read them back.

`make_disk` builds a sparse image with an msdos or GPT label whose partitions
start at 1 MiB and follow each other on 1 MiB boundaries, optionally with an
ext2/3/4 file system in each (through extfs.py).  Block size 4096 gives the
table of a 4Kn disk: every LBA field counts 4096-byte sectors and the GPT header
sits at byte 4096.  libparted only knows 512-byte sectors for plain files, so a
4Kn table is built on a scratch file with the same NUMBER of 512-byte sectors and
its metadata structures are moved to the same LBAs of the 4096-byte disk (the
LBA values and CRCs stay valid because no field changes).  See docs/disk-images.md.

`read_partition_table` is a strict reader of its own (MBR with EBR chains, GPT
with CRC checks) that works the same for 512 and 4096-byte sectors and names the
place of any problem.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
import zlib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from construct import Array, Bytes, Const, Int8ul, Int32ul, Int64ul, Struct

from zipldump.disk.extfs import EXT_SB_OFFSET, has_ext_magic
from zipldump.disk.image import DiskImage
from zipldump.disk.io import check_output
from zipldump.errors import DiskError, PointerError, UsageError

MIB = 1 << 20
ALIGN = MIB  # every partition starts on a 1 MiB boundary
LABELS = ("msdos", "gpt")
FS_TYPES = ("ext2", "ext3", "ext4")
MSDOS_MAX_PRIMARY = 4
_EXTENDED_TYPES = (0x05, 0x0F, 0x85)
_MAX_LOGICAL = 128  # bound for walking an EBR chain
GPT_MAX_ENTRY_SIZE = 4096  # UEFI allows 128 * 2^n; no real table uses more than 128
GPT_MAX_ARRAY = 8 << 20  # bound on the GPT entry array read into memory (65536 x 128 bytes)
GPT_LINUX_DATA = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")

# --- on-disk structures (little-endian; MBR and GPT are not zipl formats) ------
MbrEntry = Struct(
    "status" / Int8ul,
    "chs_first" / Bytes(3),
    "type" / Int8ul,
    "chs_last" / Bytes(3),
    "lba_first" / Int32ul,
    "sectors" / Int32ul,
)
Mbr = Struct(
    "bootcode" / Bytes(440),
    "disk_signature" / Int32ul,
    "reserved" / Bytes(2),
    "entries" / Array(4, MbrEntry),
    "signature" / Bytes(2),  # 55 AA
)
assert Mbr.sizeof() == 512

GptHeader = Struct(
    "signature" / Const(b"EFI PART"),
    "revision" / Int32ul,
    "header_size" / Int32ul,
    "header_crc32" / Int32ul,
    "reserved" / Int32ul,
    "my_lba" / Int64ul,
    "alternate_lba" / Int64ul,
    "first_usable_lba" / Int64ul,
    "last_usable_lba" / Int64ul,
    "disk_guid" / Bytes(16),
    "entries_lba" / Int64ul,
    "num_entries" / Int32ul,
    "entry_size" / Int32ul,
    "entries_crc32" / Int32ul,
)
GPT_HEADER_SIZE = GptHeader.sizeof()  # 92
GptEntry = Struct(
    "type_guid" / Bytes(16),
    "unique_guid" / Bytes(16),
    "first_lba" / Int64ul,
    "last_lba" / Int64ul,
    "attributes" / Int64ul,
    "name" / Bytes(72),  # UTF-16LE
)
assert GptEntry.sizeof() == 128


# --- sizes -------------------------------------------------------------------
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


MAX_SIZE = (1 << 64) - 1  # no size zipldump handles is larger than a 64-bit byte count


def parse_size(text: str) -> int:
    """'32M' -> 33554432.  The one size syntax of the CLI (README): ASCII decimal
    digits with an optional binary unit K, M, G or T (optionally 'KiB'/'KB'), a
    bare number is bytes, '0x2000000' is hexadecimal bytes; no blanks, no other
    digits, at most 2**64 - 1."""
    text = str(text)
    m = re.fullmatch(r"0x([0-9a-f]{1,16})", text, re.IGNORECASE | re.ASCII)
    if m:
        return int(m.group(1), 16)
    m = re.fullmatch(r"([0-9]{1,20})([KMGT]?)(?:i?B)?", text, re.IGNORECASE | re.ASCII)
    if not m:
        raise UsageError(f"bad size {text!r} (use a number of bytes, 0x hex bytes, or a number with K, M, G or T)", where="size")
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value > MAX_SIZE:
        raise UsageError(f"size {text!r} is larger than 2**64 - 1 bytes", where="size")
    return value


@dataclass(frozen=True)
class PartSpec:
    """One requested partition: `size_bytes=None` takes the rest of the disk (last one only)."""

    size_bytes: int | None
    fs: str | None = None

    @classmethod
    def parse(cls, text: str) -> PartSpec:
        """'SIZE[:FS]' where SIZE is a size or 'rest'; FS is ext2, ext3 or ext4."""
        fs: str | None
        size_text, _, fs = text.partition(":")
        fs = fs.strip().lower() or None
        if fs is not None and fs not in FS_TYPES:
            raise UsageError(f"unknown file system {fs!r} (use one of {', '.join(FS_TYPES)})", where=f"--part {text}")
        if size_text.strip().lower() == "rest":
            return cls(None, fs)
        return cls(parse_size(size_text), fs)


# --- the table -----------------------------------------------------------------
class BlockExtent:
    """Byte view of a run of device blocks (`start`, `length`, `block_size` from the subclass)."""

    start: int
    length: int
    block_size: int

    @property
    def start_bytes(self) -> int:
        return self.start * self.block_size

    @property
    def size_bytes(self) -> int:
        return self.length * self.block_size


@dataclass(frozen=True)
class Partition(BlockExtent):
    """`start` and `length` count device blocks of `block_size` bytes."""

    number: int
    start: int
    length: int
    block_size: int
    kind: str  # "primary", "logical" (msdos) or "gpt"
    fs_type: str | None = None  # ext2/ext3/ext4 when a superblock is found
    type_id: str = ""  # msdos system id ("0x83") or GPT type GUID
    name: str = ""  # GPT partition name
    uuid: str = ""  # GPT unique partition GUID (fstab's PARTUUID=)

    @property
    def end(self) -> int:
        """Last block (inclusive)."""
        return self.start + self.length - 1

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "start": self.start,
            "length": self.length,
            "end": self.end,
            "block_size": self.block_size,
            "start_bytes": self.start_bytes,
            "size_bytes": self.size_bytes,
            "kind": self.kind,
            "type": self.type_id,
            "name": self.name,
            "fs": self.fs_type,
        }


@dataclass
class PartitionTable:
    label: str
    block_size: int
    disk_size: int
    partitions: list[Partition]
    disk_id: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def nblocks(self) -> int:
        return self.disk_size // self.block_size

    def get(self, number: int) -> Partition:
        for part in self.partitions:
            if part.number == number:
                return part
        have = ", ".join(str(p.number) for p in self.partitions) or "none"
        raise DiskError(f"no partition {number} in the {self.label} table (partitions: {have})", where=f"partition {number}")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "block_size": self.block_size,
            "disk_size": self.disk_size,
            "blocks": self.nblocks,
            "disk_id": self.disk_id,
            "partitions": [p.to_json() for p in self.partitions],
            "warnings": self.warnings,
        }


# --- reading -------------------------------------------------------------------
def read_partition_table(path: str | os.PathLike[str] | DiskImage, block_size: int = 512) -> PartitionTable:
    """Read the msdos or GPT table of an image or device.

    `path` may be an open DiskImage (its block size is used then).  DiskError
    with the place named when there is no table, it is damaged, or a partition
    lies outside the disk.
    """
    if isinstance(path, DiskImage):
        return _read_table(path)
    # No lock: the caller (an installer) may already hold this image open for writing.
    with DiskImage(path, block_size, lock=False) as disk:
        return _read_table(disk)


def _read(disk: DiskImage, offset: int, length: int, what: str) -> bytes:
    try:
        return disk.read_at(offset, length)
    except PointerError as exc:
        raise DiskError(
            f"image is truncated: {what} at byte {offset:#x} (+{length}) lies past its end ({disk.size} bytes)",
            where=f"LBA {offset // disk.block_size:#x}",
        ) from exc


def _read_table(disk: DiskImage) -> PartitionTable:
    bs = disk.block_size
    if disk.size < bs:
        raise DiskError(f"image is truncated: {disk.size} bytes, less than one {bs}-byte block", where=disk.path)
    mbr = Mbr.parse(_read(disk, 0, 512, "MBR"))
    if mbr.signature != b"\x55\xaa":
        raise DiskError(
            f"no partition table: no MBR signature 55AA at byte 0x1fe (found {mbr.signature.hex().upper()})",
            where=f"{disk.path} LBA 0 offset 0x1fe",
        )
    if any(e.type == 0xEE for e in mbr.entries):
        return _read_gpt(disk, mbr)
    return _read_msdos(disk, mbr)


def _check_inside(disk: DiskImage, number: int, start: int, length: int, where: str) -> None:
    if length == 0:
        raise DiskError(f"partition {number} has length 0", where=where)
    if start == 0:
        raise DiskError(f"partition {number} starts at LBA 0, on the partition table itself", where=where)
    if start + length > disk.nblocks:
        hint = ""
        if disk.block_size == 512 and start * 8 < disk.nblocks:
            hint = " (the disk may use 4096-byte sectors: try block size 4096)"
        raise DiskError(
            f"partition {number} (blocks {start}..{start + length - 1}) ends past the end of the disk "
            f"({disk.nblocks} blocks of {disk.block_size}){hint}",
            where=where,
        )


def _read_msdos(disk: DiskImage, mbr: Any) -> PartitionTable:
    parts: list[Partition] = []
    extended: tuple[int, int] | None = None
    for i, e in enumerate(mbr.entries):
        if e.type == 0 or e.sectors == 0:
            continue
        where = f"LBA 0 offset {0x1BE + 16 * i:#x} (MBR entry {i + 1})"
        _check_inside(disk, i + 1, e.lba_first, e.sectors, where)
        if e.type in _EXTENDED_TYPES:
            if extended is not None:
                raise DiskError("two extended partitions in the MBR", where=where)
            extended = (e.lba_first, e.sectors)
            continue
        parts.append(_partition(disk, i + 1, e.lba_first, e.sectors, "primary", f"0x{e.type:02x}"))
    if extended is not None:
        parts.extend(_read_logical(disk, *extended))
    _check_overlaps(parts)
    return PartitionTable("msdos", disk.block_size, disk.size, parts, disk_id=f"0x{mbr.disk_signature:08x}")


def _read_logical(disk: DiskImage, ext_start: int, ext_len: int) -> list[Partition]:
    """Walk the EBR chain: entry 1 is the logical partition relative to its EBR, entry 2 the next EBR relative to the extended partition."""
    out: list[Partition] = []
    seen: set[int] = set()
    ebr_lba = ext_start
    number = 5
    while True:
        if ebr_lba in seen or len(seen) >= _MAX_LOGICAL:
            raise DiskError("EBR chain loops or is too long", where=f"EBR at LBA {ebr_lba:#x}")
        seen.add(ebr_lba)
        ebr = Mbr.parse(_read(disk, ebr_lba * disk.block_size, 512, "extended boot record"))
        where = f"EBR at LBA {ebr_lba:#x}"
        if ebr.signature != b"\x55\xaa":
            raise DiskError("extended boot record without signature 55AA", where=where)
        first, nxt = ebr.entries[0], ebr.entries[1]
        if first.type != 0 and first.sectors != 0:
            if first.lba_first == 0:
                raise DiskError(f"logical partition {number} starts on its own EBR (relative start 0)", where=f"{where} entry 1")
            start = ebr_lba + first.lba_first
            if not (ext_start <= start and start + first.sectors <= ext_start + ext_len):
                raise DiskError(f"logical partition {number} lies outside its extended partition", where=where)
            _check_inside(disk, number, start, first.sectors, where)
            out.append(_partition(disk, number, start, first.sectors, "logical", f"0x{first.type:02x}"))
            number += 1
        if nxt.type == 0 or nxt.sectors == 0:
            return out
        ebr_lba = ext_start + nxt.lba_first
        if ebr_lba >= ext_start + ext_len:
            raise DiskError("next EBR lies outside the extended partition", where=where)


def _read_gpt(disk: DiskImage, mbr: Any) -> PartitionTable:
    bs = disk.block_size
    warnings: list[str] = []
    try:
        header, entries = _read_gpt_copy(disk, 1)
    except DiskError as primary_error:
        backup_lba = disk.nblocks - 1
        other = 4096 if bs == 512 else 512
        try:
            header, entries = _read_gpt_copy(disk, backup_lba)
        except DiskError:
            hint = ""
            if disk.size >= other * 2:
                raw = disk.read_at(other, 8)
                if raw == b"EFI PART":
                    hint = f"; there is a GPT header at byte {other}: the disk uses {other}-byte sectors"
            raise DiskError(f"{primary_error.message}{hint}", where=primary_error.where) from None
        warnings.append(f"primary GPT header unusable ({primary_error}); read the backup at LBA {backup_lba}")
    parts: list[Partition] = []
    for i, e in enumerate(entries):
        if e.type_guid == bytes(16):
            continue
        where = f"GPT entry {i + 1} at LBA {header.entries_lba + (i * header.entry_size) // bs:#x}"
        if e.last_lba < e.first_lba:
            raise DiskError(f"partition {i + 1} ends (LBA {e.last_lba}) before it starts (LBA {e.first_lba})", where=where)
        if e.first_lba < header.first_usable_lba or e.last_lba > header.last_usable_lba:
            raise DiskError(
                f"partition {i + 1} (LBA {e.first_lba}..{e.last_lba}) lies outside the usable area "
                f"{header.first_usable_lba}..{header.last_usable_lba}",
                where=where,
            )
        length = e.last_lba - e.first_lba + 1
        _check_inside(disk, i + 1, e.first_lba, length, where)
        name = e.name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        parts.append(_partition(disk, i + 1, e.first_lba, length, "gpt", str(uuid.UUID(bytes_le=e.type_guid)), name,
                                str(uuid.UUID(bytes_le=e.unique_guid))))
    _check_overlaps(parts)
    return PartitionTable("gpt", bs, disk.size, parts, disk_id=str(uuid.UUID(bytes_le=header.disk_guid)), warnings=warnings)


def _read_gpt_copy(disk: DiskImage, lba: int) -> tuple[Any, list[Any]]:
    bs = disk.block_size
    where = f"GPT header at LBA {lba:#x}"
    raw = _read(disk, lba * bs, bs, "GPT header")
    if raw[:8] != b"EFI PART":
        raise DiskError(f"protective MBR but no GPT header (signature 'EFI PART') at LBA {lba} (byte {lba * bs})", where=where)
    header = GptHeader.parse(raw)
    if not GPT_HEADER_SIZE <= header.header_size <= bs:
        raise DiskError(f"GPT header size {header.header_size} is not in {GPT_HEADER_SIZE}..{bs}", where=where)
    check = bytearray(raw[: header.header_size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != header.header_crc32:
        raise DiskError(f"GPT header CRC32 mismatch (stored {header.header_crc32:#010x}, computed {zlib.crc32(check):#010x})", where=where)
    if header.my_lba != lba:
        raise DiskError(f"GPT header says it is at LBA {header.my_lba}, read from LBA {lba}", where=where)
    if header.entry_size < 128 or header.entry_size % 8 or header.entry_size > GPT_MAX_ENTRY_SIZE or header.num_entries > 65536:
        raise DiskError(f"implausible GPT entry array ({header.num_entries} entries of {header.entry_size} bytes)", where=where)
    array_len = header.num_entries * header.entry_size
    if array_len > GPT_MAX_ARRAY:
        raise DiskError(
            f"GPT entry array of {header.num_entries} entries of {header.entry_size} bytes ({array_len} bytes) "
            f"exceeds the {GPT_MAX_ARRAY}-byte bound",
            where=where,
        )
    if header.entries_lba in (0, lba) or header.entries_lba * bs + array_len > disk.size:
        raise DiskError(
            f"GPT entry array at LBA {header.entries_lba} (+{array_len} bytes) overlaps block 0 or the header, "
            f"or ends past the disk ({disk.size} bytes)",
            where=f"{where} field entries_lba",
        )
    array = _read(disk, header.entries_lba * bs, array_len, "GPT entry array")
    if zlib.crc32(array) != header.entries_crc32:
        raise DiskError("GPT entry array CRC32 mismatch", where=f"GPT entries at LBA {header.entries_lba:#x}")
    entries = [GptEntry.parse(array[i : i + 128]) for i in range(0, array_len, header.entry_size)]
    return header, entries


def _check_overlaps(parts: list[Partition]) -> None:
    ordered = sorted(parts, key=lambda p: p.start)
    for a, b in pairwise(ordered):
        if b.start <= a.end:
            raise DiskError(f"partitions {a.number} and {b.number} overlap", where=f"partition {b.number} LBA {b.start:#x}")


def _partition(
    disk: DiskImage, number: int, start: int, length: int, kind: str, type_id: str, name: str = "", part_uuid: str = ""
) -> Partition:
    fs = _probe_fs(disk, start * disk.block_size, length * disk.block_size)
    return Partition(number, start, length, disk.block_size, kind, fs, type_id, name, part_uuid)


# ext2/3/4 superblock: at byte 1024; s_magic at +0x38; feature words at +0x5C/+0x60/+0x64
_EXT4_INCOMPAT = 0x0040 | 0x0080 | 0x0200 | 0x0400  # extents, 64bit, flex_bg, csum_seed-era features
_EXT4_RO_COMPAT = 0x0008 | 0x0020 | 0x0040 | 0x0400  # huge_file, dir_nlink, extra_isize, metadata_csum


def _probe_fs(disk: DiskImage, offset: int, size: int) -> str | None:
    if size < 2048:
        return None
    sb = disk.read_at(offset + EXT_SB_OFFSET, 0x68)
    if not has_ext_magic(sb):
        return None
    compat, incompat, ro_compat = (int.from_bytes(sb[o : o + 4], "little") for o in (0x5C, 0x60, 0x64))
    if incompat & _EXT4_INCOMPAT or ro_compat & _EXT4_RO_COMPAT:
        return "ext4"
    if compat & 0x0004:  # has_journal
        return "ext3"
    return "ext2"


# --- making --------------------------------------------------------------------
def plan_partitions(size_bytes: int, label: str, block_size: int, parts: list[PartSpec]) -> list[tuple[int, int]]:
    """(start, length) in blocks for each PartSpec: first at 1 MiB, each next at the next 1 MiB boundary."""
    if label not in LABELS:
        raise UsageError(f"unknown label {label!r} (use msdos or gpt)", where="--label")
    if block_size not in (512, 4096):
        raise UsageError(f"block size {block_size} not supported (use 512 or 4096)", where="--block-size")
    if size_bytes % block_size:
        raise UsageError(f"disk size {size_bytes} is not a multiple of the block size {block_size}", where="--size")
    nblocks = size_bytes // block_size
    if label == "msdos":
        if len(parts) > MSDOS_MAX_PRIMARY:
            raise UsageError(f"an msdos table made here holds at most {MSDOS_MAX_PRIMARY} primary partitions; use --label gpt", where="--part")
        last_usable = min(nblocks, 1 << 32) - 1  # 32-bit LBA fields
    else:
        # libparted's GPT: 128 entries of 128 bytes, sized in 512-byte sectors (32 + header); see module docstring.
        last_usable = nblocks - 1 - 33  # backup header (1) and entry array (32) at the end
    out: list[tuple[int, int]] = []
    next_byte = ALIGN
    for i, spec in enumerate(parts):
        where = f"--part {i + 1}"
        start = -(-next_byte // block_size)
        if spec.size_bytes is None:
            if i != len(parts) - 1:
                raise UsageError("only the last partition may be 'rest'", where=where)
            length = last_usable - start + 1
            if length <= 0:
                raise UsageError(f"no room left for partition {i + 1}", where=where)
        else:
            if spec.size_bytes <= 0 or spec.size_bytes % block_size:
                raise UsageError(f"partition size {spec.size_bytes} is not a positive multiple of the block size {block_size}", where=where)
            length = spec.size_bytes // block_size
        if start + length - 1 > last_usable:
            raise UsageError(
                f"partition {i + 1} (blocks {start}..{start + length - 1}) does not fit: the last usable block of a "
                f"{size_bytes}-byte {label} disk with {block_size}-byte blocks is {last_usable}",
                where=where,
            )
        if label == "msdos" and length >= 1 << 32:
            raise UsageError(f"partition {i + 1} has {length} blocks, more than an msdos entry can hold", where=where)
        out.append((start, length))
        next_byte = -(-((start + length) * block_size) // ALIGN) * ALIGN
    return out


def make_disk(
    path: str | os.PathLike[str],
    size_bytes: int,
    *,
    label: str = "msdos",
    block_size: int = 512,
    parts: list[PartSpec] | None = None,
    overwrite: bool = False,
    fs_options: dict[str, Any] | None = None,
) -> PartitionTable:
    """Make a sparse image with an exact table and the requested file systems.

    The image is built under a temporary name and renamed into place at the end,
    so a failure leaves no half-made image.  Returns the table as read back by
    `read_partition_table` (and checks it matches what was asked).
    """
    parts = list(parts or [])
    geometry = plan_partitions(size_bytes, label, block_size, parts)
    target = Path(path)
    if os.path.lexists(target):
        if not overwrite:
            raise UsageError(f"{target} exists (remove it or ask to overwrite)", where=str(target))
        check_output(target, overwrite=True, what=str(target))  # a symlink, device or FIFO is never replaced
    nblocks = size_bytes // block_size
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.truncate(size_bytes)  # sparse
        _write_table(tmp, nblocks, block_size, label, geometry, parts)
        for (start, length), spec in zip(geometry, parts, strict=True):
            if spec.fs:
                from zipldump.disk.extfs import (
                    ExtFs,  # extfs imports nothing from here at module level
                )

                ExtFs.create(tmp, start * block_size, length * block_size, fstype=spec.fs, **(fs_options or {}))
        table = read_partition_table(tmp, block_size)
        got = [(p.start, p.length) for p in table.partitions]
        if got != geometry or table.label != label:
            raise DiskError(f"table read back ({table.label} {got}) differs from the plan ({label} {geometry})", where=str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if os.path.lexists(target):
            check_output(target, overwrite=True, what=str(target))  # still a regular file
            # Do not replace an image another zipldump process is using.
            with DiskImage(target, block_size if target.stat().st_size >= block_size else 512, writable=True):
                os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        raise DiskError(f"cannot make the image: {exc.strerror}", where=str(exc.filename or target)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return read_partition_table(target, block_size)


def _write_table(image: Path, nblocks: int, block_size: int, label: str, geometry: list[tuple[int, int]], parts: list[PartSpec]) -> None:
    """Build the table with libparted on a scratch file of `nblocks` 512-byte sectors, then copy its structures to the same LBAs of the image."""
    import parted  # imported here: only making a disk needs libparted

    with tempfile.TemporaryDirectory(prefix="zipldump-parted-") as d:
        scratch = os.path.join(d, "scratch.img")
        with open(scratch, "wb") as fh:
            fh.truncate(nblocks * 512)
        device = parted.getDevice(scratch)
        try:
            disk = parted.freshDisk(device, label)
            for (start, length), spec in zip(geometry, parts, strict=True):
                geom = parted.Geometry(device=device, start=start, length=length)
                fs = parted.FileSystem(type=spec.fs, geometry=geom) if spec.fs else None
                part = parted.Partition(disk=disk, type=parted.PARTITION_NORMAL, fs=fs, geometry=geom)
                disk.addPartition(part, constraint=parted.Constraint(exactGeom=geom))
            disk.commitToDevice()
        except Exception as exc:  # pyparted raises several unrelated classes
            if type(exc).__module__.startswith(("parted", "_ped")):
                raise DiskError(f"libparted refused the table: {exc}", where=str(image)) from exc
            raise
        finally:
            device.removeFromCache()
        with open(scratch, "rb") as src, open(image, "rb+") as dst:
            for sector, nbytes in _metadata_regions(src, label):
                src.seek(sector * 512)
                data = src.read(nbytes)
                dst.seek(sector * block_size)
                dst.write(data)


def _metadata_regions(src: Any, label: str) -> list[tuple[int, int]]:
    """(512-byte sector of the scratch file, byte length) of every structure libparted wrote."""
    regions = [(0, 512)]  # MBR or protective MBR
    if label == "gpt":
        src.seek(512)
        primary = GptHeader.parse(src.read(512))
        src.seek(primary.alternate_lba * 512)
        backup = GptHeader.parse(src.read(512))
        for lba, header in ((1, primary), (primary.alternate_lba, backup)):
            regions.append((lba, 512))
            regions.append((header.entries_lba, header.num_entries * header.entry_size))
    return regions
