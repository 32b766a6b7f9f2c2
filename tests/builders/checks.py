"""Assertions shared by several suites: what an error must look like, what order an install writes in."""

from __future__ import annotations

from zipldump.errors import ZiplDumpError


def check_error(exc: BaseException) -> None:
    """A ZiplDumpError with a one-line, non-empty message that names a place (the hostile suites' rule)."""
    assert isinstance(exc, ZiplDumpError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert "\n" not in text and text.strip(), repr(text)
    assert exc.where, f"no place named: {text}"


def assert_block0_last(events: list[tuple[str, int, bytes]]) -> None:
    """No write before the question; the new boot record is the last write, alone between two flushes.

    `events` as builders.harness.record_events logs them."""
    kinds = [e[0] for e in events]
    assert kinds.index("confirm") < kinds.index("write"), "a write happened before every check and the question"
    writes = [i for i, e in enumerate(events) if e[0] == "write"]
    last = writes[-1]
    assert events[last][1] == 0 and events[last][2][:4] == b"zIPL", "block 0 is written last"
    assert events[last - 1][0] == "flush" and events[last + 1][0] == "flush", "flushed before and after block 0"
    assert all(events[i][1] != 0 or events[i][2] == bytes(8) for i in writes[:-1]), "no boot record before the data"
