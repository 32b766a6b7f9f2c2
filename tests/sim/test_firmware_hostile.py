"""Hostile disks given to the simulator's firmware loader and stage 3 (docs/robustness.md).

A dump disk made by the installer (stage 3 or the direct layout, kernel, initrd,
parameters) is
damaged block by block: block 0, the program table, the component table, every
block-list block, the stage-3 parameter block and the kernel's first blocks
after its 64 KiB header (S390EP marker, parm area, command line).  Bit flips,
boundary values in every 8-byte word, looped chains and zeroed blocks.  The IPL
must end in a KernelStart or an IplError (KernelImageError, ...) with a one-line
message naming the place, never another exception.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from builders.bootmaps import installed_disk
from builders.checks import check_error
from builders.fakes import FakeMachine

from zipldump.disk.image import DiskImage
from zipldump.errors import IplError, ZiplDumpError
from zipldump.sim.firmware import scsi_load
from zipldump.sim.stage3 import run_stage3
from zipldump.zipl.bootmap import (
    read_boot_record,
    read_component_table,
    read_program_table,
    walk_block_list,
)

MiB = 1 << 20
U64 = (1 << 64) - 1


class Target:
    """The installed disk and the LBAs of every structure the loader reads."""

    def __init__(self, img: Path, bs: int) -> None:
        self.img, self.bs = img, bs
        self.blocks: dict[str, int] = {"block 0": 0}
        with DiskImage(img, bs) as disk:
            br = read_boot_record(disk)
            pt = read_program_table(disk, br.program_table)
            ct = read_component_table(disk, pt.entries[0])
            self.blocks["program table"] = pt.lba
            self.blocks["component table"] = ct.lba
            for e in ct.entries:
                if e.type != 2:  # LOAD entries carry a block list
                    continue
                bl = walk_block_list(disk, e.blocklist)
                for i, lb in enumerate(bl.list_blocks):
                    self.blocks[f"list {e.index}.{i}"] = lb
                first = bl.pointers[0].blockno
                if e.address == 0x9000:
                    self.blocks["stage3 params"] = first
                if e.address == 0x10000:
                    # The parm area (0x10400..) lies 64 KiB into the kernel file with stage 3
                    # (which drops that header), at the component's start in the direct layout.
                    skip = 0x10000 if any(x.address == 0x9000 for x in ct.entries if x.type == 2) else 0
                    for k in range(0, 0x1000, bs):
                        self.blocks[f"kernel +{skip + k:#x}"] = first + (skip + k) // bs
        self.orig = {name: self.read_block(lba) for name, lba in self.blocks.items()}

    def read_block(self, lba: int) -> bytes:
        with open(self.img, "rb") as fh:
            fh.seek(lba * self.bs)
            return fh.read(self.bs)

    def put(self, changes: dict[str, bytes]) -> None:
        fd = os.open(self.img, os.O_WRONLY)
        try:
            for name, lba in self.blocks.items():
                os.pwrite(fd, changes.get(name, self.orig[name]), lba * self.bs)
        finally:
            os.close(fd)

    def ipl(self) -> str:
        m = FakeMachine(size=64 * MiB, hsa_size=32 * MiB)
        try:
            with DiskImage(self.img, self.bs) as disk:
                load = scsi_load(m, disk, dump=True)
            start = run_stage3(m, load)
            start.to_json()
        except ZiplDumpError as exc:
            check_error(exc)
            assert isinstance(exc, IplError), f"{type(exc).__name__} ({exc.kind}) is not an IplError: {exc}"
            return exc.kind
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"{type(exc).__name__} escaped: {exc}")
        return "ok"


@pytest.fixture(scope="module", params=[(512, True), (4096, True), (512, False)], ids=["512-stage3", "4096-stage3", "512-direct"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Target:
    bs, stage3 = request.param
    img, _res, _k, _r = installed_disk(tmp_path_factory.mktemp(f"fw{bs}"), bs=bs, stage3=stage3)
    return Target(img, bs)


def test_valid_disk_boots(target: Target) -> None:
    target.put({})
    assert target.ipl() == "ok"
    assert {"block 0", "program table", "component table", "list 0.0"} <= set(target.blocks)
    assert any(name.startswith("kernel +") for name in target.blocks)


def test_boundary_words_in_every_structure(target: Target) -> None:
    """Each 8-byte word of the first 0x40 bytes of each structure gets 0, all ones, and huge/small values."""
    kinds = set()
    values = (0, U64, 0x7FFFFFFF, 0x10000)
    for name, block in target.orig.items():
        for off in range(0, min(0x40, target.bs), 8):
            for v in values:
                data = bytearray(block)
                data[off : off + 8] = v.to_bytes(8, "big")
                target.put({name: bytes(data)})
                kinds.add(target.ipl())
    target.put({})
    assert "ipl" in kinds and "kernel-image" in kinds


def test_random_bit_flips(target: Target) -> None:
    rng = random.Random(0xF1 + target.bs)
    names = list(target.orig)
    for _ in range(150):
        changes = {}
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(names)
            data = bytearray(changes.get(name, target.orig[name]))
            pos = rng.randrange(min(0x80, len(data)))
            if rng.random() < 0.6:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.choice((0, 0xFF, 0x80, rng.randrange(256)))
            changes[name] = bytes(data)
        target.put(changes)
        target.ipl()
    target.put({})


def test_zeroed_duplicated_and_looped_blocks(target: Target) -> None:
    names = list(target.orig)
    for name in names:
        target.put({name: bytes(target.bs)})  # zeroed
        assert target.ipl() != "ok" or name.startswith("kernel")
        for other in names:  # one structure where another belongs
            if other != name:
                target.put({name: target.orig[other]})
                target.ipl()
    # A full list block (every data slot repeats its first pointer) whose chain
    # slot points back at itself or at the component table.
    lists = [n for n in names if n.startswith("list ")]
    for name in lists:
        lba = target.blocks[name]
        for back in (lba, target.blocks["component table"]):
            first = target.orig[name][:16]
            data = bytearray(first * (target.bs // 16 - 1))
            data += back.to_bytes(8, "big") + target.bs.to_bytes(2, "big") + bytes(6)
            target.put({name: bytes(data)})
            assert target.ipl() == "ipl"
    target.put({})


def test_truncated_image(target: Target, tmp_path: Path) -> None:
    raw_size = target.img.stat().st_size
    top = max(target.blocks.values())
    for cut_block in sorted({1, 2, target.blocks["component table"], top, top + 1}):
        p = tmp_path / "cut.img"
        with open(target.img, "rb") as src, open(p, "wb") as dst:
            left = min(raw_size, cut_block * target.bs)
            while left:
                chunk = src.read(min(left, 1 << 20))
                dst.write(chunk)
                left -= len(chunk)
        t = Target.__new__(Target)
        t.img, t.bs, t.blocks, t.orig = p, target.bs, {}, {}
        kind = t.ipl()
        assert kind == "ipl" or cut_block > top, (cut_block, kind)
