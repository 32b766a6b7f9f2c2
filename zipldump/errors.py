"""One exception hierarchy for the whole project.

Every error carries a one-line message that names the place (block, byte offset,
field) and maps to a distinct process exit code.  Only the CLI turns exceptions
into exit codes; library code raises.  The table of exit codes is documented in
docs/exit-codes.md and tested in tests/test_exit_codes.py.

A place is a value (`Place`): code that needs to know where an error lies reads
`exc.place`, never the text; `exc.where` is its rendering (or a plain string
for the sites that pass one).  What went wrong, for code that must react to it
(the firmware model picks QEMU's message), is `FormatError.reason`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from construct import Struct

from zipldump.formats.fields import Record, offset_of


class Form(enum.Enum):
    """The wordings a place is rendered in (each the one its readers have always printed).

    BLOCK       block 0x7fb offset 0x20 (component entry 0) field type
    BLOCK0      block 0 offset 0x70 boot_info field dev_type (offset 0x76)      (the dump tools' block 0)
    BYTE        byte offset 0xf8400 (block 0x7c2 offset 0x0, dump superblock) field magic
    SUPERBLOCK  superblock at byte 0xf8400 offset 0x40 field csum
    """

    BLOCK = "block"
    BLOCK0 = "block0"
    BYTE = "byte"
    SUPERBLOCK = "superblock"


@dataclass(frozen=True)
class Place:
    """Where on a disk (or in a file) something lies.  `str()` is the only rendering.

    `offset` is the byte offset inside block `lba` (or inside `disk` when there
    is no lba); `byte` an offset on the whole disk; `field_offset` the offset of
    the first field inside the structure, taken from its construct declaration
    (`Place.of`, `with_field(name, layout)`), never typed by hand.
    """

    disk: str | None = None  # image path or file name, printed first
    lba: int | None = None
    offset: int | None = None
    byte: int | None = None
    structure: str | None = None
    index: int | None = None  # "component entry 7", "block list slot 0"
    fields: tuple[str, ...] = ()
    field_offset: int | None = None
    via: str | None = None  # how the structure was found: "(from block 0 offset 0x78)"
    form: Form = Form.BLOCK

    def with_field(self, name: str, layout: Struct | type[Record] | None = None) -> Place:
        """The same place, one field deeper; `layout` gives that field's offset inside the structure."""
        fo = offset_of(layout, name) if layout is not None else self.field_offset
        return replace(self, fields=(*self.fields, name), field_offset=fo)

    def __str__(self) -> str:
        out = [self.disk] if self.disk else []
        where = self.structure if self.index is None or self.structure is None else f"{self.structure} {self.index}"
        names = [f"field {f}" for f in self.fields]
        if self.form is Form.BLOCK:
            out.append(f"block {self.lba:#x}")
            if self.offset is not None:
                out.append(f"offset {self.offset:#x}")
            if where:
                out.append(f"({where})")
            out += names
        elif self.form is Form.BLOCK0:
            out.append(f"block {self.lba}")
            if self.offset is not None:
                out.append(f"offset {self.offset:#x}")
            if where:
                out.append(where)
            out += names
            if self.field_offset:  # a field not at the structure's start gets its own offset
                out.append(f"(offset {(self.offset or 0) + self.field_offset:#x})")
        elif self.form is Form.BYTE:
            if where is None:
                out.append(f"byte {self.byte:#x}")
            else:
                inside = f"block {self.lba:#x} offset {self.offset:#x}, " if self.lba is not None else ""
                out.append(f"byte offset {self.byte:#x} ({inside}{where})")
            out += names
        else:  # Form.SUPERBLOCK
            out.append(f"superblock at byte {self.byte:#x}")
            if self.via:
                out.append(f"(from {self.via})")
            if self.field_offset is not None:
                out.append(f"offset {self.field_offset:#x}")
            out += names
        return " ".join(out)


class Reason(enum.Enum):
    """Why a reader refused on-disk bytes: what callers with their own wording key on."""

    DISK_TOO_SMALL = "disk-too-small"
    BOOT_RECORD_MAGIC = "boot-record-magic"
    NO_PROGRAM_TABLE = "no-program-table"
    BAD_PROGRAM_TABLE_POINTER = "bad-program-table-pointer"
    PROGRAM_TABLE_MAGIC = "program-table-magic"
    BAD_PROGRAM_TABLE_ENTRY = "bad-program-table-entry"
    EMPTY_PROGRAM_TABLE = "empty-program-table"
    COMPONENT_TABLE_OUTSIDE_DISK = "component-table-outside-disk"
    COMPONENT_TABLE_MAGIC = "component-table-magic"
    NO_EXECUTE = "no-execute"
    NO_BLOCK_LIST = "no-block-list"
    BAD_BLOCK_LIST_POINTER = "bad-block-list-pointer"
    LIST_BLOCK_OUTSIDE_DISK = "list-block-outside-disk"
    BAD_DATA_SLOT = "bad-data-slot"
    BAD_CHAIN_SLOT = "bad-chain-slot"
    COMPONENT_TOO_LONG = "component-too-long"
    BLOCK_LIST_LOOP = "block-list-loop"
    TOO_MANY_LIST_BLOCKS = "too-many-list-blocks"
    DATA_OUTSIDE_DISK = "data-outside-disk"
    # the dump-partition chain
    BOOT_INFO_MAGIC = "boot-info-magic"
    BOOT_INFO_DEV_TYPE = "boot-info-dev-type"
    BOOT_INFO_BP_TYPE = "boot-info-bp-type"
    BOOT_INFO_VERSION = "boot-info-version"
    SUPERBLOCK_OUTSIDE_DISK = "superblock-outside-disk"
    SUPERBLOCK_MAGIC = "superblock-magic"
    CHECKSUM_RANGE_OUTSIDE_DISK = "checksum-range-outside-disk"


class ZiplDumpError(Exception):
    """Base class.  `exit_code` is the process exit status the CLI uses.

    `where` is a Place (kept in `.place`) or, for sites not converted yet, a
    plain string; `.where` is always the text.  `errno` is the errno a modelled
    kernel interface would return (sim/zcore.py), else None.
    """

    exit_code = 1
    kind = "error"
    errno: int | None = None  # the errno the simulated kernel would return (sim/zcore.py, sim/sclp.py)

    def __init__(self, message: str, *, where: Place | str | None = None, errno: int | None = None) -> None:
        self.message = message
        self.place: Place | None = where if isinstance(where, Place) else None
        self.where: str | None = None if where is None else str(where)
        self.errno = errno
        super().__init__(f"{self.where}: {message}" if self.where else message)


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
    """On-disk bytes do not follow the format; `reason` says which rule (None: not classified)."""

    exit_code = 20
    kind = "format"

    def __init__(
        self, message: str, *, where: Place | str | None = None, reason: Reason | None = None, errno: int | None = None
    ) -> None:
        super().__init__(message, where=where, errno=errno)
        self.reason = reason


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
    """The firmware loader refused the disk, or the loaded program cannot start.

    `firmware_message` is the s390-ccw text alone (without the reader's detail),
    when the refusal has one; `reason` the reader's, when a reader refused.
    """

    exit_code = 30
    kind = "ipl"
    firmware_message: str | None = None  # the QEMU s390-ccw text alone, without the reader's detail

    def __init__(
        self,
        message: str,
        *,
        where: Place | str | None = None,
        firmware_message: str | None = None,
        reason: Reason | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(message, where=where, errno=errno)
        self.firmware_message = firmware_message
        self.reason = reason


class KernelImageError(IplError):
    exit_code = 31
    kind = "kernel-image"


class SclpError(IplError):
    exit_code = 32
    kind = "sclp"


class StaleBootmapError(FormatError):
    """The boot record's block lists reach file-system blocks no file owns: the bootmap was
    deleted or replaced, and the next write to the file system may reuse those blocks."""

    exit_code = 27
    kind = "stale-bootmap"


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
