"""The demo (`zipldump demo`) and its generated payloads (zipldump/sim/payloads.py).

The payload kernel is checked against the s390 image layout of spec §10, its
startup code is disassembled with gdb-multiarch (an independent s390
disassembler), and the initramfs is unpacked with GNU cpio.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from zipldump.sim.payloads import LABEL, kernel_image, stage3_image, write_demo_payloads

MiB = 1 << 20


def test_kernel_image_layout() -> None:
    k = kernel_image()
    assert len(k) == 0x40000
    assert k[0:8] == bytes.fromhex("0008000080000200")  # IPL PSW -> iplstart 0x200
    assert k[8:0x18] == bytes.fromhex("02000018600000500200006860000050")
    assert k[0x18:0x50] == b"\x40" * 0x38
    assert k[0x200 : 0x200 + len(LABEL)] == LABEL
    assert k[0x10008:0x10010] == b"S390EP\x00\x01"
    # parm area: ipl_device, initrd start/size, oldmem 0; version pointer; max command line 4096
    assert k[0x10400:0x10428] == bytes(0x28)
    (version_ptr, max_cl) = struct.unpack(">QQ", k[0x10428:0x10438])
    assert max_cl == 4096
    assert k[version_ptr : k.index(b"\0", version_ptr)].startswith(b"zipldump-sim")
    assert k[0x10480:0x10492] == b"root=/dev/ram0 ro\0"
    assert k[0x10492 : 0x10480 + 4096] == bytes(4096 - 18)
    assert b"zipldump simulator payload" in k[0x20000:0x20100]


def test_stage3_stand_in() -> None:
    s = stage3_image()
    assert len(s) == 0x4000
    assert s[0x3FE0:] == struct.pack(">QQQQ", 0x0000C00000000000, 0x000800008000A000, 0xA000, 0x000000207A49504C)
    assert b"zipldump simulator payload" in s


def _elf64_s390(code: bytes, addr: int) -> bytes:
    """A minimal big-endian ELF64 EM_S390 executable with `code` as .text at `addr`."""
    shstr = b"\0.text\0.shstrtab\0"
    text_off = 64 + 56
    shstr_off = text_off + len(code)
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    out = b"\x7fELF" + bytes([2, 2, 1, 0]) + bytes(8)
    out += struct.pack(">HHIQQQIHHHHHH", 2, 22, 1, addr, 64, sh_off, 0, 64, 56, 1, 64, 3, 2)
    out += struct.pack(">IIQQQQQQ", 1, 5, text_off, addr, addr, len(code), len(code), 0x1000)
    out += code + shstr
    out += bytes(sh_off - len(out)) + bytes(64)
    out += struct.pack(">IIQQQQIIQQ", 1, 1, 6, addr, text_off, len(code), 0, 0, 4, 0)
    out += struct.pack(">IIQQQQIIQQ", 7, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
    return out


def _disassemble(tmp_path: Path, code: bytes, addr: int, count: int) -> list[str]:
    if not shutil.which("gdb-multiarch"):
        pytest.skip("gdb-multiarch not installed")
    elf = tmp_path / "code.elf"
    elf.write_bytes(_elf64_s390(code, addr))
    out = subprocess.run(
        ["gdb-multiarch", "-nx", "-batch", "-ex", "set architecture s390:31-bit", "-ex", f"file {elf}", "-ex", f"x/{count}i {addr:#x}"],
        capture_output=True, text=True, timeout=60,
    ).stdout
    return [line.split(":", 1)[1].split() for line in out.splitlines() if line.strip().startswith("0x")]


def test_payload_code_only_loads_a_disabled_wait(tmp_path: Path) -> None:
    k = kernel_image()
    ins = _disassemble(tmp_path, k[0x10000:0x10020], 0x10000, 7)
    assert ins[0] == ["basr", "%r13,%r0"] and ins[1] == ["j", "0x10018"]
    assert ["j", "0x10018"] in ins  # kdump entry at 0x10010 too
    lpsw = _disassemble(tmp_path, k[0x10018:0x1001C], 0x10018, 1)[0]
    assert lpsw == ["lpsw", "30(%r13)"]  # r13 = 0x10002 -> PSW at 0x10020
    assert struct.unpack(">Q", k[0x10020:0x10028])[0] == 0x000A000000005A1D  # disabled wait, code 0x5A1D
    s = stage3_image()
    ins = _disassemble(tmp_path, s[:8], 0xA000, 2)
    assert ins == [["basr", "%r13,%r0"], ["lpsw", "14(%r13)"]]  # -> PSW at 0xA010
    assert struct.unpack(">Q", s[0x10:0x18])[0] == 0x000A000000005A1D


def test_initramfs_unpacks_with_gnu_cpio(tmp_path: Path) -> None:
    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    p = write_demo_payloads(tmp_path / "pl")
    raw = gzip.decompress(p.ramdisk.read_bytes())
    out = tmp_path / "root"
    out.mkdir()
    listing = subprocess.run(["cpio", "-itv"], input=raw, capture_output=True, check=True).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines()]
    assert {"dev", "dev/console", "dev/null", "init", "sbin/e2fsck", "proc", "sys", "mnt"} <= set(names)
    assert {f"dev/sda{i}" for i in range(1, 16)} <= set(names)
    sda1 = [line for line in listing.splitlines() if line.endswith("dev/sda1")][0]
    assert sda1.startswith("brw-r--r--") and "8,   1" in sda1
    subprocess.run(["cpio", "-id", "-D", str(out), "init", "sbin/e2fsck"], input=raw, capture_output=True, check=True)
    assert (out / "init").read_text().startswith("zipldump simulator payload")
    assert os.access(out / "init", os.X_OK)


def test_demo_command_small(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "zipldump", "demo", "--dir", str(tmp_path), "--memory", "128M", "--cpus", "2", "--json"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    demo = data["demo"]
    assert Path(demo["image"]) == tmp_path / "demo.img"
    assert data["verify"]["ok"] and data["verify"]["bytes_compared"] == 128 * MiB
    assert data["dump_tool"]["mode"] == "partition" and data["kernel"]["layout"] == "stage3"
    # Partition 1 holds exactly the dump plus zipl's reserve (§7.3), rounded to 1 MiB.
    inst = demo["install"]
    assert inst["dump_size"] >= 4096 + 128 * MiB + 16
    assert inst["dump_size"] - (4096 + 128 * MiB + 16) < MiB
    assert inst["partition"]["size_bytes"] == demo["partition_bytes"]
    assert "Dump successful" in r.stderr


def test_demo_rerun_replaces_the_image(tmp_path: Path) -> None:
    for _ in range(2):
        r = subprocess.run(
            [sys.executable, "-m", "zipldump", "-q", "demo", "--dir", str(tmp_path), "--memory", "64M", "--cpus", "1", "--no-verify"],
            capture_output=True, text=True,
        )
        assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_demo_default_2g(tmp_path: Path) -> None:
    # Its run time (< 60 s on 2 cores) is measured by benchmarks/, not asserted here.
    r = subprocess.run([sys.executable, "-m", "zipldump", "demo", "--dir", str(tmp_path), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["verify"]["ok"] and data["crashed_system"]["memory_size"] == 2 << 30 and data["crashed_system"]["cpus"] == 4
