"""Store-status save area (s390-dump-format.md §4.1) and CpuRegisters."""

from __future__ import annotations

import pytest
from builders.registers import sample_regs

from zipldump.errors import FormatError
from zipldump.formats import lowcore as lc


def u64(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 8], "big")


def test_field_offsets_per_spec() -> None:
    r = sample_regs()
    sa = lc.build_save_area(r)
    assert len(sa) == 512
    b = lc.SAVE_AREA_OFFSET
    assert [u64(sa, 0x1200 - b + 8 * i) for i in range(16)] == list(r.fprs)
    assert [u64(sa, 0x1280 - b + 8 * i) for i in range(16)] == list(r.gprs)
    assert u64(sa, 0x1300 - b) == r.psw_mask and u64(sa, 0x1308 - b) == r.psw_addr
    assert sa[0x1318 - b : 0x131C - b] == (0x03F5A000).to_bytes(4, "big")
    assert int.from_bytes(sa[0x131C - b : 0x1320 - b], "big") == r.fpc
    assert int.from_bytes(sa[0x1324 - b : 0x1328 - b], "big") == r.todpreg
    assert u64(sa, 0x1328 - b) == r.timer
    # §9: CKC 0xC0BFF9D0D7A12400 stored as CKC >> 8 = 00 c0 bf f9 d0 d7 a1 24.
    assert sa[0x1330 - b : 0x1338 - b] == bytes.fromhex("00c0bff9d0d7a124")
    assert [int.from_bytes(sa[0x1340 - b + 4 * i : 0x1344 - b + 4 * i], "big") for i in range(16)] == list(r.acrs)
    assert [u64(sa, 0x1380 - b + 8 * i) for i in range(16)] == list(r.crs)
    # Pads stay zero.
    for lo, hi in ((0x1310, 0x1318), (0x1320, 0x1324), (0x1338, 0x1340)):
        assert sa[lo - b : hi - b] == bytes(hi - lo)


def test_round_trip() -> None:
    r = sample_regs(3)
    assert lc.parse_save_area(lc.build_save_area(r)) == r


def test_ckc_low_byte_is_lost_and_unshifted_copy_is_recognised() -> None:
    r = sample_regs().with_(ckc=0xC0BFF9D0D7A124FF)
    assert lc.parse_save_area(lc.build_save_area(r)).ckc == 0xC0BFF9D0D7A12400
    # zgetdump -f s390 of a QEMU ELF writes the full value (non-zero top byte).
    sa = bytearray(lc.build_save_area(sample_regs()))
    sa[0x130:0x138] = bytes.fromhex("e3a3b0d1d42e5927")
    assert lc.parse_save_area(bytes(sa)).ckc == 0xE3A3B0D1D42E5927


def test_overlay_keeps_pads() -> None:
    old = bytes([0xEE]) * 512
    new = lc.overlay_save_area(old, sample_regs())
    b = lc.SAVE_AREA_OFFSET
    for lo, hi in ((0x1310, 0x1318), (0x1320, 0x1324), (0x1338, 0x1340)):
        assert new[lo - b : hi - b] == bytes([0xEE]) * (hi - lo)
    assert lc.parse_save_area(new) == sample_regs()
    covered = sum(e - s for s, e in lc.REGISTER_RANGES)
    assert covered == 512 - 8 - 4 - 8


def test_validation() -> None:
    with pytest.raises(FormatError):
        lc.CpuRegisters(gprs=(0,) * 15)
    with pytest.raises(FormatError):
        lc.CpuRegisters(prefix=1 << 32)
    with pytest.raises(FormatError):
        lc.CpuRegisters(acrs=(1 << 32,) + (0,) * 15)
    with pytest.raises(FormatError):
        lc.parse_save_area(bytes(100))
