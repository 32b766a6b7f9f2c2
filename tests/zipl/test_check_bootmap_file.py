"""inspect names the file that holds the bootmap, and a bootmap no file owns any more is an error of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.fakes import quiet_ui
from builders.kernels import synthetic_kernel
from builders.tools import have_tool

from zipldump.cli import main as cli_main
from zipldump.disk.extfs import ExtFs
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.errors import StaleBootmapError
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.zipl.check import inspect_disk
from zipldump.zipl.installer import install

pytestmark = pytest.mark.skipif(not have_tool("debugfs"), reason="e2fsprogs")
MiB = 1 << 20


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_the_bootmap_file_is_named_and_a_deleted_one_is_stale(tmp_path: Path, fstype: str, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    table = make_disk(img, 40 * MiB, parts=[PartSpec(4 * MiB), PartSpec(32 * MiB, fstype)])
    part = table.get(2)
    kernel = synthetic_kernel(tmp_path / "k")
    install(InstallJob(image_path=img, mode="target", partition=2, programs={0: ProgramSpec("linux", "ipl", kernel, None)},
                       assume_yes=True), quiet_ui())
    rep = inspect_disk(img)
    assert rep.valid, rep.problems
    assert rep.bootmap_file is not None and rep.bootmap_file.partition == 2 and rep.bootmap_file.files == ("/bootmap",)
    assert rep.to_json()["bootmap_file"] == {"partition": 2, "fs_type": fstype, "files": ["/bootmap"]}

    ExtFs(img, part.start_bytes, part.size_bytes).remove("/bootmap")  # block 0 still points at its blocks
    rep = inspect_disk(img)
    assert not rep.valid and rep.exit_code == StaleBootmapError.exit_code
    assert "belongs to no file" in rep.errors[0].message
    assert cli_main(["-q", "inspect", str(img)]) == StaleBootmapError.exit_code


def test_a_dump_disk_is_not_judged_by_file_ownership(tmp_path: Path) -> None:
    from zipldump.sim.payloads import write_demo_payloads

    img = tmp_path / "disk.img"
    make_disk(img, 72 * MiB, parts=[PartSpec(64 * MiB, "ext2")])  # a file system the dump tool replaces
    p = write_demo_payloads(tmp_path / "p")
    install(InstallJob(image_path=img, mode="dumpto", partition=1, programs={0: ProgramSpec("dump", "dump", p.image, p.ramdisk)},
                       assume_yes=True), quiet_ui())
    rep = inspect_disk(img)
    assert rep.valid, rep.problems
    assert rep.bootmap_file is None
