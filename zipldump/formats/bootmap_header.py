"""Bootmap header, the first block of a bootmap file or dump tail, spec §7.1.

zipl >= 2.18 writes 512 bytes with a version field; zipl <= 2.17 wrote only the
38-byte text.  No boot loader reads it; readers must accept both.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Int64ub, Padding, Struct

from zipldump.formats.fields import Record

HEADER_TEXT = b"zSeries bootmap file\ncreated by zIPL\n"
assert len(HEADER_TEXT) == 37
LEGACY_HEADER_SIZE = len(HEADER_TEXT) + 1  # text + NUL (zipl <= 2.17)
BOOTMAP_HEADER_SIZE = 512
BOOTMAP_HEADER_VERSION = 1

BootmapHeaderStruct = Struct(
    "text" / Bytes(48),
    "version" / Int64ub,
    "envblk_offset" / Int64ub,
    Padding(448),
)
assert BootmapHeaderStruct.sizeof() == BOOTMAP_HEADER_SIZE


@dataclass(frozen=True)
class BootmapHeader(Record):
    LAYOUT = BootmapHeaderStruct

    text: bytes = HEADER_TEXT.ljust(48, b"\0")
    version: int = BOOTMAP_HEADER_VERSION
    envblk_offset: int = 0


def build_bootmap_header() -> bytes:
    return BootmapHeader().build()


def is_bootmap_header(block: bytes) -> bool:
    return block[: LEGACY_HEADER_SIZE] == HEADER_TEXT + b"\0"
