"""The one JSON encoder: records and reports -> JSON-ready dicts (no I/O).

A dataclass renders as its fields in declaration order.  A field says how it
renders once, where it is declared, in its metadata: `field(metadata=jmeta("hex64"))`
(a FORMATS name), `jmeta(key="lc_vec_prefix")` (another key), `jmeta(OMIT)`
(left out), `jmeta(skip_none=True)` (left out when None).  A
class whose JSON is not its fields one by one (members computed from
properties, another order, a nested group) declares a small table instead:
`JSON: ClassVar[Table] = (member("ok"), member("source"), ...)`.

Values render recursively: an object with its own `to_json()` through it,
other dataclasses through this encoder, lists and tuples as lists, bytes as
hex.  A format applies to each element of a list and leaves None alone.

The formats are today's output kept byte for byte, inconsistencies included
(hex strings with and without "0x", integers elsewhere); a versioned JSON
contract is to unify them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = "json"  # field metadata: format name (FORMATS) or OMIT
KEY = "json_key"  # field metadata: the member's key, when not the field name
SKIP_NONE = "json_skip_none"  # field metadata: leave the member out when the value is None
OMIT = "omit"

FORMATS: dict[str, Callable[[Any], Any]] = {
    "hex": lambda v: f"{v:#x}",  # 0x1f
    "hex32": lambda v: f"0x{v:08x}",  # 0x0000001f
    "hex64": lambda v: f"0x{v:016x}",
    "x": lambda v: f"{v:x}",  # 1f
    "x32": lambda v: f"{v:08x}",  # 0000001f
    "x64": lambda v: f"{v:016x}",
    "round1": lambda v: round(v, 1),
    "round3": lambda v: round(v, 3),  # seconds
}


def jmeta(fmt: str | None = None, *, key: str | None = None, skip_none: bool = False) -> dict[str, Any]:
    """Field metadata declaring the field's JSON: `field(metadata=jmeta("hex64"))`."""
    meta: dict[str, Any] = {}
    if fmt is not None:
        if fmt != OMIT and fmt not in FORMATS:
            raise ValueError(f"unknown JSON format {fmt!r}")
        meta[JSON] = fmt
    if key is not None:
        meta[KEY] = key
    if skip_none:
        meta[SKIP_NONE] = True
    return meta


@dataclass(frozen=True)
class Member:
    """One member of a class's JSON table: `key` <- attribute (or callable) `get`, formatted by `fmt`."""

    key: str
    get: str | Callable[[Any], Any]
    fmt: str | None = None
    skip_none: bool = False  # leave the member out when its value is None


Table = tuple[Member, ...]


def member(key: str, get: str | Callable[[Any], Any] | None = None, fmt: str | None = None, *, skip_none: bool = False) -> Member:
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown JSON format {fmt!r}")
    return Member(key, key if get is None else get, fmt, skip_none)


_TABLES: dict[type, Table] = {}


def table_of(cls: type) -> Table:
    """The class's JSON table: its declared `JSON`, else one member per field."""
    t = _TABLES.get(cls)
    if t is None:
        declared = cls.__dict__.get("JSON")
        if declared is not None:
            t = tuple(declared)
        else:
            t = tuple(
                Member(f.metadata.get(KEY, f.name), f.name, f.metadata.get(JSON), bool(f.metadata.get(SKIP_NONE)))
                for f in dataclasses.fields(cls)
                if f.metadata.get(JSON) != OMIT
            )
        _TABLES[cls] = t
    return t


def to_json(obj: Any, table: Table | None = None) -> dict[str, Any]:
    """`obj` (a dataclass instance) as a JSON-ready dict, by its class's table or by `table`."""
    out: dict[str, Any] = {}
    for m in table_of(type(obj)) if table is None else table:
        value = getattr(obj, m.get) if isinstance(m.get, str) else m.get(obj)
        if value is None and m.skip_none:
            continue
        out[m.key] = value_json(value if m.fmt is None else _format(FORMATS[m.fmt], value))
    return out


def _format(fmt: Callable[[Any], Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [_format(fmt, v) for v in value]
    return fmt(value)


def value_json(value: Any) -> Any:
    """Any value as JSON-ready data (see the module text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [value_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: value_json(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    own = getattr(value, "to_json", None)
    if callable(own):
        return own()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    return value


class JsonMixin:
    """`.to_json()` for the classes whose callers ask them for it (commands, ui.emit_json)."""

    def to_json(self) -> dict[str, Any]:
        return to_json(self)
