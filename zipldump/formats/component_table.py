"""Component table ("program"): header + 32-byte LOAD/SIGNATURE/EXECUTE entries, spec §5."""

from __future__ import annotations

from dataclasses import dataclass

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

from zipldump.formats.blockptr import BlockPtr, BlockPtrStruct
from zipldump.formats.bootrecord import ZIPL_MAGIC
from zipldump.formats.fields import Record, context

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

ComponentHeaderStruct = Struct(
    "magic" / Const(ZIPL_MAGIC),
    "type" / Int8ub,
    Padding(27),
)
assert ComponentHeaderStruct.sizeof() == COMPONENT_HEADER_SIZE

SignatureHeaderStruct = Struct("format" / Int8ub, Padding(3), "length" / Int32ub)

ComponentEntryStruct = Struct(
    "blocklist" / BlockPtrStruct,  # first block-list block (LOAD, SIGNATURE); zero for EXECUTE
    Padding(7),
    "type" / Int8ub,
    "compdat"
    / FixedSized(
        8,
        Switch(
            this.type,
            {TYPE_LOAD: Int64ub, TYPE_EXECUTE: Int64ub, TYPE_SIGNATURE: SignatureHeaderStruct},
            default=Bytes(8),
        ),
    ),
)
assert ComponentEntryStruct.sizeof() == COMPONENT_ENTRY_SIZE


@dataclass(frozen=True)
class ComponentHeader(Record):
    LAYOUT = ComponentHeaderStruct

    type: int  # HEADER_IPL or HEADER_DUMP


@dataclass(frozen=True)
class SignatureHeader(Record):
    """compdat of a SIGNATURE entry."""

    LAYOUT = SignatureHeaderStruct

    format: int
    length: int


@dataclass(frozen=True)
class ComponentEntry(Record):
    """One 32-byte entry; `index` and `offset` (inside its table block) say where it was read."""

    LAYOUT = ComponentEntryStruct

    blocklist: BlockPtr  # first block-list block (LOAD, SIGNATURE)
    type: int
    compdat: int | SignatureHeader | bytes  # LOAD address, EXECUTE PSW, signature header; 8 raw bytes otherwise
    index: int = context()
    offset: int = context()

    @property
    def kind(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type:#x}")

    @property
    def address(self) -> int | None:
        """LOAD only."""
        return self.compdat if self.type == TYPE_LOAD and isinstance(self.compdat, int) else None

    @property
    def psw(self) -> int | None:
        """EXECUTE only."""
        return self.compdat if self.type == TYPE_EXECUTE and isinstance(self.compdat, int) else None

    @property
    def signature_format(self) -> int | None:
        return self.compdat.format if isinstance(self.compdat, SignatureHeader) else None

    @property
    def signature_length(self) -> int | None:
        return self.compdat.length if isinstance(self.compdat, SignatureHeader) else None


def max_entries(block_size: int) -> int:
    return (block_size - COMPONENT_HEADER_SIZE) // COMPONENT_ENTRY_SIZE


def load_entry(list_lba: int, block_size: int, address: int) -> ComponentEntry:
    return ComponentEntry(BlockPtr(list_lba, block_size, 0), TYPE_LOAD, address)


def signature_entry(list_lba: int, block_size: int, length: int) -> ComponentEntry:
    return ComponentEntry(BlockPtr(list_lba, block_size, 0), TYPE_SIGNATURE, SignatureHeader(PKCS7_FORMAT, length))


def execute_entry(psw: int) -> ComponentEntry:
    return ComponentEntry(BlockPtr.null(), TYPE_EXECUTE, psw)


def build_component_table(header_type: int, entries: list[ComponentEntry], block_size: int) -> bytes:
    """The whole block, zero padded.  `entries` must end with one EXECUTE entry."""
    if len(entries) > max_entries(block_size):
        raise ValueError(f"{len(entries)} component entries do not fit a {block_size}-byte block")
    out = ComponentHeader(header_type).build() + b"".join(e.build() for e in entries)
    return out.ljust(block_size, b"\0")


def psw_address(psw: int) -> int:
    """Instruction address of a short-format PSW (low 31 bits)."""
    return psw & 0x7FFFFFFF
