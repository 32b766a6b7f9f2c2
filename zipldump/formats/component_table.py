"""Component table ("program"): header + 32-byte LOAD/SIGNATURE/EXECUTE entries, spec §5."""

from __future__ import annotations

from construct import (
    Bytes,
    Const,
    FixedSized,
    Int8ub,
    Int32ub,
    Int64ub,
    Padding,
    Struct,
    Switch,
    this,
)

from zipldump.formats.blockptr import BlockPtrStruct
from zipldump.formats.bootrecord import ZIPL_MAGIC

HEADER_IPL = 0
HEADER_DUMP = 1

TYPE_EXECUTE = 1
TYPE_LOAD = 2
TYPE_SIGNATURE = 3
# struct file_signature, the 40 bytes after a signed file's PKCS#7 data (spec §8.9).  A
# SIGNATURE entry's LOAD loads the file without these sig_len + 40 bytes, while zipl's
# image_len/initrd_len are the stat() size with them (§8.3).
FILE_SIGNATURE_SIZE = 40
TYPE_NAMES = {TYPE_EXECUTE: "execute", TYPE_LOAD: "load", TYPE_SIGNATURE: "signature"}

COMPONENT_HEADER_SIZE = 32
COMPONENT_ENTRY_SIZE = 32

# PSW (ESA/390 short format) values, spec §5.3.
PSW_LOAD = 0x0008000080000000
PSW_BIT12 = 0x0008000000000000
PSW_DISABLED_WAIT = 0x000A000000000000
STAGE3_ENTRY = 0xA000
STAGE3_PSW = PSW_LOAD | STAGE3_ENTRY  # 0x000800008000A000, zipl >= 2.9.0
LEGACY_STAGE3_PSWS = (PSW_LOAD | 0xA050, PSW_LOAD | 0xA02A)
PKCS7_FORMAT = 1

ComponentHeader = Struct(
    "magic" / Const(ZIPL_MAGIC),
    "type" / Int8ub,
    Padding(27),
)
assert ComponentHeader.sizeof() == COMPONENT_HEADER_SIZE

SignatureHeader = Struct("format" / Int8ub, Padding(3), "length" / Int32ub)

ComponentEntry = Struct(
    "blocklist" / BlockPtrStruct,  # first block-list block (LOAD, SIGNATURE); zero for EXECUTE
    Padding(7),
    "type" / Int8ub,
    "compdat"
    / FixedSized(
        8,
        Switch(
            this.type,
            {TYPE_LOAD: Int64ub, TYPE_EXECUTE: Int64ub, TYPE_SIGNATURE: SignatureHeader},
            default=Bytes(8),
        ),
    ),
)
assert ComponentEntry.sizeof() == COMPONENT_ENTRY_SIZE


def max_entries(block_size: int) -> int:
    return (block_size - COMPONENT_HEADER_SIZE) // COMPONENT_ENTRY_SIZE


def load_entry(list_lba: int, block_size: int, address: int) -> dict[str, object]:
    return {"blocklist": {"blockno": list_lba, "size": block_size, "blockct": 0}, "type": TYPE_LOAD, "compdat": address}


def signature_entry(list_lba: int, block_size: int, length: int) -> dict[str, object]:
    return {
        "blocklist": {"blockno": list_lba, "size": block_size, "blockct": 0},
        "type": TYPE_SIGNATURE,
        "compdat": {"format": PKCS7_FORMAT, "length": length},
    }


def execute_entry(psw: int) -> dict[str, object]:
    return {"blocklist": {"blockno": 0, "size": 0, "blockct": 0}, "type": TYPE_EXECUTE, "compdat": psw}


def build_component_table(header_type: int, entries: list[dict[str, object]], block_size: int) -> bytes:
    """The whole block, zero padded.  `entries` must end with one EXECUTE entry."""
    if len(entries) > max_entries(block_size):
        raise ValueError(f"{len(entries)} component entries do not fit a {block_size}-byte block")
    out: bytes = ComponentHeader.build({"type": header_type}) + b"".join(ComponentEntry.build(e) for e in entries)
    return out.ljust(block_size, b"\0")


def psw_address(psw: int) -> int:
    """Instruction address of a short-format PSW (low 31 bits)."""
    return psw & 0x7FFFFFFF
