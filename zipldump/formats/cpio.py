"""cpio "newc" (SVR4, magic 070701) headers, as the Linux initramfs unpacker reads them.

A header is the 6-byte magic and 13 fields of 8 ASCII hex digits (110 bytes),
then the NUL-terminated name padded to a multiple of 4 bytes (counting the
header), then the data padded to a multiple of 4.  The archive ends with an
entry named "TRAILER!!!".  Hard links share an inode number; by convention
the data travels with the last link and the others have size 0.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from construct import Bytes, Const, ConstructError, ExprAdapter, Struct

from zipldump.errors import FormatError

NEWC_MAGIC = b"070701"
HEADER_SIZE = 110
TRAILER_NAME = "TRAILER!!!"


def _hex_decode(obj: bytes, ctx: object) -> int:
    if len(obj) != 8 or any(c not in b"0123456789abcdefABCDEF" for c in obj):
        raise ValueError(f"not 8 hex digits: {obj!r}")
    return int(obj, 16)


def _hex_encode(obj: int, ctx: object) -> bytes:
    if not 0 <= obj <= 0xFFFFFFFF:
        raise ValueError(f"{obj} does not fit 8 hex digits")
    return b"%08X" % obj


Hex8 = ExprAdapter(Bytes(8), _hex_decode, _hex_encode)

NewcHeader = Struct(
    "magic" / Const(NEWC_MAGIC),
    "ino" / Hex8,
    "mode" / Hex8,  # file type bits | permissions
    "uid" / Hex8,
    "gid" / Hex8,
    "nlink" / Hex8,
    "mtime" / Hex8,
    "filesize" / Hex8,
    "devmajor" / Hex8,
    "devminor" / Hex8,
    "rdevmajor" / Hex8,  # device nodes only
    "rdevminor" / Hex8,
    "namesize" / Hex8,  # including the NUL
    "check" / Hex8,  # 0 for newc (070702 "crc" would use it)
)
assert NewcHeader.sizeof() == HEADER_SIZE


def pad4(n: int) -> int:
    return (4 - n % 4) % 4


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    mtime: int = 0
    filesize: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0
    ino: int = 0

    @property
    def kind(self) -> str:
        return {
            stat.S_IFREG: "file",
            stat.S_IFDIR: "dir",
            stat.S_IFLNK: "slink",
            stat.S_IFCHR: "nod",
            stat.S_IFBLK: "nod",
            stat.S_IFIFO: "pipe",
            stat.S_IFSOCK: "sock",
        }.get(stat.S_IFMT(self.mode), "?")


def build_header(entry: CpioEntry) -> bytes:
    """Header + name + padding; the caller writes `entry.filesize` data bytes and pad4 after."""
    name = entry.name.encode() + b"\0"
    hdr: bytes = NewcHeader.build(
        {
            "ino": entry.ino,
            "mode": entry.mode,
            "uid": entry.uid,
            "gid": entry.gid,
            "nlink": entry.nlink,
            "mtime": entry.mtime,
            "filesize": entry.filesize,
            "devmajor": 0,
            "devminor": 0,
            "rdevmajor": entry.rdevmajor,
            "rdevminor": entry.rdevminor,
            "namesize": len(name),
            "check": 0,
        }
    )
    return hdr + name + bytes(pad4(HEADER_SIZE + len(name)))


def trailer() -> bytes:
    return build_header(CpioEntry(name=TRAILER_NAME, mode=0, nlink=1))


# `iter_archive` raises FormatError (exit 20) whose `where` names the byte offset
# of the bad header; the old name stays for callers (no class of its own, so the
# exit-code table keeps one class per code).
CpioFormatError = FormatError


def _bad(message: str, offset: int) -> FormatError:
    return FormatError(message, where=f"cpio offset 0x{offset:x}")


MAX_NAME = 4096  # PATH_MAX: the kernel's unpacker refuses longer names


def iter_archive(stream: BinaryIO, *, with_data: bool = True) -> Iterator[tuple[CpioEntry, bytes]]:
    """Entries of an uncompressed newc archive up to the trailer (data is b"" when not wanted)."""
    offset = 0
    while True:
        raw = stream.read(HEADER_SIZE)
        if len(raw) < HEADER_SIZE:
            raise _bad(f"archive ends without {TRAILER_NAME}", offset)
        try:
            h = NewcHeader.parse(raw)
        except (ConstructError, ValueError) as exc:
            text = str(exc).splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise _bad(f"bad newc header: {text}", offset) from exc
        if not 1 <= h.namesize <= MAX_NAME:
            raise _bad(f"namesize {h.namesize} is not in 1..{MAX_NAME}", offset)
        name_raw = stream.read(h.namesize)
        if len(name_raw) != h.namesize or not name_raw.endswith(b"\0"):
            raise _bad("name not NUL-terminated", offset)
        stream.read(pad4(HEADER_SIZE + h.namesize))
        try:
            name = name_raw[:-1].decode()
        except UnicodeDecodeError as exc:
            raise _bad(f"name is not UTF-8 (byte {exc.start})", offset) from None
        if name == TRAILER_NAME:
            return
        if with_data:
            data = stream.read(h.filesize)
        else:
            stream.seek(h.filesize, 1)
            data = b""  # (was `seek(...) and b""`: 0, not b"", for an empty file)
        if with_data and len(data) != h.filesize:
            raise _bad(f"data of {name!r} truncated ({len(data)} of {h.filesize} bytes)", offset)
        stream.read(pad4(h.filesize))
        yield (
            CpioEntry(name, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.filesize, h.rdevmajor, h.rdevminor, h.ino),
            data,
        )
        offset += HEADER_SIZE + h.namesize + pad4(HEADER_SIZE + h.namesize) + h.filesize + pad4(h.filesize)
