"""Reference dump writer for a `--dumptofs` disk: file `dump.N` in an ext2/3/4 file system.

This is the original zfcpdump design (user space 2.x, s390-dump-format.md §7.2-§7.3,
zipl-scsi-format.md §8.6/§8.8) with two deliberate changes:

* the file holds the s390 standalone format (header, memory, `DUMP_END` end
  marker) that zgetdump reads, not the LKCD format zfcpdump 2.x converted to;
* nothing is mounted: e2fsck runs on the partition first (fix mode; uncorrectable
  errors refuse the dump), the file is created with every block allocated
  (`ExtFs.allocate`) and the dump is streamed straight into those blocks at
  their image offsets.  No temporary copy, no page of the dump in RAM twice.

Parameters come from the dump kernel command line (dump/params.py): `dump_part`
(partition number), `dump_dir` (directory in that file system, must exist),
`dump_mode` (`auto` | `interactive`), `dump_mem` (byte limit of the dumped
memory).  N is the highest existing `dump.<n>` + 1 (0 when none; names with a
leading zero or any suffix after the number do not count, as in zfcpdump 2.2).

No space: the whole file is allocated before the first data byte is written,
so "disk full" is known up front.  `auto` deletes the oldest dump (lowest N) and
retries; `interactive` asks first (no terminal counts as "no") and fails with
DumpSpaceError on "no".  When even deleting every dump would not make room,
nothing is deleted at all.

Write order: the header (with the end-marker slot zeroed first, since the
allocated blocks may hold a deleted dump's bytes), fsync, memory, fsync, end
marker, fsync.  An interrupted `dump.N` is a valid header without end marker,
which zgetdump and dump.s390 call "not complete" (the s390 format's own
completeness rule, §3).  Only data blocks of the already allocated file are
written after allocation, so the file system stays e2fsck-clean whenever the
writer stops.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import replace

from zipldump.disk.extfs import ExtFs
from zipldump.disk.image import DiskImage
from zipldump.disk.io import ExtentWriter
from zipldump.disk.partitions import read_partition_table
from zipldump.dump.params import DumpParams
from zipldump.dump.source import ZcoreFiles
from zipldump.dump.write_partition import (
    DEFAULT_CHUNK,
    DumpResult,
    prepare_header,
    write_dump,
)
from zipldump.errors import DumpError, DumpSpaceError
from zipldump.formats.lowcore import LOWCORE_SIZE
from zipldump.formats.s390dump import (
    END_MARKER_SIZE,
    HEADER_SIZE,
    PAGE_SIZE,
    DumpHeader,
    to_mib,
)
from zipldump.ui import UI

_DUMP_NAME = re.compile(r"dump\.(0|[1-9][0-9]*)")

# e2fsck exit bits: 1 errors corrected, 2 corrected (reboot advised); anything
# higher means errors left, an operational error or an abort.
_FSCK_FIXED = 0x3


def dump_numbers(names: list[str]) -> list[int]:
    """Numbers N of the `dump.N` names, ascending."""
    return sorted(int(m.group(1)) for name in names if (m := _DUMP_NAME.fullmatch(name)))


def limit_header(header: DumpHeader, dump_mem: int | None) -> tuple[DumpHeader, list[int]]:
    """The header for a dump of at most `dump_mem` bytes of memory.

    mem_size, mem_end and num_pages shrink to the limit rounded up to a whole page
    (zfcpdump reads whole pages until it passes the limit); mem_size_real and
    real_cpu_cnt keep the real values.  CPUs whose 8 KiB lowcore is not entirely
    inside the dumped memory are dropped from lc_vec: zgetdump uses registers only
    when every listed lowcore fits (all or nothing, §4.4), so one of them would cost
    every CPU its registers.  Returns (header, dropped prefixes).
    """
    if dump_mem is None:
        return header, []
    new_size = min(header.mem_size, -(-dump_mem // PAGE_SIZE) * PAGE_SIZE)
    if new_size == header.mem_size:
        return header, []
    keep = tuple(p for p in header.prefixes if p + LOWCORE_SIZE <= new_size)
    dropped = [p for p in header.prefixes if p + LOWCORE_SIZE > new_size]
    limited = replace(
        header,
        mem_size=new_size,
        mem_end=new_size,
        num_pages=new_size // PAGE_SIZE,
        mem_size_real=header.real_mem,
        real_cpu_cnt=header.real_cpus,
        prefixes=keep,
        cpu_cnt=None,
        lc_vec_raw=(),
    )
    return limited, dropped


def _blocks_needed(size: int, block_size: int) -> int:
    """At most the bytes a block-mapped file of `size` bytes takes (data plus indirect blocks, generously)."""
    n = -(-size // block_size)
    per = block_size // 4
    return (n + 2 * (n // per + 1) + 3) * block_size


def _surely_freed(fs: ExtFs, fs_path: str) -> int:
    """At least the bytes deleting `fs_path` frees: its allocated data blocks (indirect blocks not counted)."""
    return sum(1 for b in fs.block_map(fs_path) if b) * fs.block_size


def _allocate(
    fs: ExtFs,
    path: str,
    total: int,
    dump_dir: str,
    existing: list[int],
    params: DumpParams,
    ui: UI,
) -> tuple[list[int], list[str]]:
    """Allocate the dump file, deleting old dumps per dump_mode when space runs out.

    Old dumps are deleted only when deleting them surely makes room: the oldest
    ones (lowest N) whose data blocks, with the free space, cover the most the new
    file can need.  When even all of them would not surely do, nothing is deleted."""
    deleted: list[str] = []
    try:
        return fs.allocate(path, total), deleted
    except DumpSpaceError as first:
        shortage = first
    need = _blocks_needed(total, fs.block_size)
    free = fs.free_bytes()
    victims: list[str] = []
    for n in existing:  # oldest = lowest number first
        if free >= need:
            break
        victim = posixpath.join(dump_dir, f"dump.{n}")
        victims.append(victim)
        free += _surely_freed(fs, victim)
    if free < need:
        raise DumpSpaceError(
            f"dump needs up to {need} bytes ({to_mib(total)} MB of dump); {fs.free_bytes()} bytes are free and deleting "
            f"every old dump ({len(existing)}) surely frees only {free - fs.free_bytes()} more: nothing deleted",
            where=f"{fs.spec}:{path}",
        ) from shortage
    for victim in victims:  # the plan surely fits; stop as soon as the file does
        ui.warn(f"No space left on device for {path} ({to_mib(total)} MB)")
        if params.auto:
            ui.info(f"Removing oldest dump: '{victim}'")
        elif not ui.ask(f"Remove oldest dump: '{victim}'?"):
            raise DumpSpaceError(
                f"no space left for {total} bytes and the oldest dump '{victim}' was kept (dump_mode=interactive, answer no)",
                where=f"{fs.spec}:{path}",
            ) from shortage
        fs.remove(victim)
        deleted.append(victim)
        ui.info("Dump removed!")
        try:
            return fs.allocate(path, total), deleted
        except DumpSpaceError as again:
            shortage = again
    raise DumpSpaceError(
        f"no space left for {total} bytes after removing {len(deleted)} old dump(s), although they held enough blocks",
        where=f"{fs.spec}:{path}",
    ) from shortage


def dump_to_fs(
    image_path: str | os.PathLike[str],
    zcore: ZcoreFiles,
    ui: UI,
    params: DumpParams,
    *,
    block_size: int = 512,
    chunk_size: int = DEFAULT_CHUNK,
    clock: Callable[[], int] | None = None,
) -> DumpResult:
    """Write the dump zcore exports to `dump_dir/dump.N` on partition `dump_part`."""
    image = os.fspath(image_path)
    for text in params.warnings:
        ui.warn(text)
    with DiskImage(image, block_size, writable=True) as disk:
        part = read_partition_table(disk).get(params.dump_part)
        fs = ExtFs(image, part.start_bytes, part.size_bytes)
        where_fs = f"partition {part.number} ({fs.fs_type})"
        with ui.step(f"Checking the file system on partition {part.number} (e2fsck)"):
            rc = fs.fsck(fix=True)
        if rc & ~_FSCK_FIXED:
            last = fs.last_fsck_output.strip().splitlines()[-1:] or [""]
            raise DumpError(f"e2fsck could not correct the file system (exit {rc}): {last[0]}", where=where_fs)
        if rc:
            ui.warn(f"e2fsck corrected errors on partition {part.number} (exit {rc})")
        dump_dir = params.dump_dir
        if not fs.exists(dump_dir):
            raise DumpError(f"specified dump dir '{dump_dir}' not found", where=f"{where_fs} dump_dir={dump_dir}")
        if not fs.is_dir(dump_dir):
            raise DumpError(f"specified dump dir '{dump_dir}' is not a directory", where=f"{where_fs} dump_dir={dump_dir}")

        opened = time.monotonic()  # the dump's time runs from opening zcore/mem to the final fsync
        zheader_raw, zheader, ranges = prepare_header(zcore)
        header, dropped = limit_header(zheader, params.dump_mem)
        warnings = list(params.warnings)
        if header is not zheader:
            header_raw = header.build()
            ui.info(f"dump_mem: dumping {to_mib(header.mem_size)} of {to_mib(zheader.mem_size)} MB")
            for prefix in dropped:
                text = f"CPU with prefix {prefix:#x}: its lowcore lies above dump_mem, so it is left out of the CPU list"
                warnings.append(text)
                ui.warn(text)
        else:
            header_raw = zheader_raw

        existing = dump_numbers(fs.listdir(dump_dir))
        number = existing[-1] + 1 if existing else 0
        path = posixpath.join(dump_dir, f"dump.{number}")
        total = HEADER_SIZE + header.mem_size + END_MARKER_SIZE
        ui.info(f"dump file: {path} ({to_mib(total)} MB) on {where_fs}")
        blocks, deleted = _allocate(fs, path, total, dump_dir, existing, params, ui)
        extents = []
        done = 0
        for image_offset, length in fs.byte_runs(blocks):
            extents.append((done, image_offset, length))
            done += length
        writer = ExtentWriter(disk, extents)
        end_tod, seconds = write_dump(
            disk,
            writer,
            zcore,
            header_raw,
            header,
            ui,
            description=f"Writing {path}",
            failed=f"DUMP '{path}' FAILED: the file holds an incomplete dump (no end marker)",
            commit="end-marker",
            chunk_size=chunk_size,
            clock=clock,
            ranges=ranges,
            start=opened,
        )
    ui.info(f"DUMP '{path}' COMPLETE")
    return DumpResult.of(
        "fs",
        image,
        part.number,
        f"{path} on {where_fs}",
        header,
        end_tod,
        seconds,
        fs_path=path,
        fs_offset=part.start_bytes,
        fs_size=part.size_bytes,
        deleted=deleted,
        warnings=warnings,
    )
