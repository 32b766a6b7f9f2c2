"""`--dumpto`: SCSI dump partition installs checked against the spec, the strict
reader, and byte-by-byte "nothing outside our own blocks changed" comparisons."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import threading
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from builders.checks import assert_block0_last
from builders.fakes import FakeTty
from builders.harness import kill_at, load_shas, record_events
from builders.tools import have_tool

from zipldump.cli import main
from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.disk.partitions import read_partition_table as read_table
from zipldump.errors import (
    AbortedError,
    DiskError,
    HsaLimitError,
    LockError,
    PartitionTooSmallError,
    UsageError,
)
from zipldump.formats.dump_superblock import SB_SEED
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.plan.layout import estimate_scsi_dump_size
from zipldump.ui import UI
from zipldump.zipl import bootmap as reader
from zipldump.zipl.installer import install

MIB = 1 << 20
PATTERN = bytes(range(256))


def make_kernel_no_cmdline(path: Path, size: int = 0x20000, max_cl: int = 4096) -> Path:
    """Synthetic s390 kernel: S390EP, a zeroed parm area with the command-line limit, no built-in command line."""
    data = bytearray((i * 7 + 3) & 0xFF for i in range(size))
    data[0x10008:0x1000E] = b"S390EP"
    data[0x10400:0x10480] = bytes(0x80)
    struct.pack_into(">Q", data, 0x10430, max_cl)
    path.write_bytes(bytes(data))
    return path


def quiet() -> UI:
    return UI(quiet=True, interactive=False)


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def fill(path: Path, offset: int, length: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write((PATTERN * (length // 256 + 1))[:length])


def changed_offsets(a: Path, b: Path, chunk: int = 1 << 16) -> list[tuple[int, int]]:
    """Changed byte ranges [start, end) between two same-sized images (data regions only)."""
    out: list[tuple[int, int]] = []
    size = os.path.getsize(a)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offs: set[int] = set()
        for fh in (fa, fb):
            pos = 0
            while pos < size:
                try:
                    d = os.lseek(fh.fileno(), pos, os.SEEK_DATA)
                except OSError:
                    break
                h = os.lseek(fh.fileno(), d, os.SEEK_HOLE)
                offs.update(range(d // chunk * chunk, h, chunk))
                pos = h
        for off in sorted(offs):
            fa.seek(off)
            fb.seek(off)
            x, y = fa.read(chunk), fb.read(chunk)
            if x == y:
                continue
            i = 0
            while i < len(x):
                if x[i] != y[i]:
                    j = i
                    while j < len(x) and x[j] != y[j]:
                        j += 1
                    if out and out[-1][1] == off + i:
                        out[-1] = (out[-1][0], off + j)
                    else:
                        out.append((off + i, off + j))
                    i = j
                else:
                    i += 1
    return out


def allowed_ranges(result, bs: int) -> list[tuple[int, int]]:
    rngs = [(0, 0x98), (result.target.start_bytes, result.target.start_bytes + 64 * 1024)]
    for w in result.layout.writes():
        n = w.length if w.source is not None else len(w.data)
        rngs.append((w.lba * bs, w.lba * bs + n))
    return rngs


def inside(r: tuple[int, int], rngs: list[tuple[int, int]]) -> bool:
    # every byte of r must be covered; ranges may be adjacent
    pos = r[0]
    for s, e in sorted(rngs):
        if s <= pos < e:
            pos = e
        if pos >= r[1]:
            return True
    return pos >= r[1]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    k = make_kernel_no_cmdline(tmp_path / "zfcpdump-image")
    r = tmp_path / "zfcpdump-initrd"
    r.write_bytes(bytes((i * 13) & 0xFF for i in range(300_000)))
    s = tmp_path / "stage3.bin"
    s.write_bytes(b"\xa7\xf4" + b"S" * (0x4000 - 2))
    return {"kernel": k, "ramdisk": r, "stage3": s}


def two_partition_disk(tmp_path: Path, bs: int, part: int | None = None) -> Path:
    """A blank disk to install into: partition 1 (`part` bytes) and partition 2 (the rest), no file systems."""
    img = tmp_path / f"disk{bs}.img"
    part = part or (40 * MIB if bs == 512 else 264 * MIB)
    make_disk(img, part + 6 * MIB, block_size=bs, parts=[PartSpec(part), PartSpec(None)])
    return img


def job(img: Path, files: dict[str, Path], bs: int, **kw) -> InstallJob:
    prog = ProgramSpec("dump", "dump", files["kernel"], files.get("ramdisk"), kw.pop("parameters", None))
    return InstallJob(img, "dumpto", kw.pop("partition", 1), {0: prog}, block_size=bs, assume_yes=kw.pop("assume_yes", True), **kw)


@pytest.mark.parametrize("bs", [512, 4096])
@pytest.mark.parametrize("with_stage3", [True, False])
def test_dumpto_writes_only_its_own_bytes(tmp_path: Path, files, bs: int, with_stage3: bool) -> None:
    img = two_partition_disk(tmp_path, bs)
    with DiskImage(img, bs) as d:
        from zipldump.disk.partitions import read_partition_table

        t = read_partition_table(d)
    p1, p2 = t.get(1), t.get(2)
    # pattern: boot code in block 0, start and tail of both partitions
    fill(img, 0, 0x1B8)
    for p in (p1, p2):
        fill(img, p.start_bytes, 256 * 1024)
        fill(img, p.start_bytes + p.size_bytes - 4 * MIB, 4 * MIB)
    before = tmp_path / "before.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(before)], check=True)
    res = install(job(img, files, bs, stage3=files["stage3"] if with_stage3 else None), quiet())
    assert res.verified and not res.dry_run
    # -- what changed is exactly block 0 bytes 0..0x97, the 64 KiB wipe, and the tail writes
    rngs = allowed_ranges(res, bs)
    bad = [r for r in changed_offsets(before, img) if not inside(r, rngs)]
    assert bad == [], [(hex(a), hex(b)) for a, b in bad[:5]]
    # -- §7.3 position and superblock fields
    size = estimate_scsi_dump_size(os.path.getsize(files["kernel"]), os.path.getsize(files["ramdisk"]), bs)
    start = p1.length - size
    assert res.bootmap_start == start and res.dump_size == start * bs
    assert res.layout.header_lba == p1.start + start and res.layout.superblock_lba == p1.start + start + 2
    with DiskImage(img, bs) as d:
        br = reader.read_boot_record(d)
        assert br.has_pc_label and br.boot_info.bp_type == 1 and br.boot_info.dev_type == 2
        assert br.boot_info.dump_sb_offset == res.superblock_offset == (p1.start + start + 2) * bs
        sb = reader.read_superblock(d, br.boot_info.dump_sb_offset)
        assert (sb.part_start, sb.part_size, sb.dump_size, sb.csum) == (p1.start_bytes, p1.size_bytes, start * bs, SB_SEED)
        assert reader.superblock_checksum(d, sb) == sb.csum
        assert d.read_at(p1.start_bytes, 64 * 1024) == bytes(64 * 1024)
        assert d.read_at(p1.start_bytes + 64 * 1024, 16) == (PATTERN * 256)[:16]  # byte 65536 kept
        assert d.read_block(0)[0x98:0x1B8] == (PATTERN * 2)[0x98:0x1B8]
        # -- strict reader: one DUMP program, data equal to the input files
        pt = reader.read_program_table(d, br.program_table)
        assert [i for i, _ in pt.valid()] == [0]
        ct = reader.read_component_table(d, pt.entries[0])
        assert ct.header_type == 1
        loads = [e for e in ct.entries if e.type == 2]
        want = {c["address"]: c for c in res.to_json()["programs"][0]["components"]}
        assert [e.address for e in loads] == list(want)
        for e in loads:
            bl = reader.walk_block_list(d, e.blocklist)
            assert reader.component_sha256(d, bl.pointers, want[e.address]["length"]) == want[e.address]["sha256"]
    kern = want[0x10000]
    if with_stage3:
        assert ct.execute.psw == 0x000800008000A000
        assert kern["sha256"] == hashlib.sha256(files["kernel"].read_bytes()).hexdigest()
    else:
        assert ct.execute.psw == 0x0008000080010000
        assert kern["length"] == 0x10000


def test_dumpto_reinstall_and_cli_json(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    install(job(img, files, 512, stage3=files["stage3"]), quiet())
    first = sha(img)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["-q", "install", str(img), "--dumpto", "1", "--image", str(files["kernel"]), "--ramdisk", str(files["ramdisk"]),
                   "--stage3", str(files["stage3"]), "-n", "--json"])
    assert rc == 0
    data = json.loads(out.getvalue())
    assert sha(img) == first  # same inputs, same bytes
    assert data["mode"] == "dumpto" and data["verified"] and data["superblock_offset"] % 512 == 0
    assert [c["kind"] for c in data["programs"][0]["components"]] == ["heap", "stack", "loader", "params", "kernel", "parmline", "ramdisk"]
    assert data["programs"][0]["parmline"] == "root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"


def test_hsa_refusal_writes_nothing(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    big = tmp_path / "big-initrd"
    with open(big, "wb") as fh:
        fh.truncate(33 * MIB)
    before = sha(img)
    files = dict(files, ramdisk=big)
    with pytest.raises(HsaLimitError, match="component 'initial ramdisk'.*ends above the HSA limit 0x02000000"):
        install(job(img, files, 512), quiet())
    assert sha(img) == before
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["-q", "install", str(img), "--dumpto", "1", "--image", str(files["kernel"]), "--ramdisk", str(big), "-n", "--json"])
    assert rc == 11 and json.loads(out.getvalue())["error"]["kind"] == "hsa-limit"
    assert sha(img) == before


def test_dry_run_changes_nothing(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    fill(img, 1 * MIB, 128 * 1024)  # data at the partition start: a loss
    before, mtime = sha(img), img.stat().st_mtime_ns
    res = install(job(img, files, 512, dry_run=True), quiet())
    assert res.dry_run and sha(img) == before and img.stat().st_mtime_ns == mtime
    assert res.losses and "first 64 KiB of partition 1" in res.losses[0]


@pytest.mark.parametrize(
    ("offset", "data", "loss"),
    [
        (0x438, b"\x53\xef", "ext2/3/4 file system on partition 1"),
        (0, bytes.fromhex("a8190173618f23fd"), "s390 dump on partition 1"),
        (0, b"\x7fELF\x02\x02\x01", "ELF dump on partition 1"),
        (0, bytes.fromhex("a8190173618f23fe"), "s390_ext dump on partition 1"),
        (0, bytes.fromhex("a8190173618f23ed"), "LKCD dump on partition 1"),
        (0, b"zfcpdump busy\0", "unfinished dump on partition 1"),
        (100, b"\x01", "data in the first 64 KiB of partition 1"),
    ],
)
def test_confirmation_refuses_without_terminal(tmp_path: Path, files, offset: int, data: bytes, loss: str) -> None:
    img = two_partition_disk(tmp_path, 512)
    with open(img, "r+b") as fh:
        fh.seek(MIB + offset)
        fh.write(data)
    before = sha(img)
    with pytest.raises(AbortedError, match=loss):
        install(job(img, files, 512, assume_yes=False), quiet())
    assert sha(img) == before


def test_lock_contention(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    before = sha(img)
    with DiskImage(img, 512, writable=True):
        with pytest.raises(LockError):
            install(job(img, files, 512), quiet())
    assert sha(img) == before


def test_refusals(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    with pytest.raises(UsageError, match="not a partition"):
        install(job(img, files, 512, partition=0), quiet())
    with pytest.raises(DiskError, match="no partition 3"):
        install(job(img, files, 512, partition=3), quiet())
    # partition 2 (6 MiB) is too small for zipl's 32 MiB reserve
    with pytest.raises(PartitionTooSmallError):
        install(job(img, files, 512, partition=2), quiet())
    # no 55 AA
    raw = tmp_path / "raw.img"
    with open(raw, "wb") as fh:
        fh.truncate(8 * MIB)
    with pytest.raises(DiskError, match="55 AA"):
        install(job(raw, files, 512), quiet())
    # extended partition entry
    ext = tmp_path / "ext.img"
    mbr = bytearray(512)
    struct.pack_into("<B3sB3sII", mbr, 0x1BE, 0, bytes(3), 0x05, bytes(3), 2048, 8192)
    struct.pack_into("<B3sB3sII", mbr, 0x1BE + 16, 0, bytes(3), 0x83, bytes(3), 10240, 100000)
    mbr[510:] = b"\x55\xaa"
    with open(ext, "wb") as fh:
        fh.write(mbr)
        fh.truncate(64 * MIB)
        fh.seek(2048 * 512 + 510)
        fh.write(b"\x55\xaa")  # an empty EBR
    before = sha(ext)
    with pytest.raises(UsageError, match="Invalid dump device: partition 1 is an extended partition"):
        install(job(ext, files, 512), quiet())
    assert sha(ext) == before


def test_second_install_fails_fast_while_first_runs(tmp_path: Path, files) -> None:
    """Two installs at once: the second gets LockError instead of interleaving writes."""
    img = two_partition_disk(tmp_path, 512)
    entered, release = threading.Event(), threading.Event()

    class SlowUI(UI):
        def confirm(self, question, losses, *, assume_yes, where=None):
            entered.set()
            release.wait(10)

    errors: list[BaseException] = []

    def first() -> None:
        try:
            install(job(img, files, 512), SlowUI(quiet=True, interactive=False))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    assert entered.wait(10)
    try:
        with pytest.raises(LockError):
            install(job(img, files, 512), quiet())
    finally:
        release.set()
        t.join()
    assert not errors


def test_dumpto_from_zipl_conf(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    conf = tmp_path / "zipl.conf"
    conf.write_text(f"[dump]\ndumpto=1\nimage={files['kernel']}\nramdisk={files['ramdisk']}\nparameters=dump_debug=3\n")
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["-q", "install", str(img), "-c", str(conf), "dump", "-n", "--json"]) == 0
    data = json.loads(out.getvalue())
    assert data["mode"] == "dumpto" and data["programs"][0]["parmline"].startswith("dump_debug=3 root=/dev/ram0 ")
    with DiskImage(img, 512) as d:
        br = reader.read_boot_record(d)
    assert br.boot_info.bp_type == 1 and br.boot_info.dump_sb_offset == data["superblock_offset"]
    # a dump section cannot share a run with the IPL target
    conf.write_text(conf.read_text() + "\n[linux]\ntarget=2\nimage=" + str(files["kernel"]) + "\n\n:m\n1=dump\n2=linux\ndefault=1\n")
    assert main(["-q", "install", str(img), "-c", str(conf), "--menu", "m", "-n"]) == 2


def test_interactive_confirmation(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    fill(img, MIB, 4096)
    before = sha(img)
    no = UI(interactive=True, stderr=io.StringIO(), stdin=FakeTty("n\n"))
    with pytest.raises(AbortedError, match="answered no"):
        install(job(img, files, 512, assume_yes=False), no)
    assert sha(img) == before
    err = io.StringIO()
    yes = UI(interactive=True, stderr=err, stdin=FakeTty("y\n"))
    res = install(job(img, files, 512, assume_yes=False), yes)
    assert res.verified and "data in the first 64 KiB of partition 1" in err.getvalue()


def test_failed_reinstall_leaves_block0_disarmed(tmp_path: Path, files, monkeypatch) -> None:
    img = two_partition_disk(tmp_path, 512)
    install(job(img, files, 512), quiet())
    import zipldump.zipl.installer as inst

    def broken(*a, **k):
        raise DiskError("simulated read-back difference")

    monkeypatch.setattr(inst, "verify", broken)
    with pytest.raises(DiskError, match="simulated"):
        install(job(img, files, 512, parameters="new=1"), quiet())
    with DiskImage(img, 512) as d:
        blk = d.read_block(0)
    # no boot record that could point at half-written blocks; the label is intact
    assert blk[:0x98] == bytes(0x98) and blk[0x1FE:] == b"\x55\xaa"
    monkeypatch.undo()
    install(job(img, files, 512, parameters="new=1"), quiet())
    with DiskImage(img, 512) as d:
        assert reader.read_boot_record(d).boot_info.bp_type == 1


def test_replacing_an_ipl_record_asks(tmp_path: Path, files) -> None:
    img = two_partition_disk(tmp_path, 512)
    with open(img, "r+b") as fh:  # a zipl IPL boot record (boot_info zero)
        fh.write(b"zIPL\0\0\0\1" + bytes(8) + struct.pack(">QH", 5000, 512))
    with pytest.raises(AbortedError, match="zipl IPL boot record in block 0"):
        install(job(img, files, 512, assume_yes=False), quiet())


def test_dumpto_on_gpt_disk(tmp_path: Path, files) -> None:
    img = tmp_path / "gpt.img"
    make_disk(img, 48 * MIB, label="gpt", parts=[PartSpec(4 * MIB), PartSpec(None)])
    res = install(job(img, files, 512, partition=2), quiet())
    with DiskImage(img, 512) as d:
        br = reader.read_boot_record(d)
        sb = reader.read_superblock(d, br.boot_info.dump_sb_offset)
        assert d.read_block(0)[0x1C2] == 0xEE  # protective MBR entry kept
    assert sb.part_start == res.target.start_bytes and res.verified


def test_multi_chunk_components_4096(tmp_path: Path, files) -> None:
    """Components larger than the 1 MiB I/O chunk, sizes not block multiples."""
    img = two_partition_disk(tmp_path, 4096, 300 * MIB)
    k = make_kernel_no_cmdline(tmp_path / "bigkernel", size=3 * MIB + 4321)
    r = tmp_path / "bigrd"
    r.write_bytes(os.urandom(5 * MIB + 777))
    res = install(job(img, dict(files, kernel=k, ramdisk=r), 4096, parameters="x=1"), quiet())
    comps = {c["kind"]: c for c in res.to_json()["programs"][0]["components"]}
    assert comps["ramdisk"]["sha256"] == hashlib.sha256(r.read_bytes()).hexdigest()
    assert comps["kernel"]["length"] == 3 * MIB + 4321 - 0x10000
    with DiskImage(img, 4096) as d:
        pt = reader.read_program_table(d, reader.read_boot_record(d).program_table)
        ct = reader.read_component_table(d, pt.entries[0])
        got = [reader.component_sha256(d, reader.walk_block_list(d, e.blocklist).pointers, comps[kind]["length"])
               for e, kind in zip(ct.entries, ["kernel", "parmline", "ramdisk"], strict=False)]
    assert got == [comps[k]["sha256"] for k in ("kernel", "parmline", "ramdisk")]
    kdata = k.read_bytes()[0x10000:]
    assert comps["kernel"]["sha256"] != hashlib.sha256(kdata).hexdigest()  # the parm area was patched


def test_compat_216_on_pattern_filled_4096_disk(tmp_path: Path, files) -> None:
    """zipl 2.16 rules: 38-byte header, superblock after the program table, 64-byte parameters."""
    img = two_partition_disk(tmp_path, 4096)
    p1 = read_table(img, 4096).get(1)
    fill(img, p1.start_bytes + p1.size_bytes - 4 * MIB, 4 * MIB)
    before = tmp_path / "before.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(before)], check=True)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["-q", "install", str(img), "--block-size", "4096", "--dumpto", "1", "-i", str(files["kernel"]),
                   "-r", str(files["ramdisk"]), "--stage3", str(files["stage3"]), "--compat", "2.16", "-n", "--json"])
    assert rc == 0
    data = json.loads(out.getvalue())
    assert data["superblock_lba"] == data["program_table"] + 1
    assert data["programs"][0]["parmline"] == "root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory "
    hdr = data["bootmap_header"] * 4096
    with open(img, "rb") as fh, open(before, "rb") as fb:
        fh.seek(hdr)
        fb.seek(hdr)
        new, old = fh.read(4096), fb.read(4096)
    assert new[:38] == b"zSeries bootmap file\ncreated by zIPL\n\0" and new[38:] == old[38:]  # rest not written
    params = next(c for c in data["programs"][0]["components"] if c["kind"] == "params")
    assert params["length"] == 64
    with DiskImage(img, 4096) as d:
        assert reader.read_boot_record(d).boot_info.dump_sb_offset == data["superblock_offset"] == data["superblock_lba"] * 4096


# --- write order and crash safety ---------------------------------------------------------------
def test_write_order_checks_then_data_then_block0(tmp_path: Path, files, monkeypatch) -> None:
    img = two_partition_disk(tmp_path, 512)
    events = record_events(monkeypatch)
    install(job(img, files, 512), quiet())
    assert_block0_last(events)
    assert not any(e[0] == "write" and e[1] == 0 for e in events[:-2]), "first install: nothing to disarm"
    # a reinstall first disarms the old record (it points into the tail being rewritten), flushed
    events.clear()
    install(job(img, files, 512, parameters="new=1"), quiet())
    assert_block0_last(events)
    first = next(i for i, e in enumerate(events) if e[0] == "write")
    assert events[first][1:] == (0, bytes(8)) and events[first + 1][0] == "flush"


DISK_HOOKS = [(DiskImage, "write_at"), (DiskImage, "flush")]


def test_kill_9_at_every_write_leaves_old_or_no_boot_record(tmp_path: Path, files) -> None:
    """kill -9 before each write and flush of a reinstall: block 0 then holds the old valid
    program, the complete new one, or no boot record at all (never one pointing at
    half-written blocks); the next install works and the lock is free."""
    import shutil

    img = two_partition_disk(tmp_path, 512)
    install(job(img, files, 512, parameters="old=1"), quiet())
    old = load_shas(img, 512)
    base = tmp_path / "base.img"
    shutil.copy(img, base)
    new_files = dict(files, ramdisk=tmp_path / "initrd2")
    new_files["ramdisk"].write_bytes(bytes((i * 31) & 0xFF for i in range(123_457)))
    install(job(img, new_files, 512, parameters="new=1"), quiet())
    new = load_shas(img, 512)
    assert old and new and old != new
    seen_none = seen_old = seen_new = False
    for k in range(100):
        shutil.copy(base, img)
        done = kill_at(k, lambda: install(job(img, new_files, 512, parameters="new=1"), quiet()), DISK_HOOKS)
        state = load_shas(img, 512)
        assert state in (None, old, new), f"kill before event {k}: block 0 points at a mix"
        if state is None:
            with open(img, "rb") as fh:
                assert fh.read(0x98) == bytes(0x98)
        seen_none |= state is None
        seen_old |= state == old
        seen_new |= state == new
        install(job(img, new_files, 512, parameters="new=1"), quiet())  # lock free, disk usable
        assert load_shas(img, 512) == new
        if done:
            break
    else:
        pytest.fail("the install never finished")
    assert seen_old and seen_none and seen_new and k > 5


def test_gpt_4096_dumpto_then_target_change_only_their_own_bytes(tmp_path: Path, files) -> None:
    """On a 4Kn GPT disk, --dumpto on partition 1 and then --target on partition 2 leave
    both GPT headers and entry arrays, the other partition and all gaps byte-identical."""
    if not have_tool("mke2fs"):
        pytest.skip("mke2fs missing")
    from zipldump.disk.extfs import ExtFs

    bs = 4096
    img = tmp_path / "gpt4k.img"
    make_disk(img, 300 * MIB + 40 * MIB, label="gpt", block_size=bs, parts=[PartSpec(300 * MIB), PartSpec(None, "ext4")])
    with DiskImage(img, bs) as d:
        t = read_table(d)
    p1, p2 = t.get(1), t.get(2)
    fill(img, p1.start_bytes + 64 * 1024, 256 * 1024)  # old data right after the wiped 64 KiB
    fill(img, p1.start_bytes + p1.size_bytes - 8 * MIB, 8 * MIB)  # ... and where the bootmap goes
    efs = ExtFs(img, p2.start_bytes, p2.size_bytes)
    efs.write_file("/keep", PATTERN * 4000)
    before = tmp_path / "before.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(before)], check=True)
    gpt_before = (img.read_bytes()[bs : 6 * bs], img.read_bytes()[-6 * bs :])
    res = install(job(img, files, bs, stage3=files["stage3"]), quiet())
    bad = [r for r in changed_offsets(before, img) if not inside(r, allowed_ranges(res, bs))]
    assert bad == [], [(hex(a), hex(b)) for a, b in bad[:5]]
    raw = img.read_bytes()
    assert (raw[bs : 6 * bs], raw[-6 * bs :]) == gpt_before
    # --target on partition 2: only block 0 bytes 0..0x97 and partition 2's insides may change
    subprocess.run(["cp", "--sparse=always", str(img), str(before)], check=True)
    res2 = install(InstallJob(img, "target", 2, {0: ProgramSpec("l", "ipl", files["kernel"], files["ramdisk"], "quiet")},
                              block_size=bs, assume_yes=True), quiet())
    assert res2.verified and res2.losses == ["the zipl SCSI dump boot record in block 0 (its programs become unreachable)"]
    p2_range = (p2.start_bytes, p2.start_bytes + p2.size_bytes)
    bad = [r for r in changed_offsets(before, img) if not inside(r, [(0, 0x98), p2_range])]
    assert bad == [], [(hex(a), hex(b)) for a, b in bad[:5]]
    assert efs.read_file("/keep") == PATTERN * 4000 and efs.fsck() == 0, efs.last_fsck_output


def test_msdos_4kn_disk_read_with_512_byte_blocks_is_refused(tmp_path: Path, files) -> None:
    """An msdos table has no sector size: a 4Kn disk installed with the default 512 would put
    the dump tool at 1/8 of the partition's real place.  Refused before any write."""
    img = tmp_path / "4kn.img"
    make_disk(img, 300 * MIB, block_size=4096, parts=[PartSpec(280 * MIB), PartSpec(None)])
    before = sha(img)
    with pytest.raises(DiskError, match="looks like one in 4096-byte sectors: partition 1 starts at sector 256") as exc:
        install(job(img, files, 512), quiet())
    assert exc.value.where == "LBA 0 offset 0x1be (MBR entry 1)"
    assert sha(img) == before
    assert install(job(img, files, 4096), quiet()).verified
    # the same geometry on a 512-byte disk (1 MiB aligned) is not affected
    img512 = tmp_path / "512.img"
    make_disk(img512, 300 * MIB, block_size=512, parts=[PartSpec(40 * MIB), PartSpec(None)])
    assert install(job(img512, files, 512), quiet()).verified


def test_replacing_a_boot_record_of_another_partition_asks(tmp_path: Path, files) -> None:
    """A dump record for partition 1 replaced by a dump tool on partition 2: not a re-install."""
    img = tmp_path / "two.img"
    make_disk(img, 90 * MIB, parts=[PartSpec(40 * MIB), PartSpec(None)])
    install(job(img, files, 512), quiet())
    install(job(img, files, 512, parameters="again=1", assume_yes=False), quiet())  # same place: no question
    before = sha(img)
    with pytest.raises(AbortedError, match=r"the zipl SCSI dump boot record in block 0, whose program table at LBA 0x[0-9a-f]+ lies outside partition 2"):
        install(job(img, files, 512, partition=2, assume_yes=False), quiet())
    assert sha(img) == before
    assert install(job(img, files, 512, partition=2), quiet()).losses


@pytest.mark.parametrize(("offset", "label"), [(508, b"\xda\xbe"), (0, b"\x0b\xe5\xa9\x41")])
def test_block0_layout_in_zipls_order(tmp_path: Path, files, offset: int, label: bytes) -> None:
    """zipl's get_scsi_layout tests 55 AA first: a DOS MBR whose bytes 508/509 (the 4th
    entry's size) read DA BE, or whose boot code starts like an SGI label, is PC-BIOS and
    accepted; the same bytes without 55 AA are a Sun/SGI label and refused."""
    img = two_partition_disk(tmp_path, 512)
    with open(img, "r+b") as fh:
        fh.seek(offset)
        fh.write(label)
    res = install(job(img, files, 512), quiet())
    assert res.verified
    with DiskImage(img, 512) as d:
        assert d.read_at(508, 4) == (b"\xda\xbe\x55\xaa" if offset == 508 else b"\0\0\x55\xaa")
    with open(img, "r+b") as fh:
        fh.seek(0)
        fh.write(bytes(0x98))  # no boot record: nothing to ask about
        fh.seek(offset)
        fh.write(label)
        fh.seek(510)
        fh.write(b"\0\0")
    before = sha(img)
    with pytest.raises(DiskError, match="Unsupported SCSI disk layout: an? (Sun|SGI) disk label") as exc:
        install(job(img, files, 512), quiet())
    assert exc.value.where == f"{img} LBA 0 offset {offset:#x}"
    assert sha(img) == before


def test_hsa_limit_counts_the_whole_last_block(tmp_path: Path, files) -> None:
    """An explicit ramdisk address 512 bytes below the HSA end: on a 4096-byte disk the
    firmware loads a whole 4 KiB block there, past the HSA, so the install is refused."""
    img = two_partition_disk(tmp_path, 4096)
    small = tmp_path / "small-initrd"
    small.write_bytes(b"R" * 0x100)
    prog = ProgramSpec("dump", "dump", files["kernel"], small, ramdisk_address=0x1FFFE00)
    before = sha(img)
    with pytest.raises(HsaLimitError, match="0x01fffe00-0x02000dff ends above the HSA limit"):
        install(InstallJob(img, "dumpto", 1, {0: prog}, block_size=4096, assume_yes=True), quiet())
    assert sha(img) == before
