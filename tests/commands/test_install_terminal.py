"""The operator's terminal (issue 2, point 9), exercised through a real pseudo-terminal.

`zipldump install` runs as a child process whose stdin and stderr (and, unless
the test pipes it, stdout) are the slave side of a pty, as in an interactive
shell; the test reads the master side and types answers.  No tmux or expect is
needed.  Checked: rich shows each step on stderr; before destroying data (a file
system or a dump in the dump partition, another boot record, foreign boot code)
it lists what will be lost and asks; 'n', an empty line and end of input abort
with exit 6 and leave the image byte-identical; 'y' proceeds; -n never asks;
without a terminal it never waits; plain lines off a terminal; --json keeps
stdout pure JSON; errors are one line "zipldump: error: WHERE: WHAT".

Every child has a generous deadline only so that a regression shows up as a
failure instead of a hung test run; nothing here measures time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders.tools import have_tool

from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.formats.s390dump import DUMP_MAGIC
from zipldump.sim.payloads import write_demo_payloads

HANG_GUARD = 120.0  # seconds; only to turn a hang into a failure
PROMPT = b"[y/N]"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERROR_LINE = re.compile(r"^zipldump: error: (?P<where>[^:]+(?::[^ ][^:]*)*): (?P<what>.+)$")


@dataclass
class Run:
    rc: int
    tty: str  # everything the child wrote to the terminal, escape codes removed
    raw: bytes  # the same with escape codes
    stdout: str  # stdout when it was piped
    prompts: int  # how many questions were asked

    def error_lines(self) -> list[str]:
        return [ln.strip() for ln in self.tty.splitlines() if "zipldump: error:" in ln]


def _zipldump() -> list[str]:
    return [sys.executable, "-m", "zipldump"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM")}
    env["TERM"] = "xterm-256color"
    return env


def run_on_tty(args: list[str], answers: list[str] | None = None, *, pipe_stdout: bool = False) -> Run:
    """Run zipldump with stdin and stderr (and stdout unless piped) on a pty; answer each [y/N]."""
    answers = list(answers or [])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        _zipldump() + args,
        stdin=slave,
        stdout=subprocess.PIPE if pipe_stdout else slave,
        stderr=slave,
        env=_env(),
        start_new_session=True,
    )
    os.close(slave)
    out = bytearray()
    prompts = 0
    answered_at = 0
    deadline = time.monotonic() + HANG_GUARD
    stdout_chunks: list[bytes] = []
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"zipldump {' '.join(args)} hung; terminal so far:\n{out.decode(errors='replace')}")
            fds = [master] + ([proc.stdout.fileno()] if pipe_stdout and proc.stdout and not proc.stdout.closed else [])
            ready, _, _ = select.select(fds, [], [], 0.2)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                if not data:
                    break
                out += data
                if out.find(PROMPT, answered_at) >= 0:
                    prompts += 1
                    answered_at = out.find(PROMPT, answered_at) + len(PROMPT)
                    if not answers:
                        proc.kill()
                        raise AssertionError(f"unexpected question:\n{out.decode(errors='replace')}")
                    answer = answers.pop(0)
                    if answer == "SIGINT":  # Ctrl-C at the question
                        proc.send_signal(signal.SIGINT)
                    else:
                        os.write(master, answer.encode() if answer == "\x04" else answer.encode() + b"\n")
            if pipe_stdout and proc.stdout is not None and proc.stdout.fileno() in ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if chunk:
                    stdout_chunks.append(chunk)
            if proc.poll() is not None and master not in ready:
                break
        if pipe_stdout and proc.stdout is not None:
            stdout_chunks.append(proc.stdout.read())
        rc = proc.wait(HANG_GUARD)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not answers, f"answers left over (no question was asked): {answers}\n{out.decode(errors='replace')}"
    text = ANSI.sub("", out.decode(errors="replace")).replace("\r", "")
    return Run(rc, text, bytes(out), b"".join(stdout_chunks).decode(), prompts)


def run_without_tty(args: list[str], *, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """Pipes everywhere (stdin: an open pipe nobody writes to, unless given)."""
    return subprocess.run(
        _zipldump() + args,
        stdin=stdin if stdin is not None else subprocess.PIPE,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=HANG_GUARD,
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory):
    return write_demo_payloads(tmp_path_factory.mktemp("payloads"))


@pytest.fixture
def fs_in_dump_partition(tmp_path: Path) -> Path:
    """Partition 1 (the dump partition to be) holds an ext2 file system; partition 2 ext4."""
    if not have_tool("mke2fs"):
        pytest.skip("mke2fs missing")
    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(48 << 20, "ext2"), PartSpec(None, "ext4")])
    return img


def dump_args(img: Path, pl, *extra: str) -> list[str]:
    return ["install", str(img), "--dumpto", "1", "--image", str(pl.image), "--ramdisk", str(pl.ramdisk), *extra]


def target_args(img: Path, pl, *extra: str) -> list[str]:
    return ["install", str(img), "--target", "2", "--image", str(pl.image), "--ramdisk", str(pl.ramdisk), *extra]


def assert_one_error_line(text: str, where: str) -> None:
    lines = [ln for ln in text.splitlines() if ln.startswith("zipldump: error:")]
    assert len(lines) == 1, text
    m = ERROR_LINE.match(lines[0])
    assert m, lines[0]
    assert m.group("where") == where, lines[0]


# --- asking before destroying data -----------------------------------------------------------
@pytest.mark.parametrize("answer", ["n", "", "no", "\x04"], ids=["n", "empty", "no", "ctrl-d"])
def test_no_aborts_and_leaves_the_image_identical(fs_in_dump_partition: Path, payloads, answer: str) -> None:
    img = fs_in_dump_partition
    before = sha(img)
    r = run_on_tty(dump_args(img, payloads), [answer])
    assert r.rc == 6, r.tty
    assert r.prompts == 1
    assert "This will destroy:" in r.tty and "ext2/3/4 file system on partition 1" in r.tty
    assert f"Install on {img}? [y/N]" in r.tty
    assert_one_error_line(r.tty, str(img))
    assert "nothing was written" in r.tty
    assert sha(img) == before


def test_ctrl_c_at_the_question_exits_130_and_writes_nothing(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    before = sha(img)
    r = run_on_tty(dump_args(img, payloads), ["SIGINT"])
    assert r.rc == 130, r.tty
    assert "zipldump: interrupted" in r.tty and "Traceback" not in r.tty
    assert sha(img) == before


def test_yes_proceeds_and_shows_each_step(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    r = run_on_tty(dump_args(img, payloads), ["y"])
    assert r.rc == 0, r.tty
    assert r.prompts == 1
    for step in ("Checking input files and programs", "Checking partition 1", "Planning the dump partition tail",
                 "Writing programs and tables", "Reading back every block list", "Writing block 0 (boot record)"):
        assert f"✓ {step}" in r.tty, step
    assert "\x1b[" in r.raw.decode(errors="replace"), "rich styles the terminal output"
    assert "Done." in r.tty
    # the step lines come in the order the installer works: block 0 last
    assert r.tty.index("✓ Writing programs and tables") < r.tty.index("✓ Writing block 0")
    rep = run_without_tty(["inspect", str(img), "--json"])
    assert rep.returncode == 0 and json.loads(rep.stdout)["valid"] is True


def test_noninteractive_flag_never_asks_on_a_terminal(fs_in_dump_partition: Path, payloads) -> None:
    r = run_on_tty(dump_args(fs_in_dump_partition, payloads, "-n"))
    assert r.rc == 0, r.tty
    assert r.prompts == 0 and PROMPT.decode() not in r.tty
    assert "warning: will overwrite: the ext2/3/4 file system on partition 1" in r.tty


def test_existing_dump_is_named_before_it_is_overwritten(tmp_path: Path, payloads) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(64 << 20), PartSpec(None)])
    assert run_without_tty(dump_args(img, payloads, "-n")).returncode == 0
    start = 1 << 20  # partition 1 starts at 1 MiB
    with open(img, "r+b") as fh:  # a dump was written since: its header magic at the partition start
        fh.seek(start)
        fh.write(DUMP_MAGIC.to_bytes(8, "big") + b"\x01" * 504)
    before = sha(img)
    r = run_on_tty(dump_args(img, payloads), ["n"])
    assert r.rc == 6 and "the s390 dump on partition 1" in r.tty, r.tty
    assert sha(img) == before
    r = run_on_tty(dump_args(img, payloads), ["y"])
    assert r.rc == 0, r.tty


def test_other_boot_record_is_named(fs_in_dump_partition: Path, payloads) -> None:
    """A dump disk becoming an IPL disk: the dump boot record is what will be lost."""
    img = fs_in_dump_partition
    assert run_without_tty(dump_args(img, payloads, "-n")).returncode == 0
    before = sha(img)
    r = run_on_tty(target_args(img, payloads), ["n"])
    assert r.rc == 6 and "the zipl SCSI dump boot record in block 0" in r.tty, r.tty
    assert sha(img) == before
    r = run_on_tty(target_args(img, payloads), ["yes"])
    assert r.rc == 0, r.tty
    assert "✓ Allocating the bootmap file" in r.tty and "✓ Renaming the bootmap file" in r.tty


def test_foreign_boot_code_is_named(tmp_path: Path, payloads) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(64 << 20), PartSpec(None)])
    with open(img, "r+b") as fh:
        fh.write(b"\xeb\x63\x90" + b"BOOTCODE" * 8)  # someone's x86 boot loader
    before = sha(img)
    r = run_on_tty(dump_args(img, payloads), ["n"])
    assert r.rc == 6 and "boot code in block 0" in r.tty, r.tty
    assert sha(img) == before


def test_reinstall_over_its_own_dump_tool_does_not_ask(tmp_path: Path, payloads) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(64 << 20), PartSpec(None)])
    assert run_without_tty(dump_args(img, payloads, "-n")).returncode == 0
    r = run_on_tty(dump_args(img, payloads))
    assert r.rc == 0 and r.prompts == 0, r.tty


def test_dry_run_on_a_terminal_does_not_ask_and_changes_nothing(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    before = sha(img)
    r = run_on_tty(dump_args(img, payloads, "--dry-run"))
    assert r.rc == 0 and r.prompts == 0, r.tty
    assert "a real install would overwrite: the ext2/3/4 file system on partition 1" in r.tty
    assert "dry run" in r.tty and "nothing was written" in r.tty.lower()
    assert sha(img) == before


# --- without a terminal -----------------------------------------------------------------------
def test_without_a_terminal_it_never_waits(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    before = sha(img)
    # stdin an open pipe nobody writes to: waiting for it would hang until the guard
    p = run_without_tty(dump_args(img, payloads))
    assert p.returncode == 6, p.stderr
    assert "no terminal to ask; use -n/--noninteractive" in p.stderr
    assert_one_error_line(p.stderr, str(img))
    assert p.stdout == ""
    assert sha(img) == before


def test_terminal_stdin_but_stderr_redirected_does_not_ask(fs_in_dump_partition: Path, payloads) -> None:
    """`zipldump install ... 2>log` at a shell: the question could not be seen, so it is not asked."""
    img = fs_in_dump_partition
    before = sha(img)
    master, slave = pty.openpty()
    try:
        p = run_without_tty(dump_args(img, payloads), stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 6 and "no terminal to ask" in p.stderr
    assert sha(img) == before


def test_plain_lines_when_not_a_terminal(fs_in_dump_partition: Path, payloads) -> None:
    p = run_without_tty(dump_args(fs_in_dump_partition, payloads, "-n"))
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stderr and "\r" not in p.stderr
    lines = p.stderr.splitlines()
    assert "Checking input files and programs ..." in lines
    assert any(ln.startswith("Writing block 0 (boot record): done") for ln in lines)
    assert "warning: will overwrite: the ext2/3/4 file system on partition 1 (magic 0xEF53 at partition offset 0x438)" in lines
    assert lines[-1] == "Done."
    assert p.stdout == ""


# --- --json ------------------------------------------------------------------------------------
def test_json_stdout_is_json_only_while_the_terminal_shows_status(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    r = run_on_tty(dump_args(img, payloads, "--json"), ["y"], pipe_stdout=True)
    assert r.rc == 0, r.tty
    doc = json.loads(r.stdout)  # nothing else on stdout
    assert doc["mode"] == "dumpto" and doc["verified"] is True
    assert doc["overwritten"] == ["the ext2/3/4 file system on partition 1 (magic 0xEF53 at partition offset 0x438)"]
    assert "✓ Writing block 0 (boot record)" in r.tty and "{" not in r.tty
    insp = run_on_tty(["inspect", str(img), "--json"], pipe_stdout=True)
    assert insp.rc == 0 and json.loads(insp.stdout)["valid"] is True and insp.tty.strip() == ""


def test_json_error_on_stdout_and_one_line_on_the_terminal(fs_in_dump_partition: Path, payloads) -> None:
    img = fs_in_dump_partition
    r = run_on_tty(dump_args(img, payloads, "--json"), ["n"], pipe_stdout=True)
    assert r.rc == 6
    doc = json.loads(r.stdout)
    assert doc["error"]["kind"] == "aborted" and doc["error"]["exit_code"] == 6 and doc["error"]["where"] == str(img)
    assert_one_error_line(r.tty, str(img))


# --- errors: one line naming the place -----------------------------------------------------------
def test_errors_are_one_line_on_a_terminal(tmp_path: Path, payloads) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 64 << 20, parts=[PartSpec(None)])
    r = run_on_tty(["install", str(img), "--dumpto", "7", "--image", str(payloads.image)])
    assert r.rc == 3, r.tty
    assert_one_error_line(r.tty, "partition 7")
    assert "✗ Checking partition 7" in r.tty  # the failing step is marked
    r = run_on_tty(["inspect", str(img)])
    assert r.rc == 21
    assert_one_error_line(r.tty, "block 0x0 offset 0x0 (boot record) field magic")
    assert "INVALID (exit 21)" in r.tty
    big = tmp_path / "big.initrd"
    big.write_bytes(b"\x01" * (33 << 20))
    r = run_on_tty(["install", str(img), "--dumpto", "1", "--image", str(payloads.image), "--ramdisk", str(big)])
    assert r.rc == 11, r.tty
    assert_one_error_line(r.tty, "dump program 'dump'")
    assert "'initial ramdisk'" in r.tty and "HSA limit 0x02000000" in r.tty


def test_lock_held_fails_fast_with_a_clear_message(tmp_path: Path, payloads) -> None:
    img = tmp_path / "disk.img"
    make_disk(img, 64 << 20, parts=[PartSpec(None)])
    with open(img, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run_on_tty(dump_args(img, payloads, "-n"))
    assert r.rc == 4, r.tty
    assert_one_error_line(r.tty, str(img))
    assert "in use by another zipldump process" in r.tty and f"pid {os.getpid()}" in r.tty


# --- every refusal: one line, a place, a reason, the class's exit code --------------------------------
def test_every_install_refusal_is_one_line_with_a_place(tmp_path: Path, payloads, capsys: pytest.CaptureFixture[str]) -> None:
    from zipldump.cli import main

    img = tmp_path / "disk.img"
    make_disk(img, 96 << 20, parts=[PartSpec(64 << 20), PartSpec(8 << 20)])
    big = tmp_path / "big.initrd"
    big.write_bytes(b"\x01" * (33 << 20))
    k = str(payloads.image)
    cases = [
        (["install", str(img), "--image", k], 2, "install"),
        (["install", str(img), "--dumpto", "1", "--image", str(tmp_path / "nope")], 2, str(tmp_path / "nope")),
        (["install", str(img), "--dumpto", "0", "--image", k], 2, "--dumpto"),
        (["install", str(img), "--dumpto", "9", "--image", k], 3, "partition 9"),
        (["install", str(img), "--dumpto", "1", "--image", k, "--ramdisk", str(big)], 11, "dump program 'dump'"),
        (["install", str(img), "--dumpto", "2", "--image", k], 12, "dump partition"),
        (["install", str(img), "--target", "1", "--image", k], 3, f"{img} offset 0x100400"),
        (["install", str(img), "--dumpto", "1", "--image", k, "--hsa-size", "lots"], 2, None),  # argparse's own usage line
        (["install", str(img), "--dumpto", "1", "--image", k, "--stage3", str(big)], 10, str(big)),
        (["install", str(tmp_path / "missing.img"), "--dumpto", "1", "--image", k], 3, str(tmp_path / "missing.img")),
        (["mkdisk", str(img), "--size", "1M"], 2, str(img)),
    ]
    before = sha(img)
    for argv, code, where in cases:
        rc = main(["-q", *argv])
        out, err = capsys.readouterr()
        assert rc == code, (argv, rc, err)
        assert out == ""
        if where is None:
            assert err.rstrip().splitlines()[-1].startswith("zipldump install: error: argument --hsa-size"), err
            continue
        assert_one_error_line(err, where)
        assert len(err.splitlines()) == 1, err
    assert sha(img) == before
