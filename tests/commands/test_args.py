"""One syntax for sizes and numbers in every command; options that would make every dump fail are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from zipldump.cli import main as cli_main
from zipldump.disk.partitions import parse_size
from zipldump.errors import UsageError

BAD_SIZES = ["１２３M", " 64M", "64M\n", "64 M", "1_000", "+64M", "-1", "0x", "1e3", "2" * 30, "0x1" + "0" * 16, str(1 << 64)]


@pytest.mark.parametrize("text", BAD_SIZES)
def test_sizes_outside_the_one_syntax_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize(("text", "value"), [("64M", 64 << 20), ("1KiB", 1024), ("2g", 2 << 30), ("0x2000000", 32 << 20),
                                             ("512", 512), (str((1 << 64) - 1), (1 << 64) - 1)])
def test_sizes_in_the_syntax(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("argv", [
    ["ipl", "IMG", "--seed", str(1 << 70)],
    ["ipl", "IMG", "--seed", "１"],
    ["ipl", "IMG", "--cpus", " 2"],
    ["ipl", "IMG", "--memory", str(1 << 70)],
    ["qemu-boot", "IMG", "--loadparm", "1_0"],
    ["dumpinfo", "IMG", "--number", "-1"],
])
def test_numbers_outside_the_syntax_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(argv) == UsageError.exit_code
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["inspect", "IMG"], ["install", "IMG", "--dumpto", "1", "--image", "K"], ["ipl", "IMG"]])
@pytest.mark.parametrize("hsa", ["0", "4097", "32M+", " 32M"])
def test_hsa_size_is_validated_alike_everywhere(command: list[str], hsa: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([*command, "--hsa-size", hsa]) == UsageError.exit_code
    err = capsys.readouterr().err
    assert "--hsa-size" in err


def test_dumptofs_with_a_dump_mem_every_dump_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(1 << 20))
    kernel = tmp_path / "kernel"
    kernel.write_bytes(bytes(0x20000))
    code = cli_main(["-q", "install", str(img), "--dumptofs", "1", "--image", str(kernel), "--dump-mem", "1"])
    assert code == UsageError.exit_code
    err = capsys.readouterr().err
    assert "every dump would fail" in err and "dump_mem=1 leaves less than one 4096-byte page" in err
    assert img.read_bytes() == bytes(1 << 20)
