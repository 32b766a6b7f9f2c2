"""BootLoaderSpec entries (type #1 `.conf` files) as zipl reads them.

The rules are s390-tools' zipl/src/scan.c (scan_bls and its helpers), restated
in docs/zipl-conf.md; each has a test in tests/zipl/test_bls.py.  Listing and
reading the directory is the caller's (an image root, or the host for `-b`), so
this module only judges names and bytes.

Every error is a UsageError whose `where` is "FILE" or "FILE:LINE".
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from zipldump.disk.io import open_binary
from zipldump.errors import UsageError
from zipldump.ui import clip as _clip

DEFAULT_BLSDIR = "/boot/loader/entries"  # zipl's ZIPL_DEFAULT_BLSDIR
SUFFIX = ".conf"
MAX_ENTRIES = 256  # more entry files than this are refused (a menu holds 30)
MAX_ENTRY_SIZE = 1 << 20
VERSION = b"version"
BLANKS = b" \t"
# BLS key -> zipl.conf keyword; zipl compares a key with strncmp(keyword, key, len(key)),
# so any non-empty prefix of a keyword ("t", "lin") means that keyword.
KEYWORDS = {"title": "title", "linux": "image", "initrd": "ramdisk", "options": "parameters"}


@dataclass(frozen=True)
class BlsEntry:
    """One entry file: `values` maps zipl keywords (image, ramdisk, parameters) to (value, line)."""

    file: str
    title: str
    title_line: int
    values: dict[str, tuple[str, int]] = field(default_factory=dict)
    version: bytes | None = None


def wanted(name: str) -> bool:
    """zipl's filter: the name ends in ".conf" (".conf" alone too)."""
    return name.endswith(SUFFIX)


def _version(data: bytes) -> bytes | None:
    """zipl's get_version: the first line that compares >= "version" (strcmp), has a
    blank right after the 7th character and something other than blanks after that."""
    for line in data.split(b"\n"):
        if len(line) <= len(VERSION) + 1 or line < VERSION:
            continue
        if line[len(VERSION)] not in BLANKS:
            continue
        off = len(VERSION) + 1
        while off < len(line) - 1 and line[off] in BLANKS:
            off += 1
        if line[off] in BLANKS:
            continue
        return line[off:]
    return None


_S_N, _S_I, _S_F, _S_Z = range(4)  # normal, integer, fraction (leading zero), zeros only


def strverscmp(a: bytes, b: bytes) -> int:
    """glibc's strverscmp(3): digit runs compare as numbers, and a run with leading
    zeros as a fraction (man page: 000 < 00 < 01 < 010 < 09 < 0 < 1 < 9 < 10)."""
    i = 0
    state = _S_N
    while i < len(a) and i < len(b) and a[i] == b[i]:
        c = a[i]
        digit = 0x30 <= c <= 0x39
        if state == _S_N:
            state = (_S_Z if c == 0x30 else _S_I) if digit else _S_N
        elif state == _S_I:
            state = _S_I if digit else _S_N
        elif state == _S_F:
            state = _S_F if digit else _S_N
        else:  # zeros so far
            state = (_S_Z if c == 0x30 else _S_F) if digit else _S_N
        i += 1
    c1 = a[i] if i < len(a) else 0
    c2 = b[i] if i < len(b) else 0
    if c1 == c2:
        return 0
    diff = c1 - c2

    def cls(c: int) -> str:
        return "0" if c == 0x30 else "d" if 0x31 <= c <= 0x39 else "x"

    k1, k2 = cls(c1), cls(c2)
    either_digit = k1 != "x" or k2 != "x"
    if state == _S_N and k1 == "d" and k2 == "d" or state == _S_I and k1 != "x" and k2 != "x":
        return _by_length(a, b, i, diff)
    if state == _S_I and either_digit:
        return -1 if k1 == "x" else 1  # one number goes on: it is the larger
    if state == _S_Z and either_digit and (k1 == "x" or k2 == "x"):
        return 1 if k1 == "x" else -1  # more leading zeros: the smaller fraction
    return diff


def _by_length(a: bytes, b: bytes, i: int, diff: int) -> int:
    """Two integers differing at `i`: the one with more digits is larger, else the first difference."""
    while True:
        d1 = i < len(a) and 0x30 <= a[i] <= 0x39
        d2 = i < len(b) and 0x30 <= b[i] <= 0x39
        if d1 and not d2:
            return 1
        if d2 and not d1:
            return -1
        if not d1:
            return diff
        i += 1


def _parse(name: str, data: bytes) -> BlsEntry:
    """The fields zipl takes from one file (scan_bls_field, sort_bls_fields)."""
    titles = [n for n, line in enumerate(data.split(b"\n"), 1) if line.startswith(b"title")]
    if not titles:
        raise UsageError("no title in the BLS entry", where=name)
    if len(titles) > 1:
        raise UsageError(f"more than one title in the BLS entry (lines {titles[0]} and {titles[1]})", where=name)
    title: tuple[str, int] | None = None
    values: dict[str, tuple[str, int]] = {}
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.lstrip(b" \t\0")
        if not line or line.startswith(b"#"):
            continue
        key_end = 0
        while key_end < len(line) and (chr(line[key_end]).isalnum() and line[key_end] < 0x80 or line[key_end] in b"_-"):
            key_end += 1
        if key_end == len(line) or line[key_end] not in BLANKS:
            raise UsageError(f"incorrect BLS field {_clip(line.decode('utf-8', 'replace'))!r} (KEY VALUE expected)", where=f"{name}:{lineno}")
        key = line[:key_end].decode("ascii")
        try:
            value = line[key_end:].strip(BLANKS).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"BLS field '{key}' is not UTF-8 text", where=f"{name}:{lineno}") from None
        for bls_key, keyword in KEYWORDS.items():
            if not bls_key.startswith(key):
                continue
            if keyword == "title":
                if title is not None:  # a prefix key ("t") is a second heading in zipl
                    raise UsageError(f"more than one title in the BLS entry (lines {title[1]} and {lineno})", where=name)
                title = (value, lineno)
            elif keyword in values:
                raise UsageError(f"BLS key '{key}' given twice (first at line {values[keyword][1]})", where=f"{name}:{lineno}")
            else:
                values[keyword] = (value, lineno)
    if title is None:  # "titlex ..." starts a line with "title" but is no title key
        raise UsageError("no title key in the BLS entry", where=name)
    if not title[0]:
        raise UsageError("the BLS entry's title is empty", where=f"{name}:{title[1]}")
    if "image" not in values or not values["image"][0]:
        raise UsageError("the BLS entry has no linux line (zipl needs one: it becomes image=)", where=name)
    return BlsEntry(name, title[0], title[1], values, _version(data))


def order(files: dict[str, bytes]) -> list[BlsEntry]:
    """Entries in the order zipl appends them as sections: sorted by version (strverscmp)
    when every file has one, else by file name (strverscmp), then taken from the last."""
    if len(files) > MAX_ENTRIES:
        raise UsageError(f"{len(files)} BLS entry files are more than {MAX_ENTRIES}", where="BLS directory")
    parsed = {name: _parse(name, data) for name, data in files.items()}
    base = {name: name.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape") for name in files}

    def by_name(x: str, y: str) -> int:
        return strverscmp(base[x], base[y])

    def by_version(x: str, y: str) -> int:
        return strverscmp(parsed[x].version or b"", parsed[y].version or b"")

    names = sorted(files, key=functools.cmp_to_key(by_name))
    if all(parsed[n].version is not None for n in names):
        # ties (equal versions) keep name order: qsort in zipl leaves them unspecified
        names = sorted(names, key=functools.cmp_to_key(by_version))
    return [parsed[n] for n in reversed(names)]


def host_files(directory: Path) -> dict[str, bytes]:
    """`-b DIR` with a host configuration: the wanted entry files of a host directory (none if it is no directory)."""
    if not directory.is_dir():
        return {}
    names = sorted(n for n in os.listdir(directory) if wanted(n))
    if len(names) > MAX_ENTRIES:
        raise UsageError(f"{len(names)} BLS entry files are more than {MAX_ENTRIES}", where=str(directory))
    out: dict[str, bytes] = {}
    for name in names:
        path = directory / name
        try:
            with open_binary(path, error=UsageError) as fh:
                data = fh.read(MAX_ENTRY_SIZE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read BLS entry: {exc.strerror or exc}", where=str(path)) from None
        if len(data) > MAX_ENTRY_SIZE:
            raise UsageError(f"BLS entry is larger than {MAX_ENTRY_SIZE} bytes", where=str(path))
        out[str(path)] = data
    return out
