"""Synthetic s390 kernel images: S390EP at 0x10008, the command-line limit at 0x10430, a byte pattern elsewhere."""

from __future__ import annotations

import struct
from pathlib import Path


def synthetic_kernel(path: Path, size: int = 0x20000, *, pattern: int = 7, max_cl: int = 4096) -> Path:
    data = bytearray((i * pattern + 3) & 0xFF for i in range(size))
    data[0x10008:0x1000E] = b"S390EP"
    data[0x10400:0x10480] = bytes(0x80)
    struct.pack_into(">Q", data, 0x10430, max_cl)
    path.write_bytes(bytes(data))
    return path
