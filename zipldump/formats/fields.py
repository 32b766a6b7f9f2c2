"""Helpers over construct declarations (no I/O): field offsets, and typed records.

A `Record` is the one typed form of one construct Struct (its `LAYOUT`): a
frozen dataclass with one field per named, non-constant layout field, same
name, same order.  `parse` and `build` go through the Struct, so the layout is
declared once; a field whose annotation names another Record (or a tuple of
them, or a union holding one) is that record nested.  Fields marked
`context()` are facts about where a record was read (its block, its index);
they are not bytes of the layout and are given to `parse` as keywords.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from construct import Const, Container, Struct

CONTEXT = "context"


def offset_of(layout: Struct | type[Record], name: str) -> int:
    """Byte offset of field `name` in a fixed-size construct Struct (or a Record's LAYOUT)."""
    if isinstance(layout, type) and issubclass(layout, Record):
        layout = layout.LAYOUT
    off = 0
    for sub in layout.subcons:
        if sub.name == name:
            return off
        off += sub.sizeof()
    raise KeyError(f"no field {name!r} in the layout")


def context(default: Any = 0, **kw: Any) -> Any:
    """A record field that is not in the layout: where the record was read (keyword-only)."""
    meta = {CONTEXT: True, **kw.pop("metadata", {})}
    return dataclasses.field(default=default, kw_only=True, metadata=meta, **kw)


def layout_names(layout: Struct) -> tuple[str, ...]:
    """The named, non-constant fields of a Struct, in order: a Record's layout fields."""
    return tuple(sc.name for sc in layout.subcons if sc.name and not isinstance(sc.subcon, Const))


@dataclass(frozen=True)
class Record:
    """Base of the formats/ records; a subclass sets LAYOUT (see the module text)."""

    LAYOUT: ClassVar[Struct]

    @classmethod
    def sizeof(cls) -> int:
        return int(cls.LAYOUT.sizeof())

    @classmethod
    def offset_of(cls, name: str) -> int:
        return offset_of(cls.LAYOUT, name)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, **where: Any) -> Self:
        """Decode the layout from the start of `data` (construct's errors on short or bad bytes)."""
        return cls.from_container(cls.LAYOUT.parse(bytes(data[: cls.sizeof()])), **where)

    @classmethod
    def from_container(cls, c: Mapping[str, Any], **where: Any) -> Self:
        hints = _hints(cls)
        values = {name: _decode(c[name], hints[name]) for name in _layout_fields(cls)}
        return cls(**values, **where)

    def to_container(self) -> dict[str, Any]:
        """The layout fields as construct builds them (nested records as dicts)."""
        return {name: _encode(getattr(self, name)) for name in _layout_fields(type(self))}

    def build(self) -> bytes:
        return bytes(self.LAYOUT.build(self.to_container()))


_FIELDS: dict[type, tuple[str, ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _layout_fields(cls: type[Record]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get(CONTEXT))
        assert names == layout_names(cls.LAYOUT), f"{cls.__name__}: fields {names} != layout {layout_names(cls.LAYOUT)}"
        _FIELDS[cls] = names
    return names


def _hints(cls: type[Record]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _record_in(hint: Any) -> type[Record] | None:
    """The Record class a field annotation names (directly, as tuple[R, ...], or in a union)."""
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint
    if typing.get_origin(hint) in (tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found = _record_in(arg)
            if found is not None:
                return found
    return None


def _decode(value: Any, hint: Any) -> Any:
    if isinstance(value, list):  # ListContainer
        return tuple(_decode(v, hint) for v in value)
    if isinstance(value, Container):
        rec = _record_in(hint)
        assert rec is not None, f"no record for {hint!r}"
        return rec.from_container(value)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_container()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value
