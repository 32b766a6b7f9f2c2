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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from zipldump.errors import AbortedError

CLIP = 60  # characters of user text quoted in a message

# The version of every --json document's shape (docs/json.md, docs/schemas/): added keys
# and enum values keep it; a removed or renamed key or a changed type is a new version.
SCHEMA_VERSION = 1


def versioned(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with `schema_version` as its first key (always this version's number)."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}


def clip(text: str) -> str:
    """User text quoted in a message: non-printable characters escaped (no line breaks or
    terminal escape sequences), cut so that the message stays one short line."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= CLIP else f"{text[:CLIP - 20]}...({len(text)} characters)"


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
        self._spinners: list[Any] = []  # active step spinners (rich Status), innermost last

    @contextmanager
    def _paused(self) -> Iterator[None]:
        """Stop the step spinners while a progress bar or a question owns the terminal
        (rich draws one live display at a time; two would garble each other)."""
        paused = [st for st in self._spinners]
        for st in paused:
            st.stop()
        try:
            yield
        finally:
            for st in paused:
                st.start()

    # -- status ------------------------------------------------------------
    # Messages are never read as rich markup: file names and prompts such as
    # "[y/N]" hold square brackets that rich would otherwise swallow.
    def info(self, message: str) -> None:
        if self.quiet:
            return
        if self.interactive:
            self.console.print(message, markup=False)
        else:
            print(message, file=self._stderr, flush=True)

    def warn(self, message: str) -> None:
        if self.interactive:
            self.console.print(f"[yellow]warning:[/] {escape(message)}")
        else:
            print(f"warning: {message}", file=self._stderr, flush=True)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        """A named step: a spinner on a terminal, 'message ... done' lines otherwise."""
        start = time.monotonic()
        if self.quiet:
            yield
            return
        if self.interactive:
            spinner = self.console.status(escape(message))
            self._spinners.append(spinner)
            try:
                with spinner:
                    yield
            except BaseException:
                self.console.print(f"[red]✗[/] {escape(message)} [red](failed)[/]")
                raise
            finally:
                self._spinners.remove(spinner)
            self.console.print(f"[green]✓[/] {escape(message)} [dim]({time.monotonic() - start:.1f}s)[/]")
        else:
            print(f"{message} ...", file=self._stderr, flush=True)
            try:
                yield
            except BaseException:
                print(f"{message}: failed", file=self._stderr, flush=True)
                raise
            print(f"{message}: done ({time.monotonic() - start:.1f}s)", file=self._stderr, flush=True)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[ByteProgress]:
        """Byte progress with throughput and ETA on a terminal; start/end lines otherwise."""
        if self.interactive and not self.quiet:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                _MiBPerSecond(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            with self._paused(), bar:
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
    def confirm(self, question: str, losses: list[str], *, assume_yes: bool, where: str | None = None) -> None:
        """Ask before destroying data.  Raises AbortedError (exit 6) on anything but yes.

        `assume_yes` (-n/--noninteractive) answers yes, as zipl's -n does, and only
        warns.  Without a terminal on both stdin and stderr this never waits: it
        refuses, naming what would be lost.  `where` names the place for the error.
        """
        if not losses:
            return
        if assume_yes:
            for loss in losses:
                self.warn(f"will overwrite: {loss}")
            return
        if not (self.interactive and self._stdin.isatty()):
            raise AbortedError(
                "would destroy " + "; ".join(losses) + " (no terminal to ask; use -n/--noninteractive to proceed)",
                where=where,
            )
        self.console.print("[bold red]This will destroy:[/]")
        for loss in losses:
            self.console.print(f"  [red]-[/] {escape(loss)}")
        if not self._yes(question):
            raise AbortedError("the operator answered no; nothing was written", where=where)

    def ask(self, question: str) -> bool:
        """Yes/no question for interactive modes (dump_mode=interactive).  False without a terminal."""
        if not (self.interactive and self._stdin.isatty()):
            return False
        return self._yes(question)

    def _yes(self, question: str) -> bool:
        with self._paused():
            self.console.print(f"{escape(question)} \\[y/N] ", end="")
            self.console.file.flush()
            line = self._stdin.readline()
            if not line:  # end of input (Ctrl-D) is no
                self.console.print()
        return line.strip().lower() in ("y", "yes")

    # -- results -----------------------------------------------------------
    def emit_json(self, data: dict[str, Any]) -> None:
        """The command's one JSON document, `schema_version` first (docs/json.md)."""
        json.dump(versioned(data), sys.stdout, indent=2, sort_keys=False, default=_json_default)
        sys.stdout.write("\n")
        sys.stdout.flush()


class _MiBPerSecond(ProgressColumn):
    """Throughput in MiB/s, the binary units of the byte counts next to it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{speed / (1 << 20):.1f} MiB/s", style="progress.data.speed")


class ByteProgress:
    """Counts bytes; forwards increments to a rich task when there is one."""

    def __init__(self, sink: Callable[[int], None] | None) -> None:
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
