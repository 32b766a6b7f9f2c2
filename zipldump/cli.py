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


class _ArgumentError(SystemExit):
    """argparse's refusal, its message kept for the --json error document."""

    def __init__(self, message: str) -> None:
        super().__init__(UsageError.exit_code)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other error (no usage block)."""

    def error(self, message: str) -> NoReturn:
        text = f"{one_line(message)} (see {self.prog} --help)"
        sys.stderr.write(f"{self.prog}: error: {text}\n")
        raise _ArgumentError(text)


def _asks_json(argv: list[str]) -> bool:
    """--json among the options (before a bare '--'): argparse refused the line, so it is all we know."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def error_document(exc: ZiplDumpError) -> dict[str, object]:
    """The one error shape of every command's --json (docs/schemas/error.schema.json)."""
    return {"error": {"kind": exc.kind, "where": exc.where, "message": one_line(exc.message), "exit_code": exc.exit_code}}


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
        ui.emit_json(error_document(exc))
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:  # already on stderr; with --json also as the error document
        if _asks_json(sys.argv[1:] if argv is None else argv):
            UI(json_output=True).emit_json(error_document(UsageError(exc.message)))
        return UsageError.exit_code
    except SystemExit as exc:  # --help, --version (argparse printed them)
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
