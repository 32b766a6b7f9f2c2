"""The simulated System z machine at a SCSI dump IPL.

`Machine(crashed, hsa_size)` holds the real storage (the crashed memory plus
what was written since), the CPUs, the hardware system area (HSA), the IPL
information the dump kernel sees and the DIAG 308 (re-IPL / release HSA)
interface.  The dump IPL sequence (s390-dump-format.md §1 step 2, §10) is:

1. `store_status()`: the boot CPU's registers go to absolute 0x1200..0x13FF
   (register fields only, pads keep memory) and the architectural-mode byte 1
   to absolute 0xA3;
2. `save_hsa()`: the first `hsa_size` bytes of storage are copied to the HSA;
3. the firmware loader (sim/firmware.py) writes the dump program below the
   HSA limit; memory above it keeps the crashed system's data.

`dump_ipl()` does steps 1-2.  The other CPUs stay stopped; the dump kernel
collects their registers with `sigp_stop_and_store_status()` (§4.3).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zipldump.disk.io import pread_full, pwrite_full
from zipldump.errors import IplError, UsageError
from zipldump.formats.lowcore import (
    ARCH_MODE_OFFSET,
    ARCH_MODE_ZARCH,
    SAVE_AREA_OFFSET,
    SAVE_AREA_SIZE,
    build_save_area,
    overlay_save_area,
)
from zipldump.formats.s390dump import tod_from_unix_us
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.sim.cpu import OPERATING, STOPPED, CpuState
from zipldump.sim.crashed import CrashedSystem
from zipldump.sim.storage import PAGE_SIZE, Storage

MiB = 1 << 20
HSA_IN_RAM_LIMIT = 4 * MiB  # larger HSAs (the usual 32 MiB and up) live in a temporary file: bounded RSS
DEFAULT_CPU_ID = 0x0001234520978000  # STIDP: version 0, ident 0x012345, machine 2097 (§9)
COPY_CHUNK = 4 * MiB

# DIAG 308 subcodes (s390-dump-format.md §5.5)
DIAG308_CLEAR_RESET = 0
DIAG308_LOAD_NORMAL_RESET = 1
DIAG308_REL_HSA = 2
DIAG308_LOAD_CLEAR = 3
DIAG308_LOAD_NORMAL_DUMP = 4
DIAG308_SET = 5
DIAG308_STORE = 6
DIAG308_LOAD_NORMAL = 7


@dataclass
class IplInfo:
    """What the dump kernel finds in /sys/firmware/ipl (Linux names)."""

    ipl_type: str = "fcp_dump"  # "fcp" for a normal SCSI IPL
    devno: int = 0x1700  # FCP subchannel device number (0.0.1700)
    wwpn: int = 0x500507630300C562
    lun: int = 0x4010400000000000
    bootprog: int = 0
    br_lba: int = 0
    loadparm: str = ""

    @property
    def device(self) -> str:
        return f"0.0.{self.devno:04x}"

    @property
    def is_dump(self) -> bool:
        return self.ipl_type.endswith("_dump")


class Hsa:
    """The hardware system area: a copy of storage [0, size) taken at dump IPL.
    Held in a bytearray up to HSA_IN_RAM_LIMIT (4 MiB, small test machines), in
    an unlinked temporary file above, so the dump process's RSS does not grow
    with the HSA size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.available = True
        self._ram: bytearray | None = None
        self._fd = -1
        if size <= HSA_IN_RAM_LIMIT:
            self._ram = bytearray(size)
        else:
            fd, path = tempfile.mkstemp(prefix="zipldump-hsa-")
            os.unlink(path)
            os.ftruncate(fd, size)
            self._fd = fd

    def write(self, offset: int, data: memoryview) -> None:
        if self._ram is not None:
            self._ram[offset : offset + len(data)] = data
        else:
            pwrite_full(self._fd, data, offset, where="HSA backing file")

    def readinto(self, offset: int, buf: memoryview) -> None:
        if offset < 0 or offset + len(buf) > self.size:
            raise IplError(f"HSA read of {len(buf)} bytes at 0x{offset:x} outside the HSA (0x{self.size:x})", where=f"HSA offset 0x{offset:x}")
        if self._ram is not None:
            buf[:] = memoryview(self._ram)[offset : offset + len(buf)]
        else:
            done = pread_full(self._fd, buf, offset, where="HSA backing file")
            if done < len(buf):
                raise IplError("HSA backing file is short", where=f"HSA offset 0x{offset + done:x}")

    def release(self) -> None:
        """DIAG 308 subcode 2: the content is gone for good."""
        self.available = False
        self._ram = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class ReiplRequest:
    subcode: int  # the DIAG 308 load subcode (3 load clear, 7 load normal, ...)
    block: bytes | None  # the IPL parameter block set with subcode 5


@dataclass
class Machine:
    """One machine with the crashed system's memory and CPUs (copied, so the
    CrashedSystem itself stays the unchanged reference)."""

    crashed: CrashedSystem
    hsa_size: int = DEFAULT_HSA_SIZE
    ipl_info: IplInfo = field(default_factory=IplInfo)
    cpu_id: int = DEFAULT_CPU_ID
    tod_clock: Callable[[], int] | None = None  # returns a TOD value; None = host clock
    on_reipl: Callable[[ReiplRequest], None] | None = None
    storage: Storage = field(init=False)
    cpus: list[CpuState] = field(init=False)
    hsa: Hsa | None = field(init=False, default=None)
    events: list[str] = field(init=False, default_factory=list)
    reipl_block: bytes | None = field(init=False, default=None)
    reipl_requests: list[ReiplRequest] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.hsa_size <= 0 or self.hsa_size % PAGE_SIZE:
            raise UsageError(f"HSA size {self.hsa_size} is not a positive multiple of {PAGE_SIZE}", where="--hsa-size")
        if self.hsa_size > self.crashed.memory_size:
            raise UsageError(
                f"HSA size 0x{self.hsa_size:x} exceeds the memory size 0x{self.crashed.memory_size:x}", where="--hsa-size"
            )
        self.storage = Storage(self.crashed, self.crashed.memory_size)
        self.cpus = [c.copy() for c in self.crashed.cpus]

    # -- CPUs -----------------------------------------------------------------
    @property
    def boot_cpu(self) -> CpuState:
        return self.cpus[self.crashed.boot_cpu]

    def cpu_by_address(self, address: int) -> CpuState:
        for c in self.cpus:
            if c.address == address:
                return c
        raise IplError(f"no CPU with address {address}", where=f"SIGP CPU address {address}")

    def tod(self) -> int:
        if self.tod_clock is not None:
            return self.tod_clock()
        return tod_from_unix_us(time.time_ns() // 1000)

    # -- dump IPL ---------------------------------------------------------------
    def store_status(self) -> None:
        """Store status of the boot CPU into absolute lowcore (0x1200.., 0xA3)."""
        cpu = self.boot_cpu
        old = self.storage.read(SAVE_AREA_OFFSET, SAVE_AREA_SIZE)
        self.storage.write(SAVE_AREA_OFFSET, overlay_save_area(old, cpu.registers))
        self.storage.write(ARCH_MODE_OFFSET, bytes([ARCH_MODE_ZARCH]))
        self.events.append(f"store status CPU {cpu.address} at absolute 0x{SAVE_AREA_OFFSET:x}")

    def save_hsa(self) -> None:
        """Copy storage [0, hsa_size) into the HSA (in 4 MiB chunks)."""
        hsa = Hsa(self.hsa_size)
        buf = bytearray(min(COPY_CHUNK, self.hsa_size))
        mv = memoryview(buf)
        for off in range(0, self.hsa_size, len(buf)):
            part = mv[: min(len(buf), self.hsa_size - off)]
            self.storage.readinto(off, part)
            hsa.write(off, part)
        self.hsa = hsa
        self.events.append(f"HSA saved: 0x{self.hsa_size:x} bytes")

    def dump_ipl(self) -> None:
        """The machine's part of a SCSI dump IPL before the loader runs."""
        if self.hsa is not None:
            raise IplError("the HSA already holds a dump", where="dump IPL")
        self.ipl_info.ipl_type = "fcp_dump"
        self.store_status()
        self.save_hsa()
        self.boot_cpu.state = OPERATING

    def sigp_stop_and_store_status(self, address: int) -> bytes:
        """SIGP stop and store status (at address) of a non-boot CPU: returns the
        512-byte save area the dump kernel copies (pads zero)."""
        cpu = self.cpu_by_address(address)
        if cpu is self.boot_cpu:
            raise IplError("the boot CPU cannot stop itself through SIGP", where=f"SIGP CPU address {address}")
        cpu.state = STOPPED
        self.events.append(f"SIGP stop and store status CPU {address}")
        return build_save_area(cpu.registers)

    # -- DIAG 308 -----------------------------------------------------------------
    def release_hsa(self) -> None:
        self.diag308(DIAG308_REL_HSA)

    @property
    def hsa_saved(self) -> bool:
        """The dump IPL saved the HSA (released or not): sim.interfaces.MachineView."""
        return self.hsa is not None

    @property
    def hsa_available(self) -> bool:
        return self.hsa is not None and self.hsa.available

    def diag308(self, subcode: int, block: bytes | None = None) -> bytes | None:
        """DIAG 308: 2 release HSA, 5 set re-IPL block, 6 store it, 0/1/3/4/7 re-IPL
        (recorded in `reipl_requests` and passed to `on_reipl`)."""
        if subcode == DIAG308_REL_HSA:
            if self.hsa is not None and self.hsa.available:
                self.hsa.release()
                self.events.append("DIAG 308 subcode 2: HSA released")
            return None
        if subcode == DIAG308_SET:
            if block is None:
                raise IplError("DIAG 308 set needs an IPL parameter block", where="DIAG 308 subcode 5")
            self.reipl_block = bytes(block)
            self.events.append(f"DIAG 308 subcode 5: re-IPL block of {len(block)} bytes set")
            return None
        if subcode == DIAG308_STORE:
            return self.reipl_block
        if subcode in (DIAG308_CLEAR_RESET, DIAG308_LOAD_NORMAL_RESET, DIAG308_LOAD_CLEAR, DIAG308_LOAD_NORMAL_DUMP, DIAG308_LOAD_NORMAL):
            req = ReiplRequest(subcode, self.reipl_block)
            self.reipl_requests.append(req)
            self.events.append(f"DIAG 308 subcode {subcode}: re-IPL")
            if self.on_reipl is not None:
                self.on_reipl(req)
            return None
        raise IplError(f"DIAG 308 subcode {subcode} is not supported", where=f"DIAG 308 subcode {subcode}")
