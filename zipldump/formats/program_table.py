"""Program table: "zIPL" + 31 block pointers to component tables, spec §4.

Always 512 bytes written, even on 4 KiB disks (the rest of the block is not
zipl's and may hold anything).
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Array, Const, Padding, Struct

from zipldump.formats.blockptr import BlockPtr, BlockPtrStruct
from zipldump.formats.bootrecord import ZIPL_MAGIC
from zipldump.formats.fields import Record, context

PROGRAM_TABLE_SIZE = 512
PROGRAM_TABLE_ENTRIES = 31  # entry 0 is the default; 1..30 menu positions

ProgramTableStruct = Struct(
    "magic" / Const(ZIPL_MAGIC),
    Padding(12),  # version (0) and unused
    "entries" / Array(PROGRAM_TABLE_ENTRIES, BlockPtrStruct),
)
assert ProgramTableStruct.sizeof() == PROGRAM_TABLE_SIZE


@dataclass(frozen=True)
class ProgramTable(Record):
    """The 31 entries, null ones included; `lba` is the block it was read from."""

    LAYOUT = ProgramTableStruct

    entries: tuple[BlockPtr, ...]
    lba: int = context()

    def valid(self) -> list[tuple[int, BlockPtr]]:
        """(index, pointer) of the non-empty slots; index 0 is the default."""
        return [(i, p) for i, p in enumerate(self.entries) if not p.is_null]


def build_program_table(component_table_blocks: dict[int, int], block_size: int) -> bytes:
    """`component_table_blocks` maps entry index -> LBA of that program's component table."""
    lbas = [component_table_blocks.get(i, 0) for i in range(PROGRAM_TABLE_ENTRIES)]
    return ProgramTable(tuple(BlockPtr(lba, block_size if lba else 0, 0) for lba in lbas)).build()
