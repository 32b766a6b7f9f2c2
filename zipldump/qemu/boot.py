"""Boot a disk image in qemu-system-s390x and watch the console for a text.

The command line is the one verified against QEMU 7.2's s390-ccw BIOS
(docs/real-firmware.md): virtio-scsi-ccw + scsi-hd, the image opened with
snapshot=on so it is never changed, `-no-reboot` so a guest power-off or
reboot ends QEMU.  The console is read from QEMU's stdout (`-nographic`),
streamed line by line to the operator, and searched for the expected text.

QEMU runs in its own process group with a hard deadline; whatever happens
(success, firmware error, timeout, Ctrl-C) the whole group is killed before
`boot()` returns.

The s390-ccw BIOS refuses dump programs (component-table header type DUMP)
by design, so `boot()` reads the disk first and raises QemuDumpProgramError
instead of starting QEMU for nothing.
"""

from __future__ import annotations

import codecs
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from construct import ConstructError

from zipldump.disk.io import describe_mode, open_binary, pread_bytes
from zipldump.errors import (
    DiskError,
    QemuBootError,
    QemuDumpProgramError,
    ToolMissingError,
    UsageError,
)
from zipldump.formats.blockptr import BlockPtr
from zipldump.formats.bootrecord import ZIPL_MAGIC, BootRecord
from zipldump.formats.component_table import HEADER_DUMP, ComponentHeader
from zipldump.formats.program_table import PROGRAM_TABLE_ENTRIES, ProgramTable

QEMU = "qemu-system-s390x"
INSTALL_HINT = "install it with: apt-get install qemu-system-misc"
# BIOS panics look like "! No zIPL magic in PT !"; newer BIOSes print plain sentences.
_BANG_RE = re.compile(r"^!\s*(.+?)\s*!\s*$", re.M)
_PLAIN_FAILURES = ("zIPL load failed", "Failed to IPL from this SCSI device", "No suitable device for IPL")
MAX_KEPT_OUTPUT = 4 << 20  # console bytes kept for matching and for the result
GRACE_AFTER_FAILURE = 2.0  # seconds to let QEMU print its last words after a BIOS panic


@dataclass
class BootResult:
    output: str  # the console text seen (at most MAX_KEPT_OUTPUT characters, the newest)
    matched: bool
    seconds: float
    returncode: int | None  # QEMU's exit status; None when zipldump ended it
    command: list[str]


def find_qemu(qemu: str | None = None) -> str:
    name = qemu or os.environ.get("ZIPLDUMP_QEMU") or QEMU
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} is not installed; {INSTALL_HINT}")
    return path


def parse_memory(text: str) -> str:
    """QEMU's -m value: a number with an optional K/M/G suffix (M when none)."""
    if not re.fullmatch(r"\d+[KMGkmg]?", text or ""):
        raise UsageError(f"memory size {text!r}: expected a number with an optional K, M or G suffix, e.g. 512M")
    return text.upper()


def _check_options(block_size: int, loadparm: int | None) -> None:
    if block_size not in (512, 4096):
        raise UsageError(f"block size {block_size}: QEMU's scsi-hd is used with 512 or 4096 here")
    if loadparm is not None and not 0 <= loadparm <= 30:
        raise UsageError(f"loadparm {loadparm}: the program table has entries 0..30")


def qemu_command(
    image: str | Path,
    *,
    block_size: int = 512,
    loadparm: int | None = None,
    memory: str = "512M",
    qemu: str = QEMU,
) -> list[str]:
    """The qemu-system-s390x command line for booting `image` (never written: snapshot=on)."""
    _check_options(block_size, loadparm)
    path = str(Path(image).resolve())
    if "," in path:
        raise UsageError(f"{path}: QEMU's -drive option cannot take a file name with a comma")
    machine = "s390-ccw-virtio" + (f",loadparm={loadparm}" if loadparm is not None else "")
    hd = "scsi-hd,drive=d0,bootindex=1"
    if block_size == 4096:
        hd += ",logical_block_size=4096,physical_block_size=4096"
    return [
        qemu,
        "-M", machine,
        "-cpu", "max",
        "-m", parse_memory(memory),
        "-nographic",
        "-no-reboot",
        "-device", "virtio-scsi-ccw",
        "-drive", f"file={path},format=raw,if=none,id=d0,snapshot=on",
        "-device", hd,
    ]  # fmt: skip


@dataclass(frozen=True)
class _Peek:
    entry: int  # the program-table entry the BIOS would start
    valid: list[int]  # non-empty entries
    header_type: int | None  # component-table header type of `entry`, None when empty
    ct_lba: int


def _peek(image: str | Path, block_size: int, loadparm: int | None) -> _Peek | None:
    """Block 0, the program table and the selected component header, read leniently.

    None when the disk is not a readable zipl disk: the BIOS then gives its own message.
    """
    try:
        with open_binary(image, block_device=True) as fh:

            def block(lba: int) -> bytes:
                try:
                    return pread_bytes(fh.fileno(), block_size, lba * block_size, where=str(image))
                except DiskError:
                    return b""  # unreadable: no zipl disk to peek at, like a short block

            b0 = block(0)
            if b0[:4] != ZIPL_MAGIC:
                return None
            rec = BootRecord.parse(b0)
            pt_lba = rec.program_table.blockno
            if not pt_lba:
                return None
            pt_block = block(pt_lba)
            if pt_block[:4] != ZIPL_MAGIC:
                return None
            pt = ProgramTable.parse(pt_block[:512])
            entry = loadparm or 0
            valid = [i for i, e in enumerate(pt.entries) if e.blockno]
            if not 0 <= entry < PROGRAM_TABLE_ENTRIES or not valid:
                return None
            e = pt.entries[entry]
            ptr = BlockPtr(e.blockno, e.size, e.blockct)
            if ptr.is_null:
                return _Peek(entry, valid, None, 0)
            hdr = ComponentHeader.parse(block(ptr.blockno)[:32])
    except (OSError, ConstructError):
        return None
    return _Peek(entry, valid, hdr.type, ptr.blockno)


def dump_program_check(image: str | Path, block_size: int = 512, loadparm: int | None = None) -> str | None:
    """A message when the program the BIOS would start is a dump program, else None."""
    peek = _peek(image, block_size, loadparm)
    if peek is None or peek.header_type != HEADER_DUMP:
        return None
    return (
        f"program-table entry {peek.entry} (component table at block {peek.ct_lba}) is a dump program "
        "(component header type DUMP); QEMU's s390-ccw firmware refuses dump programs by design "
        "(it would stop with '! Bad header type !'). Check it with `zipldump inspect` or the simulator instead"
    )


def empty_entry_check(image: str | Path, block_size: int = 512, loadparm: int | None = None) -> str | None:
    """A message when --loadparm selects an empty program-table entry, else None.

    QEMU 7.2's BIOS does not check this: it reads block 0 as the component
    table and stops with a misleading '! No EXEC entry !'.
    """
    peek = _peek(image, block_size, loadparm)
    if peek is None or peek.header_type is not None:
        return None
    return (
        f"program-table entry {peek.entry} is empty (entries in use: {', '.join(map(str, peek.valid))}); "
        "choose one of those with --loadparm"
    )


def firmware_error(output: str) -> str | None:
    """The BIOS's error message in `output`, if it printed one."""
    m = _BANG_RE.search(output)
    if m and "WARNING" not in m.group(1):
        return m.group(1)
    for text in _PLAIN_FAILURES:
        if text in output:
            return text
    return None


def firmware_context(output: str, message: str, lines: int = 4) -> str:
    """The console lines before the firmware's failure line (its reason), joined with ' | '.

    QEMU's BIOS often says why before it says that it failed ("No zIPL section in
    IPL2 record." before "zIPL load failed."); the banner lines are left out."""
    text = output.strip().splitlines()
    at = next((i for i, line in enumerate(text) if message in line), len(text))
    before = [line.strip() for line in text[max(0, at - lines) : at] if line.strip()]
    before = [line for line in before if not line.startswith("LOADPARM=")]
    after = [line.strip() for line in text[at + 1 : at + 3] if line.strip()]
    return " | ".join(before + ([text[at].strip()] if at < len(text) else []) + after)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def boot(
    image: str | Path,
    *,
    expect: str | None = None,
    block_size: int = 512,
    loadparm: int | None = None,
    timeout: float = 120.0,
    memory: str = "512M",
    console: Callable[[str], None] | None = None,
    qemu: str | None = None,
    announce: Callable[[list[str]], None] | None = None,
) -> BootResult:
    """Boot `image`; succeed when `expect` appears on the console.

    Without `expect`, success is QEMU ending by itself with status 0 (the guest
    powered off).  Raises QemuDumpProgramError for a dump program,
    QemuBootError with the BIOS message (or the console tail) otherwise.
    `console` receives every complete console line as it arrives; `announce`
    gets the command line just before QEMU starts.
    """
    if not Path(image).is_file() and not Path(image).is_block_device():
        if os.path.lexists(image):
            raise UsageError(f"{image}: is {describe_mode(os.stat(image).st_mode) if os.path.exists(image) else 'a dangling link'}, not an image file")
        raise UsageError(f"{image}: no such image file")
    if not 0 < timeout < float("inf"):  # NaN too: a deadline of NaN would never pass
        raise UsageError(f"timeout {timeout}: must be a positive number of seconds")
    _check_options(block_size, loadparm)
    # The disk is judged first: a dump program is refused plainly even where QEMU is not installed.
    dump_msg = dump_program_check(image, block_size, loadparm)
    if dump_msg:
        raise QemuDumpProgramError(dump_msg, where=str(image))
    empty_msg = empty_entry_check(image, block_size, loadparm)
    if empty_msg:
        raise QemuBootError(empty_msg, where=str(image))
    exe = find_qemu(qemu)
    cmd = qemu_command(image, block_size=block_size, loadparm=loadparm, memory=memory, qemu=exe)
    if announce is not None:
        announce(cmd)
    start = time.monotonic()
    deadline = start + timeout
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
    except OSError as exc:  # found on PATH but exec() refuses it (format, permissions)
        raise ToolMissingError(f"cannot start {exe}: {exc.strerror or exc}; {INSTALL_HINT}") from None
    out = ""
    pending = ""
    matched = False
    failed_at: float | None = None
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    os.set_blocking(proc.stdout.fileno(), False)
    eof = False
    # Incremental: a UTF-8 character split across two reads is decoded whole.
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    try:
        while not eof:
            now = time.monotonic()
            if now >= deadline:
                break
            if failed_at is not None and now - failed_at > GRACE_AFTER_FAILURE:
                break
            for _key, _ev in sel.select(timeout=min(0.2, max(deadline - now, 0.01))):
                try:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    eof = True
                    break
                text = decode(chunk).replace("\r", "")
                out = (out + text)[-MAX_KEPT_OUTPUT:]
                pending += text
                *lines, pending = pending.split("\n")
                if console is not None:
                    for line in lines:
                        console(line)
            if expect is not None and expect in out:
                matched = True
                break
            if failed_at is None and firmware_error(out):
                failed_at = time.monotonic()
        if console is not None and pending:
            console(pending)
    except KeyboardInterrupt:
        _kill_group(proc)
        raise
    finally:
        sel.close()
        if eof:
            # stdout closed: QEMU is exiting; collect its status before judging.
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        ended_by_itself = proc.poll() is not None
        _kill_group(proc)
        proc.stdout.close()
    seconds = time.monotonic() - start
    rc = proc.returncode if ended_by_itself else None
    result = BootResult(output=out, matched=matched, seconds=seconds, returncode=rc, command=cmd)
    if matched:
        return result
    fw = firmware_error(out)
    if fw:
        if "Bad header type" in fw:
            raise QemuDumpProgramError(
                f"the firmware refused the program: '{fw}' (a dump program cannot be IPL'd in QEMU)", where=str(image)
            )
        context = firmware_context(out, fw)
        raise QemuBootError(
            f"the s390-ccw firmware stopped: '{fw}'" + (f"; it said: {context}" if context else ""), where=str(image)
        )
    if expect is None and rc == 0:
        return result
    tail = " | ".join(line for line in out.strip().splitlines()[-5:]) or "(no console output)"
    if rc is None and seconds >= timeout - 0.5:
        what = f"'{expect}' did not appear within {timeout:g}s" if expect else f"QEMU did not end within {timeout:g}s"
    elif expect is not None:
        what = f"QEMU ended (status {rc}) before '{expect}' appeared"
    else:
        what = f"QEMU ended with status {rc}"
    raise QemuBootError(f"{what}; last console lines: {tail}", where=str(image))
