"""zcore: zcore/mem header and memory (HSA through SDIAS, registers laid over the
prefix pages), random reads against a slow reference, memmap, reipl, hsa, and
the spec's worked example (s390-dump-format.md §9)."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from builders.tools import have_tool

from zipldump.errors import DumpError, SclpError
from zipldump.formats import elfcore
from zipldump.formats.lowcore import (
    REGISTER_RANGES,
    CpuRegisters,
    build_save_area,
    parse_save_area,
)
from zipldump.formats.s390dump import HEADER_SIZE, parse_header
from zipldump.sim.crashed import IPIB_ADDR, from_elf, generate, generated_registers
from zipldump.sim.machine import Machine
from zipldump.sim.sclp import Sdias
from zipldump.sim.zcore import Zcore

MiB = 1 << 20
TOD = 0xC0BFF9D0D7A00000
CPU_ID = 0x0001234520978000


def boot(c, hsa=32 * MiB, **kw) -> tuple[Machine, Zcore]:
    m = Machine(c, hsa, tod_clock=lambda: TOD)
    m.dump_ipl()
    return m, Zcore(m, Sdias(m), **kw)


def put_regs(img: bytearray, base: int, regs: CpuRegisters) -> None:
    """Store-status semantics, written independently of zcore: register fields only."""
    sa = build_save_area(regs)
    for s, e in REGISTER_RANGES:
        img[base + s : base + e] = sa[s - 0x1200 : e - 0x1200]


def reference_memory(c) -> bytearray:
    img = bytearray(c.read_original(0, c.memory_size))
    img[0xA3] = 1
    put_regs(img, 0, c.cpus[c.boot_cpu].registers)
    for cpu in c.cpus:
        put_regs(img, cpu.prefix, cpu.registers)
    return img


def read_all(f, chunk=4 * MiB) -> bytes:
    out = bytearray()
    buf = bytearray(chunk)
    while True:
        n = f.readinto(buf)
        if not n:
            return bytes(out)
        out += buf[:n]


def loader_scribbles(m: Machine, c) -> None:
    """The dump kernel load overwrites low memory, incl. CPU prefix pages below the HSA."""
    m.storage.write(0x10000, b"\x5a" * (4 * MiB))
    for cpu in c.cpus:
        if cpu.prefix + 0x2000 <= m.hsa_size:
            m.storage.write(cpu.prefix, b"\xee" * 0x2000)
    m.storage.write(0x1000, bytes(0x1000))


# --- header and whole image ----------------------------------------------------------
def test_header_fields():
    c = generate(48 * MiB, 4, seed=1, boot_cpu=2)
    m, z = boot(c, cpu_id=CPU_ID)
    h = parse_header(z.mem.read(HEADER_SIZE))
    assert (h.version, h.hdr_size, h.dump_level, h.page_size) == (5, 0x1000, 0, 4096)
    assert h.mem_size == h.end == h.real_mem == 48 * MiB and h.pages == 48 * MiB // 4096
    assert (h.tod, h.cpu_id, h.arch, h.build_arch) == (TOD, CPU_ID, 2, 2)
    # boot CPU first (save area 0 from the HSA), then the others by CPU address
    assert h.prefixes == (c.prefixes[2], c.prefixes[0], c.prefixes[1], c.prefixes[3])
    assert h.cpus == h.real_cpus == 4
    assert z.mem.size == HEADER_SIZE + 48 * MiB


def test_whole_image_equals_reference_despite_loader_writes():
    c = generate(48 * MiB, 4, seed=3)
    m, z = boot(c)
    loader_scribbles(m, c)
    data = read_all(z.mem)
    assert len(data) == HEADER_SIZE + 48 * MiB
    ref = reference_memory(c)
    assert data[HEADER_SIZE:] == ref
    # each prefix page's save area parses to the CPU's registers
    for cpu in c.cpus:
        sa = data[HEADER_SIZE + cpu.prefix + 0x1200 : HEADER_SIZE + cpu.prefix + 0x1400]
        assert parse_save_area(sa) == cpu.registers.with_(cpu_address=None)
    # and the image differs from the crashed memory only in store-status bytes
    orig = c.read_original(0, 48 * MiB)
    chunk_diff = [i for i in range(0, 48 * MiB, 4096) if data[HEADER_SIZE + i : HEADER_SIZE + i + 4096] != orig[i : i + 4096]]
    assert set(chunk_diff) <= {0, 0x1000} | {(p + 0x1200) & ~0xFFF for p in c.prefixes}


def test_random_offset_reads_match_reference():
    c = generate(40 * MiB, 3, seed=5)
    m, z = boot(c, hsa=16 * MiB)
    loader_scribbles(m, c)
    ref = bytes(z.header) + bytes(reference_memory(c))
    L = len(ref)
    f = z.open_mem()
    rng = random.Random(17)
    edges = [0, 1, 4095, 4096, 4097, HEADER_SIZE + 16 * MiB - 3, HEADER_SIZE + 0x1200 - 7, L - 5, L]
    edges += [HEADER_SIZE + p + 0x1200 + d for p in c.prefixes for d in (-3, 0, 0x10F, 0x1FF)]
    for i in range(300):
        pos = rng.choice(edges) if i % 3 == 0 else rng.randrange(0, L + 1)
        n = rng.choice([1, 5, 512, 4096, 5000, 65536, 1 << 20, 3 * MiB + 7])
        f.seek(pos)
        got = f.read(n)
        assert got == ref[pos : pos + n], (pos, n)
        assert f.tell() == pos + len(got)
    f.seek(L)
    assert f.read(10) == b""


def test_multi_block_requests_give_the_same_bytes():
    c = generate(40 * MiB, 2, seed=9)
    _, z1 = boot(c, hsa=8 * MiB)
    _, z64 = boot(c, hsa=8 * MiB, blocks_per_request=64)
    a, b = read_all(z1.mem), read_all(z64.mem)
    assert a == b
    assert z1.sdias.requests > 8 * MiB // 4096 > z64.sdias.requests


def test_512_cpus():
    c = generate(64 * MiB, 512, seed=2)
    m, z = boot(c)
    h = parse_header(z.mem.read(HEADER_SIZE))
    assert h.cpus == 512 and sorted(h.prefixes) == sorted(c.prefixes)
    for cpu in c.cpus[::37]:
        buf = bytearray(512)
        z.pread_into(HEADER_SIZE + cpu.prefix + 0x1200, buf)
        assert parse_save_area(buf) == cpu.registers.with_(cpu_address=None)


# --- errors and file semantics ------------------------------------------------------
def errno_of(ei) -> int:
    return ei.value.errno


def test_offset_beyond_end_and_seek_end():
    c = generate(40 * MiB, 1)
    _, z = boot(c)
    f = z.mem
    f.seek(z.mem.size + 1)
    with pytest.raises(DumpError) as ei:
        f.read(1)
    assert errno_of(ei) == errno.EINVAL
    with pytest.raises(DumpError) as ei:
        f.seek(0, os.SEEK_END)
    assert errno_of(ei) == errno.EINVAL
    f.seek(100)
    assert f.seek(28, os.SEEK_CUR) == 128


def test_close_releases_hsa_and_reads_fail_with_enodata():
    c = generate(40 * MiB, 2)
    m, z = boot(c)
    f = z.open_mem()
    assert z.hsa.read() == "2000000\n"
    f.seek(HEADER_SIZE + 33 * MiB)
    above = f.read(4096)
    f.close()
    assert not m.hsa_available and z.hsa.read() == "0\n" and z.hsa_size() == 0
    with pytest.raises(DumpError) as ei:
        z.open_mem()
    assert errno_of(ei) == errno.ENODATA
    # what was read before the release: the HSA part now fails, the rest still reads
    buf = bytearray(4096)
    with pytest.raises(DumpError) as ei:
        z.pread_into(HEADER_SIZE + 4096, buf)
    assert errno_of(ei) == errno.ENODATA
    assert z.pread_into(HEADER_SIZE + 33 * MiB, buf) == 4096 and bytes(buf) == above
    assert z.pread_into(0, buf) == 4096  # header still readable


def test_hsa_file_write_rules():
    c = generate(40 * MiB, 1)
    m, z = boot(c)
    with pytest.raises(DumpError) as ei:
        z.hsa.write("0", offset=1)
    assert errno_of(ei) == errno.EPIPE
    with pytest.raises(DumpError) as ei:
        z.hsa.write(b"1\n")
    assert errno_of(ei) == errno.EINVAL
    assert m.hsa_available
    assert z.hsa.write(b"0\n") == 2
    assert not m.hsa_available and z.hsa.read() == "0\n"
    assert "DIAG 308 subcode 2: HSA released" in m.events


def test_garbage_collected_mem_does_not_release():
    c = generate(40 * MiB, 1)
    m, z = boot(c)
    f = z.open_mem()
    f.read(10)
    del f
    assert m.hsa_available


def test_memmap_formats():
    c = generate(48 * MiB, 1)
    _, z = boot(c)
    assert z.memmap() == "0000000000000000 0000000003000000 "
    _, z2 = boot(c, memmap_style="chunks")
    text = z2.memmap()
    assert len(text) == 2 * 34 and text.endswith("0000000000000000 0000000000000000 ")


def test_reipl_uses_the_crashed_systems_block():
    c = generate(40 * MiB, 2, seed=4)
    m, z = boot(c)
    assert z.ipib is not None and z.ipib == c.read_original(IPIB_ADDR, len(z.ipib))
    assert z.reipl.write(b"1") == 1
    assert [(r.subcode, r.block) for r in m.reipl_requests] == [(3, z.ipib)]


def test_reipl_without_valid_block_does_nothing():
    c = generate(40 * MiB, 2, seed=4)
    m = Machine(c, 32 * MiB)
    m.storage.write(IPIB_ADDR + 100, b"\x01")  # checksum no longer matches
    m.dump_ipl()
    z = Zcore(m, Sdias(m))
    assert z.ipib is None
    assert z.reipl.write("1") == 1 and m.reipl_requests == []


def test_init_refuses_esa390_and_releases_hsa():
    c = generate(40 * MiB, 1)
    m = Machine(c, 32 * MiB)
    m.dump_ipl()
    m.hsa.write(0xA3, memoryview(b"\x00"))
    with pytest.raises(DumpError, match="32-bit") as ei:
        Zcore(m, Sdias(m))
    assert errno_of(ei) == errno.EINVAL and not m.hsa_available


def test_init_needs_a_dump_ipl():
    m = Machine(generate(40 * MiB, 1), 32 * MiB)
    m.ipl_info.ipl_type = "fcp"
    with pytest.raises(DumpError) as ei:
        Zcore(m, Sdias(m))
    assert errno_of(ei) == errno.ENODATA
    m2 = Machine(generate(40 * MiB, 1), 32 * MiB)  # dump IPL type but no HSA saved
    with pytest.raises(SclpError):
        Zcore(m2, Sdias(m2))


# --- ELF input with a memory hole --------------------------------------------------
def test_elf_core_with_hole(tmp_path: Path):
    rng = random.Random(8)
    seg0b, seg1 = bytearray(rng.randbytes(4 * MiB)), rng.randbytes(2 * MiB)
    seg0b[0xA3] = 7  # whatever the guest had; store status must set 1
    seg0b[0xE00:0xE0C] = (4 * MiB + 0x8000).to_bytes(8, "big") + bytes(4)  # re-IPL block in the hole
    seg0 = bytes(seg0b)
    regs = [generated_registers(1, 0, 0x100000), generated_registers(1, 1, 0x500000).with_(ckc=0xC0BFF9D0D7A12345)]
    notes = []
    for i, r in enumerate(regs):
        for n in elfcore.cpu_notes(r, i + 1):
            if n.type == elfcore.NT_S390_TODCMP:  # QEMU: full clock comparator
                n = elfcore.Note(n.name, n.type, r.ckc.to_bytes(8, "big"))
            notes.append(n)
    raw_notes = elfcore.build_notes(notes)
    off = 64 + 3 * 56
    blob = bytearray(elfcore.build_ehdr(3))
    blob += elfcore.build_phdr(elfcore.PT_NOTE, offset=off, filesz=len(raw_notes))
    blob += elfcore.build_phdr(elfcore.PT_LOAD, offset=off + len(raw_notes), filesz=len(seg0), paddr=0)
    blob += elfcore.build_phdr(elfcore.PT_LOAD, offset=off + len(raw_notes) + len(seg0), filesz=len(seg1), paddr=5 * MiB)
    blob += raw_notes + seg0 + seg1
    path = tmp_path / "core.elf"
    path.write_bytes(blob)
    with from_elf(path) as c:
        m, z = boot(c, hsa=2 * MiB)
        assert z.ipib is None  # the block address lies in a hole: no re-IPL, init still succeeds
        assert z.pread_into(HEADER_SIZE + 0xA0, buf4 := bytearray(4)) == 4 and buf4[3] == 1
        h = parse_header(z.header)
        assert (h.mem_size, h.end, h.pages) == (6 * MiB, 7 * MiB, 6 * MiB // 4096)
        assert z.memmap() == "0000000000000000 0000000000400000 0000000000500000 0000000000200000 "
        buf = bytearray(4096)
        with pytest.raises(DumpError) as ei:
            z.pread_into(HEADER_SIZE + 4 * MiB + 4096, buf)
        assert errno_of(ei) == errno.EFAULT
        z.pread_into(HEADER_SIZE + 0x500000 + 0x1000, buf)
        got = parse_save_area(buf[0x200:0x400])
        assert got.ckc == 0xC0BFF9D0D7A12300  # stored as CKC >> 8
        assert buf[0x330:0x338] == bytes.fromhex("00c0bff9d0d7a123")
        assert got.gprs == regs[1].gprs and got.prefix == 0x500000


# --- the spec's worked example (§9) ---------------------------------------------------
SPEC_HEADER_LINES = """
a8 19 01 73 61 8f 23 fd 00 00 00 05 00 00 10 00
00 00 00 00 00 00 10 00 00 00 00 00 04 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 04 00 00 00
00 00 40 00 00 00 00 00 c0 bf f9 d0 d7 a0 00 00
00 01 23 45 20 97 80 00 00 00 00 02 00 00 00 00
00 00 00 02 00 00 00 00 04 00 00 00 00 00 02 00
02
"""


def test_spec_worked_example():
    c = generate(64 * MiB, 2, seed=0, prefixes=[0x03F5C000, 0x03F5A000])
    c.cpus[1].registers = c.cpus[1].registers.with_(ckc=0xC0BFF9D0D7A12400)
    m, z = boot(c, cpu_id=CPU_ID)
    expected = bytearray(4096)
    head = bytes.fromhex(SPEC_HEADER_LINES.replace("\n", " "))
    expected[: len(head)] = head
    expected[0x800:0x808] = bytes.fromhex("03f5c000 03f5a000")
    assert z.header == bytes(expected)
    assert z.mem.size == 0x04001000 == 67_112_960  # zcore/mem: no end marker
    assert z.sdias.hsa_size() == 32 * MiB and z.sdias.blk_count() == 8193

    def at(off: int, n: int) -> bytes:
        b = bytearray(n)
        assert z.pread_into(off, b) == n
        return bytes(b)

    assert at(0x03F5E318, 4) == bytes.fromhex("03f5c000")  # CPU 0 prefix register field
    assert at(0x03F5C330, 8) == bytes.fromhex("00c0bff9d0d7a124")  # CPU 1 CKC >> 8
    assert at(0x03F5C1B0, 8) == bytes(8)  # CPU 1 vector save area pointer
    assert at(0x10A3, 1) == b"\x01"  # arch mode byte
    gprs = at(0x03F5C280, 128)
    assert gprs == b"".join(g.to_bytes(8, "big") for g in c.cpus[1].registers.gprs)
    psw = at(0x03F5C300, 16)
    r1 = c.cpus[1].registers
    assert psw == r1.psw_mask.to_bytes(8, "big") + r1.psw_addr.to_bytes(8, "big")
    # absolute 0x1200 = page 1 = SDIAS block 3, offset 0x200
    calls = []
    real_copy = z.sdias.copy
    z.sdias.copy = lambda dest, blk, nr=1: calls.append((blk, nr)) or real_copy(dest, blk, nr)
    boot_sa = at(0x2200, 0x200)
    assert calls == [(3, 1)]
    assert parse_save_area(boot_sa) == c.cpus[0].registers.with_(cpu_address=None)
    calls.clear()
    at(HEADER_SIZE, 1)  # absolute 0: block 2
    at(HEADER_SIZE + 0x1FFFFFF, 1)  # last HSA byte: block 8193
    assert calls == [(2, 1), (8193, 1)]
    calls.clear()
    at(HEADER_SIZE + 0x2000000, 4096)  # above the HSA: real memory, no SDIAS
    assert calls == []


# --- a large system streamed with low memory use ---------------------------------------
STREAM_SCRIPT = r"""
from zipldump.sim.crashed import generate, page_stamp
from zipldump.sim.machine import Machine
from zipldump.sim.sclp import Sdias
from zipldump.sim.zcore import Zcore
size = 4 << 30
c = generate(size, 4, seed=12)
m = Machine(c, 32 << 20)
m.dump_ipl()
z = Zcore(m, Sdias(m))
f = z.mem
buf = bytearray(4 << 20)
total = 0
f.seek(4096)
while True:
    n = f.readinto(buf)
    if not n:
        break
    addr = total
    # spot-check page identity in every chunk
    p = addr + 0x3000
    assert buf[0x3000:0x3010] == page_stamp(p >> 12, 12), hex(p)
    total += n
assert total == size, total
# VmHWM: this process image's peak RSS (ru_maxrss would include the parent's before exec)
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0])
"""


def test_4gib_system_streams_with_low_rss():
    out = subprocess.run([sys.executable, "-c", STREAM_SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    hwm_kib = int(out.stdout.split()[-1])
    assert hwm_kib < 160 * 1024, f"peak RSS {hwm_kib} KiB"


def test_sclp_failure_during_read_is_eio():
    c = generate(40 * MiB, 1)
    m, z = boot(c)

    def no_data(cmd, sccb):  # the SCLP answers every copy with event status 0x03
        sccb[0x06:0x08] = b"\x00\x20"
        sccb[0x1F] = 0x03
        return 0

    z.sdias.service_call = no_data
    with pytest.raises(SclpError) as ei:
        z.pread_into(HEADER_SIZE + 0x5000, bytearray(4096))
    assert errno_of(ei) == errno.EIO and ei.value.where == "SDIAS block 7"


# --- a real QEMU 7.x dump-guest-memory core ----------------------------------------------
def test_real_qemu_core_through_zcore(tmp_path: Path):
    if not have_tool("qemu-system-s390x"):
        pytest.skip("qemu-system-s390x not installed")
    core = tmp_path / "guest.elf"
    # A stopped 64 MiB, 2-CPU guest (-S: nothing ran, both prefixes are 0).
    run = subprocess.run(
        ["qemu-system-s390x", "-M", "s390-ccw-virtio", "-m", "64", "-smp", "2", "-nographic", "-S", "-nodefaults",
         "-monitor", "stdio"],
        input=f"dump-guest-memory {core}\nquit\n", capture_output=True, text=True, timeout=60,
    )
    if not core.exists():
        pytest.skip(f"QEMU wrote no core: {run.stderr.strip()[:200]}")
    raw = core.read_bytes()
    with from_elf(core) as c:
        assert c.memory_size == 64 * MiB and c.chunks == [(0, 64 * MiB)] and c.ncpus == 2
        # QEMU's single PT_LOAD follows the notes directly; the memory must be those bytes
        data_off = len(raw) - 11 - 64 * MiB  # the file ends with an 11-byte .shstrtab (§8.9)
        assert c.read_original(0, 64 * MiB) == raw[data_off : data_off + 64 * MiB]
        assert c.prefixes == [0, 0]
        assert c.cpus[0].registers.crs[0] == 0xE0 and c.cpus[0].registers.crs[14] == 0xC2000000
        m, z = boot(c)
        h = parse_header(z.header)
        assert (h.cpus, h.real_cpus) == (0, 2)  # prefix 0 counts only in real_cpu_cnt (§4.4)
        out = read_all(z.mem)
        img = bytearray(raw[data_off : data_off + 64 * MiB])
        img[0xA3] = 1
        put_regs(img, 0, c.cpus[0].registers)
        put_regs(img, 0, c.cpus[1].registers)  # prefix 0: overlaid at 0x1200 too, in save-area order
        assert out[HEADER_SIZE:] == bytes(img)
