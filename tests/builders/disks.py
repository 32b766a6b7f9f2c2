"""Partitioned disks prepared as dump targets, as zipl leaves them for the zfcpdump writers."""

from __future__ import annotations

from pathlib import Path

from zipldump.disk.extfs import ExtFs
from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.formats.bootrecord import build_boot_record, dump_boot_info, patch_block0
from zipldump.formats.dump_superblock import build_superblock, cksm

MiB = 1 << 20

RESERVE = 256 * 1024  # stands in for zipl's dump-tool tail (§7.3); only the superblock is put there


def dumpto_disk(tmp_path: Path, block_size: int, part_size: int, *, dump_size: int | None = None, name: str = "disk.img") -> tuple[Path, int, int]:
    """Disk with one partition prepared like `zipl --dumpto`, holding no dump yet: block 0
    boot_info -> superblock in the partition tail, first 64 KiB zero, csum = seed.
    Returns (path, superblock byte offset, dump_size)."""
    path = tmp_path / name
    table = make_disk(path, part_size + 4 * MiB, block_size=block_size, parts=[PartSpec(part_size)])
    part = table.get(1)
    if dump_size is None:
        dump_size = part.size_bytes - RESERVE
    sb_offset = part.start_bytes + part.size_bytes - RESERVE + 2 * block_size
    with DiskImage(path, block_size, writable=True) as disk:
        disk.write_at(sb_offset, build_superblock(part.start_bytes, part.size_bytes, dump_size, csum=cksm(bytes(4096))))
        old = disk.read_block(0)
        disk.write_block(0, patch_block0(old, build_boot_record(sb_offset // block_size - 1, block_size, dump_boot_info(sb_offset))))
        disk.flush()
    return path, sb_offset, dump_size


def make_fs_disk(tmp_path: Path, block_size: int, fs_size: int, fstype: str = "ext2", fs_block: int | None = None, name: str = "fs.img") -> tuple[Path, ExtFs]:
    """Disk with partition 1 (8 MiB, unused) and partition 2 holding the file system, like a --dumptofs disk."""
    path = tmp_path / name
    opts = {"block_size": fs_block} if fs_block else None
    table = make_disk(path, fs_size + 16 * MiB, block_size=block_size, parts=[PartSpec(8 * MiB), PartSpec(fs_size, fstype)], fs_options=opts)
    part = table.get(2)
    return path, ExtFs(path, part.start_bytes, part.size_bytes)

