"""`zipldump qemu-boot IMAGE`: IPL a disk image with QEMU's real s390-ccw firmware."""

from __future__ import annotations

import argparse

from rich.text import Text

from zipldump.commands import add_block_size_arg, block_size_of, int_arg
from zipldump.qemu import boot as qemu
from zipldump.ui import UI


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "qemu-boot",
        help="boot an image in qemu-system-s390x and wait for a console text",
        description=(
            "Boot IMAGE from a virtio-scsi disk in qemu-system-s390x (the image is opened with snapshot=on and "
            "never changed). The guest console is shown on stderr. Exit 0 when --expect TEXT appears (QEMU is "
            "then stopped) or, without --expect, when the guest powers off with status 0. Dump programs are "
            "refused up front: QEMU's firmware cannot IPL them."
        ),
    )
    p.add_argument("image", metavar="IMAGE", help="disk image")
    p.add_argument("--loadparm", type=int_arg(), metavar="N", help="program-table entry to boot (0..30; default 0)")
    add_block_size_arg(p, (512, 4096))
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="give up after S seconds (default 120)")
    p.add_argument("--expect", metavar="TEXT", help="succeed as soon as TEXT appears on the console")
    p.add_argument("--memory", default="512M", help="guest memory (default 512M)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    def console(line: str) -> None:
        if not ui.quiet:
            ui.console.print(Text(line), markup=False, highlight=False, emoji=False)

    result = qemu.boot(
        args.image,
        expect=args.expect,
        block_size=block_size_of(args.image, args.block_size, ui),
        loadparm=args.loadparm,
        timeout=args.timeout,
        memory=args.memory,
        console=console,
        announce=lambda cmd: ui.info("running: " + " ".join(cmd)),
    )
    what = f"'{args.expect}' seen" if result.matched else "guest powered off"
    ui.info(f"qemu-boot: {what} after {result.seconds:.1f}s")
    if ui.json_output:
        ui.emit_json(
            {
                "image": args.image,
                "matched": result.matched,
                "expect": args.expect,
                "seconds": round(result.seconds, 2),
                "qemu_status": result.returncode,
                "command": result.command,
            }
        )
    return 0
