"""A simulated CPU: CPU address, prefix, run state and its live registers.

The live registers are a `formats.lowcore.CpuRegisters`; the save-area bytes a
"store status" produces come from `formats.lowcore` as well, so the simulator
and the dump readers share one layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zipldump.formats.lowcore import (
    SAVE_AREA_OFFSET,
    CpuRegisters,
    build_save_area,
)

STOPPED = "stopped"
OPERATING = "operating"
CHECK_STOP = "check-stop"


@dataclass
class CpuState:
    """One CPU.  `prefix` is the prefix register (8 KiB aligned, 0 = never set)."""

    address: int  # CPU address (the value SIGP uses and lowcore 0x84 holds)
    registers: CpuRegisters
    state: str = STOPPED

    @property
    def prefix(self) -> int:
        return self.registers.prefix

    def save_area(self) -> bytes:
        """The 512 bytes a store status writes at prefix + 0x1200 (pads zero)."""
        return build_save_area(self.registers)

    def save_area_address(self) -> int:
        """Where the machine's store status of this CPU lands (absolute)."""
        return self.prefix + SAVE_AREA_OFFSET

    def copy(self) -> CpuState:
        return replace(self)

