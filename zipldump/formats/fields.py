"""Helpers over construct declarations (no I/O): field offsets for hot paths."""

from __future__ import annotations

from construct import Struct


def offset_of(layout: Struct, name: str) -> int:
    """Byte offset of field `name` in a fixed-size construct Struct."""
    off = 0
    for sub in layout.subcons:
        if sub.name == name:
            return off
        off += sub.sizeof()
    raise KeyError(f"no field {name!r} in the layout")
