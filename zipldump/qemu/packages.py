"""Debian s390x packages for real-firmware tests: kernel, busybox-static, s390-tools.

The packages are fetched with apt's own client, pointed at private state
directories and told that the native architecture is s390x, so the host's
apt configuration and dpkg database are never changed (no `dpkg
--add-architecture`).  Each .deb is unpacked with `dpkg-deb -x`.

Everything lives in one cache directory (see `default_cache_dir`) and is
downloaded again only when missing.  A lock file serialises concurrent users.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from zipldump.errors import ToolMissingError
from zipldump.ui import UI

KERNEL_META = "linux-image-s390x"
PACKAGES = ("busybox-static", "s390-tools")
APT_TIMEOUT = 600  # seconds for one apt-get run
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class S390Packages:
    """Paths inside the unpacked packages."""

    cache_dir: Path
    kernel: Path  # boot/vmlinuz-<abi>-s390x
    kernel_version: str
    busybox: Path  # bin/busybox (static s390x binary)
    stage3: Path  # lib/s390-tools/stage3.bin
    debs: tuple[Path, ...]


def default_cache_dir() -> Path:
    """$ZIPLDUMP_CACHE, else $XDG_CACHE_HOME/zipldump/s390x, else ~/.cache/zipldump/s390x."""
    if os.environ.get("ZIPLDUMP_CACHE"):
        return Path(os.environ["ZIPLDUMP_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "zipldump" / "s390x"


def _codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def _host_archive_uris() -> list[str]:
    """The Debian archive URIs the host's own apt sources name (deb822 and one-line style)."""
    uris: list[str] = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("URIs:"):
                uris += line.split()[1:]
            elif line.startswith("deb "):
                words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
                if len(words) >= 2:
                    uris.append(words[1])
    # Debian's main archive only: not the security archive nor third-party repositories.
    return [u for u in dict.fromkeys(uris) if u.rstrip("/").endswith("/debian")]


def _own_sources(cache: Path) -> list[str]:
    """apt options for a private sources list, for hosts whose own entries exclude s390x.

    It names the same archives as the host's sources, without their architecture limits.
    """
    uris = _host_archive_uris()
    if not uris:
        raise ToolMissingError("the host's apt sources name no Debian archive to fetch s390x packages from")
    etc = cache / "apt" / "etc"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (etc / "sources.list").write_text("".join(f"deb {u} {_codename()} main\n" for u in uris))
    return ["-o", f"Dir::Etc::SourceList={etc / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={etc / 'sources.list.d'}"]


def _apt_options(cache: Path) -> list[str]:
    return [
        "-o", "APT::Architecture=s390x",
        "-o", "APT::Architectures=s390x",
        "-o", f"Dir::State::Lists={cache / 'apt' / 'lists'}",
        "-o", "Dir::State::Status=/dev/null",
        "-o", f"Dir::Cache={cache / 'apt' / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-q",
    ]  # fmt: skip


def _step_name(cmd: list[str]) -> str:
    """`apt-get update` for `apt-get -o A=B ... -q update`: the program and its first operand."""
    operands = [w for prev, w in pairwise(cmd) if not w.startswith("-") and prev != "-o"]
    return " ".join(cmd[:1] + operands[:1])


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ToolMissingError(f"{cmd[0]} not found (these tests need Debian's apt and dpkg)") from None
    except OSError as exc:  # there, but exec() refuses it
        raise ToolMissingError(f"cannot start {cmd[0]}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise ToolMissingError(f"{_step_name(cmd)} did not finish within {APT_TIMEOUT}s (network?)") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolMissingError(
            f"could not fetch Debian s390x packages: `{_step_name(cmd)}` failed ({proc.returncode}): " + " | ".join(tail)
        )
    return proc.stdout


def _load_manifest(cache: Path) -> S390Packages | None:
    try:
        m = json.loads((cache / MANIFEST).read_text())
        pk = S390Packages(
            cache_dir=cache,
            kernel=cache / m["kernel"],
            kernel_version=m["kernel_version"],
            busybox=cache / m["busybox"],
            stage3=cache / m["stage3"],
            debs=tuple(cache / d for d in m["debs"]),
        )
    except (OSError, ValueError, KeyError):
        return None
    if all(p.is_file() for p in (pk.kernel, pk.busybox, pk.stage3)):
        return pk
    return None


def ensure_packages(cache_dir: Path | None = None, ui: UI | None = None) -> S390Packages:
    """Return the unpacked packages, downloading and unpacking them first when missing.

    Raises ToolMissingError when apt/dpkg-deb are missing or the download fails.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _load_manifest(cache)
        if found is not None:
            return found
        return _download(cache, ui)


def _kernel_package(opts: list[str]) -> re.Match[str] | None:
    try:
        depends = _run(["apt-cache", *opts, "depends", KERNEL_META])
    except ToolMissingError:
        return None
    return re.search(r"^\s*Depends:\s*(linux-image-(\d[^\s]*)-s390x)\s*$", depends, re.M)


def _download(cache: Path, ui: UI | None) -> S390Packages:
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ToolMissingError(f"{tool} not found (these tests need Debian's apt and dpkg)")
    opts = _apt_options(cache)
    (cache / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (cache / "apt" / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    debdir = cache / "debs"
    debdir.mkdir(exist_ok=True)

    def step(msg: str) -> contextlib.AbstractContextManager[object]:
        return ui.step(msg) if ui is not None else contextlib.nullcontext()

    with step("apt-get update (s390x package lists)"):
        _run(["apt-get", *opts, "update"])
    m = _kernel_package(opts)
    if not m:
        # The host's entries may be limited to its own architecture: same archives, no limit.
        opts += _own_sources(cache)
        with step("apt-get update (s390x package lists, host archives without arch limits)"):
            _run(["apt-get", *opts, "update"])
        m = _kernel_package(opts)
    if not m:
        raise ToolMissingError(f"cannot find the kernel package that {KERNEL_META} depends on")
    kernel_pkg = m.group(1)
    with step(f"apt-get download {kernel_pkg} {' '.join(PACKAGES)}"):
        for old in debdir.glob("*.deb"):
            old.unlink()
        _run(["apt-get", *opts, "download", kernel_pkg, *PACKAGES], cwd=debdir)
    debs = sorted(debdir.glob("*.deb"))
    root = cache / "root"
    if root.exists():
        shutil.rmtree(root)
    with step("dpkg-deb -x"):
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(root)])
    kernels = sorted((root / "boot").glob("vmlinuz-*-s390x"))
    if not kernels:
        raise ToolMissingError(f"{kernel_pkg} holds no boot/vmlinuz-*-s390x")
    kernel = kernels[-1]
    busybox = root / "bin" / "busybox"
    stage3 = root / "lib" / "s390-tools" / "stage3.bin"
    if not stage3.is_file():
        stage3 = root / "usr" / "lib" / "s390-tools" / "stage3.bin"
    for p in (busybox, stage3):
        if not p.is_file():
            raise ToolMissingError(f"unpacked packages lack {p.relative_to(root)}")
    manifest = {
        "kernel": str(kernel.relative_to(cache)),
        "kernel_version": kernel.name.removeprefix("vmlinuz-"),
        "busybox": str(busybox.relative_to(cache)),
        "stage3": str(stage3.relative_to(cache)),
        "debs": [str(d.relative_to(cache)) for d in debs],
    }
    tmp = cache / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, cache / MANIFEST)
    found = _load_manifest(cache)
    assert found is not None
    return found


# --- zgetdump as a test oracle -----------------------------------------------------
# The s390x zgetdump of Debian's s390-tools and the libraries it links, run on the host
# under qemu-user (qemu-s390x-static, Debian's qemu-user-static; verified-facts.md).
ZGETDUMP_PACKAGES = ("s390-tools", "libc6", "zlib1g", "libfuse2", "libgcc-s1")
ZGETDUMP_MANIFEST = "zgetdump-manifest.json"
QEMU_USER = "qemu-s390x-static"


@dataclass(frozen=True)
class Zgetdump:
    """The unpacked s390x zgetdump and how to run it on this host."""

    root: Path  # the unpacked packages (QEMU_LD_PREFIX)
    binary: Path  # ROOT/sbin/zgetdump (or usr/sbin)
    qemu: str  # path of qemu-s390x-static

    def command(self, *args: str) -> list[str]:
        return [self.qemu, str(self.binary), *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "QEMU_LD_PREFIX": str(self.root), "TZ": "UTC", "LC_ALL": "C"}

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*args), env=self.env(), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _zgetdump_from_manifest(cache: Path, qemu: str) -> Zgetdump | None:
    try:
        m = json.loads((cache / ZGETDUMP_MANIFEST).read_text())
        zg = Zgetdump(cache / m["root"], cache / m["binary"], qemu)
    except (OSError, ValueError, KeyError):
        return None
    return zg if zg.binary.is_file() else None


def ensure_zgetdump(cache_dir: Path | None = None, ui: UI | None = None) -> Zgetdump:
    """The s390x zgetdump, downloaded and unpacked (with libc6, zlib1g, libfuse2, libgcc-s1) when missing.

    Raises ToolMissingError when qemu-s390x-static, apt or dpkg-deb are missing or the download fails."""
    qemu = shutil.which(QEMU_USER)
    if qemu is None:
        raise ToolMissingError(f"{QEMU_USER} not found (Debian package qemu-user-static)")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _zgetdump_from_manifest(cache, qemu)
        if found is not None:
            return found
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise ToolMissingError(f"{tool} not found (these tests need Debian's apt and dpkg)")
        opts = _apt_options(cache)
        (cache / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (cache / "apt" / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        debdir = cache / "zgetdump-debs"
        if debdir.exists():
            shutil.rmtree(debdir)
        debdir.mkdir()

        def step(msg: str) -> contextlib.AbstractContextManager[object]:
            return ui.step(msg) if ui is not None else contextlib.nullcontext()

        with step("apt-get update (s390x package lists)"):
            _run(["apt-get", *opts, "update"])
        try:
            with step(f"apt-get download {' '.join(ZGETDUMP_PACKAGES)}"):
                _run(["apt-get", *opts, "download", *ZGETDUMP_PACKAGES], cwd=debdir)
        except ToolMissingError:
            opts += _own_sources(cache)  # host entries limited to the host's architecture
            with step("apt-get update (s390x package lists, host archives without arch limits)"):
                _run(["apt-get", *opts, "update"])
            with step(f"apt-get download {' '.join(ZGETDUMP_PACKAGES)}"):
                _run(["apt-get", *opts, "download", *ZGETDUMP_PACKAGES], cwd=debdir)
        root = cache / "zgetdump-root"
        if root.exists():
            shutil.rmtree(root)
        with step("dpkg-deb -x"):
            for deb in sorted(debdir.glob("*.deb")):
                _run(["dpkg-deb", "-x", str(deb), str(root)])
        binary = next((p for p in (root / "sbin" / "zgetdump", root / "usr" / "sbin" / "zgetdump") if p.is_file()), None)
        if binary is None:
            raise ToolMissingError("the unpacked s390-tools hold no sbin/zgetdump")
        tmp = cache / (ZGETDUMP_MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"root": str(root.relative_to(cache)), "binary": str(binary.relative_to(cache))}, indent=2))
        os.replace(tmp, cache / ZGETDUMP_MANIFEST)
        zg = _zgetdump_from_manifest(cache, qemu)
        assert zg is not None
        return zg
