"""One module per CLI command; each exposes register(subparsers).

Shared argparse helpers live here (this package's __init__ is not a command).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from zipldump.ui import UI

_DECIMAL = re.compile(r"[0-9]{1,20}", re.ASCII)


def int_arg(lo: int = 0, hi: int = (1 << 64) - 1) -> Callable[[str], int]:
    """argparse type for counts and numbers: ASCII decimal digits only (int() would take
    '１２', ' 12' and '1_2'), in lo..hi."""

    def parse(text: str) -> int:
        if not _DECIMAL.fullmatch(text):
            raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def hsa_size_arg(text: str) -> int:
    """argparse type for --hsa-size, the same in every command: a size, a positive multiple of 4 KiB."""
    value = size_arg(text)
    if value % 4096:
        raise argparse.ArgumentTypeError(f"HSA size {text!r} is not a multiple of 4 KiB")
    return value


def size_arg(text: str) -> int:
    """argparse type for sizes: 2G, 32M, 512 (bytes), 0x2000000."""
    from zipldump.disk.partitions import parse_size
    from zipldump.errors import UsageError

    try:
        value = parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


BLOCK_SIZE_HELP = "logical block size of the disk (default: found from the disk, docs/disk-images.md)"


def add_block_size_arg(p: argparse.ArgumentParser, choices: tuple[int, ...] = (512, 1024, 2048, 4096)) -> None:
    """--block-size as an override; without it the disk says (disk.geometry)."""
    p.add_argument("--block-size", type=int_arg(), default=None, choices=choices, help=BLOCK_SIZE_HELP)


def block_size_of(path: object, given: int | None, ui: UI) -> int:
    """The block size to use for the disk at `path`: `given`, or what the disk says (the reason goes to stderr)."""
    import os

    from zipldump.disk.geometry import detect

    if given is not None or not isinstance(path, (str, os.PathLike)) or not os.path.exists(path):
        return given if given is not None else 512  # nothing to read: the opener names the missing file
    g = detect(path)  # `given` is None here: the override returned above
    # 512 is what every command assumed before (said only when in doubt), and a
    # --json run keeps stderr for problems.
    if g.evidence and g.block_size != 512 and not ui.json_output:
        ui.info(f"block size {g.block_size}: {g.reason}")
    if g.ambiguous:
        ui.warn(f"the block size is not certain ({g.reason}); give --block-size if {g.block_size} is wrong")
    return g.block_size
