"""The block size found from the disk itself (disk/geometry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.kernels import synthetic_kernel
from builders.tools import have_tool

from zipldump.disk.geometry import detect, geometry
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.zipl.installer import build_spec_example

MiB = 1 << 20


@pytest.mark.parametrize("bs", [512, 4096])
@pytest.mark.parametrize("label", ["msdos", "gpt"])
def test_empty_tables(tmp_path: Path, bs: int, label: str) -> None:
    img = tmp_path / "d.img"
    make_disk(img, 64 * MiB, label=label, block_size=bs, parts=[PartSpec(32 * MiB), PartSpec(16 * MiB)])
    g = detect(img)
    assert g.block_size == bs, g
    assert ("GPT header" in g.reason) == (label == "gpt")


@pytest.mark.skipif(not have_tool("mke2fs"), reason="e2fsprogs")
@pytest.mark.parametrize("bs", [512, 4096])
def test_msdos_with_a_file_system(tmp_path: Path, bs: int) -> None:
    img = tmp_path / "d.img"
    make_disk(img, 64 * MiB, block_size=bs, parts=[PartSpec(8 * MiB), PartSpec(32 * MiB, "ext4")])
    g = detect(img)
    assert g.block_size == bs and "ext file system" in g.reason and not g.ambiguous


def test_spec_example_and_a_zipl_record(tmp_path: Path) -> None:
    build_spec_example(tmp_path / "spec.img", tmp_path / "work")
    g = detect(tmp_path / "spec.img")
    assert g.block_size == 512 and "program-table pointer" in g.reason


def test_a_4kn_dump_disk_says_so_twice(tmp_path: Path) -> None:
    from builders.fakes import quiet_ui

    from zipldump.plan.job import InstallJob, ProgramSpec
    from zipldump.sim.payloads import write_demo_payloads
    from zipldump.zipl.installer import install

    img = tmp_path / "d.img"
    make_disk(img, 320 * MiB, block_size=4096, parts=[PartSpec(300 * MiB)])
    p = write_demo_payloads(tmp_path / "p")
    install(InstallJob(image_path=img, mode="dumpto", partition=1, block_size=4096,
                       programs={0: ProgramSpec("dump", "dump", p.image, p.ramdisk)}, assume_yes=True), quiet_ui())
    g = detect(img)
    assert g.block_size == 4096 and not g.ambiguous, g


def test_nothing_to_go_by_is_512_and_the_override_wins(tmp_path: Path) -> None:
    img = tmp_path / "blank.img"
    img.write_bytes(bytes(MiB))
    assert detect(img).block_size == 512 and "common size" in detect(img).reason
    g = geometry(img, 4096)
    assert g.block_size == 4096 and not g.detected
    synthetic_kernel(tmp_path / "k")  # any file: not a disk, still a size
    assert detect(tmp_path / "k").block_size == 512


def test_a_small_partition_on_a_512_disk_is_not_read_as_4096(tmp_path: Path) -> None:
    """At 4096 its partition would also fit the disk: the 1 MiB alignment rule picks 512."""
    img = tmp_path / "d.img"
    make_disk(img, 64 * MiB, block_size=512, parts=[PartSpec(4 * MiB)])
    assert detect(img).block_size == 512
