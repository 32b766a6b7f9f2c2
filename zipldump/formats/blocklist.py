"""Block lists ("segment tables"): data pointers plus a chain slot, spec §6.

A list block holds bs/16 pointers; the last slot chains to the next list block.
Hot path note: list blocks are small (<= 4 KiB), but a large component has
thousands, so parsing uses struct.iter_unpack of the same layout as
BlockPtrStruct instead of construct per slot.
"""

from __future__ import annotations

import struct

from zipldump.formats.blockptr import (
    BLOCKPTR_SIZE,
    MAX_BLOCKCT,
    BlockPtr,
    BlockPtrStruct,
)

_SLOT = struct.Struct(">QHH4x")
assert _SLOT.size == BlockPtrStruct.sizeof()


def slots_per_block(block_size: int) -> int:
    return block_size // BLOCKPTR_SIZE


def data_slots_per_block(block_size: int) -> int:
    """31 for 512-byte blocks, 255 for 4096-byte blocks."""
    return slots_per_block(block_size) - 1


def parse_list_block(data: bytes) -> list[BlockPtr]:
    """All slots of one list block, the chain slot last."""
    return [BlockPtr(b, s, c) for (b, s, c) in _SLOT.iter_unpack(data)]


def build_list_block(pointers: list[BlockPtr], chain_lba: int, block_size: int) -> bytes:
    n = data_slots_per_block(block_size)
    if len(pointers) > n:
        raise ValueError(f"{len(pointers)} pointers exceed {n} data slots")
    out = bytearray(block_size)
    for i, p in enumerate(pointers):
        _SLOT.pack_into(out, i * BLOCKPTR_SIZE, p.blockno, p.size, p.blockct)
    if chain_lba:
        _SLOT.pack_into(out, n * BLOCKPTR_SIZE, chain_lba, block_size, 0)
    return bytes(out)


def compact(blocks: list[int], block_size: int, empty_block: int | None = None) -> list[BlockPtr]:
    """Merge runs of adjacent LBAs into pointers of at most 65536 blocks, as zipl does.

    A 0 in `blocks` is a hole: it becomes its own pointer to `empty_block`,
    never merged (spec §2).
    """
    out: list[BlockPtr] = []
    for lba in blocks:
        if lba == 0:
            if empty_block is None:
                raise ValueError("hole in block list without an empty block")
            out.append(BlockPtr(empty_block, block_size, 0))
            continue
        if out:
            last = out[-1]
            hole_ptr = empty_block is not None and last.blockno == empty_block and last.blockct == 0
            if (
                not hole_ptr
                and last.blockno + last.blockct + 1 == lba
                and last.blockct + 1 <= MAX_BLOCKCT
            ):
                out[-1] = BlockPtr(last.blockno, block_size, last.blockct + 1)
                continue
        out.append(BlockPtr(lba, block_size, 0))
    return out


def split_extents(extents: list[tuple[int, int]], block_size: int) -> list[BlockPtr]:
    """(first LBA, block count) runs -> pointers of at most 65536 blocks each."""
    out: list[BlockPtr] = []
    for start, count in extents:
        while count > 0:
            n = min(count, MAX_BLOCKCT + 1)
            out.append(BlockPtr(start, block_size, n - 1))
            start += n
            count -= n
    return out


def chain_layout(pointers: list[BlockPtr], block_size: int) -> list[list[BlockPtr]]:
    """Split pointers into list blocks in reading order (first list block first).

    zipl fills from the end: every block but the last is full (spec §6.2).
    """
    per = data_slots_per_block(block_size)
    if not pointers:
        return [[]]
    groups = [pointers[i : i + per] for i in range(0, len(pointers), per)]
    return groups
