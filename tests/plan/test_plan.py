"""Planning: address assignment (§8.4), HSA check (§8.5), dump tail estimate (§7.3),
block-list chaining (§6.2), program composition and menus (§4, §8)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from zipldump.errors import (
    HsaLimitError,
    KernelImageError,
    LayoutError,
    PartitionTooSmallError,
    UsageError,
)
from zipldump.formats.blocklist import parse_list_block
from zipldump.formats.component_table import HEADER_DUMP, HEADER_IPL, STAGE3_PSW
from zipldump.formats.stage3_params import DEFAULT_PSW_LOAD, Stage3Params
from zipldump.plan.addresses import LoadedRange, assign_addresses, check_hsa
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.plan.layout import (
    ComponentSpec,
    ProgramImage,
    Source,
    build_parmline,
    compose_program,
    dump_tail,
    estimate_scsi_dump_size,
    layout_bootmap,
)


def make_kernel(path: Path, size: int = 0x20000, *, ep: bool = True, max_cl: int = 4096) -> Path:
    """Synthetic s390 kernel image: S390EP at 0x10008, limit at 0x10430, default command line."""
    data = bytearray(b"\x07" * size)
    if ep:
        data[0x10008:0x1000E] = b"S390EP"
    if size >= 0x10438:
        struct.pack_into(">Q", data, 0x10430, max_cl)
        data[0x10400:0x10430] = bytes(0x30)
    if size >= 0x10480 + 32:
        data[0x10480 : 0x10480 + 18] = b"root=/dev/ram0 ro\0"
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------- addresses
def test_addresses_spec_example() -> None:
    a = assign_addresses(1536, 53, 1024)
    assert (a.image_addr, a.parm_addr, a.ramdisk_addr) == (0x10000, 0x11000, 0x30000)


def test_addresses_current_rule_for_reference_kernel() -> None:
    # kernel 0x4D5000 bytes: parm 0x4E5000; >= 2.20 ramdisk rule ALIGN(parm + 0x10000, 0x10000)
    a = assign_addresses(0x4D5000, 65, 1005277)
    assert (a.parm_addr, a.ramdisk_addr) == (0x4E5000, 0x500000)


def test_addresses_without_parmline() -> None:
    a = assign_addresses(0x4D5000, None, 100)
    assert a.parm_addr is None and a.ramdisk_addr == 0x4F0000


def test_address_errors() -> None:
    with pytest.raises(LayoutError, match="falls below"):
        assign_addresses(0x1000, None, None, image_addr=0x8000)
    with pytest.raises(LayoutError, match="overlap"):
        assign_addresses(0x20000, None, 0x1000, ramdisk_addr=0x20000)
    with pytest.raises(LayoutError, match="exceeds available address space"):
        assign_addresses(0x1000, None, 0x1000, ramdisk_addr=0x7FFFF000 + 0x1000)
    with pytest.raises(LayoutError, match="Could not fit component 'initial ramdisk'"):
        assign_addresses(0x1000, None, 0x7FFF0000)
    # touching ranges are fine
    a = assign_addresses(0x10000, None, 0x1000, ramdisk_addr=0x20000)
    assert a.ramdisk_addr == 0x20000


def test_hsa_limit_exact_end_ok_one_byte_over_refused() -> None:
    check_hsa([LoadedRange("initial ramdisk", 0x1000000, 0x1000000)], 0x2000000)
    with pytest.raises(HsaLimitError) as exc:
        check_hsa([LoadedRange("initial ramdisk", 0x500000, 0x2540000)], 0x2000000)
    assert "component 'initial ramdisk' 0x00500000-0x02a3ffff ends above the HSA limit 0x02000000" in str(exc.value)
    assert exc.value.exit_code == 11


# ------------------------------------------------------------------- §7.3 estimate
@pytest.mark.parametrize(
    ("bs", "part_blocks", "kernel", "initrd", "size", "dump_size"),
    [
        (512, 194560, 5066752, 1005277, 77279, 0x3944200),
        (4096, 81664, 5066752, 1005277, 67013, 0x393B000),
        (512, 260096, 41943040, None, 147338, 0x370EC00),
    ],
)
def test_estimate_matches_real_zipl(bs, part_blocks, kernel, initrd, size, dump_size) -> None:
    assert estimate_scsi_dump_size(kernel, initrd, bs) == size
    tail = dump_tail(part_blocks, kernel, initrd, bs)
    assert tail.dump_size == dump_size and tail.start == part_blocks - size


def test_estimate_refuses_small_kernel_and_small_partition() -> None:
    with pytest.raises(PartitionTooSmallError, match="Partition too small for dump tool"):
        estimate_scsi_dump_size(1536, None, 512)
    with pytest.raises(PartitionTooSmallError, match="Partition too small"):
        dump_tail(65536, 0x20000, None, 512)


# ------------------------------------------------------------------- block lists
def _fragmented_program(nblocks: int, bs: int) -> ProgramImage:
    src = Source.of_bytes(b"x" * (nblocks * bs))
    return ProgramImage(0, "p", "ipl", HEADER_IPL, [ComponentSpec("kernel", "kernel image", 0x10000, src)], 0x1, None, "direct")


@pytest.mark.parametrize(("bs", "extents"), [(512, 40), (512, 103), (4096, 300)])
def test_chained_lists_follow_spec_6_2(bs: int, extents: int) -> None:
    # Every data block of the component lands on a non-adjacent LBA: one pointer each.
    def lba_of(i: int) -> int:
        return 1000 + (i * 2 if 2 <= i < 2 + extents else 100000 + i)

    lay = layout_bootmap([_fragmented_program(extents, bs), ], bs, lba_of)
    pc = lay.programs[0].components[0]
    per = bs // 16 - 1
    m = -(-extents // per)
    assert len(pc.pointers) == extents and len(pc.list_lbas) == m
    # written order: the list block with the LAST pointers comes first in the bootmap
    written = sorted(pc.list_lbas)
    assert written == [lba_of(2 + extents + k) for k in range(m)]  # header, empty block, data, lists
    assert pc.list_lbas[0] == written[-1]  # the entry points at the last-written block
    last = parse_list_block(pc.list_blocks[-1])
    assert sum(1 for p in last[:per] if p.blockno) == (extents - 1) % per + 1
    assert last[per].blockno == 0
    # walking the chain gives the pointers back in file order, chain slots blockct 0
    got = []
    for k, blk in enumerate(pc.list_blocks):
        slots = parse_list_block(blk)
        got += [p for p in slots[:per] if p.blockno]
        if k + 1 < m:
            assert slots[per].blockno == pc.list_lbas[k + 1] and slots[per].blockct == 0 and slots[per].size == bs
    assert got == pc.pointers


def test_list_blocks_written_in_zipls_order_on_a_scattered_file() -> None:
    """§6.2: the list block with the last pointers is written first and the one the entry
    points at last, also when the bootmap file's blocks run backwards on the disk."""
    lay = layout_bootmap([_fragmented_program(40, 512)], 512, lambda i: 900000 - 2 * i)
    pc = lay.programs[0].components[0]
    order = [w.lba for w in lay.writes() if w.what.endswith("block list")]
    assert order == list(reversed(pc.list_lbas)) and order[-1] == pc.first_list_lba
    assert len(order) == 2 and order[0] > order[1]  # here that is the higher LBA first


def test_max_pointer_is_65536_blocks() -> None:
    lay = layout_bootmap([_fragmented_program(81920, 512)], 512, lambda i: 100 + i)
    ptrs = lay.programs[0].components[0].pointers
    assert [p.blockct for p in ptrs] == [0xFFFF, 0x3FFF]


def test_menu_program_table_entry0_copies_default() -> None:
    progs = [_fragmented_program(1, 512), _fragmented_program(1, 512)]
    progs[0].position, progs[1].position = 1, 2
    lay = layout_bootmap(progs, 512, lambda i: 10 + i, default_position=2)
    cts = [p.ct_lba for p in lay.programs]
    assert lay.pt_entries == {1: cts[0], 2: cts[1], 0: cts[1]}


# ------------------------------------------------------------------- composition
def test_parmlines() -> None:
    d = ProgramSpec("d", "dump", Path("k"))
    assert build_parmline(d) == "root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"
    d.parameters = "dump_debug=3"
    assert build_parmline(d) == "dump_debug=3 root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"
    f = ProgramSpec("f", "dumptofs", Path("k"), parameters="dump_dir=/dumps dump_mode=auto", dump_partition=2)
    assert build_parmline(f) == "dump_dir=/dumps dump_mode=auto root=/dev/ram0 dump_part=2 possible_cpus=1 cgroup_disable=memory "
    f.dump_mem = 1 << 30
    assert "dump_part=2 dump_mem=1073741824 possible_cpus=1" in build_parmline(f)
    assert build_parmline(ProgramSpec("i", "ipl", Path("k"))) is None


def test_compose_stage3_layout(tmp_path: Path) -> None:
    k = make_kernel(tmp_path / "k")
    r = tmp_path / "r"
    r.write_bytes(b"R" * 5000)
    s3 = Source.of_bytes(b"S" * 0x4000)
    img, addrs = compose_program(0, ProgramSpec("d", "dump", k, r), stage3=s3, hsa_size=32 << 20)
    assert [c.kind for c in img.components] == ["heap", "stack", "loader", "params", "kernel", "parmline", "ramdisk"]
    assert [c.address for c in img.components] == [0x2000, 0xF000, 0xA000, 0x9000, 0x10000, 0x30000, 0x40000]
    assert img.header_type == HEADER_DUMP and img.psw == STAGE3_PSW
    p = Stage3Params.parse(img.components[3].source.read(0, 80))
    assert (p.parm_addr, p.initrd_addr, p.initrd_len, p.load_psw, p.image_len) == (0x30000, 0x40000, 5000, DEFAULT_PSW_LOAD, 0x20000)
    assert img.components[3].source.length == 80


def test_compose_direct_layout_patches_parm_area(tmp_path: Path) -> None:
    k = make_kernel(tmp_path / "k")
    r = tmp_path / "r"
    r.write_bytes(b"R" * 5000)
    img, _ = compose_program(0, ProgramSpec("l", "ipl", k, r, "console=ttyS0 quiet"), stage3=None, hsa_size=32 << 20)
    assert [c.kind for c in img.components] == ["kernel", "parmline", "ramdisk"]
    kern = img.components[0]
    assert kern.address == 0x10000 and kern.source.length == 0x10000 and img.psw == 0x0008000080010000
    area = kern.source.read(0, 0x500)
    assert area[8:14] == b"S390EP"
    assert struct.unpack_from(">QQ", area, 0x408) == (0x40000, 5000)
    assert area[0x480 : 0x480 + 20] == b"console=ttyS0 quiet\0"
    # the rest of the stream is the file from 0x10000 on
    assert kern.source.read(0x1000, 16) == (tmp_path / "k").read_bytes()[0x11000:0x11010]


def test_compose_checks(tmp_path: Path) -> None:
    with pytest.raises(KernelImageError, match="S390EP"):
        compose_program(0, ProgramSpec("l", "ipl", make_kernel(tmp_path / "a", ep=False)), stage3=None, hsa_size=1 << 25)
    with pytest.raises(KernelImageError, match="at least 0x10438"):
        compose_program(0, ProgramSpec("l", "ipl", make_kernel(tmp_path / "b", size=0x10400)), stage3=None, hsa_size=1 << 25)
    k = make_kernel(tmp_path / "c", max_cl=64)
    with pytest.raises(LayoutError, match="exceeds the allowed maximum"):
        compose_program(0, ProgramSpec("l", "ipl", k, parameters="x" * 64), stage3=None, hsa_size=1 << 25)
    compose_program(0, ProgramSpec("l", "ipl", k, parameters="x" * 63), stage3=None, hsa_size=1 << 25)
    k0 = make_kernel(tmp_path / "d", max_cl=0)  # 0 means 896, and dumps are capped at 896 too
    with pytest.raises(LayoutError, match="exceeds"):
        compose_program(0, ProgramSpec("l", "ipl", k0, parameters="y" * 896), stage3=None, hsa_size=1 << 25)


def test_compose_hsa_refusal(tmp_path: Path) -> None:
    k = make_kernel(tmp_path / "k")
    r = tmp_path / "r"
    with open(r, "wb") as fh:
        fh.truncate(40 << 20)
    with pytest.raises(HsaLimitError, match=r"dump program 'd': component 'initial ramdisk' 0x00040000-0x0283ffff ends above the HSA limit 0x02000000"):
        compose_program(0, ProgramSpec("d", "dump", k, r), stage3=None, hsa_size=32 << 20)
    # the same files are fine for an IPL program and with a bigger HSA
    compose_program(0, ProgramSpec("i", "ipl", k, r), stage3=None, hsa_size=32 << 20)
    compose_program(0, ProgramSpec("d", "dump", k, r), stage3=None, hsa_size=64 << 20)


def test_hsa_check_covers_the_whole_last_block(tmp_path: Path) -> None:
    """The firmware loads whole blocks: a ramdisk at an explicit (zipl.conf ",ADDR")
    address that is not 4 KiB aligned ends, on a 4096-byte disk, where its last block ends."""
    check_hsa([LoadedRange("initial ramdisk", 0x1FFFE00, 0x100)], 0x2000000, block_size=512)
    with pytest.raises(HsaLimitError, match=r"0x01fffe00-0x02000dff ends above the HSA limit 0x02000000 \(the last 4096-byte block"):
        check_hsa([LoadedRange("initial ramdisk", 0x1FFFE00, 0x100)], 0x2000000, block_size=4096)
    k = make_kernel(tmp_path / "k")
    r = tmp_path / "r"
    r.write_bytes(b"R" * 0x100)
    spec = ProgramSpec("d", "dump", k, r, ramdisk_address=0x1FFFE00)
    compose_program(0, spec, stage3=None, hsa_size=32 << 20, block_size=512)
    with pytest.raises(HsaLimitError, match="component 'initial ramdisk'"):
        compose_program(0, spec, stage3=None, hsa_size=32 << 20, block_size=4096)


def test_job_validation(tmp_path: Path) -> None:
    k = tmp_path / "k"
    with pytest.raises(UsageError, match="alone"):
        InstallJob(tmp_path / "img", "dumpto", 1, {1: ProgramSpec("a", "dump", k), 2: ProgramSpec("b", "dump", k)})
    with pytest.raises(UsageError, match="not a partition"):
        InstallJob(tmp_path / "img", "dumpto", 0, {0: ProgramSpec("a", "dump", k)})
    with pytest.raises(UsageError, match="exceeds the maximum"):
        InstallJob(tmp_path / "img", "target", 1, {1: ProgramSpec("a", "ipl", k), 31: ProgramSpec("b", "ipl", k)}, default_position=1)
    with pytest.raises(UsageError, match="default position"):
        InstallJob(tmp_path / "img", "target", 1, {1: ProgramSpec("a", "ipl", k), 2: ProgramSpec("b", "ipl", k)}, default_position=3)
    with pytest.raises(UsageError, match="--dumpto"):
        InstallJob(tmp_path / "img", "target", 1, {0: ProgramSpec("a", "dump", k)})


def test_source_patches_across_chunks(tmp_path: Path) -> None:
    f = tmp_path / "data"
    base = bytes(range(256)) * 40  # 10240 bytes
    f.write_bytes(base)
    src = Source.of_file(f, 1000, 9000, patches=[(4090, b"ABCDEFGHIJ"), (0, b"zz"), (8998, b"QQ")])
    want = bytearray(base[1000:10000])
    want[4090:4100] = b"ABCDEFGHIJ"
    want[0:2] = b"zz"
    want[8998:9000] = b"QQ"
    assert b"".join(src.chunks(4096)) == bytes(want)
    assert b"".join(src.chunks(7)) == bytes(want)
    assert src.read(4095, 3) == b"FGH" and src.read(8999, 100) == b"Q"
    import hashlib

    assert src.sha256() == hashlib.sha256(bytes(want)).hexdigest()


def test_zipl_216_rules(tmp_path: Path) -> None:
    """The [R2.16]-verified values of spec §8.3/§8.4: 5066752-byte kernel, 1005277-byte initrd."""
    k = make_kernel(tmp_path / "k", size=5066752)
    r = tmp_path / "r"
    with open(r, "wb") as fh:
        fh.truncate(1005277)
    s3 = Source.of_bytes(b"S" * 0x4000)
    img, addrs = compose_program(0, ProgramSpec("d", "dump", k, r, dump_partition=1), stage3=s3, hsa_size=32 << 20, compat="2.16")
    assert (addrs.parm_addr, addrs.ramdisk_addr) == (0x4E5000, 0x4F0000)
    params = img.components[3].source.read(0, 100)
    assert params == struct.pack(">8Q", 0x4E5000, 0x4F0000, 0xF56DD, 0x0008000080010000, 0, 0x0001000000000000, 0x4D5000, 0x10000)
    assert img.parmline == "root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory "
    _, cur = compose_program(0, ProgramSpec("d", "dump", k, r), stage3=s3, hsa_size=32 << 20)
    assert cur.ramdisk_addr == 0x500000
    with pytest.raises(UsageError, match="compatibility"):
        compose_program(0, ProgramSpec("d", "dump", k, r), stage3=s3, hsa_size=32 << 20, compat="2.99")
