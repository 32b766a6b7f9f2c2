"""DiskImage: bounds checks, locking, dry run, block I/O."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zipldump.disk.image import DiskImage
from zipldump.errors import DiskError, LockError, PointerError


def test_read_write_blocks(tmp_image):
    path = tmp_image(64 * 512)
    with DiskImage(path, 512, writable=True) as disk:
        assert disk.size == 64 * 512 and disk.nblocks == 64 and disk.block_size == 512
        disk.write_block(3, b"\xaa" * 512)
        disk.write_block(4, b"xyz")  # short: only three bytes change
        disk.flush()
        assert disk.read_block(3) == b"\xaa" * 512
        assert disk.read_block(4)[:4] == b"xyz\0"
        assert disk.read_block(3, 2)[510:515] == b"\xaa\xaaxyz"
    raw = path.read_bytes()
    assert raw[3 * 512 : 4 * 512] == b"\xaa" * 512
    assert raw[4 * 512 : 4 * 512 + 3] == b"xyz"
    assert raw.count(0) == len(raw) - 512 - 3


def test_4096_blocks(tmp_image):
    path = tmp_image(16 * 4096)
    with DiskImage(path, 4096, writable=True) as disk:
        assert disk.nblocks == 16
        disk.write_block(15, b"\x01" * 4096)
        buf = bytearray(4096)
        assert disk.readinto_at(15 * 4096, buf) == 4096
        assert buf == b"\x01" * 4096
        with pytest.raises(PointerError) as ei:
            disk.read_block(16)
        assert ei.value.where == "LBA 0x10"


def test_read_past_end_names_lba(tmp_image):
    path = tmp_image(8 * 512)
    with DiskImage(path) as disk:
        with pytest.raises(PointerError, match="outside the disk") as ei:
            disk.read_block(7, 2)
        assert ei.value.where == "LBA 0x7"
        with pytest.raises(PointerError) as ei:
            disk.read_at(8 * 512 - 10, 11)
        assert ei.value.where == "LBA 0x7"
        with pytest.raises(PointerError):
            disk.read_block(-1)
        assert disk.read_at(8 * 512 - 10, 10) == bytes(10)


def test_write_past_end_names_offset(tmp_image):
    path = tmp_image(8 * 512)
    before = path.read_bytes()
    with DiskImage(path, writable=True) as disk:
        with pytest.raises(DiskError, match="past the end") as ei:
            disk.write_at(8 * 512 - 2, b"abc")
        assert ei.value.where == "offset 0xffe"
        with pytest.raises(DiskError):
            disk.write_block(8, b"a")
    assert path.read_bytes() == before


def test_readonly_refuses_write(tmp_image):
    path = tmp_image(4096)
    with DiskImage(path) as disk, pytest.raises(DiskError, match="read-only"):
        disk.write_at(0, b"x")


def test_missing_file_and_bad_block_size(tmp_path):
    with pytest.raises(DiskError, match="cannot open"):
        DiskImage(tmp_path / "nope.img")
    (tmp_path / "a.img").write_bytes(bytes(4096))
    with pytest.raises(DiskError, match="block size"):
        DiskImage(tmp_path / "a.img", 520)
    with pytest.raises(DiskError, match="not a regular file"):
        DiskImage(tmp_path)


def test_dry_run_changes_nothing(tmp_image):
    path = tmp_image(32 * 512, fill=b"\x5a")
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with DiskImage(path, writable=True, dry_run=True) as disk:
        disk.write_block(0, b"\0" * 512)
        disk.write_at(1000, b"hello")
        disk.flush()
        assert [(w.offset, w.length) for w in disk.writes] == [(0, 512), (1000, 5)]
        assert disk.read_block(0) == b"\x5a" * 512  # nothing reached the file
        with pytest.raises(DiskError):
            disk.write_at(32 * 512, b"x")  # bounds still checked
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime


def test_dry_run_makes_the_checks_of_a_writable_open(tmp_image, monkeypatch):
    """A dry run must fail where the real run would: on a held image and without write permission."""
    path = tmp_image(4096)
    with DiskImage(path):  # a reader (shared lock): a real writer could not start
        with pytest.raises(LockError):
            DiskImage(path, writable=True)
        with pytest.raises(LockError):
            DiskImage(path, writable=True, dry_run=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK else real_access(p, mode, **kw))
    with pytest.raises(DiskError, match="cannot open: Permission denied") as ei:
        DiskImage(path, writable=True, dry_run=True)
    assert ei.value.where == str(path)
    DiskImage(path, dry_run=True).close()  # a read-only open needs no write permission


def test_lock_second_open_in_same_process(tmp_image):
    path = tmp_image(4096)
    with DiskImage(path, writable=True):
        with pytest.raises(LockError, match="in use by another zipldump process") as ei:
            DiskImage(path, writable=True)
        assert ei.value.exit_code == LockError.exit_code
        with pytest.raises(LockError):
            DiskImage(path)  # readers wait for no writer either
        DiskImage(path, lock=False).close()
    # released on close
    with DiskImage(path, writable=True):
        pass
    with DiskImage(path), DiskImage(path):  # shared locks coexist
        pass


def test_lock_held_by_other_process_names_pid(tmp_image):
    path = tmp_image(4096)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from zipldump.disk.image import DiskImage\n"
         "d = DiskImage(sys.argv[1], writable=True); print('locked', flush=True); sys.stdin.read()",
         str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError) as ei:
            DiskImage(path, writable=True)
        assert f"pid {holder.pid}" in str(ei.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    with DiskImage(path, writable=True):
        pass


def test_size_not_multiple_of_block(tmp_image):
    path = tmp_image(4096 + 100)
    with DiskImage(path, 4096) as disk:
        assert disk.size == 4196 and disk.nblocks == 1
        with pytest.raises(PointerError):
            disk.read_block(1)


def test_read_at_huge_length_is_a_pointer_error_not_an_allocation(tmp_path):
    """A corrupted length field (e.g. a superblock csum_size) must not allocate first."""
    p = tmp_path / "small.img"
    p.write_bytes(bytes(4096))
    with DiskImage(p) as disk, pytest.raises(PointerError):
        disk.read_at(0, 1 << 60)
