"""SCSI dump superblock ("ZFCPDUMP", 72 bytes) and its CKSM checksum, spec §7.4."""

from __future__ import annotations

from construct import Const, Int64ub, Struct

SB_MAGIC = b"ZFCPDUMP"  # 0x5A46435044554D50
SB_VERSION = 1
SB_SEED = 0x12345678
SB_CSUM_SIZE = 4096
SUPERBLOCK_SIZE = 72
PARTITION_WIPE_SIZE = 64 * 1024  # zipl zeroes the first 64 KiB of the dump partition

DumpSuperblock = Struct(
    "magic" / Const(SB_MAGIC),
    "version" / Int64ub,
    "part_start" / Int64ub,  # bytes, on the whole disk
    "part_size" / Int64ub,  # bytes
    "dump_offset" / Int64ub,  # bytes, relative to part_start
    "dump_size" / Int64ub,  # bytes available for the dump
    "csum_offset" / Int64ub,  # bytes, relative to part_start
    "csum_size" / Int64ub,
    "csum" / Int64ub,
)
assert DumpSuperblock.sizeof() == SUPERBLOCK_SIZE


def cksm(data: bytes | memoryview, seed: int = SB_SEED) -> int:
    """s390 CKSM: 32-bit big-endian words summed with end-around carry.

    A trailing 1-3 bytes are padded on the right with zeros.
    """
    data = bytes(data)
    if len(data) % 4:
        data += bytes(4 - len(data) % 4)
    total = seed
    # Summing all words at once then folding is equivalent to per-word end-around carry.
    for i in range(0, len(data), 4096):
        chunk = data[i : i + 4096]
        total += sum(int.from_bytes(chunk[j : j + 4], "big") for j in range(0, len(chunk), 4))
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def build_superblock(part_start: int, part_size: int, dump_size: int, csum: int = SB_SEED) -> bytes:
    return bytes(DumpSuperblock.build(
        {
            "version": SB_VERSION,
            "part_start": part_start,
            "part_size": part_size,
            "dump_offset": 0,
            "dump_size": dump_size,
            "csum_offset": 0,
            "csum_size": SB_CSUM_SIZE,
            "csum": csum,
        }
    ))
