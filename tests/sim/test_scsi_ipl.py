"""End to end: installed demo dump disk -> simulated dump IPL -> dump on disk.

The dump is checked independently of the simulator's own --verify: it is found
through block 0 (dump.locate), read with the dump reader, and its memory
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
from zipldump.dump.locate import locate_dump
from zipldump.dump.s390 import S390Dump
from zipldump.errors import IplError, KernelImageError
from zipldump.formats.lowcore import SAVE_AREA_OFFSET, SAVE_AREA_SIZE
from zipldump.sim.crashed import generate
from zipldump.sim.scsi_ipl import IplOptions, run_ipl
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
    from zipldump.plan.job import InstallJob, ProgramSpec
    from zipldump.sim.payloads import write_demo_payloads
    from zipldump.zipl.installer import install

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
    from zipldump.plan.job import InstallJob, ProgramSpec
    from zipldump.zipl.installer import install

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

    from zipldump.dump.elf import write_elf

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


# --- `zipldump ipl` as a user runs it: disks made by the CLI, exit codes and messages ------------
def payloads(tmp_path: Path):
    from zipldump.sim.payloads import write_demo_payloads

    return write_demo_payloads(tmp_path / "payloads")


def cli_disk(
    tmp_path: Path, mode: str, bs: int, part: str, *, params: str | None = None, name: str = "disk.img", extra: tuple[str, ...] = ()
) -> Path:
    """`zipldump mkdisk` + `zipldump install --dumpto/--dumptofs 1` with the bundled demo dump tool."""
    p = payloads(tmp_path)
    img = tmp_path / name
    size_mib = int(part.split(":")[0].rstrip("M")) + 4
    r = cli("mkdisk", str(img), "--size", f"{size_mib}M", "--block-size", str(bs), "--part", part)
    assert r.returncode == 0, r.stderr
    args = ["install", str(img), f"--{mode}", "1", "-i", str(p.image), "-r", str(p.ramdisk), "--stage3", str(p.stage3)]
    args += ["--block-size", str(bs), "-n", *extra] + (["-P", params] if params else [])
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    return img


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("bs", [512, 4096])
@pytest.mark.parametrize("mode", ["dumpto", "dumptofs"])
def test_cli_ipl_verify_both_modes_both_block_sizes(tmp_path: Path, mode: str, bs: int) -> None:
    """The acceptance run: a disk made with the CLI, `ipl --verify --json`, then `dumpinfo` of the image."""
    part = ("320M" if bs == 4096 else "96M") if mode == "dumpto" else "72M:ext4"
    img = cli_disk(tmp_path, mode, bs, part, params="dump_mode=auto" if mode == "dumptofs" else None)
    r = cli("ipl", str(img), "--block-size", str(bs), "--memory", "48M", "--cpus", "3", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["dump_tool"]["mode"] == ("partition" if mode == "dumpto" else "fs")
    assert data["block_size"] == bs and data["kernel"]["layout"] == "stage3"
    assert data["verify"]["ok"] and data["verify"]["bytes_compared"] == 48 * MiB and data["verify"]["cpus_checked"] == 3
    assert data["dump"]["bytes_written"] == 4096 + 48 * MiB + 16
    assert data["reipl"]["reipl"] is True
    info = cli("dumpinfo", str(img), "--block-size", str(bs), "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["complete"] is True


@pytest.mark.parametrize("bs", [512, 4096])
def test_cli_ipl_zipl_216_dump_disk(tmp_path: Path, bs: int) -> None:
    """zipl 2.16's --dumpto parmline carries the partition number after dump_mem= (spec §13.6):
    the partition dumper of that generation reads only dump_debug, so the disk IPLs and dumps."""
    img = cli_disk(tmp_path, "dumpto", bs, "320M" if bs == 4096 else "128M", extra=("--compat", "2.16"))
    r = cli("ipl", str(img), "--block-size", str(bs), "--memory", "48M", "--cpus", "2", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kernel"]["command_line"] == "root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory "
    assert data["dump_tool"]["mode"] == "partition"
    assert data["dump_tool"]["parameters"]["dump_mem"] is None and data["dump_tool"]["parameters"]["warnings"] == []
    assert data["verify"]["ok"] and data["verify"]["bytes_compared"] == 48 * MiB and data["verify"]["cpus_checked"] == 2


@pytest.mark.parametrize("cpus", [1, 512])
def test_cli_ipl_cpu_counts(tmp_path: Path, cpus: int) -> None:
    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    r = cli("ipl", str(img), "--memory", "8M", "--cpus", str(cpus), "--verify")
    assert r.returncode == 0, r.stderr
    assert f"{cpus} CPUs, HSA 8 MiB" in r.stdout  # the summary is the result: stdout
    assert f"cpus_checked {cpus}" in r.stdout
    # the summary tells the re-IPL; the status lines (stderr) tell it as it happens
    assert "re-IPL:          load clear from FCP" in r.stdout and "re-IPL: DIAG 308 subcode 3" in r.stderr


def test_cli_ipl_bad_cpu_counts_and_sizes(tmp_path: Path) -> None:
    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    for args, text in (
        (["--cpus", "0"], "at least one CPU"),
        (["--cpus", "513"], "the dump header holds 1 to 512"),
        (["--memory", "100K"], "at least 1 MiB"),
        (["--memory", "4M", "--cpus", "512"], "leave no room for 512 CPU lowcores"),
        (["--memory", "lots"], "lots"),
        (["--memory", "8M", "--hsa-size", "16M"], "exceeds the memory size"),
    ):
        r = cli("ipl", str(img), *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)


def test_cli_ipl_storage_smaller_than_the_hsa(tmp_path: Path) -> None:
    """Without --hsa-size, a crashed system smaller than 32 MiB lies wholly in the HSA."""
    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    r = cli("ipl", str(img), "--memory", "8M", "--cpus", "2", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["crashed_system"]["hsa_size"] == 8 * MiB and data["verify"]["ok"]
    assert "smaller than the 32 MiB HSA" in r.stderr


def test_cli_ipl_crashed_file_options_ignored_loudly(tmp_path: Path) -> None:
    import os

    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    raw = tmp_path / "mem.raw"
    raw.write_bytes(os.urandom(4 * MiB))
    r = cli("ipl", str(img), "--crashed", str(raw), "--memory", "1G", "--cpus", "2", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["crashed_system"]["memory_size"] == 4 * MiB and data["crashed_system"]["cpus"] == 2
    assert f"--memory {1 << 30} ignored: {raw} holds {4 * MiB} bytes" in r.stderr
    core = tmp_path / "core.elf"
    r = cli("getdump", str(img), str(core), "--format", "elf")
    assert r.returncode == 0, r.stderr
    img2 = cli_disk(tmp_path / "b", "dumpto", 512, "48M")
    r = cli("ipl", str(img2), "--crashed", str(core), "--cpus", "5", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["crashed_system"]["source"] == "elf" and data["crashed_system"]["cpus"] == 2 and data["verify"]["ok"]
    assert "--cpus 5 ignored: the ELF core" in r.stderr and "its own 2 CPUs" in r.stderr
    r = cli("ipl", str(img2), "--crashed", str(tmp_path / "missing.raw"))
    assert r.returncode == 2 and "cannot read the crashed system" in r.stderr


def test_cli_ipl_component_above_the_hsa(tmp_path: Path) -> None:
    """The demo kernel ends at 0x50000: with a 256 KiB HSA its load would destroy unsaved crash data."""
    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    before = sha256_file(img)
    r = cli("ipl", str(img), "--memory", "8M", "--hsa-size", "256K", "--json")
    assert r.returncode == 30, r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["kind"] == "ipl" and "above the HSA limit 0x40000: the load destroys crash data" in err["message"]
    assert sha256_file(img) == before  # nothing was written


def test_cli_ipl_dump_partition_too_small(tmp_path: Path) -> None:
    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    before = sha256_file(img)
    r = cli("ipl", str(img), "--memory", "16M")
    assert r.returncode == 42, r.stderr
    assert "field dump_size: disk too small" in r.stderr and "16MB" in r.stderr
    assert sha256_file(img) == before


def test_cli_ipl_changed_partition_checksum(tmp_path: Path) -> None:
    from zipldump.disk.partitions import read_partition_table

    img = cli_disk(tmp_path, "dumpto", 512, "48M")
    start = read_partition_table(img).get(1).start_bytes
    with open(img, "r+b") as fh:  # someone wrote into the dump partition after zipl ran
        fh.seek(start + 1024)
        fh.write(b"\x53\xef")
    before = sha256_file(img)
    r = cli("ipl", str(img), "--memory", "4M", "--json")
    assert r.returncode == 43, r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["kind"] == "dump-target-changed" and "checksum wrong" in err["message"] and "field csum" in err["where"]
    assert sha256_file(img) == before


def test_cli_ipl_full_file_system_auto_mode(tmp_path: Path) -> None:
    """dump_mode=auto: the third 24 MiB dump does not fit 64 MiB; the oldest is deleted and the dump completes."""
    from zipldump.disk.extfs import ExtFs
    from zipldump.disk.partitions import read_partition_table

    img = cli_disk(tmp_path, "dumptofs", 512, "64M:ext2", params="dump_mode=auto")
    for n in range(3):
        r = cli("ipl", str(img), "--memory", "24M", "--seed", str(n), "--verify")
        assert r.returncode == 0, r.stderr
        assert f"/dump.{n}" in r.stdout
    assert "Removing oldest dump: '/dump.0'" in r.stderr
    part = read_partition_table(img).get(1)
    fs = ExtFs(img, part.start_bytes, part.size_bytes)
    assert {n for n in fs.listdir("/") if n.startswith("dump.")} == {"dump.1", "dump.2"}
    assert fs.fsck() == 0
    info = cli("dumpinfo", str(img), "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["complete"] is True


def test_cli_ipl_full_file_system_interactive_without_terminal(tmp_path: Path) -> None:
    """dump_mode=interactive with no terminal: the answer is 'no', nobody waits, the oldest dump stays."""
    from zipldump.disk.extfs import ExtFs
    from zipldump.disk.partitions import read_partition_table

    img = cli_disk(tmp_path, "dumptofs", 512, "64M:ext2", params="dump_mode=interactive")
    for _ in range(2):
        r = cli("ipl", str(img), "--memory", "24M")
        assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "zipldump", "ipl", str(img), "--memory", "24M", "--json"],
        capture_output=True, text=True, stdin=subprocess.PIPE, timeout=300,  # stdin open and silent
    )
    assert r.returncode == 42, r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["kind"] == "dump-no-space" and "answer no" in err["message"] and "/dump.0" in err["message"]
    part = read_partition_table(img).get(1)
    fs = ExtFs(img, part.start_bytes, part.size_bytes)
    assert {"dump.0", "dump.1"} <= set(fs.listdir("/")) and "dump.2" not in fs.listdir("/")
    assert fs.fsck() == 0


@pytest.mark.parametrize("mode", ["dumpto", "dumptofs"])
def test_cli_missing_end_marker_read_by_dumpinfo(tmp_path: Path, mode: str) -> None:
    """A dump whose end marker is gone (the writer was stopped before its last write) is 'not complete'."""
    from zipldump.disk.extfs import ExtFs
    from zipldump.disk.partitions import read_partition_table

    part_spec = "48M" if mode == "dumpto" else "40M:ext2"
    img = cli_disk(tmp_path, mode, 512, part_spec, params="dump_mode=auto" if mode == "dumptofs" else None)
    r = cli("ipl", str(img), "--memory", "8M")
    assert r.returncode == 0, r.stderr
    assert cli("dumpinfo", str(img)).returncode == 0
    part = read_partition_table(img).get(1)
    marker_at = 4096 + 8 * MiB  # dump offset of the 16-byte end marker
    if mode == "dumpto":
        offset = part.start_bytes + marker_at
    else:
        fs = ExtFs(img, part.start_bytes, part.size_bytes)
        blocks = fs.block_map("/dump.0")
        offset = part.start_bytes + blocks[marker_at // fs.block_size] * fs.block_size + marker_at % fs.block_size
    with open(img, "r+b") as fh:
        fh.seek(offset)
        assert fh.read(8) == b"DUMP_END"
        fh.seek(offset)
        fh.write(bytes(16))
    r = cli("dumpinfo", str(img))
    assert r.returncode == 1, r.stderr
    assert "Dump is not complete" in r.stdout and "not complete" in r.stderr
