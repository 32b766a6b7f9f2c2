"""Strict reader of the zipl SCSI bootmap chain (spec zipl-scsi-format.md §2-§7).

Boot record (block 0) -> program table -> component tables -> block lists ->
component data.  Shared by `inspect` and the simulator's firmware model, so it
holds no policy: it parses, checks what makes a structure unreadable or
ambiguous (magic, pointers outside the disk, size fields, chain loops, missing
EXECUTE), and raises a FormatError subclass whose `place` (errors.Place)
names the block, byte offset and field and whose `reason` (errors.Reason) names
the rule, so callers never read meaning back from the text.  Offsets in places
come from the formats/ declarations.  Judgements about the content (version
numbers, HSA, overlaps, superblock) belong to the callers.

The dump superblock is read here too (`read_superblock`, `superblock_checksum`);
judging a dump partition (boot_info -> superblock -> disk and partition table)
is zipl/dumppart.py's, once for inspect, the dump writer and the dump locator.

Strictness limits (spec Appendix B, reader item 8): nothing here reads the
bytes zipl leaves unwritten: program-table block after byte 511, the tail of
the last data block of a component, the superblock block after byte 71.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from zipldump.errors import (
    BlockListLoopError,
    ComponentError,
    Form,
    MagicError,
    Place,
    PointerError,
    Reason,
)
from zipldump.formats.blocklist import data_slots_per_block, parse_list_block
from zipldump.formats.blockptr import BLOCKPTR_SIZE, BlockPtr
from zipldump.formats.bootrecord import (
    BOOT_INFO_OFFSET,
    BOOT_RECORD_SIZE,
    ZIPL_MAGIC,
    BootInfo,
    BootRecord,
)
from zipldump.formats.component_table import (
    COMPONENT_ENTRY_SIZE,
    COMPONENT_HEADER_SIZE,
    HEADER_DUMP,
    TYPE_EXECUTE,
    TYPE_LOAD,
    TYPE_NAMES,
    TYPE_SIGNATURE,
    ComponentEntry,
    ComponentHeader,
)
from zipldump.formats.dump_superblock import (
    SB_MAGIC,
    SB_SEED,
    SUPERBLOCK_SIZE,
    DumpSuperblock,
    cksm,
)
from zipldump.formats.program_table import PROGRAM_TABLE_ENTRIES, PROGRAM_TABLE_SIZE, ProgramTable

# The reader returns formats/'s records; callers name them through this module.
__all__ = ["BootInfo", "BootRecord", "ComponentEntry", "ComponentTable", "DumpSuperblock", "ProgramTable", "Superblock"]
Superblock = DumpSuperblock  # the name zipl/check.py annotates with

CHUNK = 1 << 20  # streaming unit for component data

# Offsets inside the structures, from their declarations.
PROGRAM_TABLE_AT = BootRecord.offset_of("program_table")
ENTRIES_AT = ProgramTable.offset_of("entries")
HEADER_TYPE_AT = ComponentHeader.offset_of("type")
ENTRY_TYPE_AT = ComponentEntry.offset_of("type")
DUMP_SB_OFFSET_AT = BOOT_INFO_OFFSET + BootInfo.offset_of("dump_sb_offset")
assert BOOT_INFO_OFFSET == BootRecord.offset_of("boot_info")


class Disk(Protocol):
    """What the reader needs from zipldump.disk.image.DiskImage."""

    block_size: int
    nblocks: int
    size: int

    def read_block(self, lba: int, count: int = 1) -> bytes: ...
    def read_at(self, offset: int, length: int) -> bytes: ...
    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int: ...


def place(lba: int, offset: int | None = None, what: str | None = None, fld: str | None = None, *, index: int | None = None) -> Place:
    """Place(...) rendered 'block 0x7fb offset 0x20 (component entry 0) field type'."""
    return Place(lba=lba, offset=offset, structure=what, index=index, fields=(fld,) if fld else ())


def program_table_entry(lba: int, index: int) -> Place:
    return place(lba, ENTRIES_AT + BLOCKPTR_SIZE * index, "program table entry", index=index)


def list_slot(lba: int, slot: int) -> Place:
    return place(lba, slot * BLOCKPTR_SIZE, "block list slot", index=slot)


# --- pointers -------------------------------------------------------------------
def check_pointer(disk: Disk, ptr: BlockPtr, where: Place, *, metadata: bool, reason: Reason) -> None:
    """A non-null pointer must lie inside the disk and carry the device block size.

    Metadata pointers (program table, component table, list blocks, chain slots)
    always cover one block: zipl writes them as {lba, bs, 0}, and QEMU
    recognises a 512-byte chain slot only with blockct 0 (spec §6.3).
    """
    bs = disk.block_size
    if ptr.size != bs:
        raise PointerError(
            f"pointer size field is {ptr.size}, the device block size is {bs}", where=where.with_field("size"), reason=reason
        )
    if metadata and ptr.blockct != 0:
        raise PointerError(
            f"pointer to a single metadata block has blockct {ptr.blockct} (zipl writes 0)",
            where=where.with_field("blockct"),
            reason=reason,
        )
    last = ptr.blockno + ptr.blockct
    if ptr.blockno >= disk.nblocks or last >= disk.nblocks:
        raise PointerError(
            f"pointer to blocks {ptr.blockno:#x}..{last:#x} is past the end of the disk "
            f"({disk.nblocks:#x} blocks of {bs} bytes)",
            where=where.with_field("blockno"),
            reason=reason,
        )


def _read_meta_block(disk: Disk, lba: int, what: str, reason: Reason) -> bytes:
    if lba >= disk.nblocks:
        raise PointerError(
            f"{what} at block {lba:#x} is past the end of the disk ({disk.nblocks:#x} blocks)", where=place(lba), reason=reason
        )
    return disk.read_block(lba)


# --- boot record ------------------------------------------------------------------
def read_boot_record(disk: Disk) -> BootRecord:
    """Block 0: magic and program-table pointer.  version_id and boot_info are returned, not judged."""
    if disk.nblocks < 1:
        raise PointerError(
            f"the disk is {disk.size} bytes, smaller than one {disk.block_size}-byte block", where=place(0), reason=Reason.DISK_TOO_SMALL
        )
    block = disk.read_block(0)
    if block[:4] != ZIPL_MAGIC:
        raise MagicError(
            f"boot record magic is {block[:4].hex()}, expected 7a49504c ('zIPL'): not a zipl SCSI disk",
            where=place(0, BootRecord.offset_of("magic"), "boot record", "magic"),
            reason=Reason.BOOT_RECORD_MAGIC,
        )
    pc = disk.block_size >= 512 and block[510:512] == b"\x55\xaa"
    rec = BootRecord.parse(block, has_pc_label=pc)
    pt = rec.program_table
    if pt.is_null:
        raise PointerError(
            "no program table (pointer is zero)",
            where=place(0, PROGRAM_TABLE_AT, "boot record", "program_table.blockno"),
            reason=Reason.NO_PROGRAM_TABLE,
        )
    check_pointer(
        disk, pt, place(0, PROGRAM_TABLE_AT, "boot record", "program_table"), metadata=True, reason=Reason.BAD_PROGRAM_TABLE_POINTER
    )
    return rec


def parse_boot_info(block0: bytes) -> BootInfo:
    """boot_info (bytes 0x70-0x97 of block 0), not judged."""
    return BootInfo.parse(block0[BOOT_INFO_OFFSET:BOOT_RECORD_SIZE])


# --- program table -------------------------------------------------------------------
def read_program_table(disk: Disk, ptr: BlockPtr) -> ProgramTable:
    """Magic and the 31 entries (only bytes 0..511 are zipl's, spec §4)."""
    lba = ptr.blockno
    block = _read_meta_block(disk, lba, "program table", Reason.BAD_PROGRAM_TABLE_POINTER)
    if block[:4] != ZIPL_MAGIC:
        raise MagicError(
            f"program table magic is {block[:4].hex()}, expected 7a49504c ('zIPL')",
            where=place(lba, 0, "program table", "magic"),
            reason=Reason.PROGRAM_TABLE_MAGIC,
        )
    pt = ProgramTable.parse(block[:PROGRAM_TABLE_SIZE], lba=lba)
    entries = pt.entries
    for i, e in enumerate(entries):
        if not e.is_null:
            check_pointer(disk, e, program_table_entry(lba, i), metadata=True, reason=Reason.BAD_PROGRAM_TABLE_ENTRY)
    if not any(not e.is_null for e in entries):
        raise PointerError(
            "empty program table: no entry points at a component table",
            where=place(lba, ENTRIES_AT, "program table"),
            reason=Reason.EMPTY_PROGRAM_TABLE,
        )
    assert len(entries) == PROGRAM_TABLE_ENTRIES
    return pt


# --- component table -------------------------------------------------------------------
@dataclass(frozen=True)
class ComponentTable:
    lba: int
    header_type: int  # 0 IPL, 1 DUMP (others are returned for the caller to judge)
    entries: tuple[ComponentEntry, ...]  # LOAD/SIGNATURE entries, then the EXECUTE entry

    @property
    def execute(self) -> ComponentEntry | None:
        return self.entries[-1] if self.entries and self.entries[-1].type == TYPE_EXECUTE else None

    def where(self, entry: ComponentEntry, fld: str | None = None) -> Place:
        return place(self.lba, entry.offset, "component entry", fld, index=entry.index)


def read_component_table(disk: Disk, ptr: BlockPtr, *, require_execute: bool = True) -> ComponentTable:
    """Header magic, then entries: LOAD/SIGNATURE until the first other type, which must be EXECUTE.

    With `require_execute=False` a table without EXECUTE is returned (its last
    entry is then not EXECUTE) so a caller can keep going and report it.
    """
    lba = ptr.blockno
    block = _read_meta_block(disk, lba, "component table", Reason.COMPONENT_TABLE_OUTSIDE_DISK)
    if block[:4] != ZIPL_MAGIC:
        raise MagicError(
            f"component table magic is {block[:4].hex()}, expected 7a49504c ('zIPL')",
            where=place(lba, 0, "component table", "magic"),
            reason=Reason.COMPONENT_TABLE_MAGIC,
        )
    header_type = ComponentHeader.parse(block).type
    entries: list[ComponentEntry] = []
    off = COMPONENT_HEADER_SIZE
    k = 0
    while off + COMPONENT_ENTRY_SIZE <= len(block):
        e = ComponentEntry.parse(block[off : off + COMPONENT_ENTRY_SIZE], index=k, offset=off)
        bl = e.blocklist
        entries.append(e)
        if e.type == TYPE_EXECUTE:
            return ComponentTable(lba, header_type, tuple(entries))
        if e.type not in (TYPE_LOAD, TYPE_SIGNATURE):
            if require_execute:
                raise ComponentError(
                    f"no EXECUTE entry: entry {k} has type {e.type:#04x} (expected 1 EXECUTE, 2 LOAD or 3 SIGNATURE)",
                    where=place(lba, off + ENTRY_TYPE_AT, "component entry", "type", index=k),
                    reason=Reason.NO_EXECUTE,
                )
            return ComponentTable(lba, header_type, tuple(entries))
        if not bl.is_null:
            check_pointer(
                disk, bl, place(lba, off, "component entry", "blocklist", index=k), metadata=True, reason=Reason.BAD_BLOCK_LIST_POINTER
            )
        else:
            raise PointerError(
                f"{TYPE_NAMES[e.type].upper()} entry has no block list (pointer is zero)",
                where=place(lba, off, "component entry", "blocklist.blockno", index=k),
                reason=Reason.NO_BLOCK_LIST,
            )
        off += COMPONENT_ENTRY_SIZE
        k += 1
    if require_execute:
        raise ComponentError(
            f"no EXECUTE entry: {k} LOAD/SIGNATURE entries fill the {len(block)}-byte block",
            where=place(lba, off, "component table", "type"),
            reason=Reason.NO_EXECUTE,
        )
    return ComponentTable(lba, header_type, tuple(entries))


# --- block lists --------------------------------------------------------------------
@dataclass
class BlockList:
    """Data pointers of one component in load order, and the list blocks that held them."""

    first: int
    list_blocks: list[int] = field(default_factory=list)
    pointers: list[BlockPtr] = field(default_factory=list)
    # Non-zero bytes after the terminating zero slot of a list block.  zipl writes
    # whole list blocks, so this never happens on its disks; readers ignore them.
    stray_after_end: list[str] = field(default_factory=list)

    @property
    def nblocks(self) -> int:
        return sum(p.nblocks for p in self.pointers)

    def length(self, block_size: int) -> int:
        return self.nblocks * block_size

    def extents(self) -> list[tuple[int, int]]:
        """(first LBA, block count) of every data run plus the list blocks, for overlap checks."""
        return [(p.blockno, p.nblocks) for p in self.pointers] + [(lb, 1) for lb in self.list_blocks]


def walk_block_list(
    disk: Disk,
    ptr: BlockPtr | int,
    *,
    max_list_blocks: int | None = None,
    max_total_blocks: int | None = None,
) -> BlockList:
    """Follow a component's block list (spec §6.3, intended semantics).

    Data slots 0..N-2 hold pointers in load order; the first zero blockno ends
    the component; only a list block whose N-1 data slots are all used chains
    on through slot N-1.  Bounded: list blocks may not repeat (the repeated LBA
    is named), their number is limited by the disk size, and so is the number
    of blocks loaded (holes may repeat the same data block, never list blocks).
    """
    bs = disk.block_size
    nslots = data_slots_per_block(bs)
    first = ptr if isinstance(ptr, int) else ptr.blockno
    if max_total_blocks is None:
        max_total_blocks = disk.nblocks
    if max_list_blocks is None:
        # every list block but the last carries nslots pointers of >= 1 block each
        max_list_blocks = max_total_blocks // nslots + 2
    out = BlockList(first)
    seen: dict[int, tuple[int, int]] = {}  # list LBA -> (referencing LBA, slot offset)
    lb = first
    came_from: tuple[int, int] | None = None
    total = 0
    while lb:
        if lb in seen:
            src = came_from or (lb, 0)
            raise BlockListLoopError(
                f"block list loops: chain slot points back to list block {lb:#x}, already read "
                f"as list block {out.list_blocks.index(lb)} of this component",
                where=place(src[0], src[1], "block list chain slot", "blockno"),
                reason=Reason.BLOCK_LIST_LOOP,
            )
        if len(out.list_blocks) >= max_list_blocks:
            raise BlockListLoopError(
                f"block list has more than {max_list_blocks} list blocks, more than the disk can hold",
                where=place(lb, None, "block list"),
                reason=Reason.TOO_MANY_LIST_BLOCKS,
            )
        seen[lb] = came_from or (0, 0)
        out.list_blocks.append(lb)
        block = _read_meta_block(disk, lb, "block list", Reason.LIST_BLOCK_OUTSIDE_DISK)
        slots = parse_list_block(block)
        nxt = 0
        for i in range(nslots):
            p = slots[i]
            if p.is_null:
                rest = block[i * BLOCKPTR_SIZE :]
                if any(rest):
                    out.stray_after_end.append(str(list_slot(lb, i)))
                break
            check_pointer(disk, p, list_slot(lb, i), metadata=False, reason=Reason.BAD_DATA_SLOT)
            total += p.nblocks
            if total > max_total_blocks:
                raise PointerError(
                    f"component is longer than {max_total_blocks} blocks, more than the disk holds",
                    where=list_slot(lb, i).with_field("blockct"),
                    reason=Reason.COMPONENT_TOO_LONG,
                )
            out.pointers.append(p)
        else:
            chain = slots[nslots]
            if not chain.is_null:
                check_pointer(
                    disk, chain, place(lb, nslots * BLOCKPTR_SIZE, "block list chain slot"), metadata=True, reason=Reason.BAD_CHAIN_SLOT
                )
                nxt = chain.blockno
                came_from = (lb, nslots * BLOCKPTR_SIZE)
        lb = nxt
    return out


def iter_component_data(disk: Disk, pointers: Iterable[BlockPtr], length: int | None = None) -> Iterator[bytes]:
    """Stream a component's bytes in load order, in chunks of at most 1 MiB.

    `length` stops early (a component's real length may end inside its last
    block; the bytes after it are not zipl's).  Pointers are re-checked against
    the disk end on every read by the disk itself.
    """
    bs = disk.block_size
    left = length
    buf = bytearray(CHUNK)
    for p in pointers:
        off = p.blockno * bs
        n = p.nblocks * bs
        while n > 0:
            if left is not None and left <= 0:
                return
            want = min(n, CHUNK)
            if left is not None:
                want = min(want, left)
            view = memoryview(buf)[:want]
            if p.blockno + p.blockct >= disk.nblocks:
                raise PointerError(
                    f"data blocks {p.blockno:#x}..{p.blockno + p.blockct:#x} are past the end of the disk",
                    where=place(p.blockno),
                    reason=Reason.DATA_OUTSIDE_DISK,
                )
            disk.readinto_at(off, view)
            yield bytes(view)
            off += want
            n -= want
            if left is not None:
                left -= want


def dump_program_extents(disk: Disk) -> tuple[tuple[int, tuple[tuple[int, int, str], ...]], ...]:
    """(program-table index, ((lba, blocks, what), ...)) of every DUMP program: its component
    table, and each LOAD's list blocks and data, for the dump-area rule (zipl/rules.py)."""
    pt = read_program_table(disk, read_boot_record(disk).program_table)
    out = []
    for index, ptr in pt.valid():
        ct = read_component_table(disk, ptr, require_execute=False)
        if ct.header_type != HEADER_DUMP:
            continue
        exts: list[tuple[int, int, str]] = [(ct.lba, 1, f"program {index} component table")]
        for e in ct.entries:
            if e.type == TYPE_LOAD:
                what = f"program {index} component entry {e.index}"
                exts += [(lba, n, what) for lba, n in walk_block_list(disk, e.blocklist).extents()]
        out.append((index, tuple(exts)))
    return tuple(out)


def component_sha256(disk: Disk, pointers: Iterable[BlockPtr], length: int | None = None) -> str:
    h = hashlib.sha256()
    for chunk in iter_component_data(disk, pointers, length):
        h.update(chunk)
    return h.hexdigest()


# --- dump superblock (judged by zipl/dumppart.py) ---------------------------------------
def superblock_place(byte_offset: int, block_size: int) -> Place:
    """'byte offset 0xf8400 (block 0x7c2 offset 0x0, dump superblock)'."""
    return Place(
        byte=byte_offset, lba=byte_offset // block_size, offset=byte_offset % block_size, structure="dump superblock", form=Form.BYTE
    )


def read_superblock(disk: Disk, byte_offset: int) -> DumpSuperblock:
    """The 72-byte ZFCPDUMP superblock at a byte offset (from boot_info; never found by position)."""
    if byte_offset <= 0 or byte_offset + SUPERBLOCK_SIZE > disk.size:
        raise PointerError(
            f"dump superblock at byte offset {byte_offset:#x} is outside the disk ({disk.size:#x} bytes)",
            where=place(0, DUMP_SB_OFFSET_AT, "boot_info", "dump_sb_offset"),
            reason=Reason.SUPERBLOCK_OUTSIDE_DISK,
        )
    raw = disk.read_at(byte_offset, SUPERBLOCK_SIZE)
    if raw[:8] != SB_MAGIC:
        raise MagicError(
            f"dump superblock magic is {raw[:8].hex()}, expected 5a46435044554d50 ('ZFCPDUMP')",
            where=superblock_place(byte_offset, disk.block_size).with_field("magic", DumpSuperblock),
            reason=Reason.SUPERBLOCK_MAGIC,
        )
    return DumpSuperblock.parse(raw, offset=byte_offset)


def superblock_checksum(disk: Disk, sb: DumpSuperblock, seed: int | None = None) -> int:
    """CKSM over csum_size bytes at part_start + csum_offset, streamed (ones'-complement sums compose)."""
    start = sb.part_start + sb.csum_offset
    if sb.csum_size < 0 or start + sb.csum_size > disk.size:
        at = sb.offset + DumpSuperblock.offset_of("csum_size")
        raise PointerError(
            f"checksummed range {start:#x}+{sb.csum_size:#x} is outside the disk ({disk.size:#x} bytes)",
            where=Place(byte=at, structure="dump superblock", fields=("csum_size",), form=Form.BYTE),
            reason=Reason.CHECKSUM_RANGE_OUTSIDE_DISK,
        )
    total = SB_SEED if seed is None else seed
    off, left = start, sb.csum_size
    while left:
        n = min(left, CHUNK)  # CHUNK is a multiple of 4, so only the last piece is padded
        total = cksm(disk.read_at(off, n), total)
        off += n
        left -= n
    return total
