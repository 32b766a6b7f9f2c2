"""The dump kernel's command line as the zfcpdump user-space tool reads it.

s390-dump-format.md §7.2 and zipl-scsi-format.md §8.6: the tool splits
/proc/cmdline on blanks, tabs and newlines, splits each token at the first `=`
and looks at the keys it knows (`dump_part`, `dump_dir`, `dump_mode`,
`dump_compress`, `dump_mem`, `dump_debug`).  Tokens without `=` and unknown keys
(`root=`, `possible_cpus=`, ...) are ignored.  A later token overrides an earlier
one.  Problems the original tool only warned about become `warnings` here (the
default is kept); those it failed on raise UsageError naming the token.

Two generations read the line differently (s390-dump-format.md §7.1, §7.6):

- the file-system dumper (zfcpdump 1.x/2.x, zipl `dumptofs=`): every key above,
  `parse_dump_cmdline`;
- the partition dumper (zfcpdump 3.0, zipl `dumpto=`): only `dump_debug`,
  `parse_partition_cmdline`.  zipl 1.24-2.25 put the *partition number* into
  `dump_mem=` (a leftover, zipl-scsi-format.md §13.6); that dumper never looks at
  it, so `dump_mem=1` neither limits nor fails the dump.

`parse_for_generation` picks the parser; sim/scsi_ipl.py decides the generation
from the disk (boot_info) before parsing.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace

from zipldump.errors import UsageError

PAGE_SIZE = 4096
MODES = ("interactive", "auto")
COMPRESS = ("none", "gzip")


@dataclass(frozen=True)
class DumpParams:
    """What the dump tool takes from the kernel command line (defaults as in zfcpdump 2.2)."""

    dump_part: int = 1
    dump_dir: str = "/"
    dump_mode: str = "interactive"
    dump_compress: str = "none"
    dump_mem: int | None = None  # None: all memory
    dump_debug: int = 2
    warnings: tuple[str, ...] = ()
    seen: tuple[str, ...] = field(default=(), repr=False)  # keys given on the line

    @property
    def auto(self) -> bool:
        return self.dump_mode == "auto"

    def for_partition(self) -> DumpParams:
        """The partition tool (zfcpdump 3.0) reads only dump_debug."""
        return replace(self, dump_mem=None)

    def to_json(self) -> dict[str, object]:
        return {
            "dump_part": self.dump_part,
            "dump_dir": self.dump_dir,
            "dump_mode": self.dump_mode,
            "dump_compress": self.dump_compress,
            "dump_mem": self.dump_mem,
            "dump_debug": self.dump_debug,
            "warnings": list(self.warnings),
        }


def parse_c_integer(text: str) -> int | None:
    """strtoll(text, &end, 0) with *end == 0 required: decimal, 0x hex or 0 octal.

    Returns None when the text is not entirely a number.  A leading '+' is
    accepted as strtoll does; a negative value is returned as is (callers refuse it).
    """
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        return None
    # Only digits of the base may follow the prefix: int() would also take a
    # sign, "_" or blanks there, where strtoll stops (and *end != 0).
    if s[:2].lower() == "0x":
        digits, base, allowed = s[2:], 16, "0123456789abcdefABCDEF"
    elif len(s) > 1 and s[0] == "0":
        digits, base, allowed = s[1:], 8, "01234567"
    else:
        digits, base, allowed = s, 10, "0123456789"
    if not digits or len(digits) > 24 or any(c not in allowed for c in digits):
        return None  # more than 24 digits is beyond any u64 (and beyond int()'s 4300-digit limit)
    return sign * int(digits, base)


GENERATIONS = ("partition", "fs")
FS_KEYS = ("dump_part", "dump_dir", "dump_mode", "dump_compress", "dump_mem", "dump_debug")
PARTITION_KEYS = ("dump_debug",)


def cmdline_keys(cmdline: str) -> tuple[str, ...]:
    """The keys of the `key=value` tokens of a command line, in order (no parsing of values)."""
    return tuple(key for key, eq, _ in (t.partition("=") for t in cmdline.split()) if eq)


def parse_for_generation(cmdline: str, generation: str) -> DumpParams:
    """The command line as the dumper of `generation` ("partition" or "fs") reads it."""
    if generation == "partition":
        return parse_partition_cmdline(cmdline)
    if generation == "fs":
        return parse_dump_cmdline(cmdline)
    raise ValueError(f"unknown dumper generation {generation!r}")


def parse_partition_cmdline(cmdline: str) -> DumpParams:
    """The partition dumper's reading (zfcpdump 3.0): `dump_debug` only, every other
    key, `dump_mem=` and `dump_part=` included, is left alone.  Never raises: that
    dumper only warns about a bad dump_debug value."""
    return _parse(cmdline, PARTITION_KEYS)


def parse_dump_cmdline(cmdline: str) -> DumpParams:
    """Parse a kernel command line as the file-system dumper (zfcpdump 2.x) does.
    Raises UsageError for the cases zfcpdump failed on (missing `dump_part`/`dump_mem`
    value, bad numbers)."""
    return _parse(cmdline, FS_KEYS)


def _parse(cmdline: str, keys: tuple[str, ...]) -> DumpParams:
    params = DumpParams()
    warnings: list[str] = []
    seen: list[str] = []
    values: dict[str, object] = {}
    for index, token in enumerate(cmdline.split()):
        key, eq, value = token.partition("=")
        if not eq or key not in keys:
            continue
        where = f"dump kernel command line token {index + 1} '{token}'"
        seen.append(key)
        if key == "dump_dir":
            if not value:
                warnings.append(f"{key} has no value, using '{params.dump_dir}'")
                continue
            # The tool mounts the file system and uses "/mnt/" + value; the path
            # is relative to the file system root either way.
            values[key] = posixpath.normpath("/" + value.strip("/")) if value.strip("/") else "/"
        elif key == "dump_part":
            number = parse_c_integer(value) if value else None
            if number is None or not 1 <= number <= 15:
                # /dev/sda1 ... /dev/sda15 are the nodes the dump initramfs has.
                raise UsageError(f"dump_part needs a partition number 1..15, got '{value}'", where=where)
            values[key] = number
        elif key == "dump_mode":
            if value in MODES:
                values[key] = value
            else:
                warnings.append(f"dump_mode '{value}' is not interactive|auto, using 'interactive'")
                values[key] = "interactive"
        elif key == "dump_compress":
            if value in COMPRESS:
                values[key] = value
                if value == "gzip":
                    warnings.append("dump_compress=gzip applies to the old LKCD output only; the s390 dump format is written uncompressed")
            else:
                warnings.append(f"dump_compress '{value}' is not none|gzip, using 'none'")
                values[key] = "none"
        elif key == "dump_mem":
            number = parse_c_integer(value) if value else None
            if number is None:
                raise UsageError(f"dump_mem needs a byte count (decimal, 0x hex or 0 octal), got '{value}'", where=where)
            if number < PAGE_SIZE:
                raise UsageError(f"dump_mem={value} leaves less than one {PAGE_SIZE}-byte page to dump", where=where)
            values[key] = number
        elif key == "dump_debug":
            number = parse_c_integer(value) if value else None
            if number is None or not 1 <= number <= 6:
                warnings.append(f"dump_debug '{value}' is not 1..6, using 2")
                values[key] = 2
            else:
                values[key] = number
    return replace(params, warnings=tuple(warnings), seen=tuple(seen), **values)  # type: ignore[arg-type]
