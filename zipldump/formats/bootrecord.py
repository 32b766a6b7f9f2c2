"""Block 0 of a zipl SCSI disk ("SCSI MBR") and its boot_info, spec §3.

zipl rewrites only bytes 0x00-0x97 of block 0; everything after (boot code,
partition table, 55 AA) is preserved.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Const, Int8ub, Int32ub, Int64ub, Padding, Struct

from zipldump.formats.blockptr import BlockPtr, BlockPtrStruct
from zipldump.formats.fields import Record, context

ZIPL_MAGIC = b"zIPL"
DISK_LAYOUT_ID = 1
BOOT_RECORD_SIZE = 0x98  # sizeof(struct scsi_mbr) = 152: the bytes zipl owns in block 0
BOOT_INFO_OFFSET = 0x70

BOOT_INFO_VERSION = 1
BP_TYPE_IPL = 0
BP_TYPE_DUMP = 1
DEV_TYPE_ECKD = 0
DEV_TYPE_FBA = 1
DEV_TYPE_SCSI = 2
BOOT_INFO_FLAGS_ARCH = 1

BootInfoStruct = Struct(
    "magic" / Bytes(4),  # "zIPL" when filled (dump); all zero for IPL
    "version" / Int8ub,
    "bp_type" / Int8ub,
    "dev_type" / Int8ub,
    "flags" / Int8ub,
    "dump_sb_offset" / Int64ub,  # byte offset of the ZFCPDUMP superblock on the whole disk
    # bp.dump.param.scsi.reserved (8) and bp.dump.unused (16): named so that a
    # record keeps them (an IPL disk's boot_info is empty only when they are zero too)
    "reserved" / Bytes(24),
)
assert BootInfoStruct.sizeof() == 40

BootRecordStruct = Struct(
    "magic" / Const(ZIPL_MAGIC),
    "version_id" / Int32ub,
    Padding(8),
    "program_table" / BlockPtrStruct,
    Padding(0x50),
    "boot_info" / BootInfoStruct,
)
assert BootRecordStruct.sizeof() == BOOT_RECORD_SIZE


@dataclass(frozen=True)
class BootInfo(Record):
    """boot_info, bytes 0x70-0x97 of block 0 (all zero: an IPL disk)."""

    LAYOUT = BootInfoStruct

    magic: bytes = bytes(4)
    version: int = 0
    bp_type: int = 0
    dev_type: int = 0
    flags: int = 0
    dump_sb_offset: int = 0
    reserved: bytes = bytes(24)

    @property
    def is_empty(self) -> bool:
        """IPL disks: zipl clears bytes 0x70-0x97 and fills nothing in."""
        return not any(self.build())

    @property
    def has_magic(self) -> bool:
        return self.magic == ZIPL_MAGIC


@dataclass(frozen=True)
class BootRecord(Record):
    """The 0x98 bytes of block 0 that zipl owns ("zIPL" magic implied)."""

    LAYOUT = BootRecordStruct

    version_id: int
    program_table: BlockPtr
    boot_info: BootInfo
    has_pc_label: bool = context(False)  # 55 AA at 510 of block 0 (DOS MBR or GPT protective MBR)


EMPTY_BOOT_INFO = BootInfo()


def dump_boot_info(superblock_byte_offset: int) -> BootInfo:
    """boot_info as zipl fills it for a SCSI dump disk."""
    return BootInfo(ZIPL_MAGIC, BOOT_INFO_VERSION, BP_TYPE_DUMP, DEV_TYPE_SCSI, BOOT_INFO_FLAGS_ARCH, superblock_byte_offset)


def build_boot_record(pt_blockno: int, block_size: int, boot_info: BootInfo | None = None) -> bytes:
    return BootRecord(DISK_LAYOUT_ID, BlockPtr(pt_blockno, block_size, 0), boot_info or EMPTY_BOOT_INFO).build()


def patch_block0(old_block0: bytes, record: bytes) -> bytes:
    """zipl's read-modify-write: replace bytes 0x00-0x97 and keep the rest."""
    assert len(record) == BOOT_RECORD_SIZE
    return record + old_block0[BOOT_RECORD_SIZE:]
