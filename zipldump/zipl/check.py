"""Strict inspection of a zipl SCSI disk: `inspect_disk(path, block_size) -> Report`.

Reads anything zipl has written since 1.24 (both superblock positions, 38- or
512-byte bootmap header, 64- or 80-byte stage-3 parameters, legacy EXECUTE
PSWs) through zipldump.zipl.bootmap, and judges it: magics, versions, pointers,
block-list chains, component overlaps and address limits, EXECUTE PSW, the HSA
limit of dump programs, boot_info, the dump superblock, its CKSM checksum and
its agreement with the partition table.  Problems are collected, not raised,
so one run reports as much as it can; the report's exit code is that of the
first error.  Bytes zipl does not define (spec §7.4) are never examined.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zipldump.disk.image import DiskImage
from zipldump.errors import (
    ChecksumError,
    ComponentError,
    FormatError,
    HsaLimitError,
    MagicError,
    Place,
    PointerError,
    SuperblockError,
    ZiplDumpError,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootrecord import (
    DISK_LAYOUT_ID,
)
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
from zipldump.formats.s390dump import BUSY_MARKER
from zipldump.formats.stage3_params import (
    FLAG_SCSI,
    NO_PARMLINE,
    STAGE3_LOAD_ADDRESS,
    STAGE3_PARAMS_ADDRESS,
    Stage3ParamsLegacy,
)
from zipldump.plan.addresses import ADDRESS_LIMIT, MAXIMUM_PARMLINE_SIZE
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.zipl import bootmap as reader
from zipldump.zipl.dumppart import (
    BOOT_INFO_CODES,
    PARTITION_TABLE_CODES,
    SUPERBLOCK_READ_CODES,
    Code,
    Finding,
    boot_info_place,
    read_dump_partition,
    superblock_field,
)

# Inspect's error class per dumppart finding (SuperblockError when not listed).
INSPECT_CLASS: dict[Code, type[FormatError]] = {
    Code.BOOT_INFO_MAGIC: MagicError,
    Code.SUPERBLOCK_OUTSIDE_DISK: PointerError,
    Code.SUPERBLOCK_MAGIC: MagicError,
    Code.PARTITION_OUTSIDE_DISK: PointerError,
    Code.CHECKSUM_MISMATCH: ChecksumError,
}

PSW_WAIT = 1 << 49
PSW_EA = 1 << 32
PSW_BA = 1 << 31


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "warning"
    where: str
    message: str
    kind: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
            "kind": self.kind,
            "exit_code": self.exit_code,
        }

    def line(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class Report:
    image: str
    block_size: int
    hsa_size: int
    disk_size: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    boot_record: dict[str, Any] | None = None
    program_table: dict[str, Any] | None = None
    programs: list[dict[str, Any]] = field(default_factory=list)
    dump: dict[str, Any] | None = None

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
            "boot_record": self.boot_record,
            "program_table": self.program_table,
            "programs": self.programs,
            "dump": self.dump,
        }


def inspect_disk(path: str | os.PathLike[str], block_size: int = 512, *, hsa_size: int = DEFAULT_HSA_SIZE) -> Report:
    """Read a zipl SCSI disk strictly.  DiskError (cannot open) is raised; everything else is a Problem."""
    report = Report(os.fspath(path), block_size, hsa_size)
    with DiskImage(path, block_size) as disk:
        report.disk_size = disk.size
        _Inspector(disk, report).run()
    return report


class _Inspector:
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
        self.pointers: dict[tuple[int, int], list[BlockPtr]] = {}  # (component table, entry) -> data pointers

    def _role(self, lba: int, role: str, where: Place | str) -> bool:
        """Record a metadata block's role; a block with two roles is a bad pointer."""
        have = self.roles.get(lba)
        if have is not None and have != role:
            self.r.error(PointerError(f"block {lba:#x} is used as {role} but is already {have}", where=where))
            return False
        self.roles[lba] = role
        return True

    def _zeros(self, lba: int, ranges: list[tuple[int, int, str]], what: str) -> None:
        """Warn about non-zero bytes in fields zipl always writes as zero."""
        block = self.disk.read_block(lba)
        for start, end, fld in ranges:
            nz = next((i for i in range(start, min(end, len(block))) if block[i]), None)
            if nz is not None:
                self.r.warning(reader.place(lba, nz, what, fld), f"bytes {start:#x}..{end - 1:#x} should be zero (zipl writes zeros there)")

    def _data_over_metadata(self) -> None:
        """No data run may cover a table or list block (zipl never shares them)."""
        import bisect

        meta = sorted(self.roles)
        for lba, n, what in self.data_runs:
            i = bisect.bisect_left(meta, lba)
            if i < len(meta) and meta[i] < lba + n:
                hit = meta[i]
                self.r.error(
                    PointerError(
                        f"data of {what} (blocks {lba:#x}..{lba + n - 1:#x}) covers block {hit:#x}, {self.roles[hit]}",
                        where=reader.place(hit),
                    )
                )

    def _block_size_hint(self) -> None:
        """A disk read with the wrong --block-size fails on the first pointer's size field: say which size it names."""
        if self.disk.size < 0x1C:
            return
        head = self.disk.read_at(0, 0x1C)
        size = int.from_bytes(head[0x18:0x1A], "big")
        if head[:4] == b"zIPL" and size != self.bs and size in (512, 1024, 2048, 4096):
            self.r.notes.append(f"the boot record was written for {size}-byte blocks: try --block-size {size}")

    def run(self) -> None:
        self._block_size_hint()
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
            self._zeros(pt.lba, [(4, 16, "version/reserved")], "program table")
            self._role(pt.lba, "the program table", reader.place(0, reader.PROGRAM_TABLE_AT, "boot record", "program_table"))
            self._programs(pt)
        self._dump(br)
        self._data_over_metadata()

    # -- block 0 -------------------------------------------------------------
    def _boot_record(self, br: reader.BootRecord) -> None:
        bi = br.boot_info
        self.r.boot_record = {
            "version_id": br.version_id,
            "program_table": br.program_table.blockno,
            "pc_label": br.has_pc_label,
            "boot_info": None
            if bi.is_empty
            else {
                "magic": bi.magic.decode("latin-1"),
                "version": bi.version,
                "bp_type": bi.bp_type,
                "dev_type": bi.dev_type,
                "flags": bi.flags,
                "dump_sb_offset": bi.dump_sb_offset,
            },
        }
        zero = [(0x08, 0x10, "reserved"), (0x20, 0x70, "reserved2")]
        if bi.has_magic:
            zero.append((0x80, 0x98, "boot_info reserved"))
        self._zeros(0, zero, "boot record")
        if br.version_id != DISK_LAYOUT_ID:
            self.r.warning(
                reader.place(0, offset_of(BootRecordStruct, "version_id"), "boot record", "version_id"),
                f"unknown boot record layout version {br.version_id}, read as version 1",
            )

    # -- programs ----------------------------------------------------------------
    def _programs(self, pt: reader.ProgramTable) -> None:
        valid = pt.valid()
        first_for_lba: dict[int, int] = {}
        self.r.program_table = {"block": pt.lba, "entries": [i for i, _ in valid]}
        by_index: dict[int, dict[str, Any]] = {}
        for i, ptr in valid:
            if ptr.blockno in first_for_lba:
                j = first_for_lba[ptr.blockno]
                prog = dict(by_index[j], index=i, duplicate_of=j)
                self.r.notes.append(f"program table entries {j} and {i} point at the same component table {ptr.blockno:#x}")
            else:
                first_for_lba[ptr.blockno] = i
                prog = self._program(i, ptr, pt.lba)
            by_index[i] = prog
            self.r.programs.append(prog)
        if 0 not in by_index:
            self.r.warning(
                reader.program_table_entry(pt.lba, 0),
                "entry 0 (the default program) is empty; only a boot program selector > 0 can load this disk",
            )

    def _program(self, index: int, ptr: BlockPtr, pt_lba: int) -> dict[str, Any]:
        prog: dict[str, Any] = {
            "index": index,
            "type": None,
            "component_table": ptr.blockno,
            "duplicate_of": None,
            "components": [],
        }
        try:
            ct = reader.read_component_table(self.disk, ptr, require_execute=False)
        except FormatError as exc:
            self.r.error(exc)
            return prog
        ext = self.extents.setdefault(index, [])
        ext.append((ct.lba, 1, f"program {index} component table"))
        pt_where = reader.program_table_entry(pt_lba, index)
        if not self._role(ct.lba, "a component table", pt_where):
            return prog
        hdr_where = reader.place(ct.lba, reader.HEADER_TYPE_AT, "component table", "type")
        zero = [(5, 32, "header reserved")]
        for e in ct.entries:
            if e.type == TYPE_EXECUTE:
                zero.append((e.offset, e.offset + 0x17, f"entry {e.index} data"))
                zero.append((e.offset + 32, self.bs, "after the EXECUTE entry"))
            else:
                zero.append((e.offset + 0x10, e.offset + 0x17, f"entry {e.index} reserved"))
        self._zeros(ct.lba, zero, "component table")
        if ct.header_type == HEADER_IPL:
            prog["type"] = "ipl"
        elif ct.header_type == HEADER_DUMP:
            prog["type"] = "dump"
        else:
            prog["type"] = f"unknown ({ct.header_type:#x})"
            self.r.error(ComponentError(f"unknown component table type {ct.header_type:#04x} (0 IPL, 1 DUMP)", where=hdr_where))
        loads: list[tuple[int, int, reader.ComponentEntry]] = []
        execute: reader.ComponentEntry | None = None
        prev: reader.ComponentEntry | None = None
        for e in ct.entries:
            if e.type in (TYPE_LOAD, TYPE_SIGNATURE):
                comp = self._data_component(ct, e, ext, index)
                prog["components"].append(comp)
                if e.type == TYPE_LOAD and "length" in comp:
                    loads.append((e.address or 0, comp["length"], e))
            elif e.type == TYPE_EXECUTE:
                execute = e
                prog["components"].append(self._execute(ct, e))
            else:
                self.r.error(
                    ComponentError(
                        f"no EXECUTE entry: entry {e.index} has type {e.type:#04x} (expected 1 EXECUTE, 2 LOAD or 3 SIGNATURE)",
                        where=ct.where(e, "type"),
                    )
                )
            if prev is not None and prev.type == TYPE_SIGNATURE and e.type != TYPE_LOAD:
                self.r.warning(ct.where(prev), "SIGNATURE entry is not followed by the LOAD entry it signs")
            prev = e
        if not ct.entries or (execute is None and ct.entries[-1].type in (TYPE_LOAD, TYPE_SIGNATURE)):
            self.r.error(
                ComponentError(
                    f"no EXECUTE entry: the {len(ct.entries)} LOAD/SIGNATURE entries fill the component table block",
                    where=reader.place(ct.lba, None, "component table"),
                )
            )
        self._check_loads(ct, loads, prog["type"] == "dump")
        if execute is not None and execute.psw is not None and psw_address(execute.psw) == STAGE3_LOAD_ADDRESS:
            self._stage3(ct, prog, loads)
        if execute is not None and execute.psw is not None and not execute.psw & PSW_WAIT:
            addr = psw_address(execute.psw)
            if not any(a <= addr < a + n for a, n, _ in loads):
                self.r.warning(ct.where(execute, "compdat"), f"EXECUTE address {addr:#x} is not inside any LOAD component")
        if not loads:
            self.r.warning(reader.place(ct.lba, None, "component table"), "program loads nothing")
        return prog

    def _data_component(
        self, ct: reader.ComponentTable, e: reader.ComponentEntry, ext: list[tuple[int, int, str]], index: int
    ) -> dict[str, Any]:
        comp: dict[str, Any] = {"kind": e.kind, "entry": e.index}
        if e.type == TYPE_LOAD:
            comp["address"] = e.address
        else:
            comp["signature_format"] = e.signature_format
            comp["signature_length"] = e.signature_length
        comp["blocklist"] = e.blocklist.blockno
        if not self._role(e.blocklist.blockno, "a block-list block", ct.where(e, "blocklist")):
            comp["error"] = PointerError.kind
            return comp
        try:
            bl = reader.walk_block_list(self.disk, e.blocklist)
            comp["length"] = bl.length(self.bs)
            comp["sha256"] = reader.component_sha256(self.disk, bl.pointers)
        except FormatError as exc:
            self.r.error(exc)
            comp["error"] = exc.kind
            return comp
        comp["list_blocks"] = len(bl.list_blocks)
        comp["extents"] = [{"block": p.blockno, "blocks": p.nblocks} for p in bl.pointers]
        self.pointers[(ct.lba, e.index)] = bl.pointers
        what = f"program {index} entry {e.index} ({e.kind})"
        ext.extend((lba, n, what) for lba, n in bl.extents())
        for k, lb in enumerate(bl.list_blocks):
            # sharing a list block between components is harmless; using it as a table is not
            self._role(lb, "a block-list block", reader.place(lb, None, f"list block {k} of {what}"))
        self.data_runs.extend((p.blockno, p.nblocks, what) for p in bl.pointers)
        for w in bl.stray_after_end:
            self.r.warning(w, "non-zero bytes after the end of the block list (zipl writes whole list blocks)", PointerError)
        if not bl.pointers:
            self.r.warning(ct.where(e, "blocklist"), f"{e.kind.upper()} component has no data blocks")
        if e.type == TYPE_SIGNATURE:
            if e.signature_format != PKCS7_FORMAT:
                self.r.warning(ct.where(e, "compdat.format"), f"signature format {e.signature_format} is not PKCS#7 (1)")
            if (e.signature_length or 0) > comp["length"]:
                self.r.error(
                    ComponentError(
                        f"signature length {e.signature_length} exceeds its {comp['length']} data bytes",
                        where=ct.where(e, "compdat.length"),
                    )
                )
        return comp

    def _stage3(self, ct: reader.ComponentTable, prog: dict[str, Any], loads: list[tuple[int, int, reader.ComponentEntry]]) -> None:
        """zipl >= 2.9 stage-3 parameters at 0x9000 (spec §8.3): decode and check against the LOADs.

        Only the first 64 bytes are read: zipl <= 2.17 wrote no more, and the
        envblk fields after them may hold old data on a raw partition.
        """
        by_addr = {a: (n, e) for a, n, e in loads}
        if STAGE3_PARAMS_ADDRESS not in by_addr:
            return
        n, pe = by_addr[STAGE3_PARAMS_ADDRESS]
        ptrs = self.pointers.get((ct.lba, pe.index))
        if not ptrs or n < Stage3ParamsLegacy.sizeof():
            return
        raw = b"".join(reader.iter_component_data(self.disk, ptrs, Stage3ParamsLegacy.sizeof()))
        p = Stage3ParamsLegacy.parse(raw)
        fields = {k: getattr(p, k) for k in ("parm_addr", "initrd_addr", "initrd_len", "load_psw", "extra_parm", "flags", "image_len", "image_addr")}
        prog["stage3"] = dict(fields, parmline=None)
        blk = ptrs[0].blockno

        def where(fld: str) -> Place:
            return reader.place(blk, offset_of(Stage3ParamsLegacy, fld), f"stage-3 parameters, program {prog['index']}", fld)

        # A signed file's LOAD holds the file without its signature trailer (the PKCS#7
        # data of the SIGNATURE entry right before it, plus the 40-byte file_signature),
        # while zipl sets image_len and initrd_len to the stat() size of the whole file (§8.3, §8.9).
        entries = list(ct.entries)
        trailer: dict[int, int] = {}
        for k in range(1, len(entries)):
            if entries[k].type == TYPE_LOAD and entries[k - 1].type == TYPE_SIGNATURE:
                trailer[entries[k].index] = (entries[k - 1].signature_length or 0) + FILE_SIGNATURE_SIZE

        def covered(addr: int, length: int) -> bool:
            if addr not in by_addr:
                return False
            n, e = by_addr[addr]
            return n + trailer.get(e.index, 0) >= length

        if not p.load_psw & PSW_BIT12:
            self.r.error(ComponentError(f"kernel load PSW {p.load_psw:#018x} has bit 12 clear", where=where("load_psw")))
        if not covered(p.image_addr, p.image_len):
            self.r.error(
                ComponentError(
                    f"no LOAD at image_addr {p.image_addr:#x} holding image_len {p.image_len:#x} bytes", where=where("image_addr")
                )
            )
        elif not p.image_addr <= psw_address(p.load_psw) < p.image_addr + by_addr[p.image_addr][0]:
            self.r.warning(where("load_psw"), f"kernel entry {psw_address(p.load_psw):#x} is not inside the kernel LOAD")
        if p.image_len < KERNEL_HEADER_SIZE:
            self.r.notes.append(
                f"{where('image_len')}: image_len {p.image_len:#x} < {KERNEL_HEADER_SIZE:#x}: stage 3 would not start this kernel (spec §13.4)"
            )
        if (p.initrd_addr or p.initrd_len) and not covered(p.initrd_addr, p.initrd_len):
            self.r.error(
                ComponentError(
                    f"no LOAD at initrd_addr {p.initrd_addr:#x} holding initrd_len {p.initrd_len:#x} bytes", where=where("initrd_addr")
                )
            )
        if not p.flags & FLAG_SCSI:
            self.r.warning(where("flags"), f"flags {p.flags:#x} lack the SCSI flag {FLAG_SCSI:#x}")
        if p.parm_addr != NO_PARMLINE:
            if p.parm_addr not in by_addr:
                self.r.error(ComponentError(f"no LOAD at parm_addr {p.parm_addr:#x}", where=where("parm_addr")))
            else:
                pn, parm_e = by_addr[p.parm_addr]
                pp = self.pointers.get((ct.lba, parm_e.index))
                if pp:
                    text = b"".join(reader.iter_component_data(self.disk, pp, min(pn, MAXIMUM_PARMLINE_SIZE)))
                    nul = text.find(b"\0")
                    if nul < 0:
                        self.r.warning(ct.where(parm_e), "parmline has no NUL terminator")
                    else:
                        prog["stage3"]["parmline"] = text[:nul].decode("latin-1")

    def _execute(self, ct: reader.ComponentTable, e: reader.ComponentEntry) -> dict[str, Any]:
        psw = e.psw or 0
        ea, ba = bool(psw & PSW_EA), bool(psw & PSW_BA)
        mode = {(False, False): "24-bit", (False, True): "31-bit", (True, True): "64-bit"}.get((ea, ba), "invalid")
        comp = {"kind": "execute", "entry": e.index, "psw": psw, "entry_address": psw_address(psw), "addressing": mode}
        where = ct.where(e, "compdat (PSW)")
        if not psw & PSW_BIT12:
            self.r.error(ComponentError(f"EXECUTE PSW {psw:#018x} has bit 12 clear (short-format PSWs need it set)", where=where))
        if mode == "invalid":
            self.r.error(ComponentError(f"EXECUTE PSW {psw:#018x} has EA set without BA (invalid addressing mode)", where=where))
        if psw & PSW_WAIT:
            self.r.notes.append(f"{where}: EXECUTE PSW {psw:#018x} is a wait PSW (segment program or disabled wait)")
        return comp

    def _check_loads(self, ct: reader.ComponentTable, loads: list[tuple[int, int, reader.ComponentEntry]], dump: bool) -> None:
        for addr, n, e in loads:
            if addr + n > ADDRESS_LIMIT:
                self.r.error(
                    ComponentError(
                        f"LOAD {addr:#x}-{addr + n - 1:#x} ends above the 31-bit limit {ADDRESS_LIMIT:#x}",
                        where=ct.where(e, "compdat (address)"),
                    )
                )
            if dump and addr + n > self.r.hsa_size:
                self.r.error(
                    HsaLimitError(
                        f"dump program LOAD {addr:#x}-{addr + n - 1:#x} ends above the HSA limit {self.r.hsa_size:#x} "
                        "(set --hsa-size for a larger HSA)",
                        where=ct.where(e, "compdat (address)"),
                    )
                )
        ordered = sorted(loads, key=lambda t: (t[0], t[2].index))
        for i, (a, n, e) in enumerate(ordered):
            for b, m, f in ordered[i + 1 :]:
                if b >= a + n:
                    break
                if m == 0 or n == 0:
                    continue
                self.r.error(
                    ComponentError(
                        f"LOAD entries {e.index} ({a:#x}-{a + n - 1:#x}) and {f.index} ({b:#x}-{b + m - 1:#x}) overlap in memory",
                        where=ct.where(f, "compdat (address)"),
                    )
                )

    # -- dump superblock -----------------------------------------------------------
    def _dump(self, br: reader.BootRecord) -> None:
        """Report every finding of zipldump.zipl.dumppart, with inspect's own checks
        (the DUMP program, block roles, the dump tool's blocks) at their place in the chain."""
        dp = read_dump_partition(self.disk, br.boot_info)
        findings = dp.findings
        self._report(f for f in findings if f.code in BOOT_INFO_CODES)
        if dp.has(Code.BOOT_INFO_EMPTY):
            if any(p["type"] == "dump" and p["duplicate_of"] is None for p in self.r.programs):
                # zipl's --dumptofs (<= 1.23) and kdump sections write DUMP programs without boot_info
                self.r.notes.append("DUMP program without boot_info: a file-system dump (--dumptofs) or kdump program")
            return
        if dp.superblock is None and not dp.has(*SUPERBLOCK_READ_CODES):
            return  # no SCSI dump boot_info: the chain ends there
        if not any(p["type"] == "dump" for p in self.r.programs) and self.r.programs:
            self.r.error(
                ComponentError(
                    "boot_info names a dump disk, but no program-table entry points at a DUMP component table",
                    where=reader.place(br.program_table.blockno, None, "program table"),
                )
            )
        self._report(f for f in findings if f.code in SUPERBLOCK_READ_CODES)
        sb = dp.superblock
        if sb is None:
            return
        self._role(sb.offset // self.bs, "the dump superblock", boot_info_place("dump_sb_offset"))
        dump: dict[str, Any] = sb.to_json()
        dump["checksum_ok"] = None
        dump["partition"] = None
        dump["present"] = None
        dump["layout"] = self._layout(sb)
        self.r.dump = dump
        # The checksum is judged only over a valid checksummed range.
        skip = {Code.CHECKSUM_MISMATCH, Code.CHECKSUM_RANGE_OUTSIDE_DISK} if dp.has(Code.CHECKSUM_RANGE_BAD) else set()
        rest = SUPERBLOCK_READ_CODES | PARTITION_TABLE_CODES | BOOT_INFO_CODES | skip
        self._report(f for f in findings if f.code not in rest)
        if dp.has(Code.PARTITION_OUTSIDE_DISK):
            return
        if not dp.has(Code.CHECKSUM_RANGE_BAD) and dp.checksum is not None:
            dump["checksum_computed"] = dp.checksum
            dump["checksum_ok"] = dp.checksum == sb.csum
        part_end = sb.part_start + sb.part_size
        dump_start = sb.part_start + sb.dump_offset
        dump_end = dump_start + sb.dump_size
        self._dump_area_overlaps(dump_start, dump_end, part_end, sb.offset)
        self._report(f for f in findings if f.code in PARTITION_TABLE_CODES)
        dump["partition"] = dp.partition_at_start
        if not dp.has(Code.DUMP_AREA_OUTSIDE_PARTITION):  # else reported above; nothing sensible to read
            dump["present"] = self._dump_present(dump_start, dump_end)

    def _report(self, findings: Iterable[Finding]) -> None:
        """Inspect's policy: every finding, an error with its class, a warning, or a note."""
        for f in findings:
            if f.severity == "note":
                self.r.notes.append(f.message)
            elif f.severity == "warning":
                self.r.warning(f.place, f.message)
            else:
                self.r.error(INSPECT_CLASS.get(f.code, SuperblockError)(f.message, where=f.place))

    def _layout(self, sb: reader.Superblock) -> str:
        """Which zipl write order put the superblock where it is (spec §7.2); informational."""
        from zipldump.formats.bootmap_header import is_bootmap_header

        lba = sb.offset // self.bs
        if sb.offset % self.bs == 0 and lba >= 2 and is_bootmap_header(self.disk.read_block(lba - 2)):
            return "superblock third in the bootmap (zipl >= 2.25)"
        if self.pt_lba is not None and lba == self.pt_lba + 1:
            return "superblock after the program table (zipl 1.24-2.24)"
        return "other"

    def _dump_area_overlaps(self, dump_start: int, dump_end: int, part_end: int, sb_offset: int) -> None:
        bs = self.bs
        for index, exts in self.extents.items():
            prog = next((p for p in self.r.programs if p["index"] == index), None)
            if prog is None or prog["type"] != "dump":
                continue
            reported_outside = False
            for lba, n, what in exts:
                a, b = lba * bs, (lba + n) * bs
                if a < dump_end and b > dump_start:
                    self.r.error(
                        SuperblockError(
                            f"the dump area {dump_start:#x}-{dump_end - 1:#x} covers blocks {lba:#x}..{lba + n - 1:#x} of {what}: "
                            "a dump would overwrite the dump tool",
                            where=superblock_field(sb_offset, "dump_size"),
                        )
                    )
                    return
                if not reported_outside and not (dump_start <= a and b <= part_end):
                    reported_outside = True
                    self.r.warning(reader.place(lba, None, what), "dump tool block lies outside the dump partition")

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
            kind = "s390"
        elif magic == s390dump.DUMP_MAGIC_EXT:
            kind = "s390_ext"
        elif magic == s390dump.LKCD_MAGIC:
            kind = "lkcd"
        elif head.startswith(b"\x7fELF"):
            kind = "elf"
        elif head.startswith(BUSY_MARKER):
            kind = "busy"
        else:
            kind = "unknown"
        text = {
            "busy": "a dump was started but not finished ('zfcpdump busy' marker)",
            "unknown": "the dump area starts with data that is not a known dump format",
        }.get(kind, f"a {kind} dump is present at the partition start")
        self.r.notes.append(text)
        return kind
