"""SCSI linear block pointer (16 bytes), spec zipl-scsi-format.md §2."""

from __future__ import annotations

from dataclasses import dataclass

from construct import Int16ub, Int64ub, Padding, Struct

from zipldump.formats.fields import Record

BLOCKPTR_SIZE = 16
# Largest blockct zipl writes after merging: one pointer covers at most 65536 blocks.
MAX_BLOCKCT = 0xFFFF

BlockPtrStruct = Struct(
    "blockno" / Int64ub,  # absolute LBA; 0 = no pointer / end of list
    "size" / Int16ub,  # logical block size in bytes
    "blockct" / Int16ub,  # number of ADDITIONAL blocks (covers blockct + 1)
    Padding(4),
)
assert BlockPtrStruct.sizeof() == BLOCKPTR_SIZE


@dataclass(frozen=True)
class BlockPtr(Record):
    LAYOUT = BlockPtrStruct

    blockno: int
    size: int
    blockct: int = 0

    @property
    def nblocks(self) -> int:
        return self.blockct + 1

    @property
    def is_null(self) -> bool:
        return self.blockno == 0

    @classmethod
    def null(cls) -> BlockPtr:
        return cls(0, 0, 0)
