"""Reference dump writer for a zipl `--dumpto` SCSI dump partition (zfcpdump 3.0 design).

The dump tool finds its partition through block 0 (boot_info at 0x70 -> byte
offset of the `ZFCPDUMP` superblock), refuses a partition whose superblock magic
or CKSM checksum no longer matches ("Checksum wrong, filesystem changed"), whose
dump area covers the superblock, or whose start/size no longer match a partition
of the table, and refuses a dump that does not fit `dump_size` -- all before the
first write.  s390-dump-format.md §7.5,
zipl-scsi-format.md §7.4-§7.5.  One deliberate relaxation: a checksum mismatch
is accepted when the checksummed bytes are what a dump writer itself leaves
there (its busy page, or an s390 dump header), i.e. an earlier run stopped
between two writes; a file system made on the partition never looks like that.

What it writes is the s390 standalone dump (4 KiB header, memory, 16-byte end
marker) streamed from `zcore/mem`, in an order that never leaves a dump looking
complete before it is:

1. the 4 KiB header slot gets the busy marker `zfcpdump busy\\0` (rest zero) and
   the superblock checksum is updated for it, fsync -- the old header is gone
   before any new memory byte lands;
2. memory, HSA-backed part first; the HSA is released once that part has been
   read and written (zcore/hsa <- 0), then the rest;
3. the end marker `DUMP_END` + TOD (>= header TOD), fsync;
4. the real header (the commit point) and the checksum over it into the
   superblock, fsync.

The streaming helpers (`prepare_header`, `copy_memory`, `write_dump`,
`DumpResult`) are shared with write_fs.py; both write through disk.io's
`ExtentWriter` (O_DIRECT `DirectFile` where the image allows it).
"""
from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypedDict, Unpack

from zipldump.disk.image import DiskImage
from zipldump.disk.io import (
    DirectFile,  # noqa: F401 - re-exported: its O_DIRECT writes are what this writer does
    ExtentWriter,
    aligned_buffer,
)
from zipldump.dump.source import ZcoreFiles, ZcoreMemFile
from zipldump.errors import (
    DumpError,
    DumpSpaceError,
    DumpTargetChangedError,
    Form,
    FormatError,
    MagicError,
    PointerError,
    SuperblockError,
    ZiplDumpError,
)
from zipldump.formats.dump_superblock import DumpSuperblock
from zipldump.formats.s390dump import (
    BUSY_MARKER,
    DUMP_MAGIC,
    END_MARKER_SIZE,
    HEADER_SIZE,
    DumpHeader,
    build_end_marker,
    to_mib,
    tod_from_unix_us,
)
from zipldump.jsonout import JsonMixin, member
from zipldump.ui import UI, ByteProgress
from zipldump.zipl import bootmap as reader
from zipldump.zipl.bootmap import dump_program_extents
from zipldump.zipl.dumppart import Code, Finding, read_dump_partition, superblock_field
from zipldump.zipl.rules import DumpAreaView, Rule, dump_area_covers_tool

DEFAULT_CHUNK = 4 << 20  # 4 MiB: per-chunk Python work is noise
WRITES_IN_FLIGHT = 2  # memory writes queued at the disk while the next chunk is read (measured: 1 -> 2 gains ~40 %)


# --- result -----------------------------------------------------------------------
class _ResultExtra(TypedDict, total=False):
    """The mode-specific fields of DumpResult that DumpResult.of passes through."""

    image_offset: int | None
    fs_path: str | None
    fs_offset: int | None
    fs_size: int | None
    deleted: list[str]
    warnings: list[str]


@dataclass
class DumpResult(JsonMixin):
    """What a writer did.  `image_offset` is where dump byte 0 lies on the image
    (partition mode); `fs_path` the file (file-system mode)."""

    mode: str  # "partition" | "fs"
    image: str
    partition: int | None
    location: str
    bytes_written: int  # header + memory + end marker
    mem_size: int
    header_tod: int
    end_tod: int
    seconds: float
    image_offset: int | None = None
    fs_path: str | None = None
    fs_offset: int | None = None  # byte offset of the file system on the image
    fs_size: int | None = None
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls, mode: str, image: str, partition: int | None, location: str, header: DumpHeader, end_tod: int, seconds: float, **extra: Unpack[_ResultExtra]
    ) -> DumpResult:
        """The result of a complete dump of `header`'s memory (header + memory + end marker)."""
        return cls(
            mode=mode,
            image=image,
            partition=partition,
            location=location,
            bytes_written=HEADER_SIZE + header.mem_size + END_MARKER_SIZE,
            mem_size=header.mem_size,
            header_tod=header.tod,
            end_tod=end_tod,
            seconds=seconds,
            **extra,
        )

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.bytes_written / self.seconds if self.seconds > 0 else 0.0

    # fs_offset and fs_size are not printed.
    JSON = (
        *map(member, ("mode", "image", "partition", "location", "image_offset", "fs_path", "bytes_written", "mem_size")),
        member("header_tod", fmt="hex64"),
        member("end_tod", fmt="hex64"),
        member("seconds", fmt="round3"),
        member("throughput_mib_s", lambda r: round(r.throughput / (1 << 20), 1)),
        member("deleted"),
        member("warnings"),
    )


# --- the zcore side -----------------------------------------------------------------
def read_zcore_header(mem: ZcoreMemFile) -> tuple[bytes, DumpHeader]:
    """The 4 KiB header at offset 0 of zcore/mem (zcore's header copy is only
    right for reads that start at 0, §5.3, so read it in one piece from 0)."""
    mem.seek(0)
    buf = bytearray(HEADER_SIZE)
    view = memoryview(buf)
    done = 0
    while done < HEADER_SIZE:
        n = mem.readinto(view[done:])
        if not n:
            raise DumpError(f"zcore/mem ended after {done} bytes, inside the dump header", where="zcore/mem offset 0x0")
        done += n
    raw = bytes(buf)
    try:
        header = DumpHeader.parse(raw)
    except FormatError as exc:
        raise DumpError(f"zcore/mem does not start with an s390 dump header: {exc}", where="zcore/mem offset 0x0") from exc
    if header.mem_size <= 0 or header.mem_size % header.page_size:
        raise DumpError(f"zcore header mem_size {header.mem_size:#x} is not a positive multiple of the page size", where="zcore/mem header field mem_size")
    return raw, header


def zcore_hsa_size(zcore: ZcoreFiles) -> int:
    """HSA size as zcore/hsa reports it (0 when not available)."""
    return int(zcore.hsa_size())


def zcore_release_hsa(zcore: ZcoreFiles) -> None:
    """zcore/hsa <- '0' (DIAG 308 subcode 2)."""
    zcore.release_hsa()


def end_tod_now(header_tod: int, clock: Callable[[], int] | None = None) -> int:
    """TOD for the end marker: the clock now, but never before the header TOD
    (zgetdump requires marker TOD >= header TOD; equality is accepted)."""
    now = clock() if clock is not None else tod_from_unix_us(time.time_ns() // 1000)
    return max(now, header_tod)


def parse_memmap(text: str) -> list[tuple[int, int]]:
    """zcore/memmap: 34-byte records "%016x %016x " (start, size); a size-0 record ends the list (§5.4)."""
    ranges = []
    for i in range(0, len(text) - len(text) % 34, 34):
        rec = text[i : i + 34]
        if rec[16] != " " or rec[33] != " ":
            raise DumpError(f"invalid contents of memory map file: record {i // 34} is {rec!r}", where=f"zcore/memmap offset {i}")
        try:
            start, size = int(rec[:16], 16), int(rec[17:33], 16)
        except ValueError as exc:
            raise DumpError(f"invalid contents of memory map file: record {i // 34} is {rec!r}", where=f"zcore/memmap offset {i}") from exc
        if size == 0:
            break
        ranges.append((start, size))
    return sorted(ranges)


class _WritePipeline:
    """Up to `depth` memory writes in flight on helper threads while the caller
    reads the next chunk: pwrite releases the GIL, so reading zcore/mem (memcpy
    work) and writing the image overlap, and the disk sees more than one request
    at a time.  `depth + 1` buffers rotate; `submit` first waits for the oldest
    write when `depth` are in flight, so the buffer being filled is never in flight."""

    def __init__(self, writer: ExtentWriter, depth: int) -> None:
        self.writer = writer
        self.depth = depth
        self.pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="dump-write") if depth else None
        self.pending: deque[Future[None]] = deque()

    def submit(self, offset: int, view: memoryview) -> None:
        if self.pool is None:
            self.writer.write(offset, view, aligned=True)
            return
        while len(self.pending) >= self.depth:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.writer.write, offset, view, aligned=True))

    def drain(self) -> None:
        """Wait for every write in flight; the first exception is raised here."""
        error: BaseException | None = None
        while self.pending:
            try:
                self.pending.popleft().result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finished
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)


def copy_memory(
    mem: ZcoreMemFile,
    writer: ExtentWriter,
    *,
    mem_size: int,
    hsa_size: int,
    release_hsa: Callable[[], None],
    progress: ByteProgress,
    chunk_size: int = DEFAULT_CHUNK,
    ranges: list[tuple[int, int]] | None = None,
    threaded: bool = True,
) -> int:
    """Stream zcore/mem bytes 0x1000 .. 0x1000+mem_size to dump offsets 0x1000.. .

    The HSA-backed part (absolute 0 .. hsa_size) comes first; the HSA is
    released once that part is read *and written*, before the rest is read
    (zfcpdump 3.0 order).  `ranges` are the present memory ranges (zcore/memmap);
    holes between them are written as zeros instead of being read (zcore/mem fails
    on them with EFAULT).  Reused page-aligned buffers, `readinto` and `pwrite`
    on memoryview slices of them (no per-chunk copy; the writes go O_DIRECT where
    the file allows it), reading overlapped with up to WRITES_IN_FLIGHT writes.
    Returns the number of memory bytes written.
    """
    depth = WRITES_IN_FLIGHT if threaded else 0
    buffers = [aligned_buffer(chunk_size) for _ in range(depth + 1)]
    turn = 0
    zeros: memoryview | None = None
    addr = 0
    released = False
    pipe = _WritePipeline(writer, depth)

    def hsa_passed() -> None:
        nonlocal released
        if not released and hsa_size and addr >= hsa_size:
            pipe.drain()  # the HSA part is on the image before the HSA goes
            release_hsa()
            released = True

    todo = [(s, min(s + n, mem_size)) for s, n in (ranges if ranges is not None else [(0, mem_size)]) if s < mem_size]
    todo.append((mem_size, mem_size))  # the trailing hole, if any
    try:
        for start, end in todo:
            while addr < start:  # a hole
                if zeros is None:
                    zeros = aligned_buffer(min(chunk_size, 1 << 20))  # only ever read
                n = min(len(zeros), start - addr)
                pipe.submit(HEADER_SIZE + addr, zeros[:n])
                addr += n
                progress.advance(n)
                hsa_passed()
            if addr >= end:
                continue
            mem.seek(HEADER_SIZE + addr)
            while addr < end:
                limit = end
                if not released and addr < hsa_size:
                    limit = min(limit, hsa_size)  # end the chunk at the HSA boundary
                want = min(chunk_size, limit - addr)
                view = buffers[turn]
                turn = (turn + 1) % len(buffers)
                got = mem.readinto(view[:want])
                if not got:
                    raise DumpError(
                        f"zcore/mem ended at absolute address {addr:#x}, before the {mem_size:#x} bytes the header announces",
                        where=f"zcore/mem offset {HEADER_SIZE + addr:#x}",
                    )
                pipe.submit(HEADER_SIZE + addr, view[:got])
                addr += got
                progress.advance(got)
                hsa_passed()
        pipe.drain()
    finally:
        pipe.close()
    if not released and hsa_size:
        release_hsa()  # dumped less than the HSA (dump_mem): closing zcore/mem would release it anyway
    return addr


def prepare_header(zcore: ZcoreFiles) -> tuple[bytes, DumpHeader, list[tuple[int, int]] | None]:
    """zcore's header as the dump will carry it (holes filled, see below): (bytes, parsed, present ranges)."""
    raw, header = read_zcore_header(zcore.mem)
    filled, ranges = fill_holes_header(zcore, header)
    if filled is not header:
        raw = filled.build()
    return raw, filled, ranges


def fill_holes_header(zcore: ZcoreFiles, header: DumpHeader) -> tuple[DumpHeader, list[tuple[int, int]] | None]:
    """With memory holes zcore's header says mem_size = present bytes, mem_end =
    end of memory (§2.3); the s390 format has no holes, so the dump carries
    memory up to mem_end with the holes as zeros and mem_size = mem_end.
    Returns (header to write, present ranges or None without holes)."""
    if header.end == header.mem_size:
        return header, None
    ranges = parse_memmap(zcore.memmap())
    end = header.end
    return replace(header, mem_size=end, mem_end=end, num_pages=end // header.page_size), ranges


def write_dump(
    disk: DiskImage,
    writer: ExtentWriter,
    zcore: ZcoreFiles,
    header_raw: bytes,
    header: DumpHeader,
    ui: UI,
    *,
    description: str,
    failed: str,
    commit: str = "header",
    chunk_size: int = DEFAULT_CHUNK,
    clock: Callable[[], int] | None = None,
    after_busy: Callable[[], object] | None = None,
    after_header: Callable[[], object] | None = None,
    ranges: list[tuple[int, int]] | None = None,
    start: float | None = None,
) -> tuple[int, float]:
    """Write header, memory and end marker so that the dump never looks complete early.

    `commit="header"` (partition, zfcpdump 3.0): busy marker in the header slot,
    memory, end marker, then the header.  `commit="end-marker"` (file): header
    with the end-marker slot zeroed, memory, then the end marker -- an
    interrupted file is a valid header without end marker, which readers call
    "not complete".  An fsync sits wherever the next step must not reach the disk
    before the previous one.  `after_busy` / `after_header` run before the fsync
    that ends that step (the superblock checksum updates).  On any failure `failed`
    is shown as a warning and the exception propagates.  The end-marker TOD is
    `clock()` when given, else the dump kernel's `zcore.tod()`.
    Returns (end TOD, seconds from `start` -- a time.monotonic() value, default
    now -- to the final fsync)."""
    if commit not in ("header", "end-marker"):
        raise ValueError(f"commit {commit!r}")
    if start is None:
        start = time.monotonic()
    try:
        mem_size = header.mem_size
        if commit == "header":
            busy = BUSY_MARKER + bytes(HEADER_SIZE - len(BUSY_MARKER))
            writer.write(0, busy)
            if after_busy is not None:
                after_busy()
        else:
            # A stale DUMP_END from reused blocks must not complete the new header.
            writer.write(header.end_marker_offset, bytes(END_MARKER_SIZE))
            writer.write(0, header_raw)
        disk.flush()  # the old content is gone before any new memory byte lands
        with ui.progress(description, HEADER_SIZE + mem_size + END_MARKER_SIZE) as progress:
            try:
                copy_memory(
                    zcore.mem,
                    writer,
                    mem_size=mem_size,
                    hsa_size=zcore_hsa_size(zcore),
                    release_hsa=lambda: zcore_release_hsa(zcore),
                    progress=progress,
                    chunk_size=chunk_size,
                    ranges=ranges,
                )
            finally:
                writer.close()  # the O_DIRECT descriptor; what follows is buffered
            end_tod = end_tod_now(header.tod, clock if clock is not None else zcore.tod)  # STCK in the dump kernel
            if commit == "header":
                writer.write(header.end_marker_offset, build_end_marker(end_tod))
                disk.flush()  # memory and marker are on disk before the header says "dump"
                writer.write(0, header_raw)
                if after_header is not None:
                    after_header()
            else:
                disk.flush()  # memory is on disk before the end marker says "complete"
                writer.write(header.end_marker_offset, build_end_marker(end_tod))
            disk.flush()
            progress.advance(HEADER_SIZE + END_MARKER_SIZE)
    except Exception:
        ui.warn(failed)
        raise
    return end_tod, time.monotonic() - start


# --- the partition side ---------------------------------------------------------------
@dataclass(frozen=True)
class DumpTarget:
    """The dump partition as block 0 and the superblock describe it."""

    sb: DumpSuperblock  # as read (sb.offset: byte offset of the superblock on the disk)
    partition: int | None  # number in the partition table
    note: str | None = None  # why a checksum mismatch was accepted

    @property
    def sb_offset(self) -> int:
        return self.sb.offset

    @property
    def part_start(self) -> int:
        return self.sb.part_start

    @property
    def part_size(self) -> int:
        return self.sb.part_size

    @property
    def dump_size(self) -> int:
        return self.sb.dump_size

    @property
    def dump_start(self) -> int:
        """Byte offset of the dump on the disk."""
        return self.sb.part_start + self.sb.dump_offset

    def superblock(self, csum: int) -> bytes:
        """The superblock's 72 bytes with a new checksum."""
        return replace(self.sb, csum=csum).build()


# The writer's policy over zipl/dumppart.py's findings: the first finding listed
# here refuses the partition (in this order, zfcpdump's), with this class and
# wording and this form of place (None: the finding's own).  Findings not listed
# (alignment, versions of the superblock, dump start past the partition, ...)
# do not stop a dump; docs/dump-writers.md compares the three consumers.
_BOOT_INFO_MAGIC = "boot_info magic is {magic}, not 'zIPL': no dump tool installed (IPL disk?)"
_BP_TYPE = "boot_info bp_type is {bp_type}, not 1 (dump)"
_COVERS = (
    "the dump area {dump_start:#x}+{dump_size:#x} covers the superblock at {sb_offset:#x}: "
    "a dump would overwrite the superblock and the dump tool"
)
_NO_PARTITION = (
    "no partition of the {label} table starts at byte {part_start:#x} with {part_size:#x} bytes "
    "(dump partition not found: the table changed since zipl ran)"
)
WRITER_REFUSES: dict[Code, tuple[type[ZiplDumpError], str | None, Form | None, str | None]] = {
    Code.DISK_TOO_SMALL: (PointerError, None, None, None),
    Code.BLOCK0_MAGIC: (MagicError, None, None, None),
    Code.BOOT_INFO_EMPTY: (MagicError, _BOOT_INFO_MAGIC, Form.BLOCK0, None),
    Code.BOOT_INFO_MAGIC: (MagicError, _BOOT_INFO_MAGIC, Form.BLOCK0, None),
    Code.BOOT_INFO_DEV_TYPE: (FormatError, "boot_info dev_type is {dev_type}, not 2 (SCSI)", Form.BLOCK0, None),
    Code.BOOT_INFO_IPL: (FormatError, _BP_TYPE, Form.BLOCK0, None),
    Code.BOOT_INFO_BP_TYPE: (FormatError, _BP_TYPE, Form.BLOCK0, None),
    Code.BOOT_INFO_VERSION: (FormatError, "boot_info version is {version}, not 1", Form.BLOCK0, None),
    Code.SUPERBLOCK_OUTSIDE_DISK: (PointerError, None, None, None),
    Code.SUPERBLOCK_MAGIC: (DumpTargetChangedError, "{message}: the dump tool's data block was overwritten", Form.SUPERBLOCK, None),
    Code.PARTITION_OUTSIDE_DISK: (DumpTargetChangedError, None, None, None),
    Code.DUMP_AREA_OUTSIDE_PARTITION: (DumpTargetChangedError, None, None, None),
    Code.CHECKSUM_RANGE_BAD: (DumpTargetChangedError, None, None, None),
    Code.DUMP_AREA_COVERS_SUPERBLOCK: (DumpTargetChangedError, _COVERS, None, None),
    Code.DUMP_AREA_OVERLAPS_SUPERBLOCK: (DumpTargetChangedError, _COVERS, None, None),
    Code.CHECKSUM_MISMATCH: (
        DumpTargetChangedError,
        "checksum wrong, partition changed: CKSM of {csum_size} bytes at {csum_at:#x} is {computed:#010x}, superblock says {csum:#010x}",
        None,
        None,
    ),
    Code.PARTITION_TABLE_UNREADABLE: (ZiplDumpError, None, None, None),  # the table reader's own error is raised
    Code.NO_PARTITION_AT_START: (DumpTargetChangedError, _NO_PARTITION, None, None),
    Code.PARTITION_SIZE_MISMATCH: (DumpTargetChangedError, _NO_PARTITION, None, "part_start"),
}


def _refusal(f: Finding) -> ZiplDumpError:
    cls, text, form, fld = WRITER_REFUSES[f.code]
    if f.cause is not None and cls is ZiplDumpError:
        return f.cause
    place = f.place if form is None else replace(f.place, form=form)
    if fld is not None:
        place = superblock_field(f.values["sb_offset"], fld)
    return cls(text.format(**f.values, message=f.message) if text else f.message, where=place)


def locate_dump_partition(disk: DiskImage) -> DumpTarget:
    """boot_info -> superblock -> checksum -> partition table, as zfcpdump 3.0 does
    before writing anything (the chain is read and judged by zipldump.zipl.dumppart).
    Raises MagicError/FormatError for a disk that is not a SCSI dump disk and
    DumpTargetChangedError for one whose dump partition changed."""
    dp = read_dump_partition(disk)
    note = None
    for code in WRITER_REFUSES:
        f = dp.get(code)
        if f is None:
            continue
        if code is Code.CHECKSUM_MISMATCH:
            sb = dp.superblock
            assert sb is not None
            own = None
            if sb.csum_offset == sb.dump_offset:
                own = _own_artefact(disk.read_at(sb.part_start + sb.csum_offset, min(sb.csum_size, HEADER_SIZE)))
            if own is not None:
                # Only a dump writer puts these bytes there: a run stopped between writing
                # them and updating the checksum.  The partition was not repurposed.
                note = (
                    f"checksum {dp.checksum:#010x} differs from the superblock's {sb.csum:#010x}, but the checksummed bytes are {own}; "
                    "the partition is taken as unchanged"
                )
                continue
        raise _refusal(f)
    assert dp.superblock is not None
    _refuse_dump_over_tool(disk, dp.superblock)
    return DumpTarget(dp.superblock, dp.partition, note)


def _refuse_dump_over_tool(disk: DiskImage, sb: DumpSuperblock) -> None:
    """inspect's dump-area rule (zipl/rules.py), as a refusal: a dump written over its
    own dump tool would leave the disk unable to dump again (SuperblockError, as inspect)."""
    try:
        tools = dump_program_extents(disk)
    except ZiplDumpError:
        return  # the firmware loaded this tool from these blocks; the rule has nothing to read
    start = sb.part_start + sb.dump_offset
    view = DumpAreaView(disk.block_size, start, start + sb.dump_size, sb.part_start + sb.part_size,
                        superblock_field(sb.offset, "dump_size"), tools)
    for f in dump_area_covers_tool(view):
        if f.code is Rule.DUMP_AREA_COVERS_TOOL:
            raise SuperblockError(f.message, where=f.place)


def _own_artefact(data: bytes) -> str | None:
    """What a dump writer left in the checksummed bytes (the header slot), if anything."""
    slot = data[:HEADER_SIZE]
    if slot[: len(BUSY_MARKER)] == BUSY_MARKER and not any(slot[len(BUSY_MARKER) :]):
        return "the busy marker of an interrupted dump"
    if int.from_bytes(slot[:8], "big") == DUMP_MAGIC:
        return "an s390 dump header (a dump whose final checksum update was lost)"
    return None


def _update_checksum(disk: DiskImage, target: DumpTarget) -> int:
    """CKSM over the checksummed bytes as they are now, into the superblock."""
    csum = reader.superblock_checksum(disk, target.sb)
    disk.write_at(target.sb_offset, target.superblock(csum))
    return csum


def dump_to_partition(
    image_path: str | os.PathLike[str],
    zcore: ZcoreFiles,
    ui: UI,
    *,
    block_size: int = 512,
    chunk_size: int = DEFAULT_CHUNK,
    clock: Callable[[], int] | None = None,
) -> DumpResult:
    """Write the dump zcore exports to the disk's zipl dump partition.

    Nothing is written when the partition changed or the dump does not fit.
    """
    image = os.fspath(image_path)
    with DiskImage(image, block_size, writable=True) as disk:
        with ui.step("Checking the dump partition"):
            target = locate_dump_partition(disk)
            opened = time.monotonic()  # the dump's time runs from opening zcore/mem to the final fsync
            header_raw, header, ranges = prepare_header(zcore)
            total = HEADER_SIZE + header.mem_size + END_MARKER_SIZE
            if total > target.dump_size:
                raise DumpSpaceError(
                    f"disk too small: dump={to_mib(total)}MB ({total} bytes: header, {header.mem_size} bytes of memory, end marker), "
                    f"diskspace={to_mib(target.dump_size)}MB ({target.dump_size} bytes)",
                    where=superblock_field(target.sb_offset, "dump_size"),
                )
        warnings = []
        if target.note:
            warnings.append(target.note)
            ui.warn(target.note)
        writer = ExtentWriter(disk, [(0, target.dump_start, target.dump_size)])
        ui.info(
            f"dump partition: {target.partition} (bytes {target.part_start:#x}+{target.part_size:#x}), "
            f"dump {to_mib(total)} MB of {to_mib(target.dump_size)} MB"
        )
        end_tod, seconds = write_dump(
            disk,
            writer,
            zcore,
            header_raw,
            header,
            ui,
            description="Writing dump",
            failed="Dump failed: no complete new dump on the partition (an interrupted one keeps its busy marker)",
            chunk_size=chunk_size,
            clock=clock,
            # The busy page changed the checksummed bytes: keep the partition
            # acceptable for the next run even if this one dies.
            after_busy=lambda: _update_checksum(disk, target),
            # Header and new checksum share one fsync: either one alone
            # on disk gives the same "checksum wrong" state.
            after_header=lambda: _update_checksum(disk, target),
            ranges=ranges,
            start=opened,
        )
    ui.info("Dump successful")
    return DumpResult.of(
        "partition",
        image,
        target.partition,
        f"partition {target.partition} at byte {target.dump_start:#x}",
        header,
        end_tod,
        seconds,
        image_offset=target.dump_start,
        warnings=warnings,
    )
