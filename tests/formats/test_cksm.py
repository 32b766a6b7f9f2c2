"""CKSM at memory speed equals the word-by-word end-around-carry sum (formats/dump_superblock.cksm)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zipldump.formats.dump_superblock import CKSM_CHUNK, cksm


def word_by_word(data: bytes, seed: int) -> int:
    """The definition (spec §7.4): 32-bit big-endian words, right-padded, end-around carry after each add."""
    data += bytes(-len(data) % 4)
    total = seed
    for i in range(0, len(data), 4):
        total += int.from_bytes(data[i : i + 4], "big")
        if total >> 32:
            total = (total & 0xFFFFFFFF) + 1
    return total


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([0, 1, 0x12345678, 0xFFFFFFFF]))
def test_cksm_is_the_end_around_carry_sum(data: bytes, seed: int) -> None:
    assert cksm(data, seed) == word_by_word(data, seed)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=3), st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=7))
def test_cksm_across_chunk_boundaries(ragged: int, pattern: bytes, shift: int) -> None:
    data = (pattern * (CKSM_CHUNK // len(pattern) + 2))[shift : 2 * CKSM_CHUNK + ragged + shift]
    assert cksm(data) == word_by_word(data, 0x12345678)


def test_cksm_edge_values() -> None:
    assert cksm(b"", 0) == 0
    assert cksm(b"\xff\xff\xff\xff", 0) == 0xFFFFFFFF  # residue 0, total not 0: all ones, as the carry chain gives
    assert cksm(b"\xff\xff\xff\xff" * 2, 1) == word_by_word(b"\xff\xff\xff\xff" * 2, 1)
    assert cksm(memoryview(bytearray(b"\x00\x00\x00\x01" * 1024))) == 0x12345678 + 1024
