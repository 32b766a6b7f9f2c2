"""Command line: `zipldump COMMAND ...`.

Each command lives in its own module under zipldump/commands/ and exposes
`register(subparsers)`, which adds its parser and sets `func(args, ui) -> int`.
This module only builds the parser, runs the command and turns ZiplDumpError
into a one-line message and the error's exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

from zipldump import __version__, commands
from zipldump.errors import InternalError, UsageError, ZiplDumpError
from zipldump.ui import UI


def one_line(text: str) -> str:
    """A message as one line: its lines joined with ' | ' (tool output and construct errors hold several)."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other error (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(UsageError.exit_code, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zipldump", description="zipl SCSI IPL and dump disks for IBM Z")
    parser.add_argument("--version", action="version", version=f"zipldump {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"zipldump.commands.{info.name}")
        module.register(sub)
    return parser


def _report(exc: ZiplDumpError, label: str, json_output: bool, ui: UI) -> int:
    print(f"zipldump: {label}: {one_line(str(exc))}", file=sys.stderr)
    if json_output:
        message = one_line(exc.message)
        ui.emit_json({"error": {"kind": exc.kind, "where": exc.where, "message": message, "exit_code": exc.exit_code}})
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return UsageError.exit_code if exc.code else 0
    json_output = getattr(args, "json", False)
    ui = UI(json_output=json_output, quiet=args.quiet)
    try:
        return int(args.func(args, ui) or 0)
    except ZiplDumpError as exc:
        return _report(exc, "error", json_output, ui)
    except KeyboardInterrupt:
        print("zipldump: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`zipldump ... --json | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("ZIPLDUMP_DEBUG"):
            raise
        err = InternalError(f"{type(exc).__name__}: {one_line(str(exc))} (a zipldump bug; ZIPLDUMP_DEBUG=1 shows the traceback)")
        return _report(err, "internal error", json_output, ui)
