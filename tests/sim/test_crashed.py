"""Crashed-system generator (determinism, page identity, lowcores), raw and ELF
inputs, and the storage overlay."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from zipldump.errors import DumpError, FormatError, IplError, UsageError
from zipldump.formats import elfcore
from zipldump.formats.dump_superblock import cksm
from zipldump.formats.lowcore import CpuRegisters, build_save_area, parse_save_area
from zipldump.sim.crashed import (
    IPIB_ADDR,
    PAGE_STAMP,
    STAMP_MAGIC,
    TEMPLATE_SIZE,
    default_prefixes,
    filler_template,
    from_elf,
    from_raw,
    generate,
    generated_registers,
    page_stamp,
)
from zipldump.sim.storage import Storage

MiB = 1 << 20
PAGE = 4096


def reference_byte(seed: int, template: bytes, addr: int) -> int:
    """The generator's content rule, one byte at a time (patches excluded)."""
    off = addr % PAGE
    if off < 16:
        return page_stamp(addr // PAGE, seed)[off]
    return template[addr % TEMPLATE_SIZE]


def patched(c, addr: int) -> bool:
    return any(pa <= addr < pa + len(d) for pa, d in c._patches)


# --- generator ------------------------------------------------------------------------
def test_generate_is_deterministic_and_seed_dependent():
    a, b, other = generate(8 * MiB, 2, seed=5), generate(8 * MiB, 2, seed=5), generate(8 * MiB, 2, seed=6)
    rng = random.Random(0)
    for _ in range(50):
        addr = rng.randrange(0, 8 * MiB - 70000)
        n = rng.randrange(1, 70000)
        assert a.read_original(addr, n) == b.read_original(addr, n)
    assert a.read_original(0x100000, 4096) != other.read_original(0x100000, 4096)
    assert [c.registers for c in a.cpus] == [c.registers for c in b.cpus]
    assert a.cpus[0].registers != other.cpus[0].registers


def test_every_page_carries_its_stamp():
    seed = 11
    c = generate(4 * MiB, 2, seed=seed)
    data = c.read_original(0, 4 * MiB)
    for pfn in range(4 * MiB // PAGE):
        if patched(c, pfn * PAGE):
            continue
        magic, s, p = PAGE_STAMP.unpack_from(data, pfn * PAGE)
        assert (magic, s, p) == (STAMP_MAGIC, seed, pfn)


def test_random_slices_match_byte_reference():
    seed = 7
    c = generate(8 * MiB, 2, seed=seed)
    t = filler_template(seed)
    patched_addrs = {pa + k for pa, d in c._patches for k in range(len(d))}
    rng = random.Random(42)
    sizes = [1, 2, 15, 16, 17, 31, 4080, 4095, 4096, 4097, 8192 + 5, 20000]
    for _ in range(400):
        # start near page starts and stamp ends to hit every partial-stamp case
        base = rng.randrange(0, 8 * MiB // PAGE) * PAGE
        addr = min(base + rng.choice([0, 1, 8, 15, 16, 17, 2000, 4095]), 8 * MiB - 1)
        n = min(rng.choice(sizes), 8 * MiB - addr)
        got = c.read_original(addr, n)
        for k in range(n):
            if addr + k not in patched_addrs:
                assert got[k] == reference_byte(seed, t, addr + k), (hex(addr), n, k)


def test_reads_are_independent_of_chunking():
    c = generate(8 * MiB, 4, seed=1)
    whole = c.read_original(0, 8 * MiB)
    pos = 0
    rng = random.Random(3)
    while pos < 8 * MiB:
        n = min(rng.randrange(1, 3 * MiB), 8 * MiB - pos)
        assert c.read_original(pos, n) == whole[pos : pos + n]
        pos += n


def test_cpu_lowcores_and_prefix_layout():
    c = generate(2048 * MiB, 8, seed=2)
    pre = c.prefixes
    assert len(set(pre)) == 8 and all(p % 0x2000 == 0 and p for p in pre)
    assert any(p < 32 * MiB for p in pre) and any(p >= 32 * MiB for p in pre)
    for i, cpu in enumerate(c.cpus):
        assert cpu.address == i and cpu.state == "stopped"
        lc = c.read_original(cpu.prefix, 0x2000)
        assert lc[0x84:0x86] == i.to_bytes(2, "big")
        assert lc[0x11B0:0x11B8] == bytes(8)
        stale = parse_save_area(lc[0x1200:0x1400])
        assert stale == generated_registers(2, i, cpu.prefix, stale=True).with_(cpu_address=None)
        live = cpu.registers
        assert live.prefix == cpu.prefix and stale.gprs != live.gprs
        assert live.ckc & 0xFF == 0  # survives the save area's CKC >> 8
    # all register values of the system are distinct
    gprs = [g for cpu in c.cpus for g in cpu.registers.gprs]
    assert len(set(gprs)) == len(gprs)


def test_ipib_pointer_and_checksum_in_absolute_lowcore():
    c = generate(64 * MiB, 2, seed=9)
    addr, csum = struct.unpack(">QI", c.read_original(0xE00, 12))
    assert addr == IPIB_ADDR
    length = int.from_bytes(c.read_original(addr, 4), "big")
    assert 0 < length <= 4096
    assert cksm(c.read_original(addr, length), 0) == csum


def test_prefix_layout_small_memory_and_limits():
    assert default_prefixes(8 * MiB, 3) == [4 * MiB, 4 * MiB + 0x2000, 4 * MiB + 0x4000]
    pre = default_prefixes(64 * MiB, 512)
    assert len(set(pre)) == 512 and max(pre) + 0x2000 <= 64 * MiB
    with pytest.raises(UsageError):
        generate(8 * MiB, 513)
    with pytest.raises(UsageError):
        generate(8 * MiB + 100, 1)
    with pytest.raises(UsageError):
        generate(64 * MiB, 2, prefixes=[0x100000, 0x100000])
    with pytest.raises(UsageError):
        generate(64 * MiB, 1, prefixes=[0x101000])  # not 8 KiB aligned
    with pytest.raises(DumpError):
        generate(8 * MiB, 1).read_original(8 * MiB - 10, 11)


def test_generated_prefixes_override():
    c = generate(64 * MiB, 2, prefixes=[0x03F5C000, 0x03F5A000])
    assert c.prefixes == [0x03F5C000, 0x03F5A000]
    assert c.read_original(0x03F5A000 + 0x84, 2) == b"\x00\x01"


# --- raw images ----------------------------------------------------------------------
def test_from_raw_with_prefixes_reads_save_areas(tmp_path: Path):
    img = bytearray(random.Random(1).randbytes(2 * MiB))
    regs = [generated_registers(77, i, p) for i, p in enumerate((0x100000, 0x180000))]
    for r in regs:
        img[r.prefix + 0x1200 : r.prefix + 0x1400] = build_save_area(r)
    path = tmp_path / "mem.raw"
    path.write_bytes(img)
    with from_raw(path, prefixes=[0x100000, 0x180000]) as c:
        assert c.memory_size == 2 * MiB and c.source == "raw"
        assert [cpu.registers for cpu in c.cpus] == regs
        assert c.read_original(12345, 100000) == bytes(img[12345:112345])


def test_from_raw_generated_registers_and_errors(tmp_path: Path):
    path = tmp_path / "mem.raw"
    path.write_bytes(bytes(4 * MiB))
    with from_raw(path, 3, seed=4) as c:
        assert c.ncpus == 3 and c.cpus[1].registers == generated_registers(4, 1, c.prefixes[1])
    bad = tmp_path / "odd.raw"
    bad.write_bytes(bytes(MiB + 1))
    with pytest.raises(UsageError, match="multiple"):
        from_raw(bad)
    with pytest.raises(UsageError, match="cannot open"):
        from_raw(tmp_path / "missing.raw")
    with pytest.raises(UsageError, match="aligned"):
        from_raw(path, prefixes=[0x1000])


# --- ELF cores ----------------------------------------------------------------------
def qemu_like_core(path: Path, segments: list[tuple[int, bytes]], cpus: list[CpuRegisters]) -> None:
    """An ELF core laid out like QEMU 7.2 dump-guest-memory: phdrs at 0xC0,
    notes without NT_PRPSINFO, NT_S390_TODCMP with the full clock comparator."""
    notes = []
    for i, r in enumerate(cpus):
        for n in elfcore.cpu_notes(r, i + 1):
            if n.type == elfcore.NT_S390_TODCMP:
                n = elfcore.Note(n.name, n.type, r.ckc.to_bytes(8, "big"))
            notes.append(n)
    notes_raw = elfcore.build_notes(notes)
    phoff = 0xC0
    phnum = 1 + len(segments)
    off = phoff + phnum * elfcore.PHDR_SIZE
    out = bytearray(elfcore.build_ehdr(phnum, phoff=phoff))
    out += bytes(phoff - len(out))
    out += elfcore.build_phdr(elfcore.PT_NOTE, offset=off, filesz=len(notes_raw))
    data_off = off + len(notes_raw)
    for addr, data in segments:
        out += elfcore.build_phdr(elfcore.PT_LOAD, offset=data_off, filesz=len(data), paddr=addr)
        data_off += len(data)
    out += notes_raw
    for _, data in segments:
        out += data
    path.write_bytes(out)


def test_from_elf_segments_holes_and_notes(tmp_path: Path):
    rng = random.Random(5)
    seg0, seg1 = rng.randbytes(MiB), rng.randbytes(MiB)
    regs = [generated_registers(3, 0, 0x80000).with_(ckc=0xC0BFF9D0D7A12345), generated_registers(3, 1, 0x2F0000)]
    path = tmp_path / "core.elf"
    qemu_like_core(path, [(0, seg0), (2 * MiB, seg1)], regs)
    with from_elf(path) as c:
        assert c.source == "elf" and c.memory_size == 3 * MiB
        assert c.chunks == [(0, MiB), (2 * MiB, MiB)]
        assert c.read_original(0, MiB) == seg0
        assert c.read_original(MiB - 10, 20) == seg0[-10:] + bytes(10)  # hole reads as zeros
        assert c.read_original(2 * MiB, MiB) == seg1
        assert c.is_present(0, MiB) and not c.is_present(MiB - 1, 2) and c.is_present(2 * MiB + 5, 100)
        assert c.prefixes == [0x80000, 0x2F0000]
        assert c.cpus[0].registers.ckc == 0xC0BFF9D0D7A12345  # QEMU note = full value
        assert c.cpus[1].registers.gprs == regs[1].gprs


def test_from_elf_rejects_bad_input(tmp_path: Path):
    p = tmp_path / "x.elf"
    p.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(FormatError):
        from_elf(p)
    p2 = tmp_path / "nocpu.elf"
    qemu_like_core(p2, [(0, bytes(MiB))], [])
    with pytest.raises(FormatError, match="NT_PRSTATUS"):
        from_elf(p2)
    p3 = tmp_path / "far.elf"  # a PT_LOAD far beyond what a dump header can describe
    qemu_like_core(p3, [(1 << 60, bytes(4096))], [generated_registers(3, 0, 0)])
    with pytest.raises(FormatError, match="beyond"):
        from_elf(p3)


# --- storage ------------------------------------------------------------------------------
def test_storage_overlay_matches_bytearray_model():
    c = generate(4 * MiB, 2, seed=8)
    s = Storage(c, c.memory_size)
    model = bytearray(c.read_original(0, 4 * MiB))
    rng = random.Random(9)
    pages = set()
    for _ in range(300):
        addr = rng.randrange(0, 4 * MiB - 1)
        n = min(rng.choice([1, 7, 100, 4096, 5000, 30000]), 4 * MiB - addr)
        data = rng.randbytes(n)
        s.write(addr, data)
        model[addr : addr + n] = data
        pages.update(range(addr // PAGE, (addr + n - 1) // PAGE + 1))
        a = rng.randrange(0, 4 * MiB - 1)
        m = min(rng.randrange(1, 300000), 4 * MiB - a)
        assert s.read(a, m) == bytes(model[a : a + m])
    assert s.read(0, 4 * MiB) == bytes(model)
    assert s.overlay_pages == len(pages)  # RAM bounded by what was written
    assert c.read_original(0, 4 * MiB) != bytes(model)  # the base is never modified


def test_storage_whole_page_rewrites_and_in_page_reads():
    """The SDIAS bounce-buffer pattern: the same pages rewritten whole, read back in
    pieces inside one page and across pages; always equal to a bytearray model."""
    c = generate(1 * MiB, 2, seed=4)
    s = Storage(c, c.memory_size)
    model = bytearray(c.read_original(0, 1 * MiB))
    rng = random.Random(5)
    for i in range(400):
        pfn = rng.choice([3, 4, 5, 200])
        data = rng.randbytes(PAGE)
        s.write(pfn * PAGE, data)
        model[pfn * PAGE : (pfn + 1) * PAGE] = data
        off = rng.randrange(0, PAGE)
        n = rng.randrange(1, PAGE - off + 1) if i % 2 else rng.randrange(1, 3 * PAGE)
        a = min(pfn * PAGE + off, 1 * MiB - n)
        assert s.read(a, n) == bytes(model[a : a + n])
    assert s.read(0, 1 * MiB) == bytes(model)
    assert s.overlay_pages == 4


def test_storage_bounds_fill_and_clear():
    s = Storage(generate(2 * MiB, 1), 2 * MiB)
    with pytest.raises(IplError, match="outside storage"):
        s.write(2 * MiB - 2, b"abc")
    with pytest.raises(IplError):
        s.read(-1, 2)
    s.fill(0x1000, 3 * PAGE + 5, 0xAB)
    assert s.read(0x1000, 3 * PAGE + 5) == b"\xab" * (3 * PAGE + 5)
    s.clear()
    assert s.read(0, 2 * MiB) == bytes(2 * MiB) and s.overlay_pages == 0
    z = Storage(None, 1 * MiB)
    z.write(10, b"x")
    assert z.read(0, 12) == bytes(10) + b"x\0"
