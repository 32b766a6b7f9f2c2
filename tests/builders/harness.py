"""Instruments for crash-safety tests: a log of an install's writes, a kill -9 at the N-th call, what block 0 loads."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from zipldump.disk.image import DiskImage
from zipldump.ui import UI


def record_events(monkeypatch) -> list[tuple[str, int, bytes]]:
    """Log every write, flush and question of an install: (what, byte offset, first bytes)."""
    events: list[tuple[str, int, bytes]] = []
    real_write, real_flush, real_confirm = DiskImage.write_at, DiskImage.flush, UI.confirm

    def write_at(self, offset, data):
        events.append(("write", offset, bytes(memoryview(data)[:8])))
        return real_write(self, offset, data)

    def flush(self):
        events.append(("flush", -1, b""))
        return real_flush(self)

    def confirm(self, question, losses, **kw):
        events.append(("confirm", -1, b""))
        return real_confirm(self, question, losses, **kw)

    monkeypatch.setattr(DiskImage, "write_at", write_at)
    monkeypatch.setattr(DiskImage, "flush", flush)
    monkeypatch.setattr(UI, "confirm", confirm)
    return events


def load_shas(img: Path, bs: int) -> list[str] | None:
    """SHA-256 of every LOAD as the firmware would load it; None when block 0 has no zipl record."""
    from zipldump.zipl.check import inspect_disk

    with open(img, "rb") as fh:
        head = fh.read(0x98)
    if head[:4] != b"zIPL":
        return None
    rep = inspect_disk(img, bs)
    assert rep.valid, rep.problems
    return [c.sha256 or "" for p in rep.programs for c in p.components if c.kind == "load"]


def kill_at(event: int, run, hooks: list[tuple[type, str]]) -> bool:
    """Run `run()` in a forked child that SIGKILLs itself just before its `event`-th hooked
    call (0-based): a `kill -9` at that point, with no cleanup.  True when the child
    finished without reaching `event` (there was no such call)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            count = [0]
            for cls, name in hooks:
                real = getattr(cls, name)

                def hooked(*a, _real=real, **k):
                    if count[0] == event:
                        os.kill(os.getpid(), signal.SIGKILL)
                    count[0] += 1
                    return _real(*a, **k)

                setattr(cls, name, hooked)
            run()
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return False
    assert os.WEXITSTATUS(status) == 0, "the install failed instead of being killed"
    return True
