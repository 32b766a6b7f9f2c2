"""--verify and the writers end to end on the real simulator stack: generated
crashed system -> Machine (store status, HSA) -> dump kernel overwrites low
storage -> SDIAS + zcore -> partition / file-system writer -> verify against the
crashed system.  Flipped bytes in memory, in the HSA part and in registers must
be found and named."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.disks import dumpto_disk, make_fs_disk
from builders.fakes import quiet_ui
from builders.tools import have_tool

from zipldump.dump.params import parse_dump_cmdline
from zipldump.dump.s390 import open_dump
from zipldump.dump.verify import (
    ExtentSource,
    field_name,
    source_for_result,
    verify_dump,
    verify_source,
)
from zipldump.dump.write_partition import dump_to_partition
from zipldump.errors import VerifyError
from zipldump.formats.lowcore import (
    GPRS_OFFSET,
    PSW_OFFSET,
    SAVE_AREA_OFFSET,
    parse_save_area,
)
from zipldump.formats.s390dump import HEADER_SIZE
from zipldump.sim import crashed as crashed_mod
from zipldump.sim.machine import Machine
from zipldump.sim.sclp import Sdias
from zipldump.sim.zcore import Zcore

MiB = 1 << 20
MEM = 64 * MiB
HSA = 32 * MiB
KERNEL_JUNK = 0x5A


def dump_kernel_zcore(system, hsa: int = HSA) -> tuple[Machine, Zcore]:
    """Dump IPL, then the dump kernel scribbles over its low memory (below the HSA
    size), as loading zfcpdump does; zcore must serve that range from the HSA."""
    machine = Machine(system, hsa)
    machine.dump_ipl()
    machine.storage.fill(0, 4 * MiB, KERNEL_JUNK)  # lowcore, kernel, initrd area
    machine.storage.fill(16 * MiB, 64 * 1024, KERNEL_JUNK)  # over CPU 0's prefix page
    return machine, Zcore(machine, Sdias(machine), blocks_per_request=256)


@pytest.fixture(scope="module")
def system():
    s = crashed_mod.generate(MEM, 2, seed=7)
    yield s
    s.close()


@pytest.fixture(scope="module")
def part_dump(system, tmp_path_factory):
    """One partition dump of `system`, shared by the flip tests (each works on a copy)."""
    tmp = tmp_path_factory.mktemp("partdump")
    disk, _, _ = dumpto_disk(tmp, 512, MEM + 8 * MiB)
    _, zc = dump_kernel_zcore(system)
    result = dump_to_partition(disk, zc, quiet_ui())
    return disk, result


@pytest.mark.parametrize("block_size", [512, 4096])
def test_partition_dump_of_real_zcore_verifies(system, tmp_path, block_size):
    disk, _, _ = dumpto_disk(tmp_path, block_size, MEM + 8 * MiB)
    machine, zc = dump_kernel_zcore(system)
    result = dump_to_partition(disk, zc, quiet_ui(), block_size=block_size)
    assert not machine.hsa_available  # released by the writer
    report = verify_dump(result, system, quiet_ui(), hsa_size=HSA)
    assert report.ok and report.bytes_compared == MEM and report.cpus_checked == 2
    # The storage really differs from the crashed memory in the HSA range, so the
    # match above proves the HSA part came from the HSA.
    assert machine.storage.read(0x10000, 16) == bytes([KERNEL_JUNK]) * 16 != system.read_original(0x10000, 16)
    # The dump reader sees the same registers as the crashed CPUs hold.
    with source_for_result(result) as src, open_dump(src) as dump:
        assert dump.complete
        regs = {r.prefix: r for r in dump.cpus}
        for cpu in system.cpus:
            got = regs[cpu.prefix]
            assert (got.gprs, got.psw, got.crs, got.fprs, got.acrs, got.timer, got.todpreg) == (
                cpu.registers.gprs, cpu.registers.psw, cpu.registers.crs, cpu.registers.fprs, cpu.registers.acrs,
                cpu.registers.timer, cpu.registers.todpreg,
            )
            assert got.ckc >> 8 == cpu.registers.ckc >> 8


@pytest.mark.skipif(not have_tool("debugfs"), reason="e2fsprogs not installed")
@pytest.mark.parametrize("block_size", [512, 4096])
def test_fs_dump_of_real_zcore_verifies(system, tmp_path, block_size):
    from zipldump.dump.write_fs import dump_to_fs

    disk, fs = make_fs_disk(tmp_path, block_size, MEM + 16 * MiB, "ext4" if block_size == 4096 else "ext2", 4096)
    _, zc = dump_kernel_zcore(system)
    result = dump_to_fs(disk, zc, quiet_ui(), parse_dump_cmdline("dump_part=2"), block_size=block_size)
    report = verify_dump(result, system, hsa_size=HSA)
    assert report.ok and report.bytes_compared == MEM
    assert fs.fsck() == 0


@pytest.mark.skipif(not have_tool("debugfs"), reason="e2fsprogs not installed")
def test_fs_dump_with_dump_mem_verifies(system, tmp_path):
    from zipldump.dump.write_fs import dump_to_fs

    disk, _ = make_fs_disk(tmp_path, 512, 48 * MiB)
    _, zc = dump_kernel_zcore(system)
    result = dump_to_fs(disk, zc, quiet_ui(), parse_dump_cmdline("dump_part=2 dump_mem=0x1800000"))
    assert result.mem_size == 24 * MiB
    report = verify_dump(result, system, hsa_size=HSA)
    # CPU 1's prefix page (56 MiB) is not in the dump: only CPU 0 is checked.
    assert report.ok and report.bytes_compared == 24 * MiB and report.cpus_checked == 1


def _flipped(part_dump, tmp_path: Path, dump_offset: int) -> ExtentSource:
    disk, result = part_dump
    copy = tmp_path / "flipped.img"
    with open(disk, "rb") as src, open(copy, "wb") as dst:
        while chunk := src.read(8 * MiB):
            dst.write(chunk)
    with open(copy, "r+b") as fh:
        fh.seek(result.image_offset + dump_offset)
        b = fh.read(1)
        fh.seek(result.image_offset + dump_offset)
        fh.write(bytes([b[0] ^ 0x01]))
    return ExtentSource(copy, [(result.image_offset, result.bytes_written)], result.bytes_written, name="flipped")


def test_verify_finds_flipped_memory_byte(system, part_dump, tmp_path):
    addr = 40 * MiB + 0x123
    with _flipped(part_dump, tmp_path, HEADER_SIZE + addr) as src:
        with pytest.raises(VerifyError, match="memory") as info:
            verify_source(src, system, hsa_size=HSA)
    assert f"absolute address 0x{addr:x}" in info.value.where


def test_verify_finds_flipped_byte_in_hsa_part(system, part_dump, tmp_path):
    addr = 0x10007  # storage holds dump-kernel junk here; the dump must hold the original
    with _flipped(part_dump, tmp_path, HEADER_SIZE + addr) as src:
        report = verify_source(src, system, hsa_size=HSA, raise_on_mismatch=False)
    assert not report.ok and report.differing_pages == 1
    d = report.differences[0]
    assert d.address == addr and "HSA part" in d.what
    assert d.expected.split()[0] == f"{system.read_original(addr, 1)[0]:02x}"


def test_verify_finds_flipped_register(system, part_dump, tmp_path):
    cpu = system.cpus[1]
    field = cpu.prefix + GPRS_OFFSET + 3 * 8
    with _flipped(part_dump, tmp_path, HEADER_SIZE + field + 7) as src:
        report = verify_source(src, system, hsa_size=HSA, raise_on_mismatch=False)
    d = report.differences[0]
    assert d.address == field + 7
    assert f"CPU {cpu.address}" in d.what and "gprs[3]" in d.what
    assert d.expected == cpu.registers.gprs[3].to_bytes(8, "big").hex(" ")
    assert d.actual == (cpu.registers.gprs[3] ^ 1).to_bytes(8, "big").hex(" ")


def test_verify_finds_flipped_boot_cpu_store_status(system, part_dump, tmp_path):
    """Absolute 0x1200.. holds the boot CPU's status stored by the machine at the dump IPL."""
    boot = system.cpus[system.boot_cpu]
    with _flipped(part_dump, tmp_path, HEADER_SIZE + PSW_OFFSET + 8) as src:
        with pytest.raises(VerifyError, match="store status") as info:
            verify_source(src, system, hsa_size=HSA)
    assert "psw address" in info.value.message
    assert boot.registers.psw_addr.to_bytes(8, "big").hex(" ") in info.value.message


def test_verify_pad_bytes_compare_with_memory(system, part_dump, tmp_path):
    cpu = system.cpus[0]
    pad = cpu.prefix + 0x1310  # pad between PSW and prefix: memory content, not a register
    with _flipped(part_dump, tmp_path, HEADER_SIZE + pad) as src:
        report = verify_source(src, system, raise_on_mismatch=False)
    assert "pad" in report.differences[0].what and report.differences[0].address == pad


def test_verify_checks_end_marker(system, part_dump, tmp_path):
    _, result = part_dump
    with _flipped(part_dump, tmp_path, HEADER_SIZE + MEM) as src:  # 'D' of DUMP_END
        with pytest.raises(VerifyError, match="end marker"):
            verify_source(src, system)


def test_verify_other_system_differs_everywhere(part_dump):
    other = crashed_mod.generate(MEM, 2, seed=8)
    _, result = part_dump
    with source_for_result(result) as src:
        report = verify_source(src, other, raise_on_mismatch=False, max_differences=5)
    assert len(report.differences) == 5
    assert report.differing_pages == MEM // 4096  # every page carries the seed in its stamp
    assert report.bytes_compared == MEM


def test_verify_refuses_busy_partition(system, tmp_path):
    from zipldump.dump.write_partition import BUSY_MARKER

    disk, _, dump_size = dumpto_disk(tmp_path, 512, 16 * MiB)
    with open(disk, "r+b") as fh:
        fh.seek(1 * MiB)
        fh.write(BUSY_MARKER)
    with ExtentSource(disk, [(1 * MiB, dump_size)], dump_size, name="busy") as src:
        with pytest.raises(VerifyError, match="magic"):
            verify_source(src, system)


def test_field_names():
    assert field_name(0x1200) == "fprs[0]"
    assert field_name(0x1287) == "gprs[0]"
    assert field_name(0x1308) == "psw address"
    assert field_name(0x1310) == "pad"
    assert field_name(0x1331) == "clock comparator (CKC >> 8)"
    assert field_name(0x13FF) == "crs[15]"


def test_save_area_in_dump_matches_registers(system, part_dump):
    """Independent check of the overlay with formats.lowcore only."""
    disk, result = part_dump
    with open(disk, "rb") as fh:
        for cpu in system.cpus:
            fh.seek(result.image_offset + HEADER_SIZE + cpu.prefix + SAVE_AREA_OFFSET)
            regs = parse_save_area(fh.read(512))
            assert regs.gprs == cpu.registers.gprs and regs.prefix == cpu.prefix


def test_end_marker_tod_from_the_machine_clock(system, tmp_path):
    """The dump kernel's STCK reads the simulated machine's TOD clock."""
    import itertools

    ticks = itertools.count(0xC0BFF9D0D7A00000, 0x1000)  # one microsecond per call
    disk, _, _ = dumpto_disk(tmp_path, 512, MEM + 8 * MiB)
    machine = Machine(system, HSA, tod_clock=lambda: next(ticks))
    machine.dump_ipl()
    zc = Zcore(machine, Sdias(machine))
    result = dump_to_partition(disk, zc, quiet_ui())
    start = 0xC0BFF9D0D7A00000
    assert start <= result.header_tod < result.end_tod < start + 100 * 0x1000  # both from the machine's clock, in order
    assert (result.end_tod - start) % 0x1000 == 0
    assert verify_dump(result, system).ok


def test_verify_read_ahead_small_chunks_and_short_dump(system, part_dump, tmp_path):
    """Chunks of 3 MiB (so the last one is short) with the read-ahead thread: the
    flipped byte is found in the chunk it lies in, a clean dump compares every byte,
    and a dump cut short is compared as far as it goes and lacks its end marker."""
    disk, result = part_dump
    addr = MEM - 0x1001  # in the last, partial 3 MiB chunk
    with _flipped(part_dump, tmp_path, HEADER_SIZE + addr) as src:
        report = verify_source(src, system, hsa_size=HSA, raise_on_mismatch=False, chunk_size=3 * MiB)
    assert report.differing_pages == 1 and report.differences[0].address == addr
    with ExtentSource(disk, [(result.image_offset, result.bytes_written)], result.bytes_written, name="clean") as src:
        report = verify_source(src, system, hsa_size=HSA, chunk_size=3 * MiB)
    assert report.ok and report.bytes_compared == MEM
    cut = HEADER_SIZE + 10 * MiB + 5
    with ExtentSource(disk, [(result.image_offset, cut)], cut, name="cut") as src:
        report = verify_source(src, system, hsa_size=HSA, raise_on_mismatch=False, chunk_size=3 * MiB)
    assert not report.ok and report.bytes_compared == cut - HEADER_SIZE  # every byte there is, in 4 chunks
    assert [d.what for d in report.differences if "end marker" in d.what]
