"""The --json contract (docs/json.md): every command's document, report or error, validates
against docs/schemas/<command>.schema.json on real runs, and every document carries schema_version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from builders.bootmaps import build_direct_disk
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from zipldump import errors
from zipldump.cli import build_parser, main
from zipldump.formats.s390dump import BUSY_MARKER
from zipldump.sim.payloads import write_demo_payloads
from zipldump.ui import SCHEMA_VERSION

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
COMMANDS = ("inspect", "install", "ipl", "dumpinfo", "getdump", "mkdisk", "mkinitramfs", "qemu-boot")


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def validator(name: str) -> Draft202012Validator:
    schemas = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")]
    registry: Registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    return Draft202012Validator(load(name), registry=registry)


def run_json(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["-q", *map(str, argv)])
    doc = json.loads(capsys.readouterr().out)
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSION
    return rc, doc


def valid(command: str, doc: dict[str, Any]) -> None:
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(command).iter_errors(doc)]
    assert not problems, problems


def valid_error(command: str, rc: int, doc: dict[str, Any]) -> None:
    assert rc != 0 and doc["error"]["exit_code"] == rc
    valid("error", doc)
    valid(command, doc)


# --- the schema files ----------------------------------------------------------------------------
def test_every_command_with_json_has_a_valid_schema() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    with_json = {name for name, p in sub.choices.items() if any("--json" in a.option_strings for a in p._actions)}
    assert with_json - {"demo"} == set(COMMANDS)
    names = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert names == {*COMMANDS, "error"}
    for name in names:
        schema = load(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_error_kinds_fit_the_error_schema() -> None:
    kind = validator("error").schema["properties"]["error"]["properties"]["kind"]
    classes = [errors.ZiplDumpError]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        doc = {"schema_version": 1, "error": {"kind": cls.kind, "where": None, "message": "m", "exit_code": cls.exit_code}}
        valid("error", doc)
    assert kind["type"] == "string"


def test_a_wrong_document_is_refused() -> None:
    doc = {"schema_version": 1, "error": {"kind": "disk", "where": None, "message": "m", "exit_code": "3"}}
    assert list(validator("error").iter_errors(doc))
    assert list(validator("inspect").iter_errors({"schema_version": 1, "image": "x", "valid": "yes"}))
    assert list(validator("mkinitramfs").iter_errors({"schema_version": 2, "output": "o", "size": 1, "compress": "gzip"}))


# --- real runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory):
    return write_demo_payloads(tmp_path_factory.mktemp("payloads"))


def test_dumpto_disk_end_to_end(tmp_path: Path, payloads, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "d.img"
    rc, doc = run_json(capsys, "mkdisk", img, "--size", "64M", "--part", "rest", "--json")
    assert rc == 0
    valid("mkdisk", doc)
    rc, doc = run_json(capsys, "install", img, "--dumpto", "1", "-i", payloads.image, "-r", payloads.ramdisk,
                       "--stage3", payloads.stage3, "-n", "--json")
    assert rc == 0
    valid("install", doc)
    rc, doc = run_json(capsys, "inspect", img, "--json")
    assert rc == 0 and doc["valid"] and doc["dump"] is not None
    valid("inspect", doc)
    rc, doc = run_json(capsys, "ipl", img, "--memory", "16M", "--verify", "--json")
    assert rc == 0 and doc["verify"]["ok"]
    valid("ipl", doc)
    rc, doc = run_json(capsys, "inspect", img, "--json")
    assert rc == 0 and doc["dump"]["present"] == "s390"
    valid("inspect", doc)
    rc, doc = run_json(capsys, "dumpinfo", img, "--json")
    assert rc == 0 and doc["format"] == "s390" and "located" in doc
    valid("dumpinfo", doc)
    for fmt in ("s390", "elf"):
        out = tmp_path / f"dump.{fmt}"
        rc, got = run_json(capsys, "getdump", img, out, "--format", fmt, "--json")
        assert rc == 0
        valid("getdump", got)
        rc, info = run_json(capsys, "dumpinfo", out, "--json")
        assert rc == 0 and info["format"] == fmt
        valid("dumpinfo", info)
        rc, again = run_json(capsys, "getdump", out, tmp_path / f"again.{fmt}", "--json")
        assert rc == 0 and again["source"]["kind"] in ("elf", "file")
        valid("getdump", again)
    # the writer's busy marker where the dump starts: dumpinfo's "not complete" document, exit 1
    start = doc["located"]["superblock"]["part_start"] + doc["located"]["superblock"]["dump_offset"]
    with open(img, "r+b") as fh:
        fh.seek(start)
        fh.write(BUSY_MARKER)
    rc, doc = run_json(capsys, "dumpinfo", img, "--force", "--json")  # --force: past the changed checksum
    assert rc == 1 and doc["complete"] is False and doc["format"] is None
    valid("dumpinfo", doc)
    # errors
    valid_error("install", *run_json(capsys, "install", img, "--dumpto", "3", "-i", payloads.image, "-n", "--json"))
    valid_error("getdump", *run_json(capsys, "getdump", img, "-", "--json"))
    valid_error("mkdisk", *run_json(capsys, "mkdisk", img, "--size", "4M", "--json"))


def test_file_system_disks(tmp_path: Path, payloads, capsys: pytest.CaptureFixture[str]) -> None:
    gpt = tmp_path / "g.img"
    rc, doc = run_json(capsys, "mkdisk", gpt, "--size", "64M", "--label", "gpt", "--part", "8M", "--part", "rest:ext4", "--json")
    assert rc == 0
    valid("mkdisk", doc)
    rc, doc = run_json(capsys, "install", gpt, "--target", "2", "-i", payloads.image, "-r", payloads.ramdisk, "-P", "root=/dev/sda2", "-n", "--json")
    assert rc == 0 and doc["bootmap_file"]
    valid("install", doc)
    rc, doc = run_json(capsys, "inspect", gpt, "--json")
    assert rc == 0
    valid("inspect", doc)
    fs = tmp_path / "f.img"
    assert run_json(capsys, "mkdisk", fs, "--size", "64M", "--part", "8M", "--part", "rest:ext2", "--json")[0] == 0
    rc, doc = run_json(capsys, "install", fs, "--dumptofs", "2", "-i", payloads.image, "-r", payloads.ramdisk, "-n", "--json")
    assert rc == 0
    valid("install", doc)
    valid_error("dumpinfo", *run_json(capsys, "dumpinfo", fs, "--json"))  # no dump.N yet
    rc, doc = run_json(capsys, "ipl", fs, "--memory", "16M", "--json")
    assert rc == 0 and doc["dump"]["mode"] == "fs"
    valid("ipl", doc)
    for command, args in (("dumpinfo", ()), ("getdump", (tmp_path / "fs.dump",))):
        rc, doc = run_json(capsys, command, fs, *args, "--json")
        assert rc == 0
        valid(command, doc)


def test_inspect_valid_and_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = tmp_path / "k"
    kernel.write_bytes(bytes(0x10000) + bytes(0x500) + b"KERNEL")
    build_direct_disk(tmp_path / "direct.img", kernel, b"initrd", "root=/dev/ram0")
    rc, doc = run_json(capsys, "inspect", tmp_path / "direct.img", "--json")
    assert rc == 0 and doc["valid"]
    valid("inspect", doc)
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x01" * (1 << 20))
    rc, doc = run_json(capsys, "inspect", junk, "--json")
    assert rc == errors.MagicError.exit_code and not doc["valid"] and doc["problems"]
    valid("inspect", doc)
    valid_error("inspect", *run_json(capsys, "inspect", tmp_path / "nosuch.img", "--json"))
    valid_error("ipl", *run_json(capsys, "ipl", junk, "--json"))


def test_mkinitramfs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lst = tmp_path / "list"
    lst.write_text("dir /bin 755 0 0\n")
    rc, doc = run_json(capsys, "mkinitramfs", lst, tmp_path / "initrd.gz", "--json")
    assert rc == 0
    valid("mkinitramfs", doc)
    valid_error("mkinitramfs", *run_json(capsys, "mkinitramfs", tmp_path / "nosuch", tmp_path / "x", "--json"))


@pytest.mark.parametrize("argv", [
    ("inspect", "disk.img", "--block-size", "3", "--json"),
    ("frobnicate", "--json"),
    ("mkdisk", "disk.img", "--json"),  # --size missing
])
def test_command_line_refusals_with_json(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = run_json(capsys, *argv)
    assert rc == errors.UsageError.exit_code and doc["error"]["kind"] == "usage" and doc["error"]["where"] is None
    valid("error", doc)
    capsys.readouterr()
    assert main(["-q", *[a for a in argv if a != "--json"]]) == errors.UsageError.exit_code
    assert capsys.readouterr().out == ""  # without --json: stderr only, as before


def fake_qemu(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-qemu"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_qemu_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The documents of real runs of the command's code driving a stand-in QEMU (as tests/qemu/test_boot.py
    does), so the schema is checked on every machine; real boots are tests/qemu/test_real_firmware.py's."""
    kernel = tmp_path / "k"
    kernel.write_bytes(bytes(0x10000) + bytes(0x500) + b"KERNEL")
    disk = tmp_path / "direct.img"
    build_direct_disk(disk, kernel, b"initrd", "root=/dev/ram0")
    monkeypatch.setenv("ZIPLDUMP_QEMU", fake_qemu(tmp_path, "echo 'guest says MARK'\nsleep 30"))
    rc, doc = run_json(capsys, "qemu-boot", disk, "--expect", "MARK", "--json")
    assert rc == 0 and doc["matched"]
    valid("qemu-boot", doc)
    monkeypatch.setenv("ZIPLDUMP_QEMU", fake_qemu(tmp_path, "echo bye"))
    rc, doc = run_json(capsys, "qemu-boot", disk, "--json")
    assert rc == 0 and not doc["matched"] and doc["qemu_status"] == 0
    valid("qemu-boot", doc)
    monkeypatch.setenv("ZIPLDUMP_QEMU", "qemu-system-s390x-not-installed")
    valid_error("qemu-boot", *run_json(capsys, "qemu-boot", disk, "--json"))
