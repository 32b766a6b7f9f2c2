"""Property fuzzing of every reader with hypothesis: only ZiplDumpError escapes, no case runs past its deadline.

Each reader starts from one valid input (the spec's §13 dump disk, a two-CPU s390
dump, the ELF core written from it, a zipl.conf, a gen_init_cpio list, an msdos and a
GPT table, a dump kernel command line) and takes hypothesis-chosen damage: bytes
overwritten at any offset (weighted to the structures' first blocks), truncation,
and whole fields set to boundary values.  A case passes when the reader returns a
result or raises a ZiplDumpError whose message is one line; any other exception, or
a case slower than DEADLINE, fails and hypothesis shrinks it to a minimal input.

Budget: ZIPLDUMP_FUZZ_EXAMPLES examples per reader (`make test`: 40, `make fuzz`:
2000).  Cases found once are kept as @example lines, so they run every time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from builders.dumps import valid_dump
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zipldump.disk.initramfs import parse_list
from zipldump.disk.partitions import PartSpec, make_disk, read_partition_table
from zipldump.dump.elf import read_elf_core, write_elf
from zipldump.dump.params import parse_dump_cmdline
from zipldump.dump.s390 import S390Dump
from zipldump.errors import ZiplDumpError
from zipldump.zipl.check import inspect_disk
from zipldump.zipl.config import parse_config_text
from zipldump.zipl.installer import build_spec_example

EXAMPLES = int(os.environ.get("ZIPLDUMP_FUZZ_EXAMPLES", "40"))
DEADLINE = timedelta(seconds=10)  # a hang is a case slower than this
FUZZ = settings(max_examples=EXAMPLES, deadline=DEADLINE, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                   HealthCheck.too_slow], derandomize=False)
BOUNDARY = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x1000, 0x10000]


def damage(data: bytes, hot: int) -> st.SearchStrategy[bytes]:
    """Byte overwrites (mostly inside the first `hot` bytes), a boundary value at an aligned offset, or a cut."""
    size = len(data)

    def overwrite(args: tuple[int, bytes]) -> bytes:
        off, blob = args
        off %= size
        return data[:off] + blob[: size - off] + data[off + len(blob) :]

    def word(args: tuple[int, int, int]) -> bytes:
        off, width, value = args
        off = (off % (hot // width)) * width
        return data[:off] + (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big") + data[off + width :]

    return st.one_of(
        st.tuples(st.integers(0, hot - 1), st.binary(min_size=1, max_size=16)).map(overwrite),
        st.tuples(st.integers(0, size - 1), st.binary(min_size=1, max_size=64)).map(overwrite),
        st.tuples(st.integers(0, hot), st.sampled_from([2, 4, 8]), st.sampled_from(BOUNDARY)).map(word),
        st.integers(0, size - 1).map(lambda n: data[:n]),
    )


def one_line(exc: ZiplDumpError) -> None:
    assert "\n" not in str(exc), str(exc)


@pytest.fixture(scope="module")
def spec_disk(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("spec")
    build_spec_example(d / "disk.img", d / "work")
    return (d / "disk.img").read_bytes()


@FUZZ
@given(data=st.data())
def test_inspect_reads_any_damaged_dump_disk(spec_disk: bytes, tmp_path: Path, data: st.DataObject) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(data.draw(damage(spec_disk, 0x400)))  # block 0, 1 and the partition table
    try:
        inspect_disk(img, 512)
    except ZiplDumpError as exc:
        one_line(exc)


@FUZZ
@given(data=st.data())
def test_inspect_reads_a_damaged_bootmap_tail(spec_disk: bytes, tmp_path: Path, data: st.DataObject) -> None:
    tail = 1920 * 512 + 64 * 512  # the bootmap (§13: R = 1920 in partition 1 at LBA 64)
    img = tmp_path / "disk.img"
    mutated = data.draw(damage(spec_disk[tail:], 0x2000))
    img.write_bytes(spec_disk[:tail] + mutated)
    try:
        inspect_disk(img, 512)
    except ZiplDumpError as exc:
        one_line(exc)


@pytest.fixture(scope="module")
def dump_bytes() -> bytes:
    return valid_dump()


@FUZZ
@given(data=st.data())
def test_s390_reader_takes_any_damaged_dump(dump_bytes: bytes, tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "dump"
    path.write_bytes(data.draw(damage(dump_bytes, 0x1000)))
    try:
        with S390Dump(path) as d:
            for _ in d.iter_memory(chunk=1 << 16):
                pass
    except ZiplDumpError as exc:
        one_line(exc)


@pytest.fixture(scope="module")
def elf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("elf")
    (d / "dump").write_bytes(valid_dump())
    with S390Dump(d / "dump") as dump:
        write_elf(dump, d / "core")
    return (d / "core").read_bytes()


@FUZZ
@given(data=st.data())
def test_elf_reader_takes_any_damaged_core(elf_bytes: bytes, tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "core"
    path.write_bytes(data.draw(damage(elf_bytes, 0x1000)))
    try:
        core = read_elf_core(path, keep_open=True)
        try:
            for s in core.segments[:4]:
                core.read(s.paddr, min(s.memsz, 1 << 16))
        finally:
            core.close()
    except ZiplDumpError as exc:
        one_line(exc)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("tables")
    out = {}
    for label in ("msdos", "gpt"):
        make_disk(d / label, 4 << 20, label=label, parts=[PartSpec(1 << 20), PartSpec(1 << 20)])
        out[label] = (d / label).read_bytes()
    return out


@FUZZ
@given(label=st.sampled_from(["msdos", "gpt"]), data=st.data())
def test_partition_reader_takes_any_damaged_table(tables: dict[str, bytes], tmp_path: Path, label: str, data: st.DataObject) -> None:
    path = tmp_path / "disk"
    path.write_bytes(data.draw(damage(tables[label], 0x4400)))  # MBR, GPT header and entries
    try:
        read_partition_table(path, 512)
    except ZiplDumpError as exc:
        one_line(exc)


CONFIG = """[defaultboot]
defaultmenu = menu

[linux]
target = /boot
image = /boot/vmlinuz
ramdisk = /boot/initrd.img,0x2000000
parameters = "root=/dev/sda1 console=ttyS0"

[dump]
target = /boot
dumpto = /dev/sda2

:menu
target = /boot
1 = linux
default = 1
prompt = 1
timeout = 5
"""


@FUZZ
@given(text=st.one_of(st.text(max_size=400), st.builds(lambda a, b, c: CONFIG[:a] + b + CONFIG[c:],
                                                        st.integers(0, len(CONFIG)), st.text(max_size=40), st.integers(0, len(CONFIG)))))
def test_zipl_conf_parser_takes_any_text(text: str) -> None:
    try:
        parse_config_text(text)
    except ZiplDumpError as exc:
        one_line(exc)


LIST = "dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nslink /sh /bin/busybox 0777 0 0\npipe /p 0644 0 0\nsock /s 0644 0 0\n"


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.builds(lambda a, b: LIST[:a] + b + LIST[a:], st.integers(0, len(LIST)), st.text(max_size=40))))
def test_initramfs_list_parser_takes_any_text(tmp_path: Path, text: str) -> None:
    if "\n" not in text:
        text += "\n"  # a one-line str naming a file is read as that file: keep it list text
    try:
        parse_list(text, tmp_path)
    except ZiplDumpError as exc:
        one_line(exc)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
@example("dump_mem=1 dump_part=0x")
@example("dump_part=" + "9" * 5000)
def test_dump_kernel_command_line_parser_takes_any_text(text: str) -> None:
    try:
        parse_dump_cmdline(text)
    except ZiplDumpError as exc:
        one_line(exc)
