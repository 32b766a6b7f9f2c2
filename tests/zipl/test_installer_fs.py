"""`--target` / `--dumptofs`: bootmap files in ext2/3/4 file systems, checked with the
strict reader, e2fsck, reads through the file system and outside-bytes diffs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from builders.checks import assert_block0_last
from builders.harness import kill_at, load_shas, record_events
from builders.tools import have_tool

from zipldump.cli import main
from zipldump.disk.extfs import ExtFs
from zipldump.disk.image import DiskImage
from zipldump.disk.partitions import PartSpec, make_disk, read_partition_table
from zipldump.errors import HsaLimitError, LayoutError, PartitionTooSmallError, StaleBootmapError
from zipldump.formats.bootmap_header import HEADER_TEXT
from zipldump.plan.job import InstallJob, ProgramSpec
from zipldump.ui import UI
from zipldump.zipl import bootmap as reader
from zipldump.zipl.check import inspect_disk
from zipldump.zipl.installer import install

pytestmark = pytest.mark.skipif(not have_tool("debugfs") or not have_tool("mke2fs"), reason="e2fsprogs missing")
MIB = 1 << 20


def make_kernel_with_cmdline(path: Path, size: int = 0x30000, max_cl: int = 4096) -> Path:
    """Synthetic s390 kernel: S390EP, the command-line limit and a built-in "root=/dev/ram0 ro"."""
    data = bytearray((i * 5 + 1) & 0xFF for i in range(size))
    data[0x10008:0x1000E] = b"S390EP"
    data[0x10400:0x10480] = bytes(0x80)
    struct.pack_into(">Q", data, 0x10430, max_cl)
    data[0x10480:0x10492] = b"root=/dev/ram0 ro\0"
    path.write_bytes(bytes(data))
    return path


def quiet() -> UI:
    return UI(quiet=True, interactive=False)


def sha_outside(path: Path, start: int, end: int) -> str:
    """SHA-256 of the image with [start, end) and block 0 bytes 0..0x97 left out."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(0x98)
        h.update(fh.read(start - 0x98))
        fh.seek(end)
        while chunk := fh.read(MIB):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    r = tmp_path / "initrd"
    r.write_bytes(bytes((i * 11) & 0xFF for i in range(70_000)))
    s = tmp_path / "stage3.bin"
    s.write_bytes(b"S" * 0x4000)
    return {"kernel": make_kernel_with_cmdline(tmp_path / "vmlinuz"), "ramdisk": r, "stage3": s}


def ipl_disk(tmp_path: Path, bs: int, fs: str = "ext2", fs_bs: int | None = None) -> Path:
    img = tmp_path / f"ipl{bs}{fs}.img"
    make_disk(img, 24 * MIB, block_size=bs, parts=[PartSpec(16 * MIB, fs), PartSpec(None)],
              fs_options={"block_size": fs_bs} if fs_bs else None)
    return img


def read_components(img: Path, bs: int) -> dict[int, tuple[int, int, list[tuple[int, str]]]]:
    """{program-table entry: (component-table LBA, header type, [(address, sha256 of data)])}."""
    out = {}
    with DiskImage(img, bs) as d:
        br = reader.read_boot_record(d)
        pt = reader.read_program_table(d, br.program_table)
        for i, p in pt.valid():
            ct = reader.read_component_table(d, p)
            loads = []
            for e in ct.entries:
                if e.type == 2:
                    bl = reader.walk_block_list(d, e.blocklist)
                    loads.append((e.address, bl))
            out[i] = (p.blockno, ct.header_type, loads, ct.execute.psw)
    return out


@pytest.mark.parametrize(
    ("bs", "fs", "fs_bs", "stage3"),
    [(512, "ext2", 1024, True), (512, "ext4", 4096, False), (4096, "ext4", 4096, True), (4096, "ext2", 4096, False)],
)
def test_target_bootmap_file(tmp_path: Path, files, bs: int, fs: str, fs_bs: int, stage3: bool) -> None:
    img = ipl_disk(tmp_path, bs, fs, fs_bs)
    table = read_partition_table(img, bs)
    p1 = table.get(1)
    efs = ExtFs(img, p1.start_bytes, p1.size_bytes)
    efs.write_file("/other", b"keep me" * 1000)
    before = sha_outside(img, p1.start_bytes, p1.start_bytes + p1.size_bytes)
    job = InstallJob(img, "target", 1, {0: ProgramSpec("linux", "ipl", files["kernel"], files["ramdisk"], "console=ttyS0")},
                     block_size=bs, stage3=files["stage3"] if stage3 else None)
    res = install(job, quiet())
    assert res.verified and res.bootmap_file == "/bootmap"
    # only block 0 bytes 0..0x97 and the partition's insides changed
    assert sha_outside(img, p1.start_bytes, p1.start_bytes + p1.size_bytes) == before
    assert efs.fsck() == 0, efs.last_fsck_output
    assert efs.read_file("/other") == b"keep me" * 1000
    assert efs.exists("/bootmap") and not efs.exists("/bootmap_temp.zipldump")
    # the bootmap read through the file system equals what the LBAs hold
    bm = efs.read_file("/bootmap")
    assert bm.startswith(HEADER_TEXT + b"\0") and len(bm) == (res.layout.nblocks - 1) * bs + 512
    with DiskImage(img, bs) as d:
        assert bm[-512:] == d.read_block(res.layout.pt_lba)[:512]
        assert bm[bs : 2 * bs] == bytes(bs) == d.read_block(res.layout.empty_lba)
        blk0 = d.read_block(0)
        assert blk0[0x70:0x98] == bytes(0x28)  # IPL: boot_info zero
        assert blk0[0x1FE:0x200] == b"\x55\xaa"
    progs = read_components(img, bs)
    assert list(progs) == [0]
    _, htype, loads, psw = progs[0]
    assert htype == 0
    want = {c["address"]: c for c in res.to_json()["programs"][0]["components"]}
    with DiskImage(img, bs) as d:
        for addr, bl in loads:
            assert reader.component_sha256(d, bl.pointers, want[addr]["length"]) == want[addr]["sha256"]
    if stage3:
        assert psw == 0x000800008000A000 and [a for a, _ in loads][:4] == [0x2000, 0xF000, 0xA000, 0x9000]
    else:
        assert psw == 0x0008000080010000 and [a for a, _ in loads] == [0x10000, 0x40000, 0x50000]


def test_menu_and_reinstall(tmp_path: Path, files) -> None:
    img = ipl_disk(tmp_path, 512)
    p1 = read_partition_table(img).get(1)
    k2 = make_kernel_with_cmdline(tmp_path / "vmlinuz2", size=0x28000)
    progs = {
        1: ProgramSpec("first", "ipl", files["kernel"], None, "a=1"),
        2: ProgramSpec("second", "ipl", k2, files["ramdisk"], "b=2"),
        5: ProgramSpec("dump", "dumptofs", k2, files["ramdisk"], "dump_dir=/dumps dump_mode=auto", dump_partition=2),
    }
    for _ in range(2):  # the second run replaces the first bootmap
        res = install(InstallJob(img, "target", 1, progs, default_position=2, stage3=files["stage3"]), quiet())
    found = read_components(img, 512)
    assert sorted(found) == [0, 1, 2, 5]
    assert found[0][0] == found[2][0] != found[1][0]
    assert [found[i][1] for i in (1, 2, 5)] == [0, 0, 1]  # the dumptofs entry is a DUMP program
    parm = res.to_json()["programs"][2]["parmline"]
    assert parm == "dump_dir=/dumps dump_mode=auto root=/dev/ram0 dump_part=2 possible_cpus=1 cgroup_disable=memory "
    efs = ExtFs(img, p1.start_bytes, p1.size_bytes)
    assert efs.fsck() == 0, efs.last_fsck_output
    assert sorted(efs.listdir("/")) == ["bootmap", "lost+found"]


def test_dumptofs_cli(tmp_path: Path, files) -> None:
    img = ipl_disk(tmp_path, 512, "ext4", 4096)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["-q", "install", str(img), "--dumptofs", "1", "--image", str(files["kernel"]), "--ramdisk", str(files["ramdisk"]),
                   "--parameters", "dump_dir=/dumps dump_mode=auto", "--dump-mem", "64M", "-n", "--json"])
    assert rc == 0
    data = json.loads(out.getvalue())
    prog = data["programs"][0]
    assert prog["header_type"] == "dump" and data["superblock_offset"] is None and data["bootmap_file"] == "/bootmap"
    assert prog["parmline"] == "dump_dir=/dumps dump_mode=auto root=/dev/ram0 dump_part=1 dump_mem=67108864 possible_cpus=1 cgroup_disable=memory "
    with DiskImage(img, 512) as d:
        blk0 = d.read_block(0)
    assert blk0[:4] == b"zIPL" and blk0[0x70:0x98] == bytes(0x28)
    parm = next(c for c in prog["components"] if c["kind"] == "parmline")
    assert parm["sha256"] == hashlib.sha256(prog["parmline"].encode() + b"\0").hexdigest()


def test_dumptofs_hsa_and_dry_run(tmp_path: Path, files) -> None:
    img = ipl_disk(tmp_path, 512)
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(40 * MIB)
    h = hashlib.sha256(img.read_bytes()).hexdigest()
    with pytest.raises(HsaLimitError):
        install(InstallJob(img, "dumptofs", 1, {0: ProgramSpec("d", "dumptofs", files["kernel"], big)}), quiet())
    res = install(InstallJob(img, "target", 1, {0: ProgramSpec("l", "ipl", files["kernel"], files["ramdisk"])}, dry_run=True), quiet())
    assert res.dry_run
    assert hashlib.sha256(img.read_bytes()).hexdigest() == h


def test_whole_disk_filesystem(tmp_path: Path, files) -> None:
    img = tmp_path / "plain.img"
    with open(img, "wb") as fh:
        fh.truncate(16 * MIB)
    efs = ExtFs.create(img, 0, 16 * MIB, "ext2", 4096)
    sb_before = img.read_bytes()[0x400:0x800]
    res = install(InstallJob(img, "target", 0, {0: ProgramSpec("l", "ipl", files["kernel"], None, "quiet")}), quiet())
    data = img.read_bytes()
    assert data[:4] == b"zIPL" and data[0x98:0x400] == bytes(0x400 - 0x98)
    assert data[0x438:0x43A] == sb_before[0x38:0x3A] == b"\x53\xef"
    assert efs.fsck() == 0, efs.last_fsck_output
    assert res.target.number == 0


def test_filesystem_too_small(tmp_path: Path, files) -> None:
    img = tmp_path / "small.img"
    with open(img, "wb") as fh:
        fh.truncate(4 * MIB)
    ExtFs.create(img, 0, 1 * MIB, "ext2", 1024)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(2 * MIB))
    h = hashlib.sha256(img.read_bytes()).hexdigest()
    with pytest.raises(PartitionTooSmallError, match="bootmap file needs"):
        install(InstallJob(img, "target", 0, {0: ProgramSpec("l", "ipl", files["kernel"], big)}), quiet())
    assert hashlib.sha256(img.read_bytes()).hexdigest() == h


def test_fs_block_smaller_than_device_block(tmp_path: Path, files) -> None:
    img = tmp_path / "4k.img"
    make_disk(img, 24 * MIB, block_size=4096, parts=[PartSpec(16 * MIB, "ext2")], fs_options={"block_size": 1024})
    with pytest.raises(LayoutError, match="smaller than the 4096-byte device block"):
        install(InstallJob(img, "target", 1, {0: ProgramSpec("l", "ipl", files["kernel"])}, block_size=4096), quiet())


def test_fragmented_filesystem_chains_list_blocks(tmp_path: Path, files) -> None:
    """A bootmap file scattered over 1 KiB holes needs chained list blocks (§6.2)."""
    img = tmp_path / "frag.img"
    with open(img, "wb") as fh:
        fh.truncate(4 * MIB)
    efs = ExtFs.create(img, 0, 4 * MIB, "ext2", 1024)
    host = tmp_path / "one"
    host.write_bytes(b"x" * 1024)
    names = [f"/f{i}" for i in range(600)]
    efs._debugfs([f"write {host} {n}" for n in names], write=True)
    efs._debugfs([f"rm {n}" for n in names[::2]], write=True)
    free = efs.free_bytes()
    big = tmp_path / "initrd"
    big.write_bytes(os.urandom(free - 400 * 1024))  # forces the allocation into the holes too
    res = install(InstallJob(img, "target", 0, {0: ProgramSpec("l", "ipl", files["kernel"], big)}), quiet())
    rd = res.layout.programs[0].components[-1]
    assert len(rd.pointers) > 31 and len(rd.list_lbas) >= 2
    assert efs.fsck() == 0, efs.last_fsck_output
    found = read_components(img, 512)
    with DiskImage(img, 512) as d:
        addr, bl = found[0][2][-1]
        assert bl.list_blocks == rd.list_lbas
        assert reader.component_sha256(d, bl.pointers, big.stat().st_size) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_config_menu_via_cli(tmp_path: Path, files) -> None:
    img = ipl_disk(tmp_path, 512)
    make_kernel_with_cmdline(tmp_path / "rescue")
    (tmp_path / "parm.txt").write_text("console=ttyS0\nquiet\n")
    conf = tmp_path / "zipl.conf"
    conf.write_text(
        f"""[defaultboot]
defaultmenu=m1

[linux]
image={files['kernel']}
ramdisk={files['ramdisk']}
parameters="root=/dev/ram0"

[rescue]
image=rescue
parmfile=parm.txt
parameters=single

[fsdump]
image=rescue
ramdisk={files['ramdisk']}
dumptofs=2
parameters="dump_dir=/d dump_mode=auto"

:m1
target=1
1=linux
2=rescue
4=fsdump
default=2
"""
    )
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["-q", "install", str(img), "-c", str(conf), "--stage3", str(files["stage3"]), "-n", "--json"])
    assert rc == 0, out.getvalue()
    data = json.loads(out.getvalue())
    assert data["mode"] == "target" and data["partition"]["number"] == 1
    assert {p["position"]: p["name"] for p in data["programs"]} == {1: "linux", 2: "rescue", 4: "fsdump"}
    entries = data["program_table_entries"]
    assert entries["0"] == entries["2"] != entries["1"]
    parms = {p["name"]: p["parmline"] for p in data["programs"]}
    assert parms["rescue"] == "console=ttyS0 quiet single"
    assert parms["fsdump"] == "dump_dir=/d dump_mode=auto root=/dev/ram0 dump_part=2 possible_cpus=1 cgroup_disable=memory "
    found = read_components(img, 512)
    assert sorted(found) == [0, 1, 2, 4] and found[4][1] == 1
    # a single section by name, and an unknown one
    with redirect_stdout(io.StringIO()):
        assert main(["-q", "install", str(img), "-c", str(conf), "linux", "-n"]) == 2  # no target= in [linux]
        assert main(["-q", "install", str(img), "-c", str(conf), "linux", "--target", "1", "-n"]) == 0
    assert sorted(read_components(img, 512)) == [0]
    assert main(["-q", "install", str(img), "-c", str(conf), "nosuch", "-n"]) == 2


def test_failed_install_keeps_old_bootmap(tmp_path: Path, files, monkeypatch) -> None:
    img = ipl_disk(tmp_path, 512)
    p1 = read_partition_table(img).get(1)
    install(InstallJob(img, "target", 1, {0: ProgramSpec("old", "ipl", files["kernel"], None, "old=1")}), quiet())
    with DiskImage(img, 512) as d:
        blk0 = d.read_block(0)
    efs = ExtFs(img, p1.start_bytes, p1.size_bytes)
    old_bm = efs.read_file("/bootmap")
    import zipldump.zipl.installer as inst
    from zipldump.errors import DiskError

    def broken(*a, **k):
        raise DiskError("simulated read-back difference")

    monkeypatch.setattr(inst, "verify", broken)
    with pytest.raises(DiskError):
        install(InstallJob(img, "target", 1, {0: ProgramSpec("new", "ipl", files["kernel"], files["ramdisk"], "new=1")}), quiet())
    with DiskImage(img, 512) as d:
        assert d.read_block(0) == blk0
    assert efs.read_file("/bootmap") == old_bm and not efs.exists("/bootmap_temp.zipldump")
    assert efs.fsck() == 0, efs.last_fsck_output
    assert read_components(img, 512)[0][1] == 0


# --- crash safety of bootmap-file installs ---------------------------------------------------------
def _crash_setup(tmp_path: Path, files):

    img = ipl_disk(tmp_path, 512, "ext4", 1024)  # 1 KiB fs blocks: freed bootmap blocks get reused
    p1 = read_partition_table(img).get(1)
    efs = ExtFs(img, p1.start_bytes, p1.size_bytes)
    efs.write_file("/other", b"keep me" * 3000)

    def prog(tag: str, ramdisk: bool = True) -> InstallJob:
        return InstallJob(img, "target", 1, {0: ProgramSpec(tag, "ipl", files["kernel"], files["ramdisk"] if ramdisk else None, f"{tag}=1")},
                          assume_yes=True)

    hooks = [(DiskImage, "write_at"), (DiskImage, "flush"), (ExtFs, "_debugfs")]
    return img, efs, prog, hooks, load_shas, kill_at


def _hashes_after(img: Path, job: InstallJob, loads) -> list[str]:
    import shutil

    ref = img.with_suffix(".ref")
    shutil.copy(img, ref)
    try:
        install(InstallJob(ref, job.mode, job.partition, job.programs, assume_yes=True), quiet())
        return loads(ref, 512)
    finally:
        ref.unlink()


def test_kill_9_during_a_bootmap_file_reinstall(tmp_path: Path, files) -> None:
    """kill -9 before every write, flush and debugfs run of a --target reinstall: block 0
    always holds the old or the new program (the old /bootmap is freed only after block 0
    points at the new file), the file system stays e2fsck-clean and other files intact, and
    the next install finishes an interrupted one.  Where the kill left block 0 pointing at
    the not yet renamed temp file, a second kill -9 at every point of the next install
    leaves that program or the newer one, never blocks being rewritten."""
    import shutil

    img, efs, prog, hooks, loads, kill_at = _crash_setup(tmp_path, files)
    install(prog("old", ramdisk=False), quiet())
    old = loads(img, 512)
    new = _hashes_after(img, prog("new"), loads)
    assert old != new
    base = tmp_path / "base.img"
    shutil.copy(img, base)
    double_crash_checked = False
    for k in range(200):
        shutil.copy(base, img)
        done = kill_at(k, lambda: install(prog("new"), quiet()), hooks)
        state = loads(img, 512)
        assert state in (old, new), f"kill before event {k}: boot record lost or mixed"
        assert efs.fsck() == 0, efs.last_fsck_output
        assert efs.read_file("/other") == b"keep me" * 3000
        if state == new and efs.exists("/bootmap_temp.zipldump") and not double_crash_checked:
            double_crash_checked = True
            mid = tmp_path / "mid.img"
            shutil.copy(img, mid)
            newer = _hashes_after(img, prog("newer", ramdisk=False), loads)
            for j in range(200):
                shutil.copy(mid, img)
                inner_done = kill_at(j, lambda: install(prog("newer", ramdisk=False), quiet()), hooks)
                assert loads(img, 512) in (new, newer), f"second kill before event {j}"
                assert efs.fsck() == 0, efs.last_fsck_output
                if inner_done:
                    assert not efs.exists("/bootmap_temp.zipldump")
                    break
            shutil.copy(mid, img)
        install(prog("new"), quiet())  # recovery: lock free, leftovers handled
        assert loads(img, 512) == new and not efs.exists("/bootmap_temp.zipldump")
        assert efs.fsck() == 0, efs.last_fsck_output
        if done:
            break
    else:
        pytest.fail("the install never finished")
    assert double_crash_checked


def test_block0_pointing_at_freed_blocks_is_disarmed_first(tmp_path: Path, files) -> None:
    """Block 0 points at a bootmap whose file was deleted: its blocks are free and the new
    bootmap may reuse them, so the record is disarmed (and flushed) before any write; a
    kill -9 then leaves the old record (before the disarm), none, or the new one."""
    import shutil

    img, efs, prog, hooks, loads, kill_at = _crash_setup(tmp_path, files)
    install(prog("old", ramdisk=False), quiet())
    assert loads(img, 512)  # a valid program before its file is deleted
    efs.remove("/bootmap")
    new = _hashes_after(img, prog("new"), loads)
    base = tmp_path / "base.img"
    shutil.copy(img, base)
    states = []
    for k in range(200):
        shutil.copy(base, img)
        done = kill_at(k, lambda: install(prog("new"), quiet()), hooks)
        with open(img, "rb") as fh:
            head = fh.read(0x98)
        if head[:4] == b"zIPL" and inspect_disk(img, 512).exit_code == StaleBootmapError.exit_code:
            states.append("old")  # the old record over freed blocks (inspect: stale), as before the disarm
        else:
            state = loads(img, 512) if head[:4] == b"zIPL" else None
            if state is None:
                assert head == bytes(0x98)
            else:
                # a valid record must be exactly the new program (the old one is stale), never a mix
                assert state == new, f"kill before event {k}"
            states.append("none" if state is None else "new")
        if done:
            break
    assert states[0] == "old" and "none" in states and states[-1] == "new"
    # the old record never survives past the first write of new data
    assert states.index("none") < len(states) - 1


def test_write_order_of_a_bootmap_file_install(tmp_path: Path, files, monkeypatch) -> None:
    """Question first; file-system changes and data next; fsync; block 0 alone; fsync; and only
    then the old /bootmap is freed (rename), followed by another fsync."""
    img = ipl_disk(tmp_path, 512, "ext4", 1024)
    p1 = read_partition_table(img).get(1)
    install(InstallJob(img, "target", 1, {0: ProgramSpec("old", "ipl", files["kernel"], None, "old=1")}), quiet())
    events = record_events(monkeypatch)
    real = ExtFs._debugfs

    def debugfs(self, commands, *, write=False, **kw):
        if write:
            events.append(("fs", -1, commands[0].encode()))
        return real(self, commands, write=write, **kw)

    monkeypatch.setattr(ExtFs, "_debugfs", debugfs)
    res = install(InstallJob(img, "target", 1, {0: ProgramSpec("new", "ipl", files["kernel"], files["ramdisk"], "new=1")}), quiet())
    assert res.verified
    kinds = [e[0] for e in events]
    assert kinds.index("confirm") < min(kinds.index("fs"), kinds.index("write"))
    b0 = max(i for i, e in enumerate(events) if e[0] == "write")
    assert_block0_last([e for e in events[: b0 + 2] if e[0] != "fs"])
    after = events[b0 + 2 :]
    frees_old = [i for i, e in enumerate(events) if e[0] == "fs" and e[2].split()[0] == b"rm" and b"bootmap_temp" not in e[2]]
    assert frees_old and all(i > b0 + 1 for i in frees_old), "the old bootmap was freed before block 0 moved"
    assert any(e[0] == "fs" and e[2].startswith(b"ln ") for e in after) and after[-1][0] == "flush", after
    efs = ExtFs(img, p1.start_bytes, p1.size_bytes)
    assert efs.exists("/bootmap") and not efs.exists("/bootmap_temp.zipldump") and efs.fsck() == 0
