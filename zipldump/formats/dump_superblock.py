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


_FOLD = 0xFFFFFFFF  # 2**32 - 1: with end-around carry, 2**32 counts as 1
CKSM_CHUNK = 1 << 20


def cksm(data: bytes | bytearray | memoryview, seed: int = SB_SEED) -> int:
    """s390 CKSM: 32-bit big-endian words summed with end-around carry.

    A trailing 1-3 bytes are padded on the right with zeros.  Since 2**32 is 1
    modulo 2**32 - 1, the sum of the words is the whole buffer read as one
    big-endian integer modulo 2**32 - 1, which CPython computes in C (memory
    speed instead of a Python loop per word).  The end-around-carry result is
    that residue, except that a non-zero total with residue 0 reads 0xFFFFFFFF.
    benchmarks/checksum.py measures it against a plain copy of the same bytes."""
    view = memoryview(data).cast("B")
    residue = seed % _FOLD
    nonzero = seed != 0
    for i in range(0, len(view), CKSM_CHUNK):
        chunk = view[i : i + CKSM_CHUNK]
        value = int.from_bytes(chunk, "big")
        if len(chunk) % 4:
            value <<= 8 * (4 - len(chunk) % 4)  # only the last chunk can be ragged: CKSM_CHUNK % 4 == 0
        if value:
            nonzero = True
            residue = (residue + _residue(value, 8 * (len(chunk) + 3) // 32 * 32)) % _FOLD
    return residue if residue or not nonzero else _FOLD


def _residue(value: int, nbits: int) -> int:
    """value mod 2**32 - 1 for value < 2**nbits: fold the halves (at a multiple of 32 bits, 2**32 = 1),
    shifts and adds over the whole number, which run at memory speed, unlike a long division."""
    while nbits > 128:
        half = nbits // 64 * 32
        value = (value >> half) + (value & ((1 << half) - 1))
        nbits = nbits - half + 1
    return value % _FOLD


def build_superblock(part_start: int, part_size: int, dump_size: int, csum: int = SB_SEED) -> bytes:
    return DumpSuperblock.build(
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
    )
