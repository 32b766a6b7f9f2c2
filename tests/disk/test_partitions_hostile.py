"""Hostile partition tables: seeded mutations of msdos (MBR + EBR chain) and GPT
tables, 512 and 4096-byte sectors, given to `read_partition_table`
(docs/robustness.md).

GPT mutations are made twice: as they are (the header CRC catches them) and with
the CRCs recomputed, so the checks behind the CRC see every field.  Only
DiskError may escape, with a one-line message naming the place; no read may be
sized by a corrupted entry count or entry size; EBR chains that loop end.
"""

from __future__ import annotations

import os
import random
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from builders.checks import check_error

from zipldump.disk.partitions import PartSpec, make_disk, read_partition_table
from zipldump.errors import DiskError, ZiplDumpError

MIB = 1 << 20
UNIT = 64 << 10  # msdos test geometry: partitions in 64 KiB steps
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


class Image:
    """A disk image file whose first and last `span` bytes are patched per case."""

    def __init__(self, path: Path, bs: int, span: int, tail_span: int | None = None) -> None:
        self.path, self.bs, self.span = path, bs, span
        self.tail_span = span if tail_span is None else tail_span
        self.size = path.stat().st_size
        raw = path.read_bytes()
        self.head = raw[:span]
        self.tail = raw[len(raw) - self.tail_span :]

    def write(self, head: bytes, tail: bytes | None = None) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            assert len(head) == self.span
            os.pwrite(fd, head, 0)
            if self.tail_span:
                os.pwrite(fd, self.tail if tail is None else tail, self.size - self.tail_span)
        finally:
            os.close(fd)

    def read(self) -> str:
        try:
            table = read_partition_table(self.path, self.bs)
            table.to_json()
            for p in table.partitions:  # whatever is accepted lies inside the disk
                assert p.start >= 1 and p.length >= 1 and (p.start + p.length) * self.bs <= self.size
        except ZiplDumpError as exc:
            check_error(exc)
            assert isinstance(exc, DiskError), f"{type(exc).__name__}: {exc}"
            return exc.kind
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"{type(exc).__name__} escaped: {exc}")
        return "ok"


# --- msdos --------------------------------------------------------------------------
def mbr_entry(ptype: int, first: int, sectors: int) -> bytes:
    return struct.pack("<B3sB3sII", 0, b"\0\0\0", ptype, b"\0\0\0", first, sectors)


def msdos_image(tmp_path: Path, bs: int) -> Image:
    """Two primaries, an extended partition with three logicals in a chain (1 MiB disk)."""
    nblocks = (16 * UNIT) // bs
    ext = (8 * UNIT) // bs
    step = UNIT // bs
    path = tmp_path / f"msdos{bs}.img"
    with open(path, "wb") as fh:
        fh.truncate(nblocks * bs)
        mbr = bytearray(512)
        mbr[0x1BE:0x1EE] = mbr_entry(0x83, step, 3 * step) + mbr_entry(0x83, 4 * step, 3 * step) + mbr_entry(0x05, ext, 6 * step)
        mbr[510:512] = b"\x55\xaa"
        fh.seek(0)
        fh.write(mbr)
        for i in range(3):
            ebr = bytearray(512)
            nxt = mbr_entry(0x05, (i + 1) * 2 * step, 2 * step) if i < 2 else bytes(16)
            ebr[0x1BE:0x1DE] = mbr_entry(0x83, step // 2, step) + nxt
            ebr[510:512] = b"\x55\xaa"
            fh.seek((ext + i * 2 * step) * bs)
            fh.write(ebr)
    return Image(path, bs, 14 * UNIT, 0)


@pytest.mark.parametrize("bs", [512, 4096])
def test_msdos_valid_then_entry_boundary_values(tmp_path: Path, bs: int) -> None:
    img = msdos_image(tmp_path, bs)
    assert img.read() == "ok"
    assert len(read_partition_table(img.path, bs).partitions) == 5
    values = [0, 1, 2, 0x7F, 0x80, 0x800, 0x1000, img.size // bs - 1, img.size // bs, U32 - 1, U32]
    kinds = set()
    for entry in range(4):
        for _field, (off, size) in {"type": (4, 1), "lba_first": (8, 4), "sectors": (12, 4)}.items():
            for v in values if size == 4 else (0, 0x05, 0x0F, 0x85, 0xEE, 0xFF):
                head = bytearray(img.head)
                at = 0x1BE + 16 * entry + off
                head[at : at + size] = v.to_bytes(size, "little")
                img.write(bytes(head))
                kinds.add(img.read())
    assert "disk" in kinds and "ok" in kinds


@pytest.mark.parametrize("bs", [512, 4096])
def test_ebr_chains_that_loop_or_wander(tmp_path: Path, bs: int) -> None:
    img = msdos_image(tmp_path, bs)
    ext = (8 * UNIT) // bs
    step = UNIT // bs
    ebrs = [(ext + i * 2 * step) * bs for i in range(3)]
    # Last EBR points back at the first (relative 0), at the second, at itself.
    for target in (0, 2 * step, 4 * step):
        head = bytearray(img.head)
        head[ebrs[2] + 0x1CE : ebrs[2] + 0x1DE] = mbr_entry(0x05, target, 2 * step)
        img.write(bytes(head))
        kind = img.read()
        assert kind == "disk"
        with pytest.raises(DiskError, match="loops"):
            read_partition_table(img.path, bs)
    rng = random.Random(0xEB)
    for _ in range(150):
        head = bytearray(img.head)
        for _ in range(rng.randint(1, 3)):
            at = rng.choice(ebrs) + rng.randrange(0x1BE, 0x200)
            head[at] = rng.choice((0, 0xFF, 0x05, rng.randrange(256)))
        img.write(bytes(head))
        img.read()


def test_mbr_random_mutations(tmp_path: Path) -> None:
    img = msdos_image(tmp_path, 512)
    rng = random.Random(0x1BE)
    for _ in range(200):
        head = bytearray(img.head)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(0x1B8, 0x200)
            if rng.random() < 0.5:
                head[at] ^= 1 << rng.randrange(8)
            else:
                head[at] = rng.choice((0, 0xFF, 0x80, rng.randrange(256)))
        img.write(bytes(head))
        img.read()


# --- GPT ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[512, 4096])
def gpt_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Image:
    bs = request.param
    path = tmp_path_factory.mktemp("gpt") / f"gpt{bs}.img"
    make_disk(path, 16 * MIB, label="gpt", block_size=bs, parts=[PartSpec(4 * MIB), PartSpec(4 * MIB), PartSpec(None)])
    return Image(path, bs, 34 * bs)


HDR_FIELDS = {  # offset in the header, size
    "revision": (8, 4), "header_size": (12, 4), "my_lba": (24, 8), "alternate_lba": (32, 8), "first_usable_lba": (40, 8),
    "last_usable_lba": (48, 8), "entries_lba": (72, 8), "num_entries": (80, 4), "entry_size": (84, 4),
}


def fix_crcs(block: bytearray, entries: bytes | None = None) -> None:
    """Recompute the entry-array CRC (when given) and the header CRC of a GPT header block."""
    if entries is not None:
        block[88:92] = struct.pack("<I", zlib.crc32(entries))
    size = int.from_bytes(block[12:16], "little")
    size = min(max(size, 92), len(block))
    block[16:20] = bytes(4)
    block[16:20] = struct.pack("<I", zlib.crc32(bytes(block[:size])))


def gpt_values(img: Image, size: int) -> list[int]:
    n = img.size // img.bs
    top = (1 << (8 * size)) - 1
    vals = {0, 1, 2, 8, 92, 127, 128, 129, 512, 4096, n - 1, n, n + 1, 65536, 65537, U32 - 7, U32, top, top - 1}
    return sorted(v for v in vals if v <= top)


def test_gpt_valid(gpt_image: Image) -> None:
    gpt_image.write(gpt_image.head)
    assert gpt_image.read() == "ok"


def test_gpt_header_fields_with_and_without_crc(gpt_image: Image) -> None:
    img, bs = gpt_image, gpt_image.bs
    kinds = set()
    # The backup header is damaged too, so the primary's fields decide.
    bad_tail = bytes(len(img.tail))
    for _name, (off, size) in HDR_FIELDS.items():
        for v in gpt_values(img, size):
            for fix in (False, True):
                head = bytearray(img.head)
                hdr = bytearray(head[bs : 2 * bs])
                hdr[off : off + size] = v.to_bytes(size, "little")
                if fix:
                    fix_crcs(hdr)
                head[bs : 2 * bs] = hdr
                img.write(bytes(head), bad_tail)
                kinds.add(img.read())
    assert kinds == {"ok", "disk"}


def test_gpt_huge_entry_array_is_not_allocated(gpt_image: Image) -> None:
    img, bs = gpt_image, gpt_image.bs
    for count, size in ((65536, U32 - 7), (U32, 128), (65536, 1 << 20), (1 << 16, 4096)):
        head = bytearray(img.head)
        hdr = bytearray(head[bs : 2 * bs])
        hdr[80:88] = struct.pack("<II", count, size)
        fix_crcs(hdr)
        head[bs : 2 * bs] = hdr
        img.write(bytes(head), bytes(len(img.tail)))
        tracemalloc.start()
        try:
            assert img.read() == "disk"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 * MIB, peak


def test_gpt_entries_with_crc_fixed(gpt_image: Image) -> None:
    img, bs = gpt_image, gpt_image.bs
    rng = random.Random(0x6E7)
    n = img.size // bs
    kinds = set()
    for i in range(150):
        head = bytearray(img.head)
        hdr = bytearray(head[bs : 2 * bs])
        elba = int.from_bytes(hdr[72:80], "little")
        count, esize = struct.unpack("<II", hdr[80:88])
        array = bytearray(head[elba * bs : elba * bs + count * esize])
        e = rng.randrange(4)
        field = rng.choice([(32, 8), (40, 8), (0, 16), (56, 72)])
        v = rng.choice([0, 1, 33, n - 34, n - 1, n, U64, rng.randrange(n)])
        array[e * esize + field[0] : e * esize + field[0] + field[1]] = v.to_bytes(field[1], "little") if field[1] == 8 else (
            bytes(16) if v == 0 else rng.randbytes(field[1]))
        if i % 5 == 0:  # the same partition twice
            array[esize : 2 * esize] = array[0:esize]
        head[elba * bs : elba * bs + len(array)] = array
        fix_crcs(hdr, bytes(array))
        head[bs : 2 * bs] = hdr
        img.write(bytes(head), bytes(len(img.tail)))
        kinds.add(img.read())
    assert kinds == {"ok", "disk"}


def test_gpt_random_bit_flips(gpt_image: Image) -> None:
    img, bs = gpt_image, gpt_image.bs
    rng = random.Random(0x9E7)
    for _ in range(150):
        head, tail = bytearray(img.head), bytearray(img.tail)
        target = head if rng.random() < 0.7 else tail
        lo = bs if target is head else len(tail) - bs
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(lo, lo + 92)
            target[at] ^= 1 << rng.randrange(8)
        if rng.random() < 0.5 and target is head:
            hdr = bytearray(head[bs : 2 * bs])
            fix_crcs(hdr)
            head[bs : 2 * bs] = hdr
        img.write(bytes(head), bytes(tail))
        img.read()


def test_gpt_truncated_and_wrong_sector_size(gpt_image: Image, tmp_path: Path) -> None:
    img, bs = gpt_image, gpt_image.bs
    img.write(img.head)
    raw = img.path.read_bytes()
    other = 4096 if bs == 512 else 512
    for cut in (0, 100, 511, 512, bs, bs + 92, 2 * bs, 34 * bs, len(raw) - bs, len(raw) - 1):
        p = tmp_path / "cut.img"
        p.write_bytes(raw[:cut])
        for size in (bs, other):
            try:
                read_partition_table(p, size)
            except ZiplDumpError as exc:
                check_error(exc)
                assert isinstance(exc, DiskError)
    with pytest.raises(DiskError, match=f"{bs}-byte sectors"):
        read_partition_table(img.path, other)
