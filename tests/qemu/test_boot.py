"""qemu-boot runner: command line, dump-program refusal, console watching, timeouts.

Most tests run a stand-in "QEMU" (a small shell script) so the watching,
matching and killing logic is checked in milliseconds.  `build_direct_disk`
(tests/builders/bootmaps.py) hand-builds a bootable direct-layout disk from
zipldump.formats (no installer); tests/qemu/test_real_firmware.py boots it in
the real QEMU.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders.bootmaps import build_direct_disk

from zipldump.cli import main
from zipldump.errors import (
    QemuBootError,
    QemuDumpProgramError,
    ToolMissingError,
    UsageError,
)
from zipldump.formats.component_table import (
    HEADER_DUMP,
    HEADER_IPL,
)
from zipldump.qemu import boot as qemu


def fake_qemu(tmp_path: Path, body: str) -> str:
    """A stand-in for qemu-system-s390x: a shell script that ignores its arguments."""
    script = tmp_path / "fake-qemu"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def small_disk(tmp_path: Path, header_type: int = HEADER_IPL, bs: int = 512) -> Path:
    kernel = tmp_path / "k"
    kernel.write_bytes(bytes(0x10000) + bytes(0x500) + b"KERNEL")
    disk = tmp_path / "disk.img"
    build_direct_disk(disk, kernel, b"initrd", "root=/dev/ram0", block_size=bs, header_type=header_type)
    return disk


def test_command_line_matches_verified_facts(tmp_path: Path) -> None:
    img = tmp_path / "d.img"
    cmd = qemu.qemu_command(img)
    assert cmd == [
        "qemu-system-s390x", "-M", "s390-ccw-virtio", "-cpu", "max", "-m", "512M", "-nographic", "-no-reboot",
        "-device", "virtio-scsi-ccw",
        "-drive", f"file={img},format=raw,if=none,id=d0,snapshot=on",
        "-device", "scsi-hd,drive=d0,bootindex=1",
    ]  # fmt: skip
    cmd4 = qemu.qemu_command(img, block_size=4096, loadparm=2, memory="1G")
    assert cmd4[2] == "s390-ccw-virtio,loadparm=2" and cmd4[6] == "1G"
    assert cmd4[-1] == "scsi-hd,drive=d0,bootindex=1,logical_block_size=4096,physical_block_size=4096"
    for bad in ({"block_size": 1024}, {"loadparm": 31}, {"memory": "lots"}):
        with pytest.raises(UsageError):
            qemu.qemu_command(img, **bad)


def test_firmware_messages() -> None:
    assert qemu.firmware_error("LOADPARM=[        ]\nUsing SCSI scheme.\n! Bad header type !\n") == "Bad header type"
    assert qemu.firmware_error("! No zIPL magic in PT !") == "No zIPL magic in PT"
    assert qemu.firmware_error("! WARNING: Unknown MBR layout version, assuming version 1 !\n") is None
    assert qemu.firmware_error("Failed to IPL from this SCSI device!") == "Failed to IPL from this SCSI device"
    assert qemu.firmware_error("Using SCSI scheme.\n..\n") is None


def test_dump_program_detected_before_qemu_runs(tmp_path: Path) -> None:
    disk = small_disk(tmp_path, HEADER_DUMP)
    assert "dump program" in (qemu.dump_program_check(disk) or "")
    marker = tmp_path / "ran"
    exe = fake_qemu(tmp_path, f"touch {marker}")
    with pytest.raises(QemuDumpProgramError, match="refuses dump programs"):
        qemu.boot(disk, expect="x", qemu=exe, timeout=5)
    assert not marker.exists()
    assert qemu.dump_program_check(small_disk(tmp_path, HEADER_IPL)) is None
    d4 = tmp_path / "d4"
    d4.mkdir()
    assert qemu.dump_program_check(small_disk(d4, HEADER_DUMP, 4096), 4096) is not None


def test_expect_seen_kills_qemu(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    exe = fake_qemu(tmp_path, f"echo $$ > {pidfile}\necho 'LOADPARM=[        ]'\necho 'BOOT-OK-MARKER'\nsleep 60\n")
    lines: list[str] = []
    t = time.monotonic()
    res = qemu.boot(small_disk(tmp_path), expect="BOOT-OK-MARKER", qemu=exe, timeout=20, console=lines.append)
    assert res.matched and time.monotonic() - t < 10
    assert lines == ["LOADPARM=[        ]", "BOOT-OK-MARKER"]
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_firmware_error_reported(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path, "echo 'Using SCSI scheme.'\necho '! zIPL load segment failed !'\nsleep 60\n")
    t = time.monotonic()
    with pytest.raises(QemuBootError, match="zIPL load segment failed") as ei:
        qemu.boot(small_disk(tmp_path), expect="never", qemu=exe, timeout=30)
    assert time.monotonic() - t < 10 and type(ei.value) is QemuBootError


def test_bad_header_from_bios_is_dump_error(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path, "echo '! Bad header type !'\nexit 1\n")
    with pytest.raises(QemuDumpProgramError, match="Bad header type"):
        qemu.boot(small_disk(tmp_path), expect="never", qemu=exe, timeout=10)


def test_timeout(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path, "echo starting\nexec sleep 60\n")
    t = time.monotonic()
    with pytest.raises(QemuBootError, match=r"did not appear within 1s; last console lines: starting"):
        qemu.boot(small_disk(tmp_path), expect="never", qemu=exe, timeout=1)
    assert time.monotonic() - t < 8


def test_qemu_exits_early(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path, "echo hello\nexit 3\n")
    with pytest.raises(QemuBootError, match=r"ended \(status 3\) before 'never'"):
        qemu.boot(small_disk(tmp_path), expect="never", qemu=exe, timeout=10)
    ok = fake_qemu(tmp_path, "echo bye\nexit 0\n")
    assert qemu.boot(small_disk(tmp_path), qemu=ok, timeout=10).returncode == 0


def test_missing_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZIPLDUMP_QEMU", "qemu-system-s390x-not-installed")
    with pytest.raises(ToolMissingError, match="apt-get install qemu-system-misc"):
        qemu.boot(small_disk(tmp_path), expect="x")


def test_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    disk = small_disk(tmp_path, HEADER_DUMP)
    assert main(["qemu-boot", str(disk), "--expect", "x", "--timeout", "5"]) == QemuDumpProgramError.exit_code
    assert "dump program" in capsys.readouterr().err
    monkeypatch.setenv("ZIPLDUMP_QEMU", fake_qemu(tmp_path, "echo 'hello MARK world'\nsleep 30"))
    assert main(["qemu-boot", str(small_disk(tmp_path)), "--expect", "MARK", "--timeout", "10"]) == 0
    err = capsys.readouterr().err
    assert "hello MARK world" in err and "'MARK' seen" in err
    assert main(["qemu-boot", str(tmp_path / "none.img")]) == UsageError.exit_code


def test_s390pkgs_cache_is_reused_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from zipldump.qemu import packages as s390pkgs
    root = tmp_path / "root"
    for rel in ("boot/vmlinuz-6.1.0-99-s390x", "bin/busybox", "lib/s390-tools/stage3.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "kernel": "root/boot/vmlinuz-6.1.0-99-s390x",
                "kernel_version": "6.1.0-99-s390x",
                "busybox": "root/bin/busybox",
                "stage3": "root/lib/s390-tools/stage3.bin",
                "debs": [],
            }
        )
    )

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("must not download when the cache is complete")

    monkeypatch.setattr(s390pkgs, "_download", no_network)
    pk = s390pkgs.ensure_packages(tmp_path)
    assert pk.kernel == root / "boot/vmlinuz-6.1.0-99-s390x" and pk.kernel_version == "6.1.0-99-s390x"
    # a missing file makes the cache incomplete: download again
    (root / "bin/busybox").unlink()
    with pytest.raises(AssertionError, match="must not download"):
        s390pkgs.ensure_packages(tmp_path)
    monkeypatch.setenv("ZIPLDUMP_CACHE", str(tmp_path / "c"))
    assert s390pkgs.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ZIPLDUMP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert s390pkgs.default_cache_dir() == tmp_path / "x" / "zipldump" / "s390x"


def test_s390pkgs_download_failure_is_tool_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zipldump.qemu import packages as s390pkgs
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get at all
    with pytest.raises(ToolMissingError, match="apt-get not found"):
        s390pkgs.ensure_packages(tmp_path / "cache")


def test_cli_json_and_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.setenv("ZIPLDUMP_QEMU", fake_qemu(tmp_path, "echo 'guest says MARK'\nsleep 30"))
    disk = small_disk(tmp_path, bs=4096)
    assert main(["-q", "qemu-boot", str(disk), "--block-size", "4096", "--loadparm", "0", "--expect", "MARK", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["matched"] is True and doc["expect"] == "MARK" and doc["qemu_status"] is None
    assert "logical_block_size=4096" in doc["command"][-1] and doc["command"][2] == "s390-ccw-virtio,loadparm=0"
    assert "guest says" not in err  # -q hides the console


def test_empty_loadparm_entry_refused(tmp_path: Path) -> None:
    disk = small_disk(tmp_path)
    assert qemu.empty_entry_check(disk, 512, 0) is None
    msg = qemu.empty_entry_check(disk, 512, 5)
    assert msg and "entry 5 is empty (entries in use: 0)" in msg
    marker = tmp_path / "ran"
    with pytest.raises(QemuBootError, match="entry 5 is empty") as ei:
        qemu.boot(disk, expect="x", loadparm=5, qemu=fake_qemu(tmp_path, f"touch {marker}"), timeout=5)
    assert type(ei.value) is QemuBootError and not marker.exists()
    # not a zipl disk: left for the firmware to report
    plain = tmp_path / "plain.img"
    plain.write_bytes(bytes(4096))
    assert qemu.empty_entry_check(plain, 512, 3) is None and qemu.dump_program_check(plain) is None


def _run_real_firmware_file(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """tests/qemu/test_real_firmware.py with a "QEMU" present but no apt-get: the package download fails."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "ZIPLDUMP_CACHE", "ZIPLDUMP_QEMU")}
    env.update(PATH=str(bindir), ZIPLDUMP_QEMU=fake_qemu(tmp_path, "exit 1"), ZIPLDUMP_CACHE=str(tmp_path / "cache"))
    if ci is not None:
        env["CI"] = ci
    test = Path(__file__).resolve().parent / "test_real_firmware.py"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{test}::test_hand_built_direct_layout_boots"],
        capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).resolve().parents[2],
    )


def test_real_firmware_download_failure_fails_in_ci(tmp_path: Path) -> None:
    r = _run_real_firmware_file(tmp_path, "true")
    assert r.returncode != 0, r.stdout
    assert "real-firmware prerequisites missing in CI" in r.stdout and "apt-get not found" in r.stdout
    assert "skipped" not in r.stdout.splitlines()[-1]


def test_real_firmware_download_failure_skips_off_ci(tmp_path: Path) -> None:
    r = _run_real_firmware_file(tmp_path, None)
    assert r.returncode == 0, r.stdout
    assert "1 skipped" in r.stdout.splitlines()[-1]


def test_cli_without_qemu_on_path(tmp_path: Path) -> None:
    """No qemu-system-s390x on PATH: the user is told how to install it (exit 5); a dump disk is still
    refused plainly first, since that needs no QEMU."""
    env = {k: v for k, v in os.environ.items() if k != "ZIPLDUMP_QEMU"}
    env["PATH"] = str(tmp_path / "empty")
    run = lambda disk: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "zipldump", "qemu-boot", str(disk), "--expect", "x", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    r = run(small_disk(tmp_path))
    assert r.returncode == ToolMissingError.exit_code, r.stderr
    assert "qemu-system-s390x is not installed; install it with: apt-get install qemu-system-misc" in r.stderr
    assert json.loads(r.stdout)["error"]["kind"] == "tool-missing"
    d = tmp_path / "dump"
    d.mkdir()
    r = run(small_disk(d, HEADER_DUMP))
    assert r.returncode == QemuDumpProgramError.exit_code and "refuses dump programs by design" in r.stderr


def test_firmware_failure_names_its_reason(tmp_path: Path) -> None:
    """The BIOS says why before it says that it failed: both reach the error message."""
    exe = fake_qemu(
        tmp_path,
        "echo 'LOADPARM=[        ]'\necho 'Using virtio-scsi.'\necho 'No zIPL section in IPL2 record.'\n"
        "echo 'zIPL load failed.'\necho 'Failed to load OS from hard disk'\nsleep 30\n",
    )
    with pytest.raises(QemuBootError) as ei:
        qemu.boot(small_disk(tmp_path), expect="MARK", qemu=exe, timeout=20)
    msg = ei.value.message
    assert msg.startswith("the s390-ccw firmware stopped: 'zIPL load failed'")
    assert "No zIPL section in IPL2 record. | zIPL load failed. | Failed to load OS from hard disk" in msg
    assert "LOADPARM" not in msg


@pytest.mark.parametrize("loadparm", [-1, 31, 99])
def test_loadparm_out_of_range_is_a_usage_error_before_the_disk_is_judged(tmp_path: Path, loadparm: int) -> None:
    """-1 must not select the table's last entry ('entry -1 is empty', exit 50): it is a usage error."""
    marker = tmp_path / "ran"
    with pytest.raises(UsageError, match=f"loadparm {loadparm}: the program table has entries 0..30"):
        qemu.boot(small_disk(tmp_path), expect="x", loadparm=loadparm, qemu=fake_qemu(tmp_path, f"touch {marker}"), timeout=5)
    assert not marker.exists()
    assert qemu.empty_entry_check(small_disk(tmp_path), 512, loadparm) is None


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-5"])
def test_timeout_must_be_a_positive_number(tmp_path: Path, timeout: str) -> None:
    """--timeout nan would give a deadline that never passes: refused like 0, before QEMU starts."""
    marker = tmp_path / "ran"
    with pytest.raises(UsageError, match="must be a positive number of seconds"):
        qemu.boot(small_disk(tmp_path), expect="x", qemu=fake_qemu(tmp_path, f"touch {marker}"), timeout=float(timeout))
    assert not marker.exists()


def test_utf8_split_across_reads_still_matches(tmp_path: Path) -> None:
    """A character whose bytes arrive in two reads is decoded whole (not as two replacement characters)."""
    exe = fake_qemu(tmp_path, "printf 'start \\303'\nsleep 0.5\nprintf '\\251t\\303\\251 MARK\\n'\nsleep 30\n")
    lines: list[str] = []
    res = qemu.boot(small_disk(tmp_path), expect="été MARK", qemu=exe, timeout=20, console=lines.append)
    assert res.matched and lines == ["start été MARK"]


def test_s390pkgs_failure_names_the_apt_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message names `apt-get update`, not the first option (`apt-get -o`)."""
    from zipldump.qemu import packages as s390pkgs
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        (bindir / tool).write_text("#!/bin/sh\necho 'E: no network' >&2\nexit 100\n")
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ToolMissingError, match=r"`apt-get update` failed \(100\): E: no network"):
        s390pkgs.ensure_packages(tmp_path / "cache")


def test_qemu_that_cannot_start_is_one_error(tmp_path: Path) -> None:
    """An executable that exec() refuses (no #! line, wrong format) is a ToolMissingError naming it, not a traceback."""
    exe = tmp_path / "broken-qemu"
    exe.write_bytes(b"\x7fELF not really")
    exe.chmod(0o755)
    with pytest.raises(ToolMissingError, match=f"cannot start {exe}: Exec format error"):
        qemu.boot(small_disk(tmp_path), expect="x", qemu=str(exe), timeout=5)


def test_s390pkgs_tool_that_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zipldump.qemu import packages as s390pkgs
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        (bindir / tool).write_bytes(b"\x7fELF not really")
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))  # only these: exec would go on to a real apt-get further down PATH
    with pytest.raises(ToolMissingError, match="cannot start apt-get: Exec format error"):
        s390pkgs.ensure_packages(tmp_path / "cache")
