"""s390 Linux kernel image layout (parm area at 0x10400), spec zipl-scsi-format.md §10.

File offset equals memory address for everything here once the image is loaded
as zipl/stage 3 place it.
"""

from __future__ import annotations

from construct import Int64ub, Struct

IMAGE_LOAD_ADDRESS = 0x10000  # IMAGE_ENTRY
# The file's first 64 KiB (CCW IPL header, below the load address: file offset =
# memory address) which stage 3's memmove and the direct layout drop.
KERNEL_HEADER_SIZE = 0x10000
assert KERNEL_HEADER_SIZE == IMAGE_LOAD_ADDRESS
IMAGE_ENTRY_KDUMP = 0x10010
EP_OFFSET = 0x10008
EP_STRING = b"S390EP"
PARMAREA = 0x10400
IPL_DEVICE = 0x10400
INITRD_START = 0x10408
INITRD_SIZE = 0x10410  # right after INITRD_START
OLDMEM_BASE = 0x10418
OLDMEM_SIZE = 0x10420
KERNEL_VERSION = 0x10428
MAX_COMMAND_LINE_SIZE = 0x10430
COMMAND_LINE = 0x10480
LEGACY_COMMAND_LINE_SIZE = 896
MIN_IMAGE_SIZE = 0x10438  # zipl >= 2.20 refuses smaller IPL images

ParmArea = Struct(
    "ipl_device" / Int64ub,
    "initrd_start" / Int64ub,
    "initrd_size" / Int64ub,
    "oldmem_base" / Int64ub,
    "oldmem_size" / Int64ub,
    "kernel_version" / Int64ub,
    "max_command_line_size" / Int64ub,
)
assert ParmArea.sizeof() == MAX_COMMAND_LINE_SIZE + 8 - PARMAREA


def command_line_limit(max_command_line_size: int) -> int:
    """Bytes available for the command line including its NUL (0 means legacy 896)."""
    return max_command_line_size or LEGACY_COMMAND_LINE_SIZE
