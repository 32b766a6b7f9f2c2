"""ExtFs through e2fsprogs at an offset: creation, files, block maps, allocation, ENOSPC, fsck."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess

import pytest
from builders.tools import have_tool

from zipldump.disk import extfs as extfs_mod
from zipldump.disk.extfs import ExtFs, find_tool, read_superblock
from zipldump.errors import DiskError, DumpSpaceError, ToolMissingError, UsageError

pytestmark = pytest.mark.skipif(not have_tool("mke2fs") or not have_tool("debugfs"), reason="e2fsprogs not installed")

MIB = 1 << 20
OFF = MIB
FSSIZE = 16 * MIB


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["ext2", "ext3", "ext4"])
def fs(request, tmp_image):
    path = tmp_image(32 * MIB)
    return ExtFs.create(path, OFF, FSSIZE, request.param)


def _pread(fs: ExtFs, block: int, n: int) -> bytes:
    with open(fs.image_path, "rb") as fh:
        fh.seek(fs.block_offset(block))
        return fh.read(n)


@pytest.mark.parametrize("fstype", ["ext2", "ext3", "ext4"])
def test_create_touches_only_its_area(tmp_image, fstype):
    path = tmp_image(32 * MIB, fill=b"\xa5\x5a\x00\xff")
    before = path.read_bytes()
    fs = ExtFs.create(path, OFF, FSSIZE, fstype)
    after = path.read_bytes()
    assert len(after) == len(before)
    assert _sha(after[:OFF]) == _sha(before[:OFF])
    assert _sha(after[OFF + FSSIZE :]) == _sha(before[OFF + FSSIZE :])
    assert after[OFF : OFF + FSSIZE] != before[OFF : OFF + FSSIZE]
    assert fs.fs_type == fstype and fs.block_size == 4096
    assert fs.fsck() == 0, fs.last_fsck_output
    # independent: dumpe2fs agrees on size and free blocks
    out = subprocess.run([find_tool("dumpe2fs"), "-h", fs.spec], capture_output=True, text=True).stdout
    assert f"Block count:              {FSSIZE // 4096}" in out
    assert f"Free blocks:              {fs.free_blocks()}" in out


def test_create_refuses_area_past_end(tmp_image):
    path = tmp_image(8 * MIB)
    with pytest.raises(DiskError, match="past the end"):
        ExtFs.create(path, OFF, 8 * MIB)
    assert path.stat().st_size == 8 * MIB  # mke2fs did not grow the file
    with pytest.raises(UsageError):
        ExtFs.create(path, OFF, 4 * MIB, "xfs")
    with pytest.raises(UsageError, match="journal"):
        ExtFs.create(path, OFF, 4 * MIB, "ext3")  # 1024 blocks: mke2fs would leave the journal out
    assert path.read_bytes().count(0) == 8 * MIB


def test_open_without_fs(tmp_image):
    path = tmp_image(8 * MIB)
    with pytest.raises(DiskError, match="no ext2/3/4 file system"):
        ExtFs(path, OFF, 4 * MIB)
    ExtFs.create(path, OFF, 4 * MIB)
    with pytest.raises(DiskError, match="more than its"):
        ExtFs(path, OFF, 2 * MIB)


def test_files_and_block_map(fs):
    rnd = random.Random(1)
    data = bytes(rnd.getrandbits(8) for _ in range(5 * 4096 + 123))
    fs.write_file("/one", data)
    assert fs.read_file("/one") == data
    assert fs.file_size("/one") == len(data)
    blocks = fs.block_map("/one")
    assert len(blocks) == 6 and 0 not in blocks
    got = b"".join(_pread(fs, b, 4096) for b in blocks)[: len(data)]
    assert got == data  # the map names the physical blocks that hold the bytes
    # all-zero blocks become holes, reported as 0
    holey = b"A" * 4096 + bytes(8192) + b"B" * 10
    fs.write_file("/holey", holey)
    m = fs.block_map("/holey")
    assert m[1] == m[2] == 0 and m[0] and m[3]
    assert _pread(fs, m[3], 10) == b"B" * 10
    assert fs.read_file("/holey") == holey
    # replace, listdir, mkdir, rename, remove
    fs.write_file("/one", b"short")
    assert fs.read_file("/one") == b"short"
    fs.mkdir("/dumps")
    fs.write_file("/dumps/dump.0", b"x")
    assert sorted(fs.listdir("/")) == ["dumps", "holey", "lost+found", "one"]
    assert fs.listdir("/dumps") == ["dump.0"]
    fs.rename("/dumps/dump.0", "/dumps/dump.1")
    assert fs.listdir("/dumps") == ["dump.1"] and fs.read_file("/dumps/dump.1") == b"x"
    with pytest.raises(DiskError, match="not empty"):
        fs.remove("/dumps")
    fs.remove("/dumps/dump.1")
    fs.remove("/dumps")
    assert not fs.exists("/dumps")
    assert fs.fsck() == 0, fs.last_fsck_output


def test_write_from_host_file_and_copy_out(fs, tmp_path):
    host = tmp_path / "in.bin"
    host.write_bytes(os.urandom(70000))
    fs.write_file("/h", host)
    fs.copy_out("/h", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == host.read_bytes()


def test_missing_file_errors(fs):
    with pytest.raises(DiskError, match="no such file"):
        fs.block_map("/nope")
    with pytest.raises(DiskError, match="no such file"):
        fs.read_file("/nope")
    with pytest.raises(DiskError, match="debugfs"):
        fs.mkdir("/lost+found")  # exists: debugfs exits 0 but reports it
    with pytest.raises(UsageError):
        fs.exists('/a"b')


def test_allocate_real_blocks_readable_through_fs(fs):
    size = 3 * MIB + 100
    blocks = fs.allocate("/dump.0", size)
    assert len(blocks) == -(-size // 4096) and 0 not in blocks
    assert fs.block_map("/dump.0") == blocks
    assert fs.file_size("/dump.0") == size
    assert fs.fsck() == 0, fs.last_fsck_output
    # stream into the returned blocks with plain I/O, then read back through the file system
    fd = os.open(fs.image_path, os.O_RDWR)
    try:
        for i, (off, n) in enumerate(fs.byte_runs(blocks)):
            os.pwrite(fd, bytes([i % 251 + 1]) * n, off)
        expected = b"".join(_pread(fs, b, 4096) for b in blocks)[:size]
    finally:
        os.close(fd)
    assert fs.read_file("/dump.0") == expected and expected.count(0) == 0
    # truncate to what was written: blocks past the end are freed and fsck stays clean
    free = fs.free_blocks()
    fs.set_size("/dump.0", 10000)
    assert fs.file_size("/dump.0") == 10000 and len(fs.block_map("/dump.0")) == 3
    assert fs.free_blocks() > free + 700
    assert fs.read_file("/dump.0") == expected[:10000]
    assert fs.fsck() == 0, fs.last_fsck_output
    with pytest.raises(DiskError, match="exists"):
        fs.allocate("/dump.0", 10)


def test_allocate_enospc_precheck(fs):
    free = fs.free_bytes()
    with pytest.raises(DumpSpaceError, match="only .* free"):
        fs.allocate("/dump.0", free + 4096)
    assert not fs.exists("/dump.0")
    assert fs.fsck() == 0


def test_allocate_enospc_in_debugfs_leaves_fs_clean(fs, monkeypatch):
    # Defeat the pre-check so debugfs itself runs out of space half-way.
    monkeypatch.setattr(extfs_mod, "_blocks_needed", lambda n, bs: 0)
    free = fs.free_blocks()
    with pytest.raises(DumpSpaceError, match="debugfs"):
        fs.allocate("/dump.0", (free + 10) * 4096)
    assert not fs.exists("/dump.0")
    assert fs.free_blocks() == free
    assert fs.fsck() == 0, fs.last_fsck_output


def test_write_file_enospc_leaves_no_file(fs, monkeypatch):
    data = os.urandom(fs.free_bytes() + 8192)
    with pytest.raises(DumpSpaceError):
        fs.write_file("/big", data)
    monkeypatch.setattr(extfs_mod, "_blocks_needed", lambda n, bs: 0)
    with pytest.raises(DumpSpaceError):
        fs.write_file("/big", data)
    assert not fs.exists("/big")
    assert fs.fsck() == 0, fs.last_fsck_output


def test_fsck_reports_damage(tmp_image):
    path = tmp_image(8 * MIB)
    fs = ExtFs.create(path, OFF, 4 * MIB)
    fs.write_file("/f", b"x" * 5000)
    fs._debugfs(["sif /f links_count 5"], write=True)  # damage: wrong link count
    assert fs.fsck() & 4
    assert fs.fsck(fix=True) & 1
    assert fs.fsck() == 0


def test_blocks_needed():
    assert extfs_mod._blocks_needed(12, 4096) == 12
    assert extfs_mod._blocks_needed(13, 4096) == 14
    assert extfs_mod._blocks_needed(12 + 1024, 4096) == 12 + 1024 + 1
    assert extfs_mod._blocks_needed(12 + 1024 + 1, 4096) == 12 + 1024 + 1 + 1 + 1 + 1


def test_tool_missing():
    with pytest.raises(ToolMissingError):
        find_tool("zipldump-no-such-tool")


def test_superblock_fields(tmp_image):
    path = tmp_image(8 * MIB)
    ExtFs.create(path, 2 * MIB, 4 * MIB, "ext4", 1024)
    sb = read_superblock(path, 2 * MIB)
    assert sb.block_size == 1024 and sb.blocks_count == 4096 and sb.first_data_block == 1


@pytest.mark.parametrize("fstype", ["ext2", "ext4"])
def test_allocate_1k_blocks_offsets(tmp_image, fstype):
    # with 1 KiB blocks block 0 is the boot block and the superblock is block 1: offsets stay fs-relative
    path = tmp_image(16 * MIB)
    fs = ExtFs.create(path, 3 * MIB, 8 * MIB, fstype, 1024)
    size = 300 * 1024 + 5  # crosses into double-indirect territory for block-mapped files
    blocks = fs.allocate("/d", size)
    assert len(blocks) == 301 and 0 not in blocks
    fd = os.open(path, os.O_RDWR)
    try:
        for i, b in enumerate(blocks):
            os.pwrite(fd, i.to_bytes(4, "big") * 256, fs.block_offset(b))
    finally:
        os.close(fd)
    data = fs.read_file("/d")
    assert len(data) == size
    assert all(data[i * 1024 : i * 1024 + 4] == i.to_bytes(4, "big") for i in range(301))
    assert fs.fsck() == 0, fs.last_fsck_output


def test_a_helper_dies_with_zipldump(tmp_path):
    """A debugfs left running after zipldump is killed would write the image without its lock."""
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "helper.pid"
    script = (
        "import sys; from zipldump.disk.extfs import run_helper; "
        f"run_helper(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'])"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        helper = int(pidfile.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        for _ in range(100):
            try:
                os.kill(helper, 0)
            except ProcessLookupError:
                break
            with open(f"/proc/{helper}/stat") as fh:  # a zombie waiting for its reaper counts as gone
                if fh.read().split()[2] == "Z":
                    break
            time.sleep(0.05)
        else:
            os.kill(helper, signal.SIGKILL)
            raise AssertionError("the helper outlived the killed zipldump process")
    finally:
        parent.kill()
