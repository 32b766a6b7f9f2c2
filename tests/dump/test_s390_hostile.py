"""Hostile s390 dumps: seeded mutations of a small valid dump given to the reader,
the ELF/s390 writers and the `dumpinfo`/`getdump` commands (docs/robustness.md).

Every case must end in a result or a ZiplDumpError subclass whose message is one
line and names a place; nothing may read or allocate in proportion to a
corrupted length field (the source counts what is asked of it).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from builders.checks import check_error
from builders.dumps import SMALL_DUMP_MEM as MEM
from builders.dumps import SMALL_DUMP_PREFIXES as PREFIXES
from builders.dumps import valid_dump
from builders.fakes import CountingSource

from zipldump.cli import main as cli_main
from zipldump.commands.dumpinfo import render_text
from zipldump.dump.elf import read_elf_core, write_elf, write_s390
from zipldump.dump.s390 import S390Dump
from zipldump.errors import DumpError, IncompleteDumpError, MagicError, ZiplDumpError
from zipldump.formats import s390dump as sd

READ_BOUND = 8 << 20  # no single read may ask for more than this


# Header fields (offset, size) and the boundary values they get.
FIELDS = {
    "magic": (0x00, 8), "version": (0x08, 4), "hdr_size": (0x0C, 4), "dump_level": (0x10, 4), "page_size": (0x14, 4),
    "mem_size": (0x18, 8), "mem_start": (0x20, 8), "mem_end": (0x28, 8), "num_pages": (0x30, 4), "tod": (0x38, 8),
    "arch": (0x48, 4), "build_arch": (0x50, 4), "mem_size_real": (0x54, 8), "cpu_cnt": (0x5D, 2),
    "real_cpu_cnt": (0x5F, 2), "zlib": (0x61, 5), "lc_vec[0]": (0x800, 4), "lc_vec[1]": (0x804, 4), "lc_vec[511]": (0xFFC, 4),
}


def boundary_values(size: int) -> list[int]:
    top = (1 << (8 * size)) - 1
    vals = {0, 1, 2, 4, 5, 0x200, 0x1000, 0x2000, MEM - 1, MEM, MEM + 0x1000, MEM * 2, 0x7FFFFFFF, top, top - 1, top >> 1, 0x80 << (8 * size - 8)}
    return sorted(v for v in vals if v <= top)


def exercise(data: bytes) -> str:
    """Open, report, stream all memory and read the CPUs; 'ok' or the error kind."""
    src = CountingSource(data)
    try:
        with S390Dump(src) as d:
            info = d.info
            info.to_json()
            render_text(info)
            total = 0
            for piece in d.iter_memory(chunk=1 << 20):
                total += len(piece)
            assert total == d.mem_size
            _ = d.cpus  # the property parses the CPU list: must not raise
            if d.mem_size >= 0x100:
                d.read_memory(0, 0x100)
            d.require_complete()
    except ZiplDumpError as exc:
        check_error(exc)
        return exc.kind
    except Exception as exc:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")
    finally:
        assert src.largest <= READ_BOUND, f"read of {src.largest} bytes"
    return "ok"


def test_valid_dump_reads() -> None:
    assert exercise(valid_dump()) == "ok"


def test_header_fields_boundary_values() -> None:
    base = valid_dump()
    kinds: dict[str, set[str]] = {}
    for name, (off, size) in FIELDS.items():
        for v in boundary_values(size):
            data = bytearray(base)
            data[off : off + size] = v.to_bytes(size, "big")
            kinds.setdefault(name, set()).add(exercise(bytes(data)))
    # The fields that decide the layout fail where they must.
    assert "bad-magic" in kinds["magic"]
    assert "dump-incomplete" in kinds["mem_size"] and "dump" in kinds["mem_size"]
    assert "dump" in kinds["cpu_cnt"]


def test_random_bit_flips_and_overwrites() -> None:
    base = valid_dump()
    rng = random.Random(0x5390)
    hot = [(0, 0x100), (0x800, 0x810), (len(base) - 16, len(base)),
           (sd.HEADER_SIZE + 0x1200, sd.HEADER_SIZE + 0x1400), (sd.HEADER_SIZE + 0x7200, sd.HEADER_SIZE + 0x7400)]
    for _ in range(1200):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            lo, hi = rng.choice(hot)
            pos = rng.randrange(lo, hi)
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        exercise(bytes(data))


def test_truncation_at_every_boundary() -> None:
    base = valid_dump()
    cuts = {0, 1, 7, 8, 0x17, 0x18, 0x20, 0x5F, 0x800, 0x804, 0xFFF, 0x1000, 0x1001}
    for p in PREFIXES:
        cuts |= {sd.HEADER_SIZE + p + 0x1200 + d for d in (-1, 0, 1, 0x1FF, 0x200)}
    em = sd.HEADER_SIZE + MEM
    cuts |= {em - 1, em, em + 1, em + 8, em + 15, em + 16}
    cuts |= set(range(0x1000, em, 0x1000))
    kinds = {c: exercise(base[:c]) for c in sorted(cuts)}
    assert kinds[em + 16] == "ok"
    assert kinds[0] == "dump" and kinds[0xFFF] == "dump"
    assert all(kinds[c] == "dump-incomplete" for c in cuts if 0x1000 <= c < em + 16)


def test_extension_and_duplication() -> None:
    base = valid_dump()
    rng = random.Random(7)
    assert exercise(base + bytes(rng.randrange(256) for _ in range(5000))) == "ok"
    assert exercise(base + base) == "ok"  # a second dump after the marker is never read
    # A header repeated where memory starts (an old dump below a new header).
    data = bytearray(base)
    data[0x1000:0x2000] = base[:0x1000]
    assert exercise(bytes(data)) == "ok"


def test_absurd_sizes_read_bounded_amounts() -> None:
    """mem_size 2^64-1, cpu_cnt 512 with prefixes at the top: every read stays small."""
    base = bytearray(valid_dump())
    base[0x18:0x20] = (2**64 - 4096).to_bytes(8, "big")
    base[0x5D:0x5F] = (512).to_bytes(2, "big")
    for i in range(512):
        base[0x800 + 4 * i : 0x804 + 4 * i] = (0xFFFFF000 - i * 0x2000).to_bytes(4, "big")
    src = CountingSource(bytes(base))
    with S390Dump(src) as d:
        assert not d.complete and "truncated" in d.info.incomplete_reason
        render_text(d.info)
        with pytest.raises(IncompleteDumpError) as ei:
            for _ in d.iter_memory():
                pass
        check_error(ei.value)
    assert src.largest <= sd.HEADER_SIZE + (4 << 20)


def test_parse_header_short_and_magic() -> None:
    with pytest.raises(ZiplDumpError) as ei:
        sd.parse_header(b"\0" * 100)
    check_error(ei.value)
    with pytest.raises(MagicError) as ei2:
        sd.parse_header(bytes(4096))
    check_error(ei2.value)
    assert sd.parse_end_marker(b"DUMP_EN") is None


def test_writers_on_mutants(tmp_path: Path) -> None:
    """ELF and s390 conversion of damaged dumps (forced): an error or a readable output."""
    base = valid_dump()
    rng = random.Random(42)
    out = tmp_path / "out"
    for i in range(60):
        data = bytearray(base)
        off, size = rng.choice(list(FIELDS.values()))
        data[off : off + size] = rng.choice(boundary_values(size)).to_bytes(size, "big")
        if rng.random() < 0.4:
            data = data[: rng.randrange(0x1000, len(data))]
        try:
            with S390Dump(CountingSource(bytes(data))) as d:
                if i % 2:
                    write_elf(d, out, allow_incomplete=True)
                    with read_elf_core(out) as core:
                        assert core.memory_end == d.mem_size
                else:
                    write_s390(d, out, allow_incomplete=True)
        except ZiplDumpError as exc:
            check_error(exc)
        assert not Path(str(out) + ".part").exists()


# --- the commands ---------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "mutate,dumpinfo_code,getdump_code",
    [
        (lambda b: b[:100], DumpError.exit_code, DumpError.exit_code),  # shorter than a header
        (lambda b: b[: 0x1000 + MEM // 2], 1, IncompleteDumpError.exit_code),  # truncated memory
        (lambda b: b[:-16] + b"DUMP_end" + b[-8:], 1, IncompleteDumpError.exit_code),  # bad end marker
        (lambda b: b[:0x18] + (0).to_bytes(8, "big") + b[0x20:], DumpError.exit_code, DumpError.exit_code),  # mem_size 0
        (lambda b: b[:0x5D] + (600).to_bytes(2, "big") + b[0x5F:], DumpError.exit_code, DumpError.exit_code),  # cpu_cnt
        (lambda b: b[:0x18] + (2**64 - 1).to_bytes(8, "big") + b[0x20:], 1, IncompleteDumpError.exit_code),
        (lambda b: sd.LKCD_MAGIC.to_bytes(8, "big") + b[8:], MagicError.exit_code, MagicError.exit_code),
        (lambda b: sd.DUMP_MAGIC_EXT.to_bytes(8, "big") + b[8:], DumpError.exit_code, DumpError.exit_code),
    ],
)
def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, dumpinfo_code: int, getdump_code: int) -> None:
    f = tmp_path / "dump.bin"
    f.write_bytes(mutate(valid_dump()))
    code, err = run_cli(capsys, "dumpinfo", str(f))
    assert code == dumpinfo_code, err
    assert "Traceback" not in err and err.count("zipldump: error:") == 1
    assert f"zipldump: error: {f}" in err  # the place: the file, then its offset or field
    for fmt in ("s390", "elf"):
        code, err = run_cli(capsys, "getdump", str(f), str(tmp_path / f"out.{fmt}"), "--format", fmt, "--overwrite")
        assert code == getdump_code, err
        assert "Traceback" not in err and "zipldump: error:" in err
        assert not (tmp_path / f"out.{fmt}").exists()


def test_cli_not_a_dump_nor_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with no dump magic is taken as a disk image: no table -> a disk error, never a traceback."""
    f = tmp_path / "junk.bin"
    rng = random.Random(3)
    f.write_bytes(bytes(rng.randrange(256) for _ in range(8192)))
    code, err = run_cli(capsys, "dumpinfo", str(f))
    assert code != 0 and "Traceback" not in err and err.startswith("zipldump: error:")
    code, err = run_cli(capsys, "dumpinfo", str(tmp_path / "missing"))
    assert code == 3, err
    (tmp_path / "empty").write_bytes(b"")
    code, err = run_cli(capsys, "dumpinfo", str(tmp_path / "empty"))
    assert code != 0 and "Traceback" not in err, err


def test_save_area_values_do_not_crash() -> None:
    """Any 512 bytes in a save area parse (every register field is full-width)."""
    base = bytearray(valid_dump())
    rng = random.Random(11)
    for _ in range(50):
        off = sd.HEADER_SIZE + 0x1200
        base[off : off + 0x200] = bytes(rng.randrange(256) for _ in range(0x200))
        assert exercise(bytes(base)) == "ok"



def test_duplicated_and_misaligned_prefixes_are_reported() -> None:
    data = bytearray(valid_dump())
    data[0x804:0x808] = data[0x800:0x804]  # both CPUs at prefix 0
    with S390Dump(CountingSource(bytes(data))) as d:
        assert any("lc_vec[1] = 0x0 repeats lc_vec[0]" in w and "offset 0x804" in w for w in d.info.warnings)
    data[0x804:0x808] = (0x6000 + 0x1000).to_bytes(4, "big")
    with S390Dump(CountingSource(bytes(data))) as d:
        assert any("not 8 KiB aligned" in w and "offset 0x804" in w for w in d.info.warnings)
