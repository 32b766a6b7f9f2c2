"""The typed records of zipldump/formats and the one JSON encoder (zipldump/jsonout.py).

Every Record: its fields are its Struct's named non-constant fields, it
round-trips parse/build, and its offsets are where its bytes really are.
The encoder: each formatting rule, and the shapes the commands print.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

import zipldump.formats as formats_pkg
from zipldump import jsonout
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootmap_header import BootmapHeader
from zipldump.formats.bootrecord import BootInfo, BootRecord, dump_boot_info
from zipldump.formats.component_table import (
    STAGE3_PSW,
    TYPE_LOAD,
    ComponentEntry,
    ComponentHeader,
    SignatureHeader,
    execute_entry,
    load_entry,
    signature_entry,
)
from zipldump.formats.dump_superblock import DumpSuperblock
from zipldump.formats.fields import Record, layout_names, offset_of
from zipldump.formats.lowcore import CpuRegisters
from zipldump.formats.program_table import ProgramTable
from zipldump.jsonout import OMIT, Member, jmeta, member, to_json, value_json


def all_records() -> list[type[Record]]:
    out: set[type[Record]] = set()
    for info in pkgutil.iter_modules(formats_pkg.__path__):
        mod = importlib.import_module(f"zipldump.formats.{info.name}")
        out |= {o for o in vars(mod).values() if isinstance(o, type) and issubclass(o, Record) and o is not Record}
    return sorted(out, key=lambda c: c.__name__)


# One instance with every field non-zero where the layout allows it.
EXAMPLES: dict[type[Record], Record] = {
    BlockPtr: BlockPtr(0x7C3, 512, 31),
    BootInfo: dump_boot_info(0xF8400),
    BootRecord: BootRecord(1, BlockPtr(0x7FC, 512, 0), dump_boot_info(0xF8400)),
    ProgramTable: ProgramTable(tuple(BlockPtr(i + 1, 512, 0) for i in range(31))),
    ComponentHeader: ComponentHeader(1),
    SignatureHeader: SignatureHeader(1, 0x123),
    ComponentEntry: load_entry(0x7E3, 512, 0x2000),
    DumpSuperblock: DumpSuperblock(version=1, part_start=1, part_size=2, dump_offset=3, dump_size=4, csum_offset=5, csum_size=6, csum=7),
    BootmapHeader: BootmapHeader(),
}


def test_every_record_has_an_example() -> None:
    assert set(all_records()) == set(EXAMPLES)


@pytest.mark.parametrize("cls", all_records(), ids=lambda c: c.__name__)
def test_record_fields_are_the_layout_fields(cls: type[Record]) -> None:
    layout = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("context")]
    assert tuple(layout) == layout_names(cls.LAYOUT)
    assert cls.sizeof() == cls.LAYOUT.sizeof()


@pytest.mark.parametrize("cls", all_records(), ids=lambda c: c.__name__)
def test_record_round_trips(cls: type[Record]) -> None:
    rec = EXAMPLES[cls]
    raw = rec.build()
    assert len(raw) == cls.sizeof()
    back = cls.parse(raw)
    assert back == rec
    assert back.build() == raw
    # parse reads only the record's bytes: trailing data is ignored
    assert cls.parse(raw + b"\xff" * 8) == rec


@pytest.mark.parametrize("cls", all_records(), ids=lambda c: c.__name__)
def test_record_offsets_are_where_the_bytes_change(cls: type[Record]) -> None:
    rec = EXAMPLES[cls]
    raw = rec.build()
    for f in dataclasses.fields(cls):
        if f.metadata.get("context"):
            continue
        assert cls.offset_of(f.name) == offset_of(cls.LAYOUT, f.name) == offset_of(cls, f.name)
        value = getattr(rec, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and f.name != "type":
            changed = dataclasses.replace(rec, **{f.name: value ^ 1})  # type: ignore[type-var]
            diff = [i for i, (a, b) in enumerate(zip(raw, changed.build(), strict=True)) if a != b]
            assert diff, f.name
            size = cls.LAYOUT.subcons[[s.name for s in cls.LAYOUT.subcons].index(f.name)].sizeof()
            assert cls.offset_of(f.name) <= diff[0] < cls.offset_of(f.name) + size, f.name


def test_nested_records_and_context() -> None:
    block0 = bytearray(512)
    block0[: BootRecord.sizeof()] = EXAMPLES[BootRecord].build()
    rec = BootRecord.parse(block0, has_pc_label=True)
    assert rec.program_table == BlockPtr(0x7FC, 512, 0) and isinstance(rec.boot_info, BootInfo)
    assert rec.has_pc_label and rec == dataclasses.replace(EXAMPLES[BootRecord], has_pc_label=True)  # type: ignore[type-var]
    assert rec.build() == bytes(block0[: BootRecord.sizeof()])  # context is no byte of the layout
    pt = ProgramTable.parse(EXAMPLES[ProgramTable].build(), lba=0x7FC)
    assert pt.lba == 0x7FC and pt.entries[30] == BlockPtr(31, 512, 0) and len(pt.valid()) == 31


def test_component_entry_compdat_by_type() -> None:
    load, sig, exe = load_entry(7, 512, 0x10000), signature_entry(8, 512, 99), execute_entry(STAGE3_PSW)
    for e in (load, sig, exe):
        assert ComponentEntry.parse(e.build()) == e
    assert (load.address, load.psw, load.kind) == (0x10000, None, "load")
    assert (sig.signature_format, sig.signature_length, sig.address) == (1, 99, None)
    assert (exe.psw, exe.address, exe.blocklist.is_null) == (STAGE3_PSW, None, True)
    other = ComponentEntry.parse(bytes(23) + b"\x07" + b"\x01" * 8, index=2, offset=0x60)
    assert other.compdat == b"\x01" * 8 and other.kind == "type 0x7" and (other.index, other.offset) == (2, 0x60)
    assert other.address is None and other.psw is None and other.signature_length is None
    assert ComponentEntry.parse(load.build()).type == TYPE_LOAD


def test_boot_info_empty_counts_the_reserved_bytes() -> None:
    assert BootInfo().is_empty and BootInfo.parse(bytes(40)).is_empty
    assert not BootInfo.parse(bytes(39) + b"\x01").is_empty  # a reserved byte set: not an IPL disk's
    assert dump_boot_info(0x200).has_magic


def test_superblock_json_is_its_fields_offset_first() -> None:
    sb = DumpSuperblock.parse(EXAMPLES[DumpSuperblock].build(), offset=0xF8400)
    assert list(sb.to_json()) == ["offset", "version", "part_start", "part_size", "dump_offset", "dump_size", "csum_offset", "csum_size", "csum"]
    assert sb.to_json()["offset"] == 0xF8400 and sb.to_json()["csum"] == 7


# ---------------------------------------------------------------------- the encoder
@dataclass
class _Inner:
    n: int = field(metadata=jmeta("hex"))


@dataclass
class _Own:
    def to_json(self) -> dict[str, Any]:
        return {"own": True}


@dataclass
class _Fields:
    a: int = field(metadata=jmeta("hex32"))
    b: int | None = field(metadata=jmeta("x64"))
    c: list[int] = field(metadata=jmeta("x32", key="see"))
    hidden: str = field(metadata=jmeta(OMIT))
    maybe: int | None = field(metadata=jmeta(skip_none=True))
    inner: _Inner
    own: _Own
    raw: bytes
    t: float = field(metadata=jmeta("round3"))


def test_encoder_formats_keys_and_omissions() -> None:
    obj = _Fields(0x1F, None, [1, 0xABCDEF01], "no", None, _Inner(255), _Own(), b"\x01\xff", 1.23456)
    assert to_json(obj) == {
        "a": "0x0000001f",
        "b": None,  # a format leaves None alone
        "see": ["00000001", "abcdef01"],  # a format applies to each element; a key of its own
        "inner": {"n": "0xff"},  # nested dataclass: by its own fields
        "own": {"own": True},  # an object's own to_json() wins
        "raw": "01ff",
        "t": 1.235,
    }
    assert to_json(dataclasses.replace(obj, maybe=0))["maybe"] == 0


def test_every_format() -> None:
    f = jsonout.FORMATS
    assert [f[k](0x1F) for k in ("hex", "hex32", "hex64", "x", "x32", "x64")] == [
        "0x1f", "0x0000001f", "0x000000000000001f", "1f", "0000001f", "000000000000001f"]
    assert (f["round1"](2.25), f["round3"](0.12345)) == (2.2, 0.123)
    with pytest.raises(ValueError, match="unknown JSON format"):
        jmeta("hex16")
    with pytest.raises(ValueError, match="unknown JSON format"):
        member("x", fmt="hex16")


@dataclass
class _Tabled(jsonout.JsonMixin):
    x: int
    y: int

    JSON: ClassVar[tuple[Member, ...]] = (
        member("sum", lambda o: o.x + o.y),
        member("y", fmt="hex"),
        member("x_renamed", "x"),
        member("gone", lambda o: None, skip_none=True),
    )


def test_encoder_table_order_and_computed_members() -> None:
    assert list(_Tabled(1, 2).to_json().items()) == [("sum", 3), ("y", "0x2"), ("x_renamed", 1)]
    assert to_json(_Tabled(1, 2), (member("x"),)) == {"x": 1}  # another view of the same object


def test_value_json_containers() -> None:
    assert value_json({"k": (BlockPtr(1, 512, 0), None)}) == {"k": [{"blockno": 1, "size": 512, "blockct": 0}, None]}
    assert json.dumps(value_json([_Tabled(2, 3)])) == '[{"sum": 5, "y": "0x3", "x_renamed": 2}]'


def test_cpu_registers_json_keeps_its_shape() -> None:
    regs = CpuRegisters(psw_mask=0x0706, psw_addr=0x10, gprs=tuple(range(16)), prefix=0x2000, fpc=1, timer=2, ckc=3 << 8, todpreg=4, cpu_address=5)
    out = regs.to_json()
    assert list(out) == ["psw", "prefix", "gprs", "acrs", "fprs", "fpc", "crs", "timer", "ckc", "todpreg"]
    assert out["psw"] == "0000000000000706 0000000000000010" and out["prefix"] == "0x00002000"
    assert out["gprs"][15] == "000000000000000f" and out["acrs"][0] == "00000000" and out["fpc"] == "00000001"
    assert out["ckc"] == "0000000000000300" and out["todpreg"] == "00000004"
