"""Shared fixtures.

`tmp_image(size, *, name="disk.img", fill=None)` makes a sparse image file under
tmp_path (zero-filled, or filled with a repeating byte pattern when `fill` is
given) and returns its Path.  Helpers that are not fixtures live in tests/builders/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def tmp_image(tmp_path: Path) -> Callable[..., Path]:
    def make(size: int, *, name: str = "disk.img", fill: bytes | None = None) -> Path:
        path = tmp_path / name
        with open(path, "wb") as fh:
            if fill:
                chunk = fill * max(1, (1 << 20) // len(fill))  # whole repeats: the pattern stays aligned
                left = size
                while left:
                    n = min(left, len(chunk))
                    fh.write(chunk[:n])
                    left -= n
            else:
                fh.truncate(size)
        return path

    return make

