"""What the simulator's parts need of each other.

`MachineView` is the machine as the machine loader (firmware.py) and stage 3
(stage3.py) see it: storage, the HSA size and whether the HSA was saved.
`machine.Machine` implements it; so does the tests' small `FakeMachine`.

The dump side's contracts live one layer down, in dump/source.py (the dump
writers and --verify cannot import sim/): `ZcoreFiles` (implemented by
zcore.Zcore), `CrashedMemory` (crashed.CrashedSystem) and `CrashedCpu`
(cpu.CpuState).  They are re-exported here so the whole seam reads in one place.
"""

from __future__ import annotations

from typing import Protocol

from zipldump.dump.source import CrashedCpu, CrashedMemory, ZcoreFiles, ZcoreMemFile
from zipldump.sim.storage import Storage


class MachineView(Protocol):
    """The machine during a SCSI (dump) load and stage 3."""

    @property
    def storage(self) -> Storage: ...

    @property
    def hsa_size(self) -> int:
        """Bytes of storage the HSA holds (a dump load must stay below it)."""
        ...

    @property
    def hsa_saved(self) -> bool:
        """The HSA holds the crashed system's first `hsa_size` bytes (a dump load may run)."""
        ...


__all__ = ["CrashedCpu", "CrashedMemory", "MachineView", "ZcoreFiles", "ZcoreMemFile"]
