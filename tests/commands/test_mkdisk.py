"""The mkdisk command: arguments, JSON output, file systems in partitions, errors."""

from __future__ import annotations

import json

import pytest
from builders.tools import have_tool

from zipldump.cli import main
from zipldump.disk.extfs import ExtFs
from zipldump.disk.partitions import read_partition_table
from zipldump.errors import UsageError

MIB = 1 << 20


def _run_json(capsys, argv):
    rc = main(argv + ["--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


@pytest.mark.skipif(not have_tool("mke2fs"), reason="e2fsprogs not installed")
@pytest.mark.parametrize("bs", [512, 4096])
def test_mkdisk_gpt_with_fs(tmp_path, capsys, bs):
    img = tmp_path / "d.img"
    rc, res = _run_json(capsys, ["-q", "mkdisk", str(img), "--size", "64M", "--label", "gpt", "--block-size", str(bs),
                                 "--part", "8M", "--part", "rest:ext4"])
    assert rc == 0
    assert res["label"] == "gpt" and res["block_size"] == bs and res["disk_size"] == 64 * MIB
    p1, p2 = res["partitions"]
    assert (p1["number"], p1["start"], p1["length"], p1["start_bytes"], p1["size_bytes"], p1["fs"]) == (
        1, MIB // bs, 8 * MIB // bs, MIB, 8 * MIB, None)
    assert p2["start_bytes"] == 9 * MIB and p2["fs"] == "ext4"
    assert p2["fs_spec"] == f"{img}?offset={9 * MIB}"
    assert res["allocated_bytes"] < 8 * MIB  # sparse
    fs = ExtFs(img, p2["start_bytes"], p2["size_bytes"])
    assert fs.fsck() == 0 and fs.fs_type == "ext4"
    t = read_partition_table(img, bs)
    assert t.get(2).fs_type == "ext4"


@pytest.mark.skipif(not have_tool("mke2fs"), reason="e2fsprogs not installed")
def test_mkdisk_fs_stays_in_partition(tmp_path, capsys):
    img = tmp_path / "d.img"
    rc, res = _run_json(capsys, ["mkdisk", str(img), "--size", "32M", "--part", "4M:ext2", "--part", "4M", "--part", "8M:ext3"])
    assert rc == 0
    data = img.read_bytes()
    p = res["partitions"]
    # the unformatted middle partition and the gaps stay zero
    assert data[p[1]["start_bytes"] : p[1]["start_bytes"] + p[1]["size_bytes"]].count(0) == p[1]["size_bytes"]
    assert data[p[2]["start_bytes"] + p[2]["size_bytes"] :].count(0) == len(data) - p[2]["start_bytes"] - p[2]["size_bytes"]
    assert [x["fs"] for x in p] == ["ext2", None, "ext3"]


def test_mkdisk_human_output(tmp_path, capsys):
    img = tmp_path / "d.img"
    assert main(["-q", "mkdisk", str(img), "--size", "16M", "--part", "2M"]) == 0
    out = capsys.readouterr().out
    assert "msdos" in out and "2048" in out and "4096" in out


def test_mkdisk_errors(tmp_path, capsys):
    img = tmp_path / "d.img"
    assert main(["-q", "mkdisk", str(img), "--size", "8M", "--part", "8M"]) == UsageError.exit_code
    assert "does not fit" in capsys.readouterr().err
    assert not img.exists()
    assert main(["-q", "mkdisk", str(img), "--size", "8M", "--part", "1M:xfs"]) == UsageError.exit_code
    assert main(["-q", "mkdisk", str(img), "--size", "8M", "--part", "4M:ext3"]) == UsageError.exit_code
    assert "journal" in capsys.readouterr().err
    assert not img.exists() and not list(tmp_path.iterdir())
    assert main(["-q", "mkdisk", str(img), "--size", "8Q"]) == UsageError.exit_code
    assert main(["-q", "mkdisk", str(img), "--size", "8M"]) == 0
    assert main(["-q", "mkdisk", str(img), "--size", "8M"]) == UsageError.exit_code
    assert main(["-q", "mkdisk", str(img), "--size", "8M", "--force", "--label", "gpt"]) == 0
    assert read_partition_table(img).label == "gpt"


def test_mkdisk_plain_table_when_not_a_terminal(tmp_path, capsys):
    img = tmp_path / "d.img"
    assert main(["-q", "mkdisk", str(img), "--size", "16M", "--label", "gpt", "--part", "2M", "--part", "rest"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"{img}: gpt, 32768 blocks of 512 bytes")
    assert lines[1].split() == ["#", "start", "length", "end", "start", "bytes", "size", "bytes", "fs"]
    assert lines[2].split() == ["1", "2048", "4096", "6143", str(MIB), str(2 * MIB), "-"]
    assert not any(ch in out for ch in "┏━┃│└\x1b")  # no box drawing, no escape codes in a pipe


def test_mkdisk_refusals_are_one_line(tmp_path, capsys):
    img = tmp_path / "d.img"
    assert main(["-q", "mkdisk", str(img), "--size", "0"]) == UsageError.exit_code
    assert capsys.readouterr().err == "zipldump mkdisk: error: argument --size: size must be positive: '0' (see zipldump mkdisk --help)\n"
    assert not img.exists()
    assert main(["-q", "mkdisk", str(img), "--size", "8M"]) == 0
    before = img.read_bytes()
    assert main(["-q", "mkdisk", str(img), "--size", "16M"]) == UsageError.exit_code
    assert capsys.readouterr().err == f"zipldump: error: {img}: the image file exists; use --force to replace it\n"
    assert img.read_bytes() == before
