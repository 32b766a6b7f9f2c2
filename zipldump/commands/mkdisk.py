"""`zipldump mkdisk IMAGE --size SIZE [--label] [--block-size] [--part SIZE[:FS]]...`: make a sparse disk image."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from zipldump.commands import int_arg, size_arg
from zipldump.disk.partitions import FS_TYPES, LABELS, PartSpec, make_disk
from zipldump.errors import DiskError, UsageError
from zipldump.ui import UI


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "mkdisk",
        help="make a sparse disk image with a partition table and optional ext2/3/4 file systems",
        description=(
            "Make a sparse disk image with an msdos or GPT partition table. Partitions start at 1 MiB and "
            "follow each other on 1 MiB boundaries, with exactly the sizes asked. 'rest' as the last size "
            "takes the rest of the disk. A partition may get an ext2/3/4 file system (mke2fs at the "
            "partition's offset; other tools reach it as IMAGE?offset=BYTES). With --block-size 4096 the "
            "table uses 4096-byte sectors, as on a 4Kn disk."
        ),
    )
    p.add_argument("image", type=Path, metavar="IMAGE", help="image file to make")
    p.add_argument("--size", required=True, type=size_arg, help="disk size, e.g. 256M or 2G (binary units)")
    p.add_argument("--label", choices=LABELS, default="msdos", help="partition table type (default msdos)")
    p.add_argument("--block-size", type=int_arg(), choices=(512, 4096), default=512, help="logical sector size (default 512)")
    p.add_argument(
        "--part", action="append", default=[], type=_part, metavar=f"SIZE[:{'|'.join(FS_TYPES)}]",
        help="add a partition (repeatable); SIZE may be 'rest' for the last one",
    )
    p.add_argument("--fs-block-size", type=int_arg(), choices=(1024, 2048, 4096), default=4096, help="file system block size (default 4096)")
    p.add_argument("--force", action="store_true", help="replace an existing image file")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def _part(text: str) -> PartSpec:
    try:
        return PartSpec.parse(text)
    except Exception as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace, ui: UI) -> int:
    if os.path.lexists(args.image) and not args.force:
        raise UsageError("the image file exists; use --force to replace it", where=str(args.image))
    with ui.step(f"Making {args.image} ({args.size} bytes, {args.label}, {args.block_size}-byte sectors)"):
        try:
            table = make_disk(
                args.image, args.size, label=args.label, block_size=args.block_size, parts=args.part,
                overwrite=args.force, fs_options={"block_size": args.fs_block_size},
            )
        except Exception as exc:
            if type(exc).__module__ != "_ped":
                raise
            # libparted's own refusals (e.g. a device too small for any table) as one line
            raise DiskError(f"libparted refused the disk: {exc}", where=str(args.image)) from exc
    allocated = os.stat(args.image).st_blocks * 512
    result = table.to_json()
    result = {"image": str(args.image), "allocated_bytes": allocated, **result}
    for part in result["partitions"]:
        part["fs_spec"] = f"{args.image}?offset={part['start_bytes']}" if part["fs"] else None
    if ui.json_output:
        ui.emit_json(result)
        return 0
    title = f"{args.image}: {table.label}, {table.nblocks} blocks of {table.block_size} bytes ({allocated} bytes allocated)"
    cols = ("#", "start", "length", "end", "start bytes", "size bytes", "fs")
    rows = [
        (str(p.number), str(p.start), str(p.length), str(p.end), str(p.start_bytes), str(p.size_bytes), p.fs_type or "-")
        for p in table.partitions
    ]
    if not sys.stdout.isatty():
        # plain, aligned lines for pipes and logs (no box drawing)
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
        lines = [title, "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return 0
    t = Table(title=title)
    for col in cols:
        t.add_column(col, justify="left" if col == "fs" else "right")
    for r in rows:
        t.add_row(*r)
    Console(file=sys.stdout, highlight=False).print(t)
    return 0
