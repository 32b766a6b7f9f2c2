"""`zipldump ipl`: simulate a SCSI dump IPL of a disk image and write the dump.

    zipldump ipl IMAGE [--loadparm N] [--memory SIZE] [--cpus N] [--hsa-size 32M]
                       [--crashed FILE] [--verify] [--json] [--block-size N]

See docs/ipl-flow.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zipldump.commands import add_block_size_arg, block_size_of, hsa_size_arg, int_arg, size_arg
from zipldump.errors import UsageError
from zipldump.ui import UI

if TYPE_CHECKING:
    from zipldump.sim.scsi_ipl import IplReport


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ipl",
        help="simulate a SCSI dump IPL of a disk image: load, stage 3, dump kernel, dump, re-IPL",
        description="Simulate load type 'SCSI dump' on IMAGE: the crashed system's status and HSA are saved, "
        "the machine loader loads the program, stage 3 starts the dump kernel, and the dump tool writes the "
        "dump to the disk's dump partition (or dump file system), then asks for a re-IPL.",
    )
    p.add_argument("image", metavar="IMAGE", type=Path, help="disk image with a zipl SCSI dump program")
    p.add_argument("--loadparm", type=int_arg(), default=0, metavar="N", help="program-table entry to load, 0..30 (default 0)")
    p.add_argument("--memory", type=size_arg, metavar="SIZE", help="memory of the generated crashed system (default 2G; --crashed FILE brings its own)")
    p.add_argument("--cpus", type=int_arg(), metavar="N", help="CPUs of the crashed system, 1..512 (default 4; an ELF core brings its own)")
    p.add_argument("--hsa-size", type=hsa_size_arg, metavar="SIZE", help="hardware system area size (default 32M, or the whole storage when that is smaller)")
    p.add_argument("--crashed", type=Path, metavar="FILE", help="crashed system from a raw memory image or an s390x ELF core instead of a generated one")
    p.add_argument("--seed", type=int_arg(), default=0, help="seed of the generated crashed system (default 0)")
    p.add_argument(
        "--allow-above-hsa",
        action="store_true",
        help="load components above the HSA limit (destroys unsaved crash data) with a warning instead of refusing",
    )
    p.add_argument("--verify", action="store_true", help="compare the written dump byte for byte with the crashed system")
    add_block_size_arg(p, (512, 4096))
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    from zipldump.sim.scsi_ipl import IplOptions, run_ipl

    if args.cpus is not None and args.cpus < 1:
        raise UsageError(f"--cpus {args.cpus}: at least one CPU", where="--cpus")
    opts = IplOptions(
        image=args.image,
        loadparm=args.loadparm,
        memory_size=args.memory,
        cpus=args.cpus,
        hsa_size=args.hsa_size,
        crashed=args.crashed,
        seed=args.seed,
        verify=args.verify,
        block_size=block_size_of(args.image, args.block_size, ui),
        allow_above_hsa=args.allow_above_hsa,
    )
    report = run_ipl(opts, ui)
    if args.json:
        ui.emit_json(report.to_json())
    else:
        print_summary(report)
    return 0


def summary_lines(report: IplReport) -> list[str]:
    """The result of one simulated dump IPL in a few lines (for `ipl` and `demo`)."""
    data = report.to_json()
    c = data["crashed_system"]
    fw = data["firmware"] or {}
    k = data["kernel"] or {}
    d = data["dump"] or {}
    lines = [
        f"crashed system:  {c['source']}, {_mib(c['memory_size'])}, {c['cpus']} CPUs, HSA {_mib(c['hsa_size'])}",
        f"loaded program:  {fw.get('loadparm')}: {len(fw.get('components', []))} components, "
        f"EXECUTE PSW {fw.get('psw')}; {k.get('layout')} layout, kernel entry {k.get('entry', 0):#x}",
        f"command line:    {k.get('command_line')}",
        f"dump:            {data['dump_tool']['mode']} mode, {d.get('bytes_written')} bytes at {d.get('location')} "
        f"in {d.get('seconds')} s ({d.get('throughput_mib_s')} MiB/s)",
    ]
    if data["verify"] is not None:
        lines.append(f"verify:          {_verify_text(data['verify'])}")
    r = data["reipl"] or {}
    if r.get("reipl") and "devno" in r:
        lines.append(
            f"re-IPL:          load clear from FCP 0.0.{r['devno']:04x}, WWPN {r['wwpn']:#018x}, "
            f"LUN {r['lun']:#018x}, program {r['bootprog']}"
        )
    elif r.get("reipl"):
        lines.append(f"re-IPL:          DIAG 308 subcode {r.get('diag308_subcode')}")
    else:
        lines.append("re-IPL:          none (no valid IPL parameter block: the dump tool powers off)" if r else "re-IPL: not reached")
    lines.append(f"total:           {data['seconds']} s")
    return lines


def print_summary(report: IplReport, out: TextIO | None = None) -> None:
    """The summary is the command's result: stdout (status and progress stay on stderr)."""
    out = out if out is not None else sys.stdout
    out.write("\n".join(summary_lines(report)) + "\n")
    out.flush()


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n >> 10} KiB"


def _verify_text(v: Any) -> str:
    if isinstance(v, dict):
        if "ok" in v:
            head = "dump matches the crashed system" if v["ok"] else "MISMATCH"
            rest = ", ".join(f"{k} {v[k]}" for k in v if k != "ok" and not isinstance(v[k], (dict, list)))
            return f"{head} ({rest})" if rest else head
        return ", ".join(f"{k} {val}" for k, val in v.items() if not isinstance(val, (dict, list)))
    return str(v)
