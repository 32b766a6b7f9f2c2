"""Every command that reads a disk finds its block size itself: 4Kn disks without --block-size."""

from __future__ import annotations

from pathlib import Path

import pytest

from zipldump.cli import main as cli_main
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.sim.payloads import write_demo_payloads

MiB = 1 << 20


@pytest.mark.parametrize("label", ["msdos", "gpt"])
def test_a_4kn_dump_disk_end_to_end_without_block_size(tmp_path: Path, label: str, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 320 * MiB, label=label, block_size=4096, parts=[PartSpec(300 * MiB)])
    p = write_demo_payloads(tmp_path / "p")
    assert cli_main(["install", str(img), "--dumpto", "1", "--image", str(p.image), "--ramdisk", str(p.ramdisk), "-n"]) == 0
    err = capsys.readouterr().err
    assert "block size 4096:" in err
    assert cli_main(["-q", "ipl", str(img), "--memory", "16M", "--cpus", "2", "--verify"]) == 0
    assert cli_main(["-q", "dumpinfo", str(img)]) == 0
    out = tmp_path / "dump"
    assert cli_main(["-q", "getdump", str(img), str(out)]) == 0
    assert out.stat().st_size == 4096 + 16 * MiB + 16


def test_the_override_still_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 320 * MiB, block_size=4096, parts=[PartSpec(300 * MiB)])
    p = write_demo_payloads(tmp_path / "p")
    assert cli_main(["-q", "install", str(img), "--dumpto", "1", "--image", str(p.image), "--ramdisk", str(p.ramdisk), "-n"]) == 0
    # told 512, the 4Kn dump disk's pointers do not fit: refused, not silently read
    assert cli_main(["-q", "ipl", str(img), "--block-size", "512", "--memory", "16M"]) != 0


def test_inspect_finds_a_4kn_disk_by_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 320 * MiB, block_size=4096, parts=[PartSpec(300 * MiB)])
    p = write_demo_payloads(tmp_path / "p")
    assert cli_main(["-q", "install", str(img), "--dumpto", "1", "--image", str(p.image), "--ramdisk", str(p.ramdisk), "-n"]) == 0
    capsys.readouterr()
    assert cli_main(["inspect", str(img)]) == 0  # was INVALID (exit 22) without --block-size 4096
    captured = capsys.readouterr()
    assert "block size 4096:" in captured.err
