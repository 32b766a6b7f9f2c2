"""SCSI dump superblock ("ZFCPDUMP", 72 bytes) and its CKSM checksum, spec §7.4."""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass

from construct import Const, Int64ub, Struct

from zipldump.formats.fields import Record, context
from zipldump.jsonout import JsonMixin

SB_MAGIC = b"ZFCPDUMP"  # 0x5A46435044554D50
SB_VERSION = 1
SB_SEED = 0x12345678
SB_CSUM_SIZE = 4096
SUPERBLOCK_SIZE = 72
PARTITION_WIPE_SIZE = 64 * 1024  # zipl zeroes the first 64 KiB of the dump partition

DumpSuperblockStruct = Struct(
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
assert DumpSuperblockStruct.sizeof() == SUPERBLOCK_SIZE


@dataclass(frozen=True)
class DumpSuperblock(Record, JsonMixin):
    """The superblock ("ZFCPDUMP" implied); `offset` is its byte offset on the whole disk, where read.

    Its JSON (inspect's "dump", the dump locator's "superblock") is the fields, offset first."""

    LAYOUT = DumpSuperblockStruct

    offset: int = context()
    version: int = SB_VERSION
    part_start: int = 0
    part_size: int = 0
    dump_offset: int = 0
    dump_size: int = 0
    csum_offset: int = 0
    csum_size: int = SB_CSUM_SIZE
    csum: int = SB_SEED


CKSM_CHUNK = 1 << 20


def cksm(data: bytes | bytearray | memoryview, seed: int = SB_SEED) -> int:
    """s390 CKSM: 32-bit big-endian words summed with end-around carry.

    A trailing 1-3 bytes are padded on the right with zeros.  Summing all words
    first and folding the carries afterwards gives the same result as folding
    after every add; numpy sums each 1 MiB piece at memory speed (a piece's sum
    stays below 2**50, so uint64 cannot overflow).  benchmarks/checksum.py
    measures it against a plain copy of the same bytes.  Small inputs (zipl's
    4096 bytes) are summed with array, so numpy's import (about 15 MiB of memory)
    is paid only by a checksum large enough to need it."""
    view = memoryview(data).cast("B")
    total = seed
    for i in range(0, len(view), CKSM_CHUNK):
        piece = view[i : i + CKSM_CHUNK]
        whole = len(piece) // 4 * 4
        if whole:
            total += _sum_words(piece[:whole])
        if whole < len(piece):
            total += int.from_bytes(bytes(piece[whole:]).ljust(4, b"\0"), "big")
        total = _fold(total)
    return total


_SMALL = 64 << 10


def _sum_words(words: memoryview) -> int:
    """The sum of the big-endian u32 words of `words` (a multiple of 4 bytes)."""
    if len(words) <= _SMALL:
        a = array("I")
        a.frombytes(words)
        if sys.byteorder == "little":
            a.byteswap()
        return sum(a)
    import numpy as np  # imported here: only a large checksum pays for it

    return int(np.frombuffer(words, dtype=">u4").sum(dtype=np.uint64))


def _fold(total: int) -> int:
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def build_superblock(part_start: int, part_size: int, dump_size: int, csum: int = SB_SEED) -> bytes:
    return DumpSuperblock(part_start=part_start, part_size=part_size, dump_size=dump_size, csum=csum).build()
