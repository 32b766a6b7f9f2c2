"""One module per CLI command; each exposes register(subparsers).

Shared argparse helpers live here (this package's __init__ is not a command).
"""

from __future__ import annotations

import argparse


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
