"""Stand-ins for the machine, zcore/mem, byte sources, terminals and the operator's UI."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from zipldump.formats.s390dump import HEADER_SIZE, tod_from_unix_us
from zipldump.sim.storage import Storage
from zipldump.ui import UI

MiB = 1 << 20


class FakeMachine:
    """What scsi_load needs: storage and the HSA size (sim/machine.py is the real one)."""

    def __init__(self, size: int = 64 * MiB, hsa_size: int = 32 * MiB) -> None:
        self.storage = Storage(None, size)
        self.hsa_size = hsa_size
        self.hsa_saved = True  # sim.interfaces.MachineView: the HSA was saved before a dump load


# --- stand-in for zcore (the real one is sim/zcore.py) ---------------------------------------
class Interrupted(RuntimeError):
    """Simulated power loss / kill in the middle of the dump."""


class FakeMem:
    """zcore/mem: header + memory from a file; HSA part unreadable after release."""

    def __init__(self, zc: FakeZcore, path: Path, fail_after: int | None) -> None:
        self.zc = zc
        self.fh = open(path, "rb", buffering=0)
        self.size = os.path.getsize(path)
        self.pos = 0
        self.fail_after = fail_after
        self.served = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        assert whence == 0
        self.pos = pos
        self.fh.seek(pos)
        return pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf: memoryview) -> int:
        if self.zc.released and self.pos < HEADER_SIZE + self.zc.hsa and self.pos >= HEADER_SIZE:
            raise OSError(61, "ENODATA: HSA already released")
        n = min(len(buf), self.size - self.pos)
        if self.fail_after is not None and self.served + n > self.fail_after:
            raise Interrupted(f"interrupted after {self.served} bytes")
        got = self.fh.readinto(memoryview(buf)[:n])
        self.pos += got
        self.served += got
        return got

    def close(self) -> None:
        self.fh.close()


class FakeZcore:
    """Serves a zcore/mem file (builders.dumps.make_zcore_file); can raise Interrupted after N bytes."""

    def __init__(self, path: Path, hsa: int, fail_after: int | None = None) -> None:
        self.hsa = hsa
        self.released = False
        self.release_positions: list[int] = []
        self.mem = FakeMem(self, path, fail_after)

    def hsa_size(self) -> int:
        return 0 if self.released else self.hsa

    def release_hsa(self) -> None:
        self.release_positions.append(self.mem.pos)
        self.released = True

    def tod(self) -> int:
        return tod_from_unix_us(time.time_ns() // 1000)  # the host clock, as the dump kernel's STCK


# --- byte sources, terminals, UI -------------------------------------------------------------
class CountingSource:
    """In-memory ByteSource that records the largest read it was asked for."""

    def __init__(self, data: bytes, name: str = "mutant") -> None:
        self.data = bytes(data)
        self.size = len(self.data)
        self.name = name
        self.largest = 0
        self.reads = 0

    def readinto_at(self, offset: int, buf) -> int:
        mv = memoryview(buf).cast("B")
        self.largest = max(self.largest, len(mv))
        self.reads += 1
        assert self.reads < 100_000, "unbounded read loop"
        n = max(0, min(len(mv), self.size - offset))
        mv[:n] = self.data[offset : offset + n]
        return n

    def close(self) -> None:
        pass


class FakeTty(io.StringIO):
    """A stdin that claims to be a terminal and holds the operator's typing."""

    def isatty(self) -> bool:
        return True


def quiet_ui() -> UI:
    return UI(quiet=True, interactive=False)
