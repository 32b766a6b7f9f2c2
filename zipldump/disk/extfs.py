"""ext2/3/4 file systems inside a disk image, through e2fsprogs at a byte offset.

Nothing is mounted: `mke2fs -E offset=` makes the file system, `debugfs` edits
it, `e2fsck` checks it and the superblock is read directly for sizes and
counts.  The e2fsprogs tools address the file system as `IMAGE?offset=BYTES`.

Two debugfs habits are handled here: it exits 0 when a command fails (so its
stderr is parsed and turned into DiskError / DumpSpaceError), and after running
out of space it leaves inodes whose size claims more than was written (so free
space is checked first, sizes are verified afterwards and a failed file is
removed).

`allocate()` gives a file whose every block is really allocated and initialised,
so a dump writer can stream into the returned physical blocks with plain I/O.
On ext4 debugfs `fallocate` makes *uninitialised* extents (reads through the
file system give zeros), so allocated files are made block-mapped (no
EXTENTS_FL), which has no such state; ext4 allows block-mapped files.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from zipldump.disk.io import external_writes, open_binary
from zipldump.errors import DiskError, DumpSpaceError, ToolMissingError, UsageError

FS_TYPES = ("ext2", "ext3", "ext4")
DEFAULT_BLOCK_SIZE = 4096
EXT_SB_OFFSET = 1024  # the superblock's byte offset in the file system
EXT_MAGIC_OFFSET = 0x38  # s_magic, u16 little-endian, inside the superblock
EXT_MAGIC = 0xEF53
_COMPAT_HAS_JOURNAL = 0x0004
_MIN_JOURNAL_BLOCKS = 2048  # below this mke2fs makes no journal
_INCOMPAT_EXTENTS = 0x0040
_INCOMPAT_64BIT = 0x0080
_INCOMPAT_INLINE_DATA = 0x8000
_ENV = {"LC_ALL": "C", "DEBUGFS_PAGER": "__none__", "PAGER": "__none__"}
_SBIN = ("/usr/sbin", "/sbin")
_SPACE_ERRORS = ("Could not allocate block", "Could not allocate inode", "No free space", "No space left")
_NOT_FOUND = ("File not found by ext2_lookup",)


def has_ext_magic(superblock: bytes) -> bool:
    """Whether bytes read from a superblock's start carry the ext2/3/4 magic."""
    return int.from_bytes(superblock[EXT_MAGIC_OFFSET : EXT_MAGIC_OFFSET + 2], "little") == EXT_MAGIC


def find_tool(name: str) -> str:
    """Absolute path of an e2fsprogs program (Debian keeps them in /sbin)."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if not path:
        raise ToolMissingError(f"{name} not found (install the e2fsprogs package)", where=name)
    return path


@dataclass(frozen=True)
class Superblock:
    block_size: int
    blocks_count: int
    free_blocks: int
    inodes_count: int
    free_inodes: int
    first_data_block: int
    feature_compat: int
    feature_incompat: int
    feature_ro_compat: int

    @property
    def fs_type(self) -> str:
        if self.feature_incompat & (_INCOMPAT_EXTENTS | _INCOMPAT_64BIT) or self.feature_ro_compat & (0x0008 | 0x0020 | 0x0040 | 0x0400):
            return "ext4"
        return "ext3" if self.feature_compat & 0x0004 else "ext2"


def read_superblock(image_path: str | os.PathLike[str], offset: int) -> Superblock:
    """Parse the fields zipldump needs from the superblock at `offset` + 1024."""
    try:
        with open_binary(image_path, block_device=True) as fh:
            fh.seek(offset + EXT_SB_OFFSET)
            raw = fh.read(1024)
    except OSError as exc:
        raise DiskError(f"cannot read superblock: {exc.strerror}", where=str(image_path)) from exc
    where = f"{image_path} offset {offset + EXT_SB_OFFSET:#x}"
    if len(raw) < 1024:
        raise DiskError("image ends before the ext2/3/4 superblock", where=where)

    def u32(off: int) -> int:
        return int.from_bytes(raw[off : off + 4], "little")

    magic = int.from_bytes(raw[EXT_MAGIC_OFFSET : EXT_MAGIC_OFFSET + 2], "little")
    if magic != EXT_MAGIC:
        raise DiskError(f"no ext2/3/4 file system (superblock magic {magic:#06x}, expected 0xef53)", where=where)
    incompat = u32(0x60)
    wide = incompat & _INCOMPAT_64BIT
    log = u32(0x18)
    if log > 6:
        raise DiskError(f"implausible block size (s_log_block_size {log})", where=where)
    return Superblock(
        block_size=1024 << log,
        blocks_count=u32(0x04) | ((u32(0x150) << 32) if wide else 0),
        free_blocks=u32(0x0C) | ((u32(0x158) << 32) if wide else 0),
        inodes_count=u32(0x00),
        free_inodes=u32(0x10),
        first_data_block=u32(0x14),
        feature_compat=u32(0x5C),
        feature_incompat=incompat,
        feature_ro_compat=u32(0x64),
    )


@dataclass(frozen=True)
class FileStat:
    """What `ExtFs.lstat` reports of one inode (a symlink is not followed)."""

    inode: int
    mode: int
    size: int
    uid: int
    gid: int
    inline: bool = False  # data stored inside the inode (inline_data): no blocks

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000

    @property
    def is_file(self) -> bool:
        return (self.mode & 0o170000) == 0o100000

    @property
    def is_symlink(self) -> bool:
        return (self.mode & 0o170000) == 0o120000


_TYPE_BITS = {"regular": 0o100000, "directory": 0o040000, "symlink": 0o120000, "FIFO": 0o010000,
              "socket": 0o140000, "character special": 0o020000, "block special": 0o060000}
MAX_SYMLINK = 4096  # PATH_MAX: a longer link target is refused, not read


@dataclass(frozen=True)
class DirEntry:
    name: str
    inode: int
    mode: int
    size: int

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000


class ExtFs:
    """An existing ext2/3/4 file system of `size` bytes at byte `offset` of an image.

    Callers that also write the image through DiskImage hold its lock; ExtFs does
    not lock, so it can be used under such a lock.
    """

    def __init__(self, image_path: str | os.PathLike[str], offset: int, size: int) -> None:
        self.image_path = os.fspath(image_path)
        if "?" in self.image_path:
            raise UsageError("image path must not contain '?' (e2fsprogs reads it as an option separator)", where=self.image_path)
        self.offset = offset
        self.size = size
        try:
            image_size = os.stat(self.image_path).st_size
        except OSError as exc:
            raise DiskError(f"cannot open: {exc.strerror}", where=self.image_path) from exc
        if offset < 0 or size <= 0 or offset + size > image_size and not _is_block_device(self.image_path):
            raise DiskError(f"file system area {offset:#x}+{size:#x} lies outside the image ({image_size} bytes)", where=self.image_path)
        sb = self.superblock()
        if sb.blocks_count * sb.block_size > size:
            raise DiskError(
                f"file system claims {sb.blocks_count} blocks of {sb.block_size} bytes, more than its {size}-byte area",
                where=f"{self.image_path} offset {offset:#x}",
            )
        self.block_size = sb.block_size
        self.fs_type = sb.fs_type
        self._extents = bool(sb.feature_incompat & _INCOMPAT_EXTENTS)
        self.last_fsck_output = ""

    @property
    def spec(self) -> str:
        """How e2fsprogs name this file system."""
        return f"{self.image_path}?offset={self.offset}"

    # -- making ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        image_path: str | os.PathLike[str],
        offset: int,
        size: int,
        fstype: str = "ext2",
        block_size: int | None = None,
        *,
        label: str | None = None,
        reserved_percent: int = 0,
    ) -> ExtFs:
        """mke2fs into [offset, offset+size) of an existing image; bytes outside stay untouched."""
        if fstype not in FS_TYPES:
            raise UsageError(f"unknown file system type {fstype!r} (use one of {', '.join(FS_TYPES)})", where="fstype")
        bs = block_size or DEFAULT_BLOCK_SIZE
        if bs not in (1024, 2048, 4096):
            raise UsageError(f"file system block size {bs} not supported (1024, 2048 or 4096)", where="block_size")
        path = os.fspath(image_path)
        if "?" in path:
            raise UsageError("image path must not contain '?'", where=path)
        if offset % 512 or size < 64 * bs:
            raise UsageError(f"file system area {offset:#x}+{size:#x} is misaligned or too small (at least {64 * bs} bytes)", where=path)
        if fstype != "ext2" and size // bs < _MIN_JOURNAL_BLOCKS:
            # mke2fs would quietly leave the journal out (an ext3 request would give ext2)
            raise UsageError(
                f"{fstype} needs a journal, and mke2fs makes one only with at least {_MIN_JOURNAL_BLOCKS} blocks "
                f"({_MIN_JOURNAL_BLOCKS * bs} bytes at block size {bs}); the area has {size // bs}",
                where=path,
            )
        try:
            image_size = os.stat(path).st_size
        except OSError as exc:
            raise DiskError(f"cannot open: {exc.strerror}", where=path) from exc
        # mke2fs would silently grow a regular file; the area must already exist.
        if offset + size > image_size and not _is_block_device(path):
            raise DiskError(f"file system area {offset:#x}+{size:#x} ends past the end of the image ({image_size} bytes)", where=path)
        cmd = [find_tool("mke2fs"), "-F", "-q", "-t", fstype, "-b", str(bs), "-m", str(reserved_percent), "-E", f"offset={offset}"]
        if label:
            cmd += ["-L", label]
        cmd += [path, str(size // bs)]  # always an explicit size: never the rest of the image
        _run(cmd, what="mke2fs")
        fs = cls(path, offset, size)
        if fs.fs_type != fstype or (fstype != "ext2" and not fs.superblock().feature_compat & _COMPAT_HAS_JOURNAL):
            raise DiskError(f"mke2fs made {fs.fs_type} without the requested {fstype} features", where=fs.spec)
        return fs

    # -- running e2fsprogs ------------------------------------------------------
    def _debugfs(self, commands: list[str], *, write: bool = False, allow: tuple[str, ...] = ()) -> str:
        """Run debugfs commands; raise on any error it reports (it exits 0 regardless).

        `allow` lists error texts the caller handles itself (returned in the output).
        """
        cmd = [find_tool("debugfs")] + (["-w"] if write else []) + ["-f", "-", self.spec]
        # surrogateescape (in run_helper): names in a hostile image need not be UTF-8
        with external_writes(self.image_path) if write else nullcontext():
            proc = run_helper(cmd, input="\n".join(commands) + "\n")
        errors = [
            line.strip()
            for line in proc.stderr.splitlines()
            if line.strip() and not line.startswith("debugfs ") and not any(a in line for a in allow)
        ]
        if proc.returncode != 0 or errors:
            message = "; ".join(errors) or proc.stderr.strip() or f"exit status {proc.returncode}"
            cls = DumpSpaceError if any(s in message for s in _SPACE_ERRORS) else DiskError
            raise cls(f"debugfs: {message}", where=f"{self.spec} ({commands[0]}{' ...' if len(commands) > 1 else ''})")
        return proc.stdout + "".join(f"\n{line}" for line in proc.stderr.splitlines() if any(a in line for a in allow))

    def superblock(self) -> Superblock:
        return read_superblock(self.image_path, self.offset)

    # -- queries ----------------------------------------------------------------
    def free_bytes(self) -> int:
        sb = self.superblock()
        return sb.free_blocks * sb.block_size

    def free_blocks(self) -> int:
        return self.superblock().free_blocks

    def _stat(self, fs_path: str) -> str | None:
        out = self._debugfs([f"stat {_q(fs_path)}"], allow=_NOT_FOUND)
        if any(n in out for n in _NOT_FOUND):
            return None
        return out

    def _stat_required(self, fs_path: str) -> str:
        out = self._stat(fs_path)
        if out is None:
            raise DiskError("no such file in the file system", where=f"{self.spec}:{fs_path}")
        return out

    def block_owners(self, fs_blocks: list[int]) -> dict[int, int | None]:
        """The inode owning each file system block (None: no file owns it), by debugfs icheck."""
        out: dict[int, int | None] = {}
        for i in range(0, len(fs_blocks), 512):  # bounded command lines
            text = self._debugfs(["icheck " + " ".join(str(b) for b in fs_blocks[i : i + 512])])
            for line in text.splitlines()[1:]:
                parts = line.split(None, 1)
                if len(parts) == 2 and parts[0].isdigit():
                    out[int(parts[0])] = int(parts[1]) if parts[1].strip().isdigit() else None
        return out

    def inode_paths(self, inodes: list[int]) -> dict[int, str]:
        """A path of each inode (debugfs ncheck); inodes without a name are left out."""
        if not inodes:
            return {}
        out: dict[int, str] = {}
        for line in self._debugfs(["ncheck " + " ".join(str(i) for i in inodes)]).splitlines()[1:]:
            parts = line.split("\t", 1)
            if len(parts) == 2 and parts[0].strip().isdigit():
                out.setdefault(int(parts[0]), re.sub(r"/+", "/", parts[1].strip()))  # debugfs writes "//bootmap"
        return out

    def exists(self, fs_path: str) -> bool:
        return self._stat(fs_path) is not None

    def lstat(self, fs_path: str) -> FileStat | None:
        """The inode `fs_path` names, None when there is none.  A symlink in the last
        component is not followed (debugfs follows links only in the leading ones)."""
        text = self._stat(fs_path)
        if text is None:
            return None
        m = re.search(r"Inode: (\d+)\s+Type: ([a-zA-Z ]+?)\s+Mode:\s+([0-7]+)", text)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", text)
        if not m or not owner:
            raise DiskError("debugfs stat printed no inode, type or mode", where=f"{self.spec}:{fs_path}")
        mode = _TYPE_BITS.get(m.group(2), 0) | int(m.group(3), 8)
        return FileStat(int(m.group(1)), mode, _stat_size(text, fs_path), int(owner.group(1)), int(owner.group(2)),
                        "Size of inline data" in text)

    def readlink(self, fs_path: str) -> str:
        """The target of symlink `fs_path` (at most MAX_SYMLINK bytes), as stored."""
        where = f"{self.spec}:{fs_path}"
        st = self.lstat(fs_path)
        if st is None or not st.is_symlink:
            raise DiskError("not a symbolic link", where=where)
        if st.size > MAX_SYMLINK:
            raise DiskError(f"symbolic link target of {st.size} bytes is longer than {MAX_SYMLINK}", where=where)
        raw = self._stat_required(fs_path).encode("utf-8", "surrogateescape")
        mark = raw.find(b'Fast link dest: "')
        if mark >= 0:  # the target is in the inode; its length is the inode size
            data = raw[mark + 17 : mark + 17 + st.size]
        else:
            data = self.read_file_bounded(fs_path, MAX_SYMLINK, inode=st.inode)
        return data.decode("utf-8", "surrogateescape")

    def read_file_bounded(self, fs_path: str, limit: int, *, inode: int | None = None) -> bytes:
        """A regular file's bytes (or a slow symlink's, by `inode`), refused when it claims more than `limit`."""
        where = f"{self.spec}:{fs_path}"
        if inode is None:
            st = self.lstat(fs_path)
            if st is None:
                raise DiskError("no such file in the file system", where=where)
            if not st.is_file:
                raise DiskError("not a regular file", where=where)
            if st.size > limit:
                raise DiskError(f"file of {st.size} bytes is larger than {limit}", where=where)
            inode = st.inode
        with tempfile.TemporaryDirectory(prefix="zipldump-extfs-") as d:
            host = os.path.join(d, "out")
            self._debugfs([f"dump <{inode}> {_q(host)}"])
            with open(host, "rb") as fh:
                data = fh.read(limit + 1)
        if len(data) > limit:
            raise DiskError(f"file is larger than {limit} bytes", where=where)
        return data

    def copy_inode_out(self, inode: int, host_path: str | os.PathLike[str]) -> None:
        """Inode `inode`'s data into a new host file the caller chose (never one the image names)."""
        self._debugfs([f"dump <{inode}> {_q(os.fspath(host_path))}"])

    def file_size(self, fs_path: str) -> int:
        return _stat_size(self._stat_required(fs_path), fs_path)

    def is_dir(self, fs_path: str) -> bool:
        return "Type: directory" in self._stat_required(fs_path)

    def listdir(self, fs_path: str = "/") -> list[str]:
        """Names in a directory (without . and ..), in directory order."""
        return [e.name for e in self.scandir(fs_path)]

    def scandir(self, fs_path: str = "/") -> list[DirEntry]:
        if not self.is_dir(fs_path):
            raise DiskError("not a directory", where=f"{self.spec}:{fs_path}")
        out = self._debugfs([f"ls -p {_q(fs_path)}"])
        entries = []
        for line in out.splitlines():
            # "/ino/mode/uid/gid/name/size/" (name cannot hold '/')
            m = re.fullmatch(r"/(\d+)/([0-7]+)/\d+/\d+/(.*)/(\d*)/", line.strip())
            if m and m.group(3) not in (".", ".."):
                entries.append(DirEntry(m.group(3), int(m.group(1)), int(m.group(2), 8), int(m.group(4) or 0)))
        return entries

    def block_map(self, fs_path: str) -> list[int]:
        """Physical fs block of each logical block in file order (0 for a hole), for ceil(size / block_size) blocks."""
        return self._block_map(fs_path)[0]

    def _block_map(self, fs_path: str) -> tuple[list[int], bool]:
        text = self._stat_required(fs_path)
        size = _stat_size(text, fs_path)
        if "Size of inline data" in text:
            raise DiskError("file data is stored inline in the inode; it has no blocks", where=f"{self.spec}:{fs_path}")
        n = -(-size // self.block_size)
        blocks = [0] * n
        uninit = False
        section = re.search(r"^(?:BLOCKS|EXTENTS):\n(.*?)(?:\nTOTAL|\n\n|\Z)", text, re.S | re.M)
        if section:
            for m in re.finditer(r"\((\d+)(?:-(\d+))?(\[u\])?\):(\d+)(?:-(\d+))?", section.group(1)):
                first = int(m.group(1))
                last = int(m.group(2) or first)
                phys = int(m.group(4))
                if m.group(3):
                    uninit = True
                for i in range(first, min(last, n - 1) + 1):
                    blocks[i] = phys + (i - first)
        return blocks, uninit

    def block_offset(self, fs_block: int) -> int:
        """Byte offset in the image of a physical fs block."""
        return self.offset + fs_block * self.block_size

    def byte_runs(self, blocks: list[int]) -> list[tuple[int, int]]:
        """Coalesce a block map into (image byte offset, length) runs; holes (0) are an error."""
        runs: list[tuple[int, int]] = []
        for i, b in enumerate(blocks):
            if b == 0:
                raise DiskError(f"logical block {i} is a hole", where=self.spec)
            off = self.block_offset(b)
            if runs and runs[-1][0] + runs[-1][1] == off:
                runs[-1] = (runs[-1][0], runs[-1][1] + self.block_size)
            else:
                runs.append((off, self.block_size))
        return runs

    # -- reading ----------------------------------------------------------------
    def copy_out(self, fs_path: str, host_path: str | os.PathLike[str]) -> None:
        self._stat_required(fs_path)
        self._debugfs([f"dump {_q(fs_path)} {_q(os.fspath(host_path))}"])

    def read_file(self, fs_path: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="zipldump-extfs-") as d:
            host = os.path.join(d, "out")
            self.copy_out(fs_path, host)
            return Path(host).read_bytes()

    # -- changing -----------------------------------------------------------------
    def mkdir(self, fs_path: str) -> None:
        self._debugfs([f"mkdir {_q(fs_path)}"], write=True)

    def remove(self, fs_path: str) -> None:
        """Remove a file or an empty directory."""
        if self.is_dir(fs_path):
            if self.listdir(fs_path):
                raise DiskError("directory is not empty", where=f"{self.spec}:{fs_path}")
            self._debugfs([f"rmdir {_q(fs_path)}"], write=True)
        else:
            self._debugfs([f"rm {_q(fs_path)}"], write=True)

    def rename(self, old: str, new: str) -> None:
        """Rename a file (replacing `new`): link under the new name, then unlink the old one."""
        if self.is_dir(old):
            raise DiskError("renaming directories is not supported", where=f"{self.spec}:{old}")
        if self.exists(new):
            self.remove(new)
        # debugfs ln does not touch the link count and unlink does not either, so the pair keeps it right
        self._debugfs([f"ln {_q(old)} {_q(new)}", f"unlink {_q(old)}"], write=True)

    def write_file(self, fs_path: str, data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> None:
        """Create or replace a file with bytes, or with the contents of a host file (given as a path).

        debugfs stores all-zero blocks as holes; use allocate() for a file whose
        blocks are addressed directly.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            with tempfile.TemporaryDirectory(prefix="zipldump-extfs-") as d:
                host = os.path.join(d, "in")
                Path(host).write_bytes(bytes(data))
                self._write_host_file(fs_path, host)
        else:
            self._write_host_file(fs_path, os.fspath(data))

    def _write_host_file(self, fs_path: str, host: str) -> None:
        try:
            size = os.stat(host).st_size
        except OSError as exc:
            raise DiskError(f"cannot read: {exc.strerror}", where=host) from exc
        where = f"{self.spec}:{fs_path}"
        old = self._stat(fs_path)
        old_blocks = 0
        if old is not None:
            if "Type: directory" in old:
                raise DiskError("is a directory", where=where)
            old_blocks = _stat_blockcount(old) * 512 // self.block_size
        needed = _blocks_needed(-(-size // self.block_size), self.block_size)
        if needed > self.free_blocks() + old_blocks:
            raise DumpSpaceError(
                f"{size} bytes need about {needed} blocks of {self.block_size}; {self.free_blocks()} are free", where=where
            )
        if old is not None:
            self.remove(fs_path)
        try:
            self._debugfs([f"write {_q(host)} {_q(fs_path)}"], write=True)
            got = self.file_size(fs_path)
            if got != size:
                raise DiskError(f"file written incompletely ({got} of {size} bytes)", where=where)
        except (DiskError, DumpSpaceError):
            self._discard(fs_path)
            raise

    def allocate(self, fs_path: str, size: int, *, mode: int | None = None, owner: tuple[int, int] | None = None) -> list[int]:
        """A new file of `size` bytes with every block allocated and initialised; returns its block map.

        DumpSpaceError (and no file left) when it does not fit.  The blocks hold
        whatever was on the disk before: the caller writes all of them.  `mode`
        (permission bits) and `owner` (uid, gid) are set on the new inode when given.
        """
        where = f"{self.spec}:{fs_path}"
        if size < 0:
            raise UsageError(f"negative size {size}", where=where)
        if self.exists(fs_path):
            raise DiskError("file exists", where=where)
        n = -(-size // self.block_size)
        if n > 0xFFFFFFFF or self.superblock().blocks_count > 0xFFFFFFFF:
            raise DumpSpaceError(f"{n} blocks are more than a block-mapped file can address", where=where)
        needed = _blocks_needed(n, self.block_size)
        free = self.free_blocks()
        if needed > free:
            raise DumpSpaceError(
                f"{size} bytes need {needed} blocks of {self.block_size} (data and indirect blocks); only {free} are free",
                where=where,
            )
        with tempfile.TemporaryDirectory(prefix="zipldump-extfs-") as d:
            empty = os.path.join(d, "empty")
            Path(empty).touch()
            commands = [f"write {_q(empty)} {_q(fs_path)}"]
            if self._extents:
                # Make the new, empty inode block-mapped: no uninitialised extents.
                commands.append(f"sif {_q(fs_path)} flags 0")
                for field in [f"block[{i}]" for i in range(12)] + ["block[IND]", "block[DIND]", "block[TIND]"]:
                    commands.append(f"sif {_q(fs_path)} {field} 0")
            if mode is not None:
                commands.append(f"sif {_q(fs_path)} mode 0{0o100000 | (mode & 0o7777):o}")
            if owner is not None:
                commands += [f"sif {_q(fs_path)} uid {owner[0]}", f"sif {_q(fs_path)} gid {owner[1]}"]
            if n:
                commands.append(f"fallocate {_q(fs_path)} 0 {n - 1}")
            commands.append(f"sif {_q(fs_path)} size {size}")
            try:
                self._debugfs(commands, write=True)
                blocks, uninit = self._block_map(fs_path)
                if len(blocks) != n or 0 in blocks or uninit:
                    raise DiskError(f"allocation incomplete: {blocks.count(0)} of {n} blocks missing", where=where)
            except (DiskError, DumpSpaceError):
                self._discard(fs_path)
                raise
        return blocks

    def set_size(self, fs_path: str, size: int) -> None:
        """Set the file size; blocks past the new end are freed (so the file system stays clean)."""
        where = f"{self.spec}:{fs_path}"
        if size < 0:
            raise UsageError(f"negative size {size}", where=where)
        old = self.file_size(fs_path)
        commands = [f"sif {_q(fs_path)} size {size}"]
        keep = -(-size // self.block_size)
        if size < old or keep < len(self._block_map(fs_path)[0]):
            commands.append(f"punch {_q(fs_path)} {keep}")
        self._debugfs(commands, write=True)

    def _discard(self, fs_path: str) -> None:
        """Best-effort removal of a half-made file (after an error already being raised)."""
        try:
            if self._stat(fs_path) is not None:
                self._debugfs([f"rm {_q(fs_path)}"], write=True)
        except DiskError:
            pass

    # -- checking -------------------------------------------------------------------
    def fsck(self, fix: bool = False) -> int:
        """e2fsck -f (-n, or -y when fixing); returns its exit bitmask (0 clean, 1 fixed, 4 errors left, 8 operational)."""
        with external_writes(self.image_path) if fix else nullcontext():
            proc = run_helper([find_tool("e2fsck"), "-f", "-y" if fix else "-n", self.spec])
        self.last_fsck_output = proc.stdout + proc.stderr
        return proc.returncode


# --- helpers ---------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(_ENV)
    # Reproducible builds: e2fsprogs take "now" (inode and directory times, the
    # superblock's write time) from E2FSPROGS_FAKE_TIME; SOURCE_DATE_EPOCH sets it.
    epoch = env.get("SOURCE_DATE_EPOCH", "")
    if epoch.isascii() and epoch.isdigit() and len(epoch) <= 12 and "E2FSPROGS_FAKE_TIME" not in env:
        env["E2FSPROGS_FAKE_TIME"] = epoch
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *_SBIN])
    return env


def run_helper(cmd: list[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an e2fsprogs helper that dies with zipldump: a helper left writing the image after
    a kill would write without the image's lock (PR_SET_PDEATHSIG: SIGKILL when we die)."""
    parent = os.getpid()

    def die_with_parent() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return subprocess.run(
        cmd, input=input, capture_output=True, text=True, errors="surrogateescape", env=_env(), preexec_fn=die_with_parent
    )


_PR_SET_PDEATHSIG = 1


def _run(cmd: list[str], *, what: str) -> subprocess.CompletedProcess[str]:
    proc = run_helper(cmd)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
        raise DiskError(f"{what} failed (exit {proc.returncode}): {msg}", where=" ".join(cmd[-2:]))
    return proc


def _q(path: str) -> str:
    """Quote an argument for debugfs' command parser."""
    if any(c in path for c in '"\n\r\0'):
        raise UsageError("path holds a quote, newline or NUL, which debugfs cannot take", where=repr(path))
    return f'"{path}"'


def _is_block_device(path: str) -> bool:
    import stat as st

    try:
        return st.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _stat_size(text: str, fs_path: str) -> int:
    m = re.search(r"\bSize: (\d+)", text)
    if not m:
        raise DiskError("debugfs stat printed no size", where=fs_path)
    return int(m.group(1))


def _stat_blockcount(text: str) -> int:
    m = re.search(r"Blockcount: (\d+)", text)
    return int(m.group(1)) if m else 0


def _blocks_needed(n: int, block_size: int) -> int:
    """Data blocks plus the indirect blocks a block-mapped file of n blocks uses (an upper bound for extent files)."""
    per = block_size // 4
    total = n
    left = n - 12
    if left > 0:  # single indirect
        total += 1
        left -= per
    if left > 0:  # double indirect: one DIND plus one IND per `per` blocks
        k = min(-(-left // per), per)
        total += 1 + k
        left -= per * per
    if left > 0:  # triple indirect
        k2 = -(-left // per)
        total += 1 + -(-k2 // per) + k2
    return total
