"""Hostile s390x ELF cores: seeded mutations of a small valid core given to the ELF
reader, the ELF -> s390 conversion and `dumpinfo`/`getdump` (docs/robustness.md).

Header fields (e_phoff, e_phnum, e_phentsize), every program header field
(p_type, p_offset, p_paddr, p_filesz, p_memsz) and the note headers (namesz,
descsz, type) get boundary values; random bit flips hit the headers and notes;
the file is cut at every structure boundary.  Only ZiplDumpError subclasses may
escape, with a one-line message naming the place, and the conversion's work
must not grow with a corrupted address or size.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from builders.checks import check_error
from builders.dumps import valid_dump
from builders.fakes import CountingSource

from zipldump.cli import main as cli_main
from zipldump.dump.elf import read_elf_core, write_elf, write_s390_from_elf
from zipldump.dump.s390 import S390Dump
from zipldump.errors import FormatError, ZiplDumpError
from zipldump.formats import elfcore as ec

PH = ec.EHDR_SIZE  # program headers follow the ELF header
U64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def core_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("elf") / "core.elf"
    with S390Dump(CountingSource(valid_dump())) as d:
        write_elf(d, out)
    return out.read_bytes()


def note_offsets(data: bytes) -> list[int]:
    """File offsets of the note headers of the PT_NOTE segment (program header 0)."""
    off = int.from_bytes(data[PH + 8 : PH + 16], "big")
    size = int.from_bytes(data[PH + 32 : PH + 40], "big")
    out, pos = [], off
    while pos < off + size:
        out.append(pos)
        namesz, descsz = int.from_bytes(data[pos : pos + 4], "big"), int.from_bytes(data[pos + 4 : pos + 8], "big")
        pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return out


def exercise(data: bytes, path: Path, convert: bool = True) -> str:
    path.write_bytes(data)
    out = path.with_suffix(".s390")
    try:
        with read_elf_core(path, keep_open=True) as core:
            if core.memory_end:
                core.read(0, 0x100)
                core.read(max(0, core.memory_end - 0x10), 0x20)
            if convert:
                write_s390_from_elf(core, out)
                with S390Dump(out) as d:
                    assert d.complete
    except ZiplDumpError as exc:
        check_error(exc)
        assert not out.with_name(out.name + ".part").exists()
        return exc.kind
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")
    return "ok"


def boundary(size: int) -> list[int]:
    top = (1 << (8 * size)) - 1
    vals = {0, 1, 3, 4, 12, 56, 64, 0x1000, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, top, top - 0xFFF, 1 << (8 * size - 1)}
    return sorted(v for v in vals if v <= top)


def test_valid_core(core_bytes: bytes, tmp_path: Path) -> None:
    assert exercise(core_bytes, tmp_path / "c.elf") == "ok"


def test_header_fields(core_bytes: bytes, tmp_path: Path) -> None:
    fields = {"e_ident": (4, 4), "e_type": (0x10, 2), "e_machine": (0x12, 2), "e_phoff": (0x20, 8),
              "e_phentsize": (0x36, 2), "e_phnum": (0x38, 2)}
    kinds = {}
    for name, (off, size) in fields.items():
        for v in boundary(size):
            data = bytearray(core_bytes)
            data[off : off + size] = v.to_bytes(size, "big")
            kinds.setdefault(name, set()).add(exercise(bytes(data), tmp_path / "c.elf"))
    assert kinds["e_phoff"] >= {"format"} and kinds["e_phnum"] >= {"format"}


def test_program_header_fields(core_bytes: bytes, tmp_path: Path) -> None:
    fields = {"p_type": (0, 4), "p_offset": (8, 8), "p_vaddr": (16, 8), "p_paddr": (24, 8), "p_filesz": (32, 8), "p_memsz": (40, 8)}
    phnum = int.from_bytes(core_bytes[0x38:0x3A], "big")
    for i in range(phnum):
        for _name, (off, size) in fields.items():
            for v in boundary(size):
                data = bytearray(core_bytes)
                at = PH + i * ec.PHDR_SIZE + off
                data[at : at + size] = v.to_bytes(size, "big")
                exercise(bytes(data), tmp_path / "c.elf")


def test_note_header_fields(core_bytes: bytes, tmp_path: Path) -> None:
    kinds = set()
    for pos in note_offsets(core_bytes)[:6]:
        for field in (0, 4, 8):
            for v in boundary(4):
                data = bytearray(core_bytes)
                data[pos + field : pos + field + 4] = v.to_bytes(4, "big")
                kinds.add(exercise(bytes(data), tmp_path / "c.elf"))
    assert "format" in kinds


def test_random_mutations(core_bytes: bytes, tmp_path: Path) -> None:
    rng = random.Random(0xE1F)
    notes = note_offsets(core_bytes)
    hot_end = notes[-1] + 64
    for _ in range(700):
        data = bytearray(core_bytes)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(0, hot_end)
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.choice((0, 0xFF, 0x80, rng.randrange(256)))
        exercise(bytes(data), tmp_path / "c.elf", convert=rng.random() < 0.3)


def test_truncation_and_extension(core_bytes: bytes, tmp_path: Path) -> None:
    notes = note_offsets(core_bytes)
    cuts = {0, 1, 4, 16, 63, 64, 65, 64 + 56, 64 + 2 * 56 - 1, 64 + 2 * 56, len(core_bytes) - 1}
    cuts |= {n + d for n in notes for d in (0, 4, 12, 13)}
    for c in sorted(cuts):
        assert exercise(core_bytes[:c], tmp_path / "c.elf") != "ok" or c >= notes[-1] + 12
    assert exercise(core_bytes + bytes(4096), tmp_path / "c.elf") == "ok"


def test_duplicated_and_overlapping_segments(core_bytes: bytes, tmp_path: Path) -> None:
    data = bytearray(core_bytes)
    load = bytes(data[PH + 56 : PH + 112])
    data[PH : PH + 56] = load  # PT_NOTE replaced by a copy of the PT_LOAD: overlap
    assert exercise(bytes(data), tmp_path / "c.elf") == "format"
    # The notes segment given twice: CPUs appear twice, still a readable core.
    data = bytearray(core_bytes)
    data[PH + 56 : PH + 112] = data[PH : PH + 56]
    assert exercise(bytes(data), tmp_path / "c.elf", convert=False) == "ok"


def test_far_segment_is_refused_or_cheap(core_bytes: bytes, tmp_path: Path) -> None:
    """A PT_LOAD moved to a huge physical address: no loop over the empty space."""
    for paddr in (1 << 40, 1 << 52, U64 - 0xFFF):
        data = bytearray(core_bytes)
        data[PH + 56 + 24 : PH + 56 + 32] = paddr.to_bytes(8, "big")
        kind = exercise(bytes(data), tmp_path / "c.elf")
        assert kind in ("ok", "format")
        if kind == "ok":
            assert (tmp_path / "c.s390").stat().st_blocks * 512 < 1 << 22  # sparse output


def test_parse_notes_direct() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        blob = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(rng.randrange(0, 80)))
        try:
            ec.cpus_from_notes(ec.parse_notes(blob, base=0x100))
        except FormatError as exc:
            check_error(exc)


@pytest.mark.parametrize("cut", [10, 64, 100])
def test_cli_truncated_core(core_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str], cut: int) -> None:
    f = tmp_path / "t.elf"
    f.write_bytes(core_bytes[:cut])
    assert cli_main(["dumpinfo", str(f)]) == FormatError.exit_code
    assert cli_main(["getdump", str(f), str(tmp_path / "o"), "--format", "s390"]) == FormatError.exit_code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("zipldump: error:") == 2
    assert not (tmp_path / "o").exists()


def test_many_notes_and_repeated_note_headers_are_bounded(core_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Empty notes beyond the limit: refused by count, naming the offset of the first one too many.
    with pytest.raises(FormatError, match="too many notes") as ei:
        ec.parse_notes(bytes(12) * 1500 + b"\0\0\0\1" + bytes(8), base=0x100, max_notes=1000)
    assert ei.value.where == f"PT_NOTE file offset 0x{0x100 + 12 * 1000:x}"
    assert ec.MAX_NOTES == 1 << 16
    # 200 PT_NOTE headers naming the same notes: the total read is bounded.
    from zipldump.dump import elf as elfmod
    monkeypatch.setattr(elfmod, "MAX_NOTES_SIZE", 64 << 10)
    note_ph = core_bytes[PH : PH + 56]
    load_ph = core_bytes[PH + 56 : PH + 112]
    n = 200
    head = bytearray(core_bytes[:64])
    head[0x20:0x28] = len(core_bytes).to_bytes(8, "big")  # program headers appended at the end
    head[0x38:0x3A] = (n + 1).to_bytes(2, "big")
    data = bytes(head) + core_bytes[64:] + load_ph + note_ph * n
    (tmp_path / "many.elf").write_bytes(data)
    with pytest.raises(FormatError, match="add up to") as ei2:
        read_elf_core(tmp_path / "many.elf")
    check_error(ei2.value)


def test_more_cpus_than_lc_vec(core_bytes: bytes, tmp_path: Path) -> None:
    """The notes segment named by 300 PT_NOTE headers: 600 CPUs, refused by the s390 writer, naming the core."""
    note_ph = core_bytes[PH : PH + 56]
    load_ph = core_bytes[PH + 56 : PH + 112]
    head = bytearray(core_bytes[:64])
    head[0x20:0x28] = len(core_bytes).to_bytes(8, "big")
    head[0x38:0x3A] = (301).to_bytes(2, "big")
    path = tmp_path / "cpus.elf"
    path.write_bytes(bytes(head) + core_bytes[64:] + load_ph + note_ph * 300)
    with read_elf_core(path, keep_open=True) as core:
        assert len(core.cpus) == 600
        with pytest.raises(FormatError, match="600 NT_PRSTATUS") as ei:
            write_s390_from_elf(core, tmp_path / "out")
    check_error(ei.value)
    assert str(path) in ei.value.where and not (tmp_path / "out.part").exists()
