"""`zipldump demo` (what `make demo` runs): a whole SCSI dump round trip on a fresh image.

1. writes the bundled demo dump tool (zipldump/sim/payloads.py: a labelled zfcpdump
   stand-in kernel with the real s390 image layout, its initramfs, a stage3.bin
   stand-in) to disk-images/demo-payloads/;
2. makes disk-images/demo.img: msdos label, partition 1 just big enough for the
   dump of the crashed system plus zipl's reserved tail (spec §7.3: 0x10000
   blocks + the dump tool);
3. installs the dump tool with --dumpto 1 (zipl's stage-3 layout);
4. simulates the SCSI dump IPL of a generated crashed system (2 GiB, 4 CPUs),
   writes the dump, verifies it byte for byte, and prints a summary.

See docs/ipl-flow.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zipldump.commands import int_arg, size_arg
from zipldump.commands.ipl import print_summary
from zipldump.ui import UI

MiB = 1 << 20
ALIGN = MiB
END_MARKER = 16
DUMP_HEADER = 4096


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="build a demo dump disk, IPL a generated crashed system from it, write and verify the dump",
        description="Make disk-images/demo.img, install the bundled demo dump tool on partition 1, "
        "simulate a SCSI dump IPL of a generated crashed system, write the dump and verify it.",
    )
    p.add_argument("--dir", type=Path, default=Path("disk-images"), help="where demo.img and the payloads go (default disk-images)")
    p.add_argument("--memory", type=size_arg, default=2 << 30, metavar="SIZE", help="memory of the crashed system (default 2G)")
    p.add_argument("--cpus", type=int_arg(), default=4, metavar="N", help="CPUs of the crashed system (default 4)")
    p.add_argument("--block-size", type=int_arg(), default=512, choices=(512, 4096), help="logical block size of the demo disk")
    p.add_argument("--no-verify", action="store_true", help="skip the byte-for-byte check of the dump")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


@dataclass
class DemoDisk:
    image: Path
    payloads: Any
    install: Any
    partition_bytes: int
    disk_bytes: int


def partition_size_for(memory_size: int, kernel_size: int, ramdisk_size: int, block_size: int) -> int:
    """Bytes for a dump partition holding a dump of `memory_size` plus zipl's tail, rounded to 1 MiB."""
    from zipldump.plan.layout import estimate_scsi_dump_size

    tail = estimate_scsi_dump_size(kernel_size, ramdisk_size, block_size) * block_size
    dump = DUMP_HEADER + memory_size + END_MARKER
    dump = -(-dump // block_size) * block_size
    return -(-(dump + tail) // ALIGN) * ALIGN


def build_demo_disk(directory: Path, memory_size: int, ui: UI, *, block_size: int = 512) -> DemoDisk:
    """Payloads, a fresh partitioned image and the installed dump tool."""
    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.plan.job import InstallJob, ProgramSpec
    from zipldump.sim.payloads import write_demo_payloads
    from zipldump.zipl.installer import install

    directory.mkdir(parents=True, exist_ok=True)
    with ui.step("Writing the demo dump tool (zipldump simulator payloads)"):
        payloads = write_demo_payloads(directory / "demo-payloads")
    part = partition_size_for(memory_size, payloads.image_size, payloads.ramdisk_size, block_size)
    disk_bytes = part + 2 * ALIGN  # label + alignment gap in front, slack behind
    image = directory / "demo.img"
    with ui.step(f"Making {image}: msdos, partition 1 of {part >> 20} MiB"):
        if image.exists():
            image.unlink()  # a fresh image every run; make_disk builds it under a temporary name
        make_disk(image, disk_bytes, label="msdos", block_size=block_size, parts=[PartSpec(part)])
    job = InstallJob(
        image_path=image,
        mode="dumpto",
        partition=1,
        block_size=block_size,
        programs={0: ProgramSpec("zfcpdump-demo", "dump", payloads.image, payloads.ramdisk)},
        stage3=payloads.stage3,
        assume_yes=True,
    )
    result = install(job, ui)
    return DemoDisk(image, payloads, result, part, disk_bytes)


def run(args: argparse.Namespace, ui: UI) -> int:
    from zipldump.sim.scsi_ipl import IplOptions, run_ipl

    t0 = time.monotonic()
    demo = build_demo_disk(args.dir, args.memory, ui, block_size=args.block_size)
    opts = IplOptions(
        image=demo.image,
        memory_size=args.memory,
        cpus=args.cpus,
        verify=not args.no_verify,
        block_size=args.block_size,
    )
    report = run_ipl(opts, ui)
    total = time.monotonic() - t0
    if args.json:
        data = report.to_json()
        data["demo"] = {
            "image": str(demo.image),
            "disk_bytes": demo.disk_bytes,
            "partition_bytes": demo.partition_bytes,
            "payloads": demo.payloads.to_json(),
            "install": demo.install.to_json(),
            "seconds": round(total, 3),
        }
        ui.emit_json(data)
        return 0
    print_summary(report)
    print(f"demo image:      {demo.image} ({demo.disk_bytes >> 20} MiB, sparse); demo finished in {total:.1f} s", flush=True)
    return 0
