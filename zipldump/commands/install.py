"""`zipldump install`: write a zipl SCSI IPL or dump program onto a disk image.

    zipldump install IMAGE --dumpto N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --target N   --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE --dumptofs N --image KERNEL [--ramdisk INITRD] ...
    zipldump install IMAGE -c zipl.conf [SECTION | --menu NAME]

See docs/installer.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zipldump.commands import add_block_size_arg, block_size_of, hsa_size_arg, int_arg, size_arg
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


def _image_mode(args: argparse.Namespace) -> bool:
    """No program options: the image's own configuration decides, as zipl on a running system."""
    options = (args.config, args.kernel, args.ramdisk, args.parmfile, args.dumpto, args.target, args.dumptofs)
    return all(o is None for o in options)


def _job_from_args(args: argparse.Namespace, work: Path | None = None, ui: UI | None = None) -> InstallJob:
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
    if args.secure == "1":
        raise UsageError("--secure 1 (secure boot: signed components) is not supported by zipldump; use auto or 0", where="--secure")
    if args.root is not None and not _image_mode(args):
        raise UsageError("--root is for installing from inside the image (no -c, --image or partition options)", where="--root")
    if _image_mode(args) and work is not None:
        return _job_from_image(args, common, work, ui or UI(quiet=True, interactive=False))
    if args.config is not None:
        if args.parmfile is not None:
            raise UsageError("--parmfile goes with --image, not with -c (use parmfile= in the section)", where="--parmfile")
        return _job_from_config(args, common)
    if args.blsdir is not None:
        raise UsageError("-b/--blsdir needs -c ZIPL_CONF (or no program options: the image's own configuration)", where="--blsdir")
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
    params = args.parameters
    if args.parmfile is not None:
        from zipldump.zipl.config import MAX_PARMFILE_SIZE, parmfile_text

        text = parmfile_text(args.parmfile, MAX_PARMFILE_SIZE, "--parmfile")
        params = " ".join(t for t in (text, params) if t) or None
    prog = ProgramSpec(
        name={"dump": "dump", "ipl": "linux", "dumptofs": "dumptofs"}[kind],
        kind=kind,
        image=args.kernel,
        ramdisk=args.ramdisk,
        parameters=params,
        dump_partition=part if kind == "dumptofs" else None,
        dump_mem=args.dump_mem,
    )
    return InstallJob(mode=mode, partition=part, programs={0: prog}, **common)


def _job_from_config(args: argparse.Namespace, common: dict[str, Any]) -> InstallJob:
    from zipldump.zipl.bls import host_files, order
    from zipldump.zipl.config import parse_config  # lazy: only -c needs it

    conf = args.config[0]
    entries = order(host_files(Path(args.blsdir))) if args.blsdir is not None else ()
    sel = parse_config(Path(conf), bls=entries).select(args.section, args.menu)
    programs: dict[int, ProgramSpec] = {}
    places: set[tuple[str, int | None]] = set()
    override = [(m, v) for m, v in (("dumpto", args.dumpto), ("target", args.target), ("dumptofs", args.dumptofs)) if v is not None]
    for pos, sec in sorted(sel.entries.items()):
        kind = sec.kind
        if _left_out(sec, pos, sel, lambda path: path.is_file(), None):
            continue
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


def _left_out(sec: Any, pos: int, sel: Any, exists: Callable[[Path], bool], ui: UI | None) -> bool:
    """zipl's optional=1: a menu entry whose image or ramdisk is missing is left out
    (its position stays empty); the default entry cannot be, nor a section alone."""
    if not sec.optional or pos == 0:
        return False
    for what, path in (("image", sec.image), ("ramdisk", sec.ramdisk)):
        if path is not None and not exists(path):
            if pos == sel.default_position:
                raise UsageError(f"optional section '{sec.name}' is the menu default, which cannot be left out (missing {what} {path})", where=sec.where)
            if ui is not None:
                ui.info(f"Optional section '{sec.name}': missing {what} file '{path}', position {pos} left out")
            return True
    return False


def _job_from_image(args: argparse.Namespace, common: dict[str, Any], work: Path, ui: UI) -> InstallJob:
    """The image's own configuration, BLS entries and files, as zipl reads a running system."""
    from zipldump.zipl.bls import DEFAULT_BLSDIR, order
    from zipldump.zipl.config import MAX_CONFIG_SIZE, parse_config_bytes
    from zipldump.zipl.image_root import CONFIG_ENV, ImageRoot, bls_files

    env = os.environ.get(CONFIG_ENV) or None
    root = ImageRoot.open(common["image_path"], args.block_size, root=args.root, config_env=env)
    conf = root.find_config(env)
    assert conf is not None
    verbose = ui.info if args.verbose else (lambda _msg: None)
    verbose(f"Using config file '{conf}' on partition {root.root_partition}" + (f" (from {CONFIG_ENV})" if env else ""))
    for line in root.describe():
        verbose(f"  mount {line}")
    raw = root.read_file(conf, MAX_CONFIG_SIZE, "configuration file", conf)
    blsdir = args.blsdir or DEFAULT_BLSDIR
    entries = order(bls_files(root, blsdir))
    for e in entries:
        verbose(f"Using BLS config file '{e.file}'")
    sel = parse_config_bytes(raw, conf, in_image=True, bls=entries).select(args.section, args.menu)

    def find(path: Path, target: str | None) -> str | None:
        # zipl's scan_update_bls_path: a file that is not there is looked for under target= too
        for cand in (str(path), f"{target}{path}" if target else None):
            if cand is not None:
                found = root.lookup(cand)
                if found is not None and found.stat.is_file:
                    return cand
        return None

    def read_in_image(path: Path, limit: int, what: str, where: str) -> bytes:
        return root.read_file(str(path), limit, what, where)

    programs: dict[int, ProgramSpec] = {}
    places: set[tuple[int, str]] = set()
    for pos, sec in sorted(sel.entries.items()):
        target = sec.target_path or sel.target_path
        if sec.kind != "ipl":
            raise UsageError(
                f"section '{sec.name}' is a {sec.kind} section; from inside an image zipldump installs IPL sections "
                "(give --dumpto PARTNUM --image KERNEL for a dump program)",
                where=sec.where,
            )
        def present(path: Path, target: str | None = target) -> bool:
            return find(path, target) is not None

        if _left_out(sec, pos, sel, present, ui):
            continue
        if sec.image is None:
            raise UsageError(f"section '{sec.name}' has no image=", where=sec.where)
        if target is None:
            raise UsageError(f"section '{sec.name}' has no target= directory", where=sec.where)
        files: dict[str, Path | None] = {}
        for what, path in (("image", sec.image), ("ramdisk", sec.ramdisk)):
            if path is None:
                files[what] = None
                continue
            found = find(path, target) or str(path)
            dest = work / f"{pos}-{what}"
            root.extract(found, dest, f"section '{sec.name}': {what}", sec.where)
            verbose(f"  {sec.name}: {what} {found}")
            files[what] = dest
        params = sec.command_line(read=read_in_image) or None
        if args.parameters:
            params = f"{args.parameters} {params}" if params else args.parameters
        loc = root.directory(target, f"section '{sec.name}': target", sec.where)
        places.add((loc.mount.partition, loc.fs_path))
        image = files["image"]
        assert image is not None
        programs[pos] = ProgramSpec(
            name=sec.name, kind="ipl", image=image, ramdisk=files["ramdisk"], parameters=params,
            image_address=sec.image_address, parm_address=sec.parmfile_address, ramdisk_address=sec.ramdisk_address,
        )
    if not programs:
        raise UsageError("nothing to install: every selected section was left out", where=conf)
    if len(places) != 1:
        have = ", ".join(f"partition {n} {d}" for n, d in sorted(places))
        raise UsageError(f"the selected sections install to different target directories ({have}); one bootmap per run", where=conf)
    part, fs_dir = places.pop()
    default = sel.default_position if sel.default_position in programs else min(programs)
    return InstallJob(mode="target", partition=part, programs=programs, default_position=default, bootmap_dir=fs_dir, **common)


def run(args: argparse.Namespace, ui: UI) -> int:
    import tempfile

    from zipldump.zipl.installer import install

    _operands(args)
    args.block_size = block_size_of(args.image_path, args.block_size, ui)
    # files read out of the image live here for the install's length
    with tempfile.TemporaryDirectory(prefix="zipldump-install-") as work:
        job = _job_from_args(args, Path(work), ui)
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
