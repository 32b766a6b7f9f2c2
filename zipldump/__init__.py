"""zipldump: zipl SCSI IPL and dump disks for IBM Z, in Python.

The public API (docs/api.md) is zipldump.api; its names are re-exported here
lazily, so `import zipldump` loads nothing else until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from zipldump.api import GetDumpResult, Progress, dump_info, from_zipl_conf, get_dump, inspect, install, install_job, ipl
    from zipldump.errors import ZiplDumpError

__all__ = [
    "GetDumpResult", "Progress", "ZiplDumpError", "__version__",
    "dump_info", "from_zipl_conf", "get_dump", "inspect", "install", "install_job", "ipl",
]
_API = frozenset(__all__) - {"ZiplDumpError", "__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from zipldump import api

        return getattr(api, name)
    if name == "ZiplDumpError":
        from zipldump.errors import ZiplDumpError

        return ZiplDumpError
    raise AttributeError(f"module 'zipldump' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
