"""zipl stage-3 parameters, loaded at 0x9000, spec §8.3.

80 bytes since zipl 2.18 (envblk fields); 64 bytes in 2.9-2.17.  The component is
one whole block; the bytes after the struct are not zipl's.
"""

from __future__ import annotations

from construct import Int64ub, Struct

STAGE3_PARAMS_ADDRESS = 0x9000
STAGE3_LOAD_ADDRESS = 0xA000
STAGE3_HEAP_ADDRESS = 0x2000
STAGE3_HEAP_SIZE = 0x4000
STAGE3_STACK_ADDRESS = 0xF000
STAGE3_STACK_SIZE = 0x1000
NO_PARMLINE = 0xFFFFFFFFFFFFFFFF
FLAG_SCSI = 0x0001000000000000
FLAG_KDUMP = 0x0002000000000000
DEFAULT_PSW_LOAD = 0x0008000080010000

Stage3ParamsLegacy = Struct(
    "parm_addr" / Int64ub,
    "initrd_addr" / Int64ub,
    "initrd_len" / Int64ub,
    "load_psw" / Int64ub,
    "extra_parm" / Int64ub,
    "flags" / Int64ub,
    "image_len" / Int64ub,
    "image_addr" / Int64ub,
)
Stage3Params = Struct(
    *Stage3ParamsLegacy.subcons,
    "envblk_addr" / Int64ub,
    "envblk_len" / Int64ub,
)
assert Stage3ParamsLegacy.sizeof() == 64
assert Stage3Params.sizeof() == 80
