"""Outputs never clobber, copies never mix, inputs never hang (disk.io; issue: the three dangerous defects).

Each case here failed before disk.io existed: getdump renamed OUT.part over any
OUT (a device node, a FIFO, a symlink), copied a dump being rewritten and
called the copy complete, and blocked forever in open() on a FIFO input.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from builders.dumps import MIB, PART_START, dump_disk, s390_dump

from zipldump.cli import main as cli_main
from zipldump.disk.extfs import ExtFs
from zipldump.disk.io import OutputFile, open_input
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.dump.elf import write_elf, write_s390
from zipldump.dump.locate import locate_dump
from zipldump.dump.s390 import S390Dump
from zipldump.errors import DiskError, DumpChangedError, LockError, UsageError
from zipldump.formats import s390dump as sd
from zipldump.formats.dump_superblock import cksm

HANG = 20  # seconds: a case that blocks is a failure, not a stuck suite


def zipldump(*args: str, stdin: int | None = None, timeout: float = HANG) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "zipldump", *args], capture_output=True, stdin=stdin, timeout=timeout)


# --- 1. output is never a clobber -------------------------------------------------------------
def _node(kind: str, path: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "chardev":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a private /dev/null
    elif kind == "symlink-to-file":
        path.symlink_to(victim)
    elif kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "fifo")
        path.symlink_to(tmp_path / "fifo")
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "looping-symlink":
        path.symlink_to(path)
    elif kind == "directory":
        path.mkdir()
    return victim


NODES = ["fifo", "chardev", "symlink-to-file", "symlink-to-fifo", "dangling-symlink", "looping-symlink", "directory"]


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("kind", NODES)
def test_getdump_never_replaces_what_is_not_a_regular_file(tmp_path: Path, kind: str, overwrite: bool) -> None:
    dump = s390_dump(tmp_path / "dump")
    out = tmp_path / "out"
    victim = _node(kind, out, tmp_path)
    before = os.lstat(out).st_mode
    r = zipldump("getdump", str(dump), str(out), *(["--overwrite"] if overwrite else []), "--json")
    assert r.returncode == UsageError.exit_code, r.stderr
    assert os.lstat(out).st_mode == before, "OUT was replaced"
    assert victim.read_bytes() == b"keep me"
    assert not os.path.lexists(str(out) + ".part")
    assert b'"kind": "usage"' in r.stdout


def test_getdump_refusal_names_the_node_and_the_stream_option(tmp_path: Path) -> None:
    dump = s390_dump(tmp_path / "dump")
    os.mkfifo(tmp_path / "out")
    r = zipldump("getdump", str(dump), str(tmp_path / "out"), "--overwrite")
    msg = r.stderr.decode()
    assert "is a FIFO" in msg and "'-'" in msg and "OUT" in msg


def test_getdump_replaces_a_regular_file_only_when_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = s390_dump(tmp_path / "dump")
    out = tmp_path / "out"
    out.write_bytes(b"old")
    assert cli_main(["-q", "getdump", str(dump), str(out)]) == UsageError.exit_code
    assert out.read_bytes() == b"old"
    assert cli_main(["-q", "getdump", str(dump), str(out), "--overwrite"]) == 0
    assert out.read_bytes() == dump.read_bytes()


def test_planted_part_symlink_is_not_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = s390_dump(tmp_path / "dump")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (tmp_path / "out.part").symlink_to(victim)
    assert cli_main(["-q", "getdump", str(dump), str(tmp_path / "out")]) == UsageError.exit_code
    assert victim.read_bytes() == b"keep me"
    assert "out.part is a symbolic link" in capsys.readouterr().err


def test_stale_part_file_from_a_killed_run_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = s390_dump(tmp_path / "dump")
    (tmp_path / "out.part").write_bytes(b"half a dump")
    assert cli_main(["-q", "getdump", str(dump), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out").read_bytes() == dump.read_bytes()
    assert not (tmp_path / "out.part").exists()


@pytest.mark.parametrize("fmt", ["s390", "elf"])
def test_getdump_streams_to_stdout(tmp_path: Path, fmt: str) -> None:
    dump = s390_dump(tmp_path / "dump")
    assert cli_main(["-q", "getdump", str(dump), str(tmp_path / "file"), "--format", fmt]) == 0
    r = zipldump("getdump", str(dump), "-", "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (tmp_path / "file").read_bytes()


def test_getdump_elf_input_streams_to_stdout_with_save_areas(tmp_path: Path) -> None:
    """ELF -> s390 with CPUs: the save areas are laid into the ascending stream."""
    from zipldump.formats import elfcore as ec
    from zipldump.formats.lowcore import CpuRegisters

    regs = CpuRegisters(prefix=0x10000, psw_mask=0x0705000180000000, psw_addr=0x1234, gprs=tuple(range(16)))
    mem = bytearray(1 * MIB)
    mem[0x20000:0x20004] = b"DATA"
    notes = ec.build_notes([ec.Note(ec.CORE_NAME, ec.NT_PRPSINFO, ec.build_prpsinfo("vmlinux")), *ec.cpu_notes(regs, 1)])
    head = ec.build_ehdr(2) + ec.build_phdr(ec.PT_NOTE, offset=64 + 2 * 56, filesz=len(notes), memsz=0)
    data_off = 4096
    head += ec.build_phdr(ec.PT_LOAD, offset=data_off, filesz=len(mem), paddr=0, flags=7, align=4096)
    core = tmp_path / "core"
    core.write_bytes((head + notes).ljust(data_off, b"\0") + bytes(mem))
    assert cli_main(["-q", "getdump", str(core), str(tmp_path / "file")]) == 0
    r = zipldump("getdump", str(core), "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (tmp_path / "file").read_bytes()
    s = tmp_path / "streamed"
    s.write_bytes(r.stdout)
    with S390Dump(s) as d:
        assert d.complete and d.cpus[0].psw_addr == 0x1234 and d.read_memory(0x20000, 4) == b"DATA"


def test_getdump_stdout_and_json_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = s390_dump(tmp_path / "dump")
    assert cli_main(["getdump", str(dump), "-", "--json"]) == UsageError.exit_code


def test_output_that_appears_during_the_write_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    f = OutputFile(out, overwrite=False)
    f.write(b"new")
    out.symlink_to(tmp_path / "someone-elses")  # appears while we write
    with pytest.raises(UsageError, match="appeared while it was written"):
        f.finish()
    f.abort()
    assert out.is_symlink() and not os.path.lexists(str(out) + ".part")


def test_mkinitramfs_and_mkdisk_never_replace_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    lst = tmp_path / "list"
    lst.write_text("dir /dev 755 0 0\n")
    (tmp_path / "initrd").symlink_to(victim)
    assert cli_main(["-q", "mkinitramfs", str(lst), str(tmp_path / "initrd")]) == UsageError.exit_code
    (tmp_path / "disk").symlink_to(victim)
    assert cli_main(["-q", "mkdisk", str(tmp_path / "disk"), "--size", "4M", "--force"]) == UsageError.exit_code
    assert victim.read_bytes() == b"keep me" and (tmp_path / "initrd").is_symlink() and (tmp_path / "disk").is_symlink()


# --- 2. a copy is never a mix -------------------------------------------------------------------
class _Rewriter:
    """A progress sink that runs `action` once the copy is half done: a writer racing the reader."""

    def __init__(self, action: object) -> None:
        self.action = action
        self.seen = 0
        self.total = 0

    def progress(self, text: str, total: int) -> _Rewriter:
        self.total = total
        return self

    def __enter__(self) -> _Rewriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, n: int) -> None:
        before, self.seen = self.seen, self.seen + n
        if before < self.total // 2 <= self.seen:
            self.action()  # type: ignore[operator]


def _rewrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize("writer", [write_s390, write_elf])
def test_a_dump_rewritten_during_the_copy_is_never_published(tmp_path: Path, writer: object) -> None:
    dump = s390_dump(tmp_path / "dump", 8 * MIB)
    # A new dump starts: the writer's busy marker lands where the header was.
    race = _Rewriter(lambda: _rewrite(dump, 0, sd.BUSY_MARKER))
    with S390Dump(dump) as d:
        with pytest.raises(DumpChangedError, match="changed while the dump was read"):
            writer(d, tmp_path / "out", ui=race, chunk=1 * MIB)  # type: ignore[operator]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()


def test_new_end_marker_during_the_copy_is_caught(tmp_path: Path) -> None:
    dump = s390_dump(tmp_path / "dump", 8 * MIB)
    race = _Rewriter(lambda: _rewrite(dump, sd.HEADER_SIZE + 8 * MIB, sd.build_end_marker(0xC0C0000000000000)))
    with S390Dump(dump) as d, pytest.raises(DumpChangedError):
        write_s390(d, tmp_path / "out", ui=race, chunk=1 * MIB)


def test_partition_superblock_change_during_the_copy_is_caught(tmp_path: Path) -> None:
    img = dump_disk(tmp_path / "disk.img", s390_dump(tmp_path / "dump", 2 * MIB))
    with locate_dump(img) as loc, S390Dump(loc.source, recheck=loc.recheck) as d:
        sb_off = PART_START + 8 * MIB - 4096
        raw = bytearray(img.read_bytes()[sb_off : sb_off + 72])
        raw[-4:] = (cksm(b"\1" * 4096)).to_bytes(4, "big")  # someone re-summed a changed partition

        race = _Rewriter(lambda: _rewrite(img, sb_off, bytes(raw)))
        with pytest.raises(DumpChangedError, match="superblock or checksum changed"):
            write_s390(d, tmp_path / "out", ui=race, chunk=256 << 10)
    assert not (tmp_path / "out").exists()


def test_reader_holds_the_shared_lock_the_writers_honour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = dump_disk(tmp_path / "disk.img", s390_dump(tmp_path / "dump", 2 * MIB))
    with locate_dump(img):
        # A dump writer opens the disk exclusively: refused while the dump is read.
        from zipldump.disk.image import DiskImage

        with pytest.raises(LockError):
            DiskImage(img, writable=True)
    fd = os.open(img, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a dump writer is running
        assert cli_main(["-q", "getdump", str(img), str(tmp_path / "out")]) == LockError.exit_code
        assert cli_main(["-q", "dumpinfo", str(img)]) == LockError.exit_code
    finally:
        os.close(fd)
    assert not (tmp_path / "out").exists()
    assert cli_main(["-q", "getdump", str(img), str(tmp_path / "out")]) == 0


@pytest.mark.skipif(not any(os.access(os.path.join(d, "debugfs"), os.X_OK) for d in ("/sbin", "/usr/sbin")), reason="e2fsprogs")
def test_dump_n_replaced_during_the_copy_is_caught(tmp_path: Path) -> None:
    img = tmp_path / "fs.img"
    table = make_disk(img, 40 * MIB, parts=[PartSpec(32 * MIB, "ext2")])
    part = table.get(1)
    fs = ExtFs(img, part.start_bytes, part.size_bytes)
    fs.write_file("/dump.0", s390_dump(tmp_path / "d0", 2 * MIB))

    def replace_it() -> None:  # auto mode deleted dump.0 and wrote a new one
        fs.remove("/dump.0")
        fs.write_file("/big", bytes(1 * MIB))
        fs.write_file("/dump.0", s390_dump(tmp_path / "d1", 2 * MIB, fill=b"new"))

    with locate_dump(img, lock=False) as loc, S390Dump(loc.source, recheck=loc.recheck) as d:
        with pytest.raises(DumpChangedError):
            write_s390(d, tmp_path / "out", ui=_Rewriter(replace_it), chunk=256 << 10)


# --- 3. inputs never hang ----------------------------------------------------------------------
@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _fifo_cases(fifo: Path, tmp_path: Path) -> list[list[str]]:
    kernel = tmp_path / "kernel"
    kernel.write_bytes(bytes(0x20000))
    img = tmp_path / "img"
    img.write_bytes(bytes(4 * MIB))
    lst = tmp_path / "list"
    lst.write_text(f"file /init {fifo} 755 0 0\n")
    return [
        ["inspect", str(fifo)],
        ["dumpinfo", str(fifo)],
        ["getdump", str(fifo), str(tmp_path / "out")],
        ["install", str(img), "-c", str(fifo)],
        ["install", str(img), "--target", "1", "--image", str(fifo)],
        ["ipl", str(img), "--crashed", str(fifo)],
        ["mkinitramfs", str(fifo), str(tmp_path / "initrd")],
        ["mkinitramfs", str(lst), str(tmp_path / "initrd")],
        ["qemu-boot", str(fifo), "--expect", "x"],
    ]


@pytest.mark.parametrize("case", range(9))
def test_a_fifo_input_is_refused_at_once(tmp_path: Path, fifo: Path, case: int) -> None:
    args = _fifo_cases(fifo, tmp_path)[case]
    r = zipldump("-q", *args)  # a hang is subprocess.TimeoutExpired: the test fails
    assert r.returncode not in (0, 70), r.stderr
    assert b"FIFO" in r.stderr or b"not a regular file" in r.stderr, r.stderr


def test_a_pipe_through_proc_self_fd_is_refused(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        r = zipldump("-q", "inspect", "/dev/stdin", stdin=read_end)  # nobody ever writes or closes
    finally:
        os.close(read_end)
        os.close(write_end)
    assert r.returncode == DiskError.exit_code and b"FIFO" in r.stderr


def test_open_input_names_the_kind(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    with pytest.raises(DiskError, match="is a FIFO"):
        open_input(tmp_path / "f")
    with pytest.raises(UsageError, match="is a directory"):
        open_input(tmp_path, error=UsageError)
    (tmp_path / "r").write_bytes(b"x")
    fd = open_input(tmp_path / "r")
    try:
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(fd)
