"""Opening inputs and outputs safely: the one place zipldump decides what a path may be.

Inputs (`open_input`) are opened with O_NONBLOCK and their type is checked on
the descriptor before anything is read, so a FIFO, a socket or a terminal given
where a file is expected is refused at once instead of blocking in open() or
read() forever.  Only then is the descriptor made blocking again.

Outputs (`OutputFile`) are written whole or not at all, and never replace what
is not a regular file:

* OUT is written to `OUT.part` (created with O_EXCL and O_NOFOLLOW, so a
  symlink planted there is not followed), fsynced, and then moved to OUT;
* without `overwrite`, the move is a hard link, which fails if anything (a file,
  a dangling symlink) appeared at OUT meanwhile; with `overwrite`, OUT must be a
  regular file or missing, checked with lstat() right before the rename;
* a symlink, device node, FIFO, socket or directory at OUT is refused with or
  without `overwrite`: renaming over it would replace the node (as root,
  `/dev/null` would become a regular file) and writing through it is not what
  the caller asked for;
* OUT `-` streams to standard output instead (`getdump IMG - | gzip`): the
  writer's positioned writes must then ascend, and gaps become zeros.

Positioned I/O, the one implementation everyone uses:

* `pread_full` / `pwrite_full`: loops over short transfers and EINTR; an OSError
  becomes DiskError("read failed: ..." / "write failed: ...") naming the offset;
* `ByteSource` (name, size, readinto_at, close; short only at the end) with
  `RangeSource` (a byte range of a file or device), `MemoryMap` (an address space
  of `(start, size, source)` ranges, everything else reads as zeros) and
  `RunSource` (a file's runs of blocks, holes as zeros, e.g. `dump.N` in an ext fs);
* `Extents`: the one walk that splits an offset range over sorted spans;
* `ExtentWriter` and `DirectFile`: dump bytes to their place on the image, the
  bulk of it O_DIRECT from `aligned_buffer`s, buffered where that is refused;
* `zero_fill`.

Hot paths call these once per chunk of a MiB or more: no per-byte Python.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import sys
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO, Generic, Protocol, TypeVar

from zipldump.errors import DiskError, DumpSpaceError, UsageError, ZiplDumpError

STDOUT = "-"
_ZEROS = bytes(1 << 20)
_ZEROS_MV = memoryview(_ZEROS)
DIRECT_ALIGN = 4096  # O_DIRECT alignment of offset, length and buffer used (any logical block size up to 4 KiB)


def describe_mode(mode: int) -> str:
    """What a stat mode is, in words for an error message."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_input(
    path: str | os.PathLike[str],
    *,
    block_device: bool = False,
    writable: bool = False,
    error: type[DiskError] | type[UsageError] = DiskError,
    oserror: bool = False,
) -> int:
    """A blocking descriptor for a regular file (or, with block_device, a block device).

    Anything else is refused with `error` before a byte is read: opening a FIFO
    without O_NONBLOCK waits for a writer, reading it waits for data.  A failed
    open() is `error` too, or the OSError itself with `oserror` (for callers
    with their own wording)."""
    p = os.fspath(path)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # O_RDWR|O_NONBLOCK on a FIFO or socket with no peer
            raise error(f"{_kind_of(p)}, not {_expected(block_device)}", where=p) from None
        if oserror:
            raise
        raise error(f"cannot open: {exc.strerror}", where=p) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or (block_device and stat.S_ISBLK(mode))):
            raise error(f"is {describe_mode(mode)}, not {_expected(block_device)}", where=p)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_binary(
    path: str | os.PathLike[str],
    *,
    block_device: bool = False,
    error: type[DiskError] | type[UsageError] = DiskError,
    oserror: bool = True,
) -> BinaryIO:
    """`open(path, "rb")` that refuses FIFOs, sockets and devices first (see open_input)."""
    return os.fdopen(open_input(path, block_device=block_device, error=error, oserror=oserror), "rb")


def read_input(path: str | os.PathLike[str], *, limit: int, error: type[DiskError] | type[UsageError] = UsageError) -> bytes:
    """The whole of a small regular file (a configuration, a list), refused when over `limit` bytes."""
    p = os.fspath(path)
    fd = open_input(p, error=error)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise error(f"{size} bytes: larger than the {limit}-byte limit for this input", where=p)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", where=p) from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"larger than the {limit}-byte limit for this input", where=p)
    return data


def _kind_of(path: str) -> str:
    try:
        return f"is {describe_mode(os.stat(path).st_mode)}"
    except OSError:
        return "is not a regular file"


def _expected(block_device: bool) -> str:
    return "a regular file or a block device" if block_device else "a regular file"


def check_output(path: str | os.PathLike[str], *, overwrite: bool, what: str = "OUT", stream_hint: bool = False) -> None:
    """Refuse an output path that is not a missing or (with overwrite) regular file."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot check {p}: {exc.strerror}", where=what) from exc
    if stat.S_ISREG(st.st_mode):
        if not overwrite:
            raise UsageError(f"{p} exists (use --overwrite to replace it)", where=what)
        return
    hint = f" (write to standard output with '{STDOUT}', for example '... {STDOUT} | gzip > dump.gz')" if stream_hint else ""
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(p)
        except OSError:
            target = "?"
        raise UsageError(
            f"{p} is a symbolic link (to {target}); only a regular file is replaced: remove the link or name its target{hint}",
            where=what,
        )
    raise UsageError(f"{p} is {describe_mode(st.st_mode)}; only a regular file is written or replaced{hint}", where=what)


class OutputFile:
    """OUT written completely or not at all (see the module docstring); `-` is standard output."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool, what: str = "OUT", stream_hint: bool = False) -> None:
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.what = what
        self.streaming = self.path == STDOUT
        self._pos = 0  # bytes appended by write() (streaming: all bytes so far)
        self.done = False  # finish() put OUT in place: abort() is then a no-op
        if self.streaming:
            self.tmp = ""
            self.fd = sys.stdout.fileno()
            if os.isatty(self.fd):
                raise UsageError("standard output is a terminal: redirect it to a file or a pipe", where=what)
            return
        check_output(self.path, overwrite=overwrite, what=what, stream_hint=stream_hint)
        self.tmp = self.path + ".part"
        self._clear_stale_part()
        try:
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise DiskError(f"cannot create: {exc.strerror}", where=self.tmp) from exc

    def _clear_stale_part(self) -> None:
        """A regular OUT.part is a killed run's leftover; anything else there is refused."""
        try:
            st = os.lstat(self.tmp)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{self.tmp} is {describe_mode(st.st_mode)}; it is where {self.what} is assembled", where=self.what)
        os.unlink(self.tmp)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        mv = memoryview(data).cast("B")
        if self.streaming:
            if offset < self._pos:
                raise DiskError(f"a stream cannot go back to byte 0x{offset:x} (at 0x{self._pos:x})", where=self.what)
            self._zeros(offset - self._pos)
            self._write_all(mv)
            return
        pwrite_full(self.fd, mv, offset, where=self.tmp)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append (file-like use, e.g. by a compressor)."""
        mv = memoryview(data).cast("B")
        if self.streaming:
            self._write_all(mv)
        else:
            self.pwrite(mv, self._pos)
            self._pos += len(mv)
        return len(mv)

    def flush(self) -> None:
        return None

    @property
    def appended(self) -> int:
        """Bytes written with write() (or streamed) so far."""
        return self._pos

    def _write_all(self, mv: memoryview) -> None:
        done = 0
        try:
            while done < len(mv):
                done += os.write(self.fd, mv[done:])
        except OSError as exc:
            raise DiskError(f"write failed at byte 0x{self._pos + done:x}: {exc.strerror}", where="standard output") from exc
        self._pos += len(mv)

    def _zeros(self, n: int) -> None:
        while n > 0:
            take = min(n, len(_ZEROS))
            self._write_all(memoryview(_ZEROS)[:take])
            n -= take

    def finish(self, size: int | None = None) -> None:
        """Make OUT `size` bytes long (default: as written) and put it in place."""
        if self.streaming:
            if size is not None:
                self._zeros(size - self._pos)
            self.done = True
            return
        try:
            if size is not None:
                os.ftruncate(self.fd, size)
            fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            self._publish()
            self.done = True
        except OSError as exc:
            raise DiskError(f"cannot finish: {exc.strerror}", where=self.path) from exc
        _fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def _publish(self) -> None:
        if not self.overwrite:
            try:
                os.link(self.tmp, self.path)  # fails if anything at all appeared at OUT meanwhile
            except FileExistsError:
                raise UsageError(f"{self.path} appeared while it was written; nothing replaced", where=self.what) from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                check_output(self.path, overwrite=False, what=self.what)  # no hard links here: check, then rename
                os.replace(self.tmp, self.path)
                return
            os.unlink(self.tmp)
            return
        check_output(self.path, overwrite=True, what=self.what)  # it may have changed since we started
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.streaming or self.done:
            return
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self.streaming and self.fd >= 0:
            self.finish()


def _fsync_dir(path: str) -> None:
    """The rename itself survives a power cut only once its directory is synced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (both must exist)."""
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


# --- positioned reads and writes ------------------------------------------------------
def _at(where: str, pos: int) -> str:
    return f"{where} offset {pos:#x}" if where else f"offset {pos:#x}"


def pread_full(fd: int, buf: bytearray | memoryview, offset: int, *, where: str = "") -> int:
    """Fill `buf` from `offset`; returns the bytes read, fewer only at the end of the file.

    Short reads are continued and EINTR retried; any other OSError is a DiskError
    ("read failed: ...", where=`where` offset N).  Callers decide what an early end means."""
    view = memoryview(buf).cast("B")
    n = len(view)
    done = 0
    while done < n:
        try:
            got = os.preadv(fd, [view[done:]], offset + done)
        except InterruptedError:
            continue
        except OSError as exc:
            raise DiskError(f"read failed: {exc.strerror}", where=_at(where, offset + done)) from exc
        if got == 0:
            break
        done += got
    return done


def pread_bytes(fd: int, length: int, offset: int, *, where: str = "") -> bytes:
    """`length` bytes from `offset` (fewer only at the end of the file), as pread_full reads them."""
    buf = bytearray(length)
    got = pread_full(fd, buf, offset, where=where)
    return bytes(buf) if got == length else bytes(buf[:got])


# --- write recording (the crash-state harness) -------------------------------------------
class WriteRecorder(Protocol):
    """Sees every write and barrier zipldump makes (tests/builders/crash.py replays them as power cuts).

    `write` is called after the bytes went to the kernel, `barrier` before an fsync;
    `external` wraps a helper process (debugfs, mke2fs) that writes the file itself."""

    def write(self, fd: int, offset: int, data: bytes) -> None: ...

    def barrier(self, fd: int) -> None: ...

    def external(self, path: str) -> AbstractContextManager[None]: ...


_recorder: WriteRecorder | None = None


def set_recorder(recorder: WriteRecorder | None) -> WriteRecorder | None:
    """Install `recorder` (None: stop recording); returns the previous one."""
    global _recorder
    previous, _recorder = _recorder, recorder
    return previous


def fsync(fd: int) -> None:
    """os.fsync, seen by the recorder as a barrier: writes before it are durable after it."""
    if _recorder is not None:
        _recorder.barrier(fd)
    os.fsync(fd)


def external_writes(path: str | os.PathLike[str]) -> AbstractContextManager[None]:
    """Wrap a helper process that writes `path` itself, so a recorder can see what it wrote."""
    return _recorder.external(os.fspath(path)) if _recorder is not None else nullcontext()


def pwrite_full(fd: int, data: bytes | bytearray | memoryview, offset: int, *, where: str = "", raw_errno: int | None = None) -> None:
    """Write all of `data` at `offset` (short writes continued, EINTR retried).

    An OSError is a DiskError ("write failed: ..."); with `raw_errno`, that errno
    before the first byte is written is raised as the OSError itself (DirectFile:
    EINVAL means "not for direct I/O", and the caller falls back)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        try:
            n = os.pwrite(fd, view[done:], offset + done)
        except InterruptedError:
            continue
        except OSError as exc:
            if raw_errno is not None and exc.errno == raw_errno and done == 0:
                raise
            raise DiskError(f"write failed: {exc.strerror}", where=_at(where, offset + done)) from exc
        if n == 0:
            raise DiskError("write made no progress", where=_at(where, offset + done))
        done += n
    if _recorder is not None:
        _recorder.write(fd, offset, bytes(view))


def zero_fill(mv: memoryview) -> None:
    """Set every byte of `mv` to 0 without allocating a buffer of its size."""
    n = len(mv)
    for i in range(0, n, len(_ZEROS)):
        k = min(len(_ZEROS), n - i)
        mv[i : i + k] = _ZEROS_MV[:k]


# --- byte sources ------------------------------------------------------------------------
class ByteSource(Protocol):
    """What readers read from: `readinto_at` fills `buf` from `offset` and returns the
    bytes filled, fewer only at the end (`size`)."""

    name: str
    size: int

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int: ...

    def close(self) -> None: ...


class RangeSource:
    """`length` bytes of a file or block device from `offset` (default: to its end)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int = 0,
        length: int | None = None,
        *,
        name: str | None = None,
        error: type[DiskError | UsageError] = DiskError,
    ) -> None:
        self.path = os.fspath(path)
        self._fd = open_input(self.path, block_device=True, error=error)
        self._owns = True
        total = os.lseek(self._fd, 0, os.SEEK_END)
        self.offset = offset
        avail = max(0, total - offset)
        self.size = avail if length is None else min(length, avail)
        self.name = name or (self.path if offset == 0 else f"{self.path} at byte 0x{offset:x}")

    @classmethod
    def window(cls, fd: int, offset: int, length: int, *, path: str, name: str | None = None) -> RangeSource:
        """A range of an already open descriptor, which the caller keeps and closes."""
        src = cls.__new__(cls)
        src.path = path
        src._fd = fd
        src._owns = False
        src.offset = offset
        src.size = length
        src.name = name or f"{path} at byte 0x{offset:x}"
        return src

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = max(0, min(len(mv), self.size - offset))
        return pread_full(self._fd, mv[:n], self.offset + offset, where=self.path)

    def close(self) -> None:
        if self._owns and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> RangeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


T = TypeVar("T")
Run = tuple[int, int | None, int]  # (first logical unit, first physical unit or None for a hole, units)


def runs_of_blocks(blocks: Sequence[int], *, hole: int = 0) -> list[Run]:
    """A block map (each logical block's physical block, `hole` for none: ext's 0)
    coalesced into runs `(logical, physical or None, count)`."""
    runs: list[Run] = []
    for i, phys in enumerate(blocks):
        pb = None if phys == hole else phys
        if runs:
            lb, last, n = runs[-1]
            if (pb is None and last is None) or (pb is not None and last is not None and pb == last + n):
                runs[-1] = (lb, last, n + 1)
                continue
        runs.append((i, pb, 1))
    return runs


class Extents(Generic[T]):
    """Sorted, non-overlapping spans `(start, size, value)` and the one walk that
    splits a range over them; MemoryMap, RunSource, ExtentWriter and the
    installer's bootmap-file map all use it."""

    def __init__(self, spans: Iterable[tuple[int, int, T]]) -> None:
        self.spans = sorted((s for s in spans if s[1] > 0), key=lambda s: s[0])
        for (a, n, _), (b, _, _) in pairwise(self.spans):
            if a + n > b:
                raise ValueError(f"spans at 0x{a:x} and 0x{b:x} overlap")
        self._starts = [s[0] for s in self.spans]
        self.end = self.spans[-1][0] + self.spans[-1][1] if self.spans else 0

    @staticmethod
    def of_runs(runs: Iterable[Run]) -> Extents[int]:
        """Runs `(logical, physical or None, count)` as spans `(logical, count, physical)`; hole runs are gaps."""
        return Extents((lb, n, pb) for lb, pb, n in runs if pb is not None)

    def pieces(self, pos: int, length: int) -> Iterator[tuple[int, int, T | None, int]]:
        """`(pos, n, value, offset inside the span)` covering [pos, pos + length) in
        order; value is None where no span is (a gap, or before or past all spans)."""
        end = pos + length
        spans = self.spans
        i = max(bisect_right(self._starts, pos) - 1, 0)
        while pos < end:
            if i >= len(spans):
                yield pos, end - pos, None, 0
                return
            start, size, value = spans[i]
            if pos < start:
                stop = min(end, start)
                yield pos, stop - pos, None, 0
            elif pos < start + size:
                stop = min(end, start + size)
                yield pos, stop - pos, value, pos - start
                i += 1
            else:
                i += 1
                continue
            pos = stop

    def find(self, pos: int) -> tuple[T, int] | None:
        """The value of the span holding `pos` and the offset inside it, or None."""
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return None
        start, size, value = self.spans[i]
        return (value, pos - start) if pos < start + size else None


class MemoryMap:
    """An address space of `(start, size, source)` ranges, each source read from its
    own offset 0; every other address reads as zeros (holes, p_filesz < p_memsz).

    `readinto_at` always fills the whole buffer.  A source that ends before its
    range does is `error` (the caller's exit code: FormatError for an ELF core,
    DumpError for a crashed system, DiskError for an image); `closes` are closed
    by `close()`."""

    def __init__(
        self,
        ranges: Iterable[tuple[int, int, ByteSource]],
        *,
        name: str = "memory",
        error: type[ZiplDumpError] = DiskError,
        closes: Sequence[object] = (),
    ) -> None:
        self.extents: Extents[ByteSource] = Extents(ranges)
        self.name = name
        self.size = self.extents.end
        self.error = error
        self._closes = list(closes)

    @property
    def ranges(self) -> list[tuple[int, int, ByteSource]]:
        return self.extents.spans

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        for pos, n, src, skip in self.extents.pieces(offset, len(mv)):
            part = mv[pos - offset : pos - offset + n]
            if src is None:
                zero_fill(part)
                continue
            got = src.readinto_at(skip, part)
            if got < n:
                raise self.error(
                    f"{src.name} ends early: 0x{got:x} of 0x{n:x} bytes read (did the file shrink?)",
                    where=f"{self.name} at 0x{pos + got:x}",
                )
        return len(mv)

    def close(self) -> None:
        for c in self._closes:
            c.close()  # type: ignore[attr-defined]
        self._closes = []

    def __enter__(self) -> MemoryMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunSource:
    """A ByteSource over runs of one file: `runs` are `(logical, physical or None,
    count)` in units of `unit` bytes (physical unit p is at byte base + p * unit);
    holes, and logical units no run covers, read as zeros.  `size` (default: the
    end of the last run) may end inside a unit: a file in a file system's blocks."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        runs: Iterable[Run],
        *,
        size: int | None = None,
        unit: int = 1,
        base: int = 0,
        name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.runs = list(runs)
        covered = max((lb + n for lb, _, n in self.runs), default=0) * unit
        if size is not None and size > covered:
            raise ValueError(f"size {size} exceeds the {covered} bytes the runs cover")
        self.size = covered if size is None else size
        self.name = name or self.path
        windows = [
            (lb * unit, n * unit, base + pb * unit)
            for lb, pb, n in self.runs
            if pb is not None
        ]
        self._fd = open_input(self.path, block_device=True)
        self._map = MemoryMap(
            ((at, n, RangeSource.window(self._fd, phys, n, path=self.path)) for at, n, phys in windows), name=self.name
        )

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = max(0, min(len(mv), self.size - offset))
        return self._map.readinto_at(offset, mv[:n])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- dump bytes to the image ------------------------------------------------------------
class WritableImage(Protocol):
    """What ExtentWriter writes through (disk.image.DiskImage)."""

    path: str

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...


def aligned_buffer(size: int) -> memoryview:
    """A zeroed, page-aligned buffer (anonymous mmap) usable for O_DIRECT."""
    return memoryview(mmap.mmap(-1, size))


class DirectFile:
    """The image opened a second time with O_DIRECT, for the bulk memory writes.

    Buffered writes of a whole dump make the kernel copy every byte into the page
    cache and then reclaim gigabytes of it, which costs more CPU than the copy and
    varies by a factor of 3-5 with the page cache's state (docs/performance.md).
    Direct writes go from the dump tool's buffer to the disk.  Only whole
    DIRECT_ALIGN-aligned pieces from page-aligned buffers are written here; the
    header, end marker and superblock stay buffered writes through DiskImage.
    `open` returns None where O_DIRECT is not available (tmpfs, some file systems):
    then everything is buffered, as before.  The final fsync (DiskImage.flush)
    covers both: it flushes the file's metadata and the device cache."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: str) -> DirectFile | None:
        flags = getattr(os, "O_DIRECT", 0)
        if not flags:
            return None
        try:
            return cls(path, os.open(path, os.O_WRONLY | os.O_CLOEXEC | flags))
        except OSError:
            return None

    def write_at(self, offset: int, data: memoryview) -> None:
        """pwrite all of `data`; OSError(EINVAL) means "not for direct I/O" (the caller falls back)."""
        pwrite_full(self.fd, data, offset, where=self.path, raw_errno=errno.EINVAL)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ExtentWriter:
    """Writes dump bytes (offsets within the dump) to where they live on the image.

    `extents` are (dump_offset, image_offset, length), sorted and contiguous in
    dump offsets: one extent for a partition, one per run of contiguous file
    system blocks for a file.  `write(..., aligned=True)` says the data starts
    page-aligned in memory (an `aligned_buffer`): its aligned pieces then go
    through a DirectFile when `direct` is on; everything else through the image's
    own (buffered, bounds-checked) `write_at`.
    """

    def __init__(self, disk: WritableImage, extents: Sequence[tuple[int, int, int]], *, direct: bool = True) -> None:
        self.disk = disk
        self.extents = list(extents)
        self._map: Extents[int] = Extents((d, n, i) for d, i, n in self.extents)
        self.size = self.extents[-1][0] + self.extents[-1][2] if self.extents else 0
        self._want_direct = direct and not getattr(disk, "dry_run", False)
        self._direct: DirectFile | None = None
        self._lock = threading.Lock()
        self.direct_bytes = 0  # bytes that went through O_DIRECT (reported, tested)

    def _direct_file(self) -> DirectFile | None:
        with self._lock:
            if self._want_direct and self._direct is None:
                self._direct = DirectFile.open(self.disk.path)
                if self._direct is None:
                    self._want_direct = False
            return self._direct

    def _put(self, image_offset: int, piece: memoryview, aligned: bool) -> None:
        if aligned and self._want_direct and image_offset % DIRECT_ALIGN == 0 and len(piece) % DIRECT_ALIGN == 0:
            direct = self._direct_file()
            if direct is not None:
                try:
                    direct.write_at(image_offset, piece)
                except OSError:  # EINVAL: this file system wants another alignment; buffered from now on
                    self._want_direct = False
                else:
                    with self._lock:
                        self.direct_bytes += len(piece)
                    return
        self.disk.write_at(image_offset, piece)

    def write(self, offset: int, data: bytes | bytearray | memoryview, *, aligned: bool = False) -> None:
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise DumpSpaceError(
                f"dump byte range {offset:#x}+{len(view):#x} is outside the {self.size:#x} bytes of the dump area",
                where=f"dump offset {offset:#x}",
            )
        for pos, n, image_offset, skip in self._map.pieces(offset, len(view)):
            if image_offset is None:  # a gap between extents: they must be contiguous
                raise DumpSpaceError(f"dump bytes {pos:#x}+{n:#x} have no place on the image", where=f"dump offset {pos:#x}")
            done = pos - offset
            self._put(image_offset + skip, view[done : done + n], aligned and done % DIRECT_ALIGN == 0)

    def close(self) -> None:
        with self._lock:
            if self._direct is not None:
                self._direct.close()
                self._direct = None
