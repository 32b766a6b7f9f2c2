"""Machine: store status of the boot CPU, HSA save, SIGP, DIAG 308."""

from __future__ import annotations

import pytest

from zipldump.errors import IplError, UsageError
from zipldump.formats.lowcore import REGISTER_RANGES, build_save_area, parse_save_area
from zipldump.plan.job import DEFAULT_HSA_SIZE
from zipldump.sim.crashed import generate
from zipldump.sim.machine import HSA_IN_RAM_LIMIT, Machine, ReiplRequest

MiB = 1 << 20


def test_store_status_writes_register_fields_only():
    c = generate(64 * MiB, 3, seed=4, boot_cpu=1)
    m = Machine(c, 32 * MiB)
    before = c.read_original(0, 0x2000)
    m.store_status()
    after = m.storage.read(0, 0x2000)
    regs = c.cpus[1].registers
    assert parse_save_area(after[0x1200:0x1400]) == regs.with_(cpu_address=None)
    sa = build_save_area(regs)
    mask = bytearray(0x2000)
    for s, e in REGISTER_RANGES:
        mask[s:e] = b"\xff" * (e - s)
    mask[0xA3] = 0xFF
    for i in range(0x2000):
        if mask[i]:
            want = 1 if i == 0xA3 else sa[i - 0x1200]
            assert after[i] == want, hex(i)
        else:
            assert after[i] == before[i], hex(i)  # pads and the rest of lowcore untouched


def test_hsa_equals_memory_before_the_loader_runs():
    c = generate(64 * MiB, 2, seed=6)
    m = Machine(c, 16 * MiB)
    m.dump_ipl()
    assert m.ipl_info.ipl_type == "fcp_dump" and m.boot_cpu.state == "operating"
    expected = bytearray(c.read_original(0, 16 * MiB))
    expected[0:0x2000] = m.storage.read(0, 0x2000)  # store status landed before the save
    # the firmware then loads a dump kernel below the HSA limit
    m.storage.write(0x10000, b"\xc3" * (8 * MiB))
    m.storage.write(0, bytes(0x2000))
    got = bytearray(16 * MiB)
    m.hsa.readinto(0, memoryview(got))
    assert got == expected
    assert m.storage.read(0x10000, 16) == b"\xc3" * 16
    assert m.storage.read(32 * MiB, 4096) == c.read_original(32 * MiB, 4096)  # above HSA: crashed data
    assert c.read_original(0x10000, 16) != b"\xc3" * 16  # reference untouched
    with pytest.raises(IplError, match="already"):
        m.dump_ipl()


def test_large_hsa_lives_in_a_temporary_file():
    c = generate(128 * MiB, 2, seed=1)
    m = Machine(c, HSA_IN_RAM_LIMIT + 16 * MiB)
    m.save_hsa()
    assert m.hsa._ram is None and m.hsa._fd >= 0
    buf = bytearray(8192)
    m.hsa.readinto(HSA_IN_RAM_LIMIT + 4096, memoryview(buf))
    assert bytes(buf) == c.read_original(HSA_IN_RAM_LIMIT + 4096, 8192)
    m.release_hsa()
    assert not m.hsa_available and m.hsa._fd == -1


@pytest.mark.parametrize("hsa", [DEFAULT_HSA_SIZE, 64 * MiB])
def test_usual_hsa_sizes_are_not_held_in_ram(hsa):
    """The dump's peak RSS must stay under 100 MiB (issue 3): a 32 or 64 MiB
    bytearray for the HSA would take a third or two thirds of that alone."""
    m = Machine(generate(hsa + 16 * MiB, 2, seed=1), hsa)
    m.save_hsa()
    assert m.hsa._ram is None and m.hsa._fd >= 0


def test_sigp_and_diag308():
    c = generate(64 * MiB, 3, seed=2)
    seen: list[ReiplRequest] = []
    m = Machine(c, 32 * MiB, on_reipl=seen.append)
    m.dump_ipl()
    with pytest.raises(IplError, match="boot CPU"):
        m.sigp_stop_and_store_status(0)
    with pytest.raises(IplError):
        m.sigp_stop_and_store_status(7)
    assert parse_save_area(m.sigp_stop_and_store_status(2)) == c.cpus[2].registers.with_(cpu_address=None)
    m.diag308(5, b"IPIB")
    assert m.diag308(6) == b"IPIB"
    m.diag308(3)
    assert seen == [ReiplRequest(3, b"IPIB")] and m.reipl_requests == seen
    m.diag308(2)
    m.diag308(2)  # idempotent
    assert not m.hsa_available
    with pytest.raises(IplError):
        m.diag308(9)


def test_machine_checks_hsa_size():
    c = generate(16 * MiB, 1)
    with pytest.raises(UsageError):
        Machine(c, 32 * MiB)
    with pytest.raises(UsageError):
        Machine(c, 1000)
