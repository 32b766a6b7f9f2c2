"""docs/exit-codes.md lists every class of zipldump/errors.py with its code, and codes are distinct."""

from __future__ import annotations

import gc
import re
from pathlib import Path

from zipldump import errors

DOC = Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|\s*`([\w-]+)`\s*\|\s*(?:`(\w+)`|–)\s*\|\s*(.+?)\s*\|\s*$")


def doc_rows() -> dict[str, tuple[int, str, str | None, str]]:
    rows: dict[str, tuple[int, str, str | None, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            code, name, kind, parent, text = m.groups()
            assert name not in rows, f"{name} listed twice"
            rows[name] = (int(code), kind, parent, text)
    return rows


def test_every_class_is_documented_with_its_code_kind_and_parent() -> None:
    rows = doc_rows()
    classes = errors.all_error_classes()
    for cls in classes:
        assert cls.__name__ in rows, f"{cls.__name__} missing from docs/exit-codes.md"
        code, kind, parent, text = rows[cls.__name__]
        assert code == cls.exit_code, cls.__name__
        assert kind == cls.kind, cls.__name__
        expected_parent = cls.__mro__[1].__name__ if cls is not errors.ZiplDumpError else None
        assert parent == expected_parent, cls.__name__
        assert text and text != "–", f"{cls.__name__} has no trigger text"
    assert set(rows) == {c.__name__ for c in classes}, "docs list classes that errors.py does not have"


def test_exit_codes_and_kinds_are_distinct() -> None:
    classes = errors.all_error_classes()
    codes = [c.exit_code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    kinds = [c.kind for c in classes]
    assert len(kinds) == len(set(kinds))
    # every class sets its own code (a subclass that forgot would inherit its parent's)
    assert all("exit_code" in vars(c) for c in classes)
    # 0 is success, 2 is argparse's, 130 is Ctrl-C: no class may take them by accident
    assert 0 not in codes and 130 not in codes and all(0 < c < 126 for c in codes)


def test_inspect_failure_classes_have_their_own_codes() -> None:
    inspect_classes = [
        errors.MagicError,
        errors.PointerError,
        errors.BlockListLoopError,
        errors.ChecksumError,
        errors.ComponentError,
        errors.HsaLimitError,
        errors.SuperblockError,
    ]
    assert len({c.exit_code for c in inspect_classes}) == len(inspect_classes)


def test_the_table_catches_a_new_class() -> None:
    """The check above must fail for a class nobody documented."""

    class UndocumentedError(errors.FormatError):
        exit_code = 29
        kind = "undocumented"

    try:
        assert UndocumentedError.__name__ not in doc_rows()
        assert UndocumentedError in errors.all_error_classes()
    finally:
        del UndocumentedError
        gc.collect()  # drop it from FormatError.__subclasses__() for later tests
    assert "UndocumentedError" not in {c.__name__ for c in errors.all_error_classes()}


def test_unexpected_exception_is_one_line_internal_error(monkeypatch, capsys):
    """A bug (an exception no check anticipated) is reported in one line with code 70."""
    from zipldump import cli
    from zipldump.commands import inspect as inspect_cmd
    from zipldump.errors import InternalError

    def boom(args, ui):
        raise KeyError("no such thing")

    monkeypatch.delenv("ZIPLDUMP_DEBUG", raising=False)
    monkeypatch.setattr(inspect_cmd, "register", _wrap_register(inspect_cmd.register, boom))
    rc = cli.main(["inspect", "/nonexistent"])
    err = capsys.readouterr().err
    assert rc == InternalError.exit_code == 70
    assert err.count("\n") == 1 and "internal error" in err and "KeyError" in err


def _wrap_register(register, func):
    def wrapped(sub):
        register(sub)
        sub.choices["inspect"].set_defaults(func=func)

    return wrapped


def test_errors_are_one_line_even_when_the_message_is_not(monkeypatch, capsys):
    """A message with line breaks (an external tool's output, a construct error) still gives one line
    on stderr; with --json the same error is the one JSON document on stdout, internal errors included."""
    import json

    from zipldump import cli
    from zipldump.commands import inspect as inspect_cmd
    from zipldump.errors import FormatError, InternalError

    monkeypatch.delenv("ZIPLDUMP_DEBUG", raising=False)
    register = inspect_cmd.register
    cases = [
        (FormatError("first line\nsecond line\n", where="block 0x7"), 20, "format", "block 0x7: first line | second line"),
        (ValueError("a\n  b\n"), 70, InternalError.kind, "ValueError: a | b"),
    ]
    for exc, code, kind, text in cases:

        def boom(args, ui, exc=exc):
            raise exc

        monkeypatch.setattr(inspect_cmd, "register", _wrap_register(register, boom))
        assert cli.main(["inspect", "/nonexistent", "--json"]) == code
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and text in err, err
        doc = json.loads(out)
        assert doc["error"]["exit_code"] == code and doc["error"]["kind"] == kind
        assert "\n" not in doc["error"]["message"]


def test_argparse_errors_are_one_line(capsys):
    from zipldump import cli

    assert cli.main(["inspect"]) == 2
    assert cli.main(["nosuchcommand"]) == 2
    assert cli.main(["inspect", "x", "--block-size", "7"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].startswith("zipldump inspect: error: the following arguments are required: IMAGE")
    assert lines[1].startswith("zipldump: error: argument COMMAND: invalid choice: 'nosuchcommand'")
    assert all("--help" in line for line in lines)
