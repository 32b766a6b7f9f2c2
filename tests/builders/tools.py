"""Which external programs the tests can use."""

from __future__ import annotations

import os


def have_tool(name: str) -> bool:
    """True when an external program is on PATH (e2fsprogs live in /sbin on Debian)."""
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/sbin", "/usr/sbin"]:
        if os.access(os.path.join(d, name), os.X_OK):
            return True
    return False
