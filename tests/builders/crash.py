"""Crash states in the style of CrashMonkey and ALICE: record every write and barrier, then replay power cuts.

`record(image)` installs a disk.io recorder for one image file and collects its
writes (zipldump's own pwrite_full calls, and what a helper process such as
debugfs changed, found by comparing the file before and after it ran) and its
barriers (fsync).  `crash_states(log, block_size)` yields the disk states a
power cut could leave:

* every prefix of the writes (each write either done or not, in order);
* within one barrier interval, subsets of its writes (the disk may reorder
  them): all of them for a short interval, a seeded sample otherwise;
* a write torn at the logical block size: only some of its blocks reached the
  disk (the first half, and a seeded sample).

Writes before the interval's barrier are always whole.  `StateImage(base,
work).apply(state)` turns a copy of the image before the run into the state's image.
ZIPLDUMP_CRASH_FULL=1 (`make crash`) tries every state of every scenario: all
subsets of intervals up to 10 writes, 1000 sampled subsets of longer ones.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from zipldump.disk import io

FULL = os.environ.get("ZIPLDUMP_CRASH_FULL") == "1"
REPORT = os.environ.get("ZIPLDUMP_CRASH_REPORT")  # `make crash`: one JSON line of figures per scenario
ALL_SUBSETS_UP_TO = 10 if FULL else 6  # writes in an interval up to which every subset is tried
TORN = 20 if FULL else 3  # sampled torn patterns per multi-block write
SAMPLE = 1000 if FULL else 12  # sampled subsets per interval otherwise (2^n subsets cannot all be tried)


@dataclass(frozen=True)
class Write:
    offset: int
    data: bytes
    source: str = "zipldump"  # or the helper's name

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass
class WriteLog:
    """Writes grouped into barrier intervals: intervals[i] are the writes after barrier i - 1."""

    intervals: list[list[Write]] = field(default_factory=lambda: [[]])

    def add(self, w: Write) -> None:
        self.intervals[-1].append(w)

    def barrier(self) -> None:
        if self.intervals[-1]:
            self.intervals.append([])

    @property
    def writes(self) -> list[Write]:
        return [w for iv in self.intervals for w in iv]


class _Recorder:
    def __init__(self, path: Path) -> None:
        st = os.stat(path)
        self.key = (st.st_dev, st.st_ino)
        self.path = path
        self.log = WriteLog()

    def _ours(self, fd: int) -> bool:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == self.key

    def write(self, fd: int, offset: int, data: bytes) -> None:
        if self._ours(fd):
            self.log.add(Write(offset, data))

    def barrier(self, fd: int) -> None:
        if self._ours(fd):
            self.log.barrier()

    @contextmanager
    def external(self, path: str) -> Iterator[None]:
        """A helper process writes the file: its changed 4 KiB blocks become one interval (it
        flushes when it closes the file system, and a power cut may keep any subset before that)."""
        if os.path.realpath(path) != os.path.realpath(self.path):
            yield
            return
        before = memoryview(self.path.read_bytes())
        yield
        after = memoryview(self.path.read_bytes())
        self.log.barrier()
        for b in range(0, len(after), 4096):
            if after[b : b + 4096] != before[b : b + 4096]:
                self.log.add(Write(b, bytes(after[b : b + 4096]), "helper"))
        self.log.barrier()


@contextmanager
def record(image: Path) -> Iterator[WriteLog]:
    """Record the writes to `image` made inside the block."""
    rec = _Recorder(image)
    previous = io.set_recorder(rec)
    try:
        yield rec.log
    finally:
        io.set_recorder(previous)


@dataclass(frozen=True)
class State:
    """A power cut: every write of intervals before `interval`, then `writes` of it."""

    name: str
    interval: int
    writes: tuple[Write, ...]


def crash_states(log: WriteLog, block_size: int, *, seed: int = 0) -> Iterator[State]:
    rng = random.Random(seed)
    done: list[Write] = []
    for i, iv in enumerate(log.intervals):
        n = len(iv)
        for k in range(n + 1):  # prefixes
            yield State(f"interval {i} prefix {k}/{n}", i, tuple(done + iv[:k]))
        if n <= ALL_SUBSETS_UP_TO:
            subsets = [c for r in range(1, n) for c in itertools.combinations(range(n), r)]
        else:
            subsets = [tuple(sorted(rng.sample(range(n), rng.randrange(1, n)))) for _ in range(SAMPLE)]
        for c in subsets:
            yield State(f"interval {i} subset {list(c)}", i, tuple(done + [iv[j] for j in c]))
        for j, w in enumerate(iv):  # torn writes, at the logical block size
            blocks = [w.data[b : b + block_size] for b in range(0, len(w.data), block_size)]
            if len(blocks) < 2:
                continue
            patterns = [range(len(blocks) // 2)]
            patterns += [sorted(rng.sample(range(len(blocks)), rng.randrange(1, len(blocks)))) for _ in range(TORN)]
            for p in patterns:
                torn = tuple(Write(w.offset + b * block_size, blocks[b], w.source) for b in p)
                yield State(f"interval {i} write {j} torn {list(p)[:8]}", i, tuple(done + iv[:j]) + torn)
        done += iv


def report(scenario: str, **figures: object) -> None:
    """Append a scenario's figures (states, outcomes) to the crash report, when one is asked for."""
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"scenario": scenario, "full": FULL, **figures}) + "\n")


class StateImage:
    """One working copy of the image before the run; `apply(state)` turns it into that state's image.

    Only the ranges the previous state wrote are restored from the base first, so
    a state costs its own writes, not a copy of the whole image."""

    def __init__(self, base: Path, work: Path) -> None:
        shutil.copyfile(base, work)
        self.base = base
        self.path = work
        self._dirty: list[tuple[int, int]] = []

    def apply(self, state: State) -> Path:
        with open(self.base, "rb") as src, open(self.path, "r+b") as fh:
            for off, n in self._dirty:
                src.seek(off)
                fh.seek(off)
                fh.write(src.read(n))
            self._dirty = []
            for w in state.writes:
                fh.seek(w.offset)
                fh.write(w.data)
                self._dirty.append((w.offset, len(w.data)))
        return self.path
