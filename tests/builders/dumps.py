"""s390 dumps and zipl dump disks built from the formats' own declarations."""

from __future__ import annotations

from pathlib import Path

from zipldump.formats import s390dump as sd
from zipldump.formats.bootrecord import build_boot_record, dump_boot_info
from zipldump.formats.dump_superblock import build_superblock, cksm

MIB = 1 << 20
TOD = 0xC0BFF9D0D7A00000
END_TOD = 0xC0BFF9F8E5880000
PART_START = 1 * MIB


def s390_dump(path: Path, mem_size: int = 2 * MIB, *, tod: int = TOD, end_tod: int | None = END_TOD, fill: bytes = b"") -> Path:
    """A complete s390 dump without CPUs: a stamp at the start of every 64 KiB (or `fill` repeated), end marker."""
    with open(path, "wb") as fh:
        fh.write(sd.build_header(mem_size, prefixes=(), tod=tod))
        if fill:
            fh.write((fill * (mem_size // len(fill) + 1))[:mem_size])
        else:
            for addr in range(0, mem_size, 64 << 10):
                fh.seek(sd.HEADER_SIZE + addr)
                fh.write(b"PAGE%012x" % addr)
        fh.seek(sd.HEADER_SIZE + mem_size)
        if end_tod is not None:
            fh.write(sd.build_end_marker(end_tod))
        fh.truncate(fh.tell())
    return path


def dump_disk(path: Path, dump: Path | None, *, part_size: int = 8 * MIB, block_size: int = 512) -> Path:
    """zipl's dump boot_info in block 0, the superblock in the partition tail (checksum right), `dump` at the partition start."""
    sb_off = PART_START + part_size - 4096
    dump_size = part_size - 64 * 1024
    data = dump.read_bytes() if dump else b""
    assert len(data) <= dump_size
    with open(path, "wb") as fh:
        fh.truncate(PART_START + part_size)
        fh.write(build_boot_record(10, block_size, dump_boot_info(sb_off)))
        fh.seek(PART_START)
        fh.write(data)
        fh.seek(sb_off)
        fh.write(build_superblock(PART_START, part_size, dump_size, cksm(data[:4096].ljust(4096, b"\0"))))
    return path
