"""`zipldump install`: write a zipl SCSI IPL or dump program onto a disk image.

    zipldump install IMAGE --dumpto N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --target N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --dumptofs N --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE -c zipl.conf [SECTION | --menu NAME]

See docs/installer.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zipldump.commands import hsa_size_arg, int_arg, size_arg
from zipldump.errors import UsageError
from zipldump.plan.job import DEFAULT_HSA_SIZE, InstallJob, ProgramSpec
from zipldump.ui import UI


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
        "file-system dump); or take sections and menus from a zipl.conf with -c.",
    )
    p.add_argument("image_path", metavar="IMAGE", help="disk image file (or block device)")
    p.add_argument("section", metavar="SECTION", nargs="?", help="zipl.conf section to install (with -c)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dumpto", "-d", type=int_arg(), metavar="PARTNUM", help="raw SCSI dump partition of IMAGE")
    where.add_argument("--target", "-t", type=int_arg(), metavar="PARTNUM", help="partition with an ext2/3/4 file system for /bootmap (0 = whole disk)")
    where.add_argument("--dumptofs", "-D", type=int_arg(), metavar="PARTNUM", help="ext2/3/4 partition for /bootmap and the dump files (old design)")
    # "-c ZIPL_CONF [SECTION]" as zipl spells it: the section may follow the file.
    p.add_argument("-c", "--config", nargs="+", metavar=("ZIPL_CONF", "SECTION"), help="zipl.conf file, optionally followed by a SECTION")
    p.add_argument("-m", "--menu", metavar="NAME", help="menu of the zipl.conf to install")
    p.add_argument("-i", "--image", dest="kernel", type=Path, metavar="KERNEL", help="kernel image file")
    p.add_argument("-r", "--ramdisk", type=Path, metavar="INITRD", help="initial ramdisk file")
    p.add_argument("-P", "--parameters", metavar="TEXT", help="kernel parameters (dump programs: put before zipl's own)")
    p.add_argument("--stage3", type=Path, metavar="FILE", help="zipl stage3.bin: write zipl's loader layout (default: direct layout, no loader)")
    p.add_argument("--block-size", type=int_arg(), default=512, choices=(512, 4096), help="logical block size of the disk (default 512)")
    p.add_argument("--hsa-size", type=hsa_size_arg, default=DEFAULT_HSA_SIZE, metavar="SIZE", help="HSA size that dump programs must fit in (default 32M)")
    p.add_argument("--dump-mem", type=size_arg, metavar="SIZE", help="--dumptofs: dump_mem= size limit for the dumper")
    p.add_argument("--compat", choices=("2.16",), help="write what zipl 2.16 (1.24-2.17 rules) writes instead of current zipl")
    p.add_argument("--dry-run", action="store_true", help="run every check, write nothing")
    p.add_argument("-n", "--noninteractive", action="store_true", help="do not ask before overwriting data")
    p.add_argument("--no-verify", action="store_true", help="skip reading the block lists back after writing")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def _job_from_args(args: argparse.Namespace) -> InstallJob:
    common = dict(
        image_path=Path(args.image_path),
        block_size=args.block_size,
        stage3=args.stage3,
        hsa_size=args.hsa_size,
        dry_run=args.dry_run,
        assume_yes=args.noninteractive,
        verify=not args.no_verify,
        compat=args.compat,
    )
    if args.config is not None:
        return _job_from_config(args, common)
    if args.section is not None or args.menu is not None:
        raise UsageError("SECTION and --menu need -c ZIPL_CONF", where="--menu" if args.menu is not None else "SECTION")
    if args.kernel is None:
        raise UsageError("--image KERNEL is required (or -c ZIPL_CONF)", where="--image")
    if args.dumpto is not None:
        mode, part, kind = "dumpto", args.dumpto, "dump"
    elif args.target is not None:
        mode, part, kind = "target", args.target, "ipl"
    elif args.dumptofs is not None:
        mode, part, kind = "dumptofs", args.dumptofs, "dumptofs"
    else:
        raise UsageError("say where to install: --dumpto, --target or --dumptofs PARTNUM (or -c ZIPL_CONF)", where="install")
    if args.dump_mem is not None and kind != "dumptofs":
        raise UsageError("--dump-mem is only for --dumptofs", where="--dump-mem")
    prog = ProgramSpec(
        name={"dump": "dump", "ipl": "linux", "dumptofs": "dumptofs"}[kind],
        kind=kind,
        image=args.kernel,
        ramdisk=args.ramdisk,
        parameters=args.parameters,
        dump_partition=part if kind == "dumptofs" else None,
        dump_mem=args.dump_mem,
    )
    return InstallJob(mode=mode, partition=part, programs={0: prog}, **common)


def _job_from_config(args: argparse.Namespace, common: dict[str, Any]) -> InstallJob:
    from zipldump.zipl.config import parse_config  # lazy: only -c needs it

    conf, *rest = args.config
    if len(rest) > 1 or (rest and args.section is not None):
        raise UsageError("-c takes a zipl.conf file and at most one SECTION", where="-c")
    sel = parse_config(Path(conf)).select(rest[0] if rest else args.section, args.menu)
    programs: dict[int, ProgramSpec] = {}
    places: set[tuple[str, int | None]] = set()
    override = [(m, v) for m, v in (("dumpto", args.dumpto), ("target", args.target), ("dumptofs", args.dumptofs)) if v is not None]
    for pos, sec in sorted(sel.entries.items()):
        kind = sec.kind
        image = sec.image if sec.image is not None else args.kernel
        if image is None:
            raise UsageError(f"section '{sec.name}' has no image= (give --image KERNEL)", where=sec.where)
        ramdisk = sec.ramdisk if sec.ramdisk is not None else args.ramdisk
        params = sec.command_line() or None
        if args.parameters:
            params = f"{args.parameters} {params}" if params else args.parameters
        target = sec.target if sec.target is not None else sel.target
        if kind == "dump":
            places.add(("dumpto", sec.dumpto))
        elif kind == "dumptofs":
            places.add(("target", target) if target is not None else ("dumptofs", sec.dumptofs))
        else:
            if target is None and not override:
                raise UsageError(f"section '{sec.name}' has no target= partition", where=sec.where)
            if target is not None:
                places.add(("target", target))
        programs[pos] = ProgramSpec(
            name=sec.name,
            kind=kind,
            image=image,
            ramdisk=ramdisk,
            parameters=params,
            dump_partition=sec.dumptofs,
            dump_mem=args.dump_mem,
            image_address=sec.image_address,
            parm_address=sec.parmfile_address,
            ramdisk_address=sec.ramdisk_address,
        )
    if override:
        places = {override[0]}
    modes = {m for m, _ in places}
    if "dumptofs" in modes and "target" in modes:
        modes = {"target"}
        places = {p for p in places if p[0] == "target"}
    if not places:
        raise UsageError("the selected sections name no target partition (give --target PARTNUM)", where=conf)
    if len(places) != 1:
        have = ", ".join(f"{m}={n}" for m, n in sorted(places))
        raise UsageError(f"the selected sections install to different places ({have}); one bootmap per run", where=conf)
    mode, part = places.pop()
    assert part is not None  # SectionSpec.kind is "dump"/"dumptofs" only when dumpto/dumptofs is set
    return InstallJob(mode=mode, partition=part, programs=programs, default_position=sel.default_position, **common)


def run(args: argparse.Namespace, ui: UI) -> int:
    from zipldump.zipl.installer import install

    job = _job_from_args(args)
    result = install(job, ui)
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
