"""The crashed system a dump is taken of: memory contents and stopped CPUs.

Three sources, one interface (`CrashedSystem`):

* `generate(memory_size, ncpus, seed=0)`: a deterministic synthetic crashed
  Linux.  Nothing is held in RAM: content is computed on demand from a 1 MiB
  filler template (SHAKE-256 of the seed) and a 16-byte stamp at the start of
  every 4 KiB page (`PAGE_STAMP`: b"PGID", u32 seed, u64 page frame number),
  plus a few small patches (CPU lowcores, the IPL parameter block).
* `from_raw(path, ncpus)`: a raw memory image (file offset = absolute address).
* `from_elf(path)`: an s390x ELF core as QEMU's `dump-guest-memory` writes it
  (PT_LOAD segments; per-CPU register notes, s390-dump-format.md §8.9).

`read_original(addr, n)` / `readinto_original(addr, buf)` return the crashed
content; the machine's storage builds on it and `--verify` compares against it.
The CPUs' live registers are in `cpus[i].registers`; whatever memory holds at
prefix + 0x1200 is stale (store status has not happened yet).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from zipldump.disk.io import MemoryMap, RangeSource
from zipldump.dump.elf import ElfCore, read_elf_core
from zipldump.errors import DumpError, FormatError, UsageError
from zipldump.formats.dump_superblock import cksm
from zipldump.formats.ipl_block import IpibInfo, build_fcp_ipib
from zipldump.formats.lowcore import (
    CPU_ADDR_OFFSET,
    IPIB_OFFSET,
    LOWCORE_SIZE,
    SAVE_AREA_OFFSET,
    SAVE_AREA_SIZE,
    VX_SAVE_AREA_ADDR_OFFSET,
    CpuRegisters,
    overlay_save_area,
    parse_save_area,
)
from zipldump.formats.s390dump import MAX_MEM_SIZE
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.sim.cpu import STOPPED, CpuState

PAGE_SIZE = 4096
MiB = 1 << 20
GiB = 1 << 30
DEFAULT_MEMORY = 2 * GiB
DEFAULT_CPUS = 4
MAX_CPUS = 512
HSA_LIMIT_FOR_LAYOUT = DEFAULT_HSA_SIZE  # prefixes are spread below and above this address

PAGE_STAMP = struct.Struct(">4sIQ")  # magic, seed (low 32 bits), page frame number
STAMP_MAGIC = b"PGID"
STAMP_SIZE = PAGE_STAMP.size
TEMPLATE_SIZE = 1 * MiB

# The crashed system's IPL parameter block (what zcore/reipl re-IPLs).
IPIB_ADDR = 0x7000
PSW_MASK_LINUX = 0x0704C00180000000  # DAT, I/O+ext interrupts, 64-bit addressing


# --- page identity -----------------------------------------------------------------
def page_stamp(pfn: int, seed: int = 0) -> bytes:
    """The 16 bytes at the start of generated page `pfn`."""
    return PAGE_STAMP.pack(STAMP_MAGIC, seed & 0xFFFFFFFF, pfn)


def filler_template(seed: int) -> bytes:
    """1 MiB of deterministic filler; page p's bytes 16.. come from offset (p % 256) * 4096."""
    return hashlib.shake_256(b"zipldump crashed system " + seed.to_bytes(8, "big", signed=True)).digest(TEMPLATE_SIZE)


# --- registers ---------------------------------------------------------------------
def _mix32(*parts: int) -> int:
    return zlib.crc32(b"".join(p.to_bytes(8, "big", signed=p < 0) for p in parts)) & 0xFFFFFFFF


def _reg64(kind: int, cpu: int, r: int, seed: int) -> int:
    # Top byte names the register kind, then CPU index and register number:
    # every value in a generated system is distinct and readable in a hex dump.
    return (kind << 56) | ((cpu & 0xFFFF) << 40) | ((r & 0xFF) << 32) | _mix32(seed, kind, cpu, r)


def generated_registers(seed: int, cpu: int, prefix: int, *, stale: bool = False) -> CpuRegisters:
    """Deterministic register set of CPU index `cpu`.  `stale=True` gives the
    different values a generated memory image holds at prefix + 0x1200."""
    k = 0x80 if stale else 0
    return CpuRegisters(
        psw_mask=PSW_MASK_LINUX,
        psw_addr=(0x100000 + (cpu << 12) + (_mix32(seed, k, cpu) & 0xFFE)) ^ (k << 24),
        gprs=tuple(_reg64(0x47 ^ k, cpu, r, seed) for r in range(16)),
        acrs=tuple(((0xA0 ^ k) << 24) | ((cpu & 0xFFF) << 12) | (r << 8) | (_mix32(seed, 0xA, cpu, r) & 0xFF) for r in range(16)),
        fprs=tuple(_reg64(0x46 ^ k, cpu, r, seed) for r in range(16)),
        fpc=(_mix32(seed, 0xF, cpu) & 0xF8F8FF03) ^ k,
        crs=tuple(_reg64(0x43 ^ k, cpu, r, seed) for r in range(16)),
        prefix=prefix,
        timer=_reg64(0x54 ^ k, cpu, 0, seed),
        ckc=_reg64(0x3C ^ k, cpu, 0, seed) & ~0xFF,  # the save area keeps CKC >> 8 only
        todpreg=(_mix32(seed, 0x7, cpu) & 0xFFFF) ^ k,
        cpu_address=cpu,
    )


PREFIX_LIMIT = 2 * GiB  # prefixes are 31-bit addresses


def default_prefixes(memory_size: int, ncpus: int, hsa_limit: int = HSA_LIMIT_FOR_LAYOUT) -> list[int]:
    """Distinct 8 KiB aligned prefixes: even CPU indices at 16 MiB upwards (below
    the HSA limit), odd ones 8 MiB below the memory end (above it) when the
    memory is at least hsa_limit + 16 MiB; otherwise all in the middle.

    The prefix register holds a 31-bit address, so "the memory end" is capped
    at 2 GiB for larger systems."""
    if memory_size >= hsa_limit + 16 * MiB:
        lo, hi = min(16 * MiB, hsa_limit // 2), min(memory_size, PREFIX_LIMIT) - 8 * MiB
        return [(lo if i % 2 == 0 else hi) + (i // 2) * LOWCORE_SIZE for i in range(ncpus)]
    lo = (memory_size // 2) & ~(LOWCORE_SIZE - 1)
    if lo + ncpus * LOWCORE_SIZE > memory_size:
        raise UsageError(
            f"{memory_size} bytes of memory leave no room for {ncpus} CPU lowcores of {LOWCORE_SIZE} bytes",
            where="crashed system memory size",
        )
    return [lo + i * LOWCORE_SIZE for i in range(ncpus)]


# --- memory sources ------------------------------------------------------------------
class _Backing(Protocol):
    """Where a crashed system's original bytes come from (generated, raw file, ELF core)."""

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int: ...


class _Generated:
    """Generated memory, computed on demand.  The 2 MiB template copy already
    carries every page's constant stamp half (magic, seed), so a read is one
    memcpy per MiB plus one strided store of all page frame numbers (big-endian
    u64 at page offset 8): no Python call per page."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self._seed32 = seed & 0xFFFFFFFF
        t = bytearray(filler_template(seed))
        head = PAGE_STAMP.pack(STAMP_MAGIC, self._seed32, 0)[:8]
        for off in range(0, TEMPLATE_SIZE, PAGE_SIZE):
            t[off : off + 8] = head
        self._tmpl2 = bytes(t + t)  # any slice of up to 1 MiB is contiguous
        self.name = "generated memory"

    def close(self) -> None:
        return None

    def readinto_at(self, addr: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = len(mv)
        tmpl2 = self._tmpl2
        pos = 0
        while pos < n:
            off = (addr + pos) % TEMPLATE_SIZE
            take = min(n - pos, TEMPLATE_SIZE)
            mv[pos : pos + take] = tmpl2[off : off + take]
            pos += take
        end = addr + n
        # Pages whose 16-byte stamp intersects [addr, end).
        p0 = addr >> 12
        if addr & (PAGE_SIZE - 1) >= STAMP_SIZE:
            p0 += 1
        p1 = (end - 1) >> 12
        if p0 > p1:
            return n
        lo_full = p0 if (p0 << 12) >= addr else p0 + 1
        hi_full = p1 if (p1 << 12) + STAMP_SIZE <= end else p1 - 1
        for pfn in {p0, p1}:
            if not lo_full <= pfn <= hi_full:  # stamp cut by the read's start or end
                ps = pfn << 12
                s, e = max(ps, addr), min(ps + STAMP_SIZE, end)
                mv[s - addr : e - addr] = page_stamp(pfn, self.seed)[s - ps : e - ps]
        if lo_full > hi_full:
            return n
        if addr % 8 == 0 and n % 8 == 0:
            # Whole stamps: magic and seed came with the template; the frame numbers
            # go in with one strided store into the buffer seen as u64 words.
            pfns = array("Q", range(lo_full, hi_full + 1))
            if sys.byteorder == "little":
                pfns.byteswap()
            first = ((lo_full << 12) + 8 - addr) // 8
            mv.cast("Q")[first : first + (len(pfns) - 1) * (PAGE_SIZE // 8) + 1 : PAGE_SIZE // 8] = memoryview(pfns)
            return n
        pack = PAGE_STAMP.pack_into
        magic, s32 = STAMP_MAGIC, self._seed32
        for pfn in range(lo_full, hi_full + 1):
            pack(mv, (pfn << 12) - addr, magic, s32, pfn)
        return n


# --- the crashed system ----------------------------------------------------------------
@dataclass
class CrashedSystem:
    """Memory and CPUs of the crashed system.  Index `boot_cpu` in `cpus` is the
    CPU the dump IPL is performed on; `chunks` lists the present memory ranges
    (start, size) — addresses outside them are holes that read as zeros."""

    memory_size: int
    cpus: list[CpuState]
    source: str
    boot_cpu: int = 0
    seed: int | None = None
    chunks: list[tuple[int, int]] = field(default_factory=list)
    ipib_addr: int = 0
    _src: _Backing | None = field(default=None, repr=False)
    _patches: list[tuple[int, bytes]] = field(default_factory=list, repr=False)
    _patch_starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.chunks:
            self.chunks = [(0, self.memory_size)]
        self._patches.sort()
        self._patch_starts = [a for a, _ in self._patches]

    @property
    def ncpus(self) -> int:
        return len(self.cpus)

    @property
    def prefixes(self) -> list[int]:
        return [c.prefix for c in self.cpus]

    def readinto_original(self, addr: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = len(mv)
        if addr < 0 or addr + n > self.memory_size:
            raise DumpError(
                f"read of {n} bytes at 0x{addr:x} is outside the crashed memory (size 0x{self.memory_size:x})",
                where=f"absolute address 0x{addr:x}",
            )
        if n == 0:
            return 0
        assert self._src is not None, "a CrashedSystem is made by generate/from_raw/from_elf"
        self._src.readinto_at(addr, mv)
        if self._patches:
            end = addr + n
            i = max(bisect_right(self._patch_starts, addr) - 1, 0)
            while i < len(self._patches) and self._patches[i][0] < end:
                pa, data = self._patches[i]
                s, e = max(pa, addr), min(pa + len(data), end)
                if s < e:
                    mv[s - addr : e - addr] = data[s - pa : e - pa]
                i += 1
        return n

    def read_original(self, addr: int, n: int) -> bytes:
        buf = bytearray(n)
        self.readinto_original(addr, buf)
        return bytes(buf)

    def is_present(self, addr: int, n: int) -> bool:
        """True when [addr, addr+n) lies entirely in present memory (no hole)."""
        end = addr + n
        for start, size in self.chunks:
            if start <= addr < start + size:
                if end <= start + size:
                    return True
                addr = start + size
        return n == 0

    def close(self) -> None:
        close = getattr(self._src, "close", None)
        if close:
            close()

    def __enter__(self) -> CrashedSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_geometry(memory_size: int, ncpus: int) -> None:
    if memory_size < MiB or memory_size % PAGE_SIZE:
        raise UsageError(f"memory size {memory_size} must be a multiple of {PAGE_SIZE} and at least 1 MiB", where="crashed system memory size")
    if not 1 <= ncpus <= MAX_CPUS:
        raise UsageError(f"{ncpus} CPUs: the dump header holds 1 to {MAX_CPUS}", where="crashed system CPU count")


def generate(memory_size: int = DEFAULT_MEMORY, ncpus: int = DEFAULT_CPUS, seed: int = 0, *, boot_cpu: int = 0,
             prefixes: list[int] | None = None) -> CrashedSystem:
    """A deterministic crashed Linux (see the module docstring for the content).

    Per CPU i (CPU address i): prefix from `default_prefixes`, live registers
    `generated_registers(seed, i, prefix)`, and in memory at the prefix page:
    the CPU address at +0x84, zero at +0x11B0 (no vector save area) and a stale
    save area at +0x1200 (`generated_registers(..., stale=True)`, pads keep the
    filler).  `prefixes` overrides the layout (distinct, 8 KiB aligned, inside
    memory, not in the first 64 KiB).  Absolute 0xE00 points to an FCP IPIB at 0x7000 with a valid
    checksum at 0xE08, so zcore/reipl finds a re-IPL block.
    """
    _check_geometry(memory_size, ncpus)
    if not 0 <= boot_cpu < ncpus:
        raise UsageError(f"boot CPU {boot_cpu} does not exist ({ncpus} CPUs)", where="crashed system boot CPU")
    src = _Generated(memory_size, seed)
    if prefixes is None:
        prefixes = default_prefixes(memory_size, ncpus)
    else:
        prefixes = list(prefixes)
        if len(prefixes) != ncpus or len(set(prefixes)) != ncpus:
            raise UsageError(f"need {ncpus} distinct prefixes, got {len(prefixes)}", where="crashed system prefixes")
        for i, p in enumerate(prefixes):
            if p % LOWCORE_SIZE or p < 0x10000 or p + LOWCORE_SIZE > memory_size:
                raise UsageError(f"prefix 0x{p:x} is not 8 KiB aligned between 64 KiB and the memory end", where=f"CPU {i} prefix")
    cpus = [CpuState(address=i, registers=generated_registers(seed, i, p), state=STOPPED) for i, p in enumerate(prefixes)]
    patches: list[tuple[int, bytes]] = []
    for i, p in enumerate(prefixes):
        patches.append((p + CPU_ADDR_OFFSET, i.to_bytes(2, "big")))
        patches.append((p + VX_SAVE_AREA_ADDR_OFFSET, bytes(8)))
        old = bytearray(SAVE_AREA_SIZE)
        src.readinto_at(p + SAVE_AREA_OFFSET, old)
        patches.append((p + SAVE_AREA_OFFSET, overlay_save_area(old, generated_registers(seed, i, p, stale=True))))
    ipib = build_fcp_ipib(0x1000 + (seed & 0xFFF), 0x500507630300C562 ^ (seed & 0xFFFF), 0x4010400000000000, 0)
    patches.append((IPIB_ADDR, ipib))
    patches.append((IPIB_OFFSET, IpibInfo.build({"ipib": IPIB_ADDR, "checksum": cksm(ipib, 0)})))
    return CrashedSystem(memory_size, cpus, "generated", boot_cpu=boot_cpu, seed=seed, ipib_addr=IPIB_ADDR, _src=src, _patches=patches)


def from_raw(path: str | os.PathLike[str], ncpus: int = DEFAULT_CPUS, *, prefixes: list[int] | None = None, seed: int = 0,
             boot_cpu: int = 0) -> CrashedSystem:
    """A raw memory image (file offset = absolute address).

    With `prefixes`, each CPU's registers are read from the image's save area at
    prefix + 0x1200 (an image taken after a store status).  Without, prefixes and
    registers are generated as in `generate` (a raw image carries no CPU state).
    """
    p = Path(path)
    raw = RangeSource(p, error=UsageError)
    size = raw.size
    src = MemoryMap([(0, size, raw)], name=f"{p} memory", error=DumpError, closes=[raw])
    try:
        if size % PAGE_SIZE or size < MiB:
            raise UsageError(f"memory image has {size} bytes: not a multiple of {PAGE_SIZE} or below 1 MiB", where=str(p))
        if prefixes is not None:
            ncpus = len(prefixes)
        _check_geometry(size, ncpus)
        if not 0 <= boot_cpu < ncpus:
            raise UsageError(f"boot CPU {boot_cpu} does not exist ({ncpus} CPUs)", where="crashed system boot CPU")
        cpus: list[CpuState] = []
        if prefixes is None:
            for i, pre in enumerate(default_prefixes(size, ncpus)):
                cpus.append(CpuState(i, generated_registers(seed, i, pre)))
        else:
            if len(set(prefixes)) != len(prefixes):
                raise UsageError("CPU prefixes must be distinct", where="--prefixes")
            for i, pre in enumerate(prefixes):
                if pre % LOWCORE_SIZE or pre + LOWCORE_SIZE > size:
                    raise UsageError(f"prefix 0x{pre:x} is not 8 KiB aligned inside the image", where=f"CPU {i} prefix")
                area = bytearray(SAVE_AREA_SIZE)
                src.readinto_at(pre + SAVE_AREA_OFFSET, area)
                regs = parse_save_area(area, cpu_address=i).with_(prefix=pre)
                cpus.append(CpuState(i, regs))
    except BaseException:
        src.close()
        raise
    return CrashedSystem(size, cpus, "raw", boot_cpu=boot_cpu, seed=seed if prefixes is None else None, _src=src)


def from_elf(path: str | os.PathLike[str], *, boot_cpu: int = 0) -> CrashedSystem:
    """An s390x ELF core (QEMU `dump-guest-memory`, zgetdump -f elf, /proc/vmcore).

    Memory from the PT_LOAD segments by physical address (gaps are holes); one
    CPU per NT_PRSTATUS with the registers of its notes (formats.elfcore;
    QEMU's clock comparator note is the full value).  CPU addresses are the
    note order; CPU 0 is the boot CPU unless `boot_cpu` says otherwise.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError("cannot open ELF core: no such file", where=str(p))
    # One ELF core reader for the project: dump.elf (program headers via e_phoff,
    # notes, the PT_LOADs as a MemoryMap); the map owns the core from here on.
    core = read_elf_core(p, keep_open=True)
    try:
        return _from_elf_core(p, core, boot_cpu)
    except BaseException:
        core.close()
        raise


def _from_elf_core(p: Path, core: ElfCore, boot_cpu: int) -> CrashedSystem:
    loads = sorted(core.segments, key=lambda s: s.paddr)
    regs = core.cpus
    if not loads:
        raise FormatError("no PT_LOAD segment: the core holds no memory", where=f"{p} program headers")
    end = max(s.paddr + s.memsz for s in loads)
    memory_size = (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if memory_size > MAX_MEM_SIZE:
        raise FormatError(
            f"PT_LOAD segments end at 0x{end:x}, beyond the 0x{MAX_MEM_SIZE:x} bytes an s390 dump header can describe",
            where=f"{p} program headers",
        )
    if not regs:
        raise FormatError("no NT_PRSTATUS note: the core holds no CPU", where=f"{p} PT_NOTE")
    if len(regs) > MAX_CPUS:
        raise FormatError(f"{len(regs)} CPUs exceed the dump header's {MAX_CPUS}", where=f"{p} PT_NOTE")
    if not 0 <= boot_cpu < len(regs):
        raise UsageError(f"boot CPU {boot_cpu} does not exist ({len(regs)} CPUs)", where="crashed system boot CPU")
    for i, r in enumerate(regs):
        if r.prefix and (r.prefix % LOWCORE_SIZE or r.prefix + LOWCORE_SIZE > memory_size):
            raise FormatError(f"prefix 0x{r.prefix:x} is not 8 KiB aligned inside memory", where=f"{p} CPU {i} NT_S390_PREFIX")
    cpus = [CpuState(i, r.with_(cpu_address=i)) for i, r in enumerate(regs)]
    chunks: list[tuple[int, int]] = []
    for s in loads:
        if chunks and chunks[-1][0] + chunks[-1][1] == s.paddr:
            chunks[-1] = (chunks[-1][0], chunks[-1][1] + s.memsz)
        else:
            chunks.append((s.paddr, s.memsz))
    memory = core.memory_map(error=DumpError, owner=True)
    return CrashedSystem(memory_size, cpus, "elf", boot_cpu=boot_cpu, chunks=chunks, _src=memory)
