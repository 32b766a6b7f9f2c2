"""The README's two commands on a machine without make, and CI's entry point.

`./run demo|test` installs make with apt when it is missing, then hands over to
make; `.ci/run` runs exactly `./run test`.  A stand-in apt-get and make (shell
scripts on a private PATH) record what they were asked to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fake_bin(tmp_path: Path, with_make: bool) -> tuple[Path, Path]:
    """A PATH directory with sh/dirname, a recording apt-get (whose install makes `make`) and maybe make."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "log"
    for tool in ("sh", "bash", "env", "dirname", "chmod"):
        os.symlink(shutil.which(tool), bindir / tool)
    make = f'#!/bin/sh\necho "make $*" >> {log}\nif [ -n "$CI" ]; then echo "CI=$CI" >> {log}; fi\n'
    apt = f'#!/bin/sh\necho "apt-get $*" >> {log}\ncase "$*" in *install*) printf \'%s\' \'{make}\' > {bindir}/make; chmod +x {bindir}/make;; esac\n'
    (bindir / "apt-get").write_text(apt)
    (bindir / "apt-get").chmod(0o755)
    if with_make:
        (bindir / "make").write_text(make)
        (bindir / "make").chmod(0o755)
    return bindir, log


def run(cmd: list[str], bindir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bindir), "HOME": os.environ.get("HOME", "/root")}  # no CI from the outside
    return subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True, timeout=60)


def test_run_installs_make_when_missing(tmp_path: Path) -> None:
    bindir, log = fake_bin(tmp_path, with_make=False)
    r = run([str(REPO / "run"), "demo"], bindir)
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines() == ["apt-get update -qq", "apt-get install -y -qq make", "make demo"]


def test_run_with_make_is_make(tmp_path: Path) -> None:
    bindir, log = fake_bin(tmp_path, with_make=True)
    assert run([str(REPO / "run"), "test"], bindir).returncode == 0
    assert log.read_text().splitlines() == ["make test"]


def test_ci_runs_the_readme_test_command(tmp_path: Path) -> None:
    bindir, log = fake_bin(tmp_path, with_make=True)
    r = run([str(REPO / ".ci" / "run")], bindir)
    assert r.returncode == 0, r.stderr
    # CI=true: the real-firmware tests fail instead of skipping when their downloads fail
    assert log.read_text().splitlines() == ["make test", "CI=true"]
    assert "./run test" in (REPO / "README.md").read_text().split("## ")[0]
