"""Stage 3 effects (sim/stage3.py, spec §9/§10) on installed and hand-built disks."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from builders.bootmaps import build_disk, hand_built_spec_example, installed_disk
from builders.fakes import FakeMachine

from zipldump.disk.image import DiskImage
from zipldump.errors import IplError, KernelImageError
from zipldump.formats.component_table import (
    FILE_SIGNATURE_SIZE,
    STAGE3_PSW,
    build_component_table,
    execute_entry,
    load_entry,
    signature_entry,
)
from zipldump.formats.stage3_params import Stage3Params
from zipldump.sim.firmware import scsi_load
from zipldump.sim.payloads import kernel_image, stage3_image
from zipldump.sim.stage3 import run_stage3

DIRECT_PSW = 0x0008000080010000


def boot(img: Path, bs: int = 512, machine=None, **kw):
    m = machine or FakeMachine()
    with DiskImage(img, bs) as disk:
        load = scsi_load(m, disk, dump=True, **kw)
    return m, load, run_stage3(m, load)


@pytest.mark.parametrize("bs", [512, 4096])
def test_stage3_effects_on_installed_disk(tmp_path: Path, bs: int) -> None:
    img, res, kernel, initrd = installed_disk(tmp_path, bs=bs)
    prog = res.to_json()["programs"][0]
    assert prog["layout"] == "stage3"
    m, load, ks = boot(img, bs)
    st = m.storage
    assert ks.layout == "stage3"
    # The command line the dump kernel sees is exactly the installed parameter line.
    assert ks.command_line == prog["parmline"] == "dump_debug=3 root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"
    assert st.read(0x10480, len(ks.command_line) + 1) == ks.command_line.encode() + b"\0"
    assert ks.command_line_limit == 4096  # from the kernel's 0x10430
    # memmove: file offset X (>= 64 KiB) now at address X.
    assert st.read(0x10000, 0x400) == kernel[0x10000:0x10400]
    assert st.read(0x11480, len(kernel) - 0x11480) == kernel[0x11480:]
    # initrd start/size and the load PSW.
    rd = [c for c in prog["components"] if c["kind"] == "ramdisk"][0]
    assert (ks.initrd_start, ks.initrd_size) == (rd["address"], len(initrd))
    assert struct.unpack(">QQ", st.read(0x10408, 16)) == (rd["address"], len(initrd))
    assert st.read(rd["address"], len(initrd)) == initrd
    assert st.read(0, 8) == DIRECT_PSW.to_bytes(8, "big") and ks.entry == 0x10000
    assert ks.ipl_device == 1 and st.read(0x10400, 8) == (1).to_bytes(8, "big")
    assert ks.kernel_version and ks.kernel_version.startswith("zipldump-sim")


def test_direct_layout_on_installed_disk(tmp_path: Path) -> None:
    img, res, kernel, initrd = installed_disk(tmp_path, stage3=False, params=None)
    prog = res.to_json()["programs"][0]
    assert prog["layout"] == "direct" and prog["execute_psw"] == f"{DIRECT_PSW:#018x}"
    m, load, ks = boot(img)
    assert ks.layout == "direct" and load.psw == DIRECT_PSW
    assert ks.command_line == prog["parmline"] == "root=/dev/ram0 possible_cpus=1 cgroup_disable=memory"
    rd = [c for c in prog["components"] if c["kind"] == "ramdisk"][0]
    assert (ks.initrd_start, ks.initrd_size) == (rd["address"], len(initrd))
    assert m.storage.read(0x10000, 8) == kernel[0x10000:0x10008]


# --- hand-built disks for what the installer refuses to write -------------------------
def direct_disk(tmp_path: Path, kernel: bytes, extra=(), **kw):
    return build_disk(tmp_path / "d.img", [(0x10000, kernel[0x10000:]), *extra], psw=DIRECT_PSW, disk_blocks=2048, **kw)


def test_missing_s390ep(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    k[0x10008:0x1000E] = b"XXXXXX"
    b = direct_disk(tmp_path, bytes(k))
    with pytest.raises(KernelImageError, match="no 'S390EP' entry-point marker at 0x10008"):
        boot(b.path)


def test_command_line_without_nul(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    k[0x10480 : 0x10480 + 4096] = b"A" * 4096
    b = direct_disk(tmp_path, bytes(k))
    with pytest.raises(KernelImageError, match="not NUL-terminated within the kernel's limit of 4096") as ei:
        boot(b.path)
    assert ei.value.where == "storage 0x10480 (kernel command line)"


def test_initrd_outside_loaded_storage(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    struct.pack_into(">QQ", k, 0x10408, 0x800000, 0x1000)
    b = direct_disk(tmp_path, bytes(k))
    with pytest.raises(KernelImageError, match="initrd 0x800000\\+0x1000 is not inside loaded storage"):
        boot(b.path)


def test_initrd_above_hsa(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    struct.pack_into(">QQ", k, 0x10408, 0x100000, 0x2000)
    b = direct_disk(tmp_path, bytes(k), extra=[(0x100000, b"R" * 0x2000)])
    m = FakeMachine(hsa_size=0x101000)
    with pytest.raises(IplError, match="above the HSA limit"):
        boot(b.path, machine=m)
    # With the loader's HSA refusal waived, stage 3's own check still stops it.
    with pytest.raises(KernelImageError, match="initrd 0x100000..0x101fff ends above the HSA limit 0x101000"):
        boot(b.path, machine=FakeMachine(hsa_size=0x101000), allow_above_hsa=True)


def stage3_disk(tmp_path: Path, kernel: bytes, parm: bytes, **params):
    p = dict(
        parm_addr=0x100000, initrd_addr=0, initrd_len=0, load_psw=DIRECT_PSW, extra_parm=0,
        flags=0x0001000000000000, image_len=len(kernel), image_addr=0x10000, envblk_addr=0, envblk_len=0,
    )
    p.update(params)
    comps = [(0xA000, stage3_image()), (0x9000, Stage3Params.build(p)), (0x10000, kernel), (0x100000, parm)]
    return build_disk(tmp_path / "s.img", comps, psw=STAGE3_PSW, disk_blocks=4096)


def test_parmline_longer_than_legacy_limit(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    struct.pack_into(">Q", k, 0x10430, 0)  # old kernel: 896
    b = stage3_disk(tmp_path, bytes(k), b"x" * 1000 + b"\0")
    with pytest.raises(KernelImageError, match="no NUL within the kernel's command line limit of 896 bytes"):
        boot(b.path)


def test_parmline_at_legacy_limit_fits(tmp_path: Path) -> None:
    k = bytearray(kernel_image())
    struct.pack_into(">Q", k, 0x10430, 0)
    b = stage3_disk(tmp_path, bytes(k), b"y" * 895 + b"\0")
    _, _, ks = boot(b.path)
    assert ks.command_line == "y" * 895 and ks.command_line_limit == 896


def test_no_parmline_keeps_builtin_command_line(tmp_path: Path) -> None:
    b = stage3_disk(tmp_path, kernel_image(), b"ignored\0", parm_addr=0xFFFFFFFFFFFFFFFF)
    _, _, ks = boot(b.path)
    assert ks.command_line == "root=/dev/ram0 ro"


def test_image_len_larger_than_component(tmp_path: Path) -> None:
    k = kernel_image()
    b = stage3_disk(tmp_path, k, b"p\0", image_len=len(k) + 0x10000)
    with pytest.raises(KernelImageError, match="is larger than the kernel component"):
        boot(b.path)


def signed_stage3_disk(tmp_path: Path, kernel: bytes, initrd: bytes, sig_len: int, signed: tuple[int, ...], extra: int = 0):
    """A stage-3 disk made by zipl --secure 1: image_len and initrd_len are the stat() sizes
    (signature trailer included, §8.3), the LOADs hold the files without it, and a
    SIGNATURE entry precedes the LOAD of each component index in `signed` (§5, §8.9)."""
    trailer = sig_len + FILE_SIGNATURE_SIZE
    p = dict(
        parm_addr=0x100000, initrd_addr=0x200000, initrd_len=len(initrd) + trailer, load_psw=DIRECT_PSW, extra_parm=0,
        flags=0x0001000000000000, image_len=len(kernel) + trailer + extra, image_addr=0x10000, envblk_addr=0, envblk_len=0,
    )
    comps = [(0xA000, stage3_image()), (0x9000, Stage3Params.build(p)), (0x10000, kernel), (0x100000, b"p\0"), (0x200000, initrd)]
    b = build_disk(tmp_path / "signed.img", comps, psw=STAGE3_PSW, disk_blocks=4096)
    entries = []
    for i, (address, _) in enumerate(comps):
        if i in signed:
            entries.append(signature_entry(b.lists[0][0], b.bs, sig_len))  # any list block: the loader skips it
        entries.append(load_entry(b.lists[i][0], b.bs, address))
    entries.append(execute_entry(STAGE3_PSW))
    with open(b.path, "r+b") as f:
        f.seek(b.ct_lba * b.bs)
        f.write(build_component_table(1, entries, b.bs))
    return b


def test_signed_kernel_and_initrd_accepted(tmp_path: Path) -> None:
    k, rd, sig_len = kernel_image(), b"R" * 0x3000, 0x2A6
    assert len(k) % 512 == 0  # the LOAD has no block padding the trailer could hide in
    b = signed_stage3_disk(tmp_path, k, rd, sig_len, signed=(2, 4))
    m, load, ks = boot(b.path)
    assert load.signatures == [2, 5]
    kern = load.component_at(0x10000)
    assert kern is not None and kern.signed_trailer == sig_len + 40 and kern.to_json()["signed_trailer"] == sig_len + 40
    assert load.component_at(0x9000).signed_trailer == 0
    # Only what was loaded is moved: the image ends where the loaded kernel file ends.
    assert (ks.image_start, ks.image_end) == (0x10000, len(k))
    assert m.storage.read(0x10000, 0x400) == k[0x10000:0x10400]
    assert m.storage.read(len(k) - 0x400, 0x400) == k[-0x400:]
    assert (ks.initrd_start, ks.initrd_size) == (0x200000, len(rd) + sig_len + 40)
    assert ks.command_line == "p"


def test_signature_trailer_needs_signature_entry(tmp_path: Path) -> None:
    k, rd, sig_len = kernel_image(), b"R" * 0x3000, 0x2A6
    b = signed_stage3_disk(tmp_path, k, rd, sig_len, signed=())
    with pytest.raises(KernelImageError, match=f"image_len {len(k) + sig_len + 40:#x} is larger than the kernel component"):
        boot(b.path)
    b = signed_stage3_disk(tmp_path, k, rd, sig_len, signed=(2,))
    with pytest.raises(KernelImageError, match="initrd 0x200000\\+0x32ce is not inside loaded storage"):
        boot(b.path)
    # One byte more than the trailer allows is still refused.
    b = signed_stage3_disk(tmp_path, k, rd, sig_len, signed=(2, 4), extra=1)
    with pytest.raises(KernelImageError, match=f"plus its {sig_len + 40:#x}-byte signature trailer"):
        boot(b.path)


def test_spec_example_image_too_short(tmp_path: Path) -> None:
    """§13.4: stage 3 emulation must report the 1536-byte 'kernel' as invalid."""
    p = tmp_path / "ex.img"
    hand_built_spec_example(p)
    with pytest.raises(KernelImageError, match="image_len 0x600 is too short") as ei:
        boot(p)
    assert ei.value.where == "stage-3 parameters at 0x9000 field image_len"


def test_stage3_entry_without_loader(tmp_path: Path) -> None:
    b = build_disk(tmp_path / "d.img", [(0xA000, stage3_image())], psw=STAGE3_PSW)
    with pytest.raises(IplError, match="no LOAD component starts at 0x9000"):
        boot(b.path)
