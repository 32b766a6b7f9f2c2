"""disk/io.py's positioned-I/O layer: full reads and writes, byte sources over ranges,
runs and memory maps (holes read as zeros), and the extent writer's O_DIRECT fallback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from zipldump.disk import io
from zipldump.disk.io import (
    DIRECT_ALIGN,
    DirectFile,
    Extents,
    ExtentWriter,
    MemoryMap,
    RangeSource,
    RunSource,
    aligned_buffer,
    pread_bytes,
    pread_full,
    pwrite_full,
    runs_of_blocks,
    zero_fill,
)
from zipldump.errors import DiskError, DumpError, DumpSpaceError, FormatError

MiB = 1 << 20


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = pattern(64 * 1024)
    path = tmp_path / "data"
    path.write_bytes(data)
    return path, data


# --- pread_full / pwrite_full ----------------------------------------------------------
def test_pread_full_continues_short_reads_and_retries_eintr(data_file, monkeypatch):
    path, data = data_file
    real = os.preadv
    calls = {"n": 0}

    def stingy(fd, buffers, offset):
        calls["n"] += 1
        if calls["n"] == 2:
            raise InterruptedError(errno.EINTR, "Interrupted system call")
        return real(fd, [buffers[0][:1000]], offset)  # at most 1000 bytes per call

    monkeypatch.setattr(io.os, "preadv", stingy)
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(10_000)
        assert pread_full(fd, buf, 123) == len(buf)
        assert buf == data[123 : 123 + 10_000]
        assert calls["n"] >= 11
    finally:
        os.close(fd)


def test_pread_full_is_short_only_at_the_end_and_names_the_offset_on_errors(data_file, monkeypatch):
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(100)
        assert pread_full(fd, buf, len(data) - 30) == 30
        assert buf[:30] == data[-30:]
        assert pread_full(fd, buf, len(data) + 5) == 0
        assert pread_bytes(fd, 100, len(data) - 10) == data[-10:]

        def broken(fd, buffers, offset):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(io.os, "preadv", broken)
        with pytest.raises(DiskError, match="read failed: Input/output error") as exc:
            pread_full(fd, buf, 0x2000, where="img")
        assert exc.value.where == "img offset 0x2000"
    finally:
        os.close(fd)


def test_pwrite_full_continues_short_writes_and_keeps_einval_raw_only_before_the_first_byte(tmp_path, monkeypatch):
    path = tmp_path / "out"
    path.write_bytes(bytes(8192))
    real = os.pwrite
    fd = os.open(path, os.O_RDWR)
    try:
        calls = {"n": 0}

        def stingy(fd, data, offset):
            calls["n"] += 1
            if calls["n"] == 3:
                raise InterruptedError(errno.EINTR, "Interrupted system call")
            return real(fd, memoryview(data)[:700], offset)

        monkeypatch.setattr(io.os, "pwrite", stingy)
        pwrite_full(fd, pattern(5000), 100)
        assert path.read_bytes()[100:5100] == pattern(5000)

        monkeypatch.setattr(io.os, "pwrite", lambda fd, data, offset: 0)
        with pytest.raises(DiskError, match="made no progress"):
            pwrite_full(fd, b"x", 0, where="img")

        def einval(fd, data, offset):
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(io.os, "pwrite", einval)
        with pytest.raises(OSError) as raw:
            pwrite_full(fd, b"x" * 10, 0, raw_errno=errno.EINVAL)
        assert not isinstance(raw.value, DiskError) and raw.value.errno == errno.EINVAL
        with pytest.raises(DiskError, match="write failed: Invalid argument"):
            pwrite_full(fd, b"x" * 10, 0)  # without raw_errno: the one error style

        # EINVAL after part of the data was written is a real failure, not a fallback.
        first = {"done": False}

        def half_then_einval(fd, data, offset):
            if not first["done"]:
                first["done"] = True
                return real(fd, memoryview(data)[:4], offset)
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(io.os, "pwrite", half_then_einval)
        with pytest.raises(DiskError, match="write failed") as exc:
            pwrite_full(fd, b"y" * 10, 0x40, where="img", raw_errno=errno.EINVAL)
        assert exc.value.where == "img offset 0x44"
    finally:
        os.close(fd)


def test_zero_fill_clears_more_than_its_zero_buffer():
    buf = bytearray(b"\xff" * (3 * MiB + 17))
    zero_fill(memoryview(buf)[5:])
    assert buf[:5] == b"\xff" * 5 and buf[5:] == bytes(len(buf) - 5)


# --- sources --------------------------------------------------------------------------
def test_range_source_is_a_clamped_byte_range(data_file):
    path, data = data_file
    with RangeSource(path, 1000, 500) as src:
        assert src.size == 500 and src.name == f"{path} at byte 0x3e8"
        buf = bytearray(200)
        assert src.readinto_at(400, buf) == 100  # short only at the end of the range
        assert buf[:100] == data[1400:1500]
    with RangeSource(path, len(data) - 10, 1000) as src:
        assert src.size == 10  # clamped to what the file has
    fd = os.open(path, os.O_RDONLY)
    try:
        win = RangeSource.window(fd, 8, 16, path=str(path))
        win.close()  # the descriptor stays the caller's
        assert os.pread(fd, 4, 8) == data[8:12]
    finally:
        os.close(fd)


def test_range_source_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DiskError, match="FIFO"):
        RangeSource(fifo)


def test_extents_split_a_range_over_spans_and_gaps():
    ext = Extents([(100, 50, "b"), (0, 10, "a"), (200, 0, "empty")])
    assert [s[0] for s in ext.spans] == [0, 100] and ext.end == 150
    assert list(ext.pieces(5, 200)) == [
        (5, 5, "a", 5),
        (10, 90, None, 0),
        (100, 50, "b", 0),
        (150, 55, None, 0),
    ]
    assert list(ext.pieces(120, 10)) == [(120, 10, "b", 20)]
    assert ext.find(3) == ("a", 3) and ext.find(10) is None and ext.find(149) == ("b", 49) and ext.find(150) is None
    with pytest.raises(ValueError, match="overlap"):
        Extents([(0, 10, 1), (5, 10, 2)])


def test_runs_of_blocks_coalesce_neighbours_and_holes():
    assert runs_of_blocks([7, 8, 9, 0, 0, 20, 22, 23]) == [(0, 7, 3), (3, None, 2), (5, 20, 1), (6, 22, 2)]
    assert runs_of_blocks([]) == []
    assert Extents.of_runs(runs_of_blocks([0, 5, 6])).spans == [(1, 2, 5)]


def test_run_source_reads_runs_and_holes_and_ends_at_its_size(tmp_path):
    bs = 1024
    image = tmp_path / "image"
    blocks_data = {n: pattern(bs, seed=n) for n in (3, 4, 9)}
    raw = bytearray(16 * bs + 512)
    for n, d in blocks_data.items():
        raw[512 + n * bs : 512 + (n + 1) * bs] = d
    image.write_bytes(bytes(raw))
    block_map = [3, 4, 0, 9]  # logical 2 is a hole
    size = 3 * bs + 100  # ends inside the last block
    want = blocks_data[3] + blocks_data[4] + bytes(bs) + blocks_data[9][:100]
    with RunSource(image, runs_of_blocks(block_map), size=size, unit=bs, base=512, name="f") as src:
        assert src.size == size
        buf = bytearray(size + 50)
        assert src.readinto_at(0, buf) == size
        assert bytes(buf[:size]) == want
        small = bytearray(bs)
        assert src.readinto_at(bs + 1000, small) == bs
        assert bytes(small) == want[bs + 1000 : 2 * bs + 1000]  # across a run end into the hole
        assert src.readinto_at(size, small) == 0
    with pytest.raises(ValueError, match="exceeds"):
        RunSource(image, [(0, 1, 1)], size=2, unit=1)


def test_run_source_names_an_image_that_shrank(tmp_path):
    image = tmp_path / "image"
    image.write_bytes(pattern(8192))
    with RunSource(image, [(0, 4096, 4096)], name="dump.0") as src:
        os.truncate(image, 6000)
        with pytest.raises(DiskError, match="ends early") as exc:
            src.readinto_at(0, bytearray(4096))
        assert exc.value.where == "dump.0 at 0x770"  # 6000 - 4096: the first byte missing


def test_memory_map_zero_fills_holes_and_keeps_the_callers_error_class(data_file):
    path, data = data_file
    a = RangeSource(path, 0, 4096)
    b = RangeSource(path, 8192, 4096)
    mm = MemoryMap([(1 << 20, 4096, b), (0, 4096, a)], name="core", error=FormatError, closes=[a, b])
    assert mm.size == (1 << 20) + 4096
    buf = bytearray(8192)
    assert mm.readinto_at(0, buf) == 8192
    assert buf == data[:4096] + bytes(4096)
    buf = bytearray(b"\xff" * 8192)
    mm.readinto_at((1 << 20) - 100, buf)  # hole, range, past the end
    assert buf == bytes(100) + data[8192 : 8192 + 4096] + bytes(8192 - 4196)
    mm.close()
    assert a._fd == -1 and b._fd == -1

    short = RangeSource.window(os.open(path, os.O_RDONLY), len(data) - 10, 100, path=str(path))
    try:
        bad = MemoryMap([(0, 100, short)], name="core", error=FormatError)
        with pytest.raises(FormatError, match="ends early"):
            bad.readinto_at(0, bytearray(100))
        bad.error = DumpError
        with pytest.raises(DumpError):
            bad.readinto_at(0, bytearray(100))
    finally:
        os.close(short._fd)


def test_crashed_raw_memory_is_a_memory_map_with_dump_errors(tmp_path):
    from zipldump.sim.crashed import from_raw

    image = tmp_path / "mem.raw"
    image.write_bytes(pattern(MiB))
    with from_raw(image, 1) as crashed:
        assert crashed.read_original(0x1000, 16) == pattern(MiB)[0x1000:0x1010]
        os.truncate(image, 0x8000)
        with pytest.raises(DumpError, match="ends early"):
            crashed.read_original(0x7000, 0x2000)


def test_former_names_are_the_layer_types():
    from zipldump.dump import write_partition
    from zipldump.dump.s390 import ByteSource, FileSource

    assert FileSource is RangeSource and ByteSource is io.ByteSource
    assert write_partition.DirectFile is DirectFile and write_partition.ExtentWriter is ExtentWriter


# --- ExtentWriter and DirectFile --------------------------------------------------------
class FakeImage:
    """DiskImage's write side: buffered writes into a file, recorded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.writes: list[tuple[int, int]] = []

    def write_at(self, offset: int, data) -> None:
        self.writes.append((offset, len(data)))
        with open(self.path, "r+b") as fh:
            fh.seek(offset)
            fh.write(bytes(data))


def _image(tmp_path: Path, size: int = 64 * 4096) -> Path:
    path = tmp_path / "img"
    path.write_bytes(bytes(size))
    return path


def _payload(n: int) -> memoryview:
    buf = aligned_buffer(n)
    buf[:] = pattern(n, seed=3)
    return buf


def test_extent_writer_splits_over_extents_and_goes_direct_where_aligned(tmp_path, monkeypatch):
    path = _image(tmp_path)
    disk = FakeImage(path)
    direct = []
    real = DirectFile.write_at

    def counting(self, offset, data):
        direct.append((offset, len(data)))
        real(self, offset, data)

    monkeypatch.setattr(DirectFile, "write_at", counting)
    # Dump bytes 0..8K at image 16K, 8K..20K at image 40K.
    writer = ExtentWriter(disk, [(0, 4 * 4096, 2 * 4096), (2 * 4096, 10 * 4096, 3 * 4096)])
    assert writer.size == 5 * 4096
    data = _payload(5 * 4096)
    try:
        writer.write(0, data, aligned=True)
    finally:
        writer.close()
    img = path.read_bytes()
    assert img[4 * 4096 : 6 * 4096] == bytes(data[: 2 * 4096])
    assert img[10 * 4096 : 13 * 4096] == bytes(data[2 * 4096 :])
    if DirectFile.open(str(path)) is not None:  # the file system has O_DIRECT (not tmpfs)
        assert direct == [(4 * 4096, 2 * 4096), (10 * 4096, 3 * 4096)] and not disk.writes
        assert writer.direct_bytes == 5 * 4096
    else:
        assert disk.writes == [(4 * 4096, 2 * 4096), (10 * 4096, 3 * 4096)] and writer.direct_bytes == 0


def test_extent_writer_buffers_unaligned_pieces(tmp_path, monkeypatch):
    path = _image(tmp_path)
    disk = FakeImage(path)
    monkeypatch.setattr(DirectFile, "write_at", lambda self, offset, data: pytest.fail("no direct write expected"))
    writer = ExtentWriter(disk, [(0, 512, 8 * 4096)])  # image offset not DIRECT_ALIGN-aligned
    writer.write(0, _payload(4096), aligned=True)
    writer.write(4096, b"abc")  # not from an aligned buffer
    writer.close()
    assert disk.writes == [(512, 4096), (512 + 4096, 3)]
    assert 512 % DIRECT_ALIGN


def test_extent_writer_falls_back_to_buffered_when_direct_io_is_missing_or_refused(tmp_path, monkeypatch):
    path = _image(tmp_path)
    # No O_DIRECT at all (tmpfs): everything buffered.
    monkeypatch.setattr(DirectFile, "open", classmethod(lambda cls, p: None))
    disk = FakeImage(path)
    writer = ExtentWriter(disk, [(0, 0, 16 * 4096)])
    writer.write(0, _payload(2 * 4096), aligned=True)
    assert disk.writes == [(0, 2 * 4096)] and writer.direct_bytes == 0
    writer.close()

    # O_DIRECT opens, but the first write says EINVAL: that write and all later ones buffered.
    attempts = []

    def einval(self, offset, data):
        attempts.append(offset)
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(DirectFile, "open", classmethod(lambda cls, p: cls(p, -1)))
    monkeypatch.setattr(DirectFile, "close", lambda self: None)
    monkeypatch.setattr(DirectFile, "write_at", einval)
    disk = FakeImage(path)
    writer = ExtentWriter(disk, [(0, 0, 16 * 4096)])
    data = _payload(4 * 4096)
    writer.write(0, data[: 2 * 4096], aligned=True)
    writer.write(2 * 4096, data[2 * 4096 :], aligned=True)
    writer.close()
    assert attempts == [0]
    assert disk.writes == [(0, 2 * 4096), (2 * 4096, 2 * 4096)]
    assert path.read_bytes()[: 4 * 4096] == bytes(data)

    # A dry run never opens the image for direct writes.
    monkeypatch.setattr(DirectFile, "open", classmethod(lambda cls, p: pytest.fail("opened for a dry run")))
    disk = FakeImage(path)
    disk.dry_run = True  # type: ignore[attr-defined]
    ExtentWriter(disk, [(0, 0, 4096)]).write(0, _payload(4096), aligned=True)
    assert disk.writes == [(0, 4096)]


def test_direct_file_write_errors(tmp_path, monkeypatch):
    path = _image(tmp_path)
    direct = DirectFile(str(path), os.open(path, os.O_RDONLY))  # not writable: EBADF
    try:
        with pytest.raises(DiskError, match="write failed") as exc:
            direct.write_at(4096, _payload(4096))
        assert exc.value.where == f"{path} offset 0x1000"
    finally:
        direct.close()
    assert direct.fd == -1


def test_extent_writer_refuses_bytes_outside_or_between_extents(tmp_path):
    disk = FakeImage(_image(tmp_path))
    writer = ExtentWriter(disk, [(0, 0, 4096)], direct=False)
    with pytest.raises(DumpSpaceError, match="outside"):
        writer.write(4000, b"x" * 200)
    gappy = ExtentWriter(disk, [(0, 0, 100), (200, 4096, 100)], direct=False)
    with pytest.raises(DumpSpaceError, match="no place"):
        gappy.write(50, b"x" * 200)
