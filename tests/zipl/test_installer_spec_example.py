"""Spec zipl-scsi-format.md §13: the worked example rebuilt byte for byte by the installer."""

from __future__ import annotations

import hashlib
from pathlib import Path

from zipldump.zipl.installer import SPEC_EXAMPLE_SHA256, build_spec_example


def hexline(img: bytes, off: int) -> str:
    return " ".join(f"{b:02x}" for b in img[off : off + 8]) + "  " + " ".join(f"{b:02x}" for b in img[off + 8 : off + 16])


# (offset, hexdump -C bytes) from §13.3
SPEC_LINES = {
    0x000: "7a 49 50 4c 00 00 00 01  00 00 00 00 00 00 00 00",
    0x010: "00 00 00 00 00 00 07 fc  02 00 00 00 00 00 00 00",
    0x070: "7a 49 50 4c 01 01 02 01  00 00 00 00 00 0f 84 00",
    0x1C0: "00 00 83 00 00 00 40 00  00 00 c0 07 00 00 00 00",
    0x1F0: "00 00 00 00 00 00 00 00  00 00 00 00 00 00 55 aa",
    0xF8000: "7a 53 65 72 69 65 73 20  62 6f 6f 74 6d 61 70 20",
    0xF8020: "7a 49 50 4c 0a 00 00 00  00 00 00 00 00 00 00 00",
    0xF8030: "00 00 00 00 00 00 00 01  00 00 00 00 00 00 00 00",
    0xF8400: "5a 46 43 50 44 55 4d 50  00 00 00 00 00 00 00 01",
    0xF8410: "00 00 00 00 00 00 80 00  00 00 00 00 00 0f 80 00",
    0xF8420: "00 00 00 00 00 00 00 00  00 00 00 00 00 0f 00 00",
    0xF8440: "00 00 00 00 12 34 56 78  00 00 00 00 00 00 00 00",
    0xFC600: "00 00 00 00 00 00 07 c3  02 00 00 1f 00 00 00 00",
    0xFF400: "00 00 00 00 00 00 07 f8  02 00 00 01 00 00 00 00",
    0xFE000: "00 00 00 00 00 01 10 00  00 00 00 00 00 03 00 00",
    0xFE010: "00 00 00 00 00 00 04 00  00 08 00 00 80 01 00 00",
    0xFEC30: "6d 6f 72 79 00 00 00 00  00 00 00 00 00 00 00 00",
    0xFF600: "7a 49 50 4c 01 00 00 00  00 00 00 00 00 00 00 00",
    0xFF6E0: "00 00 00 00 00 00 07 fa  02 00 00 00 00 00 00 00",
    0xFF6F0: "00 00 00 00 00 00 00 02  00 00 00 00 00 03 00 00",
    0xFF710: "00 00 00 00 00 00 00 01  00 08 00 00 80 00 a0 00",
    0xFF810: "00 00 00 00 00 00 07 fb  02 00 00 00 00 00 00 00",
}


def test_worked_example_byte_exact(tmp_path: Path) -> None:
    img_path = tmp_path / "example.img"
    result = build_spec_example(img_path, tmp_path / "inputs")
    img = img_path.read_bytes()
    assert len(img) == 1 << 20
    for off, want in SPEC_LINES.items():
        assert hexline(img, off) == want, f"offset {off:#x}"
    assert hashlib.sha256(img).hexdigest() == SPEC_EXAMPLE_SHA256
    # the installer's own account agrees with §13.2
    assert result.superblock_offset == 0xF8400 and result.dump_size == 0xF0000
    assert result.layout.pt_lba == 0x7FC and result.verified
    comps = result.to_json()["programs"][0]["components"]
    assert [(c["address"], c["list_blocks"]) for c in comps] == [
        (0x2000, [0x7E3]), (0xF000, [0x7EC]), (0xA000, [0x7EF]), (0x9000, [0x7F1]),
        (0x10000, [0x7F5]), (0x11000, [0x7F7]), (0x30000, [0x7FA]),
    ]
    assert comps[4]["sha256"] == hashlib.sha256(b"K" * 1536).hexdigest()


def test_worked_example_zipl_216_variant(tmp_path: Path) -> None:
    """§13.6: the same inputs under zipl 2.16's rules."""
    from zipldump.zipl.installer import SPEC_EXAMPLE_216_SHA256

    img_path = tmp_path / "example216.img"
    res = build_spec_example(img_path, tmp_path / "inputs", compat="2.16")
    img = img_path.read_bytes()
    assert hashlib.sha256(img).hexdigest() == SPEC_EXAMPLE_216_SHA256
    assert img[0xF8000:0xF8026] == b"zSeries bootmap file\ncreated by zIPL\n\0" and img[0xF8026:0xF8200] == bytes(474)
    assert res.layout.pt_lba == 0x7FB and res.layout.superblock_lba == 0x7FC and res.superblock_offset == 0xFF800
    comps = res.to_json()["programs"][0]["components"]
    assert [c["address"] for c in comps][-1] == 0x20000  # ALIGN(0x11000 + 0x1000, 0x10000)
    assert comps[3]["length"] == 64
    assert img[0x7F5 * 512 : 0x7F5 * 512 + 65] == b"root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory \0"
