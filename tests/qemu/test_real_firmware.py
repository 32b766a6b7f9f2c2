"""Real firmware: disks made by `zipldump install` IPL'd by QEMU's s390-ccw BIOS.

Debian's s390x kernel, busybox-static and s390-tools (for stage3.bin) are
downloaded once (zipldump.qemu.packages, cached in .cache/s390x or $ZIPLDUMP_CACHE).
The initramfs, built by `zipldump mkinitramfs`, runs a busybox /init that
prints the kernel command line, optionally the MD5 of a payload file, and a
marker, then powers off.  Every boot must print the marker, and the command
line the guest saw must equal the installed parameters.

When the download fails: the tests FAIL when CI=true and are skipped otherwise
(an offline developer machine).  See docs/real-firmware.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders.bootmaps import build_direct_disk

from zipldump.disk.image import DiskImage
from zipldump.errors import QemuDumpProgramError, ToolMissingError
from zipldump.formats.component_table import TYPE_LOAD
from zipldump.qemu import boot as qemu
from zipldump.qemu.packages import S390Packages, ensure_packages
from zipldump.zipl.bootmap import (
    read_boot_record,
    read_component_table,
    read_program_table,
    walk_block_list,
)

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
MARKER = "ZIPLDUMP-REAL-FIRMWARE-OK"
BOOT_TIMEOUT = 150  # seconds; a boot takes about 5 s under TCG on a laptop
LARGE_PAYLOAD = 24 << 20

INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "ZIPLDUMP-CMDLINE=[$(/bin/busybox cat /proc/cmdline)]"
if [ -f /payload.bin ]; then echo "ZIPLDUMP-MD5=$(/bin/busybox md5sum /payload.bin)"; fi
echo {MARKER}
/bin/busybox poweroff -f
"""


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"real-firmware prerequisites missing in CI: {reason}")
    pytest.skip(f"real-firmware tests need: {reason}")


@pytest.fixture(scope="session")
def pkgs() -> S390Packages:
    if shutil.which(os.environ.get("ZIPLDUMP_QEMU") or qemu.QEMU) is None:
        unavailable(f"qemu-system-s390x ({qemu.INSTALL_HINT})")
    cache = Path(os.environ.get("ZIPLDUMP_CACHE") or REPO / ".cache" / "s390x")
    try:
        return ensure_packages(cache)
    except ToolMissingError as exc:
        unavailable(str(exc))
        raise


def zipldump(*args: object, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "zipldump", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"zipldump {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


@dataclass(frozen=True)
class Initrd:
    path: Path
    payload_md5: str | None


def make_initrd(pkgs: S390Packages, workdir: Path, payload: int = 0) -> Initrd:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "init").write_text(INIT)
    lines = [
        "dir /bin 755 0 0",
        "dir /dev 755 0 0",
        "dir /proc 755 0 0",
        "nod /dev/console 600 0 0 c 5 1",
        f"file /bin/busybox {pkgs.busybox} 755 0 0 /bin/sh",
        "file /init init 755 0 0",
    ]
    md5 = None
    if payload:
        data = random.Random(payload).randbytes(payload)  # incompressible, reproducible
        (workdir / "payload.bin").write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        lines.append("file /payload.bin payload.bin 644 0 0")
    (workdir / "initramfs.list").write_text("\n".join(lines) + "\n")
    out = workdir / ("initrd.cpio" if payload else "initrd.gz")
    # A large payload stays uncompressed: the kernel accepts a plain newc archive.
    zipldump("mkinitramfs", workdir / "initramfs.list", out, "--compress", "none" if payload else "gzip")
    return Initrd(out, md5)


@pytest.fixture(scope="session")
def initrd(pkgs: S390Packages, tmp_path_factory: pytest.TempPathFactory) -> Initrd:
    return make_initrd(pkgs, tmp_path_factory.mktemp("initrd"))


@pytest.fixture(scope="session")
def large_initrd(pkgs: S390Packages, tmp_path_factory: pytest.TempPathFactory) -> Initrd:
    return make_initrd(pkgs, tmp_path_factory.mktemp("initrd-large"), payload=LARGE_PAYLOAD)


def params_for(case: str) -> str:
    # panic=-1: a kernel panic reboots at once, and -no-reboot then ends QEMU (fast failure).
    return f"quiet panic=-1 zipldump.case={case}"


def boot_and_check(
    image: Path, params: str, *, block_size: int = 512, loadparm: int | None = None, payload_md5: str | None = None
) -> str:
    args: list[object] = ["qemu-boot", image, "--expect", MARKER, "--timeout", BOOT_TIMEOUT, "--block-size", block_size]
    if loadparm is not None:
        args += ["--loadparm", loadparm]
    proc = zipldump(*args, timeout=BOOT_TIMEOUT + 30, check=False)
    console = proc.stderr
    assert proc.returncode == 0, f"qemu-boot exited {proc.returncode}:\n{console[-4000:]}"
    assert "Using SCSI scheme." in console
    m = re.search(r"^ZIPLDUMP-CMDLINE=\[(.*)\]$", console, re.M)
    assert m, console[-4000:]
    assert m.group(1) == params
    if payload_md5 is not None:
        m = re.search(r"^ZIPLDUMP-MD5=([0-9a-f]{32})\s", console, re.M)
        assert m and m.group(1) == payload_md5, console[-2000:]
    return console


def mkdisk(image: Path, size: str, block_size: int, part: str, fs_block_size: int | None = None) -> dict:
    args: list[object] = ["mkdisk", image, "--size", size, "--block-size", block_size, "--part", part, "--json"]
    if fs_block_size:
        args += ["--fs-block-size", fs_block_size]
    return json.loads(zipldump(*args).stdout)


def install_ipl(
    image: Path, kernel: Path, ramdisk: Path, params: str, *, block_size: int, stage3: Path | None = None
) -> None:
    args: list[object] = ["install", image, "--target", 1, "-i", kernel, "-r", ramdisk, "-P", params]
    args += ["--block-size", block_size, "-n"]
    if stage3 is not None:
        args += ["--stage3", stage3]
    zipldump(*args)


def max_list_blocks(image: Path, block_size: int, entry: int = 0) -> int:
    """The longest chain of block-list blocks among the LOAD components of a program."""
    with DiskImage(image, block_size) as disk:
        rec = read_boot_record(disk)
        pt = read_program_table(disk, rec.program_table)
        ct = read_component_table(disk, pt.entries[entry])
        return max(len(walk_block_list(disk, e.blocklist).list_blocks) for e in ct.entries if e.type == TYPE_LOAD)


# --------------------------------------------------------------------------- cases
def test_hand_built_direct_layout_boots(pkgs: S390Packages, initrd: Initrd, tmp_path: Path) -> None:
    """The runner and the direct layout on their own, without the installer."""
    params = params_for("handmade")
    disk = tmp_path / "hand.img"
    build_direct_disk(disk, pkgs.kernel, initrd.path.read_bytes(), params)
    boot_and_check(disk, params)


@pytest.mark.parametrize("block_size", [512, 4096])
@pytest.mark.parametrize("layout", ["direct", "stage3"])
def test_install_and_boot(pkgs: S390Packages, initrd: Initrd, tmp_path: Path, layout: str, block_size: int) -> None:
    image = tmp_path / "ipl.img"
    mkdisk(image, "64M", block_size, "rest:ext2")
    params = params_for(f"{layout}-{block_size}")
    install_ipl(image, pkgs.kernel, initrd.path, params, block_size=block_size, stage3=pkgs.stage3 if layout == "stage3" else None)
    console = boot_and_check(image, params, block_size=block_size)
    # one dot per data run: kernel and initrd (+ parmline), and heap, stack, stage 3, parameters
    dots = max((len(x) for x in re.findall(r"^\.+$", console, re.M)), default=0)
    assert dots >= (6 if layout == "stage3" else 2)


@pytest.mark.parametrize(("layout", "block_size"), [("direct", 512), ("stage3", 4096)])
def test_large_initramfs(pkgs: S390Packages, large_initrd: Initrd, tmp_path: Path, layout: str, block_size: int) -> None:
    image = tmp_path / "large.img"
    mkdisk(image, "96M", block_size, "rest:ext2")
    params = params_for(f"large-{layout}-{block_size}")
    assert large_initrd.path.stat().st_size > LARGE_PAYLOAD
    install_ipl(image, pkgs.kernel, large_initrd.path, params, block_size=block_size, stage3=pkgs.stage3 if layout == "stage3" else None)
    boot_and_check(image, params, block_size=block_size, payload_md5=large_initrd.payload_md5)


def fragment(image: Path, fs_offset: int, workdir: Path) -> None:
    """Fill the file system with 4 KiB files, then delete every other one."""
    debugfs = shutil.which("debugfs") or "/sbin/debugfs"
    small = workdir / "small.bin"
    small.write_bytes(bytes(range(256)) * 16)
    spec = f"{image}?offset={fs_offset}"
    n = 12000  # more than fit: the tail of the list fails with "Could not allocate"
    (workdir / "fill.cmd").write_text("".join(f"write {small} f{i:05d}\n" for i in range(n)))
    subprocess.run([debugfs, "-w", "-f", workdir / "fill.cmd", spec], capture_output=True, check=True, timeout=120)
    (workdir / "free.cmd").write_text("".join(f"rm f{i:05d}\n" for i in range(0, n, 2)))
    subprocess.run([debugfs, "-w", "-f", workdir / "free.cmd", spec], capture_output=True, check=True, timeout=120)
    e2fsck = shutil.which("e2fsck") or "/sbin/e2fsck"
    fsck = subprocess.run([e2fsck, "-fn", spec], capture_output=True, text=True, timeout=120)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@pytest.mark.parametrize("block_size", [512, 4096])
def test_fragmented_fs_needs_chained_lists(pkgs: S390Packages, initrd: Initrd, tmp_path: Path, block_size: int) -> None:
    image = tmp_path / "frag.img"
    # 1 KiB fs blocks on the 512-byte disk, 4 KiB on the 4 KiB disk: holes of 8 and 1 device blocks.
    table = mkdisk(image, "32M", block_size, "rest:ext2", fs_block_size=1024 if block_size == 512 else 4096)
    fragment(image, table["partitions"][0]["start_bytes"], tmp_path)
    params = params_for(f"fragmented-{block_size}")
    install_ipl(image, pkgs.kernel, initrd.path, params, block_size=block_size)
    chain = max_list_blocks(image, block_size)
    assert chain >= 3, f"expected a chained block list, got {chain} list block(s)"
    boot_and_check(image, params, block_size=block_size)


ZIPL_CONF = """\
# three entries; the default is the third
[defaultboot]
defaultmenu=rf

[one]
image=vmlinuz
ramdisk=initrd.gz
parameters="{p1}"

[two]
image=vmlinuz
ramdisk=initrd.gz
parameters="{p2}"

[three]
image=vmlinuz
ramdisk=initrd.gz
parameters="{p3}"

:rf
target=1
1=one
2=two
3=three
default=3
"""


def test_menu_selected_by_loadparm(pkgs: S390Packages, initrd: Initrd, tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "vmlinuz").symlink_to(pkgs.kernel)  # relative paths resolve against the config's directory
    (conf_dir / "initrd.gz").symlink_to(initrd.path)
    params = {n: params_for(f"menu-{name}") for n, name in ((1, "one"), (2, "two"), (3, "three"))}
    conf = conf_dir / "zipl.conf"
    conf.write_text(ZIPL_CONF.format(p1=params[1], p2=params[2], p3=params[3]))
    image = tmp_path / "menu.img"
    mkdisk(image, "64M", 512, "rest:ext2")
    zipldump("install", image, "-c", conf, "-n")
    boot_and_check(image, params[2], loadparm=2)
    boot_and_check(image, params[3])  # entry 0 is the default, position 3
    # an unused position is refused before QEMU runs (its BIOS would say '! No EXEC entry !')
    proc = zipldump("qemu-boot", image, "--loadparm", 7, "--expect", MARKER, check=False)
    assert proc.returncode == 50 and "entry 7 is empty (entries in use: 0, 1, 2, 3)" in proc.stderr


def test_dump_disk_refused_quickly(pkgs: S390Packages, initrd: Initrd, tmp_path: Path) -> None:
    image = tmp_path / "dump.img"
    mkdisk(image, "128M", 512, "rest")
    zipldump("install", image, "--dumpto", 1, "-i", pkgs.kernel, "-r", initrd.path, "-n")
    t = time.monotonic()
    proc = zipldump("qemu-boot", image, "--expect", MARKER, "--timeout", 60, check=False)
    assert proc.returncode == QemuDumpProgramError.exit_code, proc.stderr
    assert "dump program" in proc.stderr and time.monotonic() - t < 15


def test_firmware_itself_refuses_dump_program(
    pkgs: S390Packages, initrd: Initrd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the up-front check, the BIOS's own '! Bad header type !' becomes the same error."""
    image = tmp_path / "dump.img"
    mkdisk(image, "128M", 512, "rest")
    zipldump("install", image, "--dumpto", 1, "-i", pkgs.kernel, "-r", initrd.path, "-n")
    monkeypatch.setattr(qemu, "dump_program_check", lambda *a, **k: None)
    lines: list[str] = []
    with pytest.raises(QemuDumpProgramError, match="Bad header type"):
        qemu.boot(image, expect=MARKER, timeout=60, console=lines.append)
    assert any("Bad header type" in line for line in lines)
