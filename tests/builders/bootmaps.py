"""zipl disks: bootmaps built block by block from zipldump.formats (no installer), and one made by the installer.

- `build_dump_disk` lays out a SCSI dump disk as zipl does (spec §7.2, §13) and
  returns the in-memory `Layout`; with the §13 inputs it reproduces the worked
  example byte for byte (tests/zipl/test_bootmap.py checks its SHA-256).
  `hand_built_spec_example` writes that image to a file.
- `build_disk` writes one program from hand-chosen components (IPL or dump
  header, any PSW, capped pointers) for the firmware model.
- `build_direct_disk` writes a bootable direct-layout IPL disk for QEMU.
- `installed_disk` is a --dumpto disk made by zipldump.zipl.installer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from builders.fakes import quiet_ui
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.formats.blocklist import (
    build_list_block,
    chain_layout,
    compact,
    data_slots_per_block,
    split_extents,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootmap_header import HEADER_TEXT, build_bootmap_header
from zipldump.formats.bootrecord import build_boot_record, dump_boot_info
from zipldump.formats.component_table import (
    HEADER_DUMP,
    HEADER_IPL,
    STAGE3_PSW,
    build_component_table,
    execute_entry,
    load_entry,
)
from zipldump.formats.dump_superblock import PARTITION_WIPE_SIZE, build_superblock
from zipldump.formats.kernel_image import (
    COMMAND_LINE,
    INITRD_START,
    MAX_COMMAND_LINE_SIZE,
)
from zipldump.formats.program_table import build_program_table
from zipldump.formats.stage3_params import (
    DEFAULT_PSW_LOAD,
    FLAG_SCSI,
    NO_PARMLINE,
    Stage3Params,
    Stage3ParamsLegacy,
)
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.sim.payloads import kernel_image, stage3_image
from zipldump.zipl.installer import install

MiB = 1 << 20


# --- zipl's SCSI dump layout (spec §7.2, §13) --------------------------------------------------
PARMLINE = b"root=/dev/ram0 possible_cpus=1 cgroup_disable=memory\0"
PARMLINE_216 = b"root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory \0"


@dataclass
class Comp:
    name: str
    address: int
    data: bytes  # the bytes zipl writes; the tail of the last block is left alone
    fragment: bool = False  # place every data block apart, one extent per block
    # filled in by the builder
    data_lbas: list[int] = field(default_factory=list)
    list_lbas: list[int] = field(default_factory=list)  # in reading order (entry points at [0])


@dataclass
class Layout:
    bs: int
    image: bytearray
    part_start: int
    part_blocks: int
    header: int
    superblock: int
    comps: list[Comp]
    component_table: int
    program_table: int

    def comp(self, name: str) -> Comp:
        return next(c for c in self.comps if c.name == name)

    def write(self, path: Path) -> Path:
        path.write_bytes(bytes(self.image))
        return path

    def poke(self, offset: int, data: bytes) -> None:
        self.image[offset : offset + len(data)] = data

    def u64(self, offset: int, value: int) -> None:
        self.poke(offset, value.to_bytes(8, "big"))


def stage3_params(comps: list[Comp], *, legacy: bool = False) -> bytes:
    """Stage-3 parameters (§8.3) describing the kernel, parmline and initrd components of `comps`."""
    by = {c.name: c for c in comps}
    kern, parm, initrd = by["kernel"], by.get("parmline"), by.get("initrd")
    fields = {
        "parm_addr": parm.address if parm else NO_PARMLINE,
        "initrd_addr": initrd.address if initrd else 0,
        "initrd_len": len(initrd.data) if initrd else 0,
        "load_psw": DEFAULT_PSW_LOAD,
        "extra_parm": 0,
        "flags": FLAG_SCSI,
        "image_len": len(kern.data),
        "image_addr": kern.address,
    }
    return Stage3ParamsLegacy.build(fields) if legacy else Stage3Params.build(dict(fields, envblk_addr=0, envblk_len=0))


def default_components(bs: int = 512, *, legacy: bool = False) -> list[Comp]:
    """§13.1 inputs (or §13.6 for zipl 2.16 with legacy=True).  build_dump_disk refreshes 'params'."""
    return [
        Comp("heap", 0x2000, bytes(0x4000)),
        Comp("stack", 0xF000, bytes(0x1000)),
        Comp("stage3", 0xA000, b"S" * 1024),
        Comp("params", 0x9000, b""),
        Comp("kernel", 0x10000, b"K" * 1536),
        Comp("parmline", 0x11000, PARMLINE_216 if legacy else PARMLINE),
        Comp("initrd", 0x20000 if legacy else 0x30000, b"R" * 1024),
    ]


def build_dump_disk(
    *,
    bs: int = 512,
    disk_blocks: int = 2048,
    part_start: int = 64,
    part_blocks: int = 1984,
    bootmap_start: int = 1920,
    comps: list[Comp] | None = None,
    psw: int = STAGE3_PSW,
    legacy: bool = False,
    fill: bytes | None = None,
    auto_params: bool = True,
) -> Layout:
    """A SCSI dump disk laid out as zipl does (spec §7.2, §13): >= 2.26 rules, or 2.16 rules with legacy=True.

    `fill` pre-fills the whole disk with a pattern first, so every byte zipl
    does not write (spec §7.4) holds it; the partition's first 64 KiB are then
    wiped as zipl does.
    """
    comps = comps if comps is not None else default_components(bs, legacy=legacy)
    for c in comps:
        if c.name == "params" and auto_params:
            c.data = stage3_params(comps, legacy=legacy)
    size = disk_blocks * bs
    img = bytearray((fill * (size // len(fill) + 1))[:size]) if fill else bytearray(size)
    nxt = part_start + bootmap_start

    def put(lba: int, data: bytes) -> None:
        img[lba * bs : lba * bs + len(data)] = data

    def alloc() -> int:
        nonlocal nxt
        nxt += 1
        return nxt - 1

    header = alloc()
    put(header, (HEADER_TEXT + b"\0") if legacy else build_bootmap_header())
    put(alloc(), bytes(bs))  # empty block (written whole)
    sb_bytes = build_superblock(part_start * bs, part_blocks * bs, bootmap_start * bs)
    superblock = 0
    if not legacy:
        superblock = alloc()
        put(superblock, sb_bytes)
    entries = []
    for c in comps:
        nblocks = -(-len(c.data) // bs)
        for k in range(nblocks):
            lba = alloc()
            if c.fragment:
                alloc()  # a gap keeps neighbouring blocks from merging
            c.data_lbas.append(lba)
            put(lba, c.data[k * bs : (k + 1) * bs])
        groups = chain_layout(compact(c.data_lbas, bs), bs)
        chain = 0
        lbas = []
        for g in reversed(groups):  # last list block is written first (spec §6.2)
            lba = alloc()
            put(lba, build_list_block(g, chain, bs))
            chain = lba
            lbas.append(lba)
        c.list_lbas = lbas[::-1]
        entries.append(load_entry(chain, bs, c.address))
    entries.append(execute_entry(psw))
    ct = alloc()
    put(ct, build_component_table(HEADER_DUMP, entries, bs))
    pt = alloc()
    put(pt, build_program_table({0: ct}, bs))
    if legacy:
        superblock = alloc()
        put(superblock, sb_bytes)
    # block 0: a DOS label with one partition (LE), then zipl's 152 bytes
    img[0x1BE:0x1FE] = bytes(64)
    img[0x1C2] = 0x83
    img[0x1C6:0x1CA] = part_start.to_bytes(4, "little")
    img[0x1CA:0x1CE] = part_blocks.to_bytes(4, "little")
    img[0x1FE:0x200] = b"\x55\xaa"
    img[0:0x98] = build_boot_record(pt, bs, dump_boot_info(superblock * bs))
    wipe = min(PARTITION_WIPE_SIZE, part_blocks * bs)
    img[part_start * bs : part_start * bs + wipe] = bytes(wipe)
    return Layout(bs, img, part_start, part_blocks, header, superblock, comps, ct, pt)


def build_4k() -> Layout:
    """The §13 inputs on a 4096-byte-block disk."""
    return build_dump_disk(bs=4096, disk_blocks=2048, part_start=256, part_blocks=1792, bootmap_start=1792 - 64)


def fragmented_layout(bs: int, nblocks: int) -> Layout:
    """The §13 inputs without the initrd, the kernel `nblocks` long and every block its own extent."""
    comps = default_components(bs)
    kern = next(c for c in comps if c.name == "kernel")
    kern.data = b"K" * (nblocks * bs)
    kern.fragment = True
    comps = [c for c in comps if c.name != "initrd"]  # keep the image small
    comps[-1].address = 0x10000 + nblocks * bs + 0x1000
    return build_dump_disk(bs=bs, comps=comps, disk_blocks=4096 if bs == 512 else 2048, part_blocks=4096 - 64 if bs == 512 else 1792,
                           part_start=64 if bs == 512 else 256, bootmap_start=(4096 - 64 - 400) if bs == 512 else 1792 - 1200)


def hand_built_spec_example(path: Path) -> None:
    """Spec §13.1/§13.2 byte for byte (zipl >= 2.26 rules), by the test-only writer above.

    zipldump.zipl.installer.build_spec_example makes the same image through the
    installer; this one checks the readers and the firmware model without it."""
    build_dump_disk().write(path)


# --- one program from hand-chosen components (spec §2-§6) -------------------------------------
@dataclass
class Built:
    path: Path
    bs: int
    ct_lba: int = 0
    pt_lba: int = 0
    lists: dict[int, list[int]] = field(default_factory=dict)  # component index -> list LBAs
    data: dict[int, int] = field(default_factory=dict)  # component index -> first data LBA


def build_disk(
    path: Path,
    components: list[tuple[int, bytes]],
    *,
    bs: int = 512,
    psw: int = STAGE3_PSW,
    header_type: int = 1,
    entry: int = 0,
    disk_blocks: int = 4096,
    start: int = 64,
    pointer_blocks: int = 1 << 16,
    extra_entries: dict[int, bool] | None = None,
) -> Built:
    """Write a disk with one program: each component's data, its list block(s), the
    component table, the program table (at `entry`) and block 0.

    `pointer_blocks` caps the blocks per data pointer, to force many pointers
    (and chained list blocks)."""
    img = bytearray(disk_blocks * bs)
    out = Built(path, bs)
    lba = start
    entries = []
    for i, (address, data) in enumerate(components):
        nblk = max(1, -(-len(data) // bs))
        first = lba
        img[first * bs : first * bs + len(data)] = data
        lba += nblk
        out.data[i] = first
        ptrs = []
        b, left = first, nblk
        while left:
            n = min(left, pointer_blocks)
            ptrs.append(BlockPtr(b, bs, n - 1))
            b += n
            left -= n
        per = data_slots_per_block(bs)
        groups = [ptrs[j : j + per] for j in range(0, len(ptrs), per)]
        list_lbas = list(range(lba, lba + len(groups)))
        lba += len(groups)
        for g, group in enumerate(groups):
            chain = list_lbas[g + 1] if g + 1 < len(groups) else 0
            img[list_lbas[g] * bs : (list_lbas[g] + 1) * bs] = build_list_block(group, chain, bs)
        out.lists[i] = list_lbas
        entries.append(load_entry(list_lbas[0], bs, address))
    entries.append(execute_entry(psw))
    out.ct_lba = lba
    img[lba * bs : (lba + 1) * bs] = build_component_table(header_type, entries, bs)
    lba += 1
    out.pt_lba = lba
    img[lba * bs : lba * bs + 512] = build_program_table({entry: out.ct_lba}, bs)
    rec = build_boot_record(out.pt_lba, bs, dump_boot_info(0x12345) if header_type == 1 else None)
    img[0 : len(rec)] = rec
    img[510:512] = b"\x55\xaa"
    path.write_bytes(img)
    return out


# --- the direct IPL layout, for QEMU's s390-ccw BIOS --------------------------------------------
KERNEL_OFFSET = 0x10000
INITRD_ADDRESS = 0x4000000


def _write_component(fh, data: bytes, next_lba: int, bs: int) -> tuple[int, int]:
    """Data blocks then their list blocks at next_lba; returns (first list LBA, next free LBA)."""
    nblocks = (len(data) + bs - 1) // bs
    os.pwrite(fh.fileno(), data, next_lba * bs)
    ptrs = split_extents([(next_lba, nblocks)], bs)
    lba = next_lba + nblocks
    n = data_slots_per_block(bs)
    chunks = [ptrs[i : i + n] for i in range(0, len(ptrs), n)]
    first = lba
    for i, chunk in enumerate(chunks):
        chain = lba + 1 if i + 1 < len(chunks) else 0
        os.pwrite(fh.fileno(), build_list_block(chunk, chain, bs), lba * bs)
        lba += 1
    return first, lba


def build_direct_disk(
    path: Path,
    kernel: Path,
    initrd: bytes,
    cmdline: str,
    *,
    block_size: int = 512,
    header_type: int = HEADER_IPL,
) -> None:
    """The direct layout of verified-facts.md: the kernel from file offset 0x10000 at 0x10000, with
    the initrd location and the command line written into that copy, then EXECUTE 0x0008000080010000."""
    bs = block_size
    image = bytearray(kernel.read_bytes()[KERNEL_OFFSET:])

    def off(addr: int) -> int:
        return addr - KERNEL_OFFSET

    image[off(INITRD_START) : off(INITRD_START) + 16] = INITRD_ADDRESS.to_bytes(8, "big") + len(initrd).to_bytes(8, "big")
    limit = int.from_bytes(image[off(MAX_COMMAND_LINE_SIZE) : off(MAX_COMMAND_LINE_SIZE) + 8], "big") or 896
    line = cmdline.encode() + b"\0"
    assert len(line) <= limit
    image[off(COMMAND_LINE) : off(COMMAND_LINE) + limit] = line.ljust(limit, b"\0")
    with open(path, "wb") as fh:
        lba = 16
        k_list, lba = _write_component(fh, bytes(image), lba, bs)
        i_list, lba = _write_component(fh, initrd, lba, bs)
        table = build_component_table(
            header_type,
            [load_entry(k_list, bs, KERNEL_OFFSET), load_entry(i_list, bs, INITRD_ADDRESS), execute_entry(DEFAULT_PSW_LOAD)],
            bs,
        )
        os.pwrite(fh.fileno(), table, 2 * bs)
        os.pwrite(fh.fileno(), build_program_table({0: 2}, bs), 1 * bs)
        os.pwrite(fh.fileno(), build_boot_record(1, bs), 0)
        fh.truncate((lba + 64) * bs)


# --- made by the installer ----------------------------------------------------------------------
def installed_disk(tmp_path: Path, *, bs: int = 512, stage3: bool = True, params: str | None = "dump_debug=3"):
    """A --dumpto disk made by zipldump's installer from the demo kernel and stage 3 and an odd-sized initrd.

    Returns (image, install result, kernel bytes, initrd bytes)."""
    kernel = kernel_image()
    initrd = bytes(range(256)) * 700  # 175 KiB, not block aligned
    (tmp_path / "k").write_bytes(kernel)
    (tmp_path / "r").write_bytes(initrd[:-77])
    (tmp_path / "s3").write_bytes(stage3_image())
    img = tmp_path / "disk.img"
    size = 64 * MiB if bs == 512 else 320 * MiB  # §7.3 reserves 0x10000 blocks
    make_disk(img, size, block_size=bs, parts=[PartSpec(None)])
    job = InstallJob(
        image_path=img,
        mode="dumpto",
        partition=1,
        block_size=bs,
        programs={0: ProgramSpec("dump", "dump", tmp_path / "k", tmp_path / "r", parameters=params)},
        stage3=(tmp_path / "s3") if stage3 else None,
        assume_yes=True,
    )
    res = install(job, quiet_ui())
    return img, res, kernel, initrd[:-77]

