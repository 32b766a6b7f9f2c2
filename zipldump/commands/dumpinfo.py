"""`zipldump dumpinfo FILE`: header, memory, CPUs and completeness of an s390 dump (docs/dump-format.md).

FILE is an s390 dump file, an s390x ELF core, or a disk image holding a dump
in either format (dump partition, as zfcpdump 3.0 leaves an ELF core there, or
`dump.N` in an ext file system; found as by `getdump`).  The general block and
memory map are what `zgetdump -i` prints (with the UTS lines when the memory
holds the kernel's vmcoreinfo).  Exit status as `zgetdump -i`: 0 for a complete
dump, 1 when it is not complete (the report is still printed; a partition still
holding the writer's "zfcpdump busy" marker is reported as not complete).
Unreadable or non-dump input raises the usual error classes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from zipldump.commands import add_block_size_arg, block_size_of, int_arg
from zipldump.disk.io import open_input
from zipldump.dump.elfdump import AnyDump, ElfDumpInfo, open_dump_any
from zipldump.dump.locate import LocatedDump, locate_dump
from zipldump.dump.s390 import DumpInfo, S390Dump
from zipldump.dump.vmcoreinfo import Utsname, find_utsname, find_vmcoreinfo
from zipldump.errors import DiskError, IncompleteDumpError
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
    add_block_size_arg(p)
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


def open_source(args: argparse.Namespace, ui: UI) -> tuple[AnyDump, LocatedDump | None]:
    """The dump named by FILE (s390 or ELF): the file itself when it starts with a dump magic, else located on the disk."""
    if is_dump_file(args.file):
        return open_dump_any(args.file), None
    located = locate_dump(
        args.file, block_size=block_size_of(args.file, args.block_size, ui), number=args.number, partition=args.partition, directory=args.dir,
        verify_checksum=not args.force,
    )
    for note in located.notes:
        ui.warn(note)
    ui.info(f"dump found: {located.where}")
    try:
        return open_dump_any(located.source, recheck=located.recheck), located
    except BaseException:
        located.close()
        raise


def s390_utsname(dump: S390Dump) -> Utsname | None:
    """The crashed kernel's utsname from its vmcoreinfo, as zgetdump looks for it in every format."""
    if not dump.complete:
        return None

    def read(addr: int, n: int) -> bytes | None:
        return dump.read_memory(addr, n) if 0 <= addr and addr + n <= dump.mem_size else None

    return find_utsname(read, find_vmcoreinfo(read))


def run(args: argparse.Namespace, ui: UI) -> int:
    try:
        dump, located = open_source(args, ui)
    except IncompleteDumpError as exc:
        # The writer's busy marker where the header belongs: zgetdump -i finds no
        # finished dump there and exits 1; so does dumpinfo.
        if args.json:
            ui.emit_json({"source": args.file, "format": None, "complete": False, "incomplete_reason": exc.message})
        else:
            sys.stdout.write(f"ERROR: Dump is not complete ({exc.message})\n")
            sys.stdout.flush()
        print(f"zipldump: error: {exc.where or args.file}: dump is not complete: {exc.message}", file=sys.stderr)
        return INCOMPLETE_EXIT
    try:
        info = dump.info
        for w in info.warnings:
            ui.warn(w)
        uts = s390_utsname(dump) if isinstance(dump, S390Dump) else None
        if args.json:
            data = info.to_json()
            if isinstance(dump, S390Dump):
                data["utsname"] = None if uts is None else vars(uts)
            if located is not None:
                data["located"] = located.to_json()
            ui.emit_json(data)
        else:
            text = render_elf_text(info) if isinstance(info, ElfDumpInfo) else render_text(info, uts=uts)
            sys.stdout.write(text)
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


def _add_uts(add: Callable[[str, object], None], uts: Utsname | None) -> None:
    if uts is not None:
        add("UTS node name", uts.nodename)
        add("UTS kernel release", uts.release)
        add("UTS kernel version", uts.version)


def render_text(info: DumpInfo, *, uts: Utsname | None = None) -> str:
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
    _add_uts(add, uts)
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


def render_elf_text(info: ElfDumpInfo) -> str:
    """zgetdump -i of an ELF dump (zdump/dfi_elf.c, dfi.c dfi_info_print): format, version, UTS
    lines, arch, CPU count, memory range and map (adjacent PT_LOADs merged); then CPUs and status."""
    lines = ["General dump info:"]

    def add(key: str, value: object) -> None:
        lines.append(f"  {key.ljust(19, '.')}: {value}")

    add("Dump format", "elf")
    if info.version:
        add("Version", info.version)
    _add_uts(add, info.utsname)
    add("System arch", "s390x (64 bit)")
    if info.cpus:
        add("CPU count (online)", len(info.cpus))
    mem_map = info.memory_map()
    if mem_map:
        add("Dump memory range", f"{sd.to_mib(mem_map[-1][1] - mem_map[0][0] + 1)} MB")
        lines += ["", "Memory map:"]
        lines += [f"  {lo:016x} - {hi:016x} ({sd.to_mib(hi - lo + 1)} MB)" for lo, hi in mem_map]
    if info.cpus:
        lines += ["", "CPUs:"]
        for c in info.cpus:
            r = c.registers
            lines.append(f"  CPU {c.index}: prefix 0x{r.prefix:08x}  PSW {r.psw_mask:016x} {r.psw_addr:016x}")
    lines.append("")
    lines.append("Dump is complete" if info.complete else f"ERROR: Dump is not complete ({info.incomplete_reason})")
    return "\n".join(lines) + "\n"
