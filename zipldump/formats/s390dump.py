"""s390 standalone dump header (4 KiB) and end marker, s390-dump-format.md §2-§3.

File layout: the 4096-byte header, then `mem_size` bytes of memory indexed by
absolute address (file offset = 0x1000 + address), then the 16-byte end marker
`DUMP_END` + TOD.  Everything is big-endian and packed (several fields are
unaligned: 0x54, 0x5D, 0x5F).  No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from construct import Array, Bytes, Int8ub, Int16ub, Int32ub, Int64ub, Padding, Struct

from zipldump.errors import FormatError, MagicError

DUMP_MAGIC = 0xA8190173618F23FD
DUMP_MAGIC_EXT = 0xA8190173618F23FE  # segmented "s390_ext" format (zipl DASD dumpers), not written here
LKCD_MAGIC = 0xA8190173618F23ED
# 14 bytes a dump writer puts at the dump start while it copies (zfcpdump 3.0);
# replaced by the dump header when the dump is complete.
BUSY_MARKER = b"zfcpdump busy\0"
HEADER_SIZE = 0x1000
PAGE_SIZE = 4096
HEADER_VERSION = 5  # first version carrying cpu_cnt/real_cpu_cnt/lc_vec
HEADER_VERSION_NO_CPUS = 4  # what zgetdump's writer uses when it knows no CPUs
DUMP_LEVEL_ZCORE = 0
DUMP_LEVEL_TOOLS = 4  # zipl stand-alone dumpers and zgetdump's s390 writer
ARCH_S390 = 1  # header encoding (the lowcore byte 0xA3 uses 0/1 instead, see lowcore.py)
ARCH_S390X = 2
LC_VEC_OFFSET = 0x800
MAX_CPUS = 512  # entries in lc_vec; zgetdump >= 2.18 rejects cpu_cnt > 512
MAX_MEM_SIZE = 0xFFFFFFFF * PAGE_SIZE  # num_pages (offset 0x30) is 32 bits: 16 TiB - 4 KiB

END_MARKER_MAGIC = b"DUMP_END"  # 0x44554D505F454E44
END_MARKER_SIZE = 16

# TOD of 1970-01-01 00:00 UTC; TOD bit 51 is one microsecond.
TOD_UNIX_EPOCH = 0x7D91048BCA000000
U64 = (1 << 64) - 1

DumpHeaderStruct = Struct(
    "magic" / Int64ub,  # 0x000
    "version" / Int32ub,  # 0x008
    "hdr_size" / Int32ub,  # 0x00C
    "dump_level" / Int32ub,  # 0x010
    "page_size" / Int32ub,  # 0x014
    "mem_size" / Int64ub,  # 0x018
    "mem_start" / Int64ub,  # 0x020
    "mem_end" / Int64ub,  # 0x028
    "num_pages" / Int32ub,  # 0x030
    Padding(4),  # 0x034
    "tod" / Int64ub,  # 0x038 STCK at dump time
    "cpu_id" / Int64ub,  # 0x040 STIDP
    "arch" / Int32ub,  # 0x048 1 = s390, 2 = s390x
    "volnr" / Int32ub,  # 0x04C
    "build_arch" / Int32ub,  # 0x050
    "mem_size_real" / Int64ub,  # 0x054 (unaligned)
    "mvdump" / Int8ub,  # 0x05C
    "cpu_cnt" / Int16ub,  # 0x05D (unaligned)
    "real_cpu_cnt" / Int16ub,  # 0x05F (unaligned)
    "zlib_version_s390" / Int8ub,  # 0x061 must stay 0 for the plain format
    "zlib_entry_size" / Int32ub,  # 0x062 must stay 0
    Padding(0x200 - 0x66),
    "mvdump_sign" / Int64ub,  # 0x200
    "mvdump_zipl_time" / Int64ub,  # 0x208
    Padding(LC_VEC_OFFSET - 0x210),
    "lc_vec" / Array(MAX_CPUS, Int32ub),  # 0x800 prefix of each CPU
)
assert DumpHeaderStruct.sizeof() == HEADER_SIZE

EndMarkerStruct = Struct(
    "magic" / Bytes(8),
    "tod" / Int64ub,
)
assert EndMarkerStruct.sizeof() == END_MARKER_SIZE


# --- TOD clock -------------------------------------------------------------------
def tod_from_unix_us(us: int) -> int:
    """Unix microseconds -> 64-bit STCK value (§2.6)."""
    return ((us << 12) + TOD_UNIX_EPOCH) & U64


def tod_to_unix_us(tod: int) -> int:
    """64-bit STCK value -> Unix microseconds (negative before 1970)."""
    return (tod - TOD_UNIX_EPOCH) >> 12


def tod_from_datetime(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return tod_from_unix_us((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def tod_to_datetime(tod: int) -> datetime:
    us = tod_to_unix_us(tod)
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


# --- header ----------------------------------------------------------------------
@dataclass(frozen=True)
class DumpHeader:
    """The fields of the 4 KiB header.  `prefixes` are lc_vec[0:cpu_cnt]."""

    mem_size: int
    version: int = HEADER_VERSION
    magic: int = DUMP_MAGIC
    hdr_size: int = HEADER_SIZE
    dump_level: int = DUMP_LEVEL_ZCORE
    page_size: int = PAGE_SIZE
    mem_start: int = 0
    mem_end: int | None = None  # None: = mem_size
    num_pages: int | None = None  # None: mem_size // page_size
    tod: int = 0
    cpu_id: int = 0
    arch: int = ARCH_S390X
    volnr: int = 0
    build_arch: int = ARCH_S390X
    mem_size_real: int | None = None  # None: = mem_size
    mvdump: int = 0
    prefixes: tuple[int, ...] = ()
    real_cpu_cnt: int | None = None  # None: = len(prefixes)
    cpu_cnt: int | None = None  # None: = len(prefixes); a parsed header keeps the raw value
    zlib_version_s390: int = 0
    zlib_entry_size: int = 0
    mvdump_sign: int = 0
    mvdump_zipl_time: int = 0
    lc_vec_raw: tuple[int, ...] = field(default=(), repr=False)  # all 512 entries after parse

    # Effective values (defaults resolved).
    @property
    def end(self) -> int:
        return self.mem_size if self.mem_end is None else self.mem_end

    @property
    def pages(self) -> int:
        return self.mem_size // self.page_size if self.num_pages is None else self.num_pages

    @property
    def cpus(self) -> int:
        return len(self.prefixes) if self.cpu_cnt is None else self.cpu_cnt

    @property
    def real_cpus(self) -> int:
        return len(self.prefixes) if self.real_cpu_cnt is None else self.real_cpu_cnt

    @property
    def real_mem(self) -> int:
        return self.mem_size if self.mem_size_real is None else self.mem_size_real

    @property
    def end_marker_offset(self) -> int:
        # zgetdump uses the constant 0x1000, not hdr_size (§3).
        return HEADER_SIZE + self.mem_size

    def build(self) -> bytes:
        if len(self.prefixes) > MAX_CPUS:
            raise FormatError(f"{len(self.prefixes)} CPUs do not fit lc_vec (max {MAX_CPUS})", where="dump header lc_vec")
        if self.lc_vec_raw:
            # A parsed header rebuilds byte for byte, whatever cpu_cnt says.
            lc_vec = list(self.lc_vec_raw)
        else:
            lc_vec = list(self.prefixes) + [0] * (MAX_CPUS - len(self.prefixes))
        return bytes(DumpHeaderStruct.build(
            {
                "magic": self.magic,
                "version": self.version,
                "hdr_size": self.hdr_size,
                "dump_level": self.dump_level,
                "page_size": self.page_size,
                "mem_size": self.mem_size,
                "mem_start": self.mem_start,
                "mem_end": self.end,
                "num_pages": self.pages,
                "tod": self.tod,
                "cpu_id": self.cpu_id,
                "arch": self.arch,
                "volnr": self.volnr,
                "build_arch": self.build_arch,
                "mem_size_real": self.real_mem,
                "mvdump": self.mvdump,
                "cpu_cnt": self.cpus,
                "real_cpu_cnt": self.real_cpus,
                "zlib_version_s390": self.zlib_version_s390,
                "zlib_entry_size": self.zlib_entry_size,
                "mvdump_sign": self.mvdump_sign,
                "mvdump_zipl_time": self.mvdump_zipl_time,
                "lc_vec": lc_vec,
            }
        ))

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DumpHeader:
        """Decode 4096 bytes.  Checks only the magic; see dump.s390 for the rest."""
        if len(data) < HEADER_SIZE:
            raise FormatError(f"dump header needs {HEADER_SIZE} bytes, got {len(data)}", where="dump header")
        c = DumpHeaderStruct.parse(bytes(data[:HEADER_SIZE]))
        if c.magic != DUMP_MAGIC:
            raise MagicError(
                f"magic 0x{c.magic:016X} is not the s390 dump magic 0x{DUMP_MAGIC:016X}", where="dump header offset 0x0 field magic"
            )
        lc_vec = tuple(c.lc_vec)
        ncpu = min(c.cpu_cnt, MAX_CPUS) if c.version >= HEADER_VERSION else 0
        return cls(
            mem_size=c.mem_size,
            version=c.version,
            magic=c.magic,
            hdr_size=c.hdr_size,
            dump_level=c.dump_level,
            page_size=c.page_size,
            mem_start=c.mem_start,
            mem_end=c.mem_end,
            num_pages=c.num_pages,
            tod=c.tod,
            cpu_id=c.cpu_id,
            arch=c.arch,
            volnr=c.volnr,
            build_arch=c.build_arch,
            mem_size_real=c.mem_size_real,
            mvdump=c.mvdump,
            prefixes=lc_vec[:ncpu],
            real_cpu_cnt=c.real_cpu_cnt,
            cpu_cnt=c.cpu_cnt,
            zlib_version_s390=c.zlib_version_s390,
            zlib_entry_size=c.zlib_entry_size,
            mvdump_sign=c.mvdump_sign,
            mvdump_zipl_time=c.mvdump_zipl_time,
            lc_vec_raw=lc_vec,
        )


def build_header(
    mem_size: int,
    *,
    prefixes: tuple[int, ...] | list[int] = (),
    tod: int = 0,
    cpu_id: int = 0,
    real_cpu_cnt: int | None = None,
    dump_level: int = DUMP_LEVEL_ZCORE,
    build_arch: int = ARCH_S390X,
    mem_size_real: int | None = None,
    version: int | None = None,
) -> bytes:
    """A header as real tools write it (§8.8): version 5, hdr_size 0x1000, page
    size 4096, mem_start 0, mem_end = mem_size, arch 2, lc_vec = prefixes."""
    if mem_size <= 0 or mem_size % PAGE_SIZE:
        # zgetdump 2.16 crashes on 0; a partial page is accepted by it but never written.
        raise FormatError(f"memory size {mem_size} must be a positive multiple of {PAGE_SIZE}", where="dump header field mem_size")
    if mem_size > MAX_MEM_SIZE:
        raise FormatError(
            f"memory size 0x{mem_size:x} exceeds 0x{MAX_MEM_SIZE:x}, the most the 32-bit num_pages field can count",
            where="dump header offset 0x30 field num_pages",
        )
    return DumpHeader(
        mem_size=mem_size,
        version=HEADER_VERSION if version is None else version,
        tod=tod,
        cpu_id=cpu_id,
        prefixes=tuple(prefixes),
        real_cpu_cnt=real_cpu_cnt,
        dump_level=dump_level,
        build_arch=build_arch,
        mem_size_real=mem_size_real,
    ).build()


def parse_header(data: bytes | memoryview) -> DumpHeader:
    return DumpHeader.parse(data)


# --- end marker ------------------------------------------------------------------
def build_end_marker(tod: int) -> bytes:
    return bytes(EndMarkerStruct.build({"magic": END_MARKER_MAGIC, "tod": tod}))


def parse_end_marker(data: bytes | bytearray | memoryview) -> int | None:
    """TOD of a valid end marker, or None (short, or not `DUMP_END`: case-sensitive, 8 bytes)."""
    if len(data) < END_MARKER_SIZE:
        return None
    c = EndMarkerStruct.parse(bytes(data[:END_MARKER_SIZE]))
    if c.magic != END_MARKER_MAGIC:
        return None
    return int(c.tod)


def end_marker_ok(header_tod: int, data: bytes | memoryview) -> bool:
    """zgetdump's completeness rule: valid string and marker TOD >= header TOD (all 64 bits)."""
    tod = parse_end_marker(data)
    return tod is not None and tod >= header_tod


def to_mib(nbytes: int) -> int:
    """zgetdump's rounding for sizes in MB: (x + 512 KiB) / 1 MiB."""
    return (nbytes + (1 << 19)) >> 20
