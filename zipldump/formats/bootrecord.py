"""Block 0 of a zipl SCSI disk ("SCSI MBR") and its boot_info, spec §3.

zipl rewrites only bytes 0x00-0x97 of block 0; everything after (boot code,
partition table, 55 AA) is preserved.
"""

from __future__ import annotations

from construct import Bytes, Const, Int8ub, Int32ub, Int64ub, Padding, Struct

from zipldump.formats.blockptr import BlockPtrStruct

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

BootInfo = Struct(
    "magic" / Bytes(4),  # "zIPL" when filled (dump); all zero for IPL
    "version" / Int8ub,
    "bp_type" / Int8ub,
    "dev_type" / Int8ub,
    "flags" / Int8ub,
    "dump_sb_offset" / Int64ub,  # byte offset of the ZFCPDUMP superblock on the whole disk
    Padding(8),  # bp.dump.param.scsi.reserved
    Padding(16),  # bp.dump.unused
)
assert BootInfo.sizeof() == 40

BootRecord = Struct(
    "magic" / Const(ZIPL_MAGIC),
    "version_id" / Int32ub,
    Padding(8),
    "program_table" / BlockPtrStruct,
    Padding(0x50),
    "boot_info" / BootInfo,
)
assert BootRecord.sizeof() == BOOT_RECORD_SIZE

EMPTY_BOOT_INFO = {"magic": bytes(4), "version": 0, "bp_type": 0, "dev_type": 0, "flags": 0, "dump_sb_offset": 0}


def dump_boot_info(superblock_byte_offset: int) -> dict[str, object]:
    """boot_info as zipl fills it for a SCSI dump disk."""
    return {
        "magic": ZIPL_MAGIC,
        "version": BOOT_INFO_VERSION,
        "bp_type": BP_TYPE_DUMP,
        "dev_type": DEV_TYPE_SCSI,
        "flags": BOOT_INFO_FLAGS_ARCH,
        "dump_sb_offset": superblock_byte_offset,
    }


def build_boot_record(pt_blockno: int, block_size: int, boot_info: dict[str, object] | None = None) -> bytes:
    return bytes(BootRecord.build(
        {
            "version_id": DISK_LAYOUT_ID,
            "program_table": {"blockno": pt_blockno, "size": block_size, "blockct": 0},
            "boot_info": boot_info or EMPTY_BOOT_INFO,
        }
    ))


def patch_block0(old_block0: bytes, record: bytes) -> bytes:
    """zipl's read-modify-write: replace bytes 0x00-0x97 and keep the rest."""
    assert len(record) == BOOT_RECORD_SIZE
    return record + old_block0[BOOT_RECORD_SIZE:]
