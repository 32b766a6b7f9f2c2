"""What to install: ProgramSpec (one boot program) and InstallJob (the whole request).

A job has one target: a raw dump partition (`dumpto`, zfcpdump >= 1.24 design), or a
bootmap file in an ext2/3/4 file system (`target` for IPL programs, `dumptofs` for the
old file-system dump design).  A bootmap file may hold a menu of programs at
positions 1..30; position 0 of the program table is then a copy of the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from zipldump.disk.io import describe_mode
from zipldump.errors import UsageError

KINDS = ("ipl", "dump", "dumptofs")
MODES = ("dumpto", "target", "dumptofs")
MAX_MENU_POSITION = 30  # SCSI program table: entries 1..30, 0 is the default copy
DEFAULT_HSA_SIZE = 32 << 20  # HSA of z10..z14; SCSI dump tools must load below it (spec §8.5)


@dataclass
class ProgramSpec:
    """One boot program.  `kind`: "ipl", "dump" (raw dump partition) or "dumptofs"."""

    name: str
    kind: str
    image: Path
    ramdisk: Path | None = None
    parameters: str | None = None
    # dumptofs: partition number of the dump file system (dump_part=) and an optional
    # size limit (dump_mem=); the user's own dump_dir=/dump_mode= go in `parameters`.
    # dump: the dump partition (only the zipl 2.16 parmline shows it, as "dump_mem=").
    dump_partition: int | None = None
    dump_mem: int | None = None
    # Optional explicit load addresses (zipl.conf "file,ADDRESS"); None = zipl's placement.
    image_address: int | None = None
    parm_address: int | None = None
    ramdisk_address: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown program kind {self.kind!r} (use one of {', '.join(KINDS)})", where=self.name)
        self.image = Path(self.image)
        if self.ramdisk is not None:
            self.ramdisk = Path(self.ramdisk)

    @property
    def is_dump(self) -> bool:
        """Loaded by a 'SCSI dump' IPL: component header DUMP, HSA limit applies."""
        return self.kind in ("dump", "dumptofs")


@dataclass
class InstallJob:
    """The whole install request.

    `mode` says where the bootmap goes: "dumpto" (raw tail of partition
    `partition`), "target" or "dumptofs" (file `bootmap_dir`/bootmap in the ext2/3/4
    file system of partition `partition`; 0 = file system on the whole unpartitioned disk).
    `programs` maps menu position -> program; a single program sits at position 0.
    `stage3` is a stage3.bin file (zipl's loader layout) or None (direct layout).
    """

    image_path: Path
    mode: str
    partition: int
    programs: dict[int, ProgramSpec]
    default_position: int = 0
    block_size: int = 512
    stage3: Path | None = None
    hsa_size: int = DEFAULT_HSA_SIZE
    dry_run: bool = False
    assume_yes: bool = False
    verify: bool = True
    # Explicit partition-relative bootmap start (blocks) for --dumpto, instead of the
    # zipl estimate (spec §13 uses this to stay tiny).  None = zipl's §7.3 rule.
    bootmap_start: int | None = None
    # The >= 0x10438-byte and S390EP checks on kernel files (off only for the §13 example).
    check_kernel: bool = True
    # None = current zipl's bytes; "2.16" = what zipl 1.24-2.17 (verified: 2.16) writes.
    compat: str | None = None
    # Directory of the bootmap file inside the file system (zipl's target=DIR): the
    # bootmap is DIR/bootmap.  "/" for --target PARTNUM.
    bootmap_dir: str = "/"
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        if self.stage3 is not None:
            self.stage3 = Path(self.stage3)
        self.validate()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown install mode {self.mode!r}", where="mode")
        if not self.programs:
            raise UsageError("nothing to install: no program given", where=str(self.image_path))
        if self.hsa_size <= 0 or self.hsa_size % 0x1000:
            raise UsageError(f"HSA size {self.hsa_size:#x} must be a positive multiple of 4 KiB", where="--hsa-size")
        if not self.bootmap_dir.startswith("/") or any(c in ("", ".", "..") for c in self.bootmap_dir.strip("/").split("/") if self.bootmap_dir != "/"):
            raise UsageError(f"bootmap directory {self.bootmap_dir!r} must be an absolute path without . or ..", where="target")
        if self.partition < 0:
            raise UsageError(f"partition number {self.partition} is negative", where=f"--{self.mode}")
        if self.mode == "dumpto":
            if len(self.programs) != 1 or 0 not in self.programs:
                raise UsageError("a SCSI dump program is always alone in program-table entry 0; menus are not possible with --dumpto", where="--dumpto")
            if self.programs[0].kind != "dump":
                raise UsageError(f"--dumpto needs a dump program, got kind {self.programs[0].kind!r}", where=self.programs[0].name)
            if self.programs[0].dump_partition is None:
                self.programs[0].dump_partition = self.partition
            if self.partition == 0:
                raise UsageError("dump device is not a partition: --dumpto needs a partition number >= 1", where="--dumpto")
        else:
            for prog in self.programs.values():
                if prog.kind == "dump":
                    raise UsageError(f"program {prog.name!r} of kind 'dump' needs --dumpto (raw partition)", where=prog.name)
            positions = sorted(self.programs)
            if len(positions) > 1 or positions != [0]:
                for pos in positions:
                    if not 1 <= pos <= MAX_MENU_POSITION:
                        raise UsageError(
                            f"position {pos} in the menu exceeds the maximum for SCSI devices ({MAX_MENU_POSITION})"
                            if pos > MAX_MENU_POSITION
                            else f"menu position {pos} is not allowed (1..{MAX_MENU_POSITION}; 0 is the default copy)",
                            where=self.programs[pos].name,
                        )
                if self.default_position not in self.programs:
                    raise UsageError(f"default position {self.default_position} has no program in the menu", where="default")
            else:
                self.default_position = 0
        for prog in self.programs.values():
            if prog.kind == "dumptofs" and prog.dump_partition is None:
                prog.dump_partition = self.partition if self.mode == "dumptofs" else None
            if prog.kind == "dumptofs" and not prog.dump_partition:
                raise UsageError(f"dumptofs program {prog.name!r} needs a dump partition number >= 1", where=prog.name)

    def input_files(self) -> list[tuple[str, Path]]:
        """(what, path) of every file the job reads, for the existence checks."""
        out: list[tuple[str, Path]] = []
        if self.stage3 is not None:
            out.append(("stage3 loader", self.stage3))
        for prog in self.programs.values():
            out.append((f"kernel image of {prog.name!r}", prog.image))
            if prog.ramdisk is not None:
                out.append((f"initial ramdisk of {prog.name!r}", prog.ramdisk))
        return out

    def check_input_files(self) -> None:
        for what, path in self.input_files():
            if not path.is_file():
                kind = describe_mode(path.stat().st_mode) if path.exists() else "missing"
                raise UsageError(f"{what} is not a readable file ({kind})", where=str(path))
            if not os.access(path, os.R_OK):
                raise UsageError(f"{what} is not readable (permission denied)", where=str(path))
