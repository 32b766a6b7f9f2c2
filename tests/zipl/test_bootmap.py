"""Strict bootmap reader (zipldump.zipl.bootmap) against the spec's worked example and corruptions of it.

`build_dump_disk` (tests/builders/bootmaps.py) is a tiny test-only writer that
follows spec §13 (zipl >= 2.26 SCSI dump layout, bootmap start chosen by hand)
using zipldump.formats; its output for the §13 inputs must hash to the SHA-256
given in §13.4, which checks the builder itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from builders.bootmaps import (
    PARMLINE,
    Layout,
    build_4k,
    build_dump_disk,
    fragmented_layout,
)

from zipldump.disk.image import DiskImage
from zipldump.errors import BlockListLoopError, ComponentError, MagicError, PointerError
from zipldump.formats.blocklist import (
    data_slots_per_block,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.zipl import bootmap as reader

WORKED_EXAMPLE_SHA256 = "78353e546c6e7464a1a9cd37ed63179bdf88de6b76a6d315bafb6782908383c8"
ZIPL216_EXAMPLE_SHA256 = "0250687942371e796589b7862c32853daf8150c84b3b2fde0064bc004b9fbcb9"


def open_disk(layout: Layout, tmp_path: Path) -> DiskImage:
    return DiskImage(layout.write(tmp_path / "disk.img"), layout.bs)


# --- the builder reproduces the spec ----------------------------------------------------
def test_builder_reproduces_worked_example_sha256() -> None:
    lay = build_dump_disk()
    assert hashlib.sha256(lay.image).hexdigest() == WORKED_EXAMPLE_SHA256
    # spot checks against the §13.2 block map
    assert (lay.header, lay.superblock, lay.component_table, lay.program_table) == (0x7C0, 0x7C2, 0x7FB, 0x7FC)
    assert lay.comp("kernel").list_lbas == [0x7F5]


def test_builder_reproduces_zipl_216_example_sha256() -> None:
    lay = build_dump_disk(legacy=True)
    assert hashlib.sha256(lay.image).hexdigest() == ZIPL216_EXAMPLE_SHA256
    assert (lay.program_table, lay.superblock) == (0x7FB, 0x7FC)


# --- reading the worked example --------------------------------------------------------------
EXPECTED_LOADS = [  # §13.4: address, bytes loaded (whole blocks), first list block
    (0x2000, 0x4000, 0x7E3),
    (0xF000, 0x1000, 0x7EC),
    (0xA000, 0x400, 0x7EF),
    (0x9000, 0x200, 0x7F1),
    (0x10000, 0x600, 0x7F5),
    (0x11000, 0x200, 0x7F7),
    (0x30000, 0x400, 0x7FA),
]


def test_worked_example_reads_back(tmp_path: Path) -> None:
    lay = build_dump_disk()
    with open_disk(lay, tmp_path) as disk:
        br = reader.read_boot_record(disk)
        assert br.version_id == 1
        assert br.program_table == BlockPtr(0x7FC, 512, 0)
        assert br.boot_info.has_magic and br.boot_info.bp_type == 1 and br.boot_info.dev_type == 2
        assert br.boot_info.dump_sb_offset == 0xF8400
        assert br.has_pc_label
        pt = reader.read_program_table(disk, br.program_table)
        assert [(i, p.blockno) for i, p in pt.valid()] == [(0, 0x7FB)]
        ct = reader.read_component_table(disk, pt.entries[0])
        assert ct.header_type == 1
        loads = [e for e in ct.entries if e.kind == "load"]
        got = []
        for e in loads:
            bl = reader.walk_block_list(disk, e.blocklist)
            got.append((e.address, bl.length(512), e.blocklist.blockno))
            assert bl.stray_after_end == []
        assert got == EXPECTED_LOADS
        assert ct.execute is not None and ct.execute.psw == 0x000800008000A000
        # data comes back as written: 'S' stage 3, parmline, 'K' kernel, 'R' initrd
        by_addr = {e.address: e for e in loads}
        data = lambda a: b"".join(reader.iter_component_data(disk, reader.walk_block_list(disk, by_addr[a].blocklist).pointers))  # noqa: E731
        assert data(0xA000) == b"S" * 1024
        assert data(0x10000) == b"K" * 1536
        assert data(0x30000) == b"R" * 1024
        assert data(0x11000)[: len(PARMLINE)] == PARMLINE
        assert data(0x2000) == bytes(0x4000)
        sb = reader.read_superblock(disk, br.boot_info.dump_sb_offset)
        assert (sb.version, sb.part_start, sb.part_size, sb.dump_offset, sb.dump_size) == (1, 0x8000, 0xF8000, 0, 0xF0000)
        assert (sb.csum_offset, sb.csum_size, sb.csum) == (0, 0x1000, 0x12345678)
        assert reader.superblock_checksum(disk, sb) == 0x12345678


def test_iter_component_data_streams_and_truncates(tmp_path: Path) -> None:
    lay = build_dump_disk()
    with open_disk(lay, tmp_path) as disk:
        ptrs = reader.walk_block_list(disk, 0x7F5).pointers
        chunks = list(reader.iter_component_data(disk, ptrs, length=1000))
        assert b"".join(chunks) == b"K" * 1000
        # a pointer larger than the 1 MiB chunk is split into chunks
        big = [BlockPtr(0, 512, 2047)]
        sizes = [len(c) for c in reader.iter_component_data(disk, big)]
        assert sizes == [1 << 20]
        assert sum(len(c) for c in reader.iter_component_data(disk, [BlockPtr(1, 512, 2046)])) == 2047 * 512


# --- corruptions ----------------------------------------------------------------------------
def test_bad_boot_record_magic(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0, b"ZIPL")
    with open_disk(lay, tmp_path) as disk, pytest.raises(MagicError) as ei:
        reader.read_boot_record(disk)
    assert ei.value.where == "block 0x0 offset 0x0 (boot record) field magic"


def test_bad_program_table_magic(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FC * 512, b"xIPL")
    with open_disk(lay, tmp_path) as disk, pytest.raises(MagicError) as ei:
        reader.read_program_table(disk, reader.read_boot_record(disk).program_table)
    assert "block 0x7fc offset 0x0" in ei.value.where


def test_bad_component_table_magic(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FB * 512, b"\0\0\0\0")
    with open_disk(lay, tmp_path) as disk, pytest.raises(MagicError) as ei:
        reader.read_component_table(disk, BlockPtr(0x7FB, 512, 0))
    assert "block 0x7fb offset 0x0 (component table) field magic" == ei.value.where


def test_bad_superblock_magic(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7C2 * 512, b"ZFCPDUMQ")
    with open_disk(lay, tmp_path) as disk, pytest.raises(MagicError) as ei:
        reader.read_superblock(disk, 0xF8400)
    assert "0xf8400" in ei.value.where and "magic" in ei.value.where


def test_data_pointer_past_disk_end(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.u64(0x7F5 * 512, 0x800)  # kernel's first extent -> block 0x800 (the disk has 0x800 blocks)
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError) as ei:
        reader.walk_block_list(disk, 0x7F5)
    assert ei.value.where == "block 0x7f5 offset 0x0 (block list slot 0) field blockno"
    assert "past the end of the disk" in ei.value.message


def test_blockct_running_past_disk_end(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7F5 * 512 + 10, (0x7FF - 0x7F2 + 1).to_bytes(2, "big"))  # 3 blocks -> runs to 0x800
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError, match="past the end"):
        reader.walk_block_list(disk, 0x7F5)


def test_data_pointer_size_must_be_block_size(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7F5 * 512 + 8, (4096).to_bytes(2, "big"))
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError) as ei:
        reader.walk_block_list(disk, 0x7F5)
    assert ei.value.where.endswith("field size") and "4096" in ei.value.message


def test_program_table_pointer_past_end(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.u64(0x10, 0x123456)
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError) as ei:
        reader.read_boot_record(disk)
    assert "offset 0x10" in ei.value.where


def test_missing_execute(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7FB * 512 + 0x100, bytes(32))  # entry 7 = EXECUTE -> all zero (type 0)
    with open_disk(lay, tmp_path) as disk:
        with pytest.raises(ComponentError) as ei:
            reader.read_component_table(disk, BlockPtr(0x7FB, 512, 0))
        assert ei.value.where == "block 0x7fb offset 0x117 (component entry 7) field type"
        ct = reader.read_component_table(disk, BlockPtr(0x7FB, 512, 0), require_execute=False)
        assert ct.execute is None and len(ct.entries) == 8


def test_chained_list_with_more_than_31_extents(tmp_path: Path) -> None:
    lay = fragmented_layout(512, 40)  # 40 extents: list blocks of 31 + 9 (spec §6.2 example)
    kern = lay.comp("kernel")
    assert len(kern.list_lbas) == 2 and kern.list_lbas[0] > kern.list_lbas[1]  # chained blocks in reverse order
    with open_disk(lay, tmp_path) as disk:
        bl = reader.walk_block_list(disk, kern.list_lbas[0])
        assert bl.list_blocks == kern.list_lbas
        assert [p.blockno for p in bl.pointers] == kern.data_lbas
        assert all(p.nblocks == 1 for p in bl.pointers)
        assert b"".join(reader.iter_component_data(disk, bl.pointers)) == b"K" * (40 * 512)


def test_chained_list_4096_with_more_than_255_extents(tmp_path: Path) -> None:
    lay = fragmented_layout(4096, 260)
    kern = lay.comp("kernel")
    assert len(kern.list_lbas) == 2
    with open_disk(lay, tmp_path) as disk:
        bl = reader.walk_block_list(disk, kern.list_lbas[0])
        assert len(bl.pointers) == 260 and bl.length(4096) == 260 * 4096


def test_looped_block_list_names_repeating_lba(tmp_path: Path) -> None:
    lay = fragmented_layout(512, 40)
    first, second = lay.comp("kernel").list_lbas
    lay.u64(second * 512 + 31 * 16, 0)  # make the second block full and chain it back to the first
    for i in range(9, 31):
        lay.poke(second * 512 + i * 16, BlockPtr(lay.comp("kernel").data_lbas[0], 512, 0).build())
    lay.poke(second * 512 + 31 * 16, BlockPtr(first, 512, 0).build())
    with open_disk(lay, tmp_path) as disk, pytest.raises(BlockListLoopError) as ei:
        reader.walk_block_list(disk, first)
    assert f"{first:#x}" in ei.value.message
    assert ei.value.where == f"block {second:#x} offset 0x1f0 (block list chain slot) field blockno"


def test_self_chained_list_block(tmp_path: Path) -> None:
    lay = fragmented_layout(512, 40)
    first = lay.comp("kernel").list_lbas[0]
    lay.poke(first * 512 + 31 * 16, BlockPtr(first, 512, 0).build())
    with open_disk(lay, tmp_path) as disk, pytest.raises(BlockListLoopError, match=f"{first:#x}"):
        reader.walk_block_list(disk, first)


def test_chain_slot_with_blockct_is_rejected(tmp_path: Path) -> None:
    lay = fragmented_layout(512, 40)
    first = lay.comp("kernel").list_lbas[0]
    lay.poke(first * 512 + 31 * 16 + 10, (1).to_bytes(2, "big"))
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError, match="blockct"):
        reader.walk_block_list(disk, first)


def test_total_blocks_bounded(tmp_path: Path) -> None:
    lay = build_dump_disk()
    with open_disk(lay, tmp_path) as disk, pytest.raises(PointerError, match="longer than"):
        reader.walk_block_list(disk, 0x7E3, max_total_blocks=16)  # heap has 32 blocks


def test_list_blocks_bounded(tmp_path: Path) -> None:
    lay = fragmented_layout(512, 40)
    with open_disk(lay, tmp_path) as disk, pytest.raises(BlockListLoopError, match="more than 1 list blocks"):
        reader.walk_block_list(disk, lay.comp("kernel").list_lbas[0], max_list_blocks=1)


def test_stray_bytes_after_list_end_are_reported_not_fatal(tmp_path: Path) -> None:
    lay = build_dump_disk()
    lay.poke(0x7F5 * 512 + 0x1F0, BlockPtr(0x7C1, 512, 0).build())  # chain slot in a non-full list block
    with open_disk(lay, tmp_path) as disk:
        bl = reader.walk_block_list(disk, 0x7F5)
        assert bl.nblocks == 3 and bl.list_blocks == [0x7F5]  # not followed (spec §6.3)
        assert bl.stray_after_end == ["block 0x7f5 offset 0x10 (block list slot 1)"]


def test_4096_block_variant(tmp_path: Path) -> None:
    lay = build_4k()
    with open_disk(lay, tmp_path) as disk:
        br = reader.read_boot_record(disk)
        assert br.program_table.size == 4096
        pt = reader.read_program_table(disk, br.program_table)
        ct = reader.read_component_table(disk, pt.entries[0])
        lens = [(e.address, reader.walk_block_list(disk, e.blocklist).length(4096)) for e in ct.entries if e.kind == "load"]
        assert lens == [(0x2000, 0x4000), (0xF000, 0x1000), (0xA000, 0x1000), (0x9000, 0x1000), (0x10000, 0x1000), (0x11000, 0x1000), (0x30000, 0x1000)]
        sb = reader.read_superblock(disk, br.boot_info.dump_sb_offset)
        assert sb.part_start == 256 * 4096 and reader.superblock_checksum(disk, sb) == sb.csum
    assert data_slots_per_block(4096) == 255


def test_truncated_image(tmp_path: Path) -> None:
    path = tmp_path / "short.img"
    path.write_bytes(b"zIPL" + bytes(300))
    with DiskImage(path, 512) as disk, pytest.raises(PointerError, match="smaller than one"):
        reader.read_boot_record(disk)
