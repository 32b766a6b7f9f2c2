"""Program table: "zIPL" + 31 block pointers to component tables, spec §4.

Always 512 bytes written, even on 4 KiB disks (the rest of the block is not
zipl's and may hold anything).
"""

from __future__ import annotations

from construct import Array, Const, Padding, Struct

from zipldump.formats.blockptr import BlockPtrStruct
from zipldump.formats.bootrecord import ZIPL_MAGIC

PROGRAM_TABLE_SIZE = 512
PROGRAM_TABLE_ENTRIES = 31  # entry 0 is the default; 1..30 menu positions

ProgramTable = Struct(
    "magic" / Const(ZIPL_MAGIC),
    Padding(12),  # version (0) and unused
    "entries" / Array(PROGRAM_TABLE_ENTRIES, BlockPtrStruct),
)
assert ProgramTable.sizeof() == PROGRAM_TABLE_SIZE


def build_program_table(component_table_blocks: dict[int, int], block_size: int) -> bytes:
    """`component_table_blocks` maps entry index -> LBA of that program's component table."""
    entries = []
    for i in range(PROGRAM_TABLE_ENTRIES):
        lba = component_table_blocks.get(i, 0)
        entries.append({"blockno": lba, "size": block_size if lba else 0, "blockct": 0})
    return bytes(ProgramTable.build({"entries": entries}))
