"""The public Python API: the CLI's commands as functions returning typed results (docs/api.md).

Each function does what its command does, without a terminal: it never prints,
never asks (a step that would ask raises AbortedError instead, as the CLI does
without a terminal), and raises the documented ZiplDumpError classes
(docs/exit-codes.md).  Progress goes to an optional `progress(step, done,
total)` callback; status messages and warnings go to the `zipldump` logger
(silent unless the caller configures logging).  Heavy modules are imported by
the function that needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zipldump.errors import UsageError
from zipldump.plan.job import DEFAULT_HSA_SIZE, InstallJob
from zipldump.ui import UI, ByteProgress

if TYPE_CHECKING:
    from zipldump.dump.elfdump import ElfDumpInfo
    from zipldump.dump.s390 import DumpInfo
    from zipldump.sim.scsi_ipl import IplReport
    from zipldump.zipl.check import Report
    from zipldump.zipl.installer import InstallResult

__all__ = [
    "GetDumpResult",
    "Progress",
    "dump_info",
    "from_zipl_conf",
    "get_dump",
    "inspect",
    "install",
    "install_job",
    "ipl",
]

Progress = Callable[[str, int, int], None]
"""progress(step, done, total): a named step (done 0 then 1 of total 1) or bytes of a copy."""

PathArg = str | os.PathLike[str]

log = logging.getLogger("zipldump")
log.addHandler(logging.NullHandler())  # a library never prints: no last-resort handler on stderr


class _ApiUI(UI):
    """The UI the library code gets from the API: no terminal, no output, progress forwarded."""

    def __init__(self, progress: Progress | None) -> None:
        super().__init__(quiet=True, interactive=False, stderr=io.StringIO(), stdin=io.StringIO())
        self._report = progress

    def info(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        log.warning(message)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        self._tell(message, 0, 1)
        yield
        self._tell(message, 1, 1)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[ByteProgress]:
        counter: ByteProgress

        def sink(_n: int) -> None:
            self._tell(description, counter.done, total)

        counter = ByteProgress(sink)
        self._tell(description, 0, total)
        yield counter

    def ask(self, question: str) -> bool:
        return False  # non-interactive: the library's "no" (dump_mode=interactive keeps the dumps)

    def emit_json(self, data: Any) -> None:
        raise AssertionError("library code returns results; it never emits JSON")

    def _tell(self, step: str, done: int, total: int) -> None:
        if self._report is not None:
            self._report(step, done, total)


def _block_size(path: PathArg, given: int | None) -> int:
    """`given`, or what the disk says (disk.geometry); 512 for a path that is not there (the opener names it)."""
    if given is not None or not os.path.exists(path):
        return given if given is not None else 512
    from zipldump.disk.geometry import geometry

    g = geometry(path, None)
    if g.evidence:
        log.info(f"block size {g.block_size}: {g.reason}")
    if g.ambiguous:
        log.warning(f"the block size is not certain ({g.reason}); give block_size if {g.block_size} is wrong")
    return g.block_size


# --- install ------------------------------------------------------------------------------------
def from_zipl_conf(
    image: PathArg,
    config: PathArg | None = None,
    section: str | None = None,
    menu: str | None = None,
    *,
    blsdir: str | None = None,
    root: int | None = None,
    kernel: PathArg | None = None,
    ramdisk: PathArg | None = None,
    parmfile: PathArg | None = None,
    parameters: str | None = None,
    dumpto: int | None = None,
    target: int | None = None,
    dumptofs: int | None = None,
    stage3: PathArg | None = None,
    block_size: int | None = None,
    hsa_size: int = DEFAULT_HSA_SIZE,
    dump_mem: int | None = None,
    compat: str | None = None,
    dry_run: bool = False,
    assume_yes: bool = False,
    verify: bool = True,
    work: PathArg | None = None,
) -> InstallJob:
    """The InstallJob `zipldump install IMAGE -c CONFIG [SECTION | --menu MENU]` runs; with
    config None, the one `zipldump install IMAGE [SECTION]` takes from the image's own
    zipl.conf, BLS entries and /boot.  The image's kernels are then copied into `work`
    (default: a temporary directory that lives as long as the job)."""
    from zipldump.zipl.jobs import JobRequest, job_from_request

    req = JobRequest(
        image=Path(image),
        block_size=_block_size(image, block_size),
        config=config,
        section=section,
        menu=menu,
        blsdir=blsdir,
        root=root,
        kernel=None if kernel is None else Path(kernel),
        ramdisk=None if ramdisk is None else Path(ramdisk),
        parmfile=None if parmfile is None else Path(parmfile),
        parameters=parameters,
        dumpto=dumpto,
        target=target,
        dumptofs=dumptofs,
        stage3=None if stage3 is None else Path(stage3),
        hsa_size=hsa_size,
        dump_mem=dump_mem,
        compat=compat,
        dry_run=dry_run,
        assume_yes=assume_yes,
        verify=verify,
    )
    holder: Any = None
    if work is None and req.image_mode:
        import tempfile

        holder = tempfile.TemporaryDirectory(prefix="zipldump-install-")
        work = holder.name
    job = job_from_request(req, None if work is None else Path(work), _ApiUI(None))
    if holder is not None:
        job.extra["workdir"] = holder  # removed when the job is
    return job


def install_job(job: InstallJob, *, progress: Progress | None = None) -> InstallResult:
    """Run `job` (from from_zipl_conf, or built by hand) as `zipldump install` does.  A job that
    would overwrite data raises AbortedError unless job.assume_yes."""
    from zipldump.zipl.installer import install as run_install

    return run_install(job, _ApiUI(progress))


def install(
    image: PathArg,
    *,
    kernel: PathArg | None = None,
    ramdisk: PathArg | None = None,
    parameters: str | None = None,
    parmfile: PathArg | None = None,
    dumpto: int | None = None,
    target: int | None = None,
    dumptofs: int | None = None,
    config: PathArg | None = None,
    section: str | None = None,
    menu: str | None = None,
    blsdir: str | None = None,
    root: int | None = None,
    stage3: PathArg | None = None,
    block_size: int | None = None,
    hsa_size: int = DEFAULT_HSA_SIZE,
    dump_mem: int | None = None,
    compat: str | None = None,
    dry_run: bool = False,
    assume_yes: bool = False,
    verify: bool = True,
    progress: Progress | None = None,
) -> InstallResult:
    """`zipldump install` with the same options (kernel= is --image): a program on dumpto=,
    target= or dumptofs=, or sections of a zipl.conf, or the image's own configuration.
    from_zipl_conf, then install_job."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zipldump-install-") as work:
        job = from_zipl_conf(
            image, config, section, menu, blsdir=blsdir, root=root, kernel=kernel, ramdisk=ramdisk, parmfile=parmfile,
            parameters=parameters, dumpto=dumpto, target=target, dumptofs=dumptofs, stage3=stage3, block_size=block_size,
            hsa_size=hsa_size, dump_mem=dump_mem, compat=compat, dry_run=dry_run, assume_yes=assume_yes, verify=verify, work=work,
        )
        return install_job(job, progress=progress)


# --- inspect and ipl ----------------------------------------------------------------------------
def inspect(
    image: PathArg, *, block_size: int | None = None, hsa_size: int = DEFAULT_HSA_SIZE, progress: Progress | None = None
) -> Report:
    """`zipldump inspect`: the Report (`.valid`, `.exit_code`, `.problems`, `.to_json()`).  A disk that
    is not valid is a Report with problems; only a disk that cannot be read raises (DiskError)."""
    from zipldump.zipl.check import inspect_disk

    ui = _ApiUI(progress)
    with ui.step(f"Inspecting {os.fspath(image)}"):
        return inspect_disk(image, _block_size(image, block_size), hsa_size=hsa_size)


def ipl(
    image: PathArg,
    *,
    loadparm: int = 0,
    memory_size: int | None = None,
    cpus: int | None = None,
    hsa_size: int | None = None,
    crashed: PathArg | None = None,
    seed: int = 0,
    verify: bool = False,
    allow_above_hsa: bool = False,
    block_size: int | None = None,
    progress: Progress | None = None,
) -> IplReport:
    """`zipldump ipl`: one simulated SCSI dump IPL of `image`, the dump written to its disk."""
    from zipldump.sim.scsi_ipl import IplOptions, run_ipl

    if cpus is not None and cpus < 1:
        raise UsageError(f"--cpus {cpus}: at least one CPU", where="--cpus")
    opts = IplOptions(
        image=Path(image),
        loadparm=loadparm,
        memory_size=memory_size,
        cpus=cpus,
        hsa_size=hsa_size,
        crashed=None if crashed is None else Path(crashed),
        seed=seed,
        verify=verify,
        block_size=_block_size(image, block_size),
        allow_above_hsa=allow_above_hsa,
    )
    return run_ipl(opts, _ApiUI(progress))


# --- dumps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GetDumpResult:
    """What get_dump wrote (the fields of `zipldump getdump --json`)."""

    output: str
    format: str
    bytes: int
    complete: bool
    cpus: int
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@contextmanager
def _open_dump(
    path: PathArg, block_size: int | None, number: int | None, partition: int | None, directory: str, force: bool
) -> Iterator[tuple[Any, Any]]:
    """(dump, located or None) as dumpinfo/getdump find it: a dump file itself, or the dump on a disk."""
    from zipldump.disk.io import open_input, pread_full
    from zipldump.dump.elfdump import open_dump_any
    from zipldump.dump.locate import locate_dump
    from zipldump.dump.s390 import sniff_format

    name = os.fspath(path)
    fd = open_input(name, block_device=True)
    buf = bytearray(16)
    try:
        head = bytes(buf[: pread_full(fd, buf, 0, where=name)])
    finally:
        os.close(fd)
    located = None
    if sniff_format(head) in ("s390", "s390_ext", "lkcd", "elf"):
        dump = open_dump_any(name)
    else:
        located = locate_dump(
            name, block_size=_block_size(name, block_size), number=number, partition=partition, directory=directory,
            verify_checksum=not force,
        )
        try:
            for note in located.notes:
                log.warning(note)
            dump = open_dump_any(located.source, recheck=located.recheck)
        except BaseException:
            located.close()
            raise
    try:
        yield dump, located
    finally:
        dump.close()
        if located is not None:
            located.close()


def dump_info(
    path: PathArg,
    *,
    block_size: int | None = None,
    number: int | None = None,
    partition: int | None = None,
    directory: str = "/",
    force: bool = False,
    progress: Progress | None = None,
) -> DumpInfo | ElfDumpInfo:
    """`zipldump dumpinfo`: the dump's header, memory, CPUs and completeness (`.complete`; an
    incomplete dump is returned, not raised; a busy marker raises IncompleteDumpError)."""
    ui = _ApiUI(progress)
    with ui.step(f"Reading the dump on {os.fspath(path)}"), _open_dump(path, block_size, number, partition, directory, force) as (dump, _):
        info: DumpInfo | ElfDumpInfo = dump.info
        return info


def get_dump(
    path: PathArg,
    out: PathArg,
    *,
    format: str = "s390",
    overwrite: bool = False,
    block_size: int | None = None,
    number: int | None = None,
    partition: int | None = None,
    directory: str = "/",
    force: bool = False,
    progress: Progress | None = None,
) -> GetDumpResult:
    """`zipldump getdump`: copy the dump at `path` to `out` as "s390" or "elf".  An incomplete dump
    raises IncompleteDumpError unless force; OUT is written whole or not at all."""
    from zipldump.disk.io import STDOUT, OutputFile, same_file
    from zipldump.dump.elf import write_elf, write_s390, write_s390_from_elf
    from zipldump.dump.elfdump import ElfDump

    if format not in ("s390", "elf"):
        raise UsageError(f"format {format!r}: use 's390' or 'elf'", where="--format")
    name, out_name = os.fspath(path), os.fspath(out)
    if out_name != STDOUT and (same_file(out_name, name) or os.path.abspath(out_name) == os.path.abspath(name)):
        raise UsageError("OUT is the input", where="OUT")
    ui = _ApiUI(progress)
    warnings: list[str] = []
    output = OutputFile(out_name, overwrite=overwrite, stream_hint=True)
    try:
        with _open_dump(name, block_size, number, partition, directory, force) as (dump, located):
            info = dump.info
            warnings += info.warnings
            if not info.complete:
                if not force:
                    dump.require_complete()
                warnings.append(f"dump is not complete ({info.incomplete_reason}); copying anyway (force)")
            if format == "elf":
                nbytes = write_elf(dump, output, ui=ui, allow_incomplete=force).file_size
            elif isinstance(dump, ElfDump):
                nbytes = write_s390_from_elf(dump, output, ui=ui)
            else:
                nbytes = write_s390(dump, output, ui=ui, allow_incomplete=force)
            if located is not None:
                source: dict[str, Any] = located.to_json()
            else:
                source = {"kind": "elf" if isinstance(dump, ElfDump) else "file", "where": name}
            for w in warnings:
                log.warning(w)
            return GetDumpResult(out_name, format, nbytes, info.complete, len(dump.cpus), source, warnings)
    finally:
        output.abort()  # a no-op once the writer has put OUT in place
