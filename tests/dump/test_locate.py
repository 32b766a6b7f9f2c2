"""dump.N in a file system: the newest complete dump is found; an interrupted newer one is named, not a wall."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.disks import make_fs_disk
from builders.dumps import MIB, s390_dump
from builders.tools import have_tool

from zipldump.cli import main as cli_main
from zipldump.dump.locate import locate_dump

pytestmark = pytest.mark.skipif(not have_tool("debugfs"), reason="e2fsprogs")


def _fs_with_dumps(tmp_path: Path, *contents: bytes) -> Path:
    disk, fs = make_fs_disk(tmp_path, 512, 24 * MIB)
    for n, data in enumerate(contents):
        host = tmp_path / f"d{n}"
        host.write_bytes(data)
        fs.write_file(f"/dump.{n}", host)
    return disk


def test_a_zero_byte_newest_dump_does_not_hide_the_complete_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d0 = s390_dump(tmp_path / "a", 1 * MIB).read_bytes()
    d1 = s390_dump(tmp_path / "b", 1 * MIB, fill=b"one").read_bytes()
    cut = d1[: len(d1) // 2]  # a dump that died half way
    disk = _fs_with_dumps(tmp_path, d0, d1, cut, b"")
    with locate_dump(disk) as loc:
        assert loc.number == 1 and loc.available == [0, 1, 2, 3]
        assert [n.split(" ")[0] for n in loc.notes] == ["dump.3", "dump.2"]
    assert cli_main(["dumpinfo", str(disk)]) == 0
    err = capsys.readouterr().err
    assert "dump.3 is not complete" in err and "dump.2 is not complete" in err
    out = tmp_path / "out"
    assert cli_main(["-q", "getdump", str(disk), str(out)]) == 0
    assert out.read_bytes() == d1


def test_when_none_is_complete_the_newest_is_reported_incomplete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d0 = s390_dump(tmp_path / "a", 1 * MIB, end_tod=None).read_bytes()
    disk = _fs_with_dumps(tmp_path, d0, d0[:8192])
    with locate_dump(disk) as loc:
        assert loc.number == 1
    assert cli_main(["-q", "dumpinfo", str(disk)]) == 1  # as zgetdump -i for an incomplete dump


def test_an_explicit_number_is_taken_as_asked(tmp_path: Path) -> None:
    d0 = s390_dump(tmp_path / "a", 1 * MIB).read_bytes()
    disk = _fs_with_dumps(tmp_path, d0, b"")
    with locate_dump(disk, number=1) as loc:
        assert loc.number == 1 and loc.notes == []
