"""Initramfs builder: a newc cpio archive from a gen_init_cpio-style list.

List syntax (one entry a line; `#` starts a comment line; blank lines ignored):

    file  <name> <location> <mode> <uid> <gid> [<hard link> ...]
    dir   <name> <mode> <uid> <gid>
    nod   <name> <mode> <uid> <gid> <c|b> <major> <minor>
    slink <name> <target> <mode> <uid> <gid>
    pipe  <name> <mode> <uid> <gid>
    sock  <name> <mode> <uid> <gid>

Modes are octal, uid/gid/major/minor decimal.  Leading slashes of names are
dropped in the archive (as gen_init_cpio does).  Device nodes exist only as
archive headers; nothing is created on the host.  Relative `file` locations
are resolved against `base_dir` (default: the list file's directory, or the
current directory for list text).

Output is deterministic: every mtime is SOURCE_DATE_EPOCH (0 when unset),
inode numbers count up from 721 in list order, and the gzip header carries
no name and mtime 0.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from zipldump.disk.io import OutputFile, open_binary
from zipldump.errors import UsageError
from zipldump.formats.cpio import CpioEntry, build_header, pad4, trailer
from zipldump.ui import clip as _clip

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


class _Sink(Protocol):
    """Where an archive goes: a file, io.BytesIO or disk.io.OutputFile (gzip also flushes it)."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> object: ...

FIRST_INO = 721  # gen_init_cpio's first inode number
COPY_CHUNK = 1 << 20
COMPRESSIONS = ("gzip", "none")
PATH_MAX = 4096  # the initramfs unpacker refuses longer names
MAX_LIST_SIZE = 16 << 20  # a larger list (or /dev/zero) is refused, not read whole

_FIELDS = {
    "file": 5,  # + optional hard links
    "dir": 4,
    "nod": 7,
    "slink": 5,
    "pipe": 4,
    "sock": 4,
}
_USAGE = {
    "file": "file <name> <location> <mode> <uid> <gid> [<hard links>]",
    "dir": "dir <name> <mode> <uid> <gid>",
    "nod": "nod <name> <mode> <uid> <gid> <c|b> <major> <minor>",
    "slink": "slink <name> <target> <mode> <uid> <gid>",
    "pipe": "pipe <name> <mode> <uid> <gid>",
    "sock": "sock <name> <mode> <uid> <gid>",
}
_ASCII_SPACE = " \t\r\v\f"  # C isspace() without the newline
_TYPE_BITS = {"dir": stat.S_IFDIR, "slink": stat.S_IFLNK, "pipe": stat.S_IFIFO, "sock": stat.S_IFSOCK}


@dataclass
class ListEntry:
    """One parsed list line.  `names` has more than one element for hard-linked files."""

    kind: str
    names: list[str]
    mode: int
    uid: int
    gid: int
    line: int
    source: Path | None = None  # file
    target: str = ""  # slink
    dev_type: str = ""  # nod: "c" or "b"
    major: int = 0
    minor: int = 0
    size: int = 0  # file size, checked at parse time
    where: str = ""  # LIST:LINE, for errors found while writing


def _mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "0").strip() or "0"
    try:
        t = int(value)
    except ValueError as exc:
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from exc
    if not 0 <= t <= 0xFFFFFFFF:
        raise UsageError(f"SOURCE_DATE_EPOCH={value} does not fit a cpio header")
    return t


def _load(list_text_or_path: str | Path, base_dir: str | Path | None) -> tuple[str, str, Path]:
    """(text, label for errors, base directory)."""
    is_path = isinstance(list_text_or_path, Path) or (
        "\n" not in list_text_or_path and os.path.isfile(list_text_or_path)
    )
    if is_path:
        path = Path(list_text_or_path)
        try:
            with open_binary(path, error=UsageError) as fh:
                raw = fh.read(MAX_LIST_SIZE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read list: {exc.strerror or exc}", where=str(path)) from None
        if len(raw) > MAX_LIST_SIZE:
            raise UsageError(f"list is larger than {MAX_LIST_SIZE} bytes", where=str(path))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise UsageError(f"list is not UTF-8 text (byte {exc.start})", where=f"{path}:{line}") from None
        return text, str(path), Path(base_dir) if base_dir is not None else path.parent
    return str(list_text_or_path), "<list>", Path(base_dir) if base_dir is not None else Path.cwd()


def parse_list(list_text_or_path: str | Path, base_dir: str | Path | None = None) -> list[ListEntry]:
    """Parse and check a list (files must exist and be readable).  UsageError names LIST:LINE."""
    text, label, base = _load(list_text_or_path, base_dir)
    entries: list[ListEntry] = []
    seen: dict[str, int] = {}
    # As gen_init_cpio: lines end at '\n' only (fgets) and fields are separated by ASCII
    # white space only (sscanf %s); str.splitlines()/split() would also break at U+00A0,
    # U+2028 and others, splitting names and shifting every later LIST:LINE.
    for lineno, raw in enumerate(text.split("\n"), start=1):
        where = f"{label}:{lineno}"
        line = raw.strip(_ASCII_SPACE)
        if not line or line.startswith("#"):
            continue
        words = re.split(f"[{_ASCII_SPACE}]+", line)
        kind = words[0]
        if kind not in _FIELDS:
            raise UsageError(f"unknown entry type {_clip(kind)!r} (expected one of {', '.join(_FIELDS)})", where=where)
        args = words[1:]
        n = _FIELDS[kind]
        if len(args) < n or (kind != "file" and len(args) > n):
            raise UsageError(f"expected: {_USAGE[kind]}", where=where)
        entry = _parse_entry(kind, args, lineno, where, base)
        for name in entry.names:
            _check_name(name, "name", where)
            key = name.lstrip("/")
            if not key:
                raise UsageError("empty name (the archive root is implicit)", where=where)
            if key in seen:
                raise UsageError(f"{_clip(name)} is already defined at line {seen[key]}", where=where)
            seen[key] = lineno
        entries.append(entry)
    return entries


def _number(text: str, what: str, where: str, base: int = 10, limit: int = 0xFFFFFFFF) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    # Plain digits only: int() would also take '1_000', '+1', '0o7' and non-ASCII digits.
    if not text or len(text) > 12 or any(c not in digits for c in text):
        raise UsageError(f"{what} {_clip(text)!r} is not a{'n octal' if base == 8 else ' decimal'} number", where=where)
    value = int(text, base)
    if not 0 <= value <= limit:
        raise UsageError(f"{what} {text} is out of range (0..{limit:{'o' if base == 8 else 'd'}})", where=where)
    return value


def _check_name(name: str, what: str, where: str) -> None:
    """An archive path: no '..' component (the unpacker would write outside the root), not too long."""
    if ".." in name.split("/"):
        raise UsageError(f"{what} {_clip(name)!r} has a '..' component: it would leave the archive root", where=where)
    if len(name.encode()) >= PATH_MAX:
        raise UsageError(f"{what} {_clip(name)!r} is longer than {PATH_MAX - 1} bytes (the kernel's PATH_MAX)", where=where)


def _parse_entry(kind: str, args: list[str], lineno: int, where: str, base: Path) -> ListEntry:
    name = args[0]
    if kind in ("file", "slink"):
        second, rest = args[1], args[2:]
    else:
        second, rest = "", args[1:]
    mode = _number(rest[0], "mode", where, 8, 0o7777)
    uid = _number(rest[1], "uid", where)
    gid = _number(rest[2], "gid", where)
    entry = ListEntry(kind=kind, names=[name], mode=mode, uid=uid, gid=gid, line=lineno, where=where)
    if kind == "file":
        src = Path(second)
        if not src.is_absolute():
            src = base / src
        try:
            st = os.stat(src)
        except OSError as exc:
            raise UsageError(f"file {_clip(name)}: cannot read {_clip(str(src))}: {exc.strerror}", where=where) from None
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"file {_clip(name)}: {_clip(str(src))} is not a regular file", where=where)
        if not os.access(src, os.R_OK):
            raise UsageError(f"file {_clip(name)}: {_clip(str(src))} is not readable", where=where)
        if st.st_size > 0xFFFFFFFF:
            raise UsageError(f"file {_clip(name)}: {_clip(str(src))} is larger than 4 GiB, the newc limit", where=where)
        entry.source = src
        entry.size = st.st_size
        entry.names.extend(rest[3:])
    elif kind == "slink":
        if len(second.encode()) >= PATH_MAX:
            raise UsageError(f"slink {_clip(name)}: target is longer than {PATH_MAX - 1} bytes", where=where)
        entry.target = second
    elif kind == "nod":
        dev_type = rest[3]
        if dev_type not in ("c", "b"):
            raise UsageError(f"device type {_clip(dev_type)!r} must be c (character) or b (block)", where=where)
        entry.dev_type = dev_type
        entry.major = _number(rest[4], "major", where)
        entry.minor = _number(rest[5], "minor", where)
    return entry


def write_archive(entries: list[ListEntry], out: SupportsWrite[bytes], *, mtime: int | None = None) -> int:
    """Write the uncompressed newc archive to `out`; returns the number of bytes written."""
    mtime = _mtime() if mtime is None else mtime
    written = 0
    ino = FIRST_INO

    def put(data: bytes) -> None:
        nonlocal written
        out.write(data)
        written += len(data)

    for e in entries:
        if e.kind == "file":
            nlink = len(e.names)
            for i, name in enumerate(e.names):
                last = i == nlink - 1
                size = e.size if last else 0
                put(build_header(CpioEntry(name.lstrip("/"), stat.S_IFREG | e.mode, e.uid, e.gid, nlink, mtime, size, ino=ino)))
                if last:
                    put_file(e, put)
                    put(bytes(pad4(e.size)))
        elif e.kind == "slink":
            target = e.target.encode()
            put(build_header(CpioEntry(e.names[0].lstrip("/"), stat.S_IFLNK | e.mode, e.uid, e.gid, 1, mtime, len(target), ino=ino)))
            put(target + bytes(pad4(len(target))))
        elif e.kind == "nod":
            bits = stat.S_IFCHR if e.dev_type == "c" else stat.S_IFBLK
            put(build_header(CpioEntry(e.names[0].lstrip("/"), bits | e.mode, e.uid, e.gid, 1, mtime, 0, e.major, e.minor, ino=ino)))
        else:
            nlink = 2 if e.kind == "dir" else 1
            put(build_header(CpioEntry(e.names[0].lstrip("/"), _TYPE_BITS[e.kind] | e.mode, e.uid, e.gid, nlink, mtime, 0, ino=ino)))
        ino += 1
    put(trailer())
    # gen_init_cpio pads the archive to 512 bytes; the kernel skips zero padding.
    put(bytes(pad_to(written, 512)))
    return written


def pad_to(n: int, align: int) -> int:
    return (align - n % align) % align


def put_file(e: ListEntry, put: Callable[[bytes], None]) -> None:
    assert e.source is not None
    left = e.size
    try:
        with open_binary(e.source, error=UsageError) as fh:
            while left:
                chunk = fh.read(min(COPY_CHUNK, left))
                if not chunk:
                    break
                put(chunk)
                left -= len(chunk)
    except OSError as exc:
        raise UsageError(f"file {_clip(e.names[0])}: cannot read {_clip(str(e.source))}: {exc.strerror}", where=e.where) from None
    if left:
        raise UsageError(f"file {_clip(e.names[0])}: {_clip(str(e.source))} shrank while being read", where=e.where)


def _check_compress(compress: str) -> None:
    if compress not in COMPRESSIONS:
        raise UsageError(f"compression {compress!r} is not one of {', '.join(COMPRESSIONS)}")


def _write_compressed(entries: list[ListEntry], out: _Sink, compress: str) -> None:
    if compress == "gzip":
        # mtime=0 and no file name keep the gzip header reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
            write_archive(entries, gz)
    else:
        write_archive(entries, out)


def build_initramfs(list_text_or_path: str | Path, base_dir: str | Path | None = None, compress: str = "gzip") -> bytes:
    """The whole archive as bytes (for small lists; use write_initramfs for large files).

    A str with no newline that names an existing file is read as the list file;
    any other str is list text; a Path is always a list file.
    """
    _check_compress(compress)
    entries = parse_list(list_text_or_path, base_dir)
    buf = io.BytesIO()
    _write_compressed(entries, buf, compress)
    return buf.getvalue()


def write_initramfs(
    list_text_or_path: str | Path, out_path: str | Path, base_dir: str | Path | None = None, compress: str = "gzip"
) -> int:
    """Stream the archive to `out_path` (OUT.part, moved into place at the end; an
    existing regular OUT is replaced, anything else at OUT refused); returns its size."""
    _check_compress(compress)
    entries = parse_list(list_text_or_path, base_dir)
    out = OutputFile(out_path, overwrite=True, what=str(out_path))
    try:
        _write_compressed(entries, out, compress)
        size = out.appended
        out.finish()
    except OSError as exc:
        raise UsageError(f"cannot write {out_path}: {exc.strerror}", where=str(out_path)) from None
    finally:
        out.abort()
    return size
