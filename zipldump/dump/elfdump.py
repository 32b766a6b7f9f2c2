"""ELF dumps wherever they lie: an s390x ELF core read from any ByteSource, and `open_dump_any`.

zfcpdump 3.0 (s390-tools zfcpdump_part.c) copies /proc/vmcore, an ELF core,
to the dump partition; zgetdump reads it there as "Dump format: elf"
(s390-dump-format.md §7.5, verified-facts.md).  `ElfDump(source)` reads such a
core from a file, a dump partition (dump.locate's range) or a `dump.N` file,
with the accessors the dump tools use on an S390Dump (`info`, `cpus`,
`memory_ranges`, `iter_memory`, `read_memory`, `require_complete`, `recheck`),
so `dumpinfo` and `getdump --format s390|elf` take either format.

Completeness as zgetdump's ELF reader (zdump/dfi_elf.c) judges it: every
PT_LOAD's file bytes lie inside the source.  A partition keeps the writer's
"zfcpdump busy" marker where the ELF header belongs until the copy is done
(dump.locate reports that as not complete).  Program headers and notes that do
not fit are damage, a FormatError, as in dump.elf.read_elf_core.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from zipldump.disk.io import ByteSource, MemoryMap, RangeSource
from zipldump.dump.s390 import DEFAULT_CHUNK, S390Dump
from zipldump.dump.vmcoreinfo import Utsname, find_utsname, find_vmcoreinfo
from zipldump.errors import DumpChangedError, FormatError, IncompleteDumpError
from zipldump.formats import elfcore as ec
from zipldump.formats.lowcore import CpuRegisters

MAX_NOTES_SIZE = 64 << 20
ADDRESS_SPACE = 1 << 64
FINGERPRINT = 4096  # the ELF header page: zfcpdump writes it last


class _Window:
    """`length` bytes of another ByteSource from `offset` (a PT_LOAD's file data)."""

    def __init__(self, base: ByteSource, offset: int, length: int, name: str) -> None:
        self.base, self.offset, self.size, self.name = base, offset, length, name

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = max(0, min(len(mv), self.size - offset))
        return self.base.readinto_at(self.offset + offset, mv[:n]) if n else 0

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Load:
    paddr: int
    offset: int
    filesz: int
    memsz: int


@dataclass
class ElfCpu:
    index: int
    registers: CpuRegisters
    notes: dict[int, bytes]  # this CPU's raw notes by type (what -f elf copies)

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "prefix": f"0x{self.registers.prefix:08x}", "registers": self.registers.to_json()}


@dataclass
class ElfDumpInfo:
    """What `dumpinfo` reports for an ELF dump."""

    source: str
    file_size: int
    version: int  # e_ident[EI_VERSION], zgetdump's "Version"
    loads: list[Load]
    notes: list[ec.Note]
    cpus: list[ElfCpu]
    complete: bool
    incomplete_reason: str | None
    utsname: Utsname | None = None
    vmcoreinfo: bytes | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def memory_end(self) -> int:
        return max((s.paddr + s.memsz for s in self.loads), default=0)

    def memory_map(self) -> list[tuple[int, int]]:
        """(start, end inclusive) of the memory, adjacent PT_LOADs merged (zgetdump -i's map)."""
        out: list[tuple[int, int]] = []
        for s in sorted(self.loads, key=lambda s: s.paddr):
            if out and out[-1][1] + 1 == s.paddr:
                out[-1] = (out[-1][0], s.paddr + s.memsz - 1)
            else:
                out.append((s.paddr, s.paddr + s.memsz - 1))
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": "elf",
            "file_size": self.file_size,
            "complete": self.complete,
            "incomplete_reason": self.incomplete_reason,
            "version": self.version,
            "memory_end": self.memory_end,
            "segments": [{"paddr": s.paddr, "offset": s.offset, "filesz": s.filesz, "memsz": s.memsz} for s in self.loads],
            "notes": [{"name": n.name, "type": n.type_name, "size": len(n.desc)} for n in self.notes],
            "cpus": [c.to_json() for c in self.cpus],
            "utsname": None if self.utsname is None else vars(self.utsname),
            "vmcoreinfo_size": None if self.vmcoreinfo is None else len(self.vmcoreinfo),
            "warnings": self.warnings,
        }


_CPU_NOTES = (ec.NT_PRSTATUS, ec.NT_FPREGSET, ec.NT_S390_TIMER, ec.NT_S390_TODCMP, ec.NT_S390_TODPREG, ec.NT_S390_CTRS,
              ec.NT_S390_PREFIX, ec.NT_S390_VXRS_LOW, ec.NT_S390_VXRS_HIGH)


class ElfDump:
    """An s390x ELF core read from `source` (a ByteSource or a path)."""

    format = "elf"

    def __init__(self, source: ByteSource | str | os.PathLike[str], *, recheck: Callable[[], None] | None = None) -> None:
        self._also_recheck = recheck
        self._owns = isinstance(source, (str, os.PathLike))
        self.source: ByteSource = RangeSource(source) if isinstance(source, (str, os.PathLike)) else source
        try:
            self.info = self._read()
            self._memory = MemoryMap(
                [(s.paddr, s.filesz, _Window(self.source, s.offset, s.filesz, f"{self.source.name} PT_LOAD at 0x{s.offset:x}"))
                 for s in self.info.loads if s.filesz],
                name=f"{self.source.name} memory", error=IncompleteDumpError,
            )
            if self.info.complete:
                self.info.vmcoreinfo = find_vmcoreinfo(self._read_mem_rc)
                self.info.utsname = find_utsname(self._read_mem_rc, self.info.vmcoreinfo)
            self._seen = self._fingerprint()
        except BaseException:
            self.close()
            raise

    # -- reading the core -----------------------------------------------------
    def _bytes(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        return bytes(buf[: self.source.readinto_at(offset, buf)])

    def _read(self) -> ElfDumpInfo:
        name, size = self.source.name, self.source.size
        head = self._bytes(0, ec.EHDR_SIZE)
        try:
            eh = ec.parse_ehdr(head)
        except FormatError as exc:
            raise type(exc)(exc.message, where=f"{name} {exc.where or ''}".strip()) from exc
        phoff, phnum = eh["e_phoff"], eh["e_phnum"]
        if phnum == 0:
            raise FormatError("no program headers", where=f"{name} ELF header field e_phnum")
        if phoff + phnum * ec.PHDR_SIZE > size:
            raise FormatError(f"program headers 0x{phoff:x}+{phnum}*56 run past the end 0x{size:x}", where=f"{name} ELF header field e_phoff")
        raw = self._bytes(phoff, phnum * ec.PHDR_SIZE)
        loads: list[Load] = []
        notes: list[ec.Note] = []
        notes_read = 0
        reason: str | None = None
        for i in range(phnum):
            ph = ec.ProgramHeader.parse(raw[i * ec.PHDR_SIZE : (i + 1) * ec.PHDR_SIZE])
            where = f"{name} program header {i} (offset 0x{phoff + i * ec.PHDR_SIZE:x})"
            if ph.p_type == ec.PT_LOAD:
                if ph.p_paddr + ph.p_memsz > ADDRESS_SPACE:
                    raise FormatError(f"segment 0x{ph.p_paddr:x}+0x{ph.p_memsz:x} ends past the 64-bit address space", where=f"{where} field p_paddr")
                if ph.p_filesz > ph.p_memsz:
                    raise FormatError(f"p_filesz 0x{ph.p_filesz:x} > p_memsz 0x{ph.p_memsz:x}", where=where)
                if ph.p_offset + ph.p_filesz > size and reason is None:
                    reason = f"PT_LOAD {i} at 0x{ph.p_offset:x}+0x{ph.p_filesz:x} runs past the end 0x{size:x}"
                if ph.p_memsz:
                    loads.append(Load(ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz))
            elif ph.p_type == ec.PT_NOTE:
                if ph.p_offset + ph.p_filesz > size:
                    raise FormatError(f"PT_NOTE 0x{ph.p_offset:x}+0x{ph.p_filesz:x} runs past the end 0x{size:x}", where=where)
                notes_read += ph.p_filesz
                if notes_read > MAX_NOTES_SIZE:
                    raise FormatError(f"PT_NOTE segments add up to {notes_read} bytes, more than {MAX_NOTES_SIZE}", where=where)
                notes += ec.parse_notes(self._bytes(ph.p_offset, ph.p_filesz), where=where, base=ph.p_offset,
                                        max_notes=ec.MAX_NOTES - len(notes))
        for a, b in pairwise(sorted(loads, key=lambda s: s.paddr)):
            if a.paddr + a.memsz > b.paddr:
                raise FormatError(f"PT_LOAD segments at 0x{a.paddr:x} and 0x{b.paddr:x} overlap", where=name)
        regs = ec.cpus_from_notes(notes, where=name)
        groups: list[dict[int, bytes]] = []
        for n in notes:
            if n.type == ec.NT_PRSTATUS:
                groups.append({})
            if groups and n.type in _CPU_NOTES:
                groups[-1].setdefault(n.type, n.desc)
        cpus = [ElfCpu(i, r, g) for i, (r, g) in enumerate(zip(regs, groups, strict=True))]
        return ElfDumpInfo(name, size, head[6], loads, notes, cpus, reason is None, reason)

    def _read_mem_rc(self, addr: int, n: int) -> bytes | None:
        """Memory bytes, or None when a part lies outside every PT_LOAD (zgetdump's dfi_mem_read_rc)."""
        end = addr + n
        covered = addr
        for s in sorted(self.info.loads, key=lambda s: s.paddr):
            if s.paddr <= covered < s.paddr + s.memsz:
                covered = s.paddr + s.memsz
        if covered < end:
            return None
        return self.read_memory(addr, n)

    def _fingerprint(self) -> bytes:
        return self._bytes(0, min(FINGERPRINT, self.source.size))

    def recheck(self) -> None:
        if self._fingerprint() != self._seen:
            raise DumpChangedError("the ELF header page changed while the dump was read: the copy may mix two dumps", where=self.source.name)
        if self._also_recheck is not None:
            self._also_recheck()

    # -- accessors (as S390Dump) ------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.info.complete

    @property
    def cpus(self) -> list[CpuRegisters]:
        return [c.registers for c in self.info.cpus]

    @property
    def mem_size(self) -> int:
        return self.info.memory_end

    @property
    def memory_end(self) -> int:
        return self.info.memory_end

    @property
    def path(self) -> str:
        return self.source.name

    @property
    def segments(self) -> list[Load]:
        return self.info.loads

    @property
    def dump_length(self) -> int:
        ends = [s.offset + s.filesz for s in self.info.loads]
        return max([ec.EHDR_SIZE, *ends])

    def require_complete(self) -> None:
        if not self.info.complete:
            raise IncompleteDumpError(f"dump is not complete: {self.info.incomplete_reason}", where=self.source.name)

    def memory_ranges(self) -> list[tuple[int, int]]:
        return [(s.paddr, s.memsz) for s in sorted(self.info.loads, key=lambda s: s.paddr)]

    def readinto(self, addr: int, buf: bytearray | memoryview) -> None:
        self._memory.readinto_at(addr, buf)

    def read_memory(self, addr: int, length: int) -> bytes:
        buf = bytearray(length)
        self._memory.readinto_at(addr, buf)
        return bytes(buf)

    def iter_memory(self, start: int = 0, end: int | None = None, *, chunk: int = DEFAULT_CHUNK) -> Iterator[memoryview]:
        """Absolute memory [start, end) in chunks of one reused buffer (holes read as zeros)."""
        stop = self.mem_size if end is None else end
        buf = bytearray(min(chunk, max(stop - start, 1)))
        mv = memoryview(buf)
        pos = start
        while pos < stop:
            n = min(len(buf), stop - pos)
            self._memory.readinto_at(pos, mv[:n])
            yield mv[:n]
            pos += n

    def close(self) -> None:
        if self._owns:
            self.source.close()

    def __enter__(self) -> ElfDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


AnyDump = S390Dump | ElfDump


def open_dump_any(source: ByteSource | str | os.PathLike[str], *, recheck: Callable[[], None] | None = None) -> AnyDump:
    """The dump at `source` in whichever format its first bytes name (dump.s390.sniff_format)."""
    from zipldump.dump.s390 import sniff_format

    src: ByteSource = RangeSource(source) if isinstance(source, (str, os.PathLike)) else source
    owned = src is not source
    try:
        head = bytearray(16)
        n = src.readinto_at(0, head)
        if sniff_format(bytes(head[:n])) == "elf":
            dump: AnyDump = ElfDump(src, recheck=recheck)
        else:
            dump = S390Dump(src, recheck=recheck)
    except BaseException:
        if owned:
            src.close()
        raise
    dump._owns = owned
    return dump
