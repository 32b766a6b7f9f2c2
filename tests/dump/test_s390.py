"""Dump reader, ELF conversion, ELF core reader, locating dumps, and the dump commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from builders.dumps import PART_START, dump_disk
from builders.registers import sample_regs
from builders.tools import have_tool

from zipldump.dump.elf import read_elf_core, write_elf, write_s390
from zipldump.dump.s390 import FileSource, S390Dump
from zipldump.errors import DumpError, IncompleteDumpError, MagicError
from zipldump.formats import elfcore as ec
from zipldump.formats import s390dump as sd
from zipldump.formats.lowcore import CpuRegisters, build_save_area

MIB = 1 << 20
TOD = 0xC0BFF9D0D7A00000
END_TOD = 0xC0BFF9F8E5880000
PREFIXES = (0x03F5C000, 0x03F5A000)


def example_cpus() -> list[CpuRegisters]:
    return [sample_regs(1).with_(prefix=PREFIXES[0]), sample_regs(2).with_(prefix=PREFIXES[1])]


def make_dump(
    path: Path,
    mem_size: int = 64 * MIB,
    cpus: list[CpuRegisters] | None = None,
    *,
    tod: int = TOD,
    end_tod: int | None = END_TOD,
    marker: bytes | None = None,
    stamp_pages: bool = True,
    trailing: bytes = b"",
    lc_vec: tuple[int, ...] | None = None,
) -> Path:
    """The §9 worked example (by default): sparse file, a stamp at the start of
    every 1 MiB, registers at prefix + 0x1200, end marker."""
    cpus = example_cpus() if cpus is None else cpus
    prefixes = tuple(c.prefix for c in cpus) if lc_vec is None else lc_vec
    with open(path, "wb") as fh:
        fh.write(sd.build_header(mem_size, prefixes=prefixes, tod=tod, cpu_id=0x0001234520978000, real_cpu_cnt=len(cpus)))
        if stamp_pages:
            for addr in range(0, mem_size, MIB):
                fh.seek(sd.HEADER_SIZE + addr)
                fh.write(b"PAGE%012x" % addr)
        for c in cpus:
            if c.prefix + 0x1400 <= mem_size:
                fh.seek(sd.HEADER_SIZE + c.prefix + 0x1200)
                fh.write(build_save_area(c))
        fh.seek(sd.HEADER_SIZE + mem_size)
        if marker is not None:
            fh.write(marker)
        elif end_tod is not None:
            fh.write(sd.build_end_marker(end_tod))
        fh.write(trailing)
        fh.truncate(fh.tell())
    return path


# --- reader ----------------------------------------------------------------------------
def test_worked_example_reads(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d.s390")
    assert p.stat().st_size == 67_112_976  # §9
    with S390Dump(p) as d:
        assert d.complete and d.info.end_marker_tod == END_TOD
        assert d.mem_size == 64 * MIB and d.info.warnings == []
        assert d.cpus == example_cpus()
        assert d.read_memory(5 * MIB, 16) == b"PAGE%012x" % (5 * MIB)
        total = sum(len(c) for c in d.iter_memory(chunk=3 * MIB))
        assert total == 64 * MIB


def test_trailing_bytes_after_marker_are_fine(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d", trailing=b"\xff" * 1000 + sd.build_end_marker(0))
    with S390Dump(p) as d:
        assert d.complete and d.dump_length == 67_112_976


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"end_tod": None}, "no end marker"),
        ({"end_tod": TOD - 1}, "earlier"),
        ({"end_tod": TOD - 0x800}, "earlier"),
        ({"marker": b"DUMP_EN\0" + bytes(8)}, "no DUMP_END"),
        ({"marker": b"dump_end" + END_TOD.to_bytes(8, "big")}, "no DUMP_END"),
        ({"marker": sd.build_end_marker(END_TOD)[:15]}, "no end marker"),
    ],
)
def test_incomplete(tmp_path: Path, kwargs: dict, text: str) -> None:
    p = make_dump(tmp_path / "d", **kwargs)
    with S390Dump(p) as d:
        assert not d.complete
        assert text in d.info.incomplete_reason
        with pytest.raises(IncompleteDumpError):
            d.require_complete()


def test_equal_tod_is_complete(tmp_path: Path) -> None:
    with S390Dump(make_dump(tmp_path / "d", end_tod=TOD)) as d:
        assert d.complete
    with S390Dump(make_dump(tmp_path / "e", tod=0, end_tod=0)) as d:
        assert d.complete


def test_truncated_memory(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d")
    os.truncate(p, 0x1000 + 32 * MIB)
    with S390Dump(p) as d:
        assert not d.complete and "truncated" in d.info.incomplete_reason
        with pytest.raises(IncompleteDumpError) as exc:
            for _ in d.iter_memory():
                pass
        assert "0x2001000" in str(exc.value)


def test_header_errors(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(bytes(1000))
    with pytest.raises(DumpError):
        S390Dump(short)
    p = make_dump(tmp_path / "d", mem_size=MIB, cpus=[])
    raw = bytearray(p.read_bytes())
    raw[7] = 0xED
    (tmp_path / "lkcd").write_bytes(raw)
    with pytest.raises(MagicError) as exc:
        S390Dump(tmp_path / "lkcd")
    assert "LKCD" in str(exc.value)
    raw[7] = 0xFD
    raw[0x18:0x20] = bytes(8)
    (tmp_path / "zero").write_bytes(raw)
    with pytest.raises(DumpError) as exc2:
        S390Dump(tmp_path / "zero")
    assert "mem_size" in str(exc2.value)


def test_all_or_nothing_registers(tmp_path: Path) -> None:
    # lc_vec[1] + 0x2000 > mem_size: no CPU gets registers (§4.4 rule 5).
    cpus = [sample_regs(1).with_(prefix=0x03F5C000), sample_regs(2).with_(prefix=0x03FFF000)]
    with S390Dump(make_dump(tmp_path / "d", cpus=cpus)) as d:
        assert not d.info.registers_available and d.cpus == []
        assert len(d.info.cpus) == 2 and "lc_vec[1]" in d.info.registers_reason
    # Equality is allowed.
    cpus = [sample_regs(1).with_(prefix=0x03FFE000)]
    with S390Dump(make_dump(tmp_path / "e", cpus=cpus)) as d:
        assert d.cpus == cpus


def test_file_source_window(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d", mem_size=MIB, cpus=[])
    img = tmp_path / "img"
    with open(img, "wb") as fh:
        fh.write(b"\xAA" * 8192)
        fh.write(p.read_bytes())
        fh.write(b"\xBB" * 8192)
    with S390Dump(FileSource(img, offset=8192, length=MIB + 0x2000)) as d:
        assert d.complete and d.read_memory(0, 4) == b"PAGE"


# --- ELF output ---------------------------------------------------------------------------
def test_elf_output_round_trip(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d")
    out = tmp_path / "core"
    with S390Dump(p) as d:
        layout = write_elf(d, out)
    assert out.exists() and not (tmp_path / "core.part").exists()
    assert out.stat().st_size == layout.file_size
    core = read_elf_core(out, keep_open=True)
    with core:
        assert [(s.paddr, s.filesz) for s in core.segments] == [(0, 64 * MIB)]
        assert core.segments[0].offset % 4096 == 0
        assert core.cpus == example_cpus()  # CKC: save-area encoding round trip
        types = [n.type for n in core.notes]
        assert types[0] == ec.NT_PRPSINFO and types.count(ec.NT_PRSTATUS) == 2
        assert core.read(7 * MIB, 16) == b"PAGE%012x" % (7 * MIB)
        # The memory image equals the dump's memory byte for byte at the save areas.
        assert core.read(PREFIXES[1] + 0x1200, 512) == build_save_area(example_cpus()[1])
    # TODCMP note carries CKC >> 8 like zgetdump (§9: 00 c0 bf f9 d0 d7 a1 24).
    todcmp = [n.desc for n in core.notes if n.type == ec.NT_S390_TODCMP]
    assert todcmp[1] == bytes.fromhex("00c0bff9d0d7a124")


def test_elf_refuses_incomplete(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d", mem_size=MIB, cpus=[], end_tod=None)
    with S390Dump(p) as d:
        with pytest.raises(IncompleteDumpError):
            write_elf(d, tmp_path / "core")
    assert not (tmp_path / "core").exists() and not (tmp_path / "core.part").exists()


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils readelf not installed")
def test_readelf_lists_headers_and_notes(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d", mem_size=16 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000), sample_regs(2).with_(prefix=0x20000)])
    out = tmp_path / "core"
    with S390Dump(p) as d:
        write_elf(d, out)
    r = subprocess.run(["readelf", "-W", "-h", "-l", "-n", str(out)], capture_output=True, text=True, check=True)
    text = r.stdout
    assert "ELF64" in text and "big endian" in text and "CORE (Core file)" in text and "IBM S/390" in text
    assert text.count("  NOTE ") == 1 and text.count("  LOAD ") == 1
    assert r.stderr == ""
    assert text.count("NT_PRSTATUS") == 2 and text.count("NT_FPREGSET") == 2 and text.count("NT_PRPSINFO") == 1
    for name in ("NT_S390_TIMER", "NT_S390_TODCMP", "NT_S390_TODPREG", "NT_S390_CTRS", "NT_S390_PREFIX"):
        assert text.count(name) == 2, name
    assert "0x0000000000000000 0x0000000000000000 0x1000000 0x1000000 RWE 0x1000" in text


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch not installed")
def test_gdb_reads_registers(tmp_path: Path) -> None:
    regs = sample_regs(1).with_(prefix=0x10000, psw_addr=0x123456)
    p = make_dump(tmp_path / "d", mem_size=4 * MIB, cpus=[regs])
    out = tmp_path / "core"
    with S390Dump(p) as d:
        write_elf(d, out)
    r = subprocess.run(
        ["gdb-multiarch", "-nx", "-batch", "-ex", "set architecture s390:64-bit", "-ex", f"core-file {out}",
         "-ex", "info registers pswa", "-ex", "info registers r5"],
        capture_output=True, text=True, timeout=60,
    )
    assert "0x123456" in r.stdout, r.stdout + r.stderr
    assert f"{regs.gprs[5]:#x}" in r.stdout, r.stdout + r.stderr


def test_s390_copy(tmp_path: Path) -> None:
    p = make_dump(tmp_path / "d", mem_size=2 * MIB, trailing=b"junk" * 100, cpus=[])
    out = tmp_path / "copy"
    with S390Dump(p) as d:
        n = write_s390(d, out)
    assert n == 0x1000 + 2 * MIB + 16
    assert out.read_bytes() == p.read_bytes()[:n]


# --- ELF input (QEMU style) ------------------------------------------------------------------
def make_qemu_like_elf(path: Path, mem: bytes, cpus: list[CpuRegisters]) -> None:
    """Layout of QEMU 7.2 dump-guest-memory (§8.9): bogus section headers at 64,
    program headers at 0xC0, e_ehsize 8, full CKC, no PRPSINFO."""
    notes = []
    for c in cpus:
        n = ec.cpu_notes(c, 1)
        n[3] = ec.Note("LINUX", ec.NT_S390_TODCMP, c.ckc.to_bytes(8, "big"))
        notes += n + [ec.Note("LINUX", ec.NT_S390_VXRS_LOW, bytes(128)), ec.Note("LINUX", ec.NT_S390_VXRS_HIGH, bytes(256)),
                      ec.Note("LINUX", ec.NT_S390_GS_CB, bytes(32))]
    blob = ec.build_notes(notes)
    ehdr = bytearray(ec.build_ehdr(2, phoff=0xC0))
    ehdr[0x28:0x30] = (0x40).to_bytes(8, "big")  # e_shoff
    ehdr[0x34:0x36] = (8).to_bytes(2, "big")  # e_ehsize, wrong as in QEMU
    notes_off = 0xC0 + 2 * 56
    mem_off = notes_off + len(blob)
    data = bytearray(ehdr) + b"\x5a" * (0xC0 - 64)
    data += ec.build_phdr(ec.PT_NOTE, offset=notes_off, filesz=len(blob))
    data += ec.build_phdr(ec.PT_LOAD, offset=mem_off, filesz=len(mem))
    data += blob + mem
    path.write_bytes(bytes(data))


def test_read_qemu_like_elf(tmp_path: Path) -> None:
    cpus = [sample_regs(1).with_(ckc=0xE3A3B0D1D42E5927, prefix=0x1986000), sample_regs(2).with_(ckc=(1 << 64) - 1)]
    mem = bytes(range(256)) * 64
    make_qemu_like_elf(tmp_path / "q.elf", mem, cpus)
    core = read_elf_core(tmp_path / "q.elf", keep_open=True)
    with core:
        assert core.cpus == cpus
        assert core.segments[0].paddr == 0 and core.segments[0].filesz == len(mem)
        assert core.read(0x100, 4) == bytes([0, 1, 2, 3])
        assert core.read(len(mem) - 2, 4) == bytes([254, 255, 0, 0])  # beyond: zeros


def test_read_elf_truncated(tmp_path: Path) -> None:
    make_qemu_like_elf(tmp_path / "q.elf", bytes(8192), [sample_regs(1)])
    os.truncate(tmp_path / "q.elf", os.path.getsize(tmp_path / "q.elf") - 100)
    from zipldump.errors import FormatError

    with pytest.raises(FormatError) as exc:
        read_elf_core(tmp_path / "q.elf")
    assert "program header 1" in str(exc.value)


# --- locating -------------------------------------------------------------------------------
from zipldump.cli import main as cli_main  # noqa: E402
from zipldump.dump.locate import locate_dump  # noqa: E402
from zipldump.errors import DumpTargetChangedError  # noqa: E402


def test_locate_partition(tmp_path: Path) -> None:
    d = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000)])
    img = dump_disk(tmp_path / "disk.img", d)
    with locate_dump(img) as loc:
        assert loc.kind == "partition" and loc.superblock is not None and loc.superblock.part_start == PART_START
        with S390Dump(loc.source) as dump:
            assert dump.complete and dump.cpus[0].prefix == 0x10000


def test_locate_partition_checksum_and_empty(tmp_path: Path) -> None:
    d = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[])
    img = dump_disk(tmp_path / "disk.img", d, fix_csum=False)
    with pytest.raises(DumpTargetChangedError) as exc:
        locate_dump(img)
    assert "csum" in str(exc.value)
    locate_dump(img, verify_checksum=False).close()
    (tmp_path / "disk.img").unlink()
    img = dump_disk(tmp_path / "disk.img", None)
    with pytest.raises(DumpError) as exc2:
        locate_dump(img)
    assert "no dump" in str(exc2.value)


def test_getdump_partition_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000)])
    img = dump_disk(tmp_path / "disk.img", d)
    out = tmp_path / "out.s390"
    assert cli_main(["-q", "getdump", str(img), str(out)]) == 0
    assert out.read_bytes() == d.read_bytes()
    elf = tmp_path / "out.elf"
    assert cli_main(["-q", "getdump", str(img), str(elf), "--format", "elf"]) == 0
    assert read_elf_core(elf).cpus[0] == sample_regs(1).with_(prefix=0x10000)
    # Refuses to overwrite.
    assert cli_main(["-q", "getdump", str(img), str(out)]) == 2


def test_getdump_refuses_incomplete(tmp_path: Path) -> None:
    d = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[], end_tod=TOD - 1)
    img = dump_disk(tmp_path / "disk.img", d)
    out = tmp_path / "out"
    assert cli_main(["-q", "getdump", str(img), str(out)]) == IncompleteDumpError.exit_code
    assert not out.exists() and not Path(str(out) + ".part").exists()
    assert cli_main(["-q", "getdump", str(img), str(out), "--force"]) == 0
    assert out.read_bytes() == d.read_bytes()


def _have_e2fs() -> bool:
    return have_tool("mke2fs") and have_tool("debugfs")


@pytest.mark.skipif(not _have_e2fs(), reason="e2fsprogs not installed")
def test_filesystem_dumps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zipldump.disk.extfs import ExtFs
    from zipldump.disk.partitions import PartSpec, make_disk

    img = tmp_path / "fs.img"
    table = make_disk(img, 24 * MIB, parts=[PartSpec(20 * MIB, "ext2")])
    p = table.partitions[0]
    fs = ExtFs(img, p.start_bytes, p.size_bytes)
    d0 = make_dump(tmp_path / "d0", mem_size=MIB, cpus=[], tod=1, end_tod=2)
    d1 = make_dump(tmp_path / "d1", mem_size=2 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000)])
    fs.write_file("/dump.0", str(d0))
    fs.write_file("/dump.1", str(d1))
    fs.write_file("/dump.01", b"not a dump number")
    with locate_dump(img) as loc:
        assert loc.kind == "filesystem" and loc.number == 1 and loc.available == [0, 1]
        with S390Dump(loc.source) as dump:
            assert dump.complete and dump.mem_size == 2 * MIB
    out = tmp_path / "out0"
    assert cli_main(["-q", "getdump", str(img), str(out), "--number", "0"]) == 0
    assert out.read_bytes() == d0.read_bytes()
    out1 = tmp_path / "out1"
    assert cli_main(["-q", "getdump", str(img), str(out1)]) == 0
    assert out1.read_bytes() == d1.read_bytes()
    assert cli_main(["-q", "getdump", str(img), str(tmp_path / "x"), "--number", "7"]) == DumpError.exit_code


# --- dumpinfo ------------------------------------------------------------------------------------
EXPECTED_INFO_HEAD = """General dump info:
  Dump format........: s390
  Version............: 5
  Dump created.......: Fri, 15 Jun 2007 10:30:00 +0000
  Dump ended.........: Fri, 15 Jun 2007 10:30:42 +0000
  Dump CPU ID........: 1234520978000
  Build arch.........: s390x (64 bit)
  System arch........: s390x (64 bit)
  CPU count (online).: 2
  CPU count (real)...: 2
  Dump memory range..: 64 MB
  Real memory range..: 64 MB

Memory map:
  0000000000000000 - 0000000003ffffff (64 MB)
"""


def test_dumpinfo_worked_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = make_dump(tmp_path / "d")
    assert cli_main(["dumpinfo", str(p)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(EXPECTED_INFO_HEAD)  # zgetdump -i's block for §9
    assert "CPU 1: prefix 0x03f5a000" in out and "Dump is complete" in out


@pytest.mark.parametrize(
    "kwargs",
    [{"end_tod": None}, {"end_tod": TOD - 1}, {"marker": b"DUMP_EN\0" + bytes(8)}],
)
def test_dumpinfo_incomplete_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], kwargs: dict) -> None:
    p = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000)], **kwargs)
    assert cli_main(["dumpinfo", str(p)]) == 1
    captured = capsys.readouterr()
    assert "ERROR: Dump is not complete" in captured.out
    assert "Dump ended" not in captured.out and "CPU count (online)" not in captured.out
    assert "not complete" in captured.err


def test_dumpinfo_truncated_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    p = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[])
    os.truncate(p, 0x1000 + MIB)
    assert cli_main(["dumpinfo", "--json", str(p)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is False and "truncated" in data["incomplete_reason"]
    assert data["header"]["mem_size"] == 2 * MIB


def test_dumpinfo_not_a_dump(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"\x01" * 8192)
    # Not a dump magic and not a dump disk: a dump error naming the image.
    assert cli_main(["-q", "dumpinfo", str(p)]) in (DumpError.exit_code,)


# --- streaming a large sparse dump -----------------------------------------------------------------
@pytest.mark.slow
def test_large_sparse_dump_streams_with_bounded_memory(tmp_path: Path) -> None:
    import resource

    size = 4 << 30
    p = make_dump(tmp_path / "big", mem_size=size, cpus=[sample_regs(1).with_(prefix=0x7FFF0000)], stamp_pages=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with S390Dump(p) as d:
        assert d.complete and d.cpus[0].prefix == 0x7FFF0000
        out = tmp_path / "big.elf"
        write_elf(d, out)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (after - before) < 64 * 1024  # KiB: well under 64 MiB growth
    st = out.stat()
    assert st.st_size > size and st.st_blocks * 512 < 64 * MIB  # zero chunks left as holes
    core = read_elf_core(out)
    assert core.cpus[0].prefix == 0x7FFF0000


# --- ELF -> s390 -------------------------------------------------------------------------------------
def test_elf_to_s390_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mem = bytearray(2 * MIB)
    mem[0x10000 + 0x1310 : 0x10000 + 0x1318] = b"\xee" * 8  # pad bytes keep memory
    mem[5000:5004] = b"abcd"
    cpus = [sample_regs(1).with_(prefix=0x10000, ckc=0xE3A3B0D1D42E5900), sample_regs(2).with_(prefix=0x20000)]
    make_qemu_like_elf(tmp_path / "q.elf", bytes(mem[: 2 * MIB - 100]), cpus)
    out = tmp_path / "q.s390"
    assert cli_main(["-q", "getdump", str(tmp_path / "q.elf"), str(out)]) == 0
    with S390Dump(out) as d:
        assert d.complete and d.mem_size == 2 * MIB and d.header.dump_level == 4
        assert d.cpus == cpus
        assert d.read_memory(5000, 4) == b"abcd"
        assert d.read_memory(0x11310, 8) == b"\xee" * 8
        assert d.read_memory(0x11330, 8) == (0xE3A3B0D1D42E5900 >> 8).to_bytes(8, "big")  # CKC >> 8
    # ELF -> ELF (zgetdump -f elf of an ELF input): the notes rebuilt in zgetdump's order,
    # NT_S390_TODCMP copied raw, the memory unchanged.
    assert cli_main(["-q", "getdump", str(tmp_path / "q.elf"), str(tmp_path / "x"), "--format", "elf"]) == 0
    again = read_elf_core(tmp_path / "x", ckc_encoding="full")
    assert again.cpus == cpus and again.notes[0].type == ec.NT_PRPSINFO
    with read_elf_core(tmp_path / "x", keep_open=True) as again:
        assert again.read(5000, 4) == b"abcd" and again.memory_end == 2 * MIB - 100
    assert cli_main(["dumpinfo", str(tmp_path / "q.elf")]) == 0
    text = capsys.readouterr().out
    assert "Dump format........: elf" in text and "CPU 1: prefix 0x00020000" in text


# --- cross-check with the simulator's zcore ---------------------------------------------------------
def test_reader_agrees_with_simulated_zcore(tmp_path: Path) -> None:
    """zcore/mem of the simulated crashed system + an end marker reads back with
    every CPU's registers (written independently by sim/ from formats.lowcore)."""
    crashed_mod = pytest.importorskip("zipldump.sim.crashed")
    machine_mod = pytest.importorskip("zipldump.sim.machine")
    zcore_mod = pytest.importorskip("zipldump.sim.zcore")
    crashed = crashed_mod.generate(64 * MIB, 3, seed=5)
    m = machine_mod.Machine(crashed, hsa_size=32 * MIB)
    m.dump_ipl()
    z = zcore_mod.Zcore(m)
    p = tmp_path / "dump"
    with open(p, "wb") as out:
        shutil.copyfileobj(z.mem, out, 4 * MIB)
        out.write(sd.build_end_marker((1 << 64) - 1))
    with S390Dump(p) as d:
        assert d.complete and d.info.warnings == []
        want = [c.registers for c in crashed.cpus if c.prefix]
        assert d.cpus == want and len(want) == 3
        core_path = tmp_path / "core"
        write_elf(d, core_path)
    assert read_elf_core(core_path).cpus == want


def test_dumpinfo_on_dump_disk_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    d = make_dump(tmp_path / "d", mem_size=2 * MIB, cpus=[sample_regs(1).with_(prefix=0x10000)])
    img = dump_disk(tmp_path / "disk.img", d)
    assert cli_main(["-q", "dumpinfo", "--json", str(img)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] and data["located"]["kind"] == "partition"
    assert data["cpus"][0]["registers"]["prefix"] == "0x00010000"
    # The same disk after the partition's first block changed: checksum refused, --force reads it.
    with open(img, "r+b") as fh:
        fh.seek(PART_START + 0x800)
        fh.write(b"\x01")
    assert cli_main(["-q", "dumpinfo", str(img)]) == DumpTargetChangedError.exit_code
    assert cli_main(["-q", "dumpinfo", "--force", str(img)]) == 0


def test_elf_todcmp_is_the_raw_save_area_field(tmp_path: Path) -> None:
    """zgetdump -f elf copies the 8 bytes at prefix + 0x1330 into NT_S390_TODCMP
    as they are.  A dump made by `zgetdump -f s390` from a QEMU ELF holds the
    unshifted CKC there (s390-dump-format.md §8.9); the note must carry those
    bytes, not the value shifted once more."""
    p = make_dump(tmp_path / "d")
    raw = bytes.fromhex("e3a3b0d1d42e5927")  # top byte non-zero: an unshifted copy
    with open(p, "r+b") as fh:
        fh.seek(sd.HEADER_SIZE + PREFIXES[1] + 0x1330)
        fh.write(raw)
    out = tmp_path / "core"
    with S390Dump(p) as d:
        write_elf(d, out)
    core = read_elf_core(out)
    todcmp = [n.desc for n in core.notes if n.type == ec.NT_S390_TODCMP]
    assert todcmp == [build_save_area(example_cpus()[0])[0x130:0x138], raw]
