"""`zipldump getdump IMAGE OUT`: copy the dump out of a disk image, as s390 dump or s390x ELF core (docs/dump-format.md).

IMAGE is a disk image with a zipl dump partition or `dump.N` files in an ext
file system (dump.locate), or an s390 dump file, or an s390x ELF core.  The
dump there may be in either format (zfcpdump 3.0 leaves an ELF core on the
partition); `--format s390` writes the s390 standalone format (an ELF input is
converted like `zgetdump -f s390`), `--format elf` an s390x ELF core with
zgetdump -f elf's notes.
The output is written to OUT.part and moved to OUT when complete (disk.io:
only a regular file is ever replaced; `-` streams to standard output).  After
the copy the dump's header, end marker and container (partition checksum,
dump.N block map) are read again: a dump that changed meanwhile is a
DumpChangedError (exit 45) and no OUT is left.  An incomplete
dump is refused with IncompleteDumpError (exit 41) and a partition whose
checksum no longer matches with DumpTargetChangedError (exit 43); `--force`
copies anyway (the s390 copy then holds whatever exists of header, memory and
end marker).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from zipldump.commands.dumpinfo import add_source_args, open_source
from zipldump.disk.io import STDOUT, OutputFile, same_file
from zipldump.dump.elf import write_elf, write_s390, write_s390_from_elf
from zipldump.dump.elfdump import ElfDump
from zipldump.errors import UsageError
from zipldump.ui import UI


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "getdump",
        help="copy the dump from a dump disk (partition or file system) to a file, as s390 dump or ELF core",
        description="Find the dump on IMAGE (zipl dump partition, or dump.N in an ext2/3/4 file system) or take "
        "IMAGE as a dump file (s390 or ELF), and write it to OUT in the s390 standalone format or as an s390x ELF core "
        "(like zgetdump -f elf).  Incomplete dumps are refused unless --force.",
    )
    add_source_args(p, metavar="IMAGE")
    p.add_argument("out", metavar="OUT", help="output file (a regular file, replaced only with --overwrite), or - for standard output")
    p.add_argument("--format", choices=("s390", "elf"), default="s390", help="output format (default s390)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    if args.out == STDOUT and args.json:
        raise UsageError("OUT '-' and --json would both write to standard output", where="--json")
    if args.out != STDOUT and (same_file(args.out, args.file) or os.path.abspath(args.out) == os.path.abspath(args.file)):
        raise UsageError("OUT is the input", where="OUT")
    out = OutputFile(args.out, overwrite=args.overwrite, stream_hint=True)
    try:
        return _run(args, ui, out)
    finally:
        out.abort()  # a no-op once the writer has put OUT in place


def _run(args: argparse.Namespace, ui: UI, out: OutputFile) -> int:
    dump, located = open_source(args, ui)
    try:
        info = dump.info
        for w in info.warnings:
            ui.warn(w)
        if not info.complete:
            if not args.force:
                dump.require_complete()
            ui.warn(f"dump is not complete ({info.incomplete_reason}); copying anyway (--force)")
        if args.format == "elf":
            if isinstance(dump, ElfDump):
                if not dump.cpus:
                    ui.warn("the ELF core has no CPU notes")
            elif not dump.info.registers_available:
                ui.warn(f"no CPU registers in the ELF core: {dump.info.registers_reason}")
            layout = write_elf(dump, out, ui=ui, allow_incomplete=args.force)
            nbytes = layout.file_size
        elif isinstance(dump, ElfDump):
            if not dump.cpus:
                ui.warn("the ELF core has no CPU notes: the dump gets no CPU list")
            nbytes = write_s390_from_elf(dump, out, ui=ui)
        else:
            nbytes = write_s390(dump, out, ui=ui, allow_incomplete=args.force)
        ui.info(f"wrote {args.out} ({args.format}, {nbytes} bytes)")
        if args.json:
            if located is not None:
                source = located.to_json()
            else:
                source = {"kind": "elf" if isinstance(dump, ElfDump) else "file", "where": args.file}
            ui.emit_json(
                {
                    "output": args.out,
                    "format": args.format,
                    "bytes": nbytes,
                    "complete": info.complete,
                    "cpus": len(dump.cpus),
                    "source": source,
                }
            )
        return 0
    finally:
        dump.close()
        if located is not None:
            located.close()
