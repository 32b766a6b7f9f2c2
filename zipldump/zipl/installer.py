"""The installer: writes zipl SCSI IPL and dump programs onto a disk image.

`install(job, ui)` runs every check first (input files, partition, kernel images,
parmline, addresses, HSA limit, space), asks before destroying data, then writes
in this order: bootmap data and tables, (dump partition) the 64 KiB wipe, fsync,
read-back of every block list with data hashes, and block 0 last, fsync.  The
image stays locked (flock) for the whole run; `dry_run` does everything except
the writes.  See docs/installer.md.

Three targets:
* `dumpto`   - raw dump partition, bootmap in its tail (zipl >= 2.26 bytes, §7);
* `target`   - file /bootmap in the ext2/3/4 file system of a partition (IPL);
* `dumptofs` - as `target`, with dump programs (s390-tools <= 1.23 design, §8.8).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zipldump.disk.extfs import (
    EXT_MAGIC,
    EXT_MAGIC_OFFSET,
    EXT_SB_OFFSET,
    has_ext_magic,
)
from zipldump.disk.image import DiskImage
from zipldump.disk.io import Extents, runs_of_blocks
from zipldump.disk.partitions import BlockExtent, Mbr
from zipldump.dump.params import parse_dump_cmdline
from zipldump.errors import (
    DiskError,
    DumpSpaceError,
    FormatError,
    LayoutError,
    PartitionTooSmallError,
    UsageError,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootrecord import (
    BOOT_RECORD_SIZE,
    ZIPL_MAGIC,
    BootRecord,
    build_boot_record,
    dump_boot_info,
)
from zipldump.formats.component_table import TYPE_LOAD
from zipldump.formats.dump_superblock import (
    PARTITION_WIPE_SIZE,
    SB_SEED,
    build_superblock,
    cksm,
)
from zipldump.formats.s390dump import (
    BUSY_MARKER,
    DUMP_MAGIC,
    DUMP_MAGIC_EXT,
    LKCD_MAGIC,
)
from zipldump.jsonout import JsonMixin, member, to_json
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.plan.layout import (
    BootmapLayout,
    ProgramImage,
    Source,
    bootmap_file_size,
    build_parmline,
    compose_program,
    dump_tail,
    layout_bootmap,
)
from zipldump.ui import UI
from zipldump.zipl import bootmap as reader

if TYPE_CHECKING:
    from zipldump.disk.extfs import ExtFs

BOOTMAP_NAME = "/bootmap"
BOOTMAP_TEMP = "/bootmap_temp.zipldump"
BOOTMAP_MODE = 0o600  # zipl makes the bootmap with mkstemp(3): 0600, owned by root
BOOTMAP_OWNER = (0, 0)


def bootmap_paths(job: InstallJob) -> tuple[str, str]:
    """(bootmap, temp file) in the file system: DIR/bootmap for target=DIR (zipl's rule), /bootmap by default."""
    d = job.bootmap_dir.rstrip("/")
    return d + BOOTMAP_NAME, d + BOOTMAP_TEMP
STAGE3_MAX_SIZE = 0x4000  # 0xA000..0xDFFF; 0xE000 is the extra command line, 0xF000 the stack
_OTHER_DUMP_MAGICS = {DUMP_MAGIC_EXT: "s390_ext", LKCD_MAGIC: "LKCD"}
_EXTENDED_TYPES = (0x05, 0x0F, 0x85)
_LAYOUT_RETRIES = 8
# libparted's generic x86 MBR boot code (bytes 0x00-0x4A, zero up to 0x97): it cannot
# run on IBM Z, so replacing it is no loss worth a question.
_PARTED_BOOT_CODE_SHA256 = "fce7375b2d60f423fc797c2714de6a269956d8881557a5fcfe0cad547c0a2d98"


@dataclass(frozen=True)
class Target(BlockExtent):
    """Where the bootmap goes: partition `number` (0 = whole disk) in device blocks."""

    number: int
    start: int
    length: int
    block_size: int


TARGET_JSON = tuple(map(member, ("number", "start", "length", "start_bytes", "size_bytes")))  # "partition"


@dataclass
class InstallResult(JsonMixin):
    mode: str
    image: str
    block_size: int
    partition: int
    dry_run: bool
    layout: BootmapLayout
    target: Target
    superblock_offset: int | None = None
    dump_size: int | None = None
    bootmap_start: int | None = None
    bootmap_file: str | None = None
    verified: bool = False
    losses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hashes: dict[tuple[int, int], str] = field(default_factory=dict)
    # (program, component) -> (bytes loaded = whole blocks, SHA-256 of them), as inspect reports them
    loaded: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)

    JSON = (
        *map(member, ("mode", "image", "block_size")),
        member("partition", lambda r: to_json(r.target, TARGET_JSON)),
        member("dry_run"),
        # "disk": LBAs on the image; "file-plan": a dry run of a bootmap file, whose
        # blocks are only allocated by a real install (numbers are file block + 1)
        member("block_numbers", lambda r: "file-plan" if r.dry_run and r.bootmap_file else "disk"),
        member("program_table", lambda r: r.layout.pt_lba),
        member("program_table_entries", lambda r: {str(k): v for k, v in sorted(r.layout.pt_entries.items())}),
        member("bootmap_header", lambda r: r.layout.header_lba),
        member("empty_block", lambda r: r.layout.empty_lba),
        member("bootmap_blocks", lambda r: r.layout.nblocks),
        member("bootmap_start"),
        member("bootmap_file"),
        member("superblock_lba", lambda r: r.layout.superblock_lba),
        member("superblock_offset"),
        member("dump_size"),
        member("programs", lambda r: r.programs_json()),
        member("verified"),
        member("overwritten", "losses"),
        member("warnings"),
    )

    def programs_json(self) -> list[dict[str, Any]]:
        """The programs as planned, each component with what the firmware loads (as `inspect` hashes it)."""
        progs = []
        for pi, prog in enumerate(self.layout.programs):
            comps = []
            for ci, pc in enumerate(prog.components):
                loaded = self.loaded.get((pi, ci))
                comps.append(
                    {
                        "kind": pc.spec.kind,
                        "name": pc.spec.name,
                        "address": pc.spec.address,
                        "address_hex": f"{pc.spec.address:#x}",
                        "length": pc.spec.source.length,
                        "sha256": self.hashes.get((pi, ci)) or pc.spec.source.sha256(),
                        # what the firmware loads: whole blocks through the block list
                        "loaded_length": loaded[0] if loaded is not None else pc.nblocks * self.block_size,
                        "loaded_sha256": loaded[1] if loaded is not None else None,
                        "list_blocks": pc.list_lbas,
                        "extents": [[p.blockno, p.nblocks] for p in pc.pointers],
                    }
                )
            progs.append(
                {
                    "position": prog.image.position,
                    "name": prog.image.name,
                    "kind": prog.image.kind,
                    "layout": prog.image.layout,
                    "header_type": "dump" if prog.image.header_type else "ipl",
                    "component_table": prog.ct_lba,
                    "execute_psw": f"{prog.image.psw:#018x}",
                    "execute": {"kind": "execute", "psw": prog.image.psw},
                    "parmline": prog.image.parmline,
                    "components": comps,
                }
            )
        return progs


# ---------------------------------------------------------------------------- checks
def _check_block0_layout(block0: bytes, partition: int, where: str) -> None:
    """zipl's get_scsi_layout, in its order: 55 AA at 510 (PC-BIOS: DOS MBR or GPT
    protective MBR) is accepted whatever else block 0 holds; otherwise a Sun (DA BE at
    508) or SGI (0B E5 A9 41 at 0) label is refused; anything else only as a whole disk."""
    if block0[510:512] == b"\x55\xaa":
        return
    if block0[508:510] == b"\xda\xbe":
        raise DiskError("Unsupported SCSI disk layout: a Sun disk label (DA BE at 0x1fc, no 55 AA at 0x1fe)", where=f"{where} LBA 0 offset 0x1fc")
    if block0[0:4] == b"\x0b\xe5\xa9\x41":
        raise DiskError("Unsupported SCSI disk layout: an SGI disk label (0B E5 A9 41 at 0, no 55 AA at 0x1fe)", where=f"{where} LBA 0 offset 0x0")
    if partition != 0:
        raise DiskError(
            "block 0 has no 55 AA signature, so there is no partition table to find the partition in",
            where=f"{where} LBA 0 offset 0x1fe",
        )


def _check_msdos_sector_size(disk: DiskImage, table: Any) -> None:
    """An msdos table does not say its sector size.  A 4Kn disk's table read with 512-byte
    blocks puts every partition at 1/8 of its real place, and the install would write
    into the wrong blocks.  Refuse when the table looks like that: every partition starts
    on a 128 KiB boundary (1 MiB in 4096-byte sectors) but not all on 1 MiB ones, and the
    partitions scaled by 8 still fit the disk."""
    parts = table.partitions
    if disk.block_size != 512 or not parts:
        return
    if all(p.start % 256 == 0 for p in parts) and any(p.start % 2048 for p in parts):
        if max(p.start + p.length for p in parts) * 8 <= disk.nblocks:
            first = next(p for p in parts if p.start % 2048)
            raise DiskError(
                f"the msdos table looks like one in 4096-byte sectors: partition {first.number} starts at sector "
                f"{first.start} (byte {first.start * 512:#x} with 512-byte sectors, {first.start * 4096:#x} with 4096); "
                "give --block-size 4096 if the disk has 4096-byte sectors",
                where=f"LBA 0 offset {0x1BE + 16 * (first.number - 1):#x} (MBR entry {first.number})"
                if first.number <= 4
                else f"partition {first.number}",
            )


def find_target(disk: DiskImage, partition: int, mode: str) -> Target:
    """Partition `partition` of the image (0 = the whole unpartitioned disk)."""
    bs = disk.block_size
    if disk.size < bs:
        raise DiskError(f"image is {disk.size} bytes, less than one {bs}-byte block", where=disk.path)
    block0 = disk.read_block(0)
    _check_block0_layout(block0, partition, disk.path)
    if partition == 0:
        if mode == "dumpto":
            raise UsageError("Dump device is not a partition (partition number 0 means the whole disk)", where="--dumpto")
        return Target(0, 0, disk.nblocks, bs)
    from zipldump.disk.partitions import read_partition_table

    table = read_partition_table(disk)
    if table.label == "msdos":
        _check_msdos_sector_size(disk, table)
    if table.label == "msdos" and 1 <= partition <= 4:
        etype = block0[0x1BE + 16 * (partition - 1) + 4]
        if etype in _EXTENDED_TYPES:
            raise UsageError(
                f"Invalid dump device: partition {partition} is an extended partition (type {etype:#04x})"
                if mode == "dumpto"
                else f"partition {partition} is an extended partition (type {etype:#04x}) and holds no file system",
                where=f"LBA 0 offset {0x1BE + 16 * (partition - 1):#x} (MBR entry {partition})",
            )
    part = table.get(partition)
    return Target(part.number, part.start, part.length, bs)


def _stage3_source(job: InstallJob) -> Source | None:
    if job.stage3 is None:
        return None
    src = Source.of_file(job.stage3)
    if src.length == 0 or src.length > STAGE3_MAX_SIZE:
        raise LayoutError(
            f"stage3 loader {job.stage3} is {src.length} bytes; it must be 1..{STAGE3_MAX_SIZE:#x} bytes "
            "(loaded at 0xA000, below the extra command line at 0xE000)",
            where=str(job.stage3),
        )
    return src


def refuse_failing_dump_parameters(prog: ProgramSpec, compat: str | None) -> None:
    """A dumptofs command line the dumper refuses makes every later dump fail at crash
    time: the dumper's own parser (dump.params) judges it now, before anything is written."""
    try:
        parse_dump_cmdline(build_parmline(prog, compat) or "")
    except UsageError as exc:
        raise UsageError(f"every dump would fail: the dump tool refuses its command line: {exc.message}", where=prog.name) from None


def compose_programs(job: InstallJob, stage3: Source | None) -> list[ProgramImage]:
    """Every program of the job in menu order, with all per-program checks done."""
    out = []
    for pos in sorted(job.programs):
        if job.programs[pos].kind == "dumptofs":
            refuse_failing_dump_parameters(job.programs[pos], job.compat)
        img, _ = compose_program(
            pos, job.programs[pos], stage3=stage3, hsa_size=job.hsa_size, check_kernel=job.check_kernel, compat=job.compat,
            block_size=job.block_size,
        )
        out.append(img)
    return out


def find_losses(disk: DiskImage, job: InstallJob, target: Target, block0: bytes) -> list[str]:
    """What the install would destroy, for the confirmation question."""
    losses: list[str] = []
    head = block0[:BOOT_RECORD_SIZE]
    generic = hashlib.sha256(head).hexdigest() == _PARTED_BOOT_CODE_SHA256
    if head[:4] != ZIPL_MAGIC and any(head) and not generic:
        losses.append("boot code in block 0 (bytes 0x00-0x97 hold something that is not a zipl boot record)")
    elif head[:4] == ZIPL_MAGIC:
        old_dump = head[0x70:0x74] == ZIPL_MAGIC and head[0x75] == 1
        old = "SCSI dump" if old_dump else "IPL"
        old_pt = BootRecord.parse(head).program_table.blockno
        inside = target.start <= old_pt < target.start + target.length
        if old_dump != (job.mode == "dumpto"):
            losses.append(f"the zipl {old} boot record in block 0 (its programs become unreachable)")
        elif not inside:
            # same kind, but installed elsewhere: replacing it is not a plain re-install
            losses.append(
                f"the zipl {old} boot record in block 0, whose program table at LBA {old_pt:#x} lies outside "
                f"partition {target.number} (its programs become unreachable)"
            )
    if job.mode == "dumpto":
        n = min(PARTITION_WIPE_SIZE, target.size_bytes)
        data = disk.read_at(target.start_bytes, n)
        name = f"partition {target.number}"
        magic = int.from_bytes(data[:8], "big") if len(data) >= 8 else None
        if magic == DUMP_MAGIC:
            losses.append(f"the s390 dump on {name} (dump header magic at its first byte)")
        elif magic in _OTHER_DUMP_MAGICS:
            losses.append(f"the {_OTHER_DUMP_MAGICS[magic]} dump on {name} (dump header magic at its first byte)")
        elif data.startswith(BUSY_MARKER):
            losses.append(f"an unfinished dump on {name} ('zfcpdump busy' at its first byte: a dump was being written)")
        elif data[:4] == b"\x7fELF":
            losses.append(f"the ELF dump on {name} (ELF header at its first byte)")
        elif has_ext_magic(data[EXT_SB_OFFSET:]):
            losses.append(
                f"the ext2/3/4 file system on {name} (magic 0x{EXT_MAGIC:04X} at partition offset {EXT_SB_OFFSET + EXT_MAGIC_OFFSET:#x})"
            )
        elif any(data):
            losses.append(f"data in the first {n // 1024} KiB of {name}")
    return losses


# ---------------------------------------------------------------------------- layout
def _plan_dumpto(job: InstallJob, disk: DiskImage, target: Target, programs: list[ProgramImage]) -> tuple[BootmapLayout, int]:
    bs = disk.block_size
    prog = programs[0]
    if job.bootmap_start is not None:
        start = job.bootmap_start
        if not 0 <= start < target.length:
            raise LayoutError(f"bootmap start {start} lies outside the partition ({target.length} blocks)", where=f"partition {target.number}")
    else:
        # zipl's estimate uses the stat() sizes of the kernel and ramdisk files
        rd = next((c for c in prog.components if c.kind == "ramdisk"), None)
        tail = dump_tail(
            target.length,
            os.path.getsize(job.programs[0].image),
            rd.source.length if rd is not None else None,
            bs,
        )
        start = tail.start
    if start * bs < min(PARTITION_WIPE_SIZE, target.size_bytes):
        raise PartitionTooSmallError(
            f"bootmap at partition block {start} would lie inside the first 64 KiB that are wiped",
            where=f"partition {target.number}",
        )
    sb = build_superblock(target.start_bytes, target.size_bytes, start * bs, SB_SEED)
    base = target.start + start
    layout = layout_bootmap(programs, bs, lambda i: base + i, superblock=sb, pad=False, compat=job.compat)
    if start + layout.nblocks > target.length:
        raise PartitionTooSmallError(
            f"Partition too small for dump tool: the bootmap needs {layout.nblocks} blocks from partition block {start}, "
            f"the partition has {target.length}",
            where=f"partition {target.number}",
        )
    return layout, start


class _FileMap:
    """Bootmap-file device block index -> disk LBA through the file's physical blocks."""

    def __init__(self, fs_blocks: list[int], fs_bs: int, target: Target) -> None:
        self.fs_blocks = fs_blocks
        self.runs = Extents.of_runs(runs_of_blocks(fs_blocks))  # disk.io's block runs, as RunSource reads them
        self.fs_bs = fs_bs
        self.target = target
        self.per = fs_bs // target.block_size
        self.beyond = False

    @property
    def capacity(self) -> int:
        return len(self.fs_blocks) * self.per

    def __call__(self, i: int) -> int:
        if i >= self.capacity:
            self.beyond = True
            return 0x7FFFFFFFFFFF + i  # placeholder; the caller re-allocates
        found = self.runs.find(i // self.per)
        if found is None:
            raise DiskError(f"bootmap file block {i // self.per} is a hole after allocation", where=BOOTMAP_TEMP)
        fsb = found[0] + found[1]
        return (self.target.start_bytes + fsb * self.fs_bs) // self.target.block_size + i % self.per


def _open_fs(job: InstallJob, target: Target) -> ExtFs:
    from zipldump.disk.extfs import ExtFs

    try:
        fs = ExtFs(job.image_path, target.start_bytes, target.size_bytes)
        fs.superblock()
    except DiskError as exc:
        if "no ext2/3/4 file system" not in exc.message:
            raise
        raise DiskError(
            f"{exc.message}; --{job.mode} needs an ext2/3/4 file system in partition {target.number} "
            "(zipldump mkdisk --part SIZE:ext4 makes one)",
            where=exc.where,
        ) from exc
    bs = target.block_size
    if fs.block_size < bs or fs.block_size % bs:
        raise LayoutError(
            f"file-system block size {fs.block_size} is smaller than the {bs}-byte device block; "
            "a device block of the bootmap would span two file-system blocks",
            where=f"partition {target.number}",
        )
    return fs


def _contiguous_guess(job: InstallJob, target: Target, programs: list[ProgramImage]) -> BootmapLayout:
    """The layout on an imaginary contiguous file: its size, and the dry-run plan."""
    return layout_bootmap(
        programs, target.block_size, lambda i: 1 + i, default_position=job.default_position, pad=True, compat=job.compat
    )


def _check_file_space(job: InstallJob, target: Target, programs: list[ProgramImage], fs: ExtFs) -> None:
    name, _ = bootmap_paths(job)
    if job.bootmap_dir != "/" and not (fs.exists(job.bootmap_dir) and fs.is_dir(job.bootmap_dir)):
        raise UsageError(f"bootmap directory {job.bootmap_dir} is not a directory of partition {target.number}", where=job.bootmap_dir)
    size = bootmap_file_size(_contiguous_guess(job, target, programs))
    free = fs.free_bytes()
    if size > free:
        old = fs.file_size(name) if fs.exists(name) else 0
        raise PartitionTooSmallError(
            f"the bootmap file needs {size} bytes, the file system on partition {target.number} has {free} free"
            + (f" (the old bootmap's {old} bytes are freed only after the new one is written)" if old else ""),
            where=f"partition {target.number}",
        )


def _plan_file(job: InstallJob, target: Target, programs: list[ProgramImage], fs: ExtFs, ui: UI) -> BootmapLayout:
    bs = target.block_size
    kw: dict[str, Any] = dict(default_position=job.default_position, pad=True, compat=job.compat)
    guess = _contiguous_guess(job, target, programs)
    if job.dry_run:
        return guess
    size = bootmap_file_size(guess)
    _, temp = bootmap_paths(job)
    # Allocate, map, lay out; more list blocks for a fragmented file need a bigger file.
    for _ in range(_LAYOUT_RETRIES):
        if fs.exists(temp):
            fs.remove(temp)
        try:
            fs_blocks = fs.allocate(temp, size, mode=BOOTMAP_MODE, owner=BOOTMAP_OWNER)
        except DumpSpaceError as exc:
            raise PartitionTooSmallError(f"no room for the bootmap file: {exc.message}", where=exc.where) from exc
        fmap = _FileMap(fs_blocks, fs.block_size, target)
        layout = layout_bootmap(programs, bs, fmap, **kw)
        need = bootmap_file_size(layout)
        if not fmap.beyond and need <= size:
            if need < size:
                fs.set_size(temp, need)
            return layout
        size = need
    fs.remove(temp)
    raise LayoutError("the bootmap file layout did not settle (file system too fragmented)", where=temp)


# ---------------------------------------------------------------------------- writing
def _do_writes(disk: DiskImage, layout: BootmapLayout, ui: UI) -> None:
    """Perform every layout write, streaming file data in 1 MiB chunks."""
    bs = disk.block_size
    total = sum(w.length if w.source is not None else len(w.data or b"") for w in layout.writes())
    with ui.progress("Writing bootmap", total) as prog:
        for w in layout.writes():
            if w.data is not None:
                disk.write_block(w.lba, w.data)
                prog.advance(len(w.data))
                continue
            assert w.source is not None
            done = 0
            while done < w.length:
                n = min(1 << 20, w.length - done)
                chunk = w.source.read(w.src_offset + done, n)
                if layout.pad and done + n == w.length and len(chunk) % bs:
                    chunk = chunk + bytes(bs - len(chunk) % bs)
                disk.write_at(w.lba * bs + done, chunk)
                done += n
                prog.advance(n)


def read_back(disk: DiskImage, pt_lba: int) -> dict[int, list[tuple[int, int, str]]]:
    """Walk program table -> component tables -> block lists from disk with the strict
    reader `inspect` uses (bounded, loop-checked, pointers inside the disk, size fields).

    Returns {program-table entry: [(load address, data bytes, sha256 of the loaded
    blocks)]}.  Anything the reader refuses is a DiskError naming the same place.
    """
    bs = disk.block_size
    out: dict[int, list[tuple[int, int, str]]] = {}
    try:
        pt = reader.read_program_table(disk, BlockPtr(pt_lba, bs, 0))
        for i, ptr in pt.valid():
            comps = []
            for e in reader.read_component_table(disk, ptr).entries:
                if e.type != TYPE_LOAD:
                    break
                bl = reader.walk_block_list(disk, e.blocklist)
                comps.append((e.address or 0, bl.length(bs), reader.component_sha256(disk, bl.pointers)))
            out[i] = comps
    except FormatError as exc:
        raise DiskError(f"read-back: {exc.message}", where=exc.where) from exc
    return out


def _expected_block_hash(
    source: Source, nblocks: int, bs: int, disk: DiskImage, pointers: list[BlockPtr], *, zero_tail: bool = False
) -> str:
    """SHA-256 of what the loaded blocks must hold: the data, then the last block's tail
    (zeros for a padded bootmap file, else as it is on disk: a raw partition keeps it)."""
    h = hashlib.sha256()
    for c in source.chunks():
        h.update(c)
    rem = source.length % bs
    if rem:
        if zero_tail:
            h.update(bytes(bs - rem))
        else:
            last = pointers[-1]
            tail_lba = last.blockno + last.blockct
            h.update(disk.read_block(tail_lba)[rem:])
    return h.hexdigest()


def expected_loaded(disk: DiskImage, layout: BootmapLayout) -> dict[tuple[int, int], tuple[int, str]]:
    """(bytes, SHA-256) of every component's loaded blocks as they will be (or are) on disk,
    without walking the block lists: for --dry-run and --no-verify."""
    bs = disk.block_size
    out: dict[tuple[int, int], tuple[int, str]] = {}
    for pi, prog in enumerate(layout.programs):
        for ci, pc in enumerate(prog.components):
            digest = _expected_block_hash(pc.spec.source, pc.nblocks, bs, disk, pc.pointers, zero_tail=layout.pad)
            out[(pi, ci)] = (pc.nblocks * bs, digest)
    return out


def verify(
    disk: DiskImage, layout: BootmapLayout, ui: UI, loaded: dict[tuple[int, int], tuple[int, str]] | None = None
) -> dict[tuple[int, int], str]:
    """Read every block list back and compare the loaded data with the sources.

    Returns the source hashes; `loaded`, when given, receives (bytes, SHA-256) of the
    blocks read back through the block lists, as `inspect` reports them.
    """
    found = read_back(disk, layout.pt_lba)
    hashes: dict[tuple[int, int], str] = {}
    bs = disk.block_size
    for pi, prog in enumerate(layout.programs):
        got = found.get(prog.image.position)
        if got is None or len(got) != len(prog.components):
            raise DiskError(
                f"read-back: program table entry {prog.image.position} does not list the {len(prog.components)} components written",
                where=f"LBA {layout.pt_lba:#x}",
            )
        for ci, pc in enumerate(prog.components):
            addr, nbytes, digest = got[ci]
            want = _expected_block_hash(pc.spec.source, pc.nblocks, bs, disk, pc.pointers)
            if addr != pc.spec.address or nbytes != pc.nblocks * bs or digest != want:
                raise DiskError(
                    f"read-back of component '{pc.spec.name}' differs from what was written "
                    f"(address {addr:#x}, {nbytes} bytes)",
                    where=f"list block LBA {pc.first_list_lba:#x}",
                )
            hashes[(pi, ci)] = pc.spec.source.sha256()
            if loaded is not None:
                loaded[(pi, ci)] = (nbytes, digest)
    return hashes


def _write_block0(disk: DiskImage, record: bytes) -> None:
    """Bytes 0x00-0x97 of block 0 only: the rest is the partition label's."""
    assert len(record) == BOOT_RECORD_SIZE
    disk.write_at(0, record)


# ---------------------------------------------------------------------------- main
def install(job: InstallJob, ui: UI) -> InstallResult:
    """Check everything, then write; see the module docstring for the order."""
    with ui.step("Checking input files and programs"):
        job.check_input_files()
        stage3 = _stage3_source(job)
        programs = compose_programs(job, stage3)
    disk = DiskImage(job.image_path, job.block_size, writable=True, dry_run=job.dry_run)
    with disk:
        return _install_locked(job, disk, programs, ui)


def _install_locked(job: InstallJob, disk: DiskImage, programs: list[ProgramImage], ui: UI) -> InstallResult:
    bs = disk.block_size
    with ui.step(f"Checking partition {job.partition} of {job.image_path}"):
        target = find_target(disk, job.partition, job.mode)
        block0 = disk.read_block(0)
    fs = None
    result_kw: dict[str, Any] = {}
    if job.mode == "dumpto":
        with ui.step("Planning the dump partition tail"):
            layout, start = _plan_dumpto(job, disk, target, programs)
        result_kw.update(
            bootmap_start=start,
            superblock_offset=layout.superblock_lba * bs if layout.superblock_lba is not None else None,
            dump_size=start * bs,
        )
    else:
        with ui.step(f"Checking the file system on partition {target.number}"):
            fs = _open_fs(job, target)
            _check_file_space(job, target, programs, fs)
        result_kw.update(bootmap_file=bootmap_paths(job)[0])
    losses = find_losses(disk, job, target, block0)
    if job.dry_run:
        # nothing is destroyed, so nothing to ask: say what a real run would ask about
        for loss in losses:
            ui.warn(f"a real install would overwrite: {loss}")
    else:
        ui.confirm(f"Install on {job.image_path}?", losses, assume_yes=job.assume_yes, where=str(job.image_path))

    # ---- first write from here on (a dry run records the writes instead) ----
    hashes: dict[tuple[int, int], str] = {}
    loaded: dict[tuple[int, int], tuple[int, str]] = {}
    dry = " (dry run: recording, not writing)" if job.dry_run else ""
    armed = False  # block 0 points at the new bootmap: from here on the temp file must stay
    try:
        if fs is not None:
            if not job.dry_run:
                _keep_or_disarm_block0(disk, target, fs, block0, ui, bootmap_paths(job))
            with ui.step("Allocating the bootmap file" + (" (dry run: contiguous plan)" if job.dry_run else "")):
                layout = _plan_file(job, target, programs, fs, ui)
        elif block0[:4] == ZIPL_MAGIC:
            # The old boot record may point into the tail we are about to rewrite: disarm it first.
            _write_block0(disk, bytes(BOOT_RECORD_SIZE))
            disk.flush()
        with ui.step("Writing programs and tables" + dry):
            _do_writes(disk, layout, ui)
            if job.mode == "dumpto":
                disk.write_at(target.start_bytes, bytes(min(PARTITION_WIPE_SIZE, target.size_bytes)))
            disk.flush()
        if not job.dry_run:
            if job.mode == "dumpto":
                csum = cksm(disk.read_at(target.start_bytes, 4096))
                if csum != SB_SEED:
                    raise DiskError(
                        f"partition start checksum is {csum:#x} after the wipe, expected the seed",
                        where=f"partition {target.number}",
                    )
            if job.verify:
                with ui.step("Reading back every block list"):
                    hashes = verify(disk, layout, ui, loaded)
        if not loaded:
            loaded = expected_loaded(disk, layout)
        with ui.step("Writing block 0 (boot record)" + dry):
            info = dump_boot_info(layout.superblock_lba * bs) if job.mode == "dumpto" and layout.superblock_lba else None
            record = build_boot_record(layout.pt_lba, bs, info)
            armed = True
            _write_block0(disk, record)
            disk.flush()
    except BaseException:
        if fs is not None and not job.dry_run and not armed:
            _discard_temp(fs, bootmap_paths(job))
        raise
    if fs is not None and not job.dry_run:
        with ui.step("Renaming the bootmap file"):
            _promote_temp(fs, bootmap_paths(job))
            disk.flush()
    if job.dry_run:
        ui.info(f"dry run: {len(disk.writes)} writes planned, image not changed")
    return InstallResult(
        job.mode, str(job.image_path), bs, target.number, job.dry_run, layout, target,
        verified=job.verify and not job.dry_run, losses=losses, hashes=hashes, loaded=loaded, **result_kw,
    )


def _promote_temp(fs: ExtFs, paths: tuple[str, str] = (BOOTMAP_NAME, BOOTMAP_TEMP)) -> None:
    """The new bootmap file becomes DIR/bootmap; the old one's blocks are freed only now,
    after block 0 points at the new one."""
    name, temp = paths
    if fs.exists(name):
        fs.remove(name)
    fs.rename(temp, name)


def _file_holds_lba(fs: ExtFs, path: str, target: Target, lba: int) -> bool:
    """Does file `path` of the file system own device block `lba`?"""
    off = lba * target.block_size - target.start_bytes
    if off < 0 or off >= target.size_bytes or not fs.exists(path):
        return False
    return off // fs.block_size in set(fs.block_map(path)) - {0}


def _keep_or_disarm_block0(
    disk: DiskImage, target: Target, fs: ExtFs, block0: bytes, ui: UI, paths: tuple[str, str] = (BOOTMAP_NAME, BOOTMAP_TEMP)
) -> None:
    """Before the first write of a bootmap-file install: make sure the old boot record
    cannot end up pointing at blocks this install reuses.

    * A temp bootmap left by an install killed after its block 0 write is what block 0
      uses: finish that install's rename, so the new temp file cannot reuse its blocks.
    * Block 0 pointing into the current /bootmap stays: those blocks are kept until
      block 0 points at the new file, so an interrupted install leaves the old program.
    * Block 0 pointing anywhere else in the file system (a deleted or foreign bootmap,
      whose blocks may be free) is disarmed first and flushed: an interrupted install
      then leaves no boot record instead of one pointing at half-written blocks.
    """
    if block0[:4] != ZIPL_MAGIC:
        return
    name, temp = paths
    old_pt = BootRecord.parse(block0[:BOOT_RECORD_SIZE]).program_table.blockno
    if _file_holds_lba(fs, temp, target, old_pt):
        ui.info(f"finishing an interrupted install: block 0 points into {temp}, which becomes {name}")
        _promote_temp(fs, paths)
        disk.flush()
        return
    inside = target.start_bytes <= old_pt * target.block_size < target.start_bytes + target.size_bytes
    if inside and not _file_holds_lba(fs, name, target, old_pt):
        _write_block0(disk, bytes(BOOT_RECORD_SIZE))
        disk.flush()


def _discard_temp(fs: ExtFs, paths: tuple[str, str] = (BOOTMAP_NAME, BOOTMAP_TEMP)) -> None:
    """Best effort: drop a half-made bootmap file after an error (block 0 still points at the old one)."""
    try:
        if fs.exists(paths[1]):
            fs.remove(paths[1])
    except DiskError:
        pass


# ---------------------------------------------------------------------------- spec §13
SPEC_EXAMPLE_SHA256 = "78353e546c6e7464a1a9cd37ed63179bdf88de6b76a6d315bafb6782908383c8"
SPEC_EXAMPLE_216_SHA256 = "0250687942371e796589b7862c32853daf8150c84b3b2fde0064bc004b9fbcb9"  # §13.6


def build_spec_example(
    image: str | os.PathLike[str], workdir: str | os.PathLike[str], ui: UI | None = None, *, compat: str | None = None
) -> InstallResult:
    """Build the worked example of zipl-scsi-format.md §13 (1 MiB, 512-byte blocks).

    Inputs of §13.1: partition 1 at LBA 64 with 1984 blocks (type 0x83, no CHS, no
    boot flag), bootmap start R = 1920, 1024-byte 'S' stage 3 placeholder, 1536-byte
    'K' kernel, 1024-byte 'R' initrd, default dump parmline.  The image's SHA-256
    must be SPEC_EXAMPLE_SHA256; with compat="2.16" it is the §13.6 variant,
    SPEC_EXAMPLE_216_SHA256.
    """

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    files = {"stage3.bin": b"S" * 1024, "kernel": b"K" * 1536, "initrd": b"R" * 1024}
    for name, data in files.items():
        (work / name).write_bytes(data)
    entry = {"status": 0, "chs_first": bytes(3), "type": 0x83, "chs_last": bytes(3), "lba_first": 64, "sectors": 1984}
    unused = entry | {"type": 0, "lba_first": 0, "sectors": 0}
    mbr = Mbr.build({"bootcode": bytes(440), "disk_signature": 0, "reserved": bytes(2),
                     "entries": [entry, unused, unused, unused], "signature": b"\x55\xaa"})
    with open(image, "wb") as fh:
        fh.write(mbr)
        fh.truncate(2048 * 512)
    job = InstallJob(
        image_path=Path(image),
        mode="dumpto",
        partition=1,
        programs={0: ProgramSpec("dump", "dump", work / "kernel", work / "initrd")},
        stage3=work / "stage3.bin",
        bootmap_start=1920,
        check_kernel=False,
        assume_yes=True,
        compat=compat,
    )
    return install(job, ui or UI(quiet=True, interactive=False))
