"""Firmware model (sim/firmware.py): loads and the refusals of spec §11/§12.

Disks are built block by block from the spec's layouts (independently of the
installer; tests/builders/bootmaps.py), including the byte-exact worked example
of spec §13 whose SHA-256 the spec gives.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest
from builders.bootmaps import build_disk, hand_built_spec_example
from builders.fakes import FakeMachine

from zipldump.disk.image import DiskImage
from zipldump.errors import IplError
from zipldump.formats.blocklist import data_slots_per_block
from zipldump.formats.blockptr import BlockPtr
from zipldump.sim.firmware import scsi_load
from zipldump.sim.storage import Storage

MiB = 1 << 20


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def refused(pattern: str, path: Path, bs: int = 512, **kw) -> pytest.ExceptionInfo[IplError]:
    """The load fails with an IplError whose message (without the place) matches."""
    with pytest.raises(IplError) as ei:
        load(path, bs, **kw)
    assert re.search(pattern, ei.value.message), ei.value.message
    return ei


def load(path: Path, bs: int = 512, **kw):
    m = kw.pop("machine", None) or FakeMachine()
    with DiskImage(path, bs) as disk:
        return m, scsi_load(m, disk, **kw)


PAYLOADS = [(0x2000, bytes(0x4000)), (0xA000, b"S" * 1024), (0x10000, bytes(range(256)) * 40)]


# --- the spec's worked example (§13) --------------------------------------------------
SPEC_EXAMPLE_SHA256 = "78353e546c6e7464a1a9cd37ed63179bdf88de6b76a6d315bafb6782908383c8"


def test_spec_example_dump_load(tmp_path: Path) -> None:
    p = tmp_path / "ex.img"
    hand_built_spec_example(p)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == SPEC_EXAMPLE_SHA256
    m, res = load(p, dump=True)
    # §13.4: the LOAD ranges, whole blocks each.
    got = [(c.address, c.end) for c in res.components]
    assert got == [
        (0x2000, 0x6000), (0xF000, 0x10000), (0xA000, 0xA400), (0x9000, 0x9200),
        (0x10000, 0x10600), (0x11000, 0x11200), (0x30000, 0x30400),
    ]
    assert res.psw == 0x000800008000A000 and res.entry == 0xA000
    assert m.storage.read(0xA000, 1024) == b"S" * 1024
    assert m.storage.read(0x30000, 1024) == b"R" * 1024
    assert m.storage.read(0x11000, 53) == b"root=/dev/ram0 possible_cpus=1 cgroup_disable=memory\0"
    # The loader left the reset PSW at 0 and the subchannel id at 0xB8.
    assert m.storage.read(0, 8) == bytes.fromhex("000800008000a000")
    assert sum(c.pointers for c in res.components) == 7  # QEMU prints 7 dots


def test_spec_example_refused_by_ipl_load(tmp_path: Path) -> None:
    """§13.4: a QEMU-style (IPL) reader stops at the DUMP header with "Bad header type"."""
    p = tmp_path / "ex.img"
    hand_built_spec_example(p)
    ei = refused("^Bad header type", p, dump=False)
    assert ei.value.where == "block 0x7fb offset 0x4 (component table) field type"


# --- loads --------------------------------------------------------------------------
@pytest.mark.parametrize("bs", [512, 4096])
def test_chained_lists_load_in_order(tmp_path: Path, bs: int) -> None:
    kernel = hashlib.sha256(b"x").digest() * (300 * bs // 32)  # 300 blocks
    b = build_disk(tmp_path / "d.img", [(0x10000, kernel)], bs=bs, psw=0x0008000080010000, pointer_blocks=1,
                   header_type=0, disk_blocks=1024)
    assert len(b.lists[0]) == -(-300 // data_slots_per_block(bs))
    m, res = load(b.path, bs, dump=False)
    assert m.storage.read(0x10000, len(kernel)) == kernel
    assert res.components[0].pointers == 300
    assert res.components[0].sha256 == hashlib.sha256(kernel).hexdigest()


def test_loadparm_selects_entry(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS, entry=5)
    _, res = load(b.path, dump=True, loadparm=5)
    assert res.loadparm == 5 and res.component_table_lba == b.ct_lba


def test_dump_load_keeps_crashed_memory_above_components(tmp_path: Path) -> None:
    class Base:
        def readinto_original(self, addr: int, buf: memoryview) -> int:
            buf[:] = b"\xcc" * len(buf)
            return len(buf)

    m = FakeMachine()
    m.storage = Storage(Base(), 64 * MiB)
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    load(b.path, dump=True, machine=m)
    assert m.storage.read(0x20000, 16) == b"\xcc" * 16  # not a component: crashed data stays
    assert m.storage.read(0x2000, 16) == bytes(16)  # heap component overwrote it


# --- refusals (each with its message and place) ------------------------------------------
def test_wrong_magic_block0(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, 0, b"XIPL")
    ei = refused("^No zIPL magic in block 0", b.path, dump=True)
    assert "block 0x0 offset 0x0" in ei.value.where


def test_wrong_magic_program_table(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, b.pt_lba * 512, b"zIPX")
    ei = refused("^No zIPL magic in Program Table", b.path, dump=True)
    assert ei.value.where.startswith(f"block {b.pt_lba:#x} offset 0x0")


def test_wrong_magic_component_table(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, b.ct_lba * 512, b"\0\0\0\0")
    refused("^No zIPL magic in header", b.path, dump=True)


def test_no_program_table(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, 0x10, bytes(16))
    refused("^No Program Table", b.path, dump=True)


@pytest.mark.parametrize("dump,header", [(True, 0), (False, 1)])
def test_wrong_header_type(tmp_path: Path, dump: bool, header: int) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS, header_type=header)
    ei = refused("^Bad header type", b.path, dump=dump)
    assert ei.value.where == f"block {b.ct_lba:#x} offset 0x4 (component table) field type"


def test_data_pointer_size_mismatch(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    lb = b.lists[1][0]
    patch(b.path, lb * 512 + 8, struct.pack(">H", 4096))
    ei = refused("^zIPL load segment failed: pointer size field is 4096", b.path, dump=True)
    assert ei.value.where == f"block {lb:#x} offset 0x0 (block list slot 0) field size"


def test_data_pointer_past_disk(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    lb = b.lists[2][0]
    patch(b.path, lb * 512, struct.pack(">Q", 5000))
    ei = refused("^zIPL load segment failed: .*past the end of the disk", b.path, dump=True)
    assert ei.value.where.endswith("field blockno")


def test_list_pointer_past_disk(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, b.ct_lba * 512 + 0x20, struct.pack(">Q", 99999))
    refused("^zIPL failed to read BPRS: .*past the end of the disk", b.path, dump=True)


def test_block_list_loop(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", [(0x10000, bytes(62 * 512))], pointer_blocks=1, psw=0x0008000080010000)
    first, second = b.lists[0]
    # Point the second list block's chain slot back at the first.
    patch(b.path, second * 512 + 31 * 16, BlockPtr(first, 512, 0).build())
    patch(b.path, second * 512, b"".join(BlockPtr(b.data[0] + i, 512, 0).build() for i in range(31)))
    ei = refused("^block list of component entry 0 loops", b.path, dump=True)
    assert ei.value.where == f"block {second:#x} offset 0x1f0 (block list chain slot) field blockno"


def test_no_execute(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    off = b.ct_lba * 512 + 0x20 + 32 * len(PAYLOADS) + 0x17
    patch(b.path, off, b"\x07")
    refused("^No EXEC entry", b.path, dump=True)


def test_execute_psw_without_bit12(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS, psw=0x000000008000A000)
    refused("not a short-format PSW", b.path, dump=True)


def test_empty_loadparm_entry(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS, entry=0)
    ei = refused(r"^The requested boot entry \(3\) is invalid.*valid entries: 0", b.path, dump=True, loadparm=3)
    assert ei.value.where == f"block {b.pt_lba:#x} offset 0x40 (program table entry 3) field blockno"


def test_loadparm_out_of_range(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    refused("^loadparm value greater than max number of boot entries allowed", b.path, dump=True, loadparm=31)


def test_empty_program_table(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, b.pt_lba * 512 + 0x10, bytes(16))
    refused("^Empty Program Table", b.path, dump=True)


def test_component_above_hsa_refused_on_dump(tmp_path: Path) -> None:
    comps = PAYLOADS + [(32 * MiB - 0x1000, bytes(0x2000))]
    b = build_disk(tmp_path / "d.img", comps)
    ei = refused("above the HSA limit 0x2000000: the load destroys crash data", b.path, dump=True)
    assert ei.value.where.endswith("(component entry 3) field address")
    # Allowed explicitly, it becomes a warning; an IPL load has no HSA at all.
    _, res = load(b.path, dump=True, allow_above_hsa=True)
    assert any("HSA" in w for w in res.warnings)


def test_component_past_storage(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS + [(63 * MiB, bytes(2 * MiB // 512 * 512))], disk_blocks=8192)
    refused("past the end of the machine's storage", b.path, dump=True, allow_above_hsa=True)


def test_version_id_only_warns(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS)
    patch(b.path, 4, struct.pack(">I", 2))
    _, res = load(b.path, dump=True)
    assert res.warnings == ["Unknown MBR layout version, assuming version 1 (version_id 2)"]


def test_ipl_load_clears_storage_dump_load_does_not(tmp_path: Path) -> None:
    class Base:
        def readinto_original(self, addr: int, buf: memoryview) -> int:
            buf[:] = b"\xcc" * len(buf)
            return len(buf)

    ipl = build_disk(tmp_path / "ipl.img", PAYLOADS, header_type=0, psw=0x0008000080010000)
    m = FakeMachine()
    m.storage = Storage(Base(), 64 * MiB)
    load(ipl.path, dump=False, machine=m)
    assert m.storage.read(0x20000, 16) == bytes(16)  # load type SCSI clears memory


def test_dump_load_needs_the_hsa_saved_first(tmp_path: Path) -> None:
    from zipldump.sim.crashed import generate
    from zipldump.sim.machine import Machine

    b = build_disk(tmp_path / "d.img", PAYLOADS)
    m = Machine(generate(64 * MiB, 2), 32 * MiB)
    with pytest.raises(IplError, match="before the HSA was saved"):
        load(b.path, dump=True, machine=m)
    m.dump_ipl()
    _, res = load(b.path, dump=True, machine=m)
    assert res.hsa_size == 32 * MiB
    # The HSA still holds the crashed bytes the loader overwrote.
    buf = bytearray(16)
    m.hsa.readinto(0xA000, memoryview(buf))
    assert bytes(buf) == m.crashed.read_original(0xA000, 16) != m.storage.read(0xA000, 16)


def test_wrong_block_size_is_named(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", PAYLOADS, bs=4096, disk_blocks=512)
    ei = refused(r"^Error reading Program Table: .*size field is 4096.*is the block size 4096\?", b.path, 512, dump=True)
    assert ei.value.where == "block 0x0 offset 0x10 (boot record) field program_table field size"
