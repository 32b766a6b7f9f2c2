"""One simulated SCSI dump IPL, end to end (s390-dump-format.md §1, zipl-scsi-format.md §9-§11).

`run_ipl(options, ui)` does what the operator's "load type SCSI dump" starts:

1. the crashed system: generated (default 2 GiB, 4 CPUs), or a raw memory image,
   or an s390x ELF core (`--crashed FILE`);
2. the machine stores the boot CPU's status and saves the HSA;
3. the machine loader loads program `loadparm` of the disk (sim/firmware.py);
4. stage 3 prepares the kernel (sim/stage3.py);
5. the dump kernel parses its command line and starts: SDIAS, zcore;
6. the dump tool writes the dump: partition mode when block 0 carries a SCSI
   dump boot_info (zfcpdump 3.0 design), file-system mode when the command line
   has `dump_part=` (zfcpdump 1.x/2.x design); then it asks zcore to re-IPL;
7. optionally `--verify` compares the dump byte for byte with the crashed system.

Every step is timed; the report is a plain object with `to_json()` (zipldump.jsonout).  Library
code only: status goes through `ui`, nothing is printed here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zipldump.disk.image import DiskImage
from zipldump.disk.io import open_binary
from zipldump.errors import DumpError, UsageError
from zipldump.formats.bootrecord import BP_TYPE_DUMP, DEV_TYPE_SCSI
from zipldump.formats.ipl_block import (
    FCP_FIELDS_END,
    IPL_OPT_DUMP,
    PBT_OFFSET,
    parse_fcp_block,
)
from zipldump.jsonout import JsonMixin, member
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.sim.firmware import LoadResult, scsi_load
from zipldump.sim.stage3 import KernelStart, run_stage3
from zipldump.ui import UI

if TYPE_CHECKING:
    from zipldump.dump.params import DumpParams
    from zipldump.dump.verify import VerifyReport
    from zipldump.dump.write_partition import DumpResult
    from zipldump.sim.crashed import CrashedSystem
    from zipldump.sim.machine import Machine
    from zipldump.sim.zcore import Zcore

GiB = 1 << 30
MiB = 1 << 20
DEFAULT_MEMORY = 2 * GiB
DEFAULT_CPUS = 4


@dataclass
class IplOptions:
    image: Path
    loadparm: int = 0
    memory_size: int | None = None  # None: DEFAULT_MEMORY (a --crashed FILE brings its own size)
    cpus: int | None = None  # None: DEFAULT_CPUS (an ELF core brings its own CPUs)
    hsa_size: int | None = None  # None: DEFAULT_HSA_SIZE, or the whole storage when that is smaller
    crashed: Path | None = None  # raw memory image or ELF core; None = generated
    seed: int = 0
    verify: bool = False
    block_size: int = 512
    allow_above_hsa: bool = False


@dataclass
class IplReport(JsonMixin):
    image: str
    block_size: int
    crashed: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    load: LoadResult | None = None
    kernel: KernelStart | None = None
    dump_params: DumpParams | None = None
    mode: str | None = None
    dump: DumpResult | None = None
    reipl: dict[str, Any] | None = None
    verify: VerifyReport | None = None
    seconds: float = 0.0

    JSON = (
        member("image"),
        member("block_size"),
        member("crashed_system", "crashed"),
        member("firmware", "load"),
        member("kernel"),
        member("dump_tool", lambda r: {"mode": r.mode, "parameters": r.dump_params}),
        *map(member, ("dump", "reipl", "verify", "steps")),
        member("seconds", fmt="round3"),
    )


@contextmanager
def _step(report: IplReport, ui: UI, name: str) -> Iterator[None]:
    start = time.monotonic()
    with ui.step(name):
        yield
    report.steps.append({"step": name, "seconds": round(time.monotonic() - start, 3)})


def make_crashed(opts: IplOptions, ui: UI | None = None) -> CrashedSystem:
    """The crashed system the options ask for (generated, raw image or ELF core).

    A file brings its own memory size (and an ELF core its own CPUs): an option
    that asked for something else is ignored with a warning, never silently."""
    from zipldump.sim import crashed

    if opts.crashed is None:
        return crashed.generate(
            DEFAULT_MEMORY if opts.memory_size is None else opts.memory_size,
            DEFAULT_CPUS if opts.cpus is None else opts.cpus,
            opts.seed,
        )
    path = Path(opts.crashed)
    try:
        with open_binary(path, block_device=True, error=UsageError) as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read the crashed system: {exc.strerror}", where=str(path)) from exc
    if magic == b"\x7fELF":
        system = crashed.from_elf(path)
        if opts.cpus is not None and opts.cpus != system.ncpus and ui is not None:
            ui.warn(f"--cpus {opts.cpus} ignored: the ELF core {path} brings its own {system.ncpus} CPUs")
    else:
        system = crashed.from_raw(path, DEFAULT_CPUS if opts.cpus is None else opts.cpus, seed=opts.seed)
    if opts.memory_size is not None and opts.memory_size != system.memory_size and ui is not None:
        ui.warn(f"--memory {opts.memory_size} ignored: {path} holds {system.memory_size} bytes of memory")
    return system


def effective_hsa_size(opts: IplOptions, memory_size: int, ui: UI | None = None) -> int:
    """The HSA size of this run: --hsa-size, else 32 MiB, or the whole storage when it is smaller
    (the HSA then holds all of it).  An explicit --hsa-size above the storage stays an error."""
    if opts.hsa_size is not None:
        return opts.hsa_size
    if memory_size < DEFAULT_HSA_SIZE:
        if ui is not None:
            size = f"{memory_size >> 20} MiB" if memory_size % MiB == 0 else f"{memory_size >> 10} KiB"
            ui.info(f"storage of {size} is smaller than the {DEFAULT_HSA_SIZE >> 20} MiB HSA: the HSA holds all of it")
        return memory_size
    return DEFAULT_HSA_SIZE


def dump_mode(load: LoadResult, params: DumpParams | tuple[str, ...]) -> str:
    """Which dump tool design the disk asks for: "partition" or "fs".

    `params` is the parsed line or just its keys (dump.params.cmdline_keys): the
    generation is decided before its own parser reads the line."""
    bi = load.boot_record.boot_info
    if bi.has_magic and bi.bp_type == BP_TYPE_DUMP and bi.dev_type == DEV_TYPE_SCSI:
        return "partition"
    keys = params if isinstance(params, tuple) else params.seen
    if "dump_part" in keys:
        return "fs"
    raise DumpError(
        "the dump tool finds no dump target: block 0 has no SCSI dump boot_info (zipl --dumpto) and the "
        "kernel command line has no dump_part= (zipl --dumptofs)",
        where="block 0x0 offset 0x70 (boot_info)",
    )


def run_ipl(opts: IplOptions, ui: UI, *, crashed_system: CrashedSystem | None = None) -> IplReport:
    """Simulate one SCSI dump IPL of `opts.image`; see the module docstring."""
    from zipldump.dump.params import cmdline_keys, parse_for_generation
    from zipldump.sim.machine import Machine

    t0 = time.monotonic()
    image = os.fspath(opts.image)
    if not 0 <= opts.loadparm <= 30:
        raise UsageError(f"loadparm {opts.loadparm} is not a program-table entry (0..30)", where="--loadparm")
    report = IplReport(image=image, block_size=opts.block_size, crashed={})
    owned = crashed_system is None
    with _step(report, ui, "Building the crashed system"):
        system = crashed_system if crashed_system is not None else make_crashed(opts, ui)
    try:
        hsa_size = effective_hsa_size(opts, system.memory_size, ui)
        report.crashed = {
            "source": system.source,
            "memory_size": system.memory_size,
            "cpus": system.ncpus,
            "boot_cpu": system.boot_cpu,
            "seed": system.seed,
            "hsa_size": hsa_size,
        }
        with _step(report, ui, "Machine: store status of the boot CPU, save the HSA"):
            machine = Machine(system, hsa_size)
            machine.ipl_info.bootprog = opts.loadparm
            machine.dump_ipl()
        with _step(report, ui, f"Machine loader: SCSI dump load of program {opts.loadparm}"):
            with DiskImage(image, opts.block_size) as disk:
                report.load = scsi_load(
                    machine, disk, dump=True, loadparm=opts.loadparm, allow_above_hsa=opts.allow_above_hsa, ui=ui
                )
        with _step(report, ui, "Stage 3: kernel image, command line, initrd"):
            report.kernel = run_stage3(machine, report.load)
        ui.info(f"dump kernel command line: {report.kernel.command_line}")
        # The disk names the dumper's generation; that dumper's own parser reads the line
        # (the partition dumper only dump_debug, so zipl 2.16's "dump_mem=<partition>" is inert).
        report.mode = dump_mode(report.load, cmdline_keys(report.kernel.command_line))
        params = parse_for_generation(report.kernel.command_line, report.mode)
        for w in params.warnings:
            ui.warn(f"dump tool: {w}")
        report.dump_params = params
        with _step(report, ui, "Dump kernel: SDIAS and zcore"):
            zcore = _boot_dump_kernel(machine)
        # The writers show their own steps and progress bar: timed here without a spinner.
        start = time.monotonic()
        if report.mode == "partition":
            from zipldump.dump.write_partition import dump_to_partition

            report.dump = dump_to_partition(image, zcore, ui, block_size=opts.block_size)
        else:
            from zipldump.dump import write_fs

            report.dump = write_fs.dump_to_fs(image, zcore, ui, report.dump_params, block_size=opts.block_size)
        report.steps.append({"step": f"Dump tool ({report.mode} mode): writing the dump", "seconds": round(time.monotonic() - start, 3)})
        report.reipl = _reipl(zcore, machine, ui)
        if opts.verify:
            from zipldump.dump.verify import verify_dump

            # verify_dump shows its own progress bar: no spinner around it (one live display at a time).
            start = time.monotonic()
            report.verify = verify_dump(report.dump, system, ui, hsa_size=hsa_size)
            report.steps.append({"step": "Verifying the dump against the crashed system", "seconds": round(time.monotonic() - start, 3)})
    finally:
        if owned:
            system.close()
    report.seconds = time.monotonic() - t0
    return report


def _boot_dump_kernel(machine: Machine) -> Zcore:
    from zipldump.sim.sclp import Sdias
    from zipldump.sim.zcore import Zcore

    return Zcore(machine, Sdias(machine))


def _reipl(zcore: Zcore, machine: Machine, ui: UI) -> dict[str, Any]:
    """The dump tool's last act: write "1" to zcore/reipl (s390-dump-format.md §5.5).

    zcore re-IPLs (DIAG 308 set + load clear) only when the crashed system left a
    valid IPL parameter block; the request is decoded for the report."""
    before = len(machine.reipl_requests)
    zcore.reipl.write(b"1")
    new = machine.reipl_requests[before:]
    if not new:
        ui.info("re-IPL: none (the crashed system left no valid IPL parameter block); the dump tool powers off")
        return {"requested": True, "reipl": False}
    req = new[-1]
    info: dict[str, Any] = {"requested": True, "reipl": True, "diag308_subcode": req.subcode}
    info.update(_decode_ipib(req.block))
    if "devno" in info:
        ui.info(
            f"re-IPL: DIAG 308 subcode {req.subcode} (load clear) from FCP device 0.0.{info['devno']:04x} "
            f"WWPN {info['wwpn']:#018x} LUN {info['lun']:#018x} program {info['bootprog']}"
        )
    else:
        ui.info(f"re-IPL: DIAG 308 subcode {req.subcode}")
    return info


def _decode_ipib(block: bytes | None) -> dict[str, Any]:
    """Fields of a list-directed FCP IPL parameter block (formats/ipl_block.py)."""
    if not block or len(block) < FCP_FIELDS_END:
        return {"ipib_length": len(block or b"")}
    out: dict[str, Any] = {"ipib_length": len(block), "pbt": block[PBT_OFFSET]}
    fcp = parse_fcp_block(block)
    if fcp is None:  # not FCP
        return out
    out.update(type="fcp-dump" if fcp["opt"] & IPL_OPT_DUMP else "fcp", devno=fcp["devno"], wwpn=fcp["wwpn"],
               lun=fcp["lun"], bootprog=fcp["bootprog"])
    return out
