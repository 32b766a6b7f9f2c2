"""`zipldump ipl` as an operator sees it: on a terminal and without one.

On a terminal (a pseudo-terminal from os.openpty, as stdin, stdout and stderr)
the run shows each step with a check mark, a progress bar with throughput and
ETA for the dump and the verify, and tells the re-IPL; dump_mode=interactive
asks before deleting the oldest dump and takes the typed answer.  Without a
terminal the same run prints plain lines (no escape sequences) and never waits
for input: an interactive question is answered 'no'.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from zipldump.disk.extfs import ExtFs
from zipldump.disk.partitions import read_partition_table

MiB = 1 << 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = b"[y/N]"
DEADLINE = 300  # seconds: a hang fails the test instead of blocking the suite


def zipldump_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env.update(TERM="xterm-256color", COLUMNS="160", LINES="50")
    return env


def run_on_pty(args: list[str], answers: list[str] | None = None) -> tuple[int, str, int]:
    """Run `zipldump ARGS` with a pseudo-terminal as stdin/stdout/stderr.

    Each time a '[y/N]' prompt appears, the next answer is typed.  Returns the
    exit status, everything written to the terminal, and the prompts seen."""
    answers = list(answers or [])
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "zipldump", *args],
        stdin=slave, stdout=slave, stderr=slave, env=zipldump_env(), start_new_session=True, close_fds=True,
    )
    os.close(slave)
    out = b""
    prompts = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"zipldump {' '.join(args)} did not end on the terminal; output:\n{out.decode(errors='replace')[-3000:]}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not chunk:
                    break
                out += chunk
                if out.count(PROMPT) > prompts:
                    prompts = out.count(PROMPT)
                    if not answers:
                        proc.kill()
                        pytest.fail(f"unexpected question on the terminal:\n{out.decode(errors='replace')[-2000:]}")
                    os.write(master, answers.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, out.decode("utf-8", errors="replace"), prompts


def run_without_terminal(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Pipes everywhere; stdin stays open and silent, so a read from it would block until the timeout."""
    return subprocess.run(
        [sys.executable, "-m", "zipldump", *args],
        stdin=subprocess.PIPE, capture_output=True, text=True, env=zipldump_env(), timeout=DEADLINE,
    )


def plain(text: str) -> str:
    """Terminal output without escape sequences, carriage returns turned into line ends."""
    return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def cli(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "zipldump", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr


def demo_installed_disk(tmp_path: Path, mode: str, *, params: str | None = None, part: str = "48M") -> Path:
    """The demo payloads installed by the CLI (`mkdisk`, `install --MODE 1`) on a fresh disk."""
    from zipldump.sim.payloads import write_demo_payloads

    p = write_demo_payloads(tmp_path / "payloads")
    img = tmp_path / "disk.img"
    size = int(part.split(":")[0].rstrip("M")) + 4
    cli("mkdisk", str(img), "--size", f"{size}M", "--part", part)
    args = ["install", str(img), f"--{mode}", "1", "-i", str(p.image), "-r", str(p.ramdisk), "--stage3", str(p.stage3), "-n"]
    cli(*args, *(["-P", params] if params else []))
    return img


def dumps_on(img: Path) -> set[str]:
    part = read_partition_table(img).get(1)
    fs = ExtFs(img, part.start_bytes, part.size_bytes)
    assert fs.fsck() == 0
    return {n for n in fs.listdir("/") if n.startswith("dump.")}


# --- on a terminal ------------------------------------------------------------------------------
def test_terminal_shows_steps_progress_with_throughput_and_eta_and_the_reipl(tmp_path: Path) -> None:
    img = demo_installed_disk(tmp_path, "dumpto", part="64M")
    rc, raw, prompts = run_on_pty(["ipl", str(img), "--memory", "24M", "--verify"])
    text = plain(raw)
    assert rc == 0, text[-3000:]
    assert prompts == 0
    assert "\x1b[" in raw  # rich drew on the terminal
    for step in (
        "Building the crashed system",
        "Machine: store status of the boot CPU, save the HSA",
        "Machine loader: SCSI dump load of program 0",
        "Stage 3: kernel image, command line, initrd",
        "Dump kernel: SDIAS and zcore",
        "Checking the dump partition",
    ):
        assert re.search(rf"✓ {re.escape(step)} \(\d+\.\ds\)", text), step
    # progress bars: bytes done/total, throughput, ETA (h:mm:ss) on the same line
    bar = r"{what} .*?[\d.]+/24\.0 MiB [\d.]+ (?:[kMG]i?)?B/s \d+:\d\d:\d\d"
    assert re.search(bar.format(what="Writing dump"), text), text[-3000:]
    assert re.search(bar.format(what="Verifying"), text), text[-3000:]
    assert "Dump successful" in text
    assert re.search(r"re-IPL: DIAG 308 subcode 3 \(load clear\) from FCP device 0\.0\.[0-9a-f]{4}", text)
    # the summary, on stdout (the same terminal here)
    assert "verify:          dump matches the crashed system" in text
    assert re.search(r"re-IPL:\s+load clear from FCP 0\.0\.[0-9a-f]{4}, WWPN 0x[0-9a-f]{16}", text)


def _fill_interactive_fs(tmp_path: Path) -> Path:
    """A dumptofs disk with dump_mode=interactive whose file system holds two 24 MiB dumps, not three."""
    img = demo_installed_disk(tmp_path, "dumptofs", params="dump_mode=interactive", part="64M:ext2")
    for _ in range(2):
        r = run_without_terminal(["ipl", str(img), "--memory", "24M"])
        assert r.returncode == 0, r.stderr
    assert dumps_on(img) == {"dump.0", "dump.1"}
    return img


def test_terminal_interactive_mode_operator_says_no(tmp_path: Path) -> None:
    img = _fill_interactive_fs(tmp_path)
    rc, raw, prompts = run_on_pty(["ipl", str(img), "--memory", "24M"], answers=["n"])
    text = plain(raw)
    assert prompts == 1 and "Remove oldest dump: '/dump.0'" in text
    assert rc == 42, text[-3000:]
    assert "zipldump: error:" in text and "the oldest dump '/dump.0' was kept (dump_mode=interactive, answer no)" in text
    assert dumps_on(img) == {"dump.0", "dump.1"}  # nothing deleted, no half-written dump.2


def test_terminal_interactive_mode_operator_says_yes(tmp_path: Path) -> None:
    img = _fill_interactive_fs(tmp_path)
    rc, raw, prompts = run_on_pty(["ipl", str(img), "--memory", "24M", "--verify"], answers=["y"])
    text = plain(raw)
    assert rc == 0, text[-3000:]
    assert prompts == 1 and "DUMP '/dump.2' COMPLETE" in text
    assert re.search(r"Writing /dump\.2 .*?[\d.]+/24\.0 MiB [\d.]+ (?:[kMG]i?)?B/s \d+:\d\d:\d\d", text), text[-3000:]
    assert dumps_on(img) == {"dump.1", "dump.2"}


# --- without a terminal -----------------------------------------------------------------------------
def test_no_terminal_plain_lines(tmp_path: Path) -> None:
    img = demo_installed_disk(tmp_path, "dumpto", part="64M")
    r = run_without_terminal(["ipl", str(img), "--memory", "24M", "--verify"])
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr and "\x1b" not in r.stdout and "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert "Building the crashed system ..." in lines
    assert any(re.fullmatch(r"Machine loader: SCSI dump load of program 0: done \(\d+\.\ds\)", x) for x in lines)
    assert f"Writing dump: {4096 + 24 * MiB + 16} bytes ..." in lines
    assert any(re.fullmatch(rf"Writing dump: {4096 + 24 * MiB + 16} bytes in \d+\.\ds \(\d+ MiB/s\)", x) for x in lines)
    assert any(x.startswith("re-IPL: DIAG 308 subcode 3 (load clear)") for x in lines)
    out = r.stdout.splitlines()  # the summary is the result: stdout
    assert out[0].startswith("crashed system:  generated, 24 MiB, 4 CPUs, HSA 24 MiB")
    assert any(x.startswith("re-IPL:          load clear from FCP") for x in out)


def test_no_terminal_interactive_mode_is_no_and_never_waits(tmp_path: Path) -> None:
    img = _fill_interactive_fs(tmp_path)
    r = run_without_terminal(["ipl", str(img), "--memory", "24M"])
    assert r.returncode == 42, r.stderr
    assert "[y/N]" not in r.stderr and "\x1b" not in r.stderr
    assert "the oldest dump '/dump.0' was kept (dump_mode=interactive, answer no)" in r.stderr
    assert dumps_on(img) == {"dump.0", "dump.1"}


def test_terminal_on_stdin_only_does_not_ask(tmp_path: Path) -> None:
    """stdin a terminal but stderr a file (`zipldump ipl ... 2>log`): nobody would see the question."""
    img = _fill_interactive_fs(tmp_path)
    master, slave = os.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "zipldump", "ipl", str(img), "--memory", "24M"],
            stdin=slave, capture_output=True, text=True, env=zipldump_env(), timeout=DEADLINE,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 42 and "answer no" in r.stderr and "[y/N]" not in r.stderr
