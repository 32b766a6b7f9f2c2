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
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from zipldump.errors import DiskError, UsageError

STDOUT = "-"
_ZEROS = bytes(1 << 20)


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
        done = 0
        try:
            while done < len(mv):
                done += os.pwrite(self.fd, mv[done:], offset + done)
        except OSError as exc:
            raise DiskError(f"write failed at byte 0x{offset + done:x}: {exc.strerror}", where=self.tmp) from exc

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
            os.fsync(self.fd)
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
