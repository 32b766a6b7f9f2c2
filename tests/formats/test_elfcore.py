"""s390x ELF core structures and CPU notes (s390-dump-format.md §8.9, §9)."""

from __future__ import annotations

import pytest
from builders.registers import sample_regs

from zipldump.errors import FormatError, MagicError
from zipldump.formats import elfcore as ec
from zipldump.formats.lowcore import CpuRegisters


def test_struct_sizes_and_offsets() -> None:
    r = sample_regs()
    notes = ec.cpu_notes(r, 1)
    pr = notes[0].desc
    assert len(pr) == 336
    assert pr[0x20:0x24] == b"\0\0\0\1"
    assert int.from_bytes(pr[0x70:0x78], "big") == r.psw_mask
    assert int.from_bytes(pr[0x78:0x80], "big") == r.psw_addr
    assert int.from_bytes(pr[0x80:0x88], "big") == r.gprs[0]
    assert int.from_bytes(pr[0x100:0x104], "big") == r.acrs[0]
    assert pr[0x140:0x150] == bytes(16)
    fp = notes[1].desc
    assert len(fp) == 136 and int.from_bytes(fp[:4], "big") == r.fpc and int.from_bytes(fp[8:16], "big") == r.fprs[0]
    assert [n.type for n in notes] == [1, 2, 0x301, 0x302, 0x303, 0x304, 0x305]
    # NT_S390_TODCMP holds the save-area encoding, like zgetdump (§9).
    assert notes[3].desc == bytes.fromhex("00c0bff9d0d7a124")
    assert notes[6].desc == (0x03F5A000).to_bytes(4, "big")


def test_note_encoding_and_parse() -> None:
    n = ec.Note("LINUX", ec.NT_S390_PREFIX, b"\x03\xf5\xc0\x00")
    raw = n.build()
    assert raw == bytes.fromhex("00000006 00000004 00000305".replace(" ", "")) + b"LINUX\0\0\0" + b"\x03\xf5\xc0\x00"
    assert n.size == len(raw)
    assert ec.parse_notes(raw) == [n]
    with pytest.raises(FormatError) as exc:
        ec.parse_notes(raw[:-2], base=0x130)
    assert "0x130" in str(exc.value)


def test_cpu_round_trip_with_prpsinfo() -> None:
    cpus = [sample_regs(1), sample_regs(2).with_(prefix=0x03F5C000)]
    notes = [ec.Note("CORE", ec.NT_PRPSINFO, ec.build_prpsinfo())]
    for i, r in enumerate(cpus):
        notes += ec.cpu_notes(r, i + 1)
    parsed = ec.parse_notes(ec.build_notes(notes))
    assert ec.cpus_from_notes(parsed) == cpus


def qemu_style_notes(r: CpuRegisters) -> list[ec.Note]:
    """Like QEMU 7.2: no PRPSINFO, full CKC, host-order pr_pid, vector + GS notes."""
    notes = ec.cpu_notes(r, 1)
    pr = bytearray(notes[0].desc)
    pr[0x20:0x24] = b"\1\0\0\0"
    notes[0] = ec.Note("CORE", ec.NT_PRSTATUS, bytes(pr))
    notes[3] = ec.Note("LINUX", ec.NT_S390_TODCMP, r.ckc.to_bytes(8, "big"))
    notes += [
        ec.Note("LINUX", ec.NT_S390_VXRS_LOW, bytes(128)),
        ec.Note("LINUX", ec.NT_S390_VXRS_HIGH, bytes(256)),
        ec.Note("LINUX", ec.NT_S390_GS_CB, bytes(32)),
    ]
    return notes


def test_qemu_notes_full_ckc() -> None:
    r = sample_regs().with_(ckc=0xE3A3B0D1D42E5927)
    got = ec.cpus_from_notes(qemu_style_notes(r))
    assert got == [r]  # full value kept, zero vector registers dropped
    assert ec.cpus_from_notes(qemu_style_notes(r), ckc_encoding="full")[0].ckc == 0xE3A3B0D1D42E5927


def test_vector_registers_round_trip() -> None:
    vx = bytes(range(256)) * 2
    fprs = tuple(int.from_bytes(vx[16 * i : 16 * i + 8], "big") for i in range(16))
    r = sample_regs().with_(fprs=fprs, vxrs=vx)
    notes = ec.cpu_notes(r, 1)
    assert [n.type for n in notes][-2:] == [ec.NT_S390_VXRS_LOW, ec.NT_S390_VXRS_HIGH]
    assert ec.cpus_from_notes(notes, ckc_encoding="shifted") == [r]


def test_todpreg_8_bytes_and_bad_sizes() -> None:
    notes = ec.cpu_notes(sample_regs(), 1)
    notes[4] = ec.Note("LINUX", ec.NT_S390_TODPREG, b"\0\0\0\7" + b"\xff" * 4)
    assert ec.cpus_from_notes(notes)[0].todpreg == 7
    notes[5] = ec.Note("LINUX", ec.NT_S390_CTRS, bytes(120))
    with pytest.raises(FormatError) as exc:
        ec.cpus_from_notes(notes)
    assert "NT_S390_CTRS" in str(exc.value)
    with pytest.raises(FormatError):
        ec.cpus_from_notes([ec.Note("LINUX", ec.NT_S390_PREFIX, bytes(4))])


def test_ehdr() -> None:
    h = ec.build_ehdr(3)
    assert h[:6] == b"\x7fELF\x02\x02" and len(h) == 64
    f = ec.parse_ehdr(h)
    assert f["e_phoff"] == 64 and f["e_phnum"] == 3 and f["e_machine"] == 22
    with pytest.raises(MagicError):
        ec.parse_ehdr(b"\0" * 64)
    bad = bytearray(h)
    bad[0x13] = 62  # x86-64
    with pytest.raises(FormatError) as exc:
        ec.parse_ehdr(bytes(bad))
    assert "e_machine" in str(exc.value)
