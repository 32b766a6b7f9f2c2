"""Partition tables: exact geometry, sparse images, 4Kn tables read by independent readers, strict reading."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import pytest

from zipldump.disk.partitions import (
    PartSpec,
    make_disk,
    parse_size,
    read_partition_table,
)
from zipldump.errors import DiskError, UsageError

MIB = 1 << 20


def _partx(path, block_size):
    """util-linux partx (libblkid): (start, sectors) in the 512-byte units it always prints."""
    if not shutil.which("partx"):
        pytest.skip("partx (util-linux) not installed")
    out = subprocess.run(
        ["partx", "--show", "-S", str(block_size), "-b", "-o", "NR,START,SECTORS", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")[1:]
    return [tuple(int(x) for x in line.split()) for line in out if line.strip()]


def _raw_table(path, bs):
    """A second, minimal reader written from the MBR/GPT layouts: [(start, length)] in bs-byte blocks."""
    data = path.read_bytes()
    assert data[510:512] == b"\x55\xaa"
    entries = [struct.unpack_from("<B3xB3xII", data, 446 + 16 * i) for i in range(4)]
    if entries[0][1] != 0xEE:
        return "msdos", [(lba, n) for _, t, lba, n in entries if t]
    hdr = data[bs : bs + 92]
    assert hdr[:8] == b"EFI PART"
    crc = zlib.crc32(hdr[:16] + bytes(4) + hdr[20:92])
    assert crc == struct.unpack_from("<I", hdr, 16)[0]
    my_lba, alt_lba, first, last = struct.unpack_from("<QQQQ", hdr, 24)
    assert my_lba == 1 and alt_lba == len(data) // bs - 1
    entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
    array = data[entries_lba * bs : entries_lba * bs + count * esize]
    assert zlib.crc32(array) == ecrc
    backup = data[alt_lba * bs : alt_lba * bs + 92]
    assert backup[:8] == b"EFI PART" and struct.unpack_from("<Q", backup, 24)[0] == alt_lba
    b_entries = struct.unpack_from("<Q", backup, 72)[0]
    assert data[b_entries * bs : b_entries * bs + count * esize] == array
    out = []
    for i in range(count):
        first_lba, last_lba = struct.unpack_from("<QQ", array, i * esize + 32)
        if array[i * esize : i * esize + 16] != bytes(16):
            assert first <= first_lba <= last_lba <= last
            out.append((first_lba, last_lba - first_lba + 1))
    return "gpt", out


def test_parse_size():
    assert parse_size("32M") == 32 * MIB
    assert parse_size("1G") == 1 << 30
    assert parse_size("4096") == 4096
    assert parse_size("512KiB") == 512 << 10
    assert parse_size("2k") == 2048
    with pytest.raises(UsageError):
        parse_size("12X")
    with pytest.raises(UsageError):
        parse_size("-1M")


def test_partspec_parse():
    assert PartSpec.parse("8M") == PartSpec(8 * MIB, None)
    assert PartSpec.parse("8M:ext4") == PartSpec(8 * MIB, "ext4")
    assert PartSpec.parse("rest:ext2") == PartSpec(None, "ext2")
    with pytest.raises(UsageError, match="unknown file system"):
        PartSpec.parse("8M:xfs")


@pytest.mark.parametrize("label", ["msdos", "gpt"])
@pytest.mark.parametrize("bs", [512, 4096])
def test_exact_geometry_sparse_and_independent_readers(tmp_path, label, bs):
    path = tmp_path / "d.img"
    table = make_disk(path, 64 * MIB, label=label, block_size=bs, parts=[PartSpec(8 * MIB), PartSpec(3 * MIB + bs), PartSpec(None)])
    per_mib = MIB // bs
    nblocks = 64 * MIB // bs
    last = nblocks - 1 if label == "msdos" else nblocks - 34  # libparted last_usable_lba
    expected = [(per_mib, 8 * per_mib), (9 * per_mib, 3 * per_mib + 1), (13 * per_mib, last - 13 * per_mib + 1)]
    assert table.label == label and table.block_size == bs
    assert [(p.start, p.length) for p in table.partitions] == expected
    assert [p.number for p in table.partitions] == [1, 2, 3]
    assert table.get(2).start_bytes == 9 * MIB and table.get(2).size_bytes == 3 * MIB + bs
    st = path.stat()
    assert st.st_size == 64 * MIB
    assert st.st_blocks * 512 <= 256 * 1024  # sparse: only the tables are allocated
    assert _raw_table(path, bs) == (label, expected)
    # partx prints 512-byte units whatever the sector size
    scale = bs // 512
    assert _partx(path, bs) == [(i + 1, s * scale, n * scale) for i, (s, n) in enumerate(expected)]
    assert not list(tmp_path.glob(".d.img.partial-*"))


def test_4kn_header_at_byte_4096(tmp_path):
    path = tmp_path / "d.img"
    make_disk(path, 16 * MIB, label="gpt", block_size=4096, parts=[PartSpec(4 * MIB)])
    data = path.read_bytes()
    assert data[512:520] != b"EFI PART" and data[4096:4104] == b"EFI PART"
    # protective MBR covers the disk in 4096-byte sectors
    assert struct.unpack_from("<II", data, 446 + 8) == (1, 16 * MIB // 4096 - 1)
    with pytest.raises(DiskError, match="4096-byte sectors"):
        read_partition_table(path, 512)


def test_4kn_msdos_lba_units(tmp_path):
    path = tmp_path / "d.img"
    make_disk(path, 16 * MIB, label="msdos", block_size=4096, parts=[PartSpec(None)])
    # msdos has no sector-size marker: read as 512 the same LBA values mean other bytes
    t = read_partition_table(path, 512)
    assert t.partitions[0].start == 256
    make_disk(path, 16 * MIB, label="msdos", block_size=4096, parts=[PartSpec(8 * MIB), PartSpec(None)], overwrite=True)
    assert read_partition_table(path, 4096).get(2).start == 9 * 256


def test_512_matches_pyparted(tmp_path):
    parted = pytest.importorskip("parted")
    path = tmp_path / "d.img"
    make_disk(path, 32 * MIB, label="gpt", parts=[PartSpec(2 * MIB), PartSpec(5 * MIB)])
    dev = parted.getDevice(str(path))
    try:
        disk = parted.newDisk(dev)
        got = [(p.number, p.geometry.start, p.geometry.length) for p in disk.partitions]
    finally:
        dev.removeFromCache()
    assert got == [(1, 2048, 4096), (2, 3 * 2048, 5 * 2048)]


def test_errors_no_label_truncated(tmp_image, tmp_path):
    with pytest.raises(DiskError, match="no partition table"):
        read_partition_table(tmp_image(MIB))
    with pytest.raises(DiskError, match="truncated"):
        read_partition_table(tmp_image(100, name="tiny.img"))
    path = tmp_path / "d.img"
    make_disk(path, 16 * MIB, label="msdos", parts=[PartSpec(None)])
    with open(path, "rb+") as fh:
        fh.truncate(8 * MIB)
    with pytest.raises(DiskError, match="ends past the end of the disk"):
        read_partition_table(path)
    gpt = tmp_path / "g.img"
    make_disk(gpt, 16 * MIB, label="gpt", parts=[PartSpec(MIB)])
    with open(gpt, "rb+") as fh:
        fh.seek(512 + 24)
        fh.write(b"\xff")  # damage the primary header: the backup is used, with a warning
    t = read_partition_table(gpt)
    assert t.get(1).start == 2048 and "backup" in t.warnings[0]
    with pytest.raises(DiskError, match="no partition 3"):
        t.get(3)
    with open(gpt, "rb+") as fh:
        fh.truncate(4 * MIB)
    with pytest.raises(DiskError, match="CRC32|GPT header"):
        read_partition_table(gpt)


def test_make_disk_refusals(tmp_path):
    path = tmp_path / "d.img"
    with pytest.raises(UsageError, match="does not fit"):
        make_disk(path, 8 * MIB, parts=[PartSpec(8 * MIB)])
    with pytest.raises(UsageError, match="multiple of the block size"):
        make_disk(path, 8 * MIB, block_size=4096, parts=[PartSpec(MIB + 512)])
    with pytest.raises(UsageError, match="only the last"):
        make_disk(path, 8 * MIB, parts=[PartSpec(None), PartSpec(MIB)])
    with pytest.raises(UsageError, match="at most 4"):
        make_disk(path, 64 * MIB, parts=[PartSpec(MIB)] * 5)
    assert not path.exists()
    make_disk(path, 8 * MIB, parts=[PartSpec(MIB)])
    with pytest.raises(UsageError, match="exists"):
        make_disk(path, 8 * MIB, parts=[PartSpec(MIB)])


def test_gpt_many_partitions(tmp_path):
    path = tmp_path / "d.img"
    t = make_disk(path, 32 * MIB, label="gpt", block_size=4096, parts=[PartSpec(MIB)] * 6)
    assert [(p.number, p.start) for p in t.partitions] == [(i + 1, 256 * (i + 1)) for i in range(6)]


def test_missing_directory(tmp_path):
    with pytest.raises(DiskError, match="cannot make the image"):
        make_disk(tmp_path / "no-such-dir" / "x.img", 8 * MIB, parts=[PartSpec(MIB)])


@pytest.mark.parametrize("label", ["msdos", "gpt"])
def test_4kn_image_on_a_4096_byte_loop_device(tmp_path, label):
    """As a real 4Kn disk: a loop device with 4096-byte logical sectors (needs root and loop devices)."""
    import os

    from zipldump.disk.image import DiskImage

    if os.geteuid() != 0 or not shutil.which("losetup"):
        pytest.skip("needs root and losetup")
    path = tmp_path / "d.img"
    expected = [(p.start, p.length) for p in make_disk(path, 32 * MIB, label=label, block_size=4096, parts=[PartSpec(4 * MIB), PartSpec(None)]).partitions]
    proc = subprocess.run(["losetup", "-f", "--show", "-r", "-b", "4096", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"losetup failed: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        with DiskImage(dev, 4096) as disk:
            assert disk.is_block_device and disk.size == 32 * MIB and disk.nblocks == 8192
            assert [(p.start, p.length) for p in read_partition_table(disk).partitions] == expected
        with pytest.raises(DiskError, match="4096-byte logical sectors"):
            DiskImage(dev, 512)
        # libblkid with the device's own sector size, no override
        out = subprocess.run(["partx", "--show", "-b", "-o", "NR,START,SECTORS", dev], capture_output=True, text=True, check=True).stdout
        rows = [tuple(int(x) for x in line.split()) for line in out.splitlines()[1:] if line.strip()]
        assert rows == [(i + 1, s * 8, n * 8) for i, (s, n) in enumerate(expected)]
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_parse_size_accepts_hex_bytes_and_one_parser_serves_every_command():
    from zipldump.commands import size_arg

    assert parse_size("0x2000000") == 32 << 20 == parse_size("32M") == parse_size("32MiB")
    assert size_arg("0x1000") == 4096
    with pytest.raises(UsageError):
        parse_size("0xZZ")
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        size_arg("0")
