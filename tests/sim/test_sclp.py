"""SCLP SDIAS model: SCCB layout, size query, block copies, status codes."""

from __future__ import annotations

import pytest

from zipldump.errors import SclpError
from zipldump.sim.crashed import generate
from zipldump.sim.machine import Machine
from zipldump.sim.sclp import (
    SCLP_CMDW_READ_EVENT_DATA,
    SCLP_CMDW_WRITE_EVENT_DATA,
    SDIAS_EQ_SIZE,
    SDIAS_EQ_STORE_DATA,
    Sdias,
    build_sccb,
    parse_sccb,
)

MiB = 1 << 20
HSA = 8 * MiB
DEST = 0x100000


@pytest.fixture
def machine() -> Machine:
    m = Machine(generate(32 * MiB, 2, seed=3), HSA)
    m.dump_ipl()
    return m


def hsa_bytes(m: Machine, off: int, n: int) -> bytes:
    buf = bytearray(n)
    m.hsa.readinto(off, memoryview(buf))
    return bytes(buf)


def test_sccb_layout_matches_spec_offsets():
    s = build_sccb(event_qual=SDIAS_EQ_STORE_DATA, blk_cnt=3, asa=0x1122334455667788, fbn=0x99AABBCC)
    assert len(s) == 68
    assert s[0x00:0x02] == b"\x00\x44"  # length 68
    assert s[0x08:0x0A] == b"\x00\x3c"  # evbuf length 60
    assert s[0x0A] == 0x1C and s[0x0E] == 0 and s[0x0F] == 0
    assert s[0x18:0x1C] == (4712).to_bytes(4, "big")
    assert s[0x1E] == 1  # asa_size 64-bit
    assert s[0x24:0x28] == b"\x00\x00\x00\x03"
    assert s[0x28:0x30] == bytes.fromhex("1122334455667788")
    assert s[0x34:0x38] == bytes.fromhex("99AABBCC")
    assert s[0x3C:0x40] == bytes(4)  # lbn
    assert s[0x42:0x44] == b"\x00\x01"  # dbs
    assert build_sccb(event_qual=SDIAS_EQ_SIZE)[0x0E] == 1


def test_size_query_and_hsa_size(machine: Machine):
    sd = Sdias(machine)
    assert sd.blk_count() == HSA // 4096 + 1  # +1 quirk (§5.7)
    assert sd.hsa_size() == HSA


def test_block_copy_maps_page_to_block_plus_two(machine: Machine):
    sd = Sdias(machine)
    assert sd.copy(DEST, 2) == 1
    assert machine.storage.read(DEST, 4096) == hsa_bytes(machine, 0, 4096)
    assert sd.copy(DEST, 3) == 1  # absolute 0x1200 lives in block 3 (§9)
    assert machine.storage.read(DEST + 0x200, 512) == machine.storage.read(0x1200, 512)
    last = HSA // 4096 + 1
    assert sd.copy(DEST, last, 1) == 1
    assert machine.storage.read(DEST, 4096) == hsa_bytes(machine, HSA - 4096, 4096)
    assert sd.copy(DEST, 10, 4) == 4
    assert machine.storage.read(DEST, 4 * 4096) == hsa_bytes(machine, 8 * 4096, 4 * 4096)


def test_block_one_reads_as_zeros(machine: Machine):
    sd = Sdias(machine)
    machine.storage.write(DEST, b"\xff" * 8192)
    assert sd.copy(DEST, 1, 2) == 2
    assert machine.storage.read(DEST, 4096) == bytes(4096)
    assert machine.storage.read(DEST + 4096, 4096) == hsa_bytes(machine, 0, 4096)


def test_partial_store_past_the_end(machine: Machine):
    sd = Sdias(machine)
    last = HSA // 4096 + 1
    sccb = build_sccb(event_qual=SDIAS_EQ_STORE_DATA, blk_cnt=4, asa=DEST, fbn=last - 1)
    sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, sccb)
    r = parse_sccb(sccb)
    assert (r["response_code"], r["event_status"], r["blk_cnt"], r["ev_flags"]) == (0x20, 0x10, 2, 0x80)
    assert sd.copy(DEST, last - 1, 4) == 2  # PART_STORED counts as success (§6.4)


@pytest.mark.parametrize("fbn,nr", [(HSA // 4096 + 2, 1), (0, 1), (5, 0)])
def test_out_of_range_and_bad_count_give_no_data(machine: Machine, fbn: int, nr: int):
    sd = Sdias(machine)
    sccb = build_sccb(event_qual=SDIAS_EQ_STORE_DATA, blk_cnt=nr, asa=DEST, fbn=fbn)
    sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, sccb)
    r = parse_sccb(sccb)
    assert (r["response_code"], r["event_status"], r["blk_cnt"]) == (0x20, 0x03, 0)
    with pytest.raises(SclpError, match="no data") as ei:
        sd.copy(DEST, fbn, nr)
    assert ei.value.where == f"SDIAS block {fbn}"


def test_destination_outside_storage(machine: Machine):
    with pytest.raises(SclpError):
        Sdias(machine).copy(machine.storage.size - 4096, 2, 2)


def test_after_release(machine: Machine):
    sd = Sdias(machine)
    sd.release()
    assert sd.blk_count() == 0 and sd.hsa_size() == 0
    with pytest.raises(SclpError):
        sd.copy(DEST, 2)


def test_no_dump_ipl_means_no_hsa():
    m = Machine(generate(32 * MiB, 1), HSA)
    assert Sdias(m).blk_count() == 0


def test_response_codes_for_malformed_requests(machine: Machine):
    sd = Sdias(machine)
    s = build_sccb(event_qual=SDIAS_EQ_SIZE)
    sd.service_call(SCLP_CMDW_READ_EVENT_DATA, s)
    assert parse_sccb(s)["response_code"] == 0x01F0
    s = build_sccb(event_qual=SDIAS_EQ_SIZE, length=40)
    sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, s)
    assert parse_sccb(s)["response_code"] == 0x0300
    s = build_sccb(event_qual=SDIAS_EQ_SIZE, ev_type=0x1A)
    sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, s)
    assert parse_sccb(s)["response_code"] == 0x40F0 and parse_sccb(s)["ev_flags"] == 0
    s = build_sccb(event_qual=SDIAS_EQ_SIZE, ev_length=52)
    sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, s)
    assert parse_sccb(s)["response_code"] == 0x73F0
    with pytest.raises(SclpError):
        sd.service_call(SCLP_CMDW_WRITE_EVENT_DATA, bytearray(4))
