"""CPU registers with recognisable values."""

from __future__ import annotations

from zipldump.formats import lowcore as lc


def sample_regs(seed: int = 1) -> lc.CpuRegisters:
    """Every field distinct and derived from `seed`, so a swapped or shifted field shows."""
    return lc.CpuRegisters(
        psw_mask=0x0704000180000000 + seed,
        psw_addr=0x0000000000123456 + seed,
        gprs=tuple(0x1000_0000_0000_0000 * seed + i for i in range(16)),
        acrs=tuple(0xA000_0000 + 0x100 * seed + i for i in range(16)),
        fprs=tuple(0xF000_0000_0000_0000 + 0x100 * seed + i for i in range(16)),
        fpc=0x00080000 + seed,
        crs=tuple(0xC000_0000_0000_0000 + 0x100 * seed + i for i in range(16)),
        prefix=0x03F5A000,
        timer=0x7FFF_FFFF_0000_0000 + seed,
        ckc=0xC0BFF9D0D7A12400,
        todpreg=0x1234 + seed,
    )
