"""s390 dump header and end marker against s390-dump-format.md §2, §3 and the §9 worked example."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zipldump.errors import FormatError, MagicError
from zipldump.formats import s390dump as sd

# §9: hexdump of the 64 MiB, 2-CPU header (non-zero lines only; everything else 0).
EXAMPLE_LINES = {
    0x000: "a8 19 01 73 61 8f 23 fd  00 00 00 05 00 00 10 00",
    0x010: "00 00 00 00 00 00 10 00  00 00 00 00 04 00 00 00",
    0x020: "00 00 00 00 00 00 00 00  00 00 00 00 04 00 00 00",
    0x030: "00 00 40 00 00 00 00 00  c0 bf f9 d0 d7 a0 00 00",
    0x040: "00 01 23 45 20 97 80 00  00 00 00 02 00 00 00 00",
    0x050: "00 00 00 02 00 00 00 00  04 00 00 00 00 00 02 00",
    0x060: "02 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00",
    0x800: "03 f5 c0 00 03 f5 a0 00  00 00 00 00 00 00 00 00",
}
EXAMPLE_END_MARKER = bytes.fromhex("44 55 4d 50 5f 45 4e 44 c0 bf f9 f8 e5 88 00 00".replace(" ", ""))


def example_header_bytes() -> bytes:
    out = bytearray(4096)
    for off, text in EXAMPLE_LINES.items():
        out[off : off + 16] = bytes.fromhex(text.replace(" ", ""))
    return bytes(out)


def test_tod_conversion_matches_example() -> None:
    assert sd.tod_from_unix_us(1181903400 * 10**6) == 0xC0BFF9D0D7A00000
    assert sd.tod_from_unix_us(1181903442 * 10**6) == 0xC0BFF9F8E5880000
    when = datetime(2007, 6, 15, 10, 30, tzinfo=UTC)
    assert sd.tod_from_datetime(when) == 0xC0BFF9D0D7A00000
    assert sd.tod_to_datetime(0xC0BFF9D0D7A00000) == when


def test_worked_example_header_byte_exact() -> None:
    hdr = sd.build_header(
        64 << 20,
        prefixes=[0x03F5C000, 0x03F5A000],
        tod=0xC0BFF9D0D7A00000,
        cpu_id=0x0001234520978000,
        real_cpu_cnt=2,
    )
    assert len(hdr) == sd.HEADER_SIZE
    assert hdr == example_header_bytes()


def test_worked_example_end_marker() -> None:
    assert sd.build_end_marker(0xC0BFF9F8E5880000) == EXAMPLE_END_MARKER
    assert sd.parse_end_marker(EXAMPLE_END_MARKER) == 0xC0BFF9F8E5880000
    assert sd.end_marker_ok(0xC0BFF9D0D7A00000, EXAMPLE_END_MARKER)
    h = sd.parse_header(example_header_bytes())
    assert h.end_marker_offset == 0x04001000


def test_parse_round_trip() -> None:
    raw = example_header_bytes()
    h = sd.parse_header(raw)
    assert h.version == 5 and h.hdr_size == 0x1000 and h.page_size == 4096
    assert h.mem_size == h.end == 64 << 20 and h.pages == 16384 and h.mem_start == 0
    assert h.tod == 0xC0BFF9D0D7A00000 and h.cpu_id == 0x0001234520978000
    assert h.arch == sd.ARCH_S390X and h.build_arch == 2 and h.real_mem == 64 << 20
    assert h.prefixes == (0x03F5C000, 0x03F5A000) and h.cpus == 2 and h.real_cpus == 2
    assert h.build() == raw


def test_parse_keeps_odd_fields() -> None:
    raw = bytearray(example_header_bytes())
    raw[0x08:0x0C] = (3).to_bytes(4, "big")  # v3: no CPU list
    raw[0x804:0x808] = b"\x12\x34\x56\x78"
    h = sd.parse_header(bytes(raw))
    assert h.version == 3 and h.prefixes == ()
    assert h.build() == bytes(raw)


def test_bad_magic_and_short() -> None:
    raw = bytearray(example_header_bytes())
    raw[7] = 0xED  # LKCD magic
    with pytest.raises(MagicError) as exc:
        sd.parse_header(bytes(raw))
    assert "magic" in str(exc.value)
    with pytest.raises(FormatError):
        sd.parse_header(bytes(100))


def test_build_header_rejects_bad_size() -> None:
    for size in (0, 4095, 4097):
        with pytest.raises(FormatError):
            sd.build_header(size)
    with pytest.raises(FormatError):
        sd.build_header(1 << 20, prefixes=[0x2000] * 513)


def test_end_marker_tod_rule() -> None:
    # All 64 bits compared: equal is complete, one unit earlier is not (§3).
    assert sd.end_marker_ok(100, sd.build_end_marker(100))
    assert sd.end_marker_ok(100, sd.build_end_marker(101))
    assert not sd.end_marker_ok(100, sd.build_end_marker(99))
    assert not sd.end_marker_ok(0xC0BFF9D0D7A00000, sd.build_end_marker(0xC0BFF9D0D7A00000 - 0x800))


def test_end_marker_rejects_bad_strings() -> None:
    assert sd.parse_end_marker(b"DUMP_EN\0" + bytes(8)) is None
    assert sd.parse_end_marker(b"dump_end" + bytes(8)) is None
    assert sd.parse_end_marker(sd.build_end_marker(5)[:15]) is None
    assert sd.end_marker_ok(0, sd.build_end_marker(0))


def test_to_mib() -> None:
    assert sd.to_mib(64 << 20) == 64
    assert sd.to_mib((1 << 19) - 1) == 0
    assert sd.to_mib(1 << 19) == 1
