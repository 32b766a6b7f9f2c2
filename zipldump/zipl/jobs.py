"""From what the caller asked for to an InstallJob: program options, a zipl.conf, or the image's own configuration.

`JobRequest` holds the request as `zipldump install` takes it (one field per
option); `job_from_request` turns it into the `InstallJob` the installer runs.
The CLI (commands/install.py) and the Python API (api.py) both call it, so a
zipl.conf means the same to both.  Messages name the CLI's options: they are
the documented spellings of the same request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zipldump.errors import UsageError
from zipldump.plan.job import DEFAULT_HSA_SIZE, InstallJob, ProgramSpec
from zipldump.ui import UI


@dataclass
class JobRequest:
    """One install request.  `config` None with no program options: the image's own configuration."""

    image: Path
    block_size: int = 512
    config: str | os.PathLike[str] | None = None  # a host zipl.conf (-c), named as given in messages
    section: str | None = None
    menu: str | None = None
    blsdir: str | None = None  # -b: in the image, or on the host with -c
    root: int | None = None  # partition of the image's root file system (image mode)
    kernel: Path | None = None  # --image
    ramdisk: Path | None = None
    parmfile: Path | None = None
    parameters: str | None = None
    dumpto: int | None = None
    target: int | None = None
    dumptofs: int | None = None
    stage3: Path | None = None
    hsa_size: int = DEFAULT_HSA_SIZE
    dump_mem: int | None = None
    compat: str | None = None
    secure: str | None = None  # "auto", "0" or "1" (refused)
    dry_run: bool = False
    assume_yes: bool = False
    verify: bool = True
    verbose: bool = False

    @property
    def image_mode(self) -> bool:
        """No program options: the image's own configuration decides, as zipl on a running system."""
        options = (self.config, self.kernel, self.ramdisk, self.parmfile, self.dumpto, self.target, self.dumptofs)
        return all(o is None for o in options)


def job_from_request(req: JobRequest, work: Path | None = None, ui: UI | None = None) -> InstallJob:
    """The InstallJob for `req`.  Image mode extracts the image's kernels into `work`, which must
    outlive the install (without `work` image mode is not possible: --image is then required)."""
    common: dict[str, Any] = dict(
        image_path=Path(req.image),
        block_size=req.block_size,
        stage3=req.stage3,
        hsa_size=req.hsa_size,
        dry_run=req.dry_run,
        assume_yes=req.assume_yes,
        verify=req.verify,
        compat=req.compat,
    )
    if req.secure == "1":
        raise UsageError("--secure 1 (secure boot: signed components) is not supported by zipldump; use auto or 0", where="--secure")
    if req.root is not None and not req.image_mode:
        raise UsageError("--root is for installing from inside the image (no -c, --image or partition options)", where="--root")
    if req.image_mode and work is not None:
        return _job_from_image(req, common, work, ui or UI(quiet=True, interactive=False))
    if req.config is not None:
        if req.parmfile is not None:
            raise UsageError("--parmfile goes with --image, not with -c (use parmfile= in the section)", where="--parmfile")
        return _job_from_config(req, common)
    if req.blsdir is not None:
        raise UsageError("-b/--blsdir needs -c ZIPL_CONF (or no program options: the image's own configuration)", where="--blsdir")
    if req.section is not None or req.menu is not None:
        raise UsageError("SECTION and --menu need -c ZIPL_CONF", where="--menu" if req.menu is not None else "SECTION")
    if req.kernel is None:
        raise UsageError("--image KERNEL is required (or -c ZIPL_CONF)", where="--image")
    if req.dumpto is not None:
        mode, part, kind = "dumpto", req.dumpto, "dump"
    elif req.target is not None:
        mode, part, kind = "target", req.target, "ipl"
    elif req.dumptofs is not None:
        mode, part, kind = "dumptofs", req.dumptofs, "dumptofs"
    else:
        raise UsageError("say where to install: --dumpto, --target or --dumptofs PARTNUM (or -c ZIPL_CONF)", where="install")
    if req.dump_mem is not None and kind != "dumptofs":
        raise UsageError("--dump-mem is only for --dumptofs", where="--dump-mem")
    params = req.parameters
    if req.parmfile is not None:
        from zipldump.zipl.config import MAX_PARMFILE_SIZE, parmfile_text

        text = parmfile_text(req.parmfile, MAX_PARMFILE_SIZE, "--parmfile")
        params = " ".join(t for t in (text, params) if t) or None
    prog = ProgramSpec(
        name={"dump": "dump", "ipl": "linux", "dumptofs": "dumptofs"}[kind],
        kind=kind,
        image=req.kernel,
        ramdisk=req.ramdisk,
        parameters=params,
        dump_partition=part if kind == "dumptofs" else None,
        dump_mem=req.dump_mem,
    )
    return InstallJob(mode=mode, partition=part, programs={0: prog}, **common)


def _job_from_config(req: JobRequest, common: dict[str, Any]) -> InstallJob:
    from zipldump.zipl.bls import host_files, order
    from zipldump.zipl.config import parse_config  # lazy: only -c needs it

    assert req.config is not None
    conf = os.fspath(req.config)
    entries = order(host_files(Path(req.blsdir))) if req.blsdir is not None else ()
    sel = parse_config(Path(conf), bls=entries).select(req.section, req.menu)
    programs: dict[int, ProgramSpec] = {}
    places: set[tuple[str, int | None]] = set()
    override = [(m, v) for m, v in (("dumpto", req.dumpto), ("target", req.target), ("dumptofs", req.dumptofs)) if v is not None]
    for pos, sec in sorted(sel.entries.items()):
        kind = sec.kind
        if _left_out(sec, pos, sel, lambda path: path.is_file(), None):
            continue
        image = sec.image if sec.image is not None else req.kernel
        if image is None:
            raise UsageError(f"section '{sec.name}' has no image= (give --image KERNEL)", where=sec.where)
        ramdisk = sec.ramdisk if sec.ramdisk is not None else req.ramdisk
        params = sec.command_line() or None
        if req.parameters:
            params = f"{req.parameters} {params}" if params else req.parameters
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
            dump_mem=req.dump_mem,
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


def _job_from_image(req: JobRequest, common: dict[str, Any], work: Path, ui: UI) -> InstallJob:
    """The image's own configuration, BLS entries and files, as zipl reads a running system."""
    from zipldump.zipl.bls import DEFAULT_BLSDIR, order
    from zipldump.zipl.config import MAX_CONFIG_SIZE, parse_config_bytes
    from zipldump.zipl.image_root import CONFIG_ENV, ImageRoot, bls_files

    env = os.environ.get(CONFIG_ENV) or None
    root = ImageRoot.open(common["image_path"], req.block_size, root=req.root, config_env=env)
    conf = root.find_config(env)
    assert conf is not None
    verbose = ui.info if req.verbose else (lambda _msg: None)
    verbose(f"Using config file '{conf}' on partition {root.root_partition}" + (f" (from {CONFIG_ENV})" if env else ""))
    for line in root.describe():
        verbose(f"  mount {line}")
    raw = root.read_file(conf, MAX_CONFIG_SIZE, "configuration file", conf)
    blsdir = req.blsdir or DEFAULT_BLSDIR
    entries = order(bls_files(root, blsdir))
    for e in entries:
        verbose(f"Using BLS config file '{e.file}'")
    sel = parse_config_bytes(raw, conf, in_image=True, bls=entries).select(req.section, req.menu)

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
        if req.parameters:
            params = f"{req.parameters} {params}" if params else req.parameters
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
