"""ELF dumps wherever a dump lies (dump/elfdump.py) and zgetdump -f elf's notes (dump/elf.py).

zfcpdump 3.0 leaves /proc/vmcore, an ELF core, on the dump partition; the dump
tools read it there, as dump.N in a file system and as a file, and convert
both ways.  The expected output is zgetdump 2.16's (tests/dump/test_zgetdump_oracle.py
runs the real one on the same files).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders.disks import make_fs_disk
from builders.dumps import LINUX_PREFIXES, LINUX_RELEASE, LINUX_VERSION, dump_disk, linux_memory, linux_s390_dump

from zipldump.cli import main as cli_main
from zipldump.dump.elf import read_elf_core
from zipldump.dump.elfdump import ElfDump, open_dump_any
from zipldump.dump.s390 import S390Dump, sniff_format
from zipldump.errors import IncompleteDumpError
from zipldump.formats import elfcore as ec
from zipldump.formats import s390dump as sd

MIB = 1 << 20
PER_CPU = [ec.NT_PRSTATUS, ec.NT_FPREGSET, ec.NT_S390_TIMER, ec.NT_S390_TODCMP, ec.NT_S390_TODPREG, ec.NT_S390_CTRS, ec.NT_S390_PREFIX]
VX = [ec.NT_S390_VXRS_LOW, ec.NT_S390_VXRS_HIGH]


@pytest.fixture
def linux_elf(tmp_path: Path) -> tuple[Path, Path, list]:
    """A Linux-like s390 dump and its ELF conversion (what zfcpdump 3.0 leaves, in zgetdump's layout)."""
    s390 = tmp_path / "linux.s390"
    regs = linux_s390_dump(s390)
    elf = tmp_path / "linux.elf"
    assert cli_main(["-q", "getdump", str(s390), str(elf), "--format", "elf"]) == 0
    return s390, elf, regs


def note_types(path: Path) -> list[int]:
    return [n.type for n in read_elf_core(path).notes]


def test_getdump_elf_notes_in_zgetdump_order(linux_elf) -> None:
    """NT_PRPSINFO; per CPU the seven classic notes, then VXRS_LOW/HIGH (the lowcore points
    at a vector save area); VMCOREINFO last: 20 notes for two CPUs."""
    _, elf, regs = linux_elf
    core = read_elf_core(elf)
    assert [n.type for n in core.notes] == [ec.NT_PRPSINFO] + (PER_CPU + VX) * 2 + [ec.NT_VMCOREINFO]
    assert core.notes[-1].name == "VMCOREINFO" and core.notes[-1].desc.startswith(f"OSRELEASE={LINUX_RELEASE}\n".encode())
    assert core.cpus == regs  # vector registers included


def test_no_vector_notes_without_a_save_area(tmp_path: Path) -> None:
    linux_s390_dump(tmp_path / "d.s390", vector=False, vmcoreinfo=False)
    assert cli_main(["-q", "getdump", str(tmp_path / "d.s390"), str(tmp_path / "d.elf"), "--format", "elf"]) == 0
    assert note_types(tmp_path / "d.elf") == [ec.NT_PRPSINFO] + PER_CPU * 2


def test_elf_dump_on_partition(linux_elf, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ELF core on the dump partition with a valid checksum (what zfcpdump 3.0 leaves)."""
    s390, elf, regs = linux_elf
    disk = dump_disk(tmp_path / "disk.img", elf)
    capsys.readouterr()
    assert cli_main(["dumpinfo", str(disk)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("General dump info:\n  Dump format........: elf\n  Version............: 1\n")
    assert f"  UTS kernel release.: {LINUX_RELEASE}\n  UTS kernel version.: {LINUX_VERSION}\n" in out
    assert "  CPU count (online).: 2\n  Dump memory range..: 4 MB\n\nMemory map:\n  0000000000000000 - 00000000003fffff (4 MB)\n" in out
    assert out.endswith("Dump is complete\n")
    assert cli_main(["dumpinfo", str(disk), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "elf" and data["complete"] and data["located"]["kind"] == "partition"
    assert data["utsname"]["release"] == LINUX_RELEASE and len(data["cpus"]) == 2
    # getdump from the partition, both formats.
    assert cli_main(["-q", "getdump", str(disk), str(tmp_path / "back.s390")]) == 0
    mem, _ = linux_memory()
    with S390Dump(tmp_path / "back.s390") as d:
        assert d.complete and d.header.prefixes == LINUX_PREFIXES
        assert d.cpus == [r.with_(vxrs=None) for r in regs]
        assert d.read_memory(0, len(mem)) == bytes(mem)
    assert cli_main(["-q", "getdump", str(disk), str(tmp_path / "again.elf"), "--format", "elf"]) == 0
    assert read_elf_core(tmp_path / "again.elf").notes == read_elf_core(elf).notes


def test_elf_dump_as_dump_n(linux_elf, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, elf, regs = linux_elf
    img, fs = make_fs_disk(tmp_path, 512, 32 * MIB)
    fs.write_file("/dump.0", elf)
    capsys.readouterr()
    assert cli_main(["dumpinfo", str(img)]) == 0
    assert "Dump format........: elf" in capsys.readouterr().out
    assert cli_main(["-q", "getdump", str(img), str(tmp_path / "o.s390"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"]["fs_path"] == "/dump.0"
    with S390Dump(tmp_path / "o.s390") as d:
        assert d.cpus == [r.with_(vxrs=None) for r in regs]


def test_interrupted_elf_dump_is_incomplete(linux_elf, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """zfcpdump 3.0 keeps "zfcpdump busy" where the ELF header belongs until the copy is done:
    dumpinfo exits 1 (as zgetdump -i), getdump refuses with IncompleteDumpError."""
    _, elf, _ = linux_elf
    busy = tmp_path / "busy.elf"
    busy.write_bytes(sd.BUSY_MARKER + elf.read_bytes()[len(sd.BUSY_MARKER) :])
    disk = dump_disk(tmp_path / "disk.img", busy)  # checksum updated for the busy marker, as zfcpdump does
    capsys.readouterr()
    assert cli_main(["dumpinfo", str(disk)]) == 1
    captured = capsys.readouterr()
    assert "ERROR: Dump is not complete" in captured.out and "zfcpdump busy" in captured.err
    assert cli_main(["dumpinfo", str(disk), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["complete"] is False
    assert cli_main(["-q", "getdump", str(disk), str(tmp_path / "o")]) == IncompleteDumpError.exit_code
    assert not (tmp_path / "o").exists()


def test_truncated_elf_file_is_incomplete(linux_elf, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A PT_LOAD past the end of the file: zgetdump's ELF reader says "not complete" (exit 1)."""
    _, elf, _ = linux_elf
    cut = tmp_path / "cut.elf"
    cut.write_bytes(elf.read_bytes()[: 2 * MIB])
    assert cli_main(["dumpinfo", str(cut)]) == 1
    assert "ERROR: Dump is not complete (PT_LOAD" in capsys.readouterr().out
    assert cli_main(["-q", "getdump", str(cut), str(tmp_path / "o"), "--format", "elf"]) == IncompleteDumpError.exit_code


def test_sniffing_and_open_dump_any(linux_elf) -> None:
    s390, elf, _ = linux_elf
    assert sniff_format(elf.read_bytes()[:16]) == "elf" and sniff_format(s390.read_bytes()[:16]) == "s390"
    assert sniff_format(sd.BUSY_MARKER) == "busy" and sniff_format(bytes(16)) is None
    assert sniff_format(sd.LKCD_MAGIC.to_bytes(8, "big")) == "lkcd"
    with open_dump_any(elf) as d:
        assert isinstance(d, ElfDump) and d.complete and d.mem_size == 4 * MIB
        assert d.info.utsname is not None and d.info.utsname.nodename == "crashed"
    with open_dump_any(s390) as d:
        assert isinstance(d, S390Dump)
