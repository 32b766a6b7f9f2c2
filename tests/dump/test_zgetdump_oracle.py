"""The real zgetdump 2.16 (Debian's s390x s390-tools under qemu-s390x-static) as the oracle.

verified-facts.md: the binaries run here with QEMU_LD_PREFIX; zgetdump -i and -f elf
take files.  A dump partition is compared through a file holding its dump area
(the bytes from part_start + dump_offset), which is what zgetdump reads on a
loop device at that offset.  When zgetdump cannot be had the tests FAIL when
CI=true and are skipped otherwise (as tests/qemu do).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders.dumps import PART_START, dump_disk, linux_s390_dump

from zipldump.dump.elf import read_elf_core
from zipldump.errors import ToolMissingError
from zipldump.formats import s390dump as sd
from zipldump.qemu.packages import Zgetdump, ensure_zgetdump

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"zgetdump oracle missing in CI: {reason}")
    pytest.skip(f"zgetdump oracle tests need: {reason}")


@pytest.fixture(scope="session")
def zgetdump() -> Zgetdump:
    cache = Path(os.environ.get("ZIPLDUMP_CACHE") or REPO / ".cache" / "s390x")
    try:
        zg = ensure_zgetdump(cache)
    except ToolMissingError as exc:
        unavailable(str(exc))
        raise
    r = zg.run("-v", timeout=120)
    if r.returncode != 0:
        unavailable(f"zgetdump -v failed under {zg.qemu}: {r.stderr.decode(errors='replace')[-200:]}")
    return zg


def ours(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "zipldump", *args], capture_output=True, text=True, env=env, timeout=300)


def general_block(text: str) -> str:
    """zgetdump -i's part of our dumpinfo text: everything before the CPU list / status line."""
    for stop in ("\nCPUs:\n", "\nDump is complete\n", "\nERROR: Dump is not complete"):
        if stop in text:
            text = text[: text.index(stop)]
    return text.rstrip("\n") + "\n"


def readelf_notes(path: Path) -> list[str]:
    """`readelf -n` lines without the file offset line (the notes' place differs by layout)."""
    if shutil.which("readelf") is None:
        unavailable("readelf (binutils)")
    out = subprocess.run(["readelf", "-n", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.rstrip() for line in out.splitlines() if line.strip() and not line.startswith("Displaying notes")]


@pytest.fixture
def linux(tmp_path: Path) -> tuple[Path, Path]:
    s390 = tmp_path / "linux.s390"
    linux_s390_dump(s390)
    elf = tmp_path / "linux.elf"
    r = ours("-q", "getdump", str(s390), str(elf), "--format", "elf")
    assert r.returncode == 0, r.stderr
    return s390, elf


def test_info_of_s390_and_elf_dumps_matches_zgetdump(zgetdump: Zgetdump, linux) -> None:
    for path in linux:
        zg = zgetdump.run("-i", str(path))
        assert zg.returncode == 0, zg.stderr
        mine = ours("dumpinfo", str(path))
        assert mine.returncode == 0, mine.stderr
        assert general_block(mine.stdout) == zg.stderr.decode(), path.name


def test_elf_dump_on_partition_matches_zgetdump(zgetdump: Zgetdump, linux, tmp_path: Path) -> None:
    _, elf = linux
    disk = dump_disk(tmp_path / "disk.img", elf)
    area = tmp_path / "area.bin"  # the dump area as a loop device at part_start would show it
    with open(disk, "rb") as fh:
        fh.seek(PART_START)
        area.write_bytes(fh.read(8 << 20))
    zg = zgetdump.run("-i", str(area))
    assert zg.returncode == 0, zg.stderr
    text = zg.stderr.decode()
    assert "Dump format........: elf" in text and "UTS kernel release.: 6.1.0-99-s390x" in text
    mine = ours("dumpinfo", str(disk))
    assert mine.returncode == 0, mine.stderr
    assert general_block(mine.stdout) == text


def test_getdump_elf_notes_match_zgetdump_f_elf(zgetdump: Zgetdump, linux, tmp_path: Path) -> None:
    """Same notes, same order, same bytes: from an s390 input and from an ELF input."""
    for src in linux:
        theirs = tmp_path / f"{src.name}.zg.elf"
        with open(theirs, "wb") as out:
            zg = subprocess.run(zgetdump.command("-f", "elf", str(src)), env=zgetdump.env(), stdout=out, stderr=subprocess.PIPE, timeout=300)
        assert zg.returncode == 0, zg.stderr
        mine = tmp_path / f"{src.name}.ours.elf"
        r = ours("-q", "getdump", str(src), str(mine), "--format", "elf")
        assert r.returncode == 0, r.stderr
        assert readelf_notes(mine) == readelf_notes(theirs), src.name
        a, b = read_elf_core(mine, keep_open=True), read_elf_core(theirs, keep_open=True)
        with a, b:
            assert a.notes == b.notes and len(a.notes) == 20
            assert a.read(0, 4 << 20) == b.read(0, 4 << 20)


def test_interrupted_dumps_are_incomplete_for_both(zgetdump: Zgetdump, linux, tmp_path: Path) -> None:
    """Busy marker where the ELF header belongs, and an ELF cut inside its PT_LOAD: exit 1 for both."""
    _, elf = linux
    data = elf.read_bytes()
    busy = tmp_path / "busy.bin"
    busy.write_bytes(sd.BUSY_MARKER + data[len(sd.BUSY_MARKER) :])
    cut = tmp_path / "cut.elf"
    cut.write_bytes(data[: 2 << 20])
    disk = dump_disk(tmp_path / "disk.img", busy)
    for theirs, mine in ((busy, disk), (cut, cut)):
        assert zgetdump.run("-i", str(theirs)).returncode == 1
        assert ours("dumpinfo", str(mine)).returncode == 1
    assert "Dump is not complete" in zgetdump.run("-i", str(cut)).stderr.decode()
