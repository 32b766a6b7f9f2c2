"""One exception hierarchy for the whole project.

Every error carries a one-line message that names the place (block, byte offset,
field) and maps to a distinct process exit code.  Only the CLI turns exceptions
into exit codes; library code raises.  The table of exit codes is documented in
docs/exit-codes.md and tested in tests/test_exit_codes.py.
"""

from __future__ import annotations


class ZiplDumpError(Exception):
    """Base class.  `exit_code` is the process exit status the CLI uses."""

    exit_code = 1
    kind = "error"
    errno: int | None = None  # the errno the simulated kernel would return (sim/zcore.py, sim/sclp.py)

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


# --- usage and environment -------------------------------------------------
class UsageError(ZiplDumpError):
    """Bad command line or configuration (zipl.conf, list files)."""

    exit_code = 2
    kind = "usage"


class DiskError(ZiplDumpError):
    """The disk image or device cannot be opened, read or written."""

    exit_code = 3
    kind = "disk"


class LockError(DiskError):
    """Another zipldump process holds the image."""

    exit_code = 4
    kind = "lock"


class ToolMissingError(ZiplDumpError):
    """An external program (mke2fs, qemu-system-s390x, ...) is not installed."""

    exit_code = 5
    kind = "tool-missing"


class AbortedError(ZiplDumpError):
    """The operator answered 'no' at a confirmation prompt."""

    exit_code = 6
    kind = "aborted"


# --- installing -------------------------------------------------------------
class LayoutError(ZiplDumpError):
    """The requested program cannot be laid out (overlap, HSA limit, too small)."""

    exit_code = 10
    kind = "layout"


class HsaLimitError(LayoutError):
    """A dump-program component would end above the HSA limit."""

    exit_code = 11
    kind = "hsa-limit"


class PartitionTooSmallError(LayoutError):
    exit_code = 12
    kind = "partition-too-small"


# --- reading / inspecting (one code per class of on-disk failure) -----------
class FormatError(ZiplDumpError):
    """On-disk bytes do not follow the format."""

    exit_code = 20
    kind = "format"


class MagicError(FormatError):
    exit_code = 21
    kind = "bad-magic"


class PointerError(FormatError):
    """A block pointer points outside the disk or has a wrong size field."""

    exit_code = 22
    kind = "bad-pointer"


class BlockListLoopError(FormatError):
    exit_code = 23
    kind = "block-list-loop"


class ChecksumError(FormatError):
    exit_code = 24
    kind = "bad-checksum"


class ComponentError(FormatError):
    """Missing EXECUTE, overlapping components, bad PSW."""

    exit_code = 25
    kind = "bad-component"


class SuperblockError(FormatError):
    """boot_info or the dump superblock disagree with the disk or its partition table."""

    exit_code = 26
    kind = "bad-superblock"


# --- IPL simulation ----------------------------------------------------------
class IplError(ZiplDumpError):
    """The firmware loader refused the disk, or the loaded program cannot start."""

    exit_code = 30
    kind = "ipl"
    firmware_message: str | None = None  # the QEMU s390-ccw text alone, without the reader's detail


class KernelImageError(IplError):
    exit_code = 31
    kind = "kernel-image"


class SclpError(IplError):
    exit_code = 32
    kind = "sclp"


# --- dumps ---------------------------------------------------------------------
class DumpError(ZiplDumpError):
    exit_code = 40
    kind = "dump"


class IncompleteDumpError(DumpError):
    """No valid end marker: the dump was not completed (zgetdump -i says exit 1)."""

    exit_code = 41
    kind = "dump-incomplete"


class DumpSpaceError(DumpError):
    """The dump does not fit the partition or the file system."""

    exit_code = 42
    kind = "dump-no-space"


class DumpTargetChangedError(DumpError):
    """The dump partition's superblock or checksum no longer matches."""

    exit_code = 43
    kind = "dump-target-changed"


class DumpChangedError(DumpError):
    """The dump changed while it was read (a writer ran during the copy): the copy may mix two dumps."""

    exit_code = 45
    kind = "dump-changed"


class VerifyError(DumpError):
    """--verify found a difference between the dump and the crashed system."""

    exit_code = 44
    kind = "verify-mismatch"


class QemuBootError(ZiplDumpError):
    """qemu-system-s390x did not print the expected text."""

    exit_code = 50
    kind = "qemu-boot"


class QemuDumpProgramError(QemuBootError):
    """The image holds a dump program, which the s390-ccw firmware refuses by design."""

    exit_code = 51
    kind = "qemu-dump-program"


class InternalError(ZiplDumpError):
    """A bug in zipldump itself: an exception no check anticipated.

    The CLI reports it in one line (set ZIPLDUMP_DEBUG=1 for the traceback).
    """

    exit_code = 70
    kind = "internal"


def all_error_classes() -> list[type[ZiplDumpError]]:
    """Every class of the hierarchy (for the exit-code table and its test)."""
    out: list[type[ZiplDumpError]] = []
    todo: list[type[ZiplDumpError]] = [ZiplDumpError]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out
