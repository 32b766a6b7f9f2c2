"""End to end: installed demo dump disk -> simulated dump IPL -> dump on disk.

The dump is checked independently of the simulator's own --verify: it is found
through block 0 (dumptools.locate), read with the dump reader, and its memory
is compared with the crashed system's original bytes, except the CPU save
areas (the dump carries the registers there, memory the stale copies).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zipldump.commands.demo import build_demo_disk
from zipldump.dumptools.locate import locate_dump
from zipldump.dumptools.reader import S390Dump
from zipldump.errors import IplError, KernelImageError
from zipldump.formats.lowcore import SAVE_AREA_OFFSET, SAVE_AREA_SIZE
from zipldump.sim.crashed import generate
from zipldump.sim.ipl import IplOptions, run_ipl
from zipldump.ui import UI

MiB = 1 << 20
QUIET = UI(quiet=True, interactive=False)


def compare_dump(image: Path, bs: int, memory: int, cpus: int, seed: int = 0) -> S390Dump:
    crashed = generate(memory, cpus, seed)
    skip = sorted({p + SAVE_AREA_OFFSET for p in crashed.prefixes} | {SAVE_AREA_OFFSET})
    with locate_dump(image, block_size=bs) as loc:
        dump = S390Dump(loc.source)
        assert dump.complete and dump.mem_size == memory and len(dump.cpus) == cpus
        addr = 0
        want = bytearray(8 * MiB)
        for chunk in dump.iter_memory(chunk=8 * MiB):
            n = len(chunk)
            crashed.readinto_original(addr, memoryview(want)[:n])
            got = bytearray(chunk)
            for s in skip:  # blank the save areas on both sides
                lo, hi = max(s, addr), min(s + SAVE_AREA_SIZE, addr + n)
                if lo < hi:
                    got[lo - addr : hi - addr] = bytes(hi - lo)
                    want[lo - addr : hi - addr] = bytes(hi - lo)
            if 0xA3 >= addr and 0xA3 < addr + n:  # arch byte written by store status
                assert got[0xA3 - addr] == 1
                got[0xA3 - addr] = want[0xA3 - addr]
            assert got == want[:n], f"dump memory differs from the crashed system in {addr:#x}+{n:#x}"
            addr += n
        assert addr == memory
        return dump


@pytest.mark.parametrize("bs", [512, 4096])
def test_ipl_partition_mode(tmp_path: Path, bs: int) -> None:
    demo = build_demo_disk(tmp_path, 256 * MiB, QUIET, block_size=bs)
    rep = run_ipl(IplOptions(image=demo.image, memory_size=256 * MiB, cpus=4, block_size=bs), QUIET)
    data = rep.to_json()
    assert data["dump_tool"]["mode"] == "partition"
    assert data["kernel"]["layout"] == "stage3"
    # The dump kernel sees exactly the parameter line the installer wrote.
    assert data["kernel"]["command_line"] == demo.install.to_json()["programs"][0]["parmline"]
    assert data["dump"]["bytes_written"] == 4096 + 256 * MiB + 16
    assert data["reipl"]["reipl"] is True and data["reipl"]["diag308_subcode"] == 3
    compare_dump(demo.image, bs, 256 * MiB, 4)


@pytest.mark.parametrize("bs", [512, 4096])
def test_ipl_verify_partition_mode(tmp_path: Path, bs: int) -> None:
    demo = build_demo_disk(tmp_path, 256 * MiB, QUIET, block_size=bs)
    rep = run_ipl(IplOptions(image=demo.image, memory_size=256 * MiB, cpus=4, verify=True, block_size=bs), QUIET)
    v = rep.to_json()["verify"]
    assert v["ok"] and v["bytes_compared"] == 256 * MiB and v["cpus_checked"] == 4


def test_ipl_file_system_mode(tmp_path: Path) -> None:
    """--dumptofs disk: no boot_info, dump_part= on the command line -> dump.0 in the file system."""
    from zipldump.disk.extfs import ExtFs
    from zipldump.disk.partitions import PartSpec, make_disk
    from zipldump.install import install
    from zipldump.payloads import write_demo_payloads
    from zipldump.plan.job import InstallJob, ProgramSpec

    p = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "fs.img"
    table = make_disk(img, 160 * MiB, parts=[PartSpec(None, "ext2")])
    job = InstallJob(
        image_path=img, mode="dumptofs", partition=1, assume_yes=True, stage3=p.stage3,
        programs={0: ProgramSpec("d", "dumptofs", p.image, p.ramdisk, parameters="dump_mode=auto", dump_partition=1)},
    )
    install(job, QUIET)
    rep = run_ipl(IplOptions(image=img, memory_size=64 * MiB, cpus=2, verify=True), QUIET)
    data = rep.to_json()
    assert data["dump_tool"]["mode"] == "fs"
    assert data["kernel"]["command_line"].startswith("dump_mode=auto root=/dev/ram0 dump_part=1 ")
    assert data["verify"]["ok"]
    part = table.get(1)
    fs = ExtFs(img, part.start_bytes, part.size_bytes)
    assert fs.file_size("/dump.0") == 4096 + 64 * MiB + 16
    assert fs.fsck() == 0


def test_ipl_user_parameters_reach_the_dump_kernel(tmp_path: Path) -> None:
    from zipldump.install import install
    from zipldump.plan.job import InstallJob, ProgramSpec

    demo = build_demo_disk(tmp_path, 64 * MiB, QUIET)
    p = demo.payloads
    job = InstallJob(
        image_path=demo.image, mode="dumpto", partition=1, assume_yes=True, stage3=p.stage3,
        programs={0: ProgramSpec("d", "dump", p.image, p.ramdisk, parameters="dump_debug=4 foo=bar")},
    )
    install(job, QUIET)
    rep = run_ipl(IplOptions(image=demo.image, memory_size=64 * MiB, cpus=2), QUIET)
    assert rep.kernel.command_line == "dump_debug=4 foo=bar root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"
    assert rep.dump_params.dump_debug == 4


def test_hsa_too_small_for_the_dump_tool(tmp_path: Path) -> None:
    demo = build_demo_disk(tmp_path, 64 * MiB, QUIET)
    # The demo kernel alone ends at 0x50000: a 256 KiB HSA cannot hold it.
    with pytest.raises(IplError, match="above the HSA limit 0x40000: the load destroys crash data"):
        run_ipl(IplOptions(image=demo.image, memory_size=64 * MiB, cpus=2, hsa_size=256 * 1024), QUIET)
    with pytest.raises(KernelImageError, match="above the HSA limit 0x40000"):
        run_ipl(IplOptions(image=demo.image, memory_size=64 * MiB, cpus=2, hsa_size=256 * 1024, allow_above_hsa=True), QUIET)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zipldump", *args], capture_output=True, text=True)


def test_cli_ipl_json_and_exit_codes(tmp_path: Path) -> None:
    demo = build_demo_disk(tmp_path, 64 * MiB, QUIET)
    r = cli("ipl", str(demo.image), "--memory", "64M", "--cpus", "2", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["firmware"]["psw"] == "000800008000a000"
    assert [s["step"] for s in data["steps"]][:3] == [
        "Building the crashed system",
        "Machine: store status of the boot CPU, save the HSA",
        "Machine loader: SCSI dump load of program 0",
    ]
    # Empty program-table entry: IplError, exit 30, with the firmware's text.
    r = cli("ipl", str(demo.image), "--memory", "64M", "--loadparm", "3", "--json")
    assert r.returncode == 30
    err = json.loads(r.stdout)["error"]
    assert err["kind"] == "ipl" and err["message"].startswith("The requested boot entry (3) is invalid")
    # Stage 3 refusal: KernelImageError, exit 31.
    r = cli("ipl", str(demo.image), "--memory", "64M", "--hsa-size", "256K", "--allow-above-hsa")
    assert r.returncode == 31 and "above the HSA limit" in r.stderr
    # Not a zipl disk at all.
    plain = tmp_path / "plain.img"
    plain.write_bytes(bytes(1 << 20))
    r = cli("ipl", str(plain), "--memory", "64M")
    assert r.returncode == 30 and "No zIPL magic in block 0" in r.stderr


@pytest.mark.slow
def test_ipl_2g_partition_mode(tmp_path: Path) -> None:
    demo = build_demo_disk(tmp_path, 2048 * MiB, QUIET)
    rep = run_ipl(IplOptions(image=demo.image, memory_size=2048 * MiB, cpus=4), QUIET)
    assert rep.dump.bytes_written == 4096 + 2048 * MiB + 16
    compare_dump(demo.image, 512, 2048 * MiB, 4)


def test_ipl_crashed_raw_and_elf_round_trip(tmp_path: Path) -> None:
    """--crashed: a raw memory image, then the ELF core made from that dump, each dumped and verified."""
    import os

    from zipldump.dumptools.elf import write_elf

    raw = tmp_path / "mem.raw"
    raw.write_bytes(os.urandom(64 * MiB))
    demo = build_demo_disk(tmp_path / "a", 64 * MiB, QUIET)
    rep = run_ipl(IplOptions(image=demo.image, crashed=raw, cpus=2, verify=True), QUIET)
    assert rep.crashed["source"] == "raw" and rep.verify.ok
    with locate_dump(demo.image) as loc:
        with S390Dump(loc.source) as dump:
            write_elf(dump, tmp_path / "core.elf")
    demo2 = build_demo_disk(tmp_path / "b", 64 * MiB, QUIET)
    rep2 = run_ipl(IplOptions(image=demo2.image, crashed=tmp_path / "core.elf", verify=True), QUIET)
    assert rep2.crashed["source"] == "elf" and rep2.crashed["cpus"] == 2 and rep2.verify.ok
