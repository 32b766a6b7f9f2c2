"""Streaming reader of s390 standalone dumps, with zgetdump's checks (s390-dump-format.md §3, §4.4, §8).

`S390Dump(source)` reads and checks the 4 KiB header, decides completeness from
the end marker, and reads each CPU's registers from its prefix page inside the
dump.  Memory is only ever streamed: `iter_memory()` yields views of one reused
buffer (default 4 MiB), `read_memory()` serves small reads.

A source is a disk.io ByteSource (`size`, `name`, `readinto_at(offset, buf) -> int`,
short only at the end): `FileSource` (disk.io.RangeSource) covers a file or a
byte range of a disk image (a dump partition), dump.locate's ExtFileSource
(a disk.io.RunSource) a file inside an ext2/3/4 file system.

Completeness (zgetdump 1.10+): the 16-byte end marker `DUMP_END` + TOD lies at
file offset 0x1000 + mem_size and its TOD is >= the header TOD.  Bytes after the
marker are never read (the rest of a dump partition).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from zipldump.disk.io import ByteSource, RangeSource
from zipldump.errors import (
    DumpChangedError,
    DumpError,
    FormatError,
    IncompleteDumpError,
    MagicError,
)
from zipldump.formats import s390dump as sd
from zipldump.formats.lowcore import (
    LOWCORE_SIZE,
    SAVE_AREA_OFFSET,
    SAVE_AREA_SIZE,
    CpuRegisters,
    parse_save_area,
)
from zipldump.jsonout import JsonMixin, jmeta, member, to_json

DEFAULT_CHUNK = 4 << 20

# A byte range of a file or device (a dump partition); the name of the public API.
FileSource = RangeSource


@dataclass
class CpuInfo(JsonMixin):
    index: int  # position in lc_vec
    prefix: int = field(metadata=jmeta("hex32", key="lc_vec_prefix"))  # lc_vec entry
    registers: CpuRegisters | None = field(metadata=jmeta(skip_none=True))  # None when unreadable (all-or-nothing rule, or truncated)


# dumpinfo's view of the header: effective values (defaults resolved) under zgetdump's names.
HEADER_JSON = (
    *map(member, ("version", "hdr_size", "dump_level", "page_size", "mem_size", "mem_start")),
    member("mem_end", "end"),
    member("num_pages", "pages"),
    member("tod", fmt="hex64"),
    member("created", lambda h: _tod_text(h.tod)),
    member("cpu_id", fmt="x"),
    member("arch"),
    member("build_arch"),
    member("mem_size_real", "real_mem"),
    member("cpu_cnt", "cpus"),
    member("real_cpu_cnt", "real_cpus"),
)


@dataclass
class DumpInfo(JsonMixin):
    """What `dumpinfo` reports."""

    source: str
    file_size: int
    header: sd.DumpHeader
    complete: bool
    incomplete_reason: str | None
    end_marker_tod: int | None
    cpus: list[CpuInfo]
    registers_available: bool
    registers_reason: str | None
    warnings: list[str] = field(default_factory=list)

    JSON = (
        member("source"),
        member("format", lambda _: "s390"),
        *map(member, ("file_size", "complete", "incomplete_reason")),
        member("header", lambda i: to_json(i.header, HEADER_JSON)),
        member("end_marker_tod", fmt="hex64"),
        member("ended", lambda i: _tod_text(i.end_marker_tod) if i.end_marker_tod is not None and i.complete else None),
        *map(member, ("registers_available", "registers_reason", "cpus", "warnings")),
    )


@dataclass(frozen=True)
class Completeness:
    """zgetdump's verdict on a dump's end (§3): `reason` is None when complete."""

    reason: str | None
    tod: int | None  # the end marker's TOD, when a DUMP_END marker is there
    raw: bytes  # what lies where the end marker belongs (up to 16 bytes)

    @property
    def complete(self) -> bool:
        return self.reason is None


def completeness(header: sd.DumpHeader, source: ByteSource) -> Completeness:
    """The one completeness rule (zgetdump 1.10+): the 16-byte end marker `DUMP_END` + TOD
    at file offset 0x1000 + mem_size, its TOD >= the header TOD.  Used by S390Dump and --verify."""
    size = source.size
    em_off = header.end_marker_offset
    buf = bytearray(sd.END_MARKER_SIZE)
    raw = bytes(buf[: source.readinto_at(em_off, buf)]) if em_off < size else b""
    if size < em_off:
        return Completeness(f"truncated: the file ends at 0x{size:x}, memory ends at 0x{em_off:x}", None, raw)
    if size < em_off + sd.END_MARKER_SIZE:
        return Completeness(f"no end marker: the file ends at 0x{size:x}, the 16-byte end marker starts at 0x{em_off:x}", None, raw)
    tod = sd.parse_end_marker(raw)
    if tod is None:
        return Completeness(f"no DUMP_END end marker at 0x{em_off:x} (found {raw[:8]!r})", None, raw)
    if tod < header.tod:
        return Completeness(
            f"end marker TOD 0x{tod:016x} at 0x{em_off + 8:x} is earlier than the header TOD 0x{header.tod:016x}", tod, raw
        )
    return Completeness(None, tod, raw)


def sniff_format(head: bytes) -> str | None:
    """The dump format the first bytes of a dump name: "s390", "s390_ext", "lkcd", "elf",
    "busy" (a dump writer's unfinished marker) or None."""
    if head[:4] == b"\x7fELF":
        return "elf"
    if head[: len(sd.BUSY_MARKER)] == sd.BUSY_MARKER:
        return "busy"
    magic = int.from_bytes(head[:8].ljust(8, b"\0"), "big")
    return {sd.DUMP_MAGIC: "s390", sd.DUMP_MAGIC_EXT: "s390_ext", sd.LKCD_MAGIC: "lkcd"}.get(magic)


def _tod_text(tod: int | None) -> str | None:
    if not tod:
        return None  # 0 = unknown
    try:
        return sd.tod_to_datetime(tod).isoformat()
    except (OverflowError, ValueError, OSError):
        return None


class S390Dump:
    """An s390 standalone dump read from `source` (a ByteSource or a path)."""

    def __init__(self, source: ByteSource | str | os.PathLike[str], *, recheck: Callable[[], None] | None = None) -> None:
        self._also_recheck = recheck  # the container's own proof (partition checksum, dump.N block map)
        self._owns = isinstance(source, (str, os.PathLike))  # a path: this object opens and closes it
        self.source: ByteSource = FileSource(source) if isinstance(source, (str, os.PathLike)) else source
        try:
            self.header = self._read_header()
            self.info = self._check()
            self._seen = self._fingerprint()
        except BaseException:
            self.close()
            raise

    def _fingerprint(self) -> tuple[bytes, bytes]:
        """Header and end-marker bytes: every dump writer rewrites both (busy marker first, header last)."""
        em = self.header.end_marker_offset
        return self._read_exact(0, sd.HEADER_SIZE), self._read_exact(em, sd.END_MARKER_SIZE) if em < self.source.size else b""

    def recheck(self) -> None:
        """DumpChangedError when header or end marker differ from what was read when the dump was opened."""
        if self._fingerprint() != self._seen:
            raise DumpChangedError(
                "the dump header or end marker changed while the dump was read: the copy may mix two dumps", where=self.source.name
            )
        if self._also_recheck is not None:
            self._also_recheck()

    # -- context manager ------------------------------------------------------
    def close(self) -> None:
        if self._owns:
            self.source.close()

    def __enter__(self) -> S390Dump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- header ---------------------------------------------------------------
    def _read_exact(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        got = self.source.readinto_at(offset, buf)
        return bytes(buf[:got])

    def _read_header(self) -> sd.DumpHeader:
        name = self.source.name
        if self.source.size < sd.HEADER_SIZE:
            raise DumpError(
                f"no valid dump: {self.source.size} bytes, an s390 dump header needs {sd.HEADER_SIZE}", where=f"{name} offset 0x0"
            )
        raw = self._read_exact(0, sd.HEADER_SIZE)
        magic = int.from_bytes(raw[:8], "big")
        if magic == sd.DUMP_MAGIC_EXT:
            raise DumpError("extended (segmented) s390_ext dump format is not supported", where=f"{name} offset 0x0 field magic")
        if magic == sd.LKCD_MAGIC:
            raise MagicError("this is an LKCD dump (zfcpdump 1.x/2.x), not the s390 format", where=f"{name} offset 0x0 field magic")
        if raw[:4] == b"\x7fELF":
            raise MagicError("this is an ELF core, not the s390 format", where=f"{name} offset 0x0")
        try:
            hdr = sd.parse_header(raw)
        except FormatError as exc:
            raise type(exc)(exc.message, where=f"{name} {exc.where or ''}".strip()) from exc
        if hdr.mem_size == 0:
            raise DumpError("mem_size is 0", where=f"{name} offset 0x18 field mem_size")
        if hdr.version >= sd.HEADER_VERSION and hdr.cpus > sd.MAX_CPUS:
            raise DumpError(f"cpu_cnt {hdr.cpus} exceeds {sd.MAX_CPUS}", where=f"{name} offset 0x5d field cpu_cnt")
        return hdr

    def _check(self) -> DumpInfo:
        h = self.header
        name = self.source.name
        size = self.source.size
        warnings: list[str] = []

        def warn_if(cond: bool, text: str) -> None:
            if cond:
                warnings.append(text)

        # Fields zgetdump 2.16 ignores but other readers use (§2.1, §8.7).
        warn_if(h.hdr_size != sd.HEADER_SIZE, f"hdr_size is 0x{h.hdr_size:x}, not 0x1000 (offset 0xc)")
        warn_if(h.page_size != sd.PAGE_SIZE, f"page_size is {h.page_size}, not 4096 (offset 0x14)")
        warn_if(h.mem_start != 0, f"mem_start is 0x{h.mem_start:x}, not 0 (offset 0x20)")
        warn_if(h.end != h.mem_size, f"mem_end 0x{h.end:x} differs from mem_size 0x{h.mem_size:x} (offset 0x28)")
        warn_if(h.pages != h.mem_size // sd.PAGE_SIZE, f"num_pages {h.pages} is not mem_size/4096 (offset 0x30)")
        warn_if(h.mem_size % sd.PAGE_SIZE != 0, f"mem_size 0x{h.mem_size:x} is not a multiple of 4096 (offset 0x18)")
        warn_if(h.arch != sd.ARCH_S390X, f"arch {h.arch} is not 2 (s390x): CPU registers are not read (offset 0x48)")
        warn_if(h.build_arch not in (0, sd.ARCH_S390X), f"build_arch {h.build_arch} is neither 0 nor 2 (offset 0x50)")
        warn_if(
            h.zlib_version_s390 != 0 or h.zlib_entry_size != 0, "bytes 0x61-0x65 (zlib fields of the extended format) are not zero"
        )
        warn_if(h.version < sd.HEADER_VERSION, f"header version {h.version} < 5: no CPU information")

        end = completeness(h, self.source)
        reason, marker_tod, complete = end.reason, end.tod, end.complete

        # CPUs: all-or-nothing (§4.4 rule 5).
        cpus: list[CpuInfo] = []
        regs_ok = False
        regs_reason: str | None = None
        prefixes = h.prefixes if h.version >= sd.HEADER_VERSION else ()
        if not prefixes:
            regs_reason = "no CPUs in the header" if h.version >= sd.HEADER_VERSION else f"header version {h.version} has no CPU list"
        elif h.arch != sd.ARCH_S390X:
            regs_reason = "31-bit (ESA/390) save areas are not supported"
        else:
            bad = [(i, p) for i, p in enumerate(prefixes) if p + LOWCORE_SIZE > h.mem_size]
            if bad:
                i, p = bad[0]
                regs_reason = (
                    f"lc_vec[{i}] = 0x{p:x}: prefix + 0x2000 lies beyond memory (0x{h.mem_size:x}), "
                    "so no CPU's registers are used (offset 0x{:x})".format(sd.LC_VEC_OFFSET + 4 * i)
                )
            else:
                regs_ok = True
        first_at: dict[int, int] = {}
        for i, p in enumerate(prefixes):
            at = sd.LC_VEC_OFFSET + 4 * i
            if p in first_at:
                warnings.append(f"lc_vec[{i}] = 0x{p:x} repeats lc_vec[{first_at[p]}]: two CPUs share a prefix page (offset 0x{at:x})")
            else:
                first_at[p] = i
            if p % LOWCORE_SIZE:
                warnings.append(f"lc_vec[{i}] = 0x{p:x} is not 8 KiB aligned, as a z/Architecture prefix is (offset 0x{at:x})")
        for i, p in enumerate(prefixes):
            regs = None
            if regs_ok:
                off = sd.HEADER_SIZE + p + SAVE_AREA_OFFSET
                raw = self._read_exact(off, SAVE_AREA_SIZE)
                if len(raw) == SAVE_AREA_SIZE:
                    regs = parse_save_area(raw)
                else:
                    warnings.append(f"CPU {i}: save area at file offset 0x{off:x} is past the end of the file")
            cpus.append(CpuInfo(i, p, regs))
        if regs_ok and any(c.registers is None for c in cpus):
            regs_ok = False
            regs_reason = "a save area lies in the truncated part of the file"
        return DumpInfo(
            source=name,
            file_size=size,
            header=h,
            complete=complete,
            incomplete_reason=reason,
            end_marker_tod=marker_tod,
            cpus=cpus,
            registers_available=regs_ok,
            registers_reason=None if regs_ok else regs_reason,
            warnings=warnings,
        )

    # -- accessors -------------------------------------------------------------
    @property
    def mem_size(self) -> int:
        return self.header.mem_size

    @property
    def complete(self) -> bool:
        return self.info.complete

    @property
    def cpus(self) -> list[CpuRegisters]:
        """Registers of every CPU in lc_vec order (empty when unavailable)."""
        if not self.info.registers_available:
            return []
        return [c.registers for c in self.info.cpus if c.registers is not None]

    @property
    def dump_length(self) -> int:
        """Bytes of the complete dump file: header, memory, end marker."""
        return self.header.end_marker_offset + sd.END_MARKER_SIZE

    def require_complete(self) -> None:
        if not self.info.complete:
            raise IncompleteDumpError(f"dump is not complete: {self.info.incomplete_reason}", where=self.source.name)

    def memory_ranges(self) -> list[tuple[int, int]]:
        """(start, length) of the memory the dump holds: one range for this format."""
        return [(0, self.header.mem_size)]

    def iter_memory(self, start: int = 0, end: int | None = None, *, chunk: int = DEFAULT_CHUNK) -> Iterator[memoryview]:
        """Absolute memory [start, end) in chunks.  Each view is valid only until
        the next one is produced (one buffer is reused)."""
        yield from self.iter_file(sd.HEADER_SIZE + start, sd.HEADER_SIZE + (self.mem_size if end is None else end), chunk=chunk)

    def iter_file(self, start: int, end: int, *, chunk: int = DEFAULT_CHUNK) -> Iterator[memoryview]:
        """Raw dump bytes [start, end) in chunks (reused buffer); IncompleteDumpError
        naming the offset when the source ends early."""
        if start < 0 or end < start:
            raise ValueError(f"bad range {start:#x}-{end:#x}")
        buf = bytearray(min(chunk, max(end - start, 1)))
        mv = memoryview(buf)
        pos = start
        while pos < end:
            n = min(len(buf), end - pos)
            got = self.source.readinto_at(pos, mv[:n])
            if got < n:
                raise IncompleteDumpError(
                    f"dump ends at file offset 0x{pos + got:x}, expected data up to 0x{end:x}", where=self.source.name
                )
            yield mv[:n]
            pos += n

    def read_memory(self, addr: int, length: int) -> bytes:
        if addr < 0 or addr + length > self.mem_size:
            raise DumpError(
                f"memory 0x{addr:x}-0x{addr + length:x} is outside the dump (mem_size 0x{self.mem_size:x})", where=self.source.name
            )
        return b"".join(bytes(c) for c in self.iter_memory(addr, addr + length, chunk=max(length, 1)))


def open_dump(source: ByteSource | str | os.PathLike[str]) -> S390Dump:
    return S390Dump(source)
