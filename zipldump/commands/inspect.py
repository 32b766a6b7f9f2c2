"""`zipldump inspect IMAGE`: strict check and report of a zipl SCSI disk (docs/inspect.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zipldump.commands import add_block_size_arg, block_size_of, hsa_size_arg
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.ui import UI
from zipldump.zipl.check import ExecuteComponent, Report, inspect_disk

KEY_WIDTH = 22


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="read a zipl SCSI IPL or dump disk strictly and report what it holds",
        description="Read every zipl structure on IMAGE (boot record, program table, component tables, "
        "block lists, boot_info, dump superblock) and report problems.  Exit 0 when valid.",
    )
    p.add_argument("image", metavar="IMAGE", help="disk image file or block device")
    add_block_size_arg(p)
    p.add_argument("--hsa-size", type=hsa_size_arg, metavar="SIZE", help="HSA size; dump-program components must end below it (default 32M)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ui: UI) -> int:
    hsa = args.hsa_size or DEFAULT_HSA_SIZE
    report = inspect_disk(args.image, block_size_of(args.image, args.block_size, ui), hsa_size=hsa)
    if args.json:
        ui.emit_json(report.to_json())
    elif sys.stdout.isatty():
        render_rich(report)
    else:
        sys.stdout.write(render_text(report))
        sys.stdout.flush()
    errs = report.errors
    if errs:
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        print(f"zipldump: error: {errs[0].line()}{more}", file=sys.stderr)
    return report.exit_code


# --- text rendering ------------------------------------------------------------------
def _rows(report: Report) -> list[tuple[int, str, str]]:
    """(indent, key, value) lines shared by the plain and the rich renderer."""
    rows: list[tuple[int, str, str]] = []

    def add(indent: int, k: str, v: str) -> None:
        rows.append((indent, k, v))

    add(0, "Image", report.image)
    add(0, "Block size", str(report.block_size))
    add(0, "Disk size", f"{report.disk_size} bytes ({report.disk_size // report.block_size} blocks)")
    br = report.boot_record
    if br is not None:
        add(0, "Boot record", f"zIPL version {br.version_id}, program table at block {br.program_table:#x}")
        bi = br.boot_info
        if bi is None:
            add(0, "Boot info", "empty (IPL disk)")
        else:
            add(0, "Boot info", f"{bi.bp_type_name}, {bi.dev_type_name}, superblock at byte {bi.dump_sb_offset:#x}")
    if report.program_table is not None:
        pt = report.program_table
        add(0, "Program table", f"block {pt.block:#x}, entries {', '.join(map(str, pt.entries)) or 'none'}")
    for prog in report.programs:
        dup = f", same as entry {prog.duplicate_of}" if prog.duplicate_of is not None else ""
        add(0, f"Program {prog.index}", f"{prog.type or '?'} (component table block {prog.component_table:#x}{dup})")
        for c in prog.components:
            if isinstance(c, ExecuteComponent):
                add(1, "EXECUTE", f"PSW {c.psw:#018x} ({c.addressing}, address {c.entry_address:#x})")
            elif c.length is None:
                add(1, c.kind.upper(), f"unreadable block list at block {c.blocklist:#x} ({c.error})")
            else:
                size = c.length
                if c.kind == "load":
                    span = f"{c.address:#010x}-{(c.address or 0) + size - 1:#010x}" if size else f"{c.address:#010x} (empty)"
                else:
                    span = f"signature format {c.signature_format}, {c.signature_length} bytes"
                add(1, c.kind.upper(), f"{span}  {size} bytes  extents {len(c.extents or ())}  sha256 {(c.sha256 or '')[:16]}")
        st = prog.stage3
        if st:
            initrd = f"initrd {st.initrd_addr:#x} ({st.initrd_len} bytes)" if st.initrd_len else "no initrd"
            add(1, "Stage 3", f"kernel {st.image_addr:#x} ({st.image_len} bytes), {initrd}, PSW {st.load_psw:#018x}")
            if st.parmline is not None:
                add(1, "Parmline", repr(st.parmline))
    d = report.dump
    if d is not None:
        add(0, "Dump superblock", f"byte {d.offset:#x}, version {d.version}")
        add(1, "Layout", d.layout)
        add(1, "Partition", f"{d.partition if d.partition is not None else '?'} at {d.part_start:#x}, {d.part_size:#x} bytes")
        add(1, "Dump area", f"offset {d.dump_offset:#x}, maximum dump size {d.dump_size:#x} bytes ({_human(d.dump_size)})")
        ok = {True: "ok", False: "WRONG", None: "not checked"}[d.checksum_ok]
        add(1, "Checksum", f"{d.csum:#x} over {d.csum_size:#x} bytes at {d.csum_offset:#x}: {ok}")
        add(1, "Dump present", str(d.present))
    for n in report.notes:
        add(0, "Note", n)
    for p in report.problems:
        add(0, p.severity.capitalize(), p.line())
    add(0, "Result", "valid" if report.valid else f"INVALID (exit {report.exit_code})")
    return rows


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def render_text(report: Report) -> str:
    lines = []
    for indent, key, value in _rows(report):
        k = "  " * indent + key
        lines.append(f"{k}{'.' * max(1, KEY_WIDTH - len(k))}: {value}")
    return "\n".join(lines) + "\n"


def render_rich(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    styles = {"Error": "red", "Warning": "yellow", "Result": "green" if report.valid else "bold red"}
    for indent, key, value in _rows(report):
        style = styles.get(key, "")
        table.add_row(Text("  " * indent + key), Text(value, style=style))
    Console(file=sys.stdout, highlight=False).print(table)
