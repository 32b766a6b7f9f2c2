"""s390 dump -> s390x ELF core (like `zgetdump -f elf`), s390 dump copy, and an ELF core reader.

Writers stream the memory in chunks (bounded memory), skip all-zero chunks to
keep the output sparse, write to `OUT.part` and rename it to OUT only when
complete, so a failure never leaves a half-written OUT.

ELF layout written: ELF header, program headers at 64 (PT_NOTE, then one PT_LOAD
per memory range, p_paddr = p_vaddr = absolute start, flags RWX, p_align 4096),
the notes, then memory from the next 4 KiB boundary.  Notes: NT_PRPSINFO
("vmlinux"), then for every CPU in lc_vec order the set of
formats.elfcore.cpu_notes (pr_pid = 1-based position), when the dump's
registers are usable (§4.4 all-or-nothing rule).

`read_elf_core(path)` reads any s390x ELF core (QEMU `dump-guest-memory`,
/proc/vmcore, zgetdump, this module's output) through e_phoff, for the
simulator's `--crashed FILE` input.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from itertools import pairwise

from zipldump.disk.io import MemoryMap, OutputFile, RangeSource, open_input, pread_bytes
from zipldump.dump.elfdump import AnyDump, ElfDump, Load
from zipldump.dump.s390 import DEFAULT_CHUNK, S390Dump
from zipldump.dump.vmcoreinfo import find_vmcoreinfo
from zipldump.errors import FormatError, ZiplDumpError
from zipldump.formats import elfcore as ec
from zipldump.formats import s390dump as sd
from zipldump.formats.lowcore import CKC_OFFSET, VX_SAVE_AREA_ADDR_OFFSET, CpuRegisters, ckc_to_field
from zipldump.ui import UI, ByteProgress

MEMORY_ALIGN = 4096
MAX_NOTES_SIZE = 64 << 20  # sanity bound for reading PT_NOTE segments into memory (all of them together)
ADDRESS_SPACE = 1 << 64  # a PT_LOAD must end inside it
VX_SA_SIZE = 512  # V0-V31, 16 bytes each
VX_SA_ALIGN = 1024  # zgetdump ignores a vector save area address that is not a multiple of it
VMCOREINFO_NAME = "VMCOREINFO"


# --- writing -----------------------------------------------------------------------
Output = str | os.PathLike[str] | OutputFile


def _output(out: Output, overwrite: bool) -> OutputFile:
    """The caller's OutputFile, or one for a path (see disk.io: never a clobber)."""
    return out if isinstance(out, OutputFile) else OutputFile(out, overwrite=overwrite)


def _copy_stream(dump: AnyDump, out: OutputFile, start: int, end: int, dst: int, progress: ByteProgress | None, chunk: int) -> None:
    """Memory [start, end) of `dump` to `dst` in OUT."""
    _copy_pieces(dump.iter_memory(start, end, chunk=chunk), out, dst, progress, chunk)


def _copy_pieces(pieces: Iterator[memoryview], out: OutputFile, dst: int, progress: ByteProgress | None, chunk: int) -> None:
    """Consecutive pieces to OUT from `dst` on; all-zero pieces become holes (dumps are mostly empty memory)."""
    zero = bytes(chunk)
    pos = dst
    for piece in pieces:
        n = len(piece)
        # Compare the underlying bytearray (memcmp); memoryview comparison is per element.
        base = piece.obj
        if isinstance(base, (bytes, bytearray)) and len(base) == n:
            is_zero = base == zero if n == len(zero) else base == zero[:n]
        else:
            is_zero = bytes(piece) == zero[:n]
        if not is_zero:
            out.pwrite(piece, pos)
        pos += n
        if progress is not None:
            progress.advance(n)


@dataclass
class ElfLayout:
    notes_offset: int
    notes_size: int
    loads: list[tuple[int, int, int]]  # (paddr, file offset, size)
    file_size: int
    ncpus: int


def _memory_reader(dump: AnyDump) -> Callable[[int, int], bytes | None]:
    """read(addr, n): the dump's memory, None outside it (zgetdump's dfi_mem_read_rc)."""
    if isinstance(dump, ElfDump):
        return dump._read_mem_rc

    def read(addr: int, n: int) -> bytes | None:
        return dump.read_memory(addr, n) if 0 <= addr and addr + n <= dump.mem_size else None

    return read


@dataclass(frozen=True)
class CpuNoteSource:
    """One CPU as `zgetdump -f elf` writes it: registers, the raw NT_S390_TODCMP field and
    the 512-byte vector save area (V0-V31) when the CPU has one."""

    registers: CpuRegisters
    todcmp_field: int
    vector_area: bytes | None
    warning: str | None = None


def cpu_note_sources(dump: AnyDump) -> list[CpuNoteSource]:
    """Per CPU in note/lc_vec order.  s390 input: the clock comparator is the raw u64 at
    prefix + 0x1330, the vector registers the 512 bytes the u64 at prefix + 0x11B0
    points to (non-zero, a multiple of 1024, inside memory: zgetdump's lc2cpu_64).
    ELF input: the CPU's own NT_S390_TODCMP and VXRS notes, copied."""
    out: list[CpuNoteSource] = []
    if isinstance(dump, ElfDump):
        for c in dump.info.cpus:
            raw = c.notes.get(ec.NT_S390_TODCMP)
            todcmp = int.from_bytes(raw, "big") if raw is not None and len(raw) == 8 else ckc_to_field(c.registers.ckc)
            low, high = c.notes.get(ec.NT_S390_VXRS_LOW), c.notes.get(ec.NT_S390_VXRS_HIGH)
            vx = None
            if low is not None or high is not None:
                low = (low or b"").ljust(128, b"\0")[:128]
                high = (high or b"").ljust(256, b"\0")[:256]
                fprs = c.registers.fprs
                vx = b"".join(fprs[i].to_bytes(8, "big") + low[8 * i : 8 * i + 8] for i in range(16)) + high
            out.append(CpuNoteSource(c.registers, todcmp, vx))
        return out
    read = _memory_reader(dump)
    # dump.cpus is empty unless every CPU of lc_vec (dump.info.cpus) has registers.
    for i, (regs, cpu) in enumerate(zip(dump.cpus, dump.info.cpus, strict=False)):
        raw = dump.read_memory(cpu.prefix + CKC_OFFSET, 8)
        vx_addr = int.from_bytes(dump.read_memory(cpu.prefix + VX_SAVE_AREA_ADDR_OFFSET, 8), "big")
        vx = None
        warning = None
        if vx_addr and vx_addr % VX_SA_ALIGN == 0:
            vx = read(vx_addr, VX_SA_SIZE)
            if vx is None:
                warning = f"Vector registers save area is beyond dump memory limit for CPU {i}"
        out.append(CpuNoteSource(regs, int.from_bytes(raw, "big"), vx, warning))
    return out


def elf_notes_for(dump: AnyDump) -> bytes:
    """The notes `zgetdump -f elf` writes, in its order: NT_PRPSINFO; per CPU the seven
    register notes, then NT_S390_VXRS_LOW/HIGH for every CPU when any CPU has vector
    registers (zeros for one without); VMCOREINFO when the memory holds the kernel's."""
    notes = [ec.Note(ec.CORE_NAME, ec.NT_PRPSINFO, ec.build_prpsinfo("vmlinux"))]
    sources = cpu_note_sources(dump)
    with_vx = any(c.vector_area is not None for c in sources)
    for i, c in enumerate(sources):
        notes += ec.cpu_notes(c.registers.with_(vxrs=None), i + 1, todcmp_field=c.todcmp_field)
        if with_vx:
            vx = c.vector_area or bytes(VX_SA_SIZE)
            notes.append(ec.Note(ec.LINUX_NAME, ec.NT_S390_VXRS_LOW, b"".join(vx[16 * r + 8 : 16 * r + 16] for r in range(16))))
            notes.append(ec.Note(ec.LINUX_NAME, ec.NT_S390_VXRS_HIGH, vx[256:512]))
    text = find_vmcoreinfo(_memory_reader(dump))
    if text is not None:
        notes.append(ec.Note(VMCOREINFO_NAME, ec.NT_VMCOREINFO, text))
    return ec.build_notes(notes)


def plan_elf(dump: AnyDump) -> tuple[ElfLayout, bytes]:
    notes = elf_notes_for(dump)
    ranges = dump.memory_ranges()
    phnum = 1 + len(ranges)
    notes_off = ec.EHDR_SIZE + phnum * ec.PHDR_SIZE
    pos = -(-(notes_off + len(notes)) // MEMORY_ALIGN) * MEMORY_ALIGN
    loads = []
    for start, length in ranges:
        loads.append((start, pos, length))
        pos += length
    return ElfLayout(notes_off, len(notes), loads, pos, len(dump.cpus)), notes


def write_elf(dump: AnyDump, out_path: Output, *, ui: UI | None = None, chunk: int = DEFAULT_CHUNK,
              allow_incomplete: bool = False, overwrite: bool = True, recheck: bool = True) -> ElfLayout:
    """Convert `dump` (s390 or ELF) to an s390x ELF core at out_path.  An incomplete dump is
    refused (IncompleteDumpError) unless allow_incomplete."""
    if not allow_incomplete:
        dump.require_complete()
    layout, notes = plan_elf(dump)
    head = bytearray(ec.build_ehdr(1 + len(layout.loads)))
    head += ec.build_phdr(ec.PT_NOTE, offset=layout.notes_offset, filesz=layout.notes_size, memsz=0)
    for paddr, off, size in layout.loads:
        head += ec.build_phdr(ec.PT_LOAD, offset=off, filesz=size, paddr=paddr, flags=ec.PF_R | ec.PF_W | ec.PF_X,
                              align=MEMORY_ALIGN)
    head += notes
    out = _output(out_path, overwrite)
    try:
        out.pwrite(bytes(head), 0)
        total = sum(size for _, _, size in layout.loads)
        with _progress(ui, "writing ELF core", total) as prog:
            for paddr, off, size in layout.loads:
                _copy_stream(dump, out, paddr, paddr + size, off, prog, chunk)
        if recheck:
            dump.recheck()  # a writer that ran during the copy makes it a mix: never published
        out.finish(layout.file_size)
    except BaseException:
        out.abort()
        raise
    return layout


def write_s390(dump: S390Dump, out_path: Output, *, ui: UI | None = None, chunk: int = DEFAULT_CHUNK,
               allow_incomplete: bool = False, overwrite: bool = True, recheck: bool = True) -> int:
    """Copy the dump (header, memory, end marker; nothing after it) to out_path.
    With allow_incomplete, copies whatever part of that range exists."""
    if not allow_incomplete:
        dump.require_complete()
    length = min(dump.dump_length, dump.source.size)
    out = _output(out_path, overwrite)
    try:
        with _progress(ui, "copying s390 dump", length) as prog:
            _copy_file(dump, out, length, prog, chunk)
        if recheck:
            dump.recheck()
        out.finish(length)
    except BaseException:
        out.abort()
        raise
    return length


def _copy_file(dump: S390Dump, out: OutputFile, length: int, progress: ByteProgress | None, chunk: int) -> None:
    """Raw dump bytes [0, length) to OUT, zero chunks left as holes."""
    _copy_pieces(dump.iter_file(0, length, chunk=chunk), out, 0, progress, chunk)


class _NullProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(ui: UI | None, text: str, total: int) -> AbstractContextManager[ByteProgress | None]:
    if ui is None:
        return _NullProgress()
    return ui.progress(text, total)


# --- reading -----------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    paddr: int
    offset: int
    filesz: int
    memsz: int


@dataclass
class ElfCore:
    """An s390x ELF core: PT_LOAD segments, notes and per-CPU registers.

    `read(addr, n)` reads absolute memory; bytes covered by no segment (or
    beyond p_filesz) read as zeros: `memory_map()` is that memory as a
    disk.io.MemoryMap.  Close with `close()` or use as a context manager."""

    path: str
    file_size: int
    segments: list[Segment]
    notes: list[ec.Note]
    cpus: list[CpuRegisters]
    _fd: int = field(default=-1, repr=False)
    _memory: MemoryMap | None = field(default=None, repr=False)

    @property
    def memory_end(self) -> int:
        return max((s.paddr + s.memsz for s in self.segments), default=0)

    def memory_map(self, *, error: type[ZiplDumpError] = FormatError, owner: bool = False) -> MemoryMap:
        """The file-backed part of every PT_LOAD at its address (the rest is zeros),
        read through this core's descriptor; with `owner`, closing the map closes the core."""
        if self._fd < 0:
            raise ValueError("ElfCore was read without keep_open=True")
        ranges = [
            (s.paddr, s.filesz, RangeSource.window(self._fd, s.offset, s.filesz, path=self.path, name=f"{self.path} PT_LOAD at 0x{s.offset:x}"))
            for s in self.segments
        ]
        return MemoryMap(ranges, name=f"{self.path} memory", error=error, closes=[self] if owner else ())

    def read(self, addr: int, length: int) -> bytes:
        out = bytearray(length)
        self.readinto(addr, out)
        return bytes(out)

    def readinto(self, addr: int, buf: bytearray | memoryview) -> None:
        if self._memory is None:
            self._memory = self.memory_map()
        self._memory.readinto_at(addr, buf)

    def close(self) -> None:
        self._memory = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ElfCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_elf_core(path: str | os.PathLike[str], *, ckc_encoding: str = "auto", keep_open: bool = False) -> ElfCore:
    """Read program headers (through e_phoff), PT_LOAD segments and CPU notes.

    Returns an ElfCore whose `segments` are (paddr, file offset, filesz, memsz)
    and `cpus` the CpuRegisters in note order.  Every PT_LOAD must lie inside the
    file.  See formats.elfcore.cpus_from_notes for ckc_encoding.  With
    keep_open the file stays open for `read()`."""
    p = os.fspath(path)
    fd = open_input(p, block_device=True)
    try:
        size = os.fstat(fd).st_size
        eh = ec.parse_ehdr(pread_bytes(fd, ec.EHDR_SIZE, 0, where=p))
        phoff, phnum = eh["e_phoff"], eh["e_phnum"]
        if phnum == 0:
            raise FormatError("no program headers", where=f"{p} ELF header field e_phnum")
        if phoff + phnum * ec.PHDR_SIZE > size:
            raise FormatError(
                f"program headers 0x{phoff:x}+{phnum}*56 run past the file end 0x{size:x}", where=f"{p} ELF header field e_phoff"
            )
        raw = pread_bytes(fd, phnum * ec.PHDR_SIZE, phoff, where=p)
        segments: list[Segment] = []
        notes: list[ec.Note] = []
        notes_read = 0
        for i in range(phnum):
            ph = ec.ProgramHeader.parse(raw[i * ec.PHDR_SIZE : (i + 1) * ec.PHDR_SIZE])
            where = f"{p} program header {i} (file offset 0x{phoff + i * ec.PHDR_SIZE:x})"
            if ph.p_type in (ec.PT_LOAD, ec.PT_NOTE) and ph.p_offset + ph.p_filesz > size:
                raise FormatError(
                    f"segment 0x{ph.p_offset:x}+0x{ph.p_filesz:x} runs past the file end 0x{size:x} (truncated core?)", where=where
                )
            if ph.p_type == ec.PT_LOAD:
                if ph.p_paddr + ph.p_memsz > ADDRESS_SPACE:
                    raise FormatError(
                        f"segment 0x{ph.p_paddr:x}+0x{ph.p_memsz:x} ends past the 64-bit address space", where=f"{where} field p_paddr"
                    )
                if ph.p_filesz > ph.p_memsz:
                    raise FormatError(f"p_filesz 0x{ph.p_filesz:x} > p_memsz 0x{ph.p_memsz:x}", where=where)
                if ph.p_memsz:
                    segments.append(Segment(ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz))
            elif ph.p_type == ec.PT_NOTE:
                # Bounded over all PT_NOTE headers: many headers naming the same
                # region must not multiply the reading.
                notes_read += ph.p_filesz
                if notes_read > MAX_NOTES_SIZE:
                    raise FormatError(
                        f"PT_NOTE segments add up to {notes_read} bytes, more than the {MAX_NOTES_SIZE}-byte bound", where=where
                    )
                notes += ec.parse_notes(
                    pread_bytes(fd, ph.p_filesz, ph.p_offset, where=p), where=where, base=ph.p_offset, max_notes=ec.MAX_NOTES - len(notes)
                )
        ordered = sorted(segments, key=lambda s: s.paddr)
        for a, b in pairwise(ordered):
            if a.paddr + a.memsz > b.paddr:
                raise FormatError(f"PT_LOAD segments at 0x{a.paddr:x} and 0x{b.paddr:x} overlap", where=p)
        cpus = ec.cpus_from_notes(notes, ckc_encoding=ckc_encoding, where=p)
        core = ElfCore(p, size, segments, notes, cpus, fd if keep_open else -1)
        if not keep_open:
            os.close(fd)
        return core
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise


# --- ELF -> s390 ---------------------------------------------------------------------
def write_s390_from_elf(core: ElfCore | ElfDump, out_path: Output, *, ui: UI | None = None, tod: int = 0,
                        chunk: int = DEFAULT_CHUNK, overwrite: bool = True) -> int:
    """Write an s390 standalone dump from an ELF core opened with keep_open=True
    (like `zgetdump -f s390`).

    Memory is [0, end of the highest PT_LOAD rounded up to 4 KiB) with holes as
    zeros.  lc_vec lists the NT_S390_PREFIX values in note order; each CPU's
    registers are stored into its save area at prefix + 0x1200 (register fields
    only, pads keep memory; CKC >> 8 as the machine stores it, unlike zgetdump,
    which copies QEMU's unshifted note).  CPUs are listed only when every
    prefix + 0x2000 fits the memory, as readers use all or none.  Header:
    dump_level 4 (tool value), `tod` in header and end marker (0 = unknown).
    Returns the file size."""
    from zipldump.formats.lowcore import LOWCORE_SIZE, SAVE_AREA_OFFSET, SAVE_AREA_SIZE

    mem_size = -(-core.memory_end // sd.PAGE_SIZE) * sd.PAGE_SIZE
    if mem_size == 0:
        raise FormatError("the ELF core has no memory (no PT_LOAD)", where=core.path)
    if mem_size > sd.MAX_MEM_SIZE:
        segments: Sequence[Segment | Load] = core.segments
        top = max(segments, key=lambda s: s.paddr + s.memsz)
        raise FormatError(
            f"memory ends at 0x{core.memory_end:x} (PT_LOAD at p_paddr 0x{top.paddr:x}, p_memsz 0x{top.memsz:x}), "
            f"beyond what an s390 dump header can describe (0x{sd.MAX_MEM_SIZE:x})",
            where=f"{core.path} PT_LOAD at file offset 0x{top.offset:x}",
        )
    cpus = core.cpus
    if len(cpus) > sd.MAX_CPUS:
        raise FormatError(
            f"{len(cpus)} NT_PRSTATUS notes: more CPUs than an s390 dump header lists ({sd.MAX_CPUS})", where=f"{core.path} PT_NOTE"
        )
    if any(c.prefix + LOWCORE_SIZE > mem_size for c in cpus):
        cpus = []
    header = sd.build_header(mem_size, prefixes=[c.prefix for c in cpus], tod=tod, dump_level=sd.DUMP_LEVEL_TOOLS)
    out = _output(out_path, overwrite)
    try:
        out.pwrite(header, 0)
        buf = bytearray(chunk)
        zero = bytes(chunk)
        # Only the file-backed parts of the segments and the CPUs' save areas are
        # read: the rest of the memory is zeros and stays a hole, so the work
        # follows the file's size, not the (possibly absurd) addresses in its
        # program headers.  Writes ascend, so OUT may be a stream.
        areas = [(c.prefix + SAVE_AREA_OFFSET, c) for c in cpus]
        spans = _merge(_backed_ranges(core.segments) + [(at, at + SAVE_AREA_SIZE) for at, _ in areas])
        with _progress(ui, "writing s390 dump", mem_size) as prog:
            done = 0
            for lo, hi in spans:
                for addr in range(lo, hi, chunk):
                    n = min(chunk, hi - addr)
                    view = memoryview(buf)[:n]
                    core.readinto(addr, view)
                    for at, cpu in areas:
                        _overlay(view, addr, at, cpu)
                    if (buf != zero) if n == chunk else (bytes(view) != zero[:n]):
                        out.pwrite(view, sd.HEADER_SIZE + addr)
                    if prog is not None:
                        prog.advance(n)
                    done += n
            if prog is not None and mem_size > done:
                prog.advance(mem_size - done)
        out.pwrite(sd.build_end_marker(tod), sd.HEADER_SIZE + mem_size)
        size = sd.HEADER_SIZE + mem_size + sd.END_MARKER_SIZE
        if isinstance(core, ElfDump):
            core.recheck()  # a dump partition rewritten during the copy: never published
        out.finish(size)
    except BaseException:
        out.abort()
        raise
    return size


def _overlay(view: memoryview, addr: int, at: int, cpu: CpuRegisters) -> None:
    """Store `cpu`'s registers into the part of its save area (at `at`) that `view` (memory at `addr`) holds."""
    from zipldump.formats.lowcore import SAVE_AREA_SIZE, overlay_save_area

    lo, hi = max(addr, at), min(addr + len(view), at + SAVE_AREA_SIZE)
    if lo >= hi:
        return
    area = bytearray(SAVE_AREA_SIZE)
    area[lo - at : hi - at] = view[lo - addr : hi - addr]
    view[lo - addr : hi - addr] = overlay_save_area(bytes(area), cpu)[lo - at : hi - at]


def _backed_ranges(segments: Sequence[Segment | Load]) -> list[tuple[int, int]]:
    """Sorted, merged [start, end) address ranges that some PT_LOAD's file data covers."""
    return _merge([(s.paddr, s.paddr + s.filesz) for s in segments if s.filesz])


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
