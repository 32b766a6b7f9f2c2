"""--verify: compare a written dump with the crashed system, byte for byte.

The expected dump memory is the crashed system's original memory
(`CrashedSystem.readinto_original`, i.e. also for the first HSA-size bytes the
dump kernel has overwritten in storage since) with exactly the changes the dump
path makes, s390-dump-format.md §1 step 2 and §4.4:

* the machine's store status at the dump IPL: the boot CPU's register fields at
  absolute 0x1200..0x13FF (pads keep memory) and the architectural-mode byte 1 at
  absolute 0xA3;
* zcore's overlay: every CPU's register fields at prefix + 0x1200 (a prefix of 0
  overlays absolute 0x1200).

Register fields are therefore compared against each CPU's `CpuRegisters` (a
difference names the CPU and the field, e.g. `gprs[3]`), everything else
against the original bytes.  Holes in the crashed memory are expected as zeros.

The header is checked against the system too (memory sizes, CPU list and counts)
and the end marker must make the dump complete.  Memory is streamed in 8 MiB
chunks from both sides; nothing larger is held in RAM.  A mismatch raises
VerifyError naming the first difference; the report lists up to
`max_differences` of them with absolute addresses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zipldump.disk.io import RunSource
from zipldump.dump.s390 import completeness
from zipldump.errors import DiskError, VerifyError
from zipldump.formats.lowcore import (
    ACRS_OFFSET,
    ARCH_MODE_OFFSET,
    ARCH_MODE_ZARCH,
    CKC_OFFSET,
    CRS_OFFSET,
    FPC_OFFSET,
    FPRS_OFFSET,
    GPRS_OFFSET,
    LOWCORE_SIZE,
    PREFIX_OFFSET,
    PSW_OFFSET,
    SAVE_AREA_OFFSET,
    SAVE_AREA_SIZE,
    TIMER_OFFSET,
    TODPREG_OFFSET,
    overlay_save_area,
)
from zipldump.formats.s390dump import (
    DUMP_MAGIC,
    HEADER_SIZE,
    PAGE_SIZE,
    DumpHeader,
)
from zipldump.jsonout import JsonMixin, jmeta, member
from zipldump.ui import UI

if TYPE_CHECKING:
    from zipldump.disk.io import ByteSource
    from zipldump.dump.source import CrashedMemory
    from zipldump.dump.write_partition import DumpResult

CHUNK = 8 << 20

# add(address or None, what, expected, actual): record one difference.
AddDifference = Callable[[int | None, str, str, str], None]

# (lowcore offset, element size, count, name) of every register field (§4.1).
_FIELDS = (
    (FPRS_OFFSET, 8, 16, "fprs"),
    (GPRS_OFFSET, 8, 16, "gprs"),
    (PSW_OFFSET, 8, 1, "psw mask"),
    (PSW_OFFSET + 8, 8, 1, "psw address"),
    (PREFIX_OFFSET, 4, 1, "prefix"),
    (FPC_OFFSET, 4, 1, "fpc"),
    (TODPREG_OFFSET, 4, 1, "todpreg"),
    (TIMER_OFFSET, 8, 1, "cpu timer"),
    (CKC_OFFSET, 8, 1, "clock comparator (CKC >> 8)"),
    (ACRS_OFFSET, 4, 16, "acrs"),
    (CRS_OFFSET, 8, 16, "crs"),
)


def field_name(lowcore_offset: int) -> str:
    """Name of the save-area field at a lowcore offset ('pad' between fields)."""
    for start, size, count, name in _FIELDS:
        if start <= lowcore_offset < start + size * count:
            return f"{name}[{(lowcore_offset - start) // size}]" if count > 1 else name
    return "pad"


# --- where the dump is ---------------------------------------------------------------------
class ExtentSource(RunSource):
    """Dump bytes scattered over an image: `extents` are (image offset, length) in
    dump order (one for a partition, one per block run for a file), as a
    disk.io.RunSource."""

    def __init__(self, image: str | os.PathLike[str], extents: list[tuple[int, int]], size: int, *, name: str) -> None:
        runs = []
        done = 0
        for image_offset, length in extents:
            runs.append((done, image_offset, length))
            done += length
        if done < size:
            raise DiskError(f"the dump's blocks hold {done} bytes, the dump has {size}", where=name)
        super().__init__(image, runs, size=size, name=name)


def source_for_result(result: DumpResult) -> ExtentSource:
    """The bytes a DumpResult (dump.write_partition or dump.write_fs) says it wrote."""
    if result.mode == "partition":
        assert result.image_offset is not None  # set for every partition-mode result
        return ExtentSource(result.image, [(result.image_offset, result.bytes_written)], result.bytes_written, name=result.location)
    from zipldump.disk.extfs import ExtFs

    assert result.fs_path is not None and result.fs_offset is not None and result.fs_size is not None  # set for every fs-mode result
    fs = ExtFs(result.image, result.fs_offset, result.fs_size)
    size = fs.file_size(result.fs_path)
    return ExtentSource(result.image, fs.byte_runs(fs.block_map(result.fs_path)), size, name=result.location)


# --- the report ---------------------------------------------------------------------------------
@dataclass
class Difference(JsonMixin):
    address: int | None = field(metadata=jmeta("hex"))  # absolute address (None: header or end marker)
    what: str
    expected: str
    actual: str

    def text(self) -> str:
        at = f"absolute 0x{self.address:x}: " if self.address is not None else ""
        return f"{at}{self.what}: expected {self.expected}, dump has {self.actual}"


@dataclass
class VerifyReport(JsonMixin):
    source: str
    mem_size: int = 0
    bytes_compared: int = 0
    cpus_checked: int = 0
    differing_pages: int = 0
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    JSON = (
        member("ok"),
        *map(member, ("source", "mem_size", "bytes_compared", "cpus_checked", "differing_pages", "differences")),
        member("seconds", fmt="round3"),
    )

    @property
    def ok(self) -> bool:
        return not self.differences


# --- the comparison ------------------------------------------------------------------------------
class _Expected:
    """The dump's expected memory: original bytes plus the store-status and zcore patches."""

    def __init__(self, crashed: CrashedMemory, mem_size: int) -> None:
        self.crashed = crashed
        boot = crashed.cpus[crashed.boot_cpu]
        # (save-area address, registers, label, is a CPU's own prefix page).  The
        # machine's store status of the boot CPU first, then zcore's overlays in
        # its save-area order (boot CPU, then the others by CPU address); where
        # two land on the same bytes (prefix 0) the later one wins, as in zcore.
        others = sorted((c for c in crashed.cpus if c is not boot), key=lambda c: c.address)
        areas = [(SAVE_AREA_OFFSET, boot.registers, f"CPU {boot.address} (boot CPU) store status at absolute 0x1200", False)]
        for cpu in [boot, *others]:
            label = f"CPU {cpu.address}{' (boot CPU)' if cpu is boot else ''} prefix 0x{cpu.prefix:x}"
            areas.append((cpu.prefix + SAVE_AREA_OFFSET, cpu.registers, label, True))
        self.areas = [a for a in areas if a[0] + SAVE_AREA_SIZE <= mem_size]
        self.patches: list[tuple[int, bytes]] = []
        for addr, regs, _, _ in self.areas:
            old = crashed.read_original(addr, SAVE_AREA_SIZE)
            self.patches.append((addr, overlay_save_area(old, regs)))
        if ARCH_MODE_OFFSET < mem_size:
            self.patches.append((ARCH_MODE_OFFSET, bytes([ARCH_MODE_ZARCH])))

    def fill(self, addr: int, buf: bytearray, n: int) -> None:
        mv = memoryview(buf)[:n]
        self.crashed.readinto_original(addr, mv)
        end = addr + n
        for pa, data in self.patches:
            s, e = max(pa, addr), min(pa + len(data), end)
            if s < e:
                mv[s - addr : e - addr] = data[s - pa : e - pa]

    def describe(self, address: int) -> tuple[str, int, int]:
        """Where an address lies: (description, start and size of the enclosing
        register field, or the address and 1 outside register fields)."""
        for area, _, label, _ in reversed(self.areas):
            if area <= address < area + SAVE_AREA_SIZE:
                off = SAVE_AREA_OFFSET + address - area
                for start, size, count, _name in _FIELDS:
                    if start <= off < start + size * count:
                        elem = start + (off - start) // size * size
                        return f"{label} register {field_name(off)} (lowcore 0x{elem:x})", area + elem - SAVE_AREA_OFFSET, size
                return f"{label} save area pad (lowcore 0x{off:x})", address, 1
        if address == ARCH_MODE_OFFSET:
            return "architectural-mode byte (store status)", address, 1
        return "memory", address, 1


def _hex(data: bytes | bytearray | memoryview) -> str:
    return bytes(data).hex(" ") if data else "(nothing)"


def _check_header(report: VerifyReport, header: DumpHeader, crashed: CrashedMemory, source: ByteSource, add: AddDifference) -> None:
    mem_end = max(s + n for s, n in crashed.chunks) if crashed.chunks else crashed.memory_size
    if header.mem_size <= 0 or header.mem_size % PAGE_SIZE:
        add(None, "header mem_size (offset 0x18)", "a positive multiple of 4096", f"0x{header.mem_size:x}")
    if header.mem_size > mem_end:
        add(None, "header mem_size (offset 0x18)", f"at most the memory size 0x{mem_end:x}", f"0x{header.mem_size:x}")
    if header.end != header.mem_size:
        add(None, "header mem_end (offset 0x28)", f"0x{header.mem_size:x} (= mem_size)", f"0x{header.end:x}")
    holes = sum(n for _, n in crashed.chunks) not in (0, mem_end)
    if header.real_mem != crashed.memory_size and not holes:
        add(None, "header mem_size_real (offset 0x54)", f"0x{crashed.memory_size:x}", f"0x{header.real_mem:x}")
    if header.real_cpus != crashed.ncpus:
        add(None, "header real_cpu_cnt (offset 0x5f)", str(crashed.ncpus), str(header.real_cpus))
    want = sorted(c.prefix for c in crashed.cpus if c.prefix and c.prefix + LOWCORE_SIZE <= header.mem_size)
    have = sorted(header.prefixes)
    if want != have:
        add(None, "header CPU list lc_vec (offset 0x800)", ", ".join(f"0x{p:x}" for p in want) or "none", ", ".join(f"0x{p:x}" for p in have) or "none")
    # Completeness: zgetdump's rule, as getdump applies it.
    end = completeness(header, source)
    if end.tod is None:
        add(None, f"end marker at dump offset 0x{header.end_marker_offset:x}", "DUMP_END + TOD", _hex(end.raw))
    elif not end.complete:
        add(None, "end marker TOD", f">= header TOD 0x{header.tod:016x}", f"0x{end.tod:016x}")


def verify_source(
    source: ByteSource,
    crashed: CrashedMemory,
    ui: UI | None = None,
    *,
    hsa_size: int | None = None,
    max_differences: int = 10,
    raise_on_mismatch: bool = True,
    chunk_size: int = CHUNK,
) -> VerifyReport:
    """Compare the dump in `source` (ByteSource: name, size, readinto_at) with `crashed`."""
    start_time = time.monotonic()
    report = VerifyReport(source=source.name)

    def add(address: int | None, what: str, expected: str, actual: str) -> None:
        if len(report.differences) < max_differences:
            report.differences.append(Difference(address, what, expected, actual))

    raw = bytearray(HEADER_SIZE)
    got = source.readinto_at(0, raw)
    magic = int.from_bytes(raw[:8], "big")
    if got < HEADER_SIZE or magic != DUMP_MAGIC:
        add(None, "dump header magic (offset 0x0)", f"0x{DUMP_MAGIC:016x}", _hex(raw[:16]) if got else "(empty)")
        return _finish(report, start_time, raise_on_mismatch)
    header = DumpHeader.parse(raw)
    report.mem_size = header.mem_size
    _check_header(report, header, crashed, source, add)
    mem_size = min(header.mem_size, crashed.memory_size, max(0, source.size - HEADER_SIZE))
    expected = _Expected(crashed, mem_size)
    ebuf = bytearray(chunk_size)
    progress_cm = ui.progress("Verifying", mem_size) if ui is not None else None
    progress = progress_cm.__enter__() if progress_cm is not None else None
    # The next chunk of the dump is read on a helper thread (pread drops the GIL)
    # while this one is generated and compared: the dump's pages usually come from
    # the disk (the writers write memory O_DIRECT), so reading and computing overlap.
    spare = [bytearray(chunk_size), bytearray(chunk_size)]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-read")

    def read_ahead(at: int) -> Future[tuple[bytearray, int]] | None:
        if at >= mem_size:
            return None
        n = min(chunk_size, mem_size - at)
        buf = spare.pop() if n == chunk_size else bytearray(n)  # last chunk: exact size keeps the compare a memcmp
        return pool.submit(lambda: (buf, source.readinto_at(HEADER_SIZE + at, buf)))

    try:
        addr = 0
        pending = read_ahead(0)
        while pending is not None:
            n = min(chunk_size, mem_size - addr)
            dbuf, got = pending.result()
            pending = read_ahead(addr + n) if got == n else None
            if n < chunk_size:
                ebuf = bytearray(n)
            if got < n:
                add(addr + got, "dump ends early", f"0x{mem_size:x} bytes of memory", f"0x{got + addr:x}")
                break
            expected.fill(addr, ebuf, n)
            if dbuf != ebuf:
                _locate(report, expected, addr, dbuf, ebuf, n, hsa_size, add)
            if len(dbuf) == chunk_size:
                spare.append(dbuf)  # free for the read after the one in flight
            addr += n
            report.bytes_compared += n
            if progress is not None:
                progress.advance(n)
    finally:
        pool.shutdown(wait=True)
        if progress_cm is not None:
            progress_cm.__exit__(None, None, None)
    report.cpus_checked = sum(1 for area in expected.areas if area[3])
    return _finish(report, start_time, raise_on_mismatch)


def _locate(report: VerifyReport, expected: _Expected, addr: int, dbuf: bytearray, ebuf: bytearray, n: int, hsa_size: int | None, add: AddDifference) -> None:
    """Record the first differing byte of every differing page in a chunk."""
    for off in range(0, n, PAGE_SIZE):
        a, b = dbuf[off : off + PAGE_SIZE], ebuf[off : off + PAGE_SIZE]
        if a == b:
            continue
        report.differing_pages += 1
        i = next(j for j in range(len(a)) if a[j] != b[j])
        where = addr + off + i
        what, fstart, fsize = expected.describe(where)
        if what == "memory":
            if hsa_size and where < hsa_size:
                what = "memory (HSA part, read through SDIAS)"
            fsize = 8  # show 8 bytes from the difference on
        if fsize > 1 and fstart - addr >= 0 and fstart - addr + fsize <= n:
            s = fstart - addr
            add(where, what, _hex(ebuf[s : s + fsize]), _hex(dbuf[s : s + fsize]))
        else:
            add(where, what, _hex(b[i : i + 1]), _hex(a[i : i + 1]))


def _finish(report: VerifyReport, start_time: float, raise_on_mismatch: bool) -> VerifyReport:
    report.seconds = time.monotonic() - start_time
    if raise_on_mismatch and not report.ok:
        first = report.differences[0]
        more = f" (+{report.differing_pages - 1} more differing pages)" if report.differing_pages > 1 else ""
        raise VerifyError(
            f"dump differs from the crashed system: {first.what}: expected {first.expected}, dump has {first.actual}{more}",
            where=f"{report.source} absolute address 0x{first.address:x}" if first.address is not None else report.source,
        )
    return report


def verify_dump(result: DumpResult, crashed: CrashedMemory, ui: UI | None = None, *, hsa_size: int | None = None, max_differences: int = 10) -> VerifyReport:
    """Verify the dump a writer reported (DumpResult) against the crashed system."""
    with source_for_result(result) as source:
        report = verify_source(source, crashed, ui, hsa_size=hsa_size, max_differences=max_differences)
    if ui is not None:
        ui.info(f"verify: {report.bytes_compared} bytes of memory and {report.cpus_checked} CPUs' registers match the crashed system")
    return report
