"""The logical block size of a disk image, found from the disk itself (docs/disk-images.md, "Block size").

A disk does not state its sector size; what was written for one size says it.
The evidence, strongest first:

1. a block device answers BLKSSZGET: that is the size;
2. a GPT header ("EFI PART") at byte 512, 1024, 2048 or 4096: LBA 1 of that size;
3. a zipl boot record in block 0: its program-table pointer's `size` field is the
   block size zipl used (every pointer carries it);
4. a zipl dump boot_info: the dump superblock's `part_start` (bytes) must equal an
   msdos partition's start LBA times the block size;
5. an msdos table: the size at which the partitions' first sectors hold an ext
   superblock magic; else the only size at which every partition ends inside the
   disk; else the smallest size at which every partition starts on a 1 MiB
   boundary, as partitioning tools align them (a table written for 4096-byte
   blocks read at 512 starts its partitions at 128 KiB multiples).

No evidence (an empty or foreign disk) gives 512, as disks mostly are, with the
reason saying so.  When two pieces of evidence disagree, the stronger one wins and
the reason names both (`ambiguous`).  `--block-size` overrides all of this.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from dataclasses import dataclass

from zipldump.disk.io import open_input, pread_bytes
from zipldump.formats.blockptr import BlockPtrStruct
from zipldump.formats.bootrecord import BOOT_INFO_OFFSET, BP_TYPE_DUMP, ZIPL_MAGIC, BootInfo, BootRecord
from zipldump.formats.dump_superblock import SB_MAGIC, DumpSuperblock
from zipldump.formats.fields import offset_of

BLOCK_SIZES = (512, 1024, 2048, 4096)
_BLKSSZGET = 0x1268
_GPT_SIGNATURE = b"EFI PART"
_EXT_MAGIC = 0xEF53
_PT_SIZE_AT = offset_of(BootRecord, "program_table") + offset_of(BlockPtrStruct, "size")
_PART_START_AT = offset_of(DumpSuperblock, "part_start")


@dataclass(frozen=True)
class Geometry:
    block_size: int
    reason: str  # what on the disk said so, for the operator and the JSON
    ambiguous: bool = False
    detected: bool = True  # False: given by --block-size
    evidence: bool = True  # False: nothing on the disk said anything (the 512 fallback)

    def to_json(self) -> dict[str, object]:
        return {"block_size": self.block_size, "reason": self.reason, "ambiguous": self.ambiguous, "detected": self.detected,
                "evidence": self.evidence}


def geometry(path: str | os.PathLike[str], block_size: int | None = None) -> Geometry:
    """`block_size` when given (the override), else what the disk says."""
    if block_size is not None:
        return Geometry(block_size, "--block-size", detected=False)
    return detect(path)


def detect(path: str | os.PathLike[str]) -> Geometry:
    fd = open_input(path, block_device=True)
    try:
        st = os.fstat(fd)
        if stat.S_ISBLK(st.st_mode):
            try:
                size = struct.unpack("i", fcntl.ioctl(fd, _BLKSSZGET, struct.pack("i", 0)))[0]
                return Geometry(size, "the block device's logical sector size (BLKSSZGET)")
            except OSError:
                pass
        disk_size = os.lseek(fd, 0, os.SEEK_END)
        head = pread_bytes(fd, min(disk_size, 8192 + 512), 0)
        return _judge(fd, head, disk_size)
    finally:
        os.close(fd)


def _judge(fd: int, head: bytes, disk_size: int) -> Geometry:
    votes: list[tuple[int, str]] = []
    for bs in BLOCK_SIZES:
        if head[bs : bs + 8] == _GPT_SIGNATURE:
            votes.append((bs, f"GPT header at byte {bs} (LBA 1 of {bs}-byte blocks)"))
            break
    if head[:4] == ZIPL_MAGIC and len(head) >= _PT_SIZE_AT + 2:
        size = int.from_bytes(head[_PT_SIZE_AT : _PT_SIZE_AT + 2], "big")
        if size in BLOCK_SIZES:
            votes.append((size, f"the zipl boot record's program-table pointer says {size}-byte blocks (block 0 offset {_PT_SIZE_AT:#x})"))
    msdos = _msdos_entries(head)
    dump = _dump_vote(fd, head, disk_size, msdos)
    if dump is not None:
        votes.append(dump)
    if msdos and not any(v[1].startswith("GPT") for v in votes):
        fs = _msdos_vote(fd, msdos, disk_size)
        if fs is not None:
            votes.append(fs)
    if not votes:
        return Geometry(512, "no GPT header, zipl boot record or partition table says otherwise: 512, the common size", evidence=False)
    first = votes[0]
    others = [v for v in votes[1:] if v[0] != first[0]]
    if others:
        return Geometry(first[0], f"{first[1]}; but {others[0][1]}", ambiguous=True)
    return Geometry(first[0], first[1])


def _msdos_entries(head: bytes) -> list[tuple[int, int]]:
    """(start LBA, length) of the used primary msdos entries (none without the 0x55aa signature or on GPT)."""
    if len(head) < 512 or head[510:512] != b"\x55\xaa":
        return []
    out = []
    for i in range(4):
        e = head[446 + 16 * i : 462 + 16 * i]
        ptype, start, length = e[4], int.from_bytes(e[8:12], "little"), int.from_bytes(e[12:16], "little")
        if ptype == 0xEE:  # protective MBR: the GPT decides
            return []
        if ptype and length:
            out.append((start, length))
    return out


def _dump_vote(fd: int, head: bytes, disk_size: int, msdos: list[tuple[int, int]]) -> tuple[int, str] | None:
    """A dump superblock's part_start in bytes against the partition start LBAs."""
    if len(head) < BOOT_INFO_OFFSET + BootInfo.sizeof():
        return None
    bi = BootInfo.parse(head[BOOT_INFO_OFFSET : BOOT_INFO_OFFSET + BootInfo.sizeof()])
    if bi.magic != ZIPL_MAGIC or bi.bp_type != BP_TYPE_DUMP or not 0 < bi.dump_sb_offset <= disk_size - DumpSuperblock.sizeof():
        return None
    raw = pread_bytes(fd, DumpSuperblock.sizeof(), bi.dump_sb_offset)
    if raw[:8] != SB_MAGIC:
        return None
    part_start = int.from_bytes(raw[_PART_START_AT : _PART_START_AT + 8], "big")
    for bs in BLOCK_SIZES:
        if any(start * bs == part_start for start, _ in msdos):
            return bs, f"the dump superblock's part_start {part_start:#x} is partition's start LBA times {bs}"
    return None


def _msdos_vote(fd: int, entries: list[tuple[int, int]], disk_size: int) -> tuple[int, str] | None:
    fits = [bs for bs in BLOCK_SIZES if all((s + n) * bs <= disk_size for s, n in entries)]
    for bs in fits:
        for start, _ in entries:
            magic = pread_bytes(fd, 2, start * bs + 1024 + 0x38)
            if len(magic) == 2 and int.from_bytes(magic, "little") == _EXT_MAGIC:
                return bs, f"an ext file system starts at msdos partition LBA {start} of {bs}-byte blocks"
    if len(fits) == 1:
        return fits[0], f"the msdos partitions fit the disk only with {fits[0]}-byte blocks"
    # Partitioning tools start partitions on 1 MiB boundaries: a table written for
    # 4096-byte blocks (start LBA 256) read at 512 starts at 128 KiB; one written for
    # 512 (start LBA 2048) also aligns at 4096, so the smallest aligned size is it.
    aligned = [bs for bs in fits if all(start * bs % (1 << 20) == 0 for start, _ in entries)]
    if aligned:
        return aligned[0], f"the msdos partitions start on 1 MiB boundaries with {aligned[0]}-byte blocks (the smallest such size)"
    return None
