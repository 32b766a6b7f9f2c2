"""zipldump.api (docs/api.md): every documented call as documented, progress, errors, and the
documented signatures against the real functions."""

from __future__ import annotations

import ast
import inspect as pyinspect
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders.images import debian_image
from builders.tools import have_tool

import zipldump
from zipldump import api
from zipldump.disk.partitions import PartSpec, make_disk, read_partition_table
from zipldump.dump.s390 import DumpInfo
from zipldump.errors import AbortedError, DiskError, IncompleteDumpError, UsageError, ZiplDumpError
from zipldump.plan.job import InstallJob
from zipldump.sim.payloads import kernel_image, stage3_image
from zipldump.sim.scsi_ipl import IplReport
from zipldump.zipl.check import Report
from zipldump.zipl.installer import InstallResult

MiB = 1 << 20
DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
DOCUMENTED = ("install", "from_zipl_conf", "install_job", "inspect", "ipl", "dump_info", "get_dump")


class Calls:
    """A progress callback that records what it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, step: str, done: int, total: int) -> None:
        self.calls.append((step, done, total))

    def steps(self) -> set[str]:
        return {s for s, _, _ in self.calls}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"kernel": tmp_path / "dump.kernel", "ramdisk": tmp_path / "dump.initrd", "stage3": tmp_path / "stage3.bin"}
    out["kernel"].write_bytes(kernel_image())
    out["ramdisk"].write_bytes(bytes(range(256)) * 300)
    out["stage3"].write_bytes(stage3_image())
    return out


def dump_disk(tmp_path: Path, name: str = "disk.img", bs: int = 512) -> Path:
    img = tmp_path / name
    make_disk(img, 64 * MiB if bs == 512 else 320 * MiB, block_size=bs, parts=[PartSpec(None)])
    return img


def put_data_on_partition_1(img: Path) -> None:
    """Something an install over partition 1 destroys (a loss that the installer asks about)."""
    with open(img, "r+b") as fh:
        fh.seek(read_partition_table(img).get(1).start_bytes)
        fh.write(b"precious")


# --- the package --------------------------------------------------------------------------------
def test_import_zipldump_loads_only_the_package_and_reexports_the_api() -> None:
    code = "import sys, zipldump; print(sorted(m for m in sys.modules if m.startswith('zipldump')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['zipldump']"
    for name in (*DOCUMENTED, "GetDumpResult", "Progress"):
        assert getattr(zipldump, name) is getattr(api, name)
        assert name in zipldump.__all__ and name in dir(zipldump)
    assert zipldump.ZiplDumpError is ZiplDumpError
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        zipldump.nonesuch  # noqa: B018


def test_py_typed_is_shipped() -> None:
    root = Path(zipldump.__file__).parent
    assert (root / "py.typed").is_file()
    assert 'zipldump = ["py.typed"]' in (root.parent / "pyproject.toml").read_text()


# --- docs/api.md against the functions ----------------------------------------------------------
def documented_signatures() -> dict[str, ast.FunctionDef]:
    """The `def name(...) -> T: ...` lines of docs/api.md's python blocks."""
    found: dict[str, ast.FunctionDef] = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        if block.startswith("def "):
            node = ast.parse(block).body[0]
            assert isinstance(node, ast.FunctionDef)
            found[node.name] = node
    return found


def _norm(annotation: str | None) -> str | None:
    return None if annotation is None else ast.unparse(ast.parse(annotation, mode="eval"))


def test_documented_signatures_are_the_real_ones() -> None:
    docs = documented_signatures()
    assert sorted(docs) == sorted(DOCUMENTED)
    for name, node in docs.items():
        real = pyinspect.signature(getattr(api, name))
        a = node.args
        kinds = [(p, pyinspect.Parameter.POSITIONAL_OR_KEYWORD) for p in a.args]
        kinds += [(p, pyinspect.Parameter.KEYWORD_ONLY) for p in a.kwonlyargs]
        defaults = dict(zip([p.arg for p in a.args][len(a.args) - len(a.defaults):], a.defaults, strict=True))
        defaults |= {p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None}
        assert [p.arg for p, _ in kinds] == list(real.parameters), name
        for p, kind in kinds:
            param = real.parameters[p.arg]
            assert param.kind == kind, f"{name}({p.arg}): {param.kind} documented as {kind}"
            assert _norm(param.annotation) == (ast.unparse(p.annotation) if p.annotation else None), f"{name}({p.arg})"
            if p.arg in defaults:
                documented = eval(ast.unparse(defaults[p.arg]), vars(api))  # names such as DEFAULT_HSA_SIZE
                assert param.default == documented, f"{name}({p.arg}) default"
            else:
                assert param.default is pyinspect.Parameter.empty, f"{name}({p.arg}) has an undocumented default"
        assert _norm(real.return_annotation) == ast.unparse(node.returns), f"{name} returns"


def test_signature_check_catches_a_wrong_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "api.md"
    bad.write_text(DOC.read_text().replace("def inspect(image: PathArg, *, block_size", "def inspect(image: PathArg, block_size"))
    monkeypatch.setattr(sys.modules[__name__], "DOC", bad)
    with pytest.raises(AssertionError, match="inspect"):
        test_documented_signatures_are_the_real_ones()


# --- the documented calls -----------------------------------------------------------------------
def test_install_inspect_ipl_dump_info_get_dump(tmp_path: Path, files: dict[str, Path], capfd: pytest.CaptureFixture[str]) -> None:
    img = dump_disk(tmp_path)
    progress = Calls()
    res = zipldump.install(img, dumpto=1, kernel=files["kernel"], ramdisk=files["ramdisk"], stage3=files["stage3"],
                           parameters="dump_debug=3", assume_yes=True, progress=progress)
    assert isinstance(res, InstallResult) and res.mode == "dumpto" and res.verified
    assert res.to_json()["programs"][0]["kind"] == "dump"
    assert ("Writing block 0 (boot record)", 0, 1) in progress.calls and ("Writing block 0 (boot record)", 1, 1) in progress.calls
    writes = [(d, t) for s, d, t in progress.calls if s == "Writing bootmap"]
    assert writes[0][0] == 0 and writes[-1][0] == writes[-1][1] > 0  # bytes, up to the total

    report = zipldump.inspect(img, progress=progress)
    assert isinstance(report, Report) and report.valid, report.to_json()["problems"]
    assert report.block_size == 512 and report.dump is not None and report.dump.present == "none"

    progress = Calls()
    rep = zipldump.ipl(img, memory_size=16 * MiB, cpus=2, verify=True, progress=progress)
    assert isinstance(rep, IplReport) and rep.mode == "partition"
    assert rep.verify is not None and rep.verify.ok
    assert "Stage 3: kernel image, command line, initrd" in progress.steps()
    assert any(t >= 16 * MiB for _, _, t in progress.calls)  # the dump writer's byte progress

    info = zipldump.dump_info(img)
    assert isinstance(info, DumpInfo) and info.complete and info.header.mem_size == 16 * MiB and len(info.cpus) == 2

    progress = Calls()
    got = zipldump.get_dump(img, tmp_path / "dump.s390", progress=progress)
    assert got.format == "s390" and got.complete and got.cpus == 2 and got.source["kind"] == "partition"
    assert (tmp_path / "dump.s390").stat().st_size == got.bytes
    assert progress.calls[-1][1] == progress.calls[-1][2] == got.bytes
    elf = zipldump.get_dump(img, tmp_path / "dump.elf", format="elf")
    assert (tmp_path / "dump.elf").read_bytes()[:4] == b"\x7fELF" and elf.bytes == (tmp_path / "dump.elf").stat().st_size
    # the copy is a dump file the API reads back as such
    again = zipldump.dump_info(tmp_path / "dump.elf")
    assert again.complete and len(again.cpus) == 2

    out, err = capfd.readouterr()
    assert out == "" and err == ""  # never prints


def test_from_zipl_conf_then_install_job(tmp_path: Path, files: dict[str, Path]) -> None:
    img = dump_disk(tmp_path)
    conf = tmp_path / "zipl.conf"
    conf.write_text(f"[defaultboot]\ndefault=dump\n[dump]\nimage={files['kernel']}\nramdisk={files['ramdisk']}\ndumpto=1\n")
    job = zipldump.from_zipl_conf(img, conf, assume_yes=True)
    assert isinstance(job, InstallJob) and job.mode == "dumpto" and job.partition == 1
    assert job.programs[0].name == "dump" and job.programs[0].image == files["kernel"]
    assert job.block_size == 512  # from the disk
    same = zipldump.from_zipl_conf(img, conf, "dump", assume_yes=True)
    assert same.programs[0].name == "dump"
    res = zipldump.install_job(job, progress=Calls())
    assert res.mode == "dumpto" and zipldump.inspect(img).valid


@pytest.mark.skipif(not have_tool("debugfs") or not have_tool("mke2fs"), reason="e2fsprogs missing")
def test_from_zipl_conf_reads_the_images_own_configuration(tmp_path: Path) -> None:
    img = debian_image(tmp_path)
    job = zipldump.from_zipl_conf(img, assume_yes=True)
    assert job.mode == "target" and job.bootmap_dir == "/boot"
    work = Path(job.extra["workdir"].name)  # type: ignore[attr-defined]
    assert job.programs[0].image.parent == work and job.programs[0].image.is_file()
    res = zipldump.install_job(job)
    assert res.mode == "target" and zipldump.inspect(img).valid
    del job, res
    import gc

    gc.collect()
    assert not work.exists()  # the extracted kernels go with the job


def test_4k_disk_without_block_size(tmp_path: Path, files: dict[str, Path]) -> None:
    img = dump_disk(tmp_path, bs=4096)
    res = zipldump.install(img, dumpto=1, kernel=files["kernel"], stage3=files["stage3"], assume_yes=True)
    assert res.block_size == 4096
    assert zipldump.inspect(img).block_size == 4096


def test_messages_go_to_the_zipldump_logger(tmp_path: Path, files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    img = dump_disk(tmp_path)
    put_data_on_partition_1(img)
    with caplog.at_level(logging.INFO, logger="zipldump"):
        zipldump.install(img, dumpto=1, kernel=files["kernel"], assume_yes=True)
    assert any(r.levelno == logging.WARNING and "will overwrite: data in the first" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.INFO and r.getMessage().startswith("block size 512: ") for r in caplog.records)


# --- errors -------------------------------------------------------------------------------------
def test_errors_are_the_documented_classes(tmp_path: Path, files: dict[str, Path]) -> None:
    img = dump_disk(tmp_path)
    with pytest.raises(UsageError, match="say where to install") as exc:
        zipldump.install(img, kernel=files["kernel"])
    assert exc.value.exit_code == UsageError.exit_code
    with pytest.raises(UsageError, match="--image KERNEL is required"):
        zipldump.install(img, dumpto=1)
    with pytest.raises(UsageError, match="--dump-mem is only for --dumptofs"):
        zipldump.from_zipl_conf(img, kernel=files["kernel"], dumpto=1, dump_mem=MiB)
    put_data_on_partition_1(img)
    with pytest.raises(AbortedError, match="no terminal to ask"):
        zipldump.install(img, dumpto=1, kernel=files["kernel"])  # never asks: refuses, naming the loss
    with pytest.raises(DiskError):
        zipldump.inspect(tmp_path / "missing.img")
    with pytest.raises(UsageError, match="at least one CPU"):
        zipldump.ipl(img, cpus=0)
    with pytest.raises(UsageError, match="format"):
        zipldump.get_dump(img, tmp_path / "out", format="lkcd")
    with pytest.raises(UsageError, match="OUT is the input"):
        zipldump.get_dump(img, img)
    # no dump written yet: the partition holds no dump header
    with pytest.raises(ZiplDumpError):
        zipldump.dump_info(img)
    assert not (tmp_path / "out").exists()


def test_incomplete_and_existing_outputs(tmp_path: Path, files: dict[str, Path]) -> None:
    from builders.dumps import s390_dump

    dump = s390_dump(tmp_path / "dump.s390", end_tod=None)  # no end marker: not complete
    info = zipldump.dump_info(dump)
    assert not info.complete and info.incomplete_reason
    with pytest.raises(IncompleteDumpError):
        zipldump.get_dump(dump, tmp_path / "copy")
    got = zipldump.get_dump(dump, tmp_path / "copy", force=True)
    assert not got.complete and any("not complete" in w for w in got.warnings)
    with pytest.raises(UsageError, match="exists"):
        zipldump.get_dump(dump, tmp_path / "copy", force=True)
    assert zipldump.get_dump(dump, tmp_path / "copy", force=True, overwrite=True).bytes == got.bytes
