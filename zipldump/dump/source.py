"""What the dump tools read: the contracts between dump/ and whatever feeds it.

The dump writers (write_partition.py, write_fs.py) and --verify (verify.py) sit
below the simulator (sim/), so they cannot name its classes.  These Protocols
say what they need instead; sim/zcore.py (`Zcore`, `ZcoreMem`), sim/crashed.py
(`CrashedSystem`) and sim/cpu.py (`CpuState`) implement them, and so do the
tests' stand-ins.

* `ZcoreMemFile` - zcore/mem as the writers stream it (seek + readinto).
* `ZcoreFiles` - the dump kernel as the dump tool sees it: the zcore debugfs
  files (mem, memmap, hsa) and `tod()`, the dump kernel's STCK (the end-marker
  TOD comes from the machine's clock, not the host's).
* `CrashedMemory` / `CrashedCpu` - the reference --verify compares against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from zipldump.formats.lowcore import CpuRegisters


class ZcoreMemFile(Protocol):
    """zcore/mem: the 4 KiB dump header, then memory by absolute address."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class ZcoreFiles(Protocol):
    """The dump kernel's zcore files and clock (s390-dump-format.md §5)."""

    @property
    def mem(self) -> ZcoreMemFile: ...

    def memmap(self) -> str:
        """zcore/memmap text: "%016x %016x " (start, size) records."""
        ...

    def hsa_size(self) -> int:
        """zcore/hsa read: the HSA size, 0 once released."""
        ...

    def release_hsa(self) -> None:
        """zcore/hsa <- "0" (DIAG 308 subcode 2)."""
        ...

    def tod(self) -> int:
        """STCK in the dump kernel: the machine's TOD clock now."""
        ...


class CrashedCpu(Protocol):
    @property
    def address(self) -> int: ...

    @property
    def prefix(self) -> int: ...

    @property
    def registers(self) -> CpuRegisters: ...


class CrashedMemory(Protocol):
    """The crashed system as it was before the dump IPL touched it."""

    @property
    def memory_size(self) -> int: ...

    @property
    def ncpus(self) -> int: ...

    @property
    def boot_cpu(self) -> int:
        """Index into `cpus` of the CPU the dump IPL ran on."""
        ...

    @property
    def cpus(self) -> Sequence[CrashedCpu]: ...

    @property
    def chunks(self) -> Sequence[tuple[int, int]]:
        """Present memory ranges (start, size); holes read as zeros."""
        ...

    def read_original(self, addr: int, n: int) -> bytes: ...

    def readinto_original(self, addr: int, buf: bytearray | memoryview) -> int: ...
