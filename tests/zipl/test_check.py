"""`zipldump inspect`: the worked example reads back as spec §13.4 says, and every
corruption gives its documented exit code and a message naming the place."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from builders.bootmaps import (
    PARMLINE,
    Layout,
    build_4k,
    build_dump_disk,
    default_components,
    fragmented_layout,
)
from builders.tools import have_tool

from zipldump.cli import main
from zipldump.errors import (
    BlockListLoopError,
    ChecksumError,
    ComponentError,
    HsaLimitError,
    MagicError,
    PointerError,
    SuperblockError,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.dump_superblock import cksm
from zipldump.formats.program_table import build_program_table
from zipldump.formats.s390dump import DUMP_MAGIC
from zipldump.zipl.check import inspect_disk

PATTERN = b"\xde\xad\xbe\xef\x5a"


def run_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    rc = main(["inspect", str(path), "--json", *extra])
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


def write(lay: Layout, tmp_path: Path, name: str = "disk.img") -> Path:
    return lay.write(tmp_path / name)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the worked example -------------------------------------------------------------------
def test_worked_example_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, err = run_json(capsys, write(build_dump_disk(), tmp_path))
    assert rc == 0 and doc["valid"] is True and doc["problems"] == [] and err == ""
    assert doc["block_size"] == 512
    [prog] = doc["programs"]
    assert prog["index"] == 0 and prog["type"] == "dump" and prog["component_table"] == 0x7FB
    loads = [c for c in prog["components"] if c["kind"] == "load"]
    assert [(c["address"], c["length"]) for c in loads] == [
        (0x2000, 0x4000),
        (0xF000, 0x1000),
        (0xA000, 0x400),
        (0x9000, 0x200),
        (0x10000, 0x600),
        (0x11000, 0x200),
        (0x30000, 0x400),
    ]
    shas = {c["address"]: c["sha256"] for c in loads}
    assert shas[0xA000] == sha(b"S" * 1024)
    assert shas[0x10000] == sha(b"K" * 1536)
    assert shas[0x30000] == sha(b"R" * 1024)
    assert shas[0x11000] == sha(PARMLINE.ljust(512, b"\0"))
    assert shas[0x2000] == sha(bytes(0x4000))
    ex = prog["components"][-1]
    assert ex == {"kind": "execute", "entry": 7, "psw": 0x000800008000A000, "entry_address": 0xA000, "addressing": "31-bit"}
    d = doc["dump"]
    assert {k: d[k] for k in ("offset", "version", "part_start", "part_size", "dump_offset", "dump_size", "csum_offset", "csum_size", "csum")} == {
        "offset": 0xF8400,
        "version": 1,
        "part_start": 0x8000,
        "part_size": 0xF8000,
        "dump_offset": 0,
        "dump_size": 0xF0000,
        "csum_offset": 0,
        "csum_size": 0x1000,
        "csum": 0x12345678,
    }
    assert d["checksum_ok"] is True and d["partition"] == 1 and d["present"] == "none"
    assert d["layout"] == "superblock third in the bootmap (zipl >= 2.25)"


def test_human_report_is_aligned_key_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["inspect", str(write(build_dump_disk(), tmp_path))])
    out, _ = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert all(line.index(": ") == lines[0].index(": ") for line in lines)
    assert "Block size............: 512" in lines
    assert any("EXECUTE" in line and "0x000800008000a000" in line for line in lines)
    assert any(line.startswith("  Checksum") and line.endswith(": ok") for line in lines)
    assert lines[-1].endswith(": valid")


def test_4096_byte_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(build_4k(), tmp_path)
    rc, doc, _ = run_json(capsys, path, "--block-size", "4096")
    assert rc == 0, doc["problems"]
    assert doc["block_size"] == 4096 and doc["dump"]["checksum_ok"] is True
    loads = [c for c in doc["programs"][0]["components"] if c["kind"] == "load"]
    assert [c["length"] for c in loads] == [0x4000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000, 0x1000]
    # read with the wrong block size, the pointers' size fields disagree
    rc, doc, _ = run_json(capsys, path, "--block-size", "512")
    assert rc == PointerError.exit_code
    # without --block-size the disk says 4096 itself (disk.geometry)
    rc, doc, _ = run_json(capsys, path)
    assert rc == 0 and doc["block_size"] == 4096


@pytest.mark.parametrize("legacy", [False, True], ids=["zipl-2.26", "zipl-2.16"])
@pytest.mark.parametrize("bs", [512, 4096])
def test_undefined_bytes_hold_a_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str], bs: int, legacy: bool) -> None:
    """Spec §7.4 / Appendix B item 8: bytes zipl leaves unwritten may hold anything."""
    if bs == 512:
        lay = build_dump_disk(fill=PATTERN, legacy=legacy)
    else:
        lay = build_dump_disk(bs=4096, disk_blocks=2048, part_start=256, part_blocks=1792, bootmap_start=1728, fill=PATTERN, legacy=legacy)
    # the pattern really is there: after the superblock's 72 bytes, after the header, in the boot code
    sb = lay.superblock * bs
    assert lay.image[sb + 72 : sb + 77] != bytes(5)
    assert lay.image[0x98:0x9D] != bytes(5)
    hdr_end = lay.header * bs + (38 if legacy else 512)
    if hdr_end < (lay.header + 1) * bs:
        assert lay.image[hdr_end : hdr_end + 5] != bytes(5)
    rc, doc, _ = run_json(capsys, write(lay, tmp_path), "--block-size", str(bs))
    assert rc == 0, doc["problems"]
    assert doc["problems"] == []
    kernel = next(c for c in doc["programs"][0]["components"] if c.get("address") == 0x10000)
    # the kernel's last block tail holds the pattern, so only its first 1536 bytes are 'K'
    assert kernel["length"] == -(-1536 // bs) * bs


def test_zipl_216_layout_superblock_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, _ = run_json(capsys, write(build_dump_disk(legacy=True), tmp_path))
    assert rc == 0, doc["problems"]
    assert doc["dump"]["layout"] == "superblock after the program table (zipl 1.24-2.24)"
    assert doc["dump"]["offset"] == 0xFF800
    assert [c["address"] for c in doc["programs"][0]["components"] if c["kind"] == "load"][-1] == 0x20000


def first_error(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["problems"] if p["severity"] == "error")


# --- failures: one exit code per class, a message naming the place ------------------------------
def expect(capsys: pytest.CaptureFixture[str], path: Path, cls: type, where: str, *extra: str) -> dict[str, Any]:
    rc, doc, err = run_json(capsys, path, *extra)
    assert rc == cls.exit_code, doc["problems"]
    assert doc["valid"] is False
    first = first_error(doc)
    assert first["kind"] == cls.kind
    assert where in first["where"], first
    # one stderr line naming the same place
    assert err.count("\n") == 1 and err.startswith("zipldump: error: ") and where in err
    return doc


def test_bad_magic_boot_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0, b"zIPX")
    doc = expect(capsys, write(lay, tmp_path), MagicError, "block 0x0 offset 0x0 (boot record) field magic")
    assert doc["programs"] == [] and doc["dump"] is None


def test_bad_magic_program_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FC * 512, b"\0")
    doc = expect(capsys, write(lay, tmp_path), MagicError, "block 0x7fc offset 0x0 (program table) field magic")
    assert doc["dump"]["checksum_ok"] is True  # the rest was still checked


def test_bad_magic_component_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FB * 512 + 3, b"l")
    expect(capsys, write(lay, tmp_path), MagicError, "block 0x7fb offset 0x0 (component table) field magic")


def test_bad_magic_superblock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x7C2 * 512, b"ZFCPDUMX")
    expect(capsys, write(lay, tmp_path), MagicError, "byte offset 0xf8400")


def test_bad_magic_boot_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x70, b"ZIPL")
    expect(capsys, write(lay, tmp_path), MagicError, "block 0x0 offset 0x70 (boot_info) field magic")


def test_pointer_past_disk_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7FA * 512, 0x900)  # initrd data -> block 0x900 of a 0x800-block disk
    doc = expect(capsys, write(lay, tmp_path), PointerError, "block 0x7fa offset 0x0 (block list slot 0) field blockno")
    assert "past the end of the disk" in first_error(doc)["message"]
    # the other components were still read
    assert sum(1 for c in doc["programs"][0]["components"] if "sha256" in c) == 6


def test_truncated_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    path = write(lay, tmp_path)
    with open(path, "r+b") as fh:
        fh.truncate(0x7F8 * 512)  # cut before the initrd, its list, the tables
    expect(capsys, path, PointerError, "block 0x0 offset 0x10 (boot record) field program_table")


def test_looped_block_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    comps = default_components()
    kern = next(c for c in comps if c.name == "kernel")
    kern.data, kern.fragment = b"K" * (40 * 512), True
    comps = [c for c in comps if c.name not in ("parmline", "initrd")]
    lay = build_dump_disk(comps=comps, disk_blocks=4096, part_blocks=4032, bootmap_start=4032 - 200)
    first, second = kern.list_lbas
    for i in range(9, 31):
        lay.poke(second * 512 + i * 16, BlockPtr(kern.data_lbas[0], 512, 0).build())
    lay.poke(second * 512 + 0x1F0, BlockPtr(first, 512, 0).build())
    doc = expect(capsys, write(lay, tmp_path), BlockListLoopError, f"block {second:#x} offset 0x1f0 (block list chain slot)")
    assert f"{first:#x}" in first_error(doc)["message"]


def test_bad_checksum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x8000 + 100, b"\x01")  # the partition start changed after zipl ran
    doc = expect(capsys, write(lay, tmp_path), ChecksumError, "superblock at byte 0xf8400 offset 0x40 field csum")
    assert doc["dump"]["checksum_ok"] is False
    assert doc["dump"]["checksum_computed"] == cksm(bytes(100) + b"\x01" + bytes(4096 - 101))


def test_missing_execute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FB * 512 + 0x100, bytes(32))
    expect(capsys, write(lay, tmp_path), ComponentError, "block 0x7fb offset 0x100 (component entry 7) field type")


def test_psw_without_bit_12(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk(psw=0x000000008000A000)
    expect(capsys, write(lay, tmp_path), ComponentError, "(component entry 7) field compdat (PSW)")


def test_overlapping_components(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    comps = default_components()
    next(c for c in comps if c.name == "parmline").address = 0x10400  # inside the kernel 0x10000-0x105ff
    doc = expect(capsys, write(build_dump_disk(comps=comps), tmp_path), ComponentError, "(component entry 5) field compdat (address)")
    assert "overlap" in first_error(doc)["message"] and "0x10000-0x105ff" in first_error(doc)["message"]


def test_touching_components_do_not_overlap(tmp_path: Path) -> None:
    comps = default_components()
    next(c for c in comps if c.name == "parmline").address = 0x10600  # right after the kernel's last byte
    rep = inspect_disk(write(build_dump_disk(comps=comps), tmp_path))
    assert rep.valid, rep.problems


def test_dump_tool_above_hsa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    comps = default_components()
    next(c for c in comps if c.name == "initrd").address = 0x2000000 - 0x200  # 1 KiB ending 0x200 above 32 MiB
    path = write(build_dump_disk(comps=comps), tmp_path)
    doc = expect(capsys, path, HsaLimitError, "(component entry 6) field compdat (address)")
    assert "0x2000000" in first_error(doc)["message"]
    rc, doc, _ = run_json(capsys, path, "--hsa-size", "512M")
    assert rc == 0, doc["problems"]


def test_dump_tool_ending_exactly_at_hsa(tmp_path: Path) -> None:
    comps = default_components()
    next(c for c in comps if c.name == "initrd").address = 0x2000000 - 0x400
    rep = inspect_disk(write(build_dump_disk(comps=comps), tmp_path))
    assert rep.valid, rep.problems


def test_small_hsa_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect(capsys, write(build_dump_disk(), tmp_path), HsaLimitError, "(component entry 6)", "--hsa-size", "128K")


def test_superblock_disagrees_with_partition_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7C2 * 512 + 0x18, 0xF0000)  # part_size; keep the checksum range valid
    doc = expect(capsys, write(lay, tmp_path), SuperblockError, "field part_size")
    msg = first_error(doc)["message"]
    assert "0xf0000" in msg and "0xf8000" in msg
    lay = build_dump_disk()
    lay.image[0x1C6:0x1CA] = (0x48).to_bytes(4, "little")
    lay.image[0x1CA:0x1CE] = (0x7B8).to_bytes(4, "little")
    doc = expect(capsys, write(lay, tmp_path, "b.img"), SuperblockError, "field part_start")
    msg = first_error(doc)["message"]
    assert "0x8000" in msg and "0x9000" in msg


def test_dump_area_covering_the_dump_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7C2 * 512 + 0x28, 0xF0000 + 0x200 * 3)  # dump_size reaches into the superblock
    expect(capsys, write(lay, tmp_path), SuperblockError, "field dump_size")


def test_dump_present_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x8000, DUMP_MAGIC)
    lay.u64(0x7C2 * 512 + 0x40, cksm(bytes(lay.image[0x8000:0x9000])))  # the dump tool updates the checksum
    rc, doc, _ = run_json(capsys, write(lay, tmp_path))
    assert rc == 0, doc["problems"]
    assert doc["dump"]["present"] == "s390"
    assert any("s390 dump is present" in n for n in doc["notes"])


def test_unknown_version_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(4, (2).to_bytes(4, "big"))
    rc, doc, err = run_json(capsys, write(lay, tmp_path))
    assert rc == 0 and doc["valid"] is True and err == ""
    [w] = doc["problems"]
    assert w["severity"] == "warning" and w["where"] == "block 0x0 offset 0x4 (boot record) field version_id"


def test_menu_entries_sharing_a_component_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    # an IPL copy of the component table at the free block 0x7FD, menu: 1 -> IPL, 2 -> dump, 0 = default = 2
    ct = bytearray(lay.image[0x7FB * 512 : 0x7FC * 512])
    ct[4] = 0
    lay.poke(0x7FD * 512, bytes(ct))
    lay.poke(0x7FC * 512, build_program_table({0: 0x7FB, 1: 0x7FD, 2: 0x7FB}, 512))
    rc, doc, _ = run_json(capsys, write(lay, tmp_path))
    assert rc == 0, doc["problems"]
    progs = doc["programs"]
    assert [(p["index"], p["type"], p["component_table"], p["duplicate_of"]) for p in progs] == [
        (0, "dump", 0x7FB, None),
        (1, "ipl", 0x7FD, None),
        (2, "dump", 0x7FB, 0),
    ]
    assert progs[2]["components"] == progs[0]["components"]
    assert any("entries 0 and 2" in n for n in doc["notes"])


def test_ipl_disk_without_boot_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x70, bytes(40))
    lay.poke(0x7FB * 512 + 4, b"\0")  # IPL component table
    rc, doc, _ = run_json(capsys, write(lay, tmp_path))
    assert rc == 0, doc["problems"]
    assert doc["dump"] is None and doc["programs"][0]["type"] == "ipl"


def test_not_a_zipl_disk_names_block_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "zero.img"
    path.write_bytes(bytes(1 << 16))
    expect(capsys, path, MagicError, "block 0x0 offset 0x0")


def test_missing_image_is_a_disk_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["inspect", str(tmp_path / "nope.img")])
    _, err = capsys.readouterr()
    assert rc == 3 and "nope.img" in err


def test_bad_hsa_size_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(write(build_dump_disk(), tmp_path)), "--hsa-size", "lots"]) == 2


# --- against the installer ------------------------------------------------------------------
@pytest.mark.parametrize("bs,size", [(512, 64 << 20), (4096, 320 << 20)])
def test_inspect_lists_what_the_installer_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str], bs: int, size: int) -> None:
    """inspect --json of an installed image lists exactly the installer's components (its --json)."""
    import importlib.util

    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.sim.payloads import write_demo_payloads

    if importlib.util.find_spec("zipldump.commands.install") is None:
        pytest.skip("zipldump install is not available")
    pl = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "disk.img"
    make_disk(img, size, block_size=bs, parts=[PartSpec(None)])
    rc = main(["install", str(img), "--dumpto", "1", "--block-size", str(bs), "--image", str(pl.image),
               "--ramdisk", str(pl.ramdisk), "--stage3", str(pl.stage3), "-n", "--json"])
    out, _ = capsys.readouterr()
    assert rc == 0
    inst = json.loads(out)
    rc, doc, err = run_json(capsys, img, "--block-size", str(bs))
    assert rc == 0 and doc["problems"] == [] and err == "", doc["problems"]
    assert doc["dump"]["offset"] == inst["superblock_offset"] and doc["dump"]["dump_size"] == inst["dump_size"]
    assert doc["dump"]["part_start"] == inst["partition"]["start_bytes"] and doc["dump"]["checksum_ok"]
    [iprog] = inst["programs"]
    [prog] = doc["programs"]
    assert prog["component_table"] == iprog["component_table"] and prog["type"] == iprog["header_type"] == "dump"
    loads = [c for c in prog["components"] if c["kind"] == "load"]
    assert len(loads) == len(iprog["components"])
    raw = img.read_bytes()
    for mine, theirs in zip(loads, iprog["components"], strict=True):
        assert mine["address"] == theirs["address"]
        assert mine["length"] == -(-theirs["length"] // bs) * bs
        assert [[e["block"], e["blocks"]] for e in mine["extents"]] == theirs["extents"]
        # the inspector's hash covers whole blocks; the installer's the real length: both from the same bytes
        data = b"".join(raw[b * bs : (b + n) * bs] for b, n in theirs["extents"])
        assert mine["sha256"] == sha(data)
        assert sha(data[: theirs["length"]]) == theirs["sha256"]
    by_addr = {c["address"]: c for c in loads}
    assert by_addr[0x10000]["sha256"] == sha(pl.image.read_bytes().ljust(by_addr[0x10000]["length"], b"\0"))
    assert prog["components"][-1]["psw"] == int(iprog["execute_psw"], 16)


# --- blocks used in two roles -------------------------------------------------------------
def test_program_table_entry_pointing_at_the_program_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7FC * 512 + 0x10, 0x7FC)
    expect(capsys, write(lay, tmp_path), PointerError, "block 0x7fc offset 0x10 (program table entry 0)")


def test_block_list_pointing_at_the_component_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7FB * 512 + 0x20 + 4 * 32, 0x7FB)  # kernel entry's list pointer -> the component table itself
    doc = expect(capsys, write(lay, tmp_path), PointerError, "block 0x7fb offset 0xa0 (component entry 4) field blocklist")
    assert "already a component table" in first_error(doc)["message"]


def test_data_covering_the_component_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x7F5 * 512, BlockPtr(0x7FA, 512, 2).build())  # kernel data 0x7fa..0x7fc: initrd list, CT, PT
    doc = expect(capsys, write(lay, tmp_path), PointerError, "block 0x7fa")
    assert "program 0 entry 4 (load)" in first_error(doc)["message"]


# --- stage-3 parameters -----------------------------------------------------------------------
def test_stage3_parameters_of_the_worked_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, _ = run_json(capsys, write(build_dump_disk(), tmp_path))
    assert rc == 0
    assert doc["programs"][0]["stage3"] == {
        "parm_addr": 0x11000,
        "initrd_addr": 0x30000,
        "initrd_len": 0x400,
        "load_psw": 0x0008000080010000,
        "extra_parm": 0,
        "flags": 0x0001000000000000,
        "image_len": 0x600,
        "image_addr": 0x10000,
        "parmline": PARMLINE[:-1].decode(),
    }
    # §13.4: the 0x600-byte kernel could not be started by stage 3; a note, not a problem
    assert any("image_len 0x600" in n for n in doc["notes"])


def test_stage3_initrd_address_without_a_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7F0 * 512 + 8, 0x40000)
    doc = expect(capsys, write(lay, tmp_path), ComponentError, "block 0x7f0 offset 0x8 (stage-3 parameters, program 0) field initrd_addr")
    assert "0x40000" in first_error(doc)["message"]


def test_stage3_image_len_longer_than_the_kernel_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.u64(0x7F0 * 512 + 0x30, 0x601)
    expect(capsys, write(lay, tmp_path), ComponentError, "block 0x7f0 offset 0x38 (stage-3 parameters, program 0) field image_addr")


def test_stage3_image_len_of_a_signed_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Secure IPL (spec §8.1, §8.9): the kernel LOAD holds the file without its signature
    trailer, but zipl's image_len is the stat() size of the whole file, trailer included."""
    from zipldump.formats.component_table import ComponentEntry, signature_entry

    def signed(image_len: int) -> Path:
        lay = build_dump_disk()
        ct = 0x7FB * 512
        kernel_entry = ct + 0x20 + 4 * 32  # heap, stack, stage3, params, then the kernel
        rest = bytes(lay.image[kernel_entry : ct + 0x20 + 8 * 32])
        lay.poke(kernel_entry + 32, rest)  # kernel, parmline, initrd, EXECUTE move down one slot
        # the SIGNATURE's 700 bytes of PKCS#7 data: any list of >= 700 bytes will do (the initrd's)
        lay.poke(kernel_entry, ComponentEntry.build(signature_entry(0x7FA, 512, 700)))
        lay.u64(0x7F0 * 512 + 0x30, image_len)
        return write(lay, tmp_path, f"signed-{image_len}.img")

    rc, doc, _ = run_json(capsys, signed(0x600 + 700 + 40))
    assert rc == 0 and [p for p in doc["problems"] if p["severity"] == "error"] == [], doc["problems"]
    assert [c["kind"] for c in doc["programs"][0]["components"]][4:6] == ["signature", "load"]
    expect(capsys, signed(0x600 + 700 + 41), ComponentError, "block 0x7f0 offset 0x38 (stage-3 parameters, program 0) field image_addr")


# --- mutation: every damaged chain ends in a report, never a crash or a hang ----------------------
def test_single_byte_mutations_of_metadata_never_crash(tmp_path: Path) -> None:
    import random

    lay = build_dump_disk()
    path = write(lay, tmp_path)
    base = bytes(lay.image)
    meta_blocks = [0, 0x7C2, 0x7E3, 0x7EC, 0x7EF, 0x7F1, 0x7F5, 0x7F7, 0x7FA, 0x7FB, 0x7FC]
    rng = random.Random(1234)
    offsets = [b * 512 + o for b in meta_blocks for o in (rng.randrange(0x98 if b == 0 else 512) for _ in range(25))]
    kinds: set[str] = set()
    with open(path, "r+b") as fh:
        for off in offsets:
            value = rng.choice([0x00, 0xFF, base[off] ^ 0x01, base[off] ^ 0x80, rng.randrange(256)])
            fh.seek(off)
            fh.write(bytes([value]))
            fh.flush()
            rep = inspect_disk(path)  # must not raise
            assert rep.valid or rep.exit_code in {21, 22, 23, 24, 25, 26, 11}, (hex(off), rep.problems)
            kinds.update(p.kind for p in rep.errors)
            fh.seek(off)
            fh.write(base[off : off + 1])
    assert {"bad-magic", "bad-pointer"} <= kinds


@pytest.mark.parametrize("case", ["gpt-dump-direct", "ext2-ipl-bootmap"])
def test_installed_ipl_and_gpt_disks_are_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    """The installer's other targets: a GPT dump disk without stage 3, and an IPL bootmap file in ext2."""
    import importlib.util

    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.sim.payloads import write_demo_payloads

    if importlib.util.find_spec("zipldump.commands.install") is None:
        pytest.skip("zipldump install is not available")
    if case == "ext2-ipl-bootmap" and not have_tool("mke2fs"):
        pytest.skip("mke2fs missing")
    pl = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "disk.img"
    if case == "gpt-dump-direct":
        make_disk(img, 64 << 20, label="gpt", parts=[PartSpec(None)])
        args = ["--dumpto", "1"]
    else:
        make_disk(img, 64 << 20, parts=[PartSpec(None, "ext2")])
        args = ["--target", "1", "--stage3", str(pl.stage3), "-P", "root=/dev/ram0 quiet"]
    rc = main(["install", str(img), *args, "--image", str(pl.image), "--ramdisk", str(pl.ramdisk), "-n", "--json"])
    inst = json.loads(capsys.readouterr()[0])
    assert rc == 0
    rc, doc, err = run_json(capsys, img)
    assert rc == 0 and doc["problems"] == [] and err == "", doc["problems"]
    [prog] = doc["programs"]
    loads = [c for c in prog["components"] if c["kind"] == "load"]
    assert [c["address"] for c in loads] == [c["address"] for c in inst["programs"][0]["components"]]
    if case == "gpt-dump-direct":
        assert prog["type"] == "dump" and doc["dump"]["partition"] == 1 and doc["dump"]["checksum_ok"]
        assert prog["components"][-1]["entry_address"] == 0x10000 and "stage3" not in prog
    else:
        assert prog["type"] == "ipl" and doc["dump"] is None
        assert prog["stage3"]["parmline"] == "root=/dev/ram0 quiet"
        assert prog["stage3"]["initrd_len"] == pl.ramdisk_size


def test_nonzero_reserved_bytes_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = build_dump_disk()
    lay.poke(0x30, b"\x01")  # boot record reserved2
    lay.poke(0x7FB * 512 + 0x10, b"\x02")  # component table header reserved
    lay.poke(0x7FB * 512 + 0x140, b"\x03")  # after the EXECUTE entry
    rc, doc, err = run_json(capsys, write(lay, tmp_path))
    assert rc == 0 and doc["valid"] and err == ""
    assert [p["where"] for p in doc["problems"]] == [
        "block 0x0 offset 0x30 (boot record) field reserved2",
        "block 0x7fb offset 0x10 (component table) field header reserved",
        "block 0x7fb offset 0x140 (component table) field after the EXECUTE entry",
    ]
    assert {p["severity"] for p in doc["problems"]} == {"warning"}


def test_legacy_execute_psw_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """zipl 2.0-2.8 started stage 3 at 0xA050 (spec §5.3); the parameters are then not separate."""
    rc, doc, _ = run_json(capsys, write(build_dump_disk(psw=0x000800008000A050), tmp_path))
    assert rc == 0 and doc["problems"] == [], doc["problems"]
    assert doc["programs"][0]["components"][-1]["entry_address"] == 0xA050
    assert "stage3" not in doc["programs"][0]


def test_chained_block_list_through_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lay = fragmented_layout(512, 40)
    rc, doc, _ = run_json(capsys, write(lay, tmp_path))
    assert rc == 0, doc["problems"]
    kern = next(c for c in doc["programs"][0]["components"] if c.get("address") == 0x10000)
    assert kern["list_blocks"] == 2 and len(kern["extents"]) == 40 and kern["sha256"] == sha(b"K" * 40 * 512)


def test_rich_rendering_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zipldump.commands.inspect import render_rich

    render_rich(inspect_disk(write(build_dump_disk(), tmp_path)))
    out = capsys.readouterr()[0]
    assert "EXECUTE" in out and "0x000800008000a000" in out and "valid" in out


def test_image_locked_by_a_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An install in progress holds an exclusive flock: inspect refuses instead of reading half-written tables."""
    from zipldump.disk.image import DiskImage
    from zipldump.errors import LockError

    path = write(build_dump_disk(), tmp_path)
    with DiskImage(path, 512, writable=True):
        rc = main(["inspect", str(path)])
    assert rc == LockError.exit_code
    assert "in use" in capsys.readouterr()[1]
    assert main(["inspect", str(path)]) == 0


# --- installer --json and inspect --json agree, component by component -------------------------
INSTALL_CASES = [
    ("dumpto", 512, False), ("dumpto", 512, True), ("dumpto", 4096, False), ("dumpto", 4096, True),
    ("target", 512, False), ("target", 512, True), ("target", 4096, True),
    ("dumptofs", 512, False), ("dumptofs", 4096, True),
]


@pytest.mark.parametrize("mode,bs,stage3", INSTALL_CASES, ids=[f"{m}-{b}-{'stage3' if s else 'direct'}" for m, b, s in INSTALL_CASES])
def test_install_json_equals_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, bs: int, stage3: bool) -> None:
    """The issue's "done when": inspect --json of an image the installer wrote lists exactly the
    components it wrote, and the installer's loaded_sha256 (whole blocks read back through the block
    lists) equals inspect's sha256 for each.  The dry run and --no-verify predict the same hashes.
    The dump partition is filled with a pattern first, so a raw-partition component's last block
    keeps old bytes after its data: the hashes must include them as the firmware loads them."""
    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.sim.payloads import write_demo_payloads

    if mode != "dumpto" and not have_tool("mke2fs"):
        pytest.skip("mke2fs missing")
    pl = write_demo_payloads(tmp_path / "payloads")
    odd = tmp_path / "initrd.odd"  # a ramdisk whose length is not a multiple of any block size
    odd.write_bytes(pl.ramdisk.read_bytes() + b"\x5a" * 1001)
    img = tmp_path / "disk.img"
    dump_part = 300 << 20 if bs == 4096 else 64 << 20  # zipl's estimate asks for 256 MiB with 4 KiB blocks
    make_disk(img, dump_part + (64 << 20) + (2 << 20), block_size=bs, parts=[PartSpec(dump_part), PartSpec(None, "ext4")])
    where = ["--dumpto", "1"] if mode == "dumpto" else [f"--{mode}", "2"]
    argv = ["install", str(img), *where, "--block-size", str(bs), "--image", str(pl.image), "--ramdisk", str(odd), "-n", "--json"]
    if stage3:
        argv += ["--stage3", str(pl.stage3)]
    if mode == "dumpto":  # old data at the partition start and all over where the bootmap goes
        assert main([*argv, "--dry-run"]) == 0
        plan = json.loads(capsys.readouterr().out)
        part = plan["partition"]
        with open(img, "r+b") as fh:
            for start, n in ((0, 1 << 20), (plan["bootmap_start"] * bs, part["size_bytes"] - plan["bootmap_start"] * bs)):
                fh.seek(part["start_bytes"] + start)
                fh.write((PATTERN * (n // len(PATTERN) + 1))[:n])

    before = sha(img.read_bytes())
    assert main([*argv, "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert sha(img.read_bytes()) == before and dry["dry_run"] is True
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    inst = json.loads(out)
    assert inst["verified"] is True
    rc, doc, err = run_json(capsys, img, "--block-size", str(bs))
    assert rc == 0 and doc["valid"] and err == "", doc["problems"]
    assert [p for p in doc["problems"] if p["severity"] == "error"] == []

    assert_inspect_matches_install(img, bs, inst, doc)
    # the dry run predicted every hash (its file-mode block numbers are a plan, its hashes are not)
    for dp, ip in zip(dry["programs"], inst["programs"], strict=True):
        assert [c["loaded_sha256"] for c in dp["components"]] == [c["loaded_sha256"] for c in ip["components"]]
    if mode == "dumpto":
        assert dry["programs"][0]["components"] == inst["programs"][0]["components"]
    # --no-verify computes the same values without walking the lists
    assert main([*argv, "--no-verify"]) == 0
    nv = json.loads(capsys.readouterr().out)
    assert nv["verified"] is False
    rc, doc2, _ = run_json(capsys, img, "--block-size", str(bs))
    assert rc == 0
    seen = [c["sha256"] for p in doc2["programs"] if p["duplicate_of"] is None for c in p["components"] if c["kind"] == "load"]
    assert [c["loaded_sha256"] for p in nv["programs"] for c in p["components"]] == seen


def assert_inspect_matches_install(img: Path, bs: int, inst: dict[str, Any], doc: dict[str, Any]) -> None:
    """inspect's programs are exactly the installer's, entry by entry and component by component."""
    raw = img.read_bytes()
    by_ct = {p["component_table"]: p for p in inst["programs"]}
    assert sorted(int(k) for k in inst["program_table_entries"]) == [p["index"] for p in doc["programs"]]
    for prog in doc["programs"]:
        iprog = by_ct[inst["program_table_entries"][str(prog["index"])]]
        assert prog["component_table"] == iprog["component_table"] and prog["type"] == iprog["header_type"]
        *loads, ex = prog["components"]
        assert [c["kind"] for c in loads] == ["load"] * len(iprog["components"]), "exactly the components written"
        assert ex == {**ex, "kind": "execute", "psw": iprog["execute"]["psw"]}
        for mine, theirs in zip(loads, iprog["components"], strict=True):
            assert mine["address"] == theirs["address"]
            assert mine["length"] == theirs["loaded_length"] == -(-theirs["length"] // bs) * bs
            assert [[e["block"], e["blocks"]] for e in mine["extents"]] == theirs["extents"]
            assert mine["sha256"] == theirs["loaded_sha256"], theirs["name"]
            # independently of both programs: the bytes the extents name
            data = b"".join(raw[b * bs : (b + n) * bs] for b, n in theirs["extents"])
            assert sha(data) == mine["sha256"] and sha(data[: theirs["length"]]) == theirs["sha256"]


def test_menu_install_json_equals_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A zipl.conf menu: entry 0 (the default) and the numbered entries, some sharing a table."""
    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.sim.payloads import write_demo_payloads

    if not have_tool("mke2fs"):
        pytest.skip("mke2fs missing")
    pl = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(None, "ext4")])
    conf = tmp_path / "zipl.conf"
    conf.write_text(
        f"[defaultboot]\ndefaultmenu=m\n\n[a]\ntarget=1\nimage={pl.image}\nparameters=\"root=/dev/ram0 a\"\n\n"
        f"[b]\ntarget=1\nimage={pl.image}\nramdisk={pl.ramdisk}\nparameters=\"b\"\n\n"
        ":m\ntarget=1\n1=a\n2=b\ndefault=2\n"
    )
    assert main(["install", str(img), "-c", str(conf), "-n", "--json"]) == 0
    inst = json.loads(capsys.readouterr().out)
    rc, doc, err = run_json(capsys, img)
    assert rc == 0 and err == "", doc["problems"]
    assert [p["index"] for p in doc["programs"]] == [0, 1, 2] and doc["programs"][0]["duplicate_of"] is None
    assert doc["programs"][2]["duplicate_of"] == 0  # the default, entry 2, is also entry 0
    assert_inspect_matches_install(img, 512, inst, doc)


def test_done_when_failures_on_an_installed_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's list, on a disk `zipldump install` wrote: an oversized dump tool, a pointer
    past the disk end, a looped block list, a bad checksum and a wrong magic each exit with
    the code docs/exit-codes.md gives their class, and print one line naming the place."""
    import re
    import shutil
    import struct

    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.errors import all_error_classes
    from zipldump.sim.payloads import write_demo_payloads

    table = (Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md").read_text()
    documented = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| (\d+) \| `(\w+)` \|", table, re.M)}
    codes = {cls.__name__: cls.exit_code for cls in all_error_classes()}
    pl = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "disk.img"
    make_disk(img, 160 << 20, parts=[PartSpec(150 << 20)])
    big = tmp_path / "big.initrd"
    big.write_bytes(bytes(range(256)) * (40 << 12))  # 40 MiB: above the 32 MiB HSA
    argv = ["install", str(img), "--dumpto", "1", "--image", str(pl.image), "-n", "--json"]
    assert main([*argv, "--ramdisk", str(big), "--hsa-size", "512M"]) == 0  # a machine with a big HSA
    capsys.readouterr()
    oversized = tmp_path / "oversized.img"
    shutil.copy(img, oversized)
    assert main([*argv, "--ramdisk", str(pl.ramdisk)]) == 0
    inst = json.loads(capsys.readouterr().out)
    bs = 512
    kernel = inst["programs"][0]["components"][0]
    kl = kernel["list_blocks"][0]
    ct = inst["programs"][0]["component_table"]

    def damaged(name: str, offset: int, data: bytes) -> Path:
        path = tmp_path / name
        shutil.copy(img, path)
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(data)
        return path

    first = kernel["extents"][0][0]
    loop = b"".join(struct.pack(">QHHI", first + j, bs, 0, 0) for j in range(31)) + struct.pack(">QHHI", kl, bs, 0, 0)
    cases = [
        (oversized, HsaLimitError, "offset 0x60 (component entry 2) field compdat (address)", "ends above the HSA limit 0x2000000"),
        (damaged("past.img", kl * bs, struct.pack(">QHHI", 10**9, bs, 0, 0)), PointerError,
         f"block {kl:#x} offset 0x0 (block list slot 0) field blockno", "past the end of the disk"),
        (damaged("loop.img", kl * bs, loop), BlockListLoopError, f"block {kl:#x} offset 0x1f0 (block list chain slot) field blockno",
         f"points back to list block {kl:#x}"),
        (damaged("csum.img", inst["partition"]["start_bytes"] + 100, b"\x01"), ChecksumError,
         f"superblock at byte {inst['superblock_offset']:#x} offset 0x40 field csum", "stored checksum 0x12345678"),
        (damaged("magic.img", ct * bs, b"XXXX"), MagicError, f"block {ct:#x} offset 0x0 (component table) field magic",
         "component table magic is 58585858"),
    ]
    for path, cls, where, what in cases:
        assert documented[cls.__name__] == codes[cls.__name__] == cls.exit_code
        rc = main(["inspect", str(path)])
        out, err = capsys.readouterr()
        assert rc == cls.exit_code, (path.name, rc, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("zipldump: error: "), err
        assert where in lines[0] and what in lines[0], lines[0]
        assert f"INVALID (exit {cls.exit_code})" in out
        rc, doc, _ = run_json(capsys, path)
        err0 = first_error(doc)
        assert rc == cls.exit_code and err0["kind"] == cls.kind and where in err0["where"], err0


def test_wrong_block_size_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc, _ = run_json(capsys, write(build_4k(), tmp_path), "--block-size", "512")  # told the wrong size
    assert rc == PointerError.exit_code
    assert "the boot record was written for 4096-byte blocks: try --block-size 4096" in doc["notes"]
    rc, doc, _ = run_json(capsys, tmp_path / "disk.img", "--block-size", "4096")
    assert rc == 0 and not any("try --block-size" in n for n in doc["notes"])
