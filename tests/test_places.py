"""Places and reasons as values (errors.Place, errors.Reason).

Offsets in places come from the construct declarations and are checked here
against the bytes the builders write; each rendering form is pinned; the
reader's reason codes, not its wording, decide the firmware model's message.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from zipldump.disk.image import DiskImage
from zipldump.errors import (
    DumpError,
    FormatError,
    IplError,
    Place,
    PointerError,
    Reason,
    ZiplDumpError,
)
from zipldump.errors import Form as F
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootrecord import (
    BOOT_INFO_OFFSET,
    DEV_TYPE_SCSI,
    BootInfo,
    build_boot_record,
    dump_boot_info,
)
from zipldump.formats.component_table import (
    TYPE_LOAD,
    build_component_table,
    execute_entry,
    load_entry,
)
from zipldump.formats.dump_superblock import DumpSuperblock
from zipldump.formats.fields import offset_of
from zipldump.formats.program_table import build_program_table
from zipldump.sim import firmware
from zipldump.sim.firmware import FIRMWARE_TEXT, scsi_load
from zipldump.sim.storage import Storage
from zipldump.zipl import bootmap
from zipldump.zipl.dumppart import boot_info_place, superblock_field
from zipldump.zipl.installer import build_spec_example


# --- offsets from the declarations, checked against built bytes -----------------------------
def test_block0_offsets_match_the_bytes() -> None:
    block0 = build_boot_record(0x7FC, 512, dump_boot_info(0x0102030405060708))
    assert bootmap.PROGRAM_TABLE_AT == 0x10 and int.from_bytes(block0[0x10:0x18], "big") == 0x7FC
    assert bootmap.DUMP_SB_OFFSET_AT == 0x78 and block0[0x78:0x80] == bytes(range(1, 9))
    at = BOOT_INFO_OFFSET + offset_of(BootInfo, "dev_type")
    assert at == 0x76 and block0[at] == DEV_TYPE_SCSI
    # The dump tools' rendering shows the field's own offset, computed, not typed.
    assert str(replace(boot_info_place("dev_type"), form=F.BLOCK0)) == "block 0 offset 0x70 boot_info field dev_type (offset 0x76)"


def test_table_offsets_match_the_bytes() -> None:
    pt = build_program_table({3: 0x7FB}, 512)
    off = bootmap.program_table_entry(0x7FC, 3).offset
    assert off == 0x40 and int.from_bytes(pt[off : off + 8], "big") == 0x7FB
    ct = build_component_table(1, [load_entry(0x7E3, 512, 0x2000), execute_entry(0x0008000080010000)], 512)
    assert bootmap.HEADER_TYPE_AT == 4 and ct[4] == 1
    assert bootmap.ENTRY_TYPE_AT == 0x17 and ct[0x20 + 0x17] == TYPE_LOAD


@pytest.mark.parametrize("name", ["version", "part_start", "part_size", "dump_offset", "dump_size", "csum_offset", "csum_size", "csum"])
def test_superblock_field_offsets_match_the_bytes(name: str) -> None:
    values = {n: 0 for n in ("version", "part_start", "part_size", "dump_offset", "dump_size", "csum_offset", "csum_size", "csum")}
    values[name] = 0x1122334455667788
    raw = DumpSuperblock(**values).build()
    fo = superblock_field(0, name).field_offset
    assert fo is not None and raw[fo : fo + 8] == values[name].to_bytes(8, "big")
    assert str(superblock_field(0xF8400, name)) == f"superblock at byte 0xf8400 offset {fo:#x} field {name}"


# --- rendering ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "place,text",
    [
        (Place(lba=0x7FB, offset=0x117, structure="component entry", index=7, fields=("type",)),
         "block 0x7fb offset 0x117 (component entry 7) field type"),
        (Place(lba=0, offset=0x10, structure="boot record", fields=("program_table", "size")),
         "block 0x0 offset 0x10 (boot record) field program_table field size"),
        (Place(lba=0x7F5), "block 0x7f5"),
        (Place(lba=0, offset=0, fields=("magic",), form=F.BLOCK0), "block 0 offset 0x0 field magic"),
        (Place(disk="d.img", lba=0, offset=0x76, fields=("dev_type",), form=F.BLOCK0), "d.img block 0 offset 0x76 field dev_type"),
        (Place(byte=0xF8400, lba=0x7C2, offset=0, structure="dump superblock", fields=("magic",), form=F.BYTE),
         "byte offset 0xf8400 (block 0x7c2 offset 0x0, dump superblock) field magic"),
        (Place(byte=0xF8438, structure="dump superblock", fields=("csum_size",), form=F.BYTE),
         "byte offset 0xf8438 (dump superblock) field csum_size"),
        (Place(disk="d.img", byte=0x8000, form=F.BYTE), "d.img byte 0x8000"),
        (Place(disk="d.img", byte=0xF8400, via="block 0 offset 0x78", fields=("csum",), form=F.SUPERBLOCK),
         "d.img superblock at byte 0xf8400 (from block 0 offset 0x78) field csum"),
    ],
)
def test_each_form_renders_as_before(place: Place, text: str) -> None:
    assert str(place) == text


def test_with_field_takes_the_offset_from_the_layout() -> None:
    p = Place(lba=0, offset=BOOT_INFO_OFFSET, structure="boot_info").with_field("dump_sb_offset", BootInfo)
    assert p.field_offset == 8 and p.fields == ("dump_sb_offset",)
    assert p.with_field("x").field_offset == 8  # a field inside a field keeps the outer offset


def test_errors_carry_place_reason_errno_and_firmware_message_as_fields() -> None:
    p = bootmap.place(0x7FB, 0x20, "component entry", "blocklist", index=0)
    exc = PointerError("bad", where=p, reason=Reason.BAD_BLOCK_LIST_POINTER)
    assert exc.place is p and exc.where == "block 0x7fb offset 0x20 (component entry 0) field blocklist"
    assert str(exc) == f"{exc.where}: bad" and exc.reason is Reason.BAD_BLOCK_LIST_POINTER and exc.errno is None
    plain = DumpError("x", where="zcore/mem offset 0x0", errno=22)
    assert plain.place is None and plain.where == "zcore/mem offset 0x0" and plain.errno == 22
    assert FormatError("y").reason is None and ZiplDumpError("z").where is None
    ipl = IplError("No Program Table: detail", firmware_message="No Program Table", reason=Reason.NO_PROGRAM_TABLE)
    assert ipl.firmware_message == "No Program Table" and ipl.reason is Reason.NO_PROGRAM_TABLE


# --- reasons from the reader, messages in the firmware ---------------------------------------
@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("example")
    build_spec_example(d / "ex.img", d / "work")
    return d / "ex.img"


PT, CT, LIST0 = 0x7FC, 0x7FB, 0x7E3  # the worked example's program table, component table, first list block


def full_list_with_chain(path: Path, chain: int) -> None:
    """List block 0x7e3 with all 31 data slots used, so its chain slot is followed."""
    slots = b"".join(BlockPtr(0x7C3, 512, 0).build() for _ in range(31)) + BlockPtr(chain, 512, 0).build()
    poke(path, LIST0 * 512, slots)


def poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


DAMAGES = {
    "block0-magic": (lambda p: poke(p, 0, b"XIPL"), Reason.BOOT_RECORD_MAGIC, "No zIPL magic in block 0 (not a zipl SCSI disk)"),
    "no-program-table": (lambda p: poke(p, 0x10, bytes(16)), Reason.NO_PROGRAM_TABLE, "No Program Table"),
    "pt-pointer-size": (lambda p: poke(p, 0x18, struct.pack(">H", 4096)), Reason.BAD_PROGRAM_TABLE_POINTER, "Error reading Program Table"),
    "pt-magic": (lambda p: poke(p, PT * 512, b"XXXX"), Reason.PROGRAM_TABLE_MAGIC, "No zIPL magic in Program Table"),
    "pt-empty": (lambda p: poke(p, PT * 512 + 0x10, bytes(16)), Reason.EMPTY_PROGRAM_TABLE, "Empty Program Table"),
    "pt-entry": (lambda p: poke(p, PT * 512 + 0x10, struct.pack(">Q", 99999)), Reason.BAD_PROGRAM_TABLE_ENTRY, "Error reading Program Table"),
    "ct-magic": (lambda p: poke(p, CT * 512, b"XXXX"), Reason.COMPONENT_TABLE_MAGIC, "No zIPL magic in header"),
    "ct-list-pointer": (lambda p: poke(p, CT * 512 + 0x20, struct.pack(">Q", 99999)), Reason.BAD_BLOCK_LIST_POINTER, "zIPL failed to read BPRS"),
    "data-slot": (lambda p: poke(p, LIST0 * 512 + 8, struct.pack(">H", 4096)), Reason.BAD_DATA_SLOT, "zIPL load segment failed"),
    "chain-slot": (lambda p: full_list_with_chain(p, 99999), Reason.BAD_CHAIN_SLOT, "zIPL failed to read BPRS at 0x00000000000007e3"),
    "loop": (lambda p: full_list_with_chain(p, LIST0), Reason.BLOCK_LIST_LOOP, "block list of component entry 0 loops"),
}


class Machine:
    def __init__(self) -> None:
        self.storage = Storage(None, 64 << 20)
        self.hsa_size = 32 << 20
        self.hsa_saved = True  # the HSA was saved before the dump load (sim.interfaces.MachineView)


@pytest.mark.parametrize("name", list(DAMAGES))
def test_reason_decides_the_firmware_message(example: Path, tmp_path: Path, name: str) -> None:
    damage, reason, text = DAMAGES[name]
    path = Path(shutil.copy(example, tmp_path / "d.img"))
    damage(path)
    with DiskImage(path, 512) as disk, pytest.raises(IplError) as ei:
        scsi_load(Machine(), disk, dump=True)
    err = ei.value
    assert err.reason is reason and err.firmware_message == text
    assert err.message.startswith(f"{text}: ") and err.place is not None and err.where == str(err.place)


def test_reader_wording_does_not_decide_the_firmware_message(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewording a reader message leaves the firmware's text alone: only the reason counts."""
    path = Path(shutil.copy(example, tmp_path / "d.img"))
    poke(path, 0x10, bytes(16))
    real = bootmap.PointerError

    def reworded(message: str, **kw: object) -> PointerError:
        return real("the pointer to the table of programs is zero", **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bootmap, "PointerError", reworded)
    with DiskImage(path, 512) as disk, pytest.raises(IplError) as ei:
        scsi_load(Machine(), disk, dump=True)
    assert ei.value.firmware_message == "No Program Table"


def test_block_size_hint_reads_the_size_field_at_its_declared_offset(example: Path, tmp_path: Path) -> None:
    path = Path(shutil.copy(example, tmp_path / "d.img"))
    poke(path, 0x18, struct.pack(">H", 4096))
    with DiskImage(path, 512) as disk, pytest.raises(IplError, match=r"is the block size 4096\?"):
        scsi_load(Machine(), disk, dump=True)


def test_every_reason_the_loader_can_meet_has_a_text() -> None:
    reader_reasons = set(Reason) - {r for r in Reason if r.name.startswith(("BOOT_INFO", "SUPERBLOCK", "CHECKSUM"))}
    untexted = reader_reasons - set(FIRMWARE_TEXT)
    # Not QEMU refusals: NO_EXECUTE is reported by the loader itself, DATA_OUTSIDE_DISK fails the whole read.
    assert untexted == {Reason.NO_EXECUTE, Reason.DATA_OUTSIDE_DISK}
    assert firmware.DEFAULT_TEXT == "zIPL failed to read the boot program"
