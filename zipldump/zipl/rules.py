"""The rules a zipl SCSI disk is judged by: small functions over the reader's records.

Each rule looks at one record of the chain zipldump.zipl.bootmap read (block 0,
the program table, a component table, an entry with its block list, a
program's LOADs, the stage-3 parameters, the dump partition) and yields
`Finding(code, place, message, severity, values)`, or nothing.  Rules never
read the disk beyond the block they are given and never raise for bad bytes.

`RULES` registers every rule by the record it looks at; inspect
(zipl/check.py) walks the chain and runs all of them, in table order, at
their record.  The firmware model (sim/firmware.py) and stage 3
(sim/stage3.py) run the few the real loader enforces (block-size hint,
layout version, short PSW, empty LOAD, HSA limit, EXECUTE inside a LOAD,
signature trailer) and word them from `Finding.values` through their own
table keyed by `Finding.code`.  Messages and places here are inspect's.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from zipldump.errors import Place
from zipldump.formats.blockptr import BlockPtrStruct
from zipldump.formats.bootrecord import DISK_LAYOUT_ID, ZIPL_MAGIC
from zipldump.formats.bootrecord import BootRecord as BootRecordStruct
from zipldump.formats.component_table import (
    FILE_SIGNATURE_SIZE,
    HEADER_DUMP,
    HEADER_IPL,
    PKCS7_FORMAT,
    PSW_BIT12,
    TYPE_EXECUTE,
    TYPE_LOAD,
    TYPE_SIGNATURE,
    psw_address,
)
from zipldump.formats.fields import offset_of
from zipldump.formats.kernel_image import KERNEL_HEADER_SIZE
from zipldump.formats.stage3_params import FLAG_SCSI, NO_PARMLINE
from zipldump.plan.addresses import ADDRESS_LIMIT, hsa_overrun
from zipldump.zipl import bootmap
from zipldump.zipl.bootmap import BlockList, BootRecord, ComponentEntry, ComponentTable, Disk, ProgramTable

PSW_WAIT = 1 << 49
PSW_EA = 1 << 32
PSW_BA = 1 << 31
BLOCK_SIZES = (512, 1024, 2048, 4096)
# Where block 0 names the block size it was written for: the program-table pointer's size field.
BLOCK_SIZE_AT = bootmap.PROGRAM_TABLE_AT + offset_of(BlockPtrStruct, "size")


class Rule(enum.Enum):
    """One code per rule."""

    BLOCK_SIZE_HINT = "block-size-hint"
    ZERO_BYTES = "zero-bytes"
    LAYOUT_VERSION = "layout-version"
    DEFAULT_ENTRY_EMPTY = "default-entry-empty"
    SHARED_COMPONENT_TABLE = "shared-component-table"
    BLOCK_ROLE = "block-role"
    HEADER_TYPE = "header-type"
    STRAY_AFTER_LIST_END = "stray-after-list-end"
    EMPTY_COMPONENT = "empty-component"
    SIGNATURE_FORMAT = "signature-format"
    SIGNATURE_TOO_LONG = "signature-too-long"
    PSW_NOT_SHORT = "psw-not-short"
    PSW_ADDRESSING = "psw-addressing"
    WAIT_PSW = "wait-psw"
    BAD_ENTRY_TYPE = "bad-entry-type"
    SIGNATURE_WITHOUT_LOAD = "signature-without-load"
    NO_EXECUTE = "no-execute"
    ABOVE_ADDRESS_LIMIT = "above-address-limit"
    ABOVE_HSA = "above-hsa"
    LOADS_OVERLAP = "loads-overlap"
    EXECUTE_OUTSIDE_LOADS = "execute-outside-loads"
    LOADS_NOTHING = "loads-nothing"
    KERNEL_PSW_NOT_SHORT = "kernel-psw-not-short"
    NO_KERNEL_LOAD = "no-kernel-load"
    KERNEL_ENTRY_OUTSIDE = "kernel-entry-outside"
    KERNEL_TOO_SHORT = "kernel-too-short"
    NO_INITRD_LOAD = "no-initrd-load"
    NO_SCSI_FLAG = "no-scsi-flag"
    NO_PARMLINE_LOAD = "no-parmline-load"
    PARMLINE_WITHOUT_NUL = "parmline-without-nul"
    DUMP_TOOL_WITHOUT_BOOT_INFO = "dump-tool-without-boot-info"
    NO_DUMP_PROGRAM = "no-dump-program"
    DUMP_AREA_COVERS_TOOL = "dump-area-covers-tool"
    DUMP_TOOL_OUTSIDE_PARTITION = "dump-tool-outside-partition"
    DUMP_PRESENT = "dump-present"
    DATA_OVER_METADATA = "data-over-metadata"


@dataclass(frozen=True)
class Finding:
    code: Rule
    place: Place | str | None  # None: a note that names no place; str: a place the reader gave as text
    message: str
    severity: str  # "error" | "warning" | "note" (inspect's judgement)
    values: dict[str, Any] = field(default_factory=dict)  # for the consumers' own wordings


def _f(code: Rule, place: Place | str | None, message: str, severity: str = "error", **values: Any) -> Finding:
    return Finding(code, place, message, severity, values)


# --- what the rules look at -----------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    """A LOAD entry as loaded: whole blocks at `address`; `trailer` the signature trailer its file had."""

    entry: ComponentEntry
    address: int
    length: int
    trailer: int = 0

    @property
    def end(self) -> int:
        return self.address + self.length


@dataclass(frozen=True)
class BootRecordView:
    disk: Disk
    record: BootRecord


@dataclass(frozen=True)
class ProgramTableView:
    disk: Disk
    table: ProgramTable
    entries: tuple[int, ...]  # the non-empty ones


@dataclass(frozen=True)
class ComponentTableView:
    disk: Disk
    table: ComponentTable


@dataclass(frozen=True)
class EntryView:
    """One entry of a component table, in table order; `blocks` for a LOAD/SIGNATURE whose list was read."""

    table: ComponentTable
    entry: ComponentEntry
    previous: ComponentEntry | None
    block_size: int
    blocks: BlockList | None = None


@dataclass(frozen=True)
class ProgramView:
    """A program after its entries: the LOADs whose block lists could be read."""

    table: ComponentTable
    loads: tuple[Load, ...]
    hsa_size: int

    @property
    def dump(self) -> bool:
        return self.table.header_type == HEADER_DUMP

    @property
    def execute(self) -> ComponentEntry | None:
        return self.table.execute


@dataclass(frozen=True)
class Stage3View:
    """The first 64 bytes of the stage-3 parameters (spec §8.3) against the program's LOADs."""

    params: Any  # Stage3ParamsLegacy.parse(...)
    table: ComponentTable
    loads: tuple[Load, ...]
    index: int  # program number
    block: int  # the parameters' first data block
    parmline: bytes | None = None  # the text at parm_addr (at most MAXIMUM_PARMLINE_SIZE bytes), when read
    parm_load: Load | None = None

    def place(self, fld: str) -> Place:
        from zipldump.formats.stage3_params import Stage3ParamsLegacy

        return bootmap.place(self.block, offset_of(Stage3ParamsLegacy, fld), f"stage-3 parameters, program {self.index}", fld)

    def at(self, address: int) -> Load | None:
        return next((ld for ld in self.loads if ld.address == address), None)


@dataclass(frozen=True)
class DumpToolView:
    """boot_info as dumppart judged it, against the programs (`dump_programs`: non-duplicate DUMP entries)."""

    boot_info_empty: bool
    superblock_named: bool  # boot_info names a superblock (read or not)
    program_table: int
    dump_programs: int
    programs: int


@dataclass(frozen=True)
class DumpAreaView:
    """The dump area [dump_start, dump_end) of partition [.., part_end) against every DUMP program's blocks."""

    block_size: int
    dump_start: int
    dump_end: int
    part_end: int
    sb_place: Place
    extents: tuple[tuple[int, tuple[tuple[int, int, str], ...]], ...]  # (program, ((lba, count, what), ...))


@dataclass(frozen=True)
class DumpPresentView:
    kind: str


@dataclass(frozen=True)
class BlockRolesView:
    roles: dict[int, str]  # metadata block -> its role
    data_runs: tuple[tuple[int, int, str], ...]  # (lba, count, what)


# --- the shared rules (inspect, firmware model, stage 3) ------------------------------------
def block_size_hint(disk: Disk) -> Finding | None:
    """A disk read with the wrong block size fails on block 0's first pointer: its size field names the right one."""
    if disk.size < BLOCK_SIZE_AT + 4:
        return None
    head = disk.read_at(0, BLOCK_SIZE_AT + 4)
    size = int.from_bytes(head[BLOCK_SIZE_AT : BLOCK_SIZE_AT + 2], "big")
    if head[:4] != ZIPL_MAGIC or size == disk.block_size or size not in BLOCK_SIZES:
        return None
    return _f(Rule.BLOCK_SIZE_HINT, None, f"the boot record was written for {size}-byte blocks: try --block-size {size}", "note",
              size=size)


def layout_version(v: BootRecordView) -> Iterator[Finding]:
    vid = v.record.version_id
    if vid != DISK_LAYOUT_ID:
        yield _f(Rule.LAYOUT_VERSION, bootmap.place(0, offset_of(BootRecordStruct, "version_id"), "boot record", "version_id"),
                 f"unknown boot record layout version {vid}, read as version 1", "warning", version_id=vid)


def psw_not_short(table: ComponentTable, entry: ComponentEntry) -> Finding | None:
    """The EXECUTE PSW must be a short-format PSW (bit 12 set)."""
    psw = entry.psw or 0
    if psw & PSW_BIT12:
        return None
    return _f(Rule.PSW_NOT_SHORT, table.where(entry, "compdat (PSW)"),
              f"EXECUTE PSW {psw:#018x} has bit 12 clear (short-format PSWs need it set)", psw=psw, entry=entry.index)


def empty_component(v: EntryView) -> Iterator[Finding]:
    if v.blocks is not None and not v.blocks.pointers:
        yield _f(Rule.EMPTY_COMPONENT, v.table.where(v.entry, "blocklist"), f"{v.entry.kind.upper()} component has no data blocks",
                 "warning", entry=v.entry.index)


def above_hsa(table: ComponentTable, load: Load, hsa_size: int) -> Finding | None:
    """A dump program's LOAD must end at or below the HSA limit (plan.addresses.hsa_overrun)."""
    end = hsa_overrun(load.address, load.length, hsa_size)
    if end is None:
        return None
    a = load.address
    return _f(Rule.ABOVE_HSA, table.where(load.entry, "compdat (address)"),
              f"dump program LOAD {a:#x}-{end - 1:#x} ends above the HSA limit {hsa_size:#x} (set --hsa-size for a larger HSA)",
              entry=load.entry.index, address=a, end=end, last=end - 1, hsa=hsa_size)


def execute_outside_loads(table: ComponentTable, entry: ComponentEntry, loads: Sequence[Load]) -> Finding | None:
    """The EXECUTE address must lie inside a LOAD of the same program."""
    psw = entry.psw or 0
    addr = psw_address(psw)
    if any(ld.address <= addr < ld.end for ld in loads):
        return None
    return _f(Rule.EXECUTE_OUTSIDE_LOADS, table.where(entry, "compdat"), f"EXECUTE address {addr:#x} is not inside any LOAD component",
              "warning", psw=psw, address=addr)


def signature_trailer(entries: Sequence[ComponentEntry], k: int) -> int:
    """What the file of the LOAD at position `k` had after its data: a SIGNATURE right before
    it means the PKCS#7 data plus the 40-byte struct file_signature (spec §8.9), else 0."""
    if k and entries[k].type == TYPE_LOAD and entries[k - 1].type == TYPE_SIGNATURE:
        return (entries[k - 1].signature_length or 0) + FILE_SIGNATURE_SIZE
    return 0


def holds(loaded: int, trailer: int, length: int) -> bool:
    """zipl's image_len/initrd_len are the stat() size of the file, the LOAD holds it without its signature trailer (§8.3)."""
    return length <= loaded + trailer


# --- block 0, program table, component table ------------------------------------------------
def _zero_ranges(disk: Disk, lba: int, ranges: Sequence[tuple[int, int, str]], what: str) -> Iterator[Finding]:
    block = disk.read_block(lba)
    for start, end, fld in ranges:
        nz = next((i for i in range(start, min(end, len(block))) if block[i]), None)
        if nz is not None:
            yield _f(Rule.ZERO_BYTES, bootmap.place(lba, nz, what, fld),
                     f"bytes {start:#x}..{end - 1:#x} should be zero (zipl writes zeros there)", "warning")


def boot_record_zeros(v: BootRecordView) -> Iterator[Finding]:
    ranges = [(0x08, 0x10, "reserved"), (0x20, 0x70, "reserved2")]
    if v.record.boot_info.has_magic:
        ranges.append((0x80, 0x98, "boot_info reserved"))
    yield from _zero_ranges(v.disk, 0, ranges, "boot record")


def program_table_zeros(v: ProgramTableView) -> Iterator[Finding]:
    yield from _zero_ranges(v.disk, v.table.lba, [(4, 16, "version/reserved")], "program table")


def default_entry_empty(v: ProgramTableView) -> Iterator[Finding]:
    if 0 not in v.entries:
        yield _f(Rule.DEFAULT_ENTRY_EMPTY, bootmap.program_table_entry(v.table.lba, 0),
                 "entry 0 (the default program) is empty; only a boot program selector > 0 can load this disk", "warning")


def component_table_zeros(v: ComponentTableView) -> Iterator[Finding]:
    ranges = [(5, 32, "header reserved")]
    for e in v.table.entries:
        if e.type == TYPE_EXECUTE:
            ranges.append((e.offset, e.offset + 0x17, f"entry {e.index} data"))
            ranges.append((e.offset + 32, v.disk.block_size, "after the EXECUTE entry"))
        else:
            ranges.append((e.offset + 0x10, e.offset + 0x17, f"entry {e.index} reserved"))
    yield from _zero_ranges(v.disk, v.table.lba, ranges, "component table")


def header_type(v: ComponentTableView) -> Iterator[Finding]:
    t = v.table.header_type
    if t not in (HEADER_IPL, HEADER_DUMP):
        yield _f(Rule.HEADER_TYPE, bootmap.place(v.table.lba, bootmap.HEADER_TYPE_AT, "component table", "type"),
                 f"unknown component table type {t:#04x} (0 IPL, 1 DUMP)")


def block_role(have: str | None, role: str, lba: int, where: Place) -> Finding | None:
    """A metadata block has one role; a pointer giving it a second one is bad."""
    if have is None or have == role:
        return None
    return _f(Rule.BLOCK_ROLE, where, f"block {lba:#x} is used as {role} but is already {have}")


def shared_component_table(first: int, index: int, lba: int) -> Finding:
    """Menu entries may share a component table (zipl does so for the default entry): read once, noted."""
    return _f(Rule.SHARED_COMPONENT_TABLE, None, f"program table entries {first} and {index} point at the same component table {lba:#x}",
              "note")


# --- entries --------------------------------------------------------------------------------
def stray_after_list_end(v: EntryView) -> Iterator[Finding]:
    for w in v.blocks.stray_after_end if v.blocks is not None else ():
        yield _f(Rule.STRAY_AFTER_LIST_END, w,
                 "non-zero bytes after the end of the block list (zipl writes whole list blocks)", "warning")


def signature_format(v: EntryView) -> Iterator[Finding]:
    e = v.entry
    if v.blocks is not None and e.type == TYPE_SIGNATURE and e.signature_format != PKCS7_FORMAT:
        yield _f(Rule.SIGNATURE_FORMAT, v.table.where(e, "compdat.format"), f"signature format {e.signature_format} is not PKCS#7 (1)",
                 "warning")


def signature_too_long(v: EntryView) -> Iterator[Finding]:
    e = v.entry
    if v.blocks is None or e.type != TYPE_SIGNATURE:
        return
    n = v.blocks.length(v.block_size)
    if (e.signature_length or 0) > n:
        yield _f(Rule.SIGNATURE_TOO_LONG, v.table.where(e, "compdat.length"), f"signature length {e.signature_length} exceeds its {n} data bytes")


def execute_psw(v: EntryView) -> Iterator[Finding]:
    if v.entry.type != TYPE_EXECUTE:
        return
    f = psw_not_short(v.table, v.entry)
    if f is not None:
        yield f
    psw = v.entry.psw or 0
    where = v.table.where(v.entry, "compdat (PSW)")
    if addressing(psw) == "invalid":
        yield _f(Rule.PSW_ADDRESSING, where, f"EXECUTE PSW {psw:#018x} has EA set without BA (invalid addressing mode)")
    if psw & PSW_WAIT:
        yield _f(Rule.WAIT_PSW, where, f"EXECUTE PSW {psw:#018x} is a wait PSW (segment program or disabled wait)", "note")


def addressing(psw: int) -> str:
    ea, ba = bool(psw & PSW_EA), bool(psw & PSW_BA)
    return {(False, False): "24-bit", (False, True): "31-bit", (True, True): "64-bit"}.get((ea, ba), "invalid")


def bad_entry_type(v: EntryView) -> Iterator[Finding]:
    e = v.entry
    if e.type not in (TYPE_LOAD, TYPE_SIGNATURE, TYPE_EXECUTE):
        yield _f(Rule.BAD_ENTRY_TYPE, v.table.where(e, "type"),
                 f"no EXECUTE entry: entry {e.index} has type {e.type:#04x} (expected 1 EXECUTE, 2 LOAD or 3 SIGNATURE)")


def signature_without_load(v: EntryView) -> Iterator[Finding]:
    if v.previous is not None and v.previous.type == TYPE_SIGNATURE and v.entry.type != TYPE_LOAD:
        yield _f(Rule.SIGNATURE_WITHOUT_LOAD, v.table.where(v.previous), "SIGNATURE entry is not followed by the LOAD entry it signs",
                 "warning")


# --- programs ------------------------------------------------------------------------------
def no_execute(v: ProgramView) -> Iterator[Finding]:
    entries = v.table.entries
    if not entries or (v.execute is None and entries[-1].type in (TYPE_LOAD, TYPE_SIGNATURE)):
        yield _f(Rule.NO_EXECUTE, bootmap.place(v.table.lba, None, "component table"),
                 f"no EXECUTE entry: the {len(entries)} LOAD/SIGNATURE entries fill the component table block")


def load_limits(v: ProgramView) -> Iterator[Finding]:
    """Per LOAD: the 31-bit limit, and the HSA limit for a dump program."""
    for ld in v.loads:
        a, n = ld.address, ld.length
        if a + n > ADDRESS_LIMIT:
            yield _f(Rule.ABOVE_ADDRESS_LIMIT, v.table.where(ld.entry, "compdat (address)"),
                     f"LOAD {a:#x}-{a + n - 1:#x} ends above the 31-bit limit {ADDRESS_LIMIT:#x}")
        f = above_hsa(v.table, ld, v.hsa_size) if v.dump else None
        if f is not None:
            yield f


def loads_overlap(v: ProgramView) -> Iterator[Finding]:
    ordered = sorted(v.loads, key=lambda ld: (ld.address, ld.entry.index))
    for i, x in enumerate(ordered):
        a, n = x.address, x.length
        for y in ordered[i + 1 :]:
            b, m = y.address, y.length
            if b >= a + n:
                break
            if m == 0 or n == 0:
                continue
            yield _f(Rule.LOADS_OVERLAP, v.table.where(y.entry, "compdat (address)"),
                     f"LOAD entries {x.entry.index} ({a:#x}-{a + n - 1:#x}) and {y.entry.index} ({b:#x}-{b + m - 1:#x}) overlap in memory")


def execute_inside_loads(v: ProgramView) -> Iterator[Finding]:
    """Inspect's use of the shared rule: a wait PSW starts nothing, so it may point anywhere."""
    ex = v.execute
    if ex is not None and ex.psw is not None and not ex.psw & PSW_WAIT:
        f = execute_outside_loads(v.table, ex, v.loads)
        if f is not None:
            yield f


def loads_nothing(v: ProgramView) -> Iterator[Finding]:
    if not v.loads:
        yield _f(Rule.LOADS_NOTHING, bootmap.place(v.table.lba, None, "component table"), "program loads nothing", "warning")


# --- stage-3 parameters --------------------------------------------------------------------
def _covered(v: Stage3View, addr: int, length: int) -> bool:
    ld = v.at(addr)
    return ld is not None and holds(ld.length, ld.trailer, length)


def kernel_psw(v: Stage3View) -> Iterator[Finding]:
    p = v.params
    if not p.load_psw & PSW_BIT12:
        yield _f(Rule.KERNEL_PSW_NOT_SHORT, v.place("load_psw"), f"kernel load PSW {p.load_psw:#018x} has bit 12 clear")


def kernel_load(v: Stage3View) -> Iterator[Finding]:
    p = v.params
    kernel = v.at(p.image_addr)
    if not _covered(v, p.image_addr, p.image_len):
        yield _f(Rule.NO_KERNEL_LOAD, v.place("image_addr"),
                 f"no LOAD at image_addr {p.image_addr:#x} holding image_len {p.image_len:#x} bytes")
    elif kernel is not None and not kernel.address <= psw_address(p.load_psw) < kernel.end:
        yield _f(Rule.KERNEL_ENTRY_OUTSIDE, v.place("load_psw"), f"kernel entry {psw_address(p.load_psw):#x} is not inside the kernel LOAD",
                 "warning")
    if p.image_len < KERNEL_HEADER_SIZE:
        yield _f(Rule.KERNEL_TOO_SHORT, v.place("image_len"),
                 f"image_len {p.image_len:#x} < {KERNEL_HEADER_SIZE:#x}: stage 3 would not start this kernel (spec §13.4)", "note")


def initrd_load(v: Stage3View) -> Iterator[Finding]:
    p = v.params
    if (p.initrd_addr or p.initrd_len) and not _covered(v, p.initrd_addr, p.initrd_len):
        yield _f(Rule.NO_INITRD_LOAD, v.place("initrd_addr"),
                 f"no LOAD at initrd_addr {p.initrd_addr:#x} holding initrd_len {p.initrd_len:#x} bytes")


def scsi_flag(v: Stage3View) -> Iterator[Finding]:
    if not v.params.flags & FLAG_SCSI:
        yield _f(Rule.NO_SCSI_FLAG, v.place("flags"), f"flags {v.params.flags:#x} lack the SCSI flag {FLAG_SCSI:#x}", "warning")


def parmline(v: Stage3View) -> Iterator[Finding]:
    p = v.params
    if p.parm_addr == NO_PARMLINE:
        return
    if v.parm_load is None:
        yield _f(Rule.NO_PARMLINE_LOAD, v.place("parm_addr"), f"no LOAD at parm_addr {p.parm_addr:#x}")
    elif v.parmline is not None and b"\0" not in v.parmline:
        yield _f(Rule.PARMLINE_WITHOUT_NUL, v.table.where(v.parm_load.entry), "parmline has no NUL terminator", "warning")


# --- the dump partition (with zipl/dumppart.py's findings) ----------------------------------
def dump_tool_without_boot_info(v: DumpToolView) -> Iterator[Finding]:
    if v.boot_info_empty and v.dump_programs:
        # zipl's --dumptofs (<= 1.23) and kdump sections write DUMP programs without boot_info
        yield _f(Rule.DUMP_TOOL_WITHOUT_BOOT_INFO, None, "DUMP program without boot_info: a file-system dump (--dumptofs) or kdump program",
                 "note")


def no_dump_program(v: DumpToolView) -> Iterator[Finding]:
    if not v.boot_info_empty and v.superblock_named and v.programs and not v.dump_programs:
        yield _f(Rule.NO_DUMP_PROGRAM, bootmap.place(v.program_table, None, "program table"),
                 "boot_info names a dump disk, but no program-table entry points at a DUMP component table")


def dump_area_covers_tool(v: DumpAreaView) -> Iterator[Finding]:
    """The dump must not overwrite the dump tool; the tool's blocks belong inside the partition."""
    bs = v.block_size
    for _index, exts in v.extents:
        reported_outside = False
        for lba, n, what in exts:
            a, b = lba * bs, (lba + n) * bs
            if a < v.dump_end and b > v.dump_start:
                yield _f(Rule.DUMP_AREA_COVERS_TOOL, v.sb_place,
                         f"the dump area {v.dump_start:#x}-{v.dump_end - 1:#x} covers blocks {lba:#x}..{lba + n - 1:#x} of {what}: "
                         "a dump would overwrite the dump tool")
                return
            if not reported_outside and not (v.dump_start <= a and b <= v.part_end):
                reported_outside = True
                yield _f(Rule.DUMP_TOOL_OUTSIDE_PARTITION, bootmap.place(lba, None, what), "dump tool block lies outside the dump partition",
                         "warning")


def dump_present(v: DumpPresentView) -> Iterator[Finding]:
    if v.kind == "none":
        return
    text = {
        "busy": "a dump was started but not finished ('zfcpdump busy' marker)",
        "unknown": "the dump area starts with data that is not a known dump format",
    }.get(v.kind, f"a {v.kind} dump is present at the partition start")
    yield _f(Rule.DUMP_PRESENT, None, text, "note", kind=v.kind)


def data_over_metadata(v: BlockRolesView) -> Iterator[Finding]:
    """No data run may cover a table or list block (zipl never shares them)."""
    meta = sorted(v.roles)
    for lba, n, what in v.data_runs:
        i = bisect.bisect_left(meta, lba)
        if i < len(meta) and meta[i] < lba + n:
            hit = meta[i]
            yield _f(Rule.DATA_OVER_METADATA, bootmap.place(hit),
                     f"data of {what} (blocks {lba:#x}..{lba + n - 1:#x}) covers block {hit:#x}, {v.roles[hit]}")


# --- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleTable:
    """Every rule, by the record it looks at, in the order inspect reports them."""

    boot_record: tuple[Callable[[BootRecordView], Iterator[Finding]], ...]
    program_table: tuple[Callable[[ProgramTableView], Iterator[Finding]], ...]
    component_table: tuple[Callable[[ComponentTableView], Iterator[Finding]], ...]
    entry: tuple[Callable[[EntryView], Iterator[Finding]], ...]
    program: tuple[Callable[[ProgramView], Iterator[Finding]], ...]
    stage3: tuple[Callable[[Stage3View], Iterator[Finding]], ...]
    program_end: tuple[Callable[[ProgramView], Iterator[Finding]], ...]  # after the stage-3 parameters
    program_table_end: tuple[Callable[[ProgramTableView], Iterator[Finding]], ...]  # after every program
    dump_tool: tuple[Callable[[DumpToolView], Iterator[Finding]], ...]
    dump_area: tuple[Callable[[DumpAreaView], Iterator[Finding]], ...]
    dump_present: tuple[Callable[[DumpPresentView], Iterator[Finding]], ...]
    block_roles: tuple[Callable[[BlockRolesView], Iterator[Finding]], ...]


RULES = RuleTable(
    boot_record=(boot_record_zeros, layout_version),
    program_table=(program_table_zeros,),
    component_table=(component_table_zeros, header_type),
    entry=(stray_after_list_end, empty_component, signature_format, signature_too_long, execute_psw, bad_entry_type,
           signature_without_load),
    program=(no_execute, load_limits, loads_overlap),
    stage3=(kernel_psw, kernel_load, initrd_load, scsi_flag, parmline),
    program_end=(execute_inside_loads, loads_nothing),
    program_table_end=(default_entry_empty,),
    dump_tool=(dump_tool_without_boot_info, no_dump_program),
    dump_area=(dump_area_covers_tool,),
    dump_present=(dump_present,),
    block_roles=(data_over_metadata,),
)
