"""CPU registers and the z/Architecture store-status save area, s390-dump-format.md §4.1.

The machine's "store status" writes a CPU's registers to lowcore offsets
0x1200-0x13FF of that CPU's prefix page (the boot CPU's to absolute 0x1200).
A dump carries each CPU's registers there; readers find the prefix pages through
the header's lc_vec.  No I/O here.

Clock comparator: `CpuRegisters.ckc` is the full 64-bit architected value.  The
save area holds it shifted right by 8 (byte 0x1330 zero, bits 0-55 in
0x1331-0x1337).  `zgetdump -f s390` of a QEMU ELF copies QEMU's unshifted value
there instead, so `ckc_from_field` reads a field whose top byte is non-zero as an
unshifted value (a shifted field always has a zero top byte).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from construct import Array, Int32ub, Int64ub, Padding, Struct

from zipldump.errors import FormatError
from zipldump.jsonout import JsonMixin, member

SAVE_AREA_OFFSET = 0x1200  # within the lowcore (prefix page)
SAVE_AREA_SIZE = 0x200
SAVE_AREA_END = SAVE_AREA_OFFSET + SAVE_AREA_SIZE
LOWCORE_SIZE = 0x2000  # z/Architecture lowcore is two pages
ARCH_MODE_OFFSET = 0xA3  # store status: 0 = ESA/390, 1 = z/Architecture
ARCH_MODE_ZARCH = 1
ARCH_MODE_ESA = 0
CPU_ADDR_OFFSET = 0x84
IPIB_OFFSET = 0xE00  # u64 IPL parameter block address, then u32 checksum at 0xE08
VX_SAVE_AREA_ADDR_OFFSET = 0x11B0  # must stay 0 unless vector registers are provided

# Fields the IPL loader fills before starting the program (zipl-scsi-format.md §9
# step 3, §12.1 step 8).
LC_IPL_PSW = 0x0  # u64 PSW the loader / stage 3 starts
LC_SUBCHANNEL_ID = 0xB8  # u16 subsystem-id word high half, then the subchannel number
LC_SUBCHANNEL_NR = 0xBA  # u16
LC_IPLDEV = 0xC6C  # u32 IPL device word

# Absolute offsets of each field inside the lowcore.
FPRS_OFFSET = 0x1200
GPRS_OFFSET = 0x1280
PSW_OFFSET = 0x1300
PREFIX_OFFSET = 0x1318
FPC_OFFSET = 0x131C
TODPREG_OFFSET = 0x1324
TIMER_OFFSET = 0x1328
CKC_OFFSET = 0x1330
ACRS_OFFSET = 0x1340
CRS_OFFSET = 0x1380

# Byte ranges (lowcore offsets, end exclusive) the store status writes; the pads
# between them keep whatever memory held (zcore's lc_mask, zipl's copy_lowcore_64).
REGISTER_RANGES: tuple[tuple[int, int], ...] = ((0x1200, 0x1310), (0x1318, 0x1320), (0x1324, 0x1338), (0x1340, 0x1400))

U64 = (1 << 64) - 1

SaveAreaStruct = Struct(
    "fprs" / Array(16, Int64ub),  # 0x1200
    "gprs" / Array(16, Int64ub),  # 0x1280
    "psw" / Array(2, Int64ub),  # 0x1300 mask, address
    Padding(8),  # 0x1310
    "prefix" / Int32ub,  # 0x1318
    "fpc" / Int32ub,  # 0x131C
    Padding(4),  # 0x1320
    "todpreg" / Int32ub,  # 0x1324
    "timer" / Int64ub,  # 0x1328
    "ckc_field" / Int64ub,  # 0x1330 = CKC >> 8 as stored by the machine
    Padding(8),  # 0x1338
    "acrs" / Array(16, Int32ub),  # 0x1340
    "crs" / Array(16, Int64ub),  # 0x1380
)
assert SaveAreaStruct.sizeof() == SAVE_AREA_SIZE


def _zeros16() -> tuple[int, ...]:
    return (0,) * 16


@dataclass(frozen=True)
class CpuRegisters(JsonMixin):
    """One CPU's architected registers as store status saves them.

    `ckc` is the full clock comparator; `cpu_address` is not part of the save
    area (informational, e.g. from the simulator).  `vxrs` optionally holds the
    512 bytes of V0-V31 (16 bytes each) when a source provides them.
    """

    psw_mask: int = 0
    psw_addr: int = 0
    gprs: tuple[int, ...] = field(default_factory=_zeros16)
    acrs: tuple[int, ...] = field(default_factory=_zeros16)
    fprs: tuple[int, ...] = field(default_factory=_zeros16)
    fpc: int = 0
    crs: tuple[int, ...] = field(default_factory=_zeros16)
    prefix: int = 0
    timer: int = 0
    ckc: int = 0
    todpreg: int = 0
    cpu_address: int | None = field(default=None, compare=False)  # informational: not in the save area
    vxrs: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name, width in (("gprs", 64), ("acrs", 32), ("fprs", 64), ("crs", 64)):
            regs = tuple(getattr(self, name))
            if len(regs) != 16:
                raise FormatError(f"{name} needs 16 registers, got {len(regs)}", where=f"CPU registers field {name}")
            for i, v in enumerate(regs):
                if not 0 <= v < (1 << width):
                    raise FormatError(f"{name}[{i}] = {v:#x} does not fit {width} bits", where=f"CPU registers field {name}")
            object.__setattr__(self, name, regs)
        for name, width in (("psw_mask", 64), ("psw_addr", 64), ("fpc", 32), ("prefix", 32), ("timer", 64), ("ckc", 64), ("todpreg", 32)):
            v = getattr(self, name)
            if not 0 <= v < (1 << width):
                raise FormatError(f"{name} = {v:#x} does not fit {width} bits", where=f"CPU registers field {name}")
        if self.vxrs is not None and len(self.vxrs) != 512:
            raise FormatError(f"vector registers need 512 bytes, got {len(self.vxrs)}", where="CPU registers field vxrs")

    @property
    def psw(self) -> tuple[int, int]:
        return (self.psw_mask, self.psw_addr)

    def with_(self, **changes: object) -> CpuRegisters:
        return replace(self, **changes)  # type: ignore[arg-type]

    # Hex without "0x" but the prefix; cpu_address and vxrs are not printed.
    JSON = (
        member("psw", lambda r: f"{r.psw_mask:016x} {r.psw_addr:016x}"),
        member("prefix", fmt="hex32"),
        member("gprs", fmt="x64"),
        member("acrs", fmt="x32"),
        member("fprs", fmt="x64"),
        member("fpc", fmt="x32"),
        member("crs", fmt="x64"),
        member("timer", fmt="x64"),
        member("ckc", fmt="x64"),
        member("todpreg", fmt="x32"),
    )


def ckc_to_field(ckc: int) -> int:
    """The u64 the machine stores at 0x1330: CKC >> 8."""
    return ckc >> 8


def ckc_from_field(value: int) -> int:
    """Inverse of ckc_to_field (low 8 bits become 0).  A field with a non-zero
    top byte cannot be CKC >> 8; it is taken as an unshifted copy (QEMU note)."""
    if value >> 56:
        return value
    return (value << 8) & U64


def build_save_area(regs: CpuRegisters) -> bytes:
    """The 512 bytes at lowcore 0x1200-0x13FF (pads zero)."""
    return bytes(SaveAreaStruct.build(
        {
            "fprs": list(regs.fprs),
            "gprs": list(regs.gprs),
            "psw": [regs.psw_mask, regs.psw_addr],
            "prefix": regs.prefix,
            "fpc": regs.fpc,
            "todpreg": regs.todpreg,
            "timer": regs.timer,
            "ckc_field": ckc_to_field(regs.ckc),
            "acrs": list(regs.acrs),
            "crs": list(regs.crs),
        }
    ))


def overlay_save_area(old: bytes | bytearray | memoryview, regs: CpuRegisters) -> bytes:
    """Store status into an existing 512-byte area: only the register fields
    change, the pad bytes keep `old` (as the machine and zcore do)."""
    if len(old) != SAVE_AREA_SIZE:
        raise FormatError(f"save area needs {SAVE_AREA_SIZE} bytes, got {len(old)}", where="save area")
    new = build_save_area(regs)
    out = bytearray(old)
    for start, end in REGISTER_RANGES:
        a, b = start - SAVE_AREA_OFFSET, end - SAVE_AREA_OFFSET
        out[a:b] = new[a:b]
    return bytes(out)


def parse_save_area(data: bytes | bytearray | memoryview, *, cpu_address: int | None = None) -> CpuRegisters:
    """Registers from the 512 bytes at lowcore 0x1200-0x13FF (pads ignored)."""
    if len(data) < SAVE_AREA_SIZE:
        raise FormatError(f"save area needs {SAVE_AREA_SIZE} bytes, got {len(data)}", where="save area")
    c = SaveAreaStruct.parse(bytes(data[:SAVE_AREA_SIZE]))
    return CpuRegisters(
        psw_mask=c.psw[0],
        psw_addr=c.psw[1],
        gprs=tuple(c.gprs),
        acrs=tuple(c.acrs),
        fprs=tuple(c.fprs),
        fpc=c.fpc,
        crs=tuple(c.crs),
        prefix=c.prefix,
        timer=c.timer,
        ckc=ckc_from_field(c.ckc_field),
        todpreg=c.todpreg,
        cpu_address=cpu_address,
    )


def save_area_address(prefix: int) -> int:
    """Absolute address of a CPU's save area."""
    return prefix + SAVE_AREA_OFFSET
