"""zipl/rules.py: one table of small rules, and the few the firmware model shares with inspect."""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
from pathlib import Path

import pytest
from builders.bootmaps import build_4k, build_dump_disk, default_components
from builders.fakes import FakeMachine

from zipldump.disk.image import DiskImage
from zipldump.errors import IplError
from zipldump.formats.component_table import TYPE_EXECUTE, TYPE_LOAD, TYPE_SIGNATURE, ComponentEntry, SignatureHeader
from zipldump.plan.addresses import LoadedRange, check_hsa, hsa_overrun
from zipldump.sim.firmware import FIRMWARE_TEXT, scsi_load
from zipldump.zipl import rules
from zipldump.zipl.check import inspect_disk
from zipldump.zipl.rules import RULES, Rule


def test_every_rule_code_comes_from_a_rule_function() -> None:
    """Each code is yielded by exactly one function of the module (the table's, or a shared one)."""
    src = pyinspect.getsource(rules)
    assert [code for code in Rule if f"Rule.{code.name}," not in src] == []
    registered = [f for fld in dataclasses.fields(RULES) for f in getattr(RULES, fld.name)]
    assert len(registered) == len(set(registered)), "a rule registered twice runs twice"
    assert all(f.__module__ == rules.__name__ for f in registered)


def test_hsa_overrun_is_the_one_hsa_limit() -> None:
    assert hsa_overrun(0x1000, 0x1000, 0x2000) is None  # ending exactly at the limit is fine
    assert hsa_overrun(0x1000, 0x1001, 0x2000) == 0x2001
    assert hsa_overrun(0x1000, 0x1001, 0x2200, block_size=512) is None
    assert hsa_overrun(0x1000, 0x1001, 0x2000, block_size=512) == 0x2200  # whole blocks
    with pytest.raises(Exception, match="ends above the HSA limit"):
        check_hsa([LoadedRange("kernel", 0x1000, 0x1001)], 0x2000, block_size=512)


def test_signature_trailer_rule() -> None:
    from zipldump.formats.blockptr import BlockPtr

    ptr = BlockPtr(1, 512, 0)
    sig = ComponentEntry(ptr, TYPE_SIGNATURE, SignatureHeader(1, 700), index=0, offset=0x20)
    load = ComponentEntry(ptr, TYPE_LOAD, 0x10000, index=1, offset=0x40)
    assert rules.signature_trailer([sig, load], 1) == 740
    assert rules.signature_trailer([load, load], 1) == 0
    assert rules.signature_trailer([load], 0) == 0
    assert rules.holds(0x600, 740, 0x600 + 740) and not rules.holds(0x600, 740, 0x600 + 741)


def test_block_size_hint_for_inspect_and_firmware(tmp_path: Path) -> None:
    path = build_4k().write(tmp_path / "4k.img")
    with DiskImage(path, 512) as disk:
        f = rules.block_size_hint(disk)
    assert f is not None and f.values == {"size": 4096}
    assert f.message in inspect_disk(path, 512).notes
    with DiskImage(path, 512) as disk, pytest.raises(IplError) as ei:
        scsi_load(FakeMachine(), disk, dump=True)
    assert ei.value.message.endswith(FIRMWARE_TEXT[Rule.BLOCK_SIZE_HINT].format(size=4096))
    with DiskImage(path, 4096) as disk:
        assert rules.block_size_hint(disk) is None


def test_hsa_rule_is_inspects_error_and_the_loaders_refusal(tmp_path: Path) -> None:
    comps = default_components()
    next(c for c in comps if c.name == "initrd").address = 0x2000000 - 0x200
    path = build_dump_disk(comps=comps).write(tmp_path / "hsa.img")
    rep = inspect_disk(path)
    [err] = rep.errors
    assert err.kind == "hsa-limit" and "(component entry 6) field compdat (address)" in err.where
    with DiskImage(path, 512) as disk, pytest.raises(IplError) as ei:
        scsi_load(FakeMachine(), disk, dump=True)
    want = FIRMWARE_TEXT[Rule.ABOVE_HSA].format(entry=6, address=0x2000000 - 0x200, last=0x2000000 + 0x1FF, hsa=0x2000000)
    assert ei.value.message == want and ei.value.where is not None and "(component entry 6) field address" in ei.value.where


def test_firmware_texts_format_with_their_rules_values() -> None:
    """Every rule the firmware words names only values its rule function gives."""
    from zipldump.formats.blockptr import BlockPtr
    from zipldump.zipl.bootmap import BlockList, ComponentTable

    ptr = BlockPtr(1, 512, 0)
    ex = ComponentEntry(ptr, TYPE_EXECUTE, 0x80010000, index=1, offset=0x40)
    ld = ComponentEntry(ptr, TYPE_LOAD, 0x2000000, index=0, offset=0x20)
    ct = ComponentTable(5, 1, (ld, ex))
    found = [
        rules.psw_not_short(ct, ex),
        rules.above_hsa(ct, rules.Load(ld, 0x2000000, 512), 0x2000000),
        rules.execute_outside_loads(ct, ex, [rules.Load(ld, 0x2000000, 512)]),
        *rules.empty_component(rules.EntryView(ct, ld, None, 512, BlockList(1))),
    ]
    for f in found:
        assert f is not None
        assert FIRMWARE_TEXT[f.code].format(**f.values)
    assert {f.code for f in found if f is not None} | {Rule.BLOCK_SIZE_HINT, Rule.LAYOUT_VERSION} == {
        k for k in FIRMWARE_TEXT if isinstance(k, Rule)
    }
