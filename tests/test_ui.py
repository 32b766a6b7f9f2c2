"""zipldump/ui.py: status on stderr, questions, and what happens without a terminal."""

from __future__ import annotations

import io
import json

import pytest
from builders.fakes import FakeTty

from zipldump.errors import AbortedError
from zipldump.ui import UI


class NoInput(io.StringIO):
    """A stdin that fails the test if anything tries to read it."""

    def readline(self, *a):  # type: ignore[override]
        raise AssertionError("read stdin without a terminal")

    read = readline


def terminal_ui(answer: str = "", **kw) -> tuple[UI, io.StringIO]:
    err = io.StringIO()
    return UI(interactive=True, stderr=err, stdin=FakeTty(answer), **kw), err


def plain_ui(**kw) -> tuple[UI, io.StringIO]:
    err = io.StringIO()
    return UI(interactive=False, stderr=err, stdin=NoInput(), **kw), err


# --- questions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["y\n", "Y\n", "yes\n", " YES \n"])
def test_confirm_yes(answer: str) -> None:
    ui, err = terminal_ui(answer)
    ui.confirm("Install on a[1].img?", ["the s390 dump on partition 1"], assume_yes=False)
    text = err.getvalue()
    assert "This will destroy:" in text and "the s390 dump on partition 1" in text
    assert "Install on a[1].img? [y/N]" in text  # brackets survive: no rich markup in messages


@pytest.mark.parametrize("answer", ["n\n", "\n", "no\n", "yy\n", ""], ids=["n", "empty", "no", "yy", "eof"])
def test_confirm_anything_else_aborts(answer: str) -> None:
    ui, _ = terminal_ui(answer)
    with pytest.raises(AbortedError) as exc:
        ui.confirm("Install?", ["data"], assume_yes=False, where="disk.img")
    assert exc.value.exit_code == 6 and exc.value.where == "disk.img"
    assert str(exc.value) == "disk.img: the operator answered no; nothing was written"


def test_confirm_without_a_terminal_never_reads() -> None:
    ui, _ = plain_ui()
    with pytest.raises(AbortedError, match=r"would destroy a; b \(no terminal to ask; use -n/--noninteractive to proceed\)") as exc:
        ui.confirm("Install?", ["a", "b"], assume_yes=False, where="img")
    assert exc.value.where == "img"


def test_confirm_needs_a_terminal_on_stdin_too() -> None:
    err = io.StringIO()
    ui = UI(interactive=True, stderr=err, stdin=NoInput())  # stderr a terminal, stdin redirected
    with pytest.raises(AbortedError, match="no terminal to ask"):
        ui.confirm("Install?", ["a"], assume_yes=False)


def test_confirm_assume_yes_warns_and_never_reads() -> None:
    ui, err = plain_ui()
    ui.confirm("Install?", ["the ext2/3/4 file system on partition [1]"], assume_yes=True)
    assert err.getvalue() == "warning: will overwrite: the ext2/3/4 file system on partition [1]\n"


def test_confirm_without_losses_asks_nothing() -> None:
    ui, err = plain_ui()
    ui.confirm("Install?", [], assume_yes=False)
    assert err.getvalue() == ""


def test_quiet_still_asks() -> None:
    ui, err = terminal_ui("n\n", quiet=True)
    with pytest.raises(AbortedError):
        ui.confirm("Install?", ["x"], assume_yes=False)
    assert "[y/N]" in err.getvalue() and "x" in err.getvalue()


def test_ask() -> None:
    assert terminal_ui("y\n")[0].ask("Remove oldest dump: 'dump.0' (y/n)?") is True
    assert terminal_ui("n\n")[0].ask("Remove?") is False
    assert plain_ui()[0].ask("Remove?") is False  # never waits without a terminal


# --- status ----------------------------------------------------------------------------------------
def test_plain_steps_and_failures() -> None:
    ui, err = plain_ui()
    with ui.step("Checking [partition] 1"):
        pass
    with pytest.raises(ValueError):
        with ui.step("Writing block 0"):
            raise ValueError("boom")
    lines = err.getvalue().splitlines()
    assert lines[0] == "Checking [partition] 1 ..."
    assert lines[1].startswith("Checking [partition] 1: done (")
    assert lines[2:] == ["Writing block 0 ...", "Writing block 0: failed"]
    assert "\x1b" not in err.getvalue()


def test_terminal_steps_keep_brackets_and_mark_failures() -> None:
    ui, err = terminal_ui()
    with ui.step("Checking [bold]x[/bold]"):
        pass
    with pytest.raises(KeyboardInterrupt):
        with ui.step("Reading [y/N]"):
            raise KeyboardInterrupt
    text = err.getvalue()
    assert "✓ Checking [bold]x[/bold]" in text.replace("\x1b[0m", "").replace("\x1b[32m", "")
    assert "Reading [y/N]" in text and "(failed)" in text


def test_info_and_warn_are_not_markup() -> None:
    for make in (terminal_ui, plain_ui):
        ui, err = make()
        ui.info("file [red]x[/red].img")
        ui.warn("partition [1]")
        assert "file [red]x[/red].img" in err.getvalue() and "partition [1]" in err.getvalue()


def test_quiet_hides_status_but_not_warnings() -> None:
    ui, err = plain_ui(quiet=True)
    ui.info("hidden")
    with ui.step("hidden step"):
        pass
    with ui.progress("hidden bytes", 10) as p:
        p.advance(10)
    ui.warn("shown")
    assert err.getvalue() == "warning: shown\n"


def test_progress_inside_a_step_on_a_terminal() -> None:
    """A byte bar inside a step's spinner: the spinner pauses (one live display at a time)."""
    ui, err = terminal_ui()
    with ui.step("Writing programs"):
        assert len(ui._spinners) == 1
        with ui.progress("Writing bootmap", 2048) as p:
            p.advance(1024)
            p.advance(1024)
        assert p.done == 2048
    assert ui._spinners == []
    assert "Writing bootmap" in err.getvalue() and "MiB/s" in err.getvalue() and "✓" in err.getvalue()


def test_plain_progress_lines() -> None:
    ui, err = plain_ui()
    with ui.progress("Writing bootmap", 3) as p:
        p.advance(3)
    lines = err.getvalue().splitlines()
    assert lines[0] == "Writing bootmap: 3 bytes ..." and lines[1].startswith("Writing bootmap: 3 bytes in ")


def test_emit_json_goes_to_stdout_only(capsys: pytest.CaptureFixture[str]) -> None:
    ui, err = plain_ui(json_output=True)
    ui.emit_json({"a": b"\x01\x02", "n": 1})
    out = capsys.readouterr().out
    assert json.loads(out) == {"schema_version": 1, "a": "0102", "n": 1} and err.getvalue() == ""
