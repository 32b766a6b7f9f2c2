"""`zipldump install`: write a zipl SCSI IPL or dump program onto a disk image.

    zipldump install IMAGE --dumpto N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --target N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --dumptofs N --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE -c zipl.conf [SECTION | --menu NAME]

See docs/installer.md.  The options become an InstallJob in zipl/jobs.py (shared with the API).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zipldump.commands import add_block_size_arg, block_size_of, hsa_size_arg, int_arg, size_arg
from zipldump.errors import UsageError
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.ui import UI
from zipldump.zipl.jobs import JobRequest, job_from_request


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "install",
        help="install a zipl SCSI IPL or dump program on a disk image",
        description="Write a zipl SCSI program: --dumpto (raw dump partition, zfcpdump), "
        "--target (bootmap file in an ext2/3/4 partition, IPL) or --dumptofs (bootmap file, "
        "file-system dump); or take sections and menus from a zipl.conf with -c; or, with no "
        "program options, read the image's own zipl.conf, BLS entries and /boot as zipl reads a running system.",
    )
    # IMAGE [SECTION]; "-c ZIPL_CONF IMAGE" (zipl's order) leaves them in -c's list, see _operands
    p.add_argument("operands", metavar="IMAGE [SECTION]", nargs="*", help="disk image file (or block device), then a zipl.conf section")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dumpto", "-d", type=int_arg(), metavar="PARTNUM", help="raw SCSI dump partition of IMAGE")
    where.add_argument("--target", "-t", type=int_arg(), metavar="PARTNUM", help="partition with an ext2/3/4 file system for /bootmap (0 = whole disk)")
    where.add_argument("--dumptofs", "-D", type=int_arg(), metavar="PARTNUM", help="ext2/3/4 partition for /bootmap and the dump files (old design)")
    # "-c ZIPL_CONF [SECTION]" as zipl spells it: the section may follow the file.
    p.add_argument("-c", "--config", nargs="+", metavar=("ZIPL_CONF", "SECTION"), help="zipl.conf file (a host file), optionally followed by a SECTION")
    p.add_argument("-m", "--menu", metavar="NAME", help="menu of the zipl.conf to install")
    p.add_argument("-b", "--blsdir", metavar="DIR", help="BLS entry directory (in the image; with -c on the host; default /boot/loader/entries)")
    p.add_argument("--root", type=int_arg(), metavar="PARTNUM", help="partition of the image's root file system (default: the one holding zipl.conf)")
    p.add_argument("-i", "--image", dest="kernel", type=Path, metavar="KERNEL", help="kernel image file")
    p.add_argument("-r", "--ramdisk", type=Path, metavar="INITRD", help="initial ramdisk file")
    p.add_argument("-p", "--parmfile", type=Path, metavar="FILE", help="kernel parameters from a file (before --parameters)")
    p.add_argument("-P", "--parameters", metavar="TEXT", help="kernel parameters (dump programs: put before zipl's own)")
    p.add_argument("--stage3", type=Path, metavar="FILE", help="zipl stage3.bin: write zipl's loader layout (default: direct layout, no loader)")
    add_block_size_arg(p, (512, 4096))
    p.add_argument("--hsa-size", type=hsa_size_arg, default=DEFAULT_HSA_SIZE, metavar="SIZE", help="HSA size that dump programs must fit in (default 32M)")
    p.add_argument("--dump-mem", type=size_arg, metavar="SIZE", help="--dumptofs: dump_mem= size limit for the dumper")
    p.add_argument("--compat", choices=("2.16",), help="write what zipl 2.16 (1.24-2.17 rules) writes instead of current zipl")
    p.add_argument("-S", "--secure", choices=("auto", "0", "1"), help="zipl's secure boot switch: auto and 0 install unsigned (1 is not supported)")
    p.add_argument("-a", "--add-files", action="store_true", help="copy kernel, ramdisk and parmfile into the bootmap (zipldump always does)")
    p.add_argument("-V", "--verbose", action="store_true", help="say which files of the image are used")
    p.add_argument("--dry-run", action="store_true", help="run every check, write nothing")
    p.add_argument("-n", "--noninteractive", action="store_true", help="do not ask before overwriting data")
    p.add_argument("--no-verify", action="store_true", help="skip reading the block lists back after writing")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    # also after the command name, as zipl takes it; SUPPRESS keeps a -q given before it
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no status messages on stderr")
    p.set_defaults(func=run)


def _operands(args: argparse.Namespace) -> None:
    """IMAGE and SECTION from the positionals and what -c's list took after the file."""
    rest = list(args.operands)
    if args.config is not None:
        rest += args.config[1:]
        args.config = args.config[:1]
    if not rest:
        raise UsageError("the following arguments are required: IMAGE", where="install")
    if len(rest) > 2:
        raise UsageError(f"too many operands: {' '.join(rest[2:])} (IMAGE and at most one SECTION)", where="install")
    args.image_path = rest[0]
    args.section = rest[1] if len(rest) > 1 else None


def _request(args: argparse.Namespace) -> JobRequest:
    return JobRequest(
        image=Path(args.image_path),
        block_size=args.block_size,
        config=args.config[0] if args.config is not None else None,
        section=args.section,
        menu=args.menu,
        blsdir=args.blsdir,
        root=args.root,
        kernel=args.kernel,
        ramdisk=args.ramdisk,
        parmfile=args.parmfile,
        parameters=args.parameters,
        dumpto=args.dumpto,
        target=args.target,
        dumptofs=args.dumptofs,
        stage3=args.stage3,
        hsa_size=args.hsa_size,
        dump_mem=args.dump_mem,
        compat=args.compat,
        secure=args.secure,
        dry_run=args.dry_run,
        assume_yes=args.noninteractive,
        verify=not args.no_verify,
        verbose=args.verbose,
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    import tempfile

    from zipldump.zipl.installer import install

    _operands(args)
    args.block_size = block_size_of(args.image_path, args.block_size, ui)
    # files read out of the image live here for the install's length
    with tempfile.TemporaryDirectory(prefix="zipldump-install-") as work:
        job = job_from_request(_request(args), Path(work), ui)
        result = install(job, ui)
    return _report(args, ui, result)


def _report(args: argparse.Namespace, ui: UI, result: Any) -> int:
    if args.json:
        ui.emit_json(result.to_json())
        return 0
    data = result.to_json()
    planned = data["block_numbers"] != "disk"
    where = "planned component table at file block" if planned else "component table at LBA"
    for prog in data["programs"]:
        ui.info(
            f"program {prog['name']!r} ({prog['kind']}, {prog['layout']} layout) in program-table entry {prog['position']}, "
            f"{where} {prog['component_table']}"
        )
        for c in prog["components"]:
            # the loaded length and hash are what `zipldump inspect` shows for the same component
            ui.info(
                f"  {c['name']:<18} {c['address']:#010x}  {c['length']:>10} bytes  "
                f"loads {c['loaded_length']:>10} bytes  sha256 {(c['loaded_sha256'] or '?')[:16]}"
            )
    if result.superblock_offset is not None:
        ui.info(f"dump superblock at byte {result.superblock_offset:#x}; dump size {result.dump_size} bytes")
    if planned:
        ui.info("Block numbers are positions in a contiguous bootmap file: the file's blocks are allocated only by a real install.")
    ui.info("Dry run: nothing was written." if result.dry_run else "Done.")
    return 0
