"""`zipldump mkinitramfs LIST OUT`: build a newc initramfs from a gen_init_cpio-style list."""

from __future__ import annotations

import argparse
from pathlib import Path

from zipldump.disk.initramfs import COMPRESSIONS, write_initramfs
from zipldump.ui import UI


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "mkinitramfs",
        help="build an initramfs (newc cpio) from a gen_init_cpio list",
        description=(
            "Build a newc cpio archive from a gen_init_cpio list (file, dir, nod, slink, pipe, sock lines). "
            "Device nodes are only recorded in the archive. Relative file locations are taken from the list's "
            "directory unless --base-dir is given. mtimes come from SOURCE_DATE_EPOCH (0 when unset)."
        ),
    )
    p.add_argument("list", type=Path, metavar="LIST", help="gen_init_cpio list file")
    p.add_argument("out", type=Path, metavar="OUT", help="archive to write")
    p.add_argument("--compress", choices=COMPRESSIONS, default="gzip", help="compression (default gzip)")
    p.add_argument("--base-dir", type=Path, help="directory for relative file locations (default: the list's directory)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    with ui.step(f"building {args.out}"):
        size = write_initramfs(args.list, args.out, base_dir=args.base_dir, compress=args.compress)
    if ui.json_output:
        ui.emit_json({"output": str(args.out), "size": size, "compress": args.compress})
    else:
        ui.info(f"{args.out}: {size} bytes ({args.compress})")
    return 0
