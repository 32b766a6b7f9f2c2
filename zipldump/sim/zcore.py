"""The dump kernel's zcore driver (Linux drivers/s390/char/zcore.c, the
3.10-4.4 generation that has all four debugfs files), s390-dump-format.md §5.

`Zcore(machine, sdias)` runs `zcore_init` (§5.2): checks the HSA through SDIAS,
reads the architecture byte and the boot CPU's save area from the HSA, stops
and stores the status of every other CPU (§4.3), builds the version-5 dump
header (§2, §4.4) and looks up the re-IPL block (§5.5).  Then:

* `.mem` - zcore/mem as a file object (`ZcoreMem`, io.RawIOBase): the 4 KiB
  header, then memory by absolute address: below the HSA size through SDIAS
  (block = page + 2, one request per `blocks_per_request` blocks into a bounce
  buffer at the top of the dump kernel's memory), above it from storage; every
  save area's register fields are laid over the bytes read (§4.4).  No end
  marker (§3).  Closing it releases the HSA (§5.3).
* `.memmap()` - zcore/memmap text (§5.4), memblock style (one 34-byte record
  per memory range, no terminator) or `memmap_style="chunks"` (plus the
  terminating zero-size record).
* `.reipl` - zcore/reipl: any write re-IPLs the crashed system through DIAG 308
  set (5) + load clear (3) when a valid block was found, else does nothing.
* `.hsa` - zcore/hsa: read "%lx\\n" of the HSA size ("0\\n" once released);
  write "0" at offset 0 releases the HSA.

Errors carry the errno the kernel would return in their `errno` field (EINVAL, EIO,
EFAULT, ENODATA, ENODEV, EPIPE); lseek(SEEK_END) is refused with EINVAL as in
the kernel.  Deliberate difference: the header is read correctly at any offset
(the kernel copies from `&header + pos` with struct pointer arithmetic for
0 < pos < 4096).  Not modelled: CAP_SYS_RAWIO (EPERM) and kdump mode.
"""

from __future__ import annotations

import errno as errno_mod
import io
from bisect import bisect_right
from typing import TYPE_CHECKING

from zipldump.errors import DumpError, SclpError, ZiplDumpError
from zipldump.formats.dump_superblock import cksm
from zipldump.formats.ipl_block import IPIB_INFO_SIZE, IpibInfo
from zipldump.formats.lowcore import (
    ARCH_MODE_OFFSET,
    ARCH_MODE_ZARCH,
    IPIB_OFFSET,
    PREFIX_OFFSET,
    REGISTER_RANGES,
    SAVE_AREA_OFFSET,
    SAVE_AREA_SIZE,
    CpuRegisters,
    parse_save_area,
)
from zipldump.formats.s390dump import HEADER_SIZE, DumpHeader, build_header
from zipldump.sim.sclp import FIRST_DATA_BLOCK, Sdias
from zipldump.sim.storage import PAGE_SIZE

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from zipldump.sim.machine import Machine

CHUNK_INFO_SIZE = 34
DEFAULT_BOUNCE_PAGES = 1  # Linux: one SDIAS block per request


def _err(cls: type[ZiplDumpError], err: int, message: str, where: str) -> ZiplDumpError:
    return cls(f"{message} ({errno_mod.errorcode[err]})", where=where, errno=err)


class Zcore:
    """zcore after a successful `zcore_init`.  Raises SclpError / DumpError (with
    `.errno`) and releases the HSA when init fails, as the driver does.
    Implements dump.source.ZcoreFiles, the interface the dump writers read."""

    def __init__(self, machine: Machine, sdias: Sdias | None = None, *, blocks_per_request: int = DEFAULT_BOUNCE_PAGES,
                 memmap_style: str = "memblock", tod: int | None = None, cpu_id: int | None = None) -> None:
        if memmap_style not in ("memblock", "chunks"):
            raise ValueError(f"memmap_style {memmap_style!r}")
        self.machine = machine
        self.sdias = sdias if sdias is not None else Sdias(machine)
        self.blocks_per_request = max(1, int(blocks_per_request))
        self.memmap_style = memmap_style
        self.storage = machine.storage
        try:
            self._init(tod, cpu_id)
        except ZiplDumpError:
            self.sdias.release()
            raise
        self._mem: ZcoreMem | None = None
        self.reipl = ZcoreReipl(self)
        self.hsa = ZcoreHsa(self)

    # -- zcore_init --------------------------------------------------------------------
    def _init(self, tod: int | None, cpu_id: int | None) -> None:
        m = self.machine
        if not m.ipl_info.is_dump:
            raise _err(DumpError, errno_mod.ENODATA, f"IPL type {m.ipl_info.ipl_type!r} is not a dump IPL", "zcore init")
        blk = self.sdias.blk_count()
        if blk == 0:
            raise _err(SclpError, errno_mod.ENODEV, "SDIAS reports no HSA", "zcore init SDIAS size query")
        self.hsa_limit = (blk - 1) * PAGE_SIZE
        self.hsa_available = True
        # The bounce buffer lies in the dump kernel's memory (below the HSA size).
        self.bounce_size = self.blocks_per_request * PAGE_SIZE
        if self.bounce_size > self.hsa_limit:
            self.blocks_per_request = max(1, self.hsa_limit // PAGE_SIZE)
            self.bounce_size = self.blocks_per_request * PAGE_SIZE
        self.bounce_addr = self.hsa_limit - self.bounce_size
        self.crashed = m.crashed
        self.mem_end = max(s + n for s, n in self.crashed.chunks)
        self.mem_size = sum(n for _, n in self.crashed.chunks)

        arch = self._read_memory(ARCH_MODE_OFFSET, 1)[0]
        if arch != ARCH_MODE_ZARCH:
            raise _err(DumpError, errno_mod.EINVAL, "The 64-bit dump tool cannot be used for a 32-bit system",
                       f"HSA offset 0x{ARCH_MODE_OFFSET:x} (architecture mode {arch})")
        # Save area 0: the boot CPU, from the HSA; then the other CPUs by address.
        areas = [self._read_memory(SAVE_AREA_OFFSET, SAVE_AREA_SIZE)]
        boot = m.boot_cpu
        for cpu in sorted((c for c in m.cpus if c is not boot), key=lambda c: c.address):
            areas.append(m.sigp_stop_and_store_status(cpu.address))
        self.save_areas = areas
        self.prefixes_all = [int.from_bytes(a[PREFIX_OFFSET - SAVE_AREA_OFFSET : PREFIX_OFFSET - SAVE_AREA_OFFSET + 4], "big") for a in areas]
        self.header_tod = m.tod() if tod is None else tod
        self.cpu_id = m.cpu_id if cpu_id is None else cpu_id
        lc_vec = [p for p in self.prefixes_all if p]
        if self.mem_size == self.mem_end:
            self.header = build_header(self.mem_size, prefixes=lc_vec, tod=self.header_tod, cpu_id=self.cpu_id, real_cpu_cnt=len(areas))
        else:  # memory holes: mem_size counts present bytes, mem_end is the file's extent (§2.3, 4.x)
            self.header = DumpHeader(mem_size=self.mem_size, mem_end=self.mem_end, tod=self.header_tod, cpu_id=self.cpu_id,
                                     prefixes=tuple(lc_vec), real_cpu_cnt=len(areas)).build()
        self.length = HEADER_SIZE + self.mem_end
        # Register overlay: (absolute address, bytes) of each lc_mask range, in
        # save-area order; a prefix of 0 overlays absolute 0x1200 (§4.4).
        segs: list[tuple[int, int, bytes]] = []
        for idx, (pre, area) in enumerate(zip(self.prefixes_all, areas, strict=True)):
            for start, end in REGISTER_RANGES:
                a = start - SAVE_AREA_OFFSET
                segs.append((pre + start, idx, bytes(area[a : a + end - start])))
        segs.sort()
        self._overlay = [(addr, data) for addr, _, data in segs]
        self._overlay_starts = [addr for addr, _ in self._overlay]
        self._max_overlay = max(len(d) for _, d in self._overlay)
        self._reipl_init()

    def _reipl_init(self) -> None:
        self.ipib: bytes | None = None
        info = IpibInfo.parse(self._read_memory(IPIB_OFFSET, IPIB_INFO_SIZE))
        addr, csum = info.ipib, info.checksum
        if not addr or addr + PAGE_SIZE > self.mem_end:
            return
        try:
            page = self._read_memory(addr, PAGE_SIZE)
        except DumpError as exc:
            if exc.errno == errno_mod.EFAULT:  # block in a memory hole: no re-IPL
                return
            raise
        length = int.from_bytes(page[:4], "big")
        if 0 < length <= PAGE_SIZE and cksm(page[:length], 0) == csum:
            self.ipib = bytes(page[:length])

    # -- CPU information for others ------------------------------------------------------
    @property
    def cpu_registers(self) -> list[CpuRegisters]:
        """The register sets zcore exports, in save-area order (boot CPU first)."""
        return [parse_save_area(a) for a in self.save_areas]

    # -- memory access -------------------------------------------------------------------
    def _memcpy_hsa(self, mv: memoryview, addr: int) -> None:
        if not self.hsa_available or not self.machine.hsa_available:
            raise _err(DumpError, errno_mod.ENODATA, "the HSA has been released", f"HSA address 0x{addr:x}")
        n = len(mv)
        done = 0
        while done < n:
            a = addr + done
            page, off = a >> 12, a & (PAGE_SIZE - 1)
            pages = min(self.blocks_per_request, ((a + n - done - 1) >> 12) - page + 1)
            try:
                stored = self.sdias.copy(self.bounce_addr, page + FIRST_DATA_BLOCK, pages)
            except SclpError as exc:
                exc.errno = errno_mod.EIO  # the driver's return code: "Error from SCLP while copying hsa"
                raise
            if stored < 1:
                raise _err(SclpError, errno_mod.EIO, "SDIAS stored no block", f"SDIAS block {page + FIRST_DATA_BLOCK}")
            take = min(stored * PAGE_SIZE - off, n - done)
            self.storage.readinto(self.bounce_addr + off, mv[done : done + take])
            done += take

    def _copy_memory(self, mv: memoryview, addr: int) -> None:
        """Memory bytes [addr, addr + len(mv)) without the register overlay."""
        n = len(mv)
        done = 0
        if addr < self.hsa_limit:
            done = min(n, self.hsa_limit - addr)
            self._memcpy_hsa(mv[:done], addr)
        if done < n:
            a = addr + done
            if not self.crashed.is_present(a, n - done):
                raise _err(DumpError, errno_mod.EFAULT, f"memory hole in 0x{a:x}..0x{addr + n - 1:x}", f"absolute address 0x{a:x}")
            self.storage.readinto(a, mv[done:])

    def _read_memory(self, addr: int, n: int) -> bytes:
        buf = bytearray(n)
        self._copy_memory(memoryview(buf), addr)
        return bytes(buf)

    def _add_lc(self, mv: memoryview, addr: int) -> None:
        end = addr + len(mv)
        ov = self._overlay
        i = max(bisect_right(self._overlay_starts, addr - self._max_overlay), 0)
        while i < len(ov) and ov[i][0] < end:
            a, data = ov[i]
            s, e = max(a, addr), min(a + len(data), end)
            if s < e:
                mv[s - addr : e - addr] = data[s - a : e - a]
            i += 1

    def pread_into(self, pos: int, buf: WriteableBuffer) -> int:
        """zcore_read at file offset `pos` into `buf`; returns the bytes read (0 at EOF)."""
        mv = memoryview(buf).cast("B")
        if pos < 0 or pos > self.length:
            raise _err(DumpError, errno_mod.EINVAL, f"offset 0x{pos:x} is beyond the end 0x{self.length:x}", f"zcore/mem offset 0x{pos:x}")
        count = min(len(mv), self.length - pos)
        if count == 0:
            return 0
        done = 0
        if pos < HEADER_SIZE:
            done = min(count, HEADER_SIZE - pos)
            mv[:done] = self.header[pos : pos + done]
        if done < count:
            addr = pos + done - HEADER_SIZE
            part = mv[done:count]
            self._copy_memory(part, addr)
            self._add_lc(part, addr)
        return count

    # -- files -----------------------------------------------------------------------------
    def open_mem(self) -> ZcoreMem:
        """open("zcore/mem"): ENODATA once the HSA is gone."""
        if not self.hsa_available or not self.machine.hsa_available:
            raise _err(DumpError, errno_mod.ENODATA, "the HSA is no longer available", "zcore/mem open")
        return ZcoreMem(self)

    @property
    def mem(self) -> ZcoreMem:
        """zcore/mem, opened on first use (the same object afterwards)."""
        if self._mem is None or self._mem.closed:
            self._mem = self.open_mem()
        return self._mem

    def memmap(self) -> str:
        recs = [f"{start:016x} {size:016x} " for start, size in self.crashed.chunks]
        if self.memmap_style == "chunks":
            recs.append(f"{0:016x} {0:016x} ")
        return "".join(recs)

    def hsa_size(self) -> int:
        """The HSA size as zcore/hsa reports it: 0 once released."""
        return self.hsa_limit if self.hsa_available and self.machine.hsa_available else 0

    def tod(self) -> int:
        """STCK in the dump kernel: the machine's TOD clock (not zcore's; the dump tool's end marker uses it)."""
        return self.machine.tod()

    def release_hsa(self) -> None:
        """zcore/hsa <- "0": DIAG 308 subcode 2 (once)."""
        if self.hsa_available:
            self.hsa_available = False
            self.sdias.release()


class ZcoreMem(io.RawIOBase):
    """zcore/mem: read/readinto/seek/tell; `size` is its length (0x1000 + memory end)."""

    def __init__(self, zcore: Zcore) -> None:
        super().__init__()
        self.zcore = zcore
        self._pos = 0
        self._release_on_close = True

    @property
    def size(self) -> int:
        return self.zcore.length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        self._checkClosed()
        n = self.zcore.pread_into(self._pos, b)
        self._pos += n
        return n

    def pread_into(self, pos: int, buf: WriteableBuffer) -> int:
        self._checkClosed()
        return self.zcore.pread_into(pos, buf)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            new = offset
        elif whence == io.SEEK_CUR:
            new = self._pos + offset
        else:  # zcore_lseek knows SEEK_SET and SEEK_CUR only
            raise _err(DumpError, errno_mod.EINVAL, f"lseek whence {whence} is not supported", "zcore/mem lseek")
        if new < 0:
            raise _err(DumpError, errno_mod.EINVAL, f"negative offset {new}", "zcore/mem lseek")
        self._pos = new
        return new

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def close(self) -> None:
        if not self.closed and self._release_on_close:
            self.zcore.release_hsa()  # zcore_release
        super().close()

    def __del__(self) -> None:
        # Garbage collection is not a close(2): do not release the HSA behind the user's back.
        self._release_on_close = False
        super().__del__()


class ZcoreReipl:
    """zcore/reipl (write-only)."""

    def __init__(self, zcore: Zcore) -> None:
        self.zcore = zcore

    def write(self, data: bytes | str) -> int:
        n = len(data)
        ipib = self.zcore.ipib
        if ipib is not None:
            m = self.zcore.machine
            m.diag308(5, ipib)  # DIAG308_SET
            m.diag308(3)  # DIAG308_LOAD_CLEAR: on real hardware this does not return
        return n

    def read(self, n: int = -1) -> bytes:
        raise _err(DumpError, errno_mod.EINVAL, "zcore/reipl cannot be read", "zcore/reipl")


class ZcoreHsa:
    """zcore/hsa."""

    def __init__(self, zcore: Zcore) -> None:
        self.zcore = zcore

    def read(self) -> str:
        return f"{self.zcore.hsa_size():x}\n"

    def write(self, data: bytes | str, offset: int = 0) -> int:
        if offset != 0:
            raise _err(DumpError, errno_mod.EPIPE, f"write at offset {offset}", "zcore/hsa")
        first = data[:1]
        if first not in ("0", b"0"):
            raise _err(DumpError, errno_mod.EINVAL, f"{data[:8]!r} does not start with '0'", "zcore/hsa")
        self.zcore.release_hsa()
        return len(data)
