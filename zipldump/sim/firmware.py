"""Model of the machine loader for load types "SCSI" and "SCSI dump" (spec §11, §12).

`scsi_load` reads block 0, the program-table entry `loadparm`, the component
table and the block lists through the strict reader (zipldump.zipl.bootmap), loads
every LOAD component into machine storage and returns the EXECUTE PSW.  The
reader parses; this module adds firmware policy and turns every refusal into an
IplError whose message starts with the QEMU s390-ccw text for the same
condition (spec §12.2) and whose `where` is the reader's block/offset/field.
The QEMU text is chosen by the reader's `reason` code through one table,
`FIRMWARE_TEXT`, never by matching the reader's wording.  The loader's own
checks are the rules inspect runs too (zipldump.zipl.rules: block-size hint,
layout version, short PSW, empty LOAD, HSA limit, signature trailer, EXECUTE
inside a LOAD); the same table words their findings, keyed by the rule.

Policy choices where the real firmware is not documented (spec §11, §14):

* Header type: an IPL load ("SCSI") needs component header type 0 (as QEMU
  enforces); a dump load ("SCSI dump") needs type 1, the value zipl writes for
  dump programs.  Either mismatch is refused with "Bad header type".
* An empty program-table entry selected by loadparm is refused (QEMU >= 9.2).
* `version_id != 1` in block 0 only warns, as QEMU does.
* SIGNATURE entries are recorded and skipped (no secure IPL in the model); the
  LOAD right after one holds a signed file without its signature trailer, whose
  size (sig_len + 40, spec §8.9) the component records as `signed_trailer`.
* The EXECUTE PSW must be a short-format PSW (bit 12 set); QEMU does not check
  this, a real CPU would raise a specification exception.
* Load type "SCSI" clears storage before loading; "SCSI dump" does not (the
  HSA was saved first), so loads overwrite the crashed system's data below the
  HSA limit, as on real hardware.  A dump-program component ending above the
  HSA limit destroys crash data that nothing saved: refused by default
  (`allow_above_hsa=True` turns it into a warning).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zipldump.errors import (
    ComponentError,
    FormatError,
    IplError,
    Place,
    Reason,
)
from zipldump.formats.component_table import (
    COMPONENT_HEADER_SIZE,
    HEADER_DUMP,
    HEADER_IPL,
    TYPE_LOAD,
    TYPE_SIGNATURE,
    psw_address,
)
from zipldump.formats.lowcore import (
    LC_IPL_PSW,
    LC_IPLDEV,
    LC_SUBCHANNEL_ID,
    LC_SUBCHANNEL_NR,
)
from zipldump.formats.program_table import PROGRAM_TABLE_ENTRIES
from zipldump.zipl.bootmap import (
    HEADER_TYPE_AT,
    BootRecord,
    iter_component_data,
    place,
    program_table_entry,
    read_boot_record,
    read_component_table,
    read_program_table,
    walk_block_list,
)
from zipldump.zipl.rules import (
    BootRecordView,
    EntryView,
    Finding,
    Load,
    Rule,
    above_hsa,
    block_size_hint,
    empty_component,
    execute_outside_loads,
    layout_version,
    psw_not_short,
    signature_trailer,
)

if TYPE_CHECKING:
    from zipldump.disk.image import DiskImage
    from zipldump.sim.interfaces import MachineView
    from zipldump.ui import UI

DEFAULT_SUBCHANNEL_ID = 0x0001  # subsystem-id word high half: "subchannel set 0, valid"
CHUNK = 1 << 20

# What s390-ccw prints for each reader refusal (spec §12.2).  {lba} is the block
# the reader names (the list block holding a bad chain slot), {entry} the
# component entry being loaded.  A reason not listed gets DEFAULT_TEXT.  The
# rules the loader enforces are worded here too, from their findings' values.
FIRMWARE_TEXT: dict[Reason | Rule, str] = {
    Reason.DISK_TOO_SMALL: "Error reading Program Table",
    Reason.BOOT_RECORD_MAGIC: "No zIPL magic in block 0 (not a zipl SCSI disk)",
    Reason.NO_PROGRAM_TABLE: "No Program Table",
    Reason.BAD_PROGRAM_TABLE_POINTER: "Error reading Program Table",
    Reason.PROGRAM_TABLE_MAGIC: "No zIPL magic in Program Table",
    Reason.BAD_PROGRAM_TABLE_ENTRY: "Error reading Program Table",
    Reason.EMPTY_PROGRAM_TABLE: "Empty Program Table",
    Reason.COMPONENT_TABLE_OUTSIDE_DISK: "zIPL failed to read BPRS",
    Reason.COMPONENT_TABLE_MAGIC: "No zIPL magic in header",
    Reason.NO_BLOCK_LIST: "zIPL failed to read BPRS",
    Reason.BAD_BLOCK_LIST_POINTER: "zIPL failed to read BPRS",
    # a bad data pointer fails the segment load; a bad chain or list pointer fails reading the next list block
    Reason.BAD_DATA_SLOT: "zIPL load segment failed",
    Reason.COMPONENT_TOO_LONG: "zIPL load segment failed",
    Reason.BAD_CHAIN_SLOT: "zIPL failed to read BPRS at 0x{lba:016x}",
    Reason.LIST_BLOCK_OUTSIDE_DISK: "zIPL failed to read BPRS at 0x{lba:016x}",
    Reason.BLOCK_LIST_LOOP: "block list of component entry {entry} loops",
    Reason.TOO_MANY_LIST_BLOCKS: "block list of component entry {entry} loops",
    # the rules (zipldump.zipl.rules)
    Rule.BLOCK_SIZE_HINT: " (the disk's pointers say {size}-byte blocks; is the block size {size}?)",
    Rule.LAYOUT_VERSION: "Unknown MBR layout version, assuming version 1 (version_id {version_id})",
    Rule.PSW_NOT_SHORT: "EXECUTE PSW {psw:016x} is not a short-format PSW (bit 12 is 0): the CPU would take a specification exception",
    Rule.EMPTY_COMPONENT: "zIPL load segment failed: component entry {entry} has a block list without data pointers",
    Rule.ABOVE_HSA: (
        "component entry {entry} loads {address:#x}..{last:#x}, above the HSA limit {hsa:#x}: "
        "the load destroys crash data the hardware did not save"
    ),
    Rule.EXECUTE_OUTSIDE_LOADS: "EXECUTE PSW {psw:016x} starts at {address:#x}, which no LOAD component of this program covers",
}
DEFAULT_TEXT = "zIPL failed to read the boot program"
# Block-0 refusals after which the program-table pointer's size field may reveal a wrong --block-size.
_BLOCK_SIZE_HINT = {Reason.DISK_TOO_SMALL, Reason.BAD_PROGRAM_TABLE_POINTER}


@dataclass(frozen=True)
class LoadedComponent:
    """One LOAD entry after loading: where it went and what it held."""

    index: int  # component entry number
    address: int
    length: int  # whole blocks, as the loader transfers them
    pointers: int  # data pointers followed (QEMU prints one dot each)
    list_blocks: int
    sha256: str
    # A SIGNATURE entry right before this LOAD: the file on disk was this much longer
    # (sig_len + struct file_signature, spec §8.9), and zipl's image_len/initrd_len
    # count it (§8.3).  0 for an unsigned component.
    signed_trailer: int = 0

    @property
    def end(self) -> int:
        return self.address + self.length

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.index,
            "address": self.address,
            "end": self.end,
            "length": self.length,
            "pointers": self.pointers,
            "list_blocks": self.list_blocks,
            "sha256": self.sha256,
            "signed_trailer": self.signed_trailer,
        }


@dataclass
class LoadResult:
    """What the loader did; input to stage 3."""

    dump: bool
    loadparm: int
    block_size: int
    boot_record: BootRecord
    component_table_lba: int
    header_type: int
    components: list[LoadedComponent]
    signatures: list[int]  # entry numbers of skipped SIGNATURE entries
    psw: int
    hsa_size: int | None
    subchannel_id: int = DEFAULT_SUBCHANNEL_ID
    subchannel_nr: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def entry(self) -> int:
        return psw_address(self.psw)

    def component_at(self, address: int) -> LoadedComponent | None:
        """The LOAD component whose first byte is at `address`."""
        for c in self.components:
            if c.address == address:
                return c
        return None

    def covering(self, start: int, length: int) -> LoadedComponent | None:
        """A component that holds all of [start, start+length)."""
        for c in self.components:
            if c.address <= start and start + length <= c.end:
                return c
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "load_type": "scsi-dump" if self.dump else "scsi",
            "loadparm": self.loadparm,
            "block_size": self.block_size,
            "component_table_lba": self.component_table_lba,
            "header_type": self.header_type,
            "components": [c.to_json() for c in self.components],
            "signatures": self.signatures,
            "psw": f"{self.psw:016x}",
            "entry": self.entry,
            "hsa_size": self.hsa_size,
            "warnings": self.warnings,
        }


def _text(f: Finding) -> str:
    return FIRMWARE_TEXT[f.code].format(**f.values)


def _refuse_rule(f: Finding, where: Place) -> IplError:
    """IplError with the firmware's wording of a rule's finding, at the firmware's place."""
    return IplError(_text(f), where=where)


def _refuse(exc: FormatError, *, entry: int | None = None, hint: str = "") -> IplError:
    """IplError with the firmware's text for the reader's reason first, then the reader's detail, at the reader's place."""
    lba = exc.place.lba if exc.place is not None and exc.place.lba is not None else 0
    msg = FIRMWARE_TEXT.get(exc.reason, DEFAULT_TEXT) if exc.reason is not None else DEFAULT_TEXT
    msg = msg.format(lba=lba, entry=entry)
    return IplError(f"{msg}: {exc.message}{hint}", where=exc.place or exc.where, firmware_message=msg, reason=exc.reason)


def _hsa_size(machine: MachineView) -> int:
    return machine.hsa_size


def _memory_size(machine: MachineView) -> int:
    return machine.storage.size


def scsi_load(
    machine: MachineView,
    disk: DiskImage,
    *,
    dump: bool,
    loadparm: int = 0,
    allow_above_hsa: bool = False,
    subchannel_nr: int = 0,
    ui: UI | None = None,
) -> LoadResult:
    """Load program `loadparm` of the SCSI disk into `machine` like the machine loader.

    For a dump load the caller must have stored status and saved the HSA first
    (`machine.store_status(); machine.save_hsa()`); this function checks that.
    Keywords: loadparm, allow_above_hsa, subchannel_nr, ui.  Every refusal is an
    IplError: a reader error no rule below names becomes one too, so a damaged
    disk never ends an IPL with a bare format error.
    """
    try:
        return _scsi_load(machine, disk, dump=dump, loadparm=loadparm, allow_above_hsa=allow_above_hsa, subchannel_nr=subchannel_nr, ui=ui)
    except IplError:
        raise
    except FormatError as exc:
        raise _refuse(exc) from exc


def _scsi_load(
    machine: MachineView,
    disk: DiskImage,
    *,
    dump: bool,
    loadparm: int = 0,
    allow_above_hsa: bool = False,
    subchannel_nr: int = 0,
    ui: UI | None = None,
) -> LoadResult:
    bs = disk.block_size
    hsa = _hsa_size(machine) if dump else None
    if dump and not machine.hsa_saved:
        raise IplError("SCSI dump load before the HSA was saved: crash data would be lost", where="machine")
    if not 0 <= loadparm:
        raise IplError(f"loadparm {loadparm} is negative", where="loadparm")
    if loadparm >= PROGRAM_TABLE_ENTRIES:
        raise IplError(
            f"loadparm value greater than max number of boot entries allowed ({loadparm} > {PROGRAM_TABLE_ENTRIES - 1})",
            where="loadparm",
        )

    # Block 0.
    try:
        br = read_boot_record(disk)
    except FormatError as exc:
        hint = block_size_hint(disk) if exc.reason in _BLOCK_SIZE_HINT else None
        raise _refuse(exc, hint="" if hint is None else _text(hint)) from exc
    warnings = [_text(f) for f in layout_version(BootRecordView(disk, br))]

    # Program table and the selected entry.
    try:
        pt = read_program_table(disk, br.program_table)
    except FormatError as exc:
        raise _refuse(exc) from exc
    entry_ptr = pt.entries[loadparm]
    if entry_ptr.is_null:
        valid = ", ".join(str(i) for i, _ in pt.valid())
        raise IplError(
            f"The requested boot entry ({loadparm}) is invalid: program table entry {loadparm} is empty "
            f"(valid entries: {valid})",
            where=program_table_entry(pt.lba, loadparm).with_field("blockno"),
        )

    # Component table.
    try:
        ct = read_component_table(disk, entry_ptr, require_execute=False)
    except FormatError as exc:
        raise _refuse(exc) from exc
    want = HEADER_DUMP if dump else HEADER_IPL
    if ct.header_type != want:
        kind = "SCSI dump" if dump else "SCSI"
        names = {HEADER_IPL: "0 (IPL)", HEADER_DUMP: "1 (DUMP)"}
        raise IplError(
            f"Bad header type: load type {kind} needs component header type {names[want]}, "
            f"the program has {names.get(ct.header_type, f'{ct.header_type:#04x}')}",
            where=place(ct.lba, HEADER_TYPE_AT, "component table", "type"),
        )
    execute = ct.execute
    if execute is None:
        last = ct.entries[-1] if ct.entries else None
        where = ct.where(last, "type") if last else place(ct.lba, COMPONENT_HEADER_SIZE, "component table", "type")
        raise IplError("No EXEC entry: the component table has no EXECUTE entry", where=where)
    psw = int(execute.psw or 0)
    short = psw_not_short(ct, execute)
    if short is not None:
        raise _refuse_rule(short, ct.where(execute, "psw"))

    # Clear storage for a normal load; a dump load keeps the crashed system's memory.
    if not dump:
        machine.storage.clear()

    mem = _memory_size(machine)
    components: list[LoadedComponent] = []
    loads: list[Load] = []
    signatures: list[int] = []
    for k, e in enumerate(ct.entries):
        if e.type == TYPE_SIGNATURE:
            signatures.append(e.index)
            continue
        if e.type != TYPE_LOAD:
            continue
        try:
            bl = walk_block_list(disk, e.blocklist)
        except FormatError as exc:
            raise _refuse(exc, entry=e.index) from exc
        address = int(e.address or 0)
        length = bl.nblocks * bs
        # zipl never writes an empty component; loading nothing would start a program with a hole.
        for f in empty_component(EntryView(ct, e, ct.entries[k - 1] if k else None, bs, bl)):
            raise _refuse_rule(f, ct.where(e, "blocklist"))
        load = Load(e, address, length, signature_trailer(ct.entries, k))
        end = load.end
        if end > mem:
            raise IplError(
                f"zIPL load segment failed: component entry {e.index} loads {address:#x}..{end - 1:#x}, "
                f"past the end of the machine's storage ({mem:#x} bytes)",
                where=ct.where(e, "address"),
            )
        above = above_hsa(ct, load, hsa) if dump and hsa is not None else None
        if above is not None:
            if not allow_above_hsa:
                raise _refuse_rule(above, ct.where(e, "address"))
            warnings.append(_text(above))
        h = hashlib.sha256()
        at = address
        for chunk in iter_component_data(disk, bl.pointers):
            machine.storage.write(at, chunk)
            h.update(chunk)
            at += len(chunk)
        loads.append(load)
        components.append(
            LoadedComponent(e.index, address, length, len(bl.pointers), len(bl.list_blocks), h.hexdigest(), load.trailer)
        )

    outside = execute_outside_loads(ct, execute, loads)
    if outside is not None:
        raise _refuse_rule(outside, ct.where(execute, "psw"))

    # What the loader leaves for the program (QEMU jump_to_IPL_code; the machine
    # loader stores the IPL device the same way): the reset PSW at 0, the
    # subchannel id at 0xB8 and the IPL device word at 0xC6C.
    machine.storage.write(LC_IPL_PSW, psw.to_bytes(8, "big"))
    machine.storage.write(LC_SUBCHANNEL_ID, DEFAULT_SUBCHANNEL_ID.to_bytes(2, "big"))
    machine.storage.write(LC_SUBCHANNEL_NR, subchannel_nr.to_bytes(2, "big"))
    machine.storage.write(LC_IPLDEV, ((DEFAULT_SUBCHANNEL_ID << 16) | subchannel_nr).to_bytes(4, "big"))

    for w in warnings:
        if ui is not None:
            ui.warn(w)
    return LoadResult(
        dump=dump,
        loadparm=loadparm,
        block_size=bs,
        boot_record=br,
        component_table_lba=ct.lba,
        header_type=ct.header_type,
        components=components,
        signatures=signatures,
        psw=psw,
        hsa_size=hsa,
        subchannel_nr=subchannel_nr,
        warnings=warnings,
    )


__all__ = ["ComponentError", "LoadResult", "LoadedComponent", "scsi_load"]
