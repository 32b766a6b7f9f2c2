"""`zipldump dumpinfo FILE`: header, memory, CPUs and completeness of an s390 dump (docs/dump-format.md).

FILE is an s390 dump file, an s390x ELF core (then its segments and CPUs are
shown), or a disk image holding a dump (dump partition or `dump.N` in an ext
file system; found as by `getdump`).  Exit status as
`zgetdump -i`: 0 for a complete dump, 1 when it is not complete (the report is
still printed).  Unreadable or non-dump input raises the usual error classes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from zipldump.commands import int_arg
from zipldump.disk.io import open_input
from zipldump.dump.elf import read_elf_core
from zipldump.dump.locate import LocatedDump, locate_dump
from zipldump.dump.s390 import DumpInfo, S390Dump
from zipldump.errors import DiskError
from zipldump.formats import s390dump as sd
from zipldump.ui import UI

INCOMPLETE_EXIT = 1  # what zgetdump -i returns for an incomplete dump


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dumpinfo",
        help="show the header, memory, CPUs and completeness of an s390 dump",
        description="Read an s390 standalone dump (a file, or the dump on a disk image) and report it like "
        "zgetdump -i.  Exit 0 when the dump is complete, 1 when it is not.",
    )
    add_source_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def add_source_args(p: argparse.ArgumentParser, metavar: str = "FILE") -> None:
    p.add_argument("file", metavar=metavar, help="s390 dump file, s390x ELF core, or disk image with a dump partition / file system dump")
    p.add_argument("--block-size", type=int_arg(), default=512, choices=(512, 1024, 2048, 4096), help="logical block size of a disk image (default 512)")
    p.add_argument("--number", type=int_arg(), default=None, help="file system dump: use dump.N (default: the highest N)")
    p.add_argument("--partition", type=int_arg(), default=None, help="file system dump: search only this partition")
    p.add_argument("--dir", default="/", help="file system dump: directory holding dump.N (default /)")
    p.add_argument("--force", action="store_true", help="ignore a dump partition checksum mismatch")


def _magic(path: str, n: int) -> bytes:
    fd = open_input(path, block_device=True)  # never blocks on a FIFO
    try:
        return os.pread(fd, n, 0)
    except OSError as exc:
        raise DiskError(f"cannot read: {exc.strerror}", where=path) from exc
    finally:
        os.close(fd)


def is_elf_file(path: str) -> bool:
    return _magic(path, 4) == b"\x7fELF"


def is_dump_file(path: str) -> bool:
    magic = _magic(path, 8)
    return int.from_bytes(magic.ljust(8, b"\0"), "big") in (sd.DUMP_MAGIC, sd.DUMP_MAGIC_EXT, sd.LKCD_MAGIC) or magic[:4] == b"\x7fELF"


def open_source(args: argparse.Namespace, ui: UI) -> tuple[S390Dump, LocatedDump | None]:
    """The dump named by FILE: the file itself when it starts with a dump magic, else located on the disk."""
    if is_dump_file(args.file):
        return S390Dump(args.file), None
    located = locate_dump(
        args.file, block_size=args.block_size, number=args.number, partition=args.partition, directory=args.dir,
        verify_checksum=not args.force,
    )
    for note in located.notes:
        ui.warn(note)
    ui.info(f"dump found: {located.where}")
    try:
        return S390Dump(located.source, recheck=located.recheck), located
    except BaseException:
        located.close()
        raise


def run(args: argparse.Namespace, ui: UI) -> int:
    if is_elf_file(args.file):
        return run_elf(args, ui)
    dump, located = open_source(args, ui)
    try:
        info = dump.info
        for w in info.warnings:
            ui.warn(w)
        if args.json:
            data = info.to_json()
            if located is not None:
                data["located"] = located.to_json()
            ui.emit_json(data)
        else:
            sys.stdout.write(render_text(info))
            sys.stdout.flush()
        if not info.complete:
            print(f"zipldump: error: {info.source}: dump is not complete: {info.incomplete_reason}", file=sys.stderr)
            return INCOMPLETE_EXIT
        return 0
    finally:
        dump.close()
        if located is not None:
            located.close()


def _date(tod: int) -> str:
    return sd.tod_to_datetime(tod).strftime("%a, %d %b %Y %H:%M:%S %z")


def _arch(v: int) -> str:
    return "s390x (64 bit)" if v == sd.ARCH_S390X else "s390 (32 bit)"


def render_text(info: DumpInfo) -> str:
    """zgetdump -i's general block and memory map (same line rules, times in UTC), then CPUs and status."""
    h = info.header
    lines = ["General dump info:"]

    def add(key: str, value: object) -> None:
        lines.append(f"  {key.ljust(19, '.')}: {value}")

    add("Dump format", "s390")
    add("Version", h.version if h.version < 1 << 31 else h.version - (1 << 32))
    if h.tod:
        add("Dump created", _date(h.tod))
    if info.complete and info.end_marker_tod:
        add("Dump ended", _date(info.end_marker_tod))
    if h.cpu_id:
        add("Dump CPU ID", f"{h.cpu_id:x}")
    if h.version >= 2 and h.build_arch:
        add("Build arch", _arch(h.build_arch))
    add("System arch", _arch(h.arch))
    if info.complete and h.version >= sd.HEADER_VERSION and h.cpus:
        add("CPU count (online)", h.cpus)
    if h.version >= sd.HEADER_VERSION and h.real_cpus:
        add("CPU count (real)", h.real_cpus)
    add("Dump memory range", f"{sd.to_mib(h.mem_size)} MB")
    if h.version >= 3 and h.real_mem:
        add("Real memory range", f"{sd.to_mib(h.real_mem)} MB")
    lines += ["", "Memory map:", f"  {0:016x} - {h.mem_size - 1:016x} ({sd.to_mib(h.mem_size)} MB)"]
    if info.cpus:
        lines += ["", "CPUs:"]
        for c in info.cpus:
            r = c.registers
            if r is None:
                lines.append(f"  CPU {c.index}: lc_vec prefix 0x{c.prefix:08x}, registers not available")
            else:
                lines.append(f"  CPU {c.index}: prefix 0x{r.prefix:08x}  PSW {r.psw_mask:016x} {r.psw_addr:016x}")
        if not info.registers_available and info.registers_reason:
            lines.append(f"  ({info.registers_reason})")
    lines.append("")
    if info.complete:
        lines.append("Dump is complete")
    else:
        lines.append(f"ERROR: Dump is not complete ({info.incomplete_reason})")
    return "\n".join(lines) + "\n"


def run_elf(args: argparse.Namespace, ui: UI) -> int:
    core = read_elf_core(args.file)
    if args.json:
        ui.emit_json(
            {
                "source": args.file,
                "format": "elf",
                "file_size": core.file_size,
                "segments": [{"paddr": s.paddr, "offset": s.offset, "filesz": s.filesz, "memsz": s.memsz} for s in core.segments],
                "notes": [{"name": n.name, "type": n.type_name, "size": len(n.desc)} for n in core.notes],
                "cpus": [{"index": i, "registers": c.to_json()} for i, c in enumerate(core.cpus)],
            }
        )
        return 0
    lines = ["General dump info:", f"  {'Dump format'.ljust(19, '.')}: elf", f"  {'CPU count'.ljust(19, '.')}: {len(core.cpus)}",
             f"  {'Dump memory range'.ljust(19, '.')}: {sd.to_mib(core.memory_end)} MB", "", "Memory map:"]
    for s in sorted(core.segments, key=lambda s: s.paddr):
        lines.append(f"  {s.paddr:016x} - {s.paddr + s.memsz - 1:016x} ({sd.to_mib(s.memsz)} MB)")
    if core.cpus:
        lines += ["", "CPUs:"]
        for i, r in enumerate(core.cpus):
            lines.append(f"  CPU {i}: prefix 0x{r.prefix:08x}  PSW {r.psw_mask:016x} {r.psw_addr:016x}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0
