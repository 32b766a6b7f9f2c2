"""Which blocks hold what: program composition, the dump tail (§7.3) and the bootmap
block layout with its write order (§6.2, §7.2).

Pure: the layout takes a function `lba_of(index)` that maps the bootmap's n-th device
block to a disk LBA.  For a raw dump partition that is `start + index`; for a
bootmap file it comes from the file's physical block map.  Component data are
`Source`s (bytes, or a slice of a file with byte patches) that the installer
streams in 1 MiB chunks; nothing here reads a whole kernel or ramdisk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zipldump.disk.io import open_binary
from zipldump.errors import (
    KernelImageError,
    LayoutError,
    PartitionTooSmallError,
    UsageError,
)
from zipldump.formats import kernel_image as ki
from zipldump.formats.blocklist import build_list_block, chain_layout, compact
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootmap_header import HEADER_TEXT, build_bootmap_header
from zipldump.formats.component_table import (
    HEADER_DUMP,
    HEADER_IPL,
    STAGE3_PSW,
    build_component_table,
    execute_entry,
    load_entry,
    max_entries,
)
from zipldump.formats.program_table import PROGRAM_TABLE_SIZE, build_program_table
from zipldump.formats.stage3_params import (
    DEFAULT_PSW_LOAD,
    FLAG_SCSI,
    NO_PARMLINE,
    STAGE3_HEAP_ADDRESS,
    STAGE3_HEAP_SIZE,
    STAGE3_LOAD_ADDRESS,
    STAGE3_PARAMS_ADDRESS,
    STAGE3_STACK_ADDRESS,
    STAGE3_STACK_SIZE,
    Stage3Params,
    Stage3ParamsLegacy,
)
from zipldump.plan.addresses import (
    KERNEL,
    LEGACY_PARMLINE_SIZE,
    MAXIMUM_PARMLINE_SIZE,
    PARMLINE,
    RAMDISK,
    AddressPlan,
    LoadedRange,
    assign_addresses,
    check_hsa,
)
from zipldump.plan.job import ProgramSpec

CHUNK = 1 << 20
DUMP_PARAM_MAX_LEN = 896
DEFAULT_DUMP_PARMLINE = "root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"  # zipl >= 2.26
# Byte layouts: None = current zipl (>= 2.26); "2.16" = zipl 1.24-2.17 rules as real
# zipl 2.16 writes them (38-byte header, superblock last, 64-byte stage-3 parameters,
# ramdisk ALIGN(parm + 0x1000, 0x10000), "dump_mem=<partition>" parmline), spec §13.6.
COMPAT_VERSIONS = (None, "2.16")
STAGE3_RESERVE_BLOCKS = 0x10000  # zipl's "approximated stage 3 size", counted in blocks (§7.3)

HEAP = "heap area"
STACK = "stack area"
LOADER = "internal loader"
PARAMS = "stage3 parameters"


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """Component data: `data` bytes, or `length` bytes of file `path` from `offset`.

    `patches` are (relative offset, bytes) replaced in the stream (the direct
    layout's parm area in the kernel copy).
    """

    data: bytes | None = None
    path: Path | None = None
    offset: int = 0
    length: int = 0
    patches: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def of_bytes(cls, data: bytes) -> Source:
        return cls(data=bytes(data), length=len(data))

    @classmethod
    def of_file(cls, path: Path, offset: int = 0, length: int | None = None, patches: Iterable[tuple[int, bytes]] = ()) -> Source:
        size = os.path.getsize(path)
        if length is None:
            length = size - offset
        return cls(path=Path(path), offset=offset, length=length, patches=tuple(patches))

    def read(self, rel: int, n: int) -> bytes:
        """Bytes [rel, rel+n) of the component (clipped to its length), patches applied."""
        n = max(0, min(n, self.length - rel))
        if self.data is not None:
            out = bytearray(self.data[rel : rel + n])
        else:
            assert self.path is not None
            with open_binary(self.path, error=UsageError) as fh:
                fh.seek(self.offset + rel)
                out = bytearray(fh.read(n))
            if len(out) != n:
                raise UsageError(f"file {self.path} shrank while installing", where=str(self.path))
        for poff, pdata in self.patches:
            lo, hi = max(poff, rel), min(poff + len(pdata), rel + n)
            if lo < hi:
                out[lo - rel : hi - rel] = pdata[lo - poff : hi - poff]
        return bytes(out)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        for rel in range(0, self.length, size):
            yield self.read(rel, size)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        return h.hexdigest()


# ------------------------------------------------------------------ program composition
@dataclass(frozen=True)
class ComponentSpec:
    kind: str  # heap, stack, loader, params, kernel, parmline, ramdisk
    name: str
    address: int
    source: Source

    @property
    def loaded(self) -> LoadedRange:
        return LoadedRange(self.name, self.address, self.source.length)


@dataclass
class ProgramImage:
    """One program ready for layout: header type, LOAD components in order, EXECUTE PSW."""

    position: int
    name: str
    kind: str
    header_type: int
    components: list[ComponentSpec]
    psw: int
    parmline: str | None
    layout: str  # "stage3" or "direct"


@dataclass(frozen=True)
class KernelInfo:
    size: int
    has_ep: bool
    max_command_line_size: int

    @property
    def command_line_limit(self) -> int:
        return ki.command_line_limit(self.max_command_line_size)


def read_kernel_info(path: Path, *, check: bool = True) -> KernelInfo:
    """Size, S390EP marker and command-line limit of a kernel image file.

    With `check`, refuse files shorter than 0x10438 bytes (zipl >= 2.20) and files
    without "S390EP" at 0x10008: the direct layout patches the parm area at
    0x10400, which only exists in a real s390 kernel image.
    """
    with open_binary(path, error=UsageError) as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(ki.EP_OFFSET)
        ep = fh.read(len(ki.EP_STRING))
        fh.seek(ki.MAX_COMMAND_LINE_SIZE)
        raw = fh.read(8)
    max_cl = int.from_bytes(raw, "big") if len(raw) == 8 else 0
    info = KernelInfo(size, ep == ki.EP_STRING, max_cl)
    if check:
        if size < ki.MIN_IMAGE_SIZE:
            raise KernelImageError(
                f"kernel image {path} is {size} bytes; an s390 kernel image has at least {ki.MIN_IMAGE_SIZE:#x} bytes",
                where=f"{path}",
            )
        if not info.has_ep:
            raise KernelImageError(
                f"kernel image {path} has no 'S390EP' marker at file offset {ki.EP_OFFSET:#x} (not an s390 kernel image?)",
                where=f"{path} offset {ki.EP_OFFSET:#x}",
            )
    return info


def build_parmline(prog: ProgramSpec, compat: str | None = None) -> str | None:
    """The command line zipl would generate for this program (§8.6)."""
    user = (prog.parameters or "").strip()
    if prog.kind == "ipl":
        return user or None
    prefix = f"{user} " if user else ""
    if prog.kind == "dump":
        if compat == "2.16":
            # 1.24-2.25: "dump_mem=" carries the partition number (a zipl leftover), trailing blank
            return f"{prefix}root=/dev/ram0 dump_mem={prog.dump_partition} possible_cpus=1 cgroup_disable=memory "
        return prefix + DEFAULT_DUMP_PARMLINE  # zipl >= 2.26: user parameters first
    # dumptofs, s390-tools <= 1.23 format (trailing blank kept)
    mem = f"dump_mem={prog.dump_mem} " if prog.dump_mem is not None else ""
    return f"{prefix}root=/dev/ram0 dump_part={prog.dump_partition} {mem}possible_cpus=1 cgroup_disable=memory "


def check_parmline(
    parmline: str | None, kernel: KernelInfo, *, dump: bool, where: str, compat: str | None = None
) -> bytes | None:
    """Encode the parmline and check it against the kernel's limit (and 896 for dumps)."""
    if parmline is None:
        return None
    try:
        data = parmline.encode("ascii") + b"\0"
    except UnicodeEncodeError as exc:
        raise UsageError(f"kernel parameters must be ASCII: {exc.reason} at character {exc.start}", where=where) from None
    limit = kernel.command_line_limit
    if dump or compat == "2.16":  # before 2.20 the limit was a fixed 896 for every kernel
        limit = min(limit, DUMP_PARAM_MAX_LEN)
    if len(data) > limit:
        raise LayoutError(
            f"The length of the parameters line ({len(data) - 1} bytes) exceeds the allowed maximum "
            f"({limit - 1} bytes plus the NUL)",
            where=where,
        )
    return data


def compose_program(
    position: int,
    prog: ProgramSpec,
    *,
    stage3: Source | None,
    hsa_size: int,
    check_kernel: bool = True,
    compat: str | None = None,
    block_size: int = 1,
) -> tuple[ProgramImage, AddressPlan]:
    """Turn a ProgramSpec into the exact LOAD list (§8.1/§8.2, or the direct layout).

    All checks happen here, before anything is written: kernel image sanity,
    parmline length, address overlap/limit, and the HSA limit for dump programs
    (on the whole `block_size` blocks the firmware loads).
    """
    kernel = read_kernel_info(prog.image, check=check_kernel)
    rd_size = os.path.getsize(prog.ramdisk) if prog.ramdisk is not None else None
    if rd_size == 0:
        raise UsageError(f"initial ramdisk {prog.ramdisk} is empty", where=str(prog.ramdisk))
    if compat not in COMPAT_VERSIONS:
        raise UsageError(f"unknown zipl compatibility version {compat!r} (use one of {', '.join(map(str, COMPAT_VERSIONS))})", where="--compat")
    legacy = compat == "2.16"
    parmline = build_parmline(prog, compat)
    parm_bytes = check_parmline(parmline, kernel, dump=prog.is_dump, where=f"parameters of {prog.name!r}", compat=compat)
    if stage3 is None and prog.image_address not in (None, ki.IMAGE_LOAD_ADDRESS):
        raise LayoutError(
            f"the direct layout (no --stage3) loads the kernel at {ki.IMAGE_LOAD_ADDRESS:#x}; "
            f"address {prog.image_address:#x} needs the stage 3 loader",
            where=f"image address of {prog.name!r}",
        )
    addrs = assign_addresses(
        kernel.size,
        len(parm_bytes) if parm_bytes else None,
        rd_size,
        image_addr=prog.image_address if prog.image_address is not None else ki.IMAGE_LOAD_ADDRESS,
        parm_addr=prog.parm_address,
        ramdisk_addr=prog.ramdisk_address,
        parmline_reserve=LEGACY_PARMLINE_SIZE if legacy else MAXIMUM_PARMLINE_SIZE,
    )
    comps: list[ComponentSpec] = []
    if stage3 is not None:
        comps.append(ComponentSpec("heap", HEAP, STAGE3_HEAP_ADDRESS, Source.of_bytes(bytes(STAGE3_HEAP_SIZE))))
        comps.append(ComponentSpec("stack", STACK, STAGE3_STACK_ADDRESS, Source.of_bytes(bytes(STAGE3_STACK_SIZE))))
        comps.append(ComponentSpec("loader", LOADER, STAGE3_LOAD_ADDRESS, stage3))
        params = (Stage3ParamsLegacy if legacy else Stage3Params).build(
            {
                "parm_addr": addrs.parm_addr if parm_bytes else NO_PARMLINE,
                "initrd_addr": addrs.ramdisk_addr or 0,
                "initrd_len": rd_size or 0,
                "load_psw": DEFAULT_PSW_LOAD,
                "extra_parm": 0,
                "flags": FLAG_SCSI,
                "image_len": kernel.size,
                "image_addr": addrs.image_addr,
                "envblk_addr": 0,
                "envblk_len": 0,
            }
        )
        comps.append(ComponentSpec("params", PARAMS, STAGE3_PARAMS_ADDRESS, Source.of_bytes(params)))
        comps.append(ComponentSpec("kernel", KERNEL, addrs.image_addr, Source.of_file(prog.image)))
        psw = STAGE3_PSW
        layout = "stage3"
    else:
        # Direct layout: what stage 3 would leave in memory, prepared on disk.
        if kernel.size <= ki.KERNEL_HEADER_SIZE:
            raise KernelImageError(f"kernel image {prog.image} has no data after its first 64 KiB", where=str(prog.image))
        patches = [
            # initrd_start and initrd_size, adjacent in the parm area
            (ki.INITRD_START - ki.KERNEL_HEADER_SIZE, (addrs.ramdisk_addr or 0).to_bytes(8, "big") + (rd_size or 0).to_bytes(8, "big")),
        ]
        if parm_bytes:
            if ki.COMMAND_LINE + len(parm_bytes) > kernel.size:
                raise KernelImageError(
                    f"kernel image {prog.image} ends before the command line area "
                    f"({ki.COMMAND_LINE:#x}+{len(parm_bytes)} bytes)",
                    where=f"{prog.image} offset {ki.COMMAND_LINE:#x}",
                )
            patches.append((ki.COMMAND_LINE - ki.KERNEL_HEADER_SIZE, parm_bytes))
        src = Source.of_file(prog.image, ki.KERNEL_HEADER_SIZE, kernel.size - ki.KERNEL_HEADER_SIZE, patches)
        comps.append(ComponentSpec("kernel", KERNEL, ki.IMAGE_LOAD_ADDRESS, src))
        psw = DEFAULT_PSW_LOAD
        layout = "direct"
    if parm_bytes:
        assert addrs.parm_addr is not None
        comps.append(ComponentSpec("parmline", PARMLINE, addrs.parm_addr, Source.of_bytes(parm_bytes)))
    if prog.ramdisk is not None:
        assert addrs.ramdisk_addr is not None
        comps.append(ComponentSpec("ramdisk", RAMDISK, addrs.ramdisk_addr, Source.of_file(prog.ramdisk)))
    if prog.is_dump:
        check_hsa([c.loaded for c in comps], hsa_size, program=prog.name, block_size=block_size)
    header = HEADER_DUMP if prog.is_dump else HEADER_IPL
    img = ProgramImage(position, prog.name, prog.kind, header, comps, psw, parmline, layout)
    return img, addrs


# ---------------------------------------------------------------------- dump tail §7.3
def estimate_scsi_dump_size(kernel_size: int, ramdisk_size: int | None, block_size: int) -> int:
    """zipl's reserve for the dump tool in blocks (§7.3), including its unit quirks.

    A kernel below 64 KiB makes zipl's unsigned subtraction wrap; that is reported
    as PartitionTooSmallError, as zipl does.
    """
    if kernel_size < 0x10000:
        raise PartitionTooSmallError(
            f"Partition too small for dump tool (kernel image of {kernel_size} bytes is below 64 KiB, "
            "which zipl's size estimate cannot handle)",
            where="dump tail estimate",
        )

    def blocks(n: int) -> int:
        return -(-n // block_size)

    size = STAGE3_RESERVE_BLOCKS
    if ramdisk_size is not None:
        size += blocks(ramdisk_size) + 1
    size += blocks(kernel_size - 0x10000)
    size += blocks(DUMP_PARAM_MAX_LEN)
    size += 8
    return size


@dataclass(frozen=True)
class DumpTail:
    reserve_blocks: int  # blocks zipl reserves at the end of the partition
    start: int  # partition-relative block where the bootmap header goes
    dump_size: int  # bytes before it (= superblock dump_size)


def dump_tail(partition_blocks: int, kernel_size: int, ramdisk_size: int | None, block_size: int) -> DumpTail:
    size = estimate_scsi_dump_size(kernel_size, ramdisk_size, block_size)
    if size > partition_blocks:
        raise PartitionTooSmallError(
            f"Partition too small for dump tool: it has {partition_blocks} blocks of {block_size} bytes, "
            f"the dump tool needs {size}",
            where="dump partition",
        )
    start = partition_blocks - size
    return DumpTail(size, start, start * block_size)


# ------------------------------------------------------------------- bootmap layout
@dataclass
class PlacedComponent:
    spec: ComponentSpec
    first_index: int  # bootmap index of its first data block
    nblocks: int
    pointers: list[BlockPtr]  # data pointers in file order
    list_lbas: list[int]  # list blocks in reading order (entry points at [0])
    list_blocks: list[bytes]  # contents, reading order

    @property
    def first_list_lba(self) -> int:
        return self.list_lbas[0]


@dataclass
class PlacedProgram:
    image: ProgramImage
    components: list[PlacedComponent]
    ct_lba: int
    ct_bytes: bytes


@dataclass(frozen=True)
class Write:
    """One write: whole `data` at `lba`, or `length` bytes of `source` from `src_offset`."""

    lba: int
    what: str
    data: bytes | None = None
    source: Source | None = None
    src_offset: int = 0
    length: int = 0


@dataclass
class BootmapLayout:
    block_size: int
    nblocks: int  # bootmap device blocks used (indices 0..nblocks-1)
    header_lba: int
    empty_lba: int
    superblock_lba: int | None
    programs: list[PlacedProgram]
    pt_lba: int
    pt_entries: dict[int, int]  # program-table entry -> component table LBA
    pad: bool  # write whole zero-padded blocks (bootmap file) or exact lengths (raw partition)
    superblock: bytes | None = None
    header: bytes = b""  # the header bytes written (512 since zipl 2.18, 38 before)
    superblock_last: bool = False  # zipl 1.24-2.24: superblock after the program table

    @property
    def pt_bytes(self) -> bytes:
        return build_program_table(self.pt_entries, self.block_size)

    def _blk(self, data: bytes) -> bytes:
        return data.ljust(self.block_size, b"\0") if self.pad else data

    def writes(self) -> Iterator[Write]:
        """Every write in zipl's order (§7.2)."""
        bs = self.block_size
        yield Write(self.header_lba, "bootmap header", data=self._blk(self.header or build_bootmap_header()))
        yield Write(self.empty_lba, "empty block", data=bytes(bs))
        if self.superblock_lba is not None and not self.superblock_last:
            assert self.superblock is not None
            yield Write(self.superblock_lba, "dump superblock", data=self._blk(self.superblock))
        for prog in self.programs:
            for pc in prog.components:
                src, off = pc.spec.source, 0
                for p in pc.pointers:
                    n = min(p.nblocks * bs, src.length - off)
                    yield Write(p.blockno, pc.spec.name, source=src, src_offset=off, length=n)
                    off += n
                # list blocks: the last one is written first, the first one last (§6.2)
                for lba, data in reversed(list(zip(pc.list_lbas, pc.list_blocks, strict=True))):
                    yield Write(lba, f"{pc.spec.name} block list", data=data)
            yield Write(prog.ct_lba, f"component table of {prog.image.name!r}", data=prog.ct_bytes)
        yield Write(self.pt_lba, "program table", data=self._blk(self.pt_bytes))
        if self.superblock_lba is not None and self.superblock_last:
            assert self.superblock is not None
            yield Write(self.superblock_lba, "dump superblock", data=self._blk(self.superblock))


def layout_bootmap(
    programs: list[ProgramImage],
    block_size: int,
    lba_of: Callable[[int], int],
    *,
    default_position: int = 0,
    superblock: bytes | None = None,
    pad: bool = False,
    compat: str | None = None,
) -> BootmapLayout:
    """Place header, empty block, [superblock], each program's data + lists + component
    table, and the program table, in zipl >= 2.25 order.  `programs` in menu order.
    """
    bs = block_size
    idx = 0

    def take(n: int) -> list[int]:
        nonlocal idx
        out = [lba_of(i) for i in range(idx, idx + n)]
        idx += n
        return out

    legacy = compat == "2.16"
    header_lba, empty_lba = take(2)
    sb_lba = take(1)[0] if superblock is not None and not legacy else None
    placed: list[PlacedProgram] = []
    for prog in programs:
        if len(prog.components) + 1 > max_entries(bs):
            raise LayoutError(f"program {prog.name!r} has too many components for one {bs}-byte component table", where=f"program {prog.name!r}")
        pcs: list[PlacedComponent] = []
        for comp in prog.components:
            if comp.source.length <= 0:
                raise LayoutError(f"component '{comp.name}' is empty", where=f"program {prog.name!r}")
            n = -(-comp.source.length // bs)
            first = idx
            ptrs = compact(take(n), bs, empty_lba)
            groups = chain_layout(ptrs, bs)
            m = len(groups)
            lbas_written = take(m)  # written order: last group first
            reading = list(reversed(lbas_written))
            blocks = [
                build_list_block(g, reading[k + 1] if k + 1 < m else 0, bs) for k, g in enumerate(groups)
            ]
            pcs.append(PlacedComponent(comp, first, n, ptrs, reading, blocks))
        entries = [load_entry(pc.first_list_lba, bs, pc.spec.address) for pc in pcs]
        entries.append(execute_entry(prog.psw))
        ct = build_component_table(prog.header_type, entries, bs)
        placed.append(PlacedProgram(prog, pcs, take(1)[0], ct))
    pt_lba = take(1)[0]
    if superblock is not None and legacy:
        sb_lba = take(1)[0]
    pt_entries = {p.image.position: p.ct_lba for p in placed}
    if len(placed) > 1 or placed[0].image.position != 0:
        pt_entries[0] = pt_entries[default_position]
    header = HEADER_TEXT + b"\0" if legacy else build_bootmap_header()
    return BootmapLayout(
        bs, idx, header_lba, empty_lba, sb_lba, placed, pt_lba, pt_entries, pad, superblock, header, legacy
    )


def bootmap_file_size(layout: BootmapLayout) -> int:
    """Byte size of a bootmap file: it ends with the 512-byte program table (§7.2)."""
    return (layout.nblocks - 1) * layout.block_size + PROGRAM_TABLE_SIZE
