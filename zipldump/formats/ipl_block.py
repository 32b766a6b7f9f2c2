"""IPL parameter block (IPIB) and the lowcore pointer to it, s390-dump-format.md §5.5.

The list-directed block is a list header followed by one parameter block; only
the FCP (SCSI) parameter block is declared here (layout of the Linux uapi
`struct ipl_pl_hdr` / `struct ipl_pb0_fcp`, zipl-scsi-format.md §4 for
`bootprog` and `br_lba`).  The crashed system leaves `IpibInfo` (address and
checksum of its block) at lowcore 0xE00; zcore re-IPLs from it.  No I/O here.
"""

from __future__ import annotations

from construct import Bytes, Int8ub, Int16ub, Int32ub, Int64ub, Padding, Struct

from zipldump.formats.fields import offset_of

IPL_PL_VERSION = 1
PBT_FCP = 0  # parameter block type: FCP (SCSI)
IPL_OPT_IPL = 0x10  # opt: load
IPL_OPT_DUMP = 0x20  # opt: dump

# struct ipl_pl_hdr: length of the whole list, flags, version.
IplListHeader = Struct(
    "len" / Int32ub,
    "flags" / Int8ub,
    Padding(2),
    "version" / Int8ub,
)

# struct ipl_pb0_fcp (packed, without the variable-length SCP data).
IplFcpBlock = Struct(
    "len" / Int32ub,  # 0x000
    "pbt" / Int8ub,  # 0x004 parameter block type, PBT_FCP
    Padding(3),
    "loadparm" / Bytes(8),  # 0x008
    Padding(304),
    "opt" / Int8ub,  # 0x140 IPL_OPT_IPL / IPL_OPT_DUMP
    Padding(3),
    "cssid" / Int8ub,  # 0x144
    Padding(1),
    "devno" / Int16ub,  # 0x146
    Padding(4),
    "wwpn" / Int64ub,  # 0x14C
    "lun" / Int64ub,  # 0x154
    "bootprog" / Int32ub,  # 0x15C
    Padding(12),
    "br_lba" / Int64ub,  # 0x16C
    "scp_data_len" / Int32ub,  # 0x174
    Padding(260),
)
assert IplListHeader.sizeof() == 8
assert IplFcpBlock.sizeof() == 636
assert offset_of(IplFcpBlock, "opt") == 320 and offset_of(IplFcpBlock, "bootprog") == 348

# A list-directed FCP IPIB without SCP data.
IplFcpParameterList = Struct(
    "hdr" / IplListHeader,
    "fcp" / IplFcpBlock,
)
IPIB_FCP_LEN = IplFcpParameterList.sizeof()  # 8 + 636
PB_OFFSET = IplListHeader.sizeof()  # the parameter block follows the list header
# A block must reach this far for its FCP device fields (up to `bootprog`) to be read.
FCP_FIELDS_END = PB_OFFSET + offset_of(IplFcpBlock, "bootprog") + 4
PBT_OFFSET = PB_OFFSET + offset_of(IplFcpBlock, "pbt")

# struct ipib_info at lowcore 0xE00 (packed, 64-bit): block address, checksum.
IpibInfo = Struct(
    "ipib" / Int64ub,
    "checksum" / Int32ub,
)
IPIB_INFO_SIZE = IpibInfo.sizeof()
assert IPIB_INFO_SIZE == 12


def build_fcp_ipib(devno: int, wwpn: int, lun: int, bootprog: int = 0, *, opt: int = IPL_OPT_IPL) -> bytes:
    """A list-directed FCP IPL parameter block (version 1), no SCP data.
    Only the fields zcore and a re-IPL need are meaningful here."""
    return bytes(IplFcpParameterList.build(
        {
            "hdr": {"len": IPIB_FCP_LEN, "flags": 0, "version": IPL_PL_VERSION},
            "fcp": {
                "len": IPIB_FCP_LEN - PB_OFFSET,
                "pbt": PBT_FCP,
                "loadparm": bytes(8),
                "opt": opt,
                "cssid": 0,
                "devno": devno,
                "wwpn": wwpn,
                "lun": lun,
                "bootprog": bootprog,
                "br_lba": 0,
                "scp_data_len": 0,
            },
        }
    ))


def parse_fcp_block(block: bytes) -> dict[str, int] | None:
    """The FCP fields of a list-directed block, or None when it is too short to
    hold them or its parameter block is not FCP.  A block cut after `bootprog`
    reads the missing tail as zeros."""
    if len(block) < FCP_FIELDS_END or block[PBT_OFFSET] != PBT_FCP:
        return None
    c = IplFcpBlock.parse(bytes(block[PB_OFFSET : PB_OFFSET + IplFcpBlock.sizeof()]).ljust(IplFcpBlock.sizeof(), b"\0"))
    return {"opt": c.opt, "devno": c.devno, "wwpn": c.wwpn, "lun": c.lun, "bootprog": c.bootprog}
