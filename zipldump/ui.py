"""Operator-facing output: status on stderr, results on stdout.

On a terminal, rich shows spinners, progress bars and tables on stderr.  When
stderr is not a terminal, the same calls print plain one-line messages, and no
call ever waits for input.  `--json` sends one JSON document to stdout and keeps
stderr for status only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zipldump.errors import AbortedError


class UI:
    """One per command run.  Library code gets it passed in; it never prints itself."""

    def __init__(
        self,
        *,
        json_output: bool = False,
        quiet: bool = False,
        stderr: TextIO | None = None,
        stdin: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.json_output = json_output
        self.quiet = quiet
        self._stderr = stderr if stderr is not None else sys.stderr
        self._stdin = stdin if stdin is not None else sys.stdin
        tty = self._stderr.isatty() if interactive is None else interactive
        self.interactive = tty
        self.console = Console(file=self._stderr, force_terminal=tty, highlight=False, soft_wrap=True)

    # -- status ------------------------------------------------------------
    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False) if not self.interactive else self.console.print(message)

    def warn(self, message: str) -> None:
        if self.interactive:
            self.console.print(f"[yellow]warning:[/] {message}")
        else:
            print(f"warning: {message}", file=self._stderr)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        """A named step: a spinner on a terminal, 'message ... done' lines otherwise."""
        start = time.monotonic()
        if self.quiet:
            yield
            return
        if self.interactive:
            with self.console.status(message):
                yield
            self.console.print(f"[green]✓[/] {message} [dim]({time.monotonic() - start:.1f}s)[/]")
        else:
            print(f"{message} ...", file=self._stderr, flush=True)
            yield
            print(f"{message}: done ({time.monotonic() - start:.1f}s)", file=self._stderr, flush=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[ByteProgress]:
        """Byte progress with throughput and ETA on a terminal; start/end lines otherwise."""
        if self.interactive and not self.quiet:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            with bar:
                task = bar.add_task(description, total=total)
                yield ByteProgress(lambda n: bar.advance(task, n))
        else:
            start = time.monotonic()
            if not self.quiet:
                print(f"{description}: {total} bytes ...", file=self._stderr, flush=True)
            counter = ByteProgress(None)
            yield counter
            if not self.quiet:
                secs = max(time.monotonic() - start, 1e-9)
                rate = counter.done / secs / (1 << 20)
                print(f"{description}: {counter.done} bytes in {secs:.1f}s ({rate:.0f} MiB/s)", file=self._stderr, flush=True)

    # -- questions ---------------------------------------------------------
    def confirm(self, question: str, losses: list[str], *, assume_yes: bool) -> None:
        """Ask before destroying data.  Raises AbortedError on 'no'.

        `assume_yes` (-n/--noninteractive) answers yes.  Without a terminal on
        stdin this never waits: it refuses, naming what would be lost.
        """
        if not losses or assume_yes:
            for loss in losses:
                self.warn(f"will overwrite: {loss}")
            return
        if not (self.interactive and self._stdin.isatty()):
            raise AbortedError(
                "would destroy " + "; ".join(losses) + " (no terminal to ask; use -n/--noninteractive to proceed)"
            )
        for loss in losses:
            self.console.print(f"[bold red]will be lost:[/] {loss}")
        self.console.print(f"{question} [y/N] ", end="")
        answer = self._stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise AbortedError("operator answered no")

    def ask(self, question: str) -> bool:
        """Yes/no question for interactive modes (dump_mode=interactive).  False without a terminal."""
        if not (self.interactive and self._stdin.isatty()):
            return False
        self.console.print(f"{question} [y/N] ", end="")
        return self._stdin.readline().strip().lower() in ("y", "yes")

    # -- results -----------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        json.dump(data, sys.stdout, indent=2, sort_keys=False, default=_json_default)
        sys.stdout.write("\n")
        sys.stdout.flush()


class ByteProgress:
    """Counts bytes; forwards increments to a rich task when there is one."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.done = 0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self._sink is not None:
            self._sink(nbytes)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if hasattr(obj, "to_json"):
        return obj.to_json()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
