"""Strict inspection of a zipl SCSI disk: `inspect_disk(path, block_size) -> Report`.

Reads anything zipl has written since 1.24 (both superblock positions, 38- or
512-byte bootmap header, 64- or 80-byte stage-3 parameters, legacy EXECUTE
PSWs) through zipldump.zipl.bootmap, and judges it with the rules of
zipldump.zipl.rules and the dump-partition findings of zipldump.zipl.dumppart.
`_Inspector` is the walk: it reads each record of the chain once, runs the
rules registered for it and turns their findings into the typed `Report`
(inspect's policy: error with its class, warning, or note).  Problems are
collected, not raised, so one run reports as much as it can; the report's exit
code is that of the first error.  Bytes zipl does not define (spec §7.4) are
never examined.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from zipldump.disk.image import DiskImage
from zipldump.errors import (
    ChecksumError,
    ComponentError,
    FormatError,
    HsaLimitError,
    MagicError,
    Place,
    PointerError,
    StaleBootmapError,
    SuperblockError,
    ZiplDumpError,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootrecord import BP_TYPE_DUMP, BP_TYPE_IPL, DEV_TYPE_ECKD, DEV_TYPE_FBA, DEV_TYPE_SCSI
from zipldump.formats.component_table import HEADER_DUMP, HEADER_IPL, TYPE_EXECUTE, TYPE_LOAD, TYPE_SIGNATURE, psw_address
from zipldump.formats.s390dump import BUSY_MARKER
from zipldump.formats.stage3_params import NO_PARMLINE, STAGE3_LOAD_ADDRESS, STAGE3_PARAMS_ADDRESS, Stage3ParamsLegacy
from zipldump.plan.addresses import MAXIMUM_PARMLINE_SIZE
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.zipl import bootmap as reader
from zipldump.zipl import dumppart
from zipldump.zipl import rules as R
from zipldump.zipl.dumppart import (
    BOOT_INFO_CODES,
    PARTITION_TABLE_CODES,
    SUPERBLOCK_READ_CODES,
    Code,
    boot_info_place,
    read_dump_partition,
    superblock_field,
)
from zipldump.zipl.rules import RULES, Rule

# Inspect's error class per dumppart finding (SuperblockError when not listed).
INSPECT_CLASS: dict[Code, type[FormatError]] = {
    Code.BOOT_INFO_MAGIC: MagicError,
    Code.SUPERBLOCK_OUTSIDE_DISK: PointerError,
    Code.SUPERBLOCK_MAGIC: MagicError,
    Code.PARTITION_OUTSIDE_DISK: PointerError,
    Code.CHECKSUM_MISMATCH: ChecksumError,
}
# Inspect's class per rule finding: ComponentError for an error, FormatError for a warning, unless listed.
RULE_CLASS: dict[Rule, type[ZiplDumpError]] = {
    Rule.BLOCK_ROLE: PointerError,
    Rule.DATA_OVER_METADATA: PointerError,
    Rule.STRAY_AFTER_LIST_END: PointerError,
    Rule.ABOVE_HSA: HsaLimitError,
    Rule.DUMP_AREA_COVERS_TOOL: SuperblockError,
}
# Names of boot_info's bp_type and dev_type values (spec §3), for the renderers.
BP_TYPE_NAMES = {BP_TYPE_IPL: "IPL", BP_TYPE_DUMP: "dump"}
DEV_TYPE_NAMES = {DEV_TYPE_ECKD: "ECKD", DEV_TYPE_FBA: "FBA", DEV_TYPE_SCSI: "SCSI"}
PROGRAM_TYPE_NAMES = {HEADER_IPL: "ipl", HEADER_DUMP: "dump"}


# --- the report -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    where: str
    message: str
    kind: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "where": self.where, "message": self.message, "kind": self.kind, "exit_code": self.exit_code}

    def line(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass(frozen=True)
class BootInfoReport:
    magic: str
    version: int
    bp_type: int
    dev_type: int
    flags: int
    dump_sb_offset: int

    @property
    def bp_type_name(self) -> str:
        return BP_TYPE_NAMES.get(self.bp_type, f"bp_type {self.bp_type}")

    @property
    def dev_type_name(self) -> str:
        return DEV_TYPE_NAMES.get(self.dev_type, f"dev_type {self.dev_type}")

    def to_json(self) -> dict[str, Any]:
        return {"magic": self.magic, "version": self.version, "bp_type": self.bp_type, "dev_type": self.dev_type, "flags": self.flags,
                "dump_sb_offset": self.dump_sb_offset}


@dataclass(frozen=True)
class BootRecordReport:
    version_id: int
    program_table: int  # LBA
    pc_label: bool
    boot_info: BootInfoReport | None  # None: all zero (an IPL disk)

    def to_json(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "program_table": self.program_table, "pc_label": self.pc_label,
                "boot_info": None if self.boot_info is None else self.boot_info.to_json()}


@dataclass(frozen=True)
class ProgramTableReport:
    block: int
    entries: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block, "entries": list(self.entries)}


@dataclass(frozen=True)
class Extent:
    block: int
    blocks: int

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block, "blocks": self.blocks}


@dataclass(frozen=True)
class DataComponent:
    """A LOAD or SIGNATURE entry; `length` is None when its block list could not be read (`error` says why)."""

    kind: str  # "load" | "signature"
    entry: int
    blocklist: int
    address: int | None = None  # LOAD
    signature_format: int | None = None  # SIGNATURE
    signature_length: int | None = None
    length: int | None = None
    sha256: str | None = None
    error: str | None = None
    list_blocks: int | None = None
    extents: tuple[Extent, ...] | None = None

    @property
    def readable(self) -> bool:
        return self.length is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "entry": self.entry}
        if self.kind == "load":
            out["address"] = self.address
        else:
            out["signature_format"] = self.signature_format
            out["signature_length"] = self.signature_length
        out["blocklist"] = self.blocklist
        for k in ("length", "sha256", "error", "list_blocks"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.extents is not None:
            out["extents"] = [e.to_json() for e in self.extents]
        return out


@dataclass(frozen=True)
class ExecuteComponent:
    entry: int
    psw: int
    entry_address: int
    addressing: str  # "24-bit" | "31-bit" | "64-bit" | "invalid"
    kind: str = "execute"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "entry": self.entry, "psw": self.psw, "entry_address": self.entry_address, "addressing": self.addressing}


Component = DataComponent | ExecuteComponent


@dataclass(frozen=True)
class Stage3Report:
    parm_addr: int
    initrd_addr: int
    initrd_len: int
    load_psw: int
    extra_parm: int
    flags: int
    image_len: int
    image_addr: int
    parmline: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ProgramReport:
    index: int
    type: str | None  # "ipl" | "dump" | "unknown (0x..)" | None (table unreadable)
    component_table: int
    duplicate_of: int | None = None
    components: tuple[Component, ...] = ()
    stage3: Stage3Report | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "type": self.type, "component_table": self.component_table,
                               "duplicate_of": self.duplicate_of, "components": [c.to_json() for c in self.components]}
        if self.stage3 is not None:
            out["stage3"] = self.stage3.to_json()
        return out


@dataclass(frozen=True)
class DumpReport:
    offset: int
    version: int
    part_start: int
    part_size: int
    dump_offset: int
    dump_size: int
    csum_offset: int
    csum_size: int
    csum: int
    layout: str
    checksum_ok: bool | None = None
    partition: int | None = None
    present: str | None = None
    checksum_computed: int | None = None  # absent from the JSON when not computed

    def to_json(self) -> dict[str, Any]:
        keys = ("offset", "version", "part_start", "part_size", "dump_offset", "dump_size", "csum_offset", "csum_size", "csum",
                "checksum_ok", "partition", "present", "layout")
        out = {k: getattr(self, k) for k in keys}
        if self.checksum_computed is not None:
            out["checksum_computed"] = self.checksum_computed
        return out


@dataclass
class BootmapFileReport:
    """Where the boot record's blocks live when a file system holds them (a --target / zipl.conf install)."""

    partition: int
    fs_type: str
    files: tuple[str, ...]  # the paths of the files owning them: the bootmap, and files referenced in place

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "fs_type": self.fs_type, "files": list(self.files)}


@dataclass
class Report:
    image: str
    block_size: int
    hsa_size: int
    disk_size: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    boot_record: BootRecordReport | None = None
    program_table: ProgramTableReport | None = None
    programs: list[ProgramReport] = field(default_factory=list)
    dump: DumpReport | None = None
    bootmap_file: BootmapFileReport | None = None

    # -- collecting --------------------------------------------------------
    def error(self, exc: ZiplDumpError) -> None:
        self.problems.append(Problem("error", exc.where or "", exc.message, exc.kind, exc.exit_code))

    def warning(self, where: Place | str, message: str, cls: type[ZiplDumpError] = FormatError) -> None:
        self.problems.append(Problem("warning", str(where), message, cls.kind, cls.exit_code))

    # -- results -----------------------------------------------------------
    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        errs = self.errors
        return errs[0].exit_code if errs else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "valid": self.valid,
            "exit_code": self.exit_code,
            "block_size": self.block_size,
            "disk_size": self.disk_size,
            "hsa_size": self.hsa_size,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
            "boot_record": None if self.boot_record is None else self.boot_record.to_json(),
            "program_table": None if self.program_table is None else self.program_table.to_json(),
            "programs": [p.to_json() for p in self.programs],
            "dump": None if self.dump is None else self.dump.to_json(),
            "bootmap_file": None if self.bootmap_file is None else self.bootmap_file.to_json(),
        }


def inspect_disk(path: str | os.PathLike[str], block_size: int = 512, *, hsa_size: int = DEFAULT_HSA_SIZE) -> Report:
    """Read a zipl SCSI disk strictly.  DiskError (cannot open) is raised; everything else is a Problem."""
    report = Report(os.fspath(path), block_size, hsa_size)
    with DiskImage(path, block_size) as disk:
        report.disk_size = disk.size
        _Inspector(disk, report).run()
    return report


V = TypeVar("V")


# --- the walk -------------------------------------------------------------------------------
class _Inspector:
    """Reads the chain once, in report order, and runs the rules registered for each record."""

    def __init__(self, disk: DiskImage, report: Report) -> None:
        self.disk = disk
        self.r = report
        self.bs = disk.block_size
        # program index -> [(first LBA, count, what)] of every block it references
        self.extents: dict[int, list[tuple[int, int, str]]] = {}
        # metadata block -> its role; data runs -> what they belong to (for cross-use checks)
        self.roles: dict[int, str] = {0: "the boot record"}
        self.data_runs: list[tuple[int, int, str]] = []
        self.pt_lba: int | None = None
        self.dump_programs: set[int] = set()  # entries with a DUMP component table (not counting duplicates)
        self.programs = 0  # program-table entries read

    # -- policy ---------------------------------------------------------------
    def _report(self, findings: Iterable[R.Finding]) -> None:
        for f in findings:
            if f.severity == "note":
                self.r.notes.append(f"{f.place}: {f.message}" if f.place is not None else f.message)
            elif f.severity == "warning":
                self.r.warning(f.place or "", f.message, RULE_CLASS.get(f.code, FormatError))
            else:
                self.r.error(RULE_CLASS.get(f.code, ComponentError)(f.message, where=f.place))

    def _run(self, rules: Iterable[Callable[[V], Iterator[R.Finding]]], view: V) -> None:
        for rule in rules:
            self._report(rule(view))

    def _report_dump(self, findings: Iterable[dumppart.Finding]) -> None:
        """dumppart's findings: every one, an error with its class, a warning, or a note."""
        for f in findings:
            if f.severity == "note":
                self.r.notes.append(f.message)
            elif f.severity == "warning":
                self.r.warning(f.place, f.message)
            else:
                self.r.error(INSPECT_CLASS.get(f.code, SuperblockError)(f.message, where=f.place))

    def _role(self, lba: int, role: str, where: Place) -> bool:
        """Record a metadata block's role; a block with two roles is a bad pointer."""
        f = R.block_role(self.roles.get(lba), role, lba, where)
        if f is not None:
            self._report([f])
            return False
        self.roles[lba] = role
        return True

    # -- the chain ------------------------------------------------------------
    def run(self) -> None:
        hint = R.block_size_hint(self.disk)
        if hint is not None:
            self._report([hint])
        try:
            br = reader.read_boot_record(self.disk)
        except FormatError as exc:
            self.r.error(exc)
            return
        self._boot_record(br)
        try:
            pt = reader.read_program_table(self.disk, br.program_table)
        except FormatError as exc:
            self.r.error(exc)
            pt = None
        self.pt_lba = pt.lba if pt is not None else None
        if pt is not None:
            view = R.ProgramTableView(self.disk, pt, tuple(i for i, _ in pt.valid()))
            self._run(RULES.program_table, view)
            self._role(pt.lba, "the program table", reader.place(0, reader.PROGRAM_TABLE_AT, "boot record", "program_table"))
            self._programs(pt)
            self._run(RULES.program_table_end, view)
        self._dump(br)
        self._run(RULES.block_roles, R.BlockRolesView(self.roles, tuple(self.data_runs)))
        self._bootmap_file()

    def _bootmap_file(self) -> None:
        """A bootmap in an ext file system: the file that owns its blocks, and none that no file owns."""
        from zipldump.disk.extfs import ExtFs
        from zipldump.disk.partitions import read_partition_table

        br = self.r.boot_record
        if self.pt_lba is None or (br is not None and br.boot_info is not None and br.boot_info.bp_type == BP_TYPE_DUMP):
            return  # a --dumpto tail lives in a raw partition (its first 64 KiB wiped), not in a file
        try:
            table = read_partition_table(self.disk, self.bs)
        except ZiplDumpError:
            return  # no table: a whole-disk layout, judged elsewhere
        part = next((p for p in table.partitions if p.start <= self.pt_lba < p.start + p.length), None)
        if part is None or part.fs_type not in ("ext2", "ext3", "ext4"):
            return  # a raw dump partition's tail: no file system owns blocks there
        fs = ExtFs(self.disk.path, part.start_bytes, part.size_bytes)
        first = part.start_bytes // fs.block_size
        # every metadata block, and the first and last block of every data run: a deleted
        # file frees all of its blocks, a replaced one at least its first
        spans = [(lba, 1, role) for lba, role in self.roles.items() if lba] + list(self.data_runs)
        probes: dict[int, tuple[int, str]] = {}
        for lba, n, what in spans:
            for b in {lba, lba + n - 1}:
                if part.start <= b < part.start + part.length:
                    probes.setdefault(b * self.bs // fs.block_size - first, (b, what))
        try:
            owners = fs.block_owners(sorted(probes))
        except ZiplDumpError:
            return
        stale = sorted(fb for fb in probes if owners.get(fb) is None)
        for fb in stale[:1]:
            lba, what = probes[fb]
            self.r.error(StaleBootmapError(
                f"block {lba:#x} (file system block {fb} of {what}) belongs to no file in the {part.fs_type} file system of "
                f"partition {part.number}: the bootmap was deleted or replaced, and the next write may reuse the block",
                where=reader.place(lba, None, what),
            ))
        inodes = sorted({i for i in owners.values() if i is not None})
        try:
            paths = fs.inode_paths(inodes)
        except ZiplDumpError:  # a damaged directory: the files are named by inode
            paths = {}
        self.r.bootmap_file = BootmapFileReport(part.number, part.fs_type, tuple(paths.get(i, f"<inode {i}>") for i in inodes))

    def _boot_record(self, br: reader.BootRecord) -> None:
        bi = br.boot_info
        info = None if bi.is_empty else BootInfoReport(bi.magic.decode("latin-1"), bi.version, bi.bp_type, bi.dev_type, bi.flags,
                                                        bi.dump_sb_offset)
        self.r.boot_record = BootRecordReport(br.version_id, br.program_table.blockno, br.has_pc_label, info)
        self._run(RULES.boot_record, R.BootRecordView(self.disk, br))

    def _programs(self, pt: reader.ProgramTable) -> None:
        valid = pt.valid()
        first_for_lba: dict[int, int] = {}
        self.r.program_table = ProgramTableReport(pt.lba, tuple(i for i, _ in valid))
        by_index: dict[int, ProgramReport] = {}
        for i, ptr in valid:
            if ptr.blockno in first_for_lba:
                j = first_for_lba[ptr.blockno]
                prog = replace(by_index[j], index=i, duplicate_of=j)
                self._report([R.shared_component_table(j, i, ptr.blockno)])
            else:
                first_for_lba[ptr.blockno] = i
                prog = self._program(i, ptr, pt.lba)
            by_index[i] = prog
            self.r.programs.append(prog)
            self.programs += 1

    def _program(self, index: int, ptr: BlockPtr, pt_lba: int) -> ProgramReport:
        prog = ProgramReport(index, None, ptr.blockno)
        try:
            ct = reader.read_component_table(self.disk, ptr, require_execute=False)
        except FormatError as exc:
            self.r.error(exc)
            return prog
        ext = self.extents.setdefault(index, [])
        ext.append((ct.lba, 1, f"program {index} component table"))
        if not self._role(ct.lba, "a component table", reader.program_table_entry(pt_lba, index)):
            return prog
        self._run(RULES.component_table, R.ComponentTableView(self.disk, ct))
        kind = PROGRAM_TYPE_NAMES.get(ct.header_type, f"unknown ({ct.header_type:#x})")
        if ct.header_type == HEADER_DUMP:
            self.dump_programs.add(index)
        components: list[Component] = []
        loads: list[R.Load] = []
        pointers: dict[int, list[BlockPtr]] = {}  # entry -> data pointers
        prev: reader.ComponentEntry | None = None
        for k, e in enumerate(ct.entries):
            blocks: reader.BlockList | None = None
            if e.type in (TYPE_LOAD, TYPE_SIGNATURE):
                comp, blocks = self._data_component(ct, e, ext, index)
                components.append(comp)
                if blocks is not None:
                    pointers[e.index] = blocks.pointers
                if e.type == TYPE_LOAD and comp.length is not None:
                    loads.append(R.Load(e, e.address or 0, comp.length, R.signature_trailer(ct.entries, k)))
            elif e.type == TYPE_EXECUTE:
                psw = e.psw or 0
                components.append(ExecuteComponent(e.index, psw, psw_address(psw), R.addressing(psw)))
            self._run(RULES.entry, R.EntryView(ct, e, prev, self.bs, blocks))
            prev = e
        view = R.ProgramView(ct, tuple(loads), self.r.hsa_size)
        self._run(RULES.program, view)
        stage3 = None
        execute = ct.execute
        if execute is not None and execute.psw is not None and psw_address(execute.psw) == STAGE3_LOAD_ADDRESS:
            stage3 = self._stage3(ct, index, view.loads, pointers)
        self._run(RULES.program_end, view)
        return replace(prog, type=kind, components=tuple(components), stage3=stage3)

    def _data_component(
        self, ct: reader.ComponentTable, e: reader.ComponentEntry, ext: list[tuple[int, int, str]], index: int
    ) -> tuple[DataComponent, reader.BlockList | None]:
        comp = DataComponent(e.kind, e.index, e.blocklist.blockno, e.address if e.type == TYPE_LOAD else None,
                             e.signature_format if e.type == TYPE_SIGNATURE else None,
                             e.signature_length if e.type == TYPE_SIGNATURE else None)
        if not self._role(e.blocklist.blockno, "a block-list block", ct.where(e, "blocklist")):
            return replace(comp, error=PointerError.kind), None
        length: int | None = None
        try:
            bl = reader.walk_block_list(self.disk, e.blocklist)
            length = bl.length(self.bs)
            sha = reader.component_sha256(self.disk, bl.pointers)
        except FormatError as exc:
            self.r.error(exc)
            return replace(comp, length=length, error=exc.kind), None
        comp = replace(comp, length=length, sha256=sha, list_blocks=len(bl.list_blocks),
                       extents=tuple(Extent(p.blockno, p.nblocks) for p in bl.pointers))
        what = f"program {index} entry {e.index} ({e.kind})"
        ext.extend((lba, n, what) for lba, n in bl.extents())
        for k, lb in enumerate(bl.list_blocks):
            # sharing a list block between components is harmless; using it as a table is not
            self._role(lb, "a block-list block", reader.place(lb, None, f"list block {k} of {what}"))
        self.data_runs.extend((p.blockno, p.nblocks, what) for p in bl.pointers)
        return comp, bl

    def _stage3(
        self, ct: reader.ComponentTable, index: int, loads: tuple[R.Load, ...], pointers: dict[int, list[BlockPtr]]
    ) -> Stage3Report | None:
        """zipl >= 2.9 stage-3 parameters at 0x9000 (spec §8.3): decode and check against the LOADs.

        Only the first 64 bytes are read: zipl <= 2.17 wrote no more, and the
        envblk fields after them may hold old data on a raw partition.
        """
        by_addr = {ld.address: ld for ld in loads}
        params = by_addr.get(STAGE3_PARAMS_ADDRESS)
        if params is None:
            return None
        ptrs = pointers.get(params.entry.index)
        if not ptrs or params.length < Stage3ParamsLegacy.sizeof():
            return None
        raw = b"".join(reader.iter_component_data(self.disk, ptrs, Stage3ParamsLegacy.sizeof()))
        p = Stage3ParamsLegacy.parse(raw)
        parm_load = by_addr.get(p.parm_addr) if p.parm_addr != NO_PARMLINE else None
        text: bytes | None = None
        if parm_load is not None:
            pp = pointers.get(parm_load.entry.index)
            if pp:
                text = b"".join(reader.iter_component_data(self.disk, pp, min(parm_load.length, MAXIMUM_PARMLINE_SIZE)))
        self._run(RULES.stage3, R.Stage3View(p, ct, loads, index, ptrs[0].blockno, text, parm_load))
        nul = -1 if text is None else text.find(b"\0")
        parmline = text[:nul].decode("latin-1") if text is not None and nul >= 0 else None
        return Stage3Report(p.parm_addr, p.initrd_addr, p.initrd_len, p.load_psw, p.extra_parm, p.flags, p.image_len, p.image_addr,
                            parmline)

    # -- dump superblock -----------------------------------------------------------
    def _dump(self, br: reader.BootRecord) -> None:
        """Report every finding of zipldump.zipl.dumppart, with inspect's own rules
        (the DUMP program, block roles, the dump tool's blocks) at their place in the chain."""
        dp = read_dump_partition(self.disk, br.boot_info)
        findings = dp.findings
        self._report_dump(f for f in findings if f.code in BOOT_INFO_CODES)
        named = dp.superblock is not None or dp.has(*SUPERBLOCK_READ_CODES)
        # a duplicate entry's first entry is read too: counting the first ones is enough
        self._run(RULES.dump_tool, R.DumpToolView(dp.has(Code.BOOT_INFO_EMPTY), named, br.program_table.blockno,
                                                  len(self.dump_programs), self.programs))
        if dp.has(Code.BOOT_INFO_EMPTY) or not named:
            return  # an IPL disk, or no SCSI dump boot_info: the chain ends there
        self._report_dump(f for f in findings if f.code in SUPERBLOCK_READ_CODES)
        sb = dp.superblock
        if sb is None:
            return
        self._role(sb.offset // self.bs, "the dump superblock", boot_info_place("dump_sb_offset"))
        dump = DumpReport(sb.offset, sb.version, sb.part_start, sb.part_size, sb.dump_offset, sb.dump_size, sb.csum_offset,
                          sb.csum_size, sb.csum, self._layout(sb))
        self.r.dump = dump
        # The checksum is judged only over a valid checksummed range.
        skip = {Code.CHECKSUM_MISMATCH, Code.CHECKSUM_RANGE_OUTSIDE_DISK} if dp.has(Code.CHECKSUM_RANGE_BAD) else set()
        rest = SUPERBLOCK_READ_CODES | PARTITION_TABLE_CODES | BOOT_INFO_CODES | skip
        self._report_dump(f for f in findings if f.code not in rest)
        if dp.has(Code.PARTITION_OUTSIDE_DISK):
            return
        if not dp.has(Code.CHECKSUM_RANGE_BAD) and dp.checksum is not None:
            dump = replace(dump, checksum_computed=dp.checksum, checksum_ok=dp.checksum == sb.csum)
        part_end = sb.part_start + sb.part_size
        dump_start = sb.part_start + sb.dump_offset
        dump_end = dump_start + sb.dump_size
        tools = tuple((i, tuple(exts)) for i, exts in self.extents.items() if i in self.dump_programs)
        self._run(RULES.dump_area, R.DumpAreaView(self.bs, dump_start, dump_end, part_end, superblock_field(sb.offset, "dump_size"), tools))
        self._report_dump(f for f in findings if f.code in PARTITION_TABLE_CODES)
        dump = replace(dump, partition=dp.partition_at_start)
        if not dp.has(Code.DUMP_AREA_OUTSIDE_PARTITION):  # else reported above; nothing sensible to read
            kind = self._dump_present(dump_start, dump_end)
            self._run(RULES.dump_present, R.DumpPresentView(kind))
            dump = replace(dump, present=kind)
        self.r.dump = dump

    def _layout(self, sb: reader.Superblock) -> str:
        """Which zipl write order put the superblock where it is (spec §7.2); informational."""
        from zipldump.formats.bootmap_header import is_bootmap_header

        lba = sb.offset // self.bs
        if sb.offset % self.bs == 0 and lba >= 2 and is_bootmap_header(self.disk.read_block(lba - 2)):
            return "superblock third in the bootmap (zipl >= 2.25)"
        if self.pt_lba is not None and lba == self.pt_lba + 1:
            return "superblock after the program table (zipl 1.24-2.24)"
        return "other"

    def _dump_present(self, start: int, end: int) -> str:
        """What the dump area starts with (informational only)."""
        from zipldump.formats import s390dump

        if end - start < 16:
            return "none"
        head = self.disk.read_at(start, 16)
        magic = int.from_bytes(head[:8], "big")
        if not any(head):
            return "none"
        if magic == s390dump.DUMP_MAGIC:
            return "s390"
        if magic == s390dump.DUMP_MAGIC_EXT:
            return "s390_ext"
        if magic == s390dump.LKCD_MAGIC:
            return "lkcd"
        if head.startswith(b"\x7fELF"):
            return "elf"
        if head.startswith(BUSY_MARKER):
            return "busy"
        return "unknown"
