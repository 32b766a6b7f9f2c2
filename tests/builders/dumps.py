"""s390 dumps, zcore/mem contents and disks holding a dump, built from the formats' own declarations."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from builders.registers import sample_regs
from zipldump.formats import s390dump as sd
from zipldump.formats.bootrecord import build_boot_record, dump_boot_info
from zipldump.formats.dump_superblock import build_superblock, cksm
from zipldump.formats.lowcore import build_save_area

MIB = 1 << 20
TOD = 0xC0BFF9D0D7A00000  # s390-dump-format.md §9
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


def dump_disk(path: Path, dump: Path | None, *, part_size: int = 8 * MIB, block_size: int = 512, fix_csum: bool = True) -> Path:
    """zipl's dump boot_info in block 0, the superblock in the partition tail, `dump` at the partition start.

    No partition table.  The superblock checksum covers
    the dump's first 4 KiB, or is wrong on purpose with fix_csum=False."""
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
        csum = cksm(data[:4096].ljust(4096, b"\0")) if fix_csum else 0x12345678
        fh.write(build_superblock(PART_START, part_size, dump_size, csum))
    return path


# --- a small valid dump for the hostile suites ------------------------------------------------
SMALL_DUMP_MEM = 0x10000  # 64 KiB: 16 pages
SMALL_DUMP_PREFIXES = (0x0, 0x6000)
SMALL_DUMP_END_TOD = TOD + 0x1000000


def valid_dump() -> bytes:
    """A 64 KiB dump with two CPUs (save areas at their prefixes), page stamps and an end marker."""
    regs = [sample_regs(1).with_(prefix=SMALL_DUMP_PREFIXES[0]), sample_regs(2).with_(prefix=SMALL_DUMP_PREFIXES[1])]
    out = bytearray(sd.build_header(SMALL_DUMP_MEM, prefixes=SMALL_DUMP_PREFIXES, tod=TOD, real_cpu_cnt=2))
    mem = bytearray(SMALL_DUMP_MEM)
    for addr in range(0, SMALL_DUMP_MEM, 0x1000):
        mem[addr : addr + 8] = b"PG%06x" % addr
    for r in regs:
        mem[r.prefix + 0x1200 : r.prefix + 0x1400] = build_save_area(r)
    out += mem + sd.build_end_marker(SMALL_DUMP_END_TOD)
    return bytes(out)


# --- zcore/mem, as the dump kernel serves it ---------------------------------------------------
def make_zcore_file(path: Path, mem_size: int, *, prefixes=(0x10000, 0x12000), seed: int = 1) -> tuple[bytes, str]:
    """zcore/mem content: header + pseudo-random memory.  Returns (header, sha256 of memory)."""
    header = sd.build_header(mem_size, prefixes=prefixes, tod=TOD, cpu_id=0x0001234520978000)
    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        fh.write(header)
        left = mem_size
        while left:
            chunk = rng.randbytes(min(left, 4 * MIB))
            h.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return header, h.hexdigest()


# --- a dump of a Linux-like guest: vector save areas and the kernel's vmcoreinfo ------------------
LINUX_PREFIXES = (0x10000, 0x20000)
LINUX_VX_AREAS = (0x30000, 0x30400)  # 1024-aligned, as zgetdump wants them
LINUX_VMCOREINFO_AT = 0x40000
LINUX_UTS_AT = 0x50100
LINUX_RELEASE = "6.1.0-99-s390x"
LINUX_VERSION = "#1 SMP Debian 6.1.999-1 (2026-11-26)"


def linux_memory(mem_size: int = 4 * MIB, *, vector: bool = True, vmcoreinfo: bool = True) -> tuple[bytearray, list]:
    """Memory of a 2-CPU Linux-like guest after store status: save areas at the prefixes,
    the lowcores' +0x11B0 pointing at vector save areas, 0xE0C at a VMCOREINFO note whose
    SYMBOL(init_uts_ns) points at a struct new_utsname.  Returns (memory, registers)."""
    from zipldump.dump.vmcoreinfo import build_utsname, build_vmcoreinfo_note

    mem = bytearray(mem_size)
    for addr in range(0, mem_size, 0x1000):
        mem[addr : addr + 8] = b"PG%06x" % (addr >> 12)
    regs = []
    for i, (prefix, vx) in enumerate(zip(LINUX_PREFIXES, LINUX_VX_AREAS, strict=True)):
        area = bytes((i * 37 + b) & 0xFF for b in range(512))
        r = sample_regs(i + 1).with_(prefix=prefix)
        mem[prefix + 0x1200 : prefix + 0x1400] = build_save_area(r)
        mem[prefix + 0x11B0 : prefix + 0x11B8] = (vx if vector else 0).to_bytes(8, "big")
        if vector:
            mem[vx : vx + 512] = area
            # the vector save area's first halves of V0-V15 are the FPRs
            r = r.with_(vxrs=b"".join(r.fprs[n].to_bytes(8, "big") + area[16 * n + 8 : 16 * n + 16] for n in range(16)) + area[256:])
        regs.append(r)
    if vmcoreinfo:
        text = f"OSRELEASE={LINUX_RELEASE}\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={LINUX_UTS_AT - 4:x}\n".encode()
        note = build_vmcoreinfo_note(text)
        mem[LINUX_VMCOREINFO_AT : LINUX_VMCOREINFO_AT + len(note)] = note
        mem[0xE0C:0xE14] = LINUX_VMCOREINFO_AT.to_bytes(8, "big")
        uts = build_utsname(LINUX_RELEASE, LINUX_VERSION, nodename="crashed")
        mem[LINUX_UTS_AT : LINUX_UTS_AT + len(uts)] = uts
    return mem, regs


def linux_s390_dump(path: Path, mem_size: int = 4 * MIB, **kw) -> list:
    """`linux_memory` as a complete s390 dump file; returns the CPUs' registers."""
    mem, regs = linux_memory(mem_size, **kw)
    with open(path, "wb") as fh:
        fh.write(sd.build_header(mem_size, prefixes=LINUX_PREFIXES, tod=TOD, real_cpu_cnt=2))
        fh.write(mem)
        fh.write(sd.build_end_marker(END_TOD))
    return regs
