"""The simulated machine's real storage: the crashed system's memory plus an
overlay of the pages written after the crash.

`Storage(base, size)` never copies the base.  Pages written later (firmware
component loads, lowcore stores, SDIAS bounce buffers) live in a dict of 4 KiB
bytearrays, so RAM use is bounded by what was written, not by the memory size.
Reads copy whole runs from the base straight into the caller's buffer and patch
the overlay pages in; that keeps large sequential reads near memcpy speed.

`base` is anything with `readinto_original(addr, buf)` (a CrashedSystem); None
means zero-filled storage (a cleared machine).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Protocol

from zipldump.disk.io import zero_fill
from zipldump.errors import IplError

PAGE_SIZE = 4096
PAGE_SHIFT = 12


class MemorySource(Protocol):
    def readinto_original(self, addr: int, buf: memoryview) -> int: ...


class Storage:
    """Byte-addressable absolute storage of `size` bytes (addresses 0..size-1)."""

    def __init__(self, base: MemorySource | None, size: int) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise IplError(f"storage size {size} is not a positive multiple of {PAGE_SIZE}", where="storage")
        self.base = base
        self.size = size
        self._pages: dict[int, bytearray] = {}
        self._sorted: list[int] = []  # sorted keys of _pages, rebuilt lazily
        self._dirty = False

    # -- bookkeeping ----------------------------------------------------------
    @property
    def overlay_pages(self) -> int:
        """Number of pages written since the crash (RAM held by the overlay / 4 KiB)."""
        return len(self._pages)

    def written_pages(self) -> list[int]:
        """Page frame numbers of the written pages, ascending."""
        return list(self._keys())

    def _keys(self) -> list[int]:
        if self._dirty:
            self._sorted = sorted(self._pages)
            self._dirty = False
        return self._sorted

    def _check(self, addr: int, n: int, what: str) -> None:
        if addr < 0 or n < 0 or addr + n > self.size:
            raise IplError(
                f"{what} of {n} bytes at 0x{addr:x} is outside storage (size 0x{self.size:x})",
                where=f"absolute address 0x{addr:x}",
            )

    def _base_readinto(self, addr: int, mv: memoryview) -> None:
        if self.base is None:
            zero_fill(mv)
        else:
            self.base.readinto_original(addr, mv)

    # -- access ---------------------------------------------------------------
    def readinto(self, addr: int, buf: bytearray | memoryview) -> int:
        """Fill `buf` with storage bytes from `addr`; returns len(buf)."""
        mv = memoryview(buf).cast("B")
        n = len(mv)
        self._check(addr, n, "read")
        if n == 0:
            return 0
        end = addr + n
        pfn = addr >> PAGE_SHIFT
        if (end - 1) >> PAGE_SHIFT == pfn:  # inside one page (the SDIAS bounce buffer reads)
            page = self._pages.get(pfn)
            if page is not None:
                off = addr & (PAGE_SIZE - 1)
                mv[:] = memoryview(page)[off : off + n]
                return n
        keys = self._keys() if self._pages else ()
        lo = bisect_left(keys, addr >> PAGE_SHIFT) if keys else 0
        hi = bisect_right(keys, (end - 1) >> PAGE_SHIFT) if keys else 0
        if lo == hi:
            self._base_readinto(addr, mv)
            return n
        run = addr  # start of the not yet filled part
        for i in range(lo, hi):
            pfn = keys[i]
            pstart = pfn << PAGE_SHIFT
            s = max(pstart, addr)
            e = min(pstart + PAGE_SIZE, end)
            if s > run:
                self._base_readinto(run, mv[run - addr : s - addr])
            mv[s - addr : e - addr] = self._pages[pfn][s - pstart : e - pstart]
            run = e
        if run < end:
            self._base_readinto(run, mv[run - addr :])
        return n

    def read(self, addr: int, n: int) -> bytes:
        buf = bytearray(n)
        self.readinto(addr, buf)
        return bytes(buf)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` at `addr` (copy-on-write of the touched pages)."""
        src = memoryview(data).cast("B")
        n = len(src)
        self._check(addr, n, "write")
        if n == PAGE_SIZE and not addr & (PAGE_SIZE - 1) and (addr >> PAGE_SHIFT) in self._pages:
            self._pages[addr >> PAGE_SHIFT][:] = src  # a whole page written before (the SDIAS bounce buffer)
            return
        pos = 0
        while pos < n:
            a = addr + pos
            pfn = a >> PAGE_SHIFT
            off = a & (PAGE_SIZE - 1)
            take = min(PAGE_SIZE - off, n - pos)
            page = self._pages.get(pfn)
            if page is None:
                page = bytearray(PAGE_SIZE)
                if take != PAGE_SIZE:
                    self._base_readinto(pfn << PAGE_SHIFT, memoryview(page))
                self._pages[pfn] = page
                self._dirty = True
            page[off : off + take] = src[pos : pos + take]
            pos += take

    def clear(self) -> None:
        """Clear storage to zeros (the reset of a normal, non-dump load)."""
        self.base = None
        self._pages.clear()
        self._sorted = []
        self._dirty = False

    def fill(self, addr: int, n: int, byte: int = 0) -> None:
        """Store `n` copies of `byte` (e.g. zero-filled LOAD components)."""
        self._check(addr, n, "fill")
        chunk = bytes([byte]) * min(n, 1 << 20)
        pos = 0
        while pos < n:
            take = min(len(chunk), n - pos)
            self.write(addr + pos, memoryview(chunk)[:take])
            pos += take
