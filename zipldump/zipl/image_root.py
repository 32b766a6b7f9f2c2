"""A disk image seen as zipl sees a running system: "/" and the file systems its fstab mounts.

`ImageRoot.open(IMAGE)` finds the root file system (the ext2/3/4 partition that
holds zipl's configuration, or `root=PARTNUM`), reads its /etc/fstab and places
the other ext file systems at their mount points.  Paths resolve as inside a
chroot: `..` stops at "/", absolute symlinks start again at the image's "/",
mount points are crossed.  Everything is read through e2fsprogs (disk/extfs.py);
nothing is mounted, and the image is untrusted: no path, link, fstab line or
configuration value reaches a host file, and every size and count read from it is
bounded.  See docs/image-builders.md.

Errors about the image's contents are UsageErrors naming the in-image file
(and line), e.g. "/etc/fstab:3".
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zipldump.disk.extfs import ExtFs, FileStat, has_ext_magic
from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import PartitionTable, read_partition_table
from zipldump.errors import DiskError, UsageError
from zipldump.ui import clip as _clip
from zipldump.zipl import bls

# zipl's configuration search (job.c): ZIPLCONF, then these, first readable file wins.
CONFIG_SEARCH = ("/run/zipl/zipl.conf", "/etc/zipl.conf", "/lib/s390-tools/zipl.conf")
CONFIG_ENV = "ZIPLCONF"
FSTAB = "/etc/fstab"
MAX_FSTAB_SIZE = 1 << 20
MAX_FSTAB_ENTRIES = 1024
MAX_SYMLINKS = 40  # Linux's limit on links followed in one lookup (ELOOP)
MAX_PATH = 4096  # PATH_MAX
MAX_DIR_BYTES = 4 << 20  # a directory bigger than this is not listed
MAX_FILE_SIZE = 2 << 30  # kernels and ramdisks larger than this are refused before copying
EXT_TYPES = ("ext2", "ext3", "ext4")
_PLAIN_DEVICE = (
    re.compile(r"^/dev/(?:[shv]d[a-z]+|xvd[a-z]+|dasd[a-z]+)(\d*)$"),
    re.compile(r"^/dev/(?:nvme\d+n\d+|mmcblk\d+|loop\d+|nbd\d+)(?:p(\d+))?$"),
)
_BY = {"by-uuid": "UUID", "by-label": "LABEL", "by-partuuid": "PARTUUID", "by-partlabel": "PARTLABEL"}


@dataclass(frozen=True)
class Mount:
    """A file system at `point` of the image: an ext partition (`fs`), or `fstype` that
    zipldump cannot read (xfs, btrfs, tmpfs, ...) with `fs` None."""

    point: str
    partition: int
    fs: ExtFs | None
    fstype: str
    source: str  # "root" or "/etc/fstab:LINE"


@dataclass(frozen=True)
class Located:
    """Where an image path ends up: the mount, the path inside its file system, the inode."""

    path: str  # the resolved image path (no links, no ..)
    mount: Mount
    fs_path: str
    stat: FileStat

    @property
    def fs(self) -> ExtFs:
        assert self.mount.fs is not None
        return self.mount.fs


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _unescape_fstab(text: str) -> str:
    # fstab(5): \040 and friends stand for blanks inside a field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _unescape_udev(text: str) -> str:
    # /dev/disk/by-label/ names escape unsafe bytes as \xNN
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


class ImageRoot:
    """The in-image view; build it with `ImageRoot.open`."""

    def __init__(self, image_path: str | os.PathLike[str], table: PartitionTable | None, filesystems: dict[int, ExtFs], root: int) -> None:
        self.image_path = os.fspath(image_path)
        self.table = table
        self.filesystems = filesystems
        self.root_partition = root
        self.mounts: list[Mount] = [Mount("/", root, filesystems[root], filesystems[root].fs_type, "root")]

    # -- building ---------------------------------------------------------------
    @classmethod
    def open(cls, image_path: str | os.PathLike[str], block_size: int = 512, *, root: int | None = None, config_env: str | None = None) -> ImageRoot:
        table, filesystems = _ext_filesystems(image_path, block_size)
        where = os.fspath(image_path)
        if not filesystems:
            raise UsageError("the image has no ext2/3/4 file system to read a zipl configuration from", where=where)
        if root is not None:
            if root not in filesystems:
                have = ", ".join(str(n) for n in filesystems) or "none"
                raise UsageError(f"--root {root}: no ext2/3/4 file system in partition {root} (ext partitions: {have})", where="--root")
            chosen = root
        else:
            holders = []
            for number in filesystems:
                probe = cls(image_path, table, filesystems, number)
                if probe.find_config(config_env, required=False) is not None:
                    holders.append(number)
            if not holders:
                searched = ", ".join(([f"${CONFIG_ENV}={config_env}"] if config_env else []) + list(CONFIG_SEARCH))
                raise UsageError(f"no ext2/3/4 file system of the image holds a zipl configuration (searched {searched})", where=where)
            if len(holders) > 1:
                raise UsageError(
                    f"partitions {', '.join(map(str, holders))} each hold a zipl configuration; give --root PARTNUM", where=where
                )
            chosen = holders[0]
        image_root = cls(image_path, table, filesystems, chosen)
        image_root._read_fstab()
        return image_root

    def find_config(self, env: str | None, *, required: bool = True) -> str | None:
        """zipl's search: $ZIPLCONF (a path inside the image), else the first of CONFIG_SEARCH that is a file."""
        if env:
            if len(env) > MAX_PATH:
                raise UsageError(f"{CONFIG_ENV} is longer than {MAX_PATH} characters", where=CONFIG_ENV)
            found = self.lookup(env)
            if found is not None and found.stat.is_file:
                return found.path
            if required:
                raise UsageError(f"{CONFIG_ENV}={_clip(env)}: no such file in the image", where=CONFIG_ENV)
            return None
        for path in CONFIG_SEARCH:
            found = self.lookup(path)
            if found is not None and found.stat.is_file:
                return found.path
        if required:
            raise UsageError(f"no zipl configuration in the image (searched {', '.join(CONFIG_SEARCH)})", where=self.image_path)
        return None

    def _read_fstab(self) -> None:
        found = self.lookup(FSTAB)
        if found is None:
            return
        if not found.stat.is_file:
            raise UsageError("not a regular file", where=FSTAB)
        data = self._read(found, MAX_FSTAB_SIZE, FSTAB)
        text = data.decode("utf-8", "surrogateescape")
        entries = 0
        mounts: dict[str, Mount] = {}
        for lineno, raw in enumerate(text.split("\n"), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            entries += 1
            if entries > MAX_FSTAB_ENTRIES:
                raise UsageError(f"more than {MAX_FSTAB_ENTRIES} entries", where=f"{FSTAB}:{lineno}")
            fields = [_unescape_fstab(f) for f in line.split()]
            where = f"{FSTAB}:{lineno}"
            if len(fields) < 2:
                raise UsageError(f"expected DEVICE MOUNTPOINT [TYPE [OPTIONS]], got {_clip(line)!r}", where=where)
            spec, point = fields[0], fields[1]
            fstype = fields[2] if len(fields) > 2 else "auto"
            options = fields[3].split(",") if len(fields) > 3 else []
            if not point.startswith("/"):
                continue  # swap, "none"
            point = "/" + "/".join(_norm(_components(point)))
            if point == "/":
                continue  # the root is the file system found above
            if "bind" in options or "rbind" in options:
                mounts[point] = Mount(point, -1, None, "bind mount", where)
                continue
            if fstype not in (*EXT_TYPES, "auto"):
                mounts[point] = Mount(point, -1, None, fstype, where)
                continue
            number = self.partition_of_device(spec, where)
            fs = self.filesystems.get(number)
            if fs is None:
                if fstype == "auto":
                    mounts[point] = Mount(point, number, None, "a file system that is not ext2/3/4", where)
                    continue
                raise UsageError(f"{_clip(spec)} is partition {number}, which holds no ext2/3/4 file system", where=where)
            mounts[point] = Mount(point, number, fs, fs.fs_type, where)
        self.mounts += sorted(mounts.values(), key=lambda m: -len(m.point))
        self.mounts.sort(key=lambda m: -len(m.point))

    # -- devices ----------------------------------------------------------------
    def partition_of_device(self, spec: str, where: str) -> int:
        """The partition number an fstab device (or a dumpto= device) names; 0 = whole disk."""
        parts = self.table.partitions if self.table is not None else []
        key, _, value = spec.partition("=")
        if spec.startswith("/dev/disk/"):
            kind, _, name = spec[len("/dev/disk/") :].partition("/")
            if kind in _BY and name and "/" not in name:
                key, value = _BY[kind], _unescape_udev(name)
            else:
                raise UsageError(f"cannot map {_clip(spec)} to a partition of the image", where=where)
        elif spec.startswith("/dev/"):
            for pattern in _PLAIN_DEVICE:
                m = pattern.match(spec)
                if m:
                    number = int(m.group(1)) if m.group(1) else 0
                    if number == 0 and self.table is None or number in self.filesystems or any(p.number == number for p in parts):
                        return number
                    raise UsageError(f"{_clip(spec)}: the image has no partition {number}", where=where)
            raise UsageError(
                f"cannot map {_clip(spec)} to a partition of the image (zipldump maps UUID=, LABEL=, PARTUUID=, PARTLABEL=, "
                "/dev/disk/by-*/ and plain partition names such as /dev/vda2)",
                where=where,
            )
        elif key not in ("UUID", "LABEL", "PARTUUID", "PARTLABEL") or not value:
            raise UsageError(f"cannot map {_clip(spec)} to a partition of the image", where=where)
        value = value.strip('"')
        hits: list[int] = []
        if key in ("UUID", "LABEL"):
            for number, fs in self.filesystems.items():
                fs_uuid, label = _fs_ids(fs)
                if key == "UUID" and fs_uuid == value.lower() or key == "LABEL" and label == value:
                    hits.append(number)
        else:
            for p in parts:
                if key == "PARTLABEL" and p.name == value or key == "PARTUUID" and _part_uuid(self.table, p.number, p.uuid) == value.lower():
                    hits.append(p.number)
        if not hits:
            raise UsageError(f"no partition of the image has {key}={_clip(value)}", where=where)
        if len(hits) > 1:
            raise UsageError(f"partitions {', '.join(map(str, hits))} all have {key}={_clip(value)}", where=where)
        return hits[0]

    # -- paths ------------------------------------------------------------------
    def _mount_of(self, comps: list[str]) -> tuple[Mount, str]:
        path = "/" + "/".join(comps)
        for m in self.mounts:  # longest mount point first
            if m.point == "/" or path == m.point or path.startswith(m.point + "/"):
                rel = path[len(m.point) :] if m.point != "/" else path
                if m.fs is None:
                    raise UsageError(
                        f"{_clip(path)} lies on {m.point}, which is {m.fstype} ({m.source}): zipldump reads only ext2/3/4 "
                        "file systems through e2fsprogs (an xfs or btrfs /boot would need a reader for that file system)",
                        where=m.source,
                    )
                return m, rel or "/"
        raise AssertionError("no root mount")  # pragma: no cover - "/" is always there

    def lookup(self, path: str, *, follow: bool = True, base: str = "/") -> Located | None:
        """Resolve `path` (relative to `base`) as inside a chroot of the image; None when it does not exist."""
        if len(path) > MAX_PATH:
            raise UsageError(f"path of {len(path)} characters is longer than {MAX_PATH}", where=_clip(path))
        todo = _components(path) if path.startswith("/") else _components(base) + _components(path)
        done: list[str] = []
        hops = 0
        while todo:
            c = todo.pop(0)
            if c == ".":
                continue
            if c == "..":
                if done:
                    done.pop()
                continue
            mount, rel = self._mount_of(done + [c])
            assert mount.fs is not None
            try:
                st = mount.fs.lstat(rel)
            except UsageError as exc:  # a name debugfs cannot be given (quote, newline)
                raise UsageError(f"{_clip('/'.join(done + [c]))}: {exc.message}", where=self.image_path) from None
            if st is None:
                return None
            if st.is_symlink and (todo or follow):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise UsageError(f"more than {MAX_SYMLINKS} symbolic links while resolving {_clip(path)} (a loop?)", where=_clip(path))
                target = mount.fs.readlink(rel)
                if not target:
                    return None
                if target.startswith("/"):
                    done = []
                todo = _components(target) + todo
                if len(todo) > MAX_PATH:
                    raise UsageError(f"resolving {_clip(path)} grows past {MAX_PATH} components", where=_clip(path))
                continue
            if todo and not st.is_dir:
                return None  # ENOTDIR
            done.append(c)
        mount, rel = self._mount_of(done)
        assert mount.fs is not None
        st = mount.fs.lstat(rel)
        if st is None:  # pragma: no cover - the root of a mounted file system always exists
            return None
        return Located("/" + "/".join(done), mount, rel, st)

    def require(self, path: str, what: str, where: str) -> Located:
        found = self.lookup(path)
        if found is None:
            raise UsageError(f"{what} {_clip(path)} does not exist in the image", where=where)
        return found

    def require_file(self, path: str, what: str, where: str) -> Located:
        found = self.require(path, what, where)
        if not found.stat.is_file:
            raise UsageError(f"{what} {_clip(path)} is not a regular file in the image", where=where)
        return found

    def _read(self, found: Located, limit: int, where: str) -> bytes:
        if found.stat.size > limit:
            raise UsageError(f"{found.path} is {found.stat.size} bytes, more than {limit}", where=where)
        try:
            return found.fs.read_file_bounded(found.fs_path, limit, inode=found.stat.inode)
        except DiskError as exc:
            raise UsageError(f"cannot read {found.path}: {exc.message}", where=where) from None

    def read_file(self, path: str | PurePosixPath, limit: int, what: str, where: str) -> bytes:
        """A regular file's bytes, at most `limit` of them (a longer file is refused)."""
        return self._read(self.require_file(str(path), what, where), limit, where)

    def listdir(self, path: str, where: str) -> list[str]:
        found = self.require(path, "directory", where)
        if not found.stat.is_dir:
            raise UsageError(f"{found.path} is not a directory", where=where)
        if found.stat.size > MAX_DIR_BYTES:
            raise UsageError(f"directory {found.path} is {found.stat.size} bytes, more than {MAX_DIR_BYTES}", where=where)
        return found.fs.listdir(found.fs_path)

    def extract(self, path: str | PurePosixPath, dest: Path, what: str, where: str) -> Path:
        """Copy a regular file out to `dest` (a new file in a directory the caller made)."""
        found = self.require_file(str(path), what, where)
        if found.stat.size > MAX_FILE_SIZE:
            raise UsageError(f"{what} {found.path} is {found.stat.size} bytes, more than {MAX_FILE_SIZE}", where=where)
        found.fs.copy_inode_out(found.stat.inode, dest)
        if dest.stat().st_size != found.stat.size:
            raise UsageError(f"{what} {found.path}: copied {dest.stat().st_size} of {found.stat.size} bytes", where=where)
        return dest

    def directory(self, path: str, what: str, where: str) -> Located:
        """An existing directory (target=): its file system and the path inside it."""
        found = self.require(path, what, where)
        if not found.stat.is_dir:
            raise UsageError(f"{what} {_clip(path)} is not a directory in the image", where=where)
        return found

    def describe(self) -> list[str]:
        return [f"{m.point}: partition {m.partition} ({m.fstype}, {m.source})" for m in sorted(self.mounts, key=lambda m: m.point)]


def _norm(comps: list[str]) -> list[str]:
    out: list[str] = []
    for c in comps:
        if c == "..":
            if out:
                out.pop()
        elif c != ".":
            out.append(c)
    return out


def _fs_ids(fs: ExtFs) -> tuple[str, str]:
    """(UUID, label) from the superblock: s_uuid at 0x68, s_volume_name at 0x78."""
    with open(fs.image_path, "rb") as fh:
        fh.seek(fs.offset + 1024)
        raw = fh.read(1024)
    label = raw[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(uuid.UUID(bytes=raw[0x68:0x78])), label


def _part_uuid(table: PartitionTable | None, number: int, gpt_uuid: str) -> str:
    if table is None:
        return ""
    if table.label == "gpt":
        return gpt_uuid.lower()
    # msdos: the disk signature and the partition number, as blkid makes PARTUUID
    return f"{int(table.disk_id, 16):08x}-{number:02x}"


def _ext_filesystems(image_path: str | os.PathLike[str], block_size: int) -> tuple[PartitionTable | None, dict[int, ExtFs]]:
    """Every ext2/3/4 file system of the image by partition number (0 = unpartitioned disk)."""
    with DiskImage(image_path, block_size) as disk:
        block0 = disk.read_block(0)
        if block0[510:512] != b"\x55\xaa":
            if disk.size > 2048 and has_ext_magic(disk.read_at(1024, 1024)):
                return None, {0: ExtFs(image_path, 0, disk.size)}
            return None, {}
        table = read_partition_table(disk)
    out: dict[int, ExtFs] = {}
    for p in table.partitions:
        if p.fs_type in EXT_TYPES:
            out[p.number] = ExtFs(image_path, p.start_bytes, p.size_bytes)
    return table, out


def bls_files(root: ImageRoot, blsdir: str) -> dict[str, bytes]:
    """The wanted entry files of the image's BLS directory; none when it is not a directory (as zipl)."""
    found = root.lookup(blsdir)
    if found is None or not found.stat.is_dir:
        return {}
    where = found.path
    names = sorted(n for n in root.listdir(found.path, where) if bls.wanted(n))
    if len(names) > bls.MAX_ENTRIES:
        raise UsageError(f"{len(names)} BLS entry files are more than {bls.MAX_ENTRIES}", where=where)
    base = found.path.rstrip("/")
    return {f"{base}/{n}": root.read_file(f"{base}/{n}", bls.MAX_ENTRY_SIZE, "BLS entry", f"{base}/{n}") for n in names}
