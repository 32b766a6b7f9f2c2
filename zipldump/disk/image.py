"""Block I/O over a disk image file or a block device.

`DiskImage` is the only way the rest of zipldump touches a disk: every read and
write is bounds-checked against the disk size, writable opens take an exclusive
`flock` (read-only opens a shared one) so two zipldump processes never write the
same disk, and `dry_run=True` records what would be written without changing a
byte.  Reads and writes are disk.io's pread_full/pwrite_full on the caller's
buffers, so streaming callers pass their own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass
from types import TracebackType

from zipldump.disk.io import fsync, open_input, pread_full, pwrite_full
from zipldump.errors import DiskError, LockError, PointerError

VALID_BLOCK_SIZES = (512, 1024, 2048, 4096)
_BLKSSZGET = 0x1268  # Linux ioctl: logical sector size of a block device


@dataclass(frozen=True)
class RecordedWrite:
    """One write a dry run would have made."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


class DiskImage:
    """Context manager over an image file or block device.

    `size` is the byte size (a block device is sized by seeking to its end),
    `nblocks` the number of whole `block_size` blocks in it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        block_size: int = 512,
        *,
        writable: bool = False,
        lock: bool = True,
        dry_run: bool = False,
    ) -> None:
        if block_size not in VALID_BLOCK_SIZES:
            raise DiskError(f"block size {block_size} not supported (use one of {VALID_BLOCK_SIZES})", where=str(path))
        self.path = os.fspath(path)
        self.block_size = block_size
        self.writable = writable
        self.dry_run = dry_run
        self.writes: list[RecordedWrite] = []
        self._fd: int | None = None
        # A dry run never writes, so it opens read-only; but it makes the checks a real
        # writable open makes: write permission and the exclusive lock.
        really_write = writable and not dry_run
        # Type checked before any read: a FIFO would block open() and read() forever.
        fd = open_input(self.path, block_device=True, writable=really_write)
        if writable and dry_run and not os.access(self.path, os.W_OK):
            os.close(fd)
            raise DiskError(f"cannot open: {os.strerror(errno.EACCES)} (a real run opens it for writing)", where=self.path)
        self._fd = fd
        try:
            st = os.fstat(fd)
            self.is_block_device = stat.S_ISBLK(st.st_mode)
            if lock:
                self._lock(fd, exclusive=writable, st=st)
            self.size = os.lseek(fd, 0, os.SEEK_END)
            if self.is_block_device:
                self._check_device_sector_size(fd)
        except BaseException:
            self.close()
            raise
        self.nblocks = self.size // block_size

    # -- opening ------------------------------------------------------------
    def _lock(self, fd: int, *, exclusive: bool, st: os.stat_result) -> None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DiskError(f"cannot lock: {exc.strerror}", where=self.path) from exc
            holder = _flock_holder(st)
            who = f" (pid {holder})" if holder else ""
            raise LockError(f"image {self.path} is in use by another zipldump process{who}", where=self.path) from exc

    def _check_device_sector_size(self, fd: int) -> None:
        try:
            raw = fcntl.ioctl(fd, _BLKSSZGET, struct.pack("i", 0))
        except OSError:
            return  # not every block driver answers; the caller's block size stands
        sector = struct.unpack("i", raw)[0]
        if sector != self.block_size:
            raise DiskError(
                f"device has {sector}-byte logical sectors, but block size {self.block_size} was requested",
                where=self.path,
            )

    # -- context manager ------------------------------------------------------
    def __enter__(self) -> DiskImage:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the descriptor; closing also drops the flock."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def fileno(self) -> int:
        if self._fd is None:
            raise DiskError("image is closed", where=self.path)
        return self._fd

    # -- reading ----------------------------------------------------------------
    def _check_read(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            lba = offset // self.block_size if offset >= 0 else offset
            raise PointerError(
                f"read of {length} bytes at byte offset {offset:#x} is outside the disk "
                f"({self.size} bytes, {self.nblocks} blocks of {self.block_size})",
                where=f"LBA {lba:#x}",
            )

    def read_block(self, lba: int, count: int = 1) -> bytes:
        """`count` whole blocks starting at `lba`."""
        if lba < 0 or count < 0 or lba + count > self.nblocks:
            raise PointerError(
                f"blocks {lba:#x}..{lba + count - 1:#x} are outside the disk ({self.nblocks} blocks of {self.block_size})",
                where=f"LBA {lba:#x}",
            )
        return self.read_at(lba * self.block_size, count * self.block_size)

    def read_at(self, offset: int, length: int) -> bytes:
        # Check before allocating: a corrupted length field must not become a huge buffer.
        self._check_read(offset, length)
        buf = bytearray(length)
        self.readinto_at(offset, buf)
        return bytes(buf)

    def readinto_at(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill all of `buf` from `offset`; returns len(buf)."""
        view = memoryview(buf).cast("B")
        self._check_read(offset, len(view))
        done = pread_full(self.fileno(), view, offset, where=self.path)
        if done < len(view):  # file shrank under us
            raise DiskError("unexpected end of image", where=f"{self.path} offset {offset + done:#x}")
        return done

    # -- writing ----------------------------------------------------------------
    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        if not self.writable:
            raise DiskError("image was opened read-only", where=f"{self.path} offset {offset:#x}")
        if offset < 0 or offset + len(view) > self.size:
            raise DiskError(
                f"write of {len(view)} bytes at byte offset {offset:#x} would end past the end of the disk ({self.size} bytes)",
                where=f"offset {offset:#x}",
            )
        if self.dry_run:
            self.writes.append(RecordedWrite(offset, len(view)))
            return
        pwrite_full(self.fileno(), view, offset, where=self.path)

    def write_block(self, lba: int, data: bytes | bytearray | memoryview) -> None:
        """Write at the start of block `lba`; shorter data leaves the rest of the block as it was."""
        if lba < 0 or lba >= self.nblocks:
            raise DiskError(f"block {lba:#x} is outside the disk ({self.nblocks} blocks)", where=f"LBA {lba:#x}")
        self.write_at(lba * self.block_size, data)

    def flush(self) -> None:
        """fsync: data and metadata reach the disk before we return."""
        if self.dry_run or not self.writable:
            return
        try:
            fsync(self.fileno())
        except OSError as exc:
            raise DiskError(f"fsync failed: {exc.strerror}", where=self.path) from exc

    def __repr__(self) -> str:
        mode = "dry-run" if self.dry_run else ("rw" if self.writable else "ro")
        return f"DiskImage({self.path!r}, block_size={self.block_size}, {mode}, size={getattr(self, 'size', '?')})"


def _flock_holder(st: os.stat_result) -> int | None:
    """Best effort: the pid /proc/locks names for a FLOCK on this inode."""
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("->" marks waiters)
                if "->" in fields:
                    continue
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].lower() == dev:
                    return int(fields[4])
    except (OSError, ValueError):
        return None
    return None
