"""`zipldump install IMAGE` with no program options: the image's own zipl.conf, fstab,
BLS entries and /boot decide, as zipl on the running system.  Debian-style and
Fedora-style images are built with mke2fs -d (no mount) and checked with inspect."""

from __future__ import annotations

import hashlib
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from builders.images import (
    DEBIAN_KERNEL,
    FEDORA_VERSIONS,
    debian_image,
    fedora_image,
    fedora_options,
)
from builders.tools import have_tool

from zipldump.cli import main
from zipldump.disk.extfs import ExtFs
from zipldump.disk.partitions import read_partition_table
from zipldump.sim.payloads import kernel_image

pytestmark = pytest.mark.skipif(not have_tool("debugfs") or not have_tool("mke2fs"), reason="e2fsprogs missing")


def run_json(argv: list[str]) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue() or "{}")


def inspect(img: Path) -> dict:
    code, data = run_json(["-q", "inspect", str(img), "--json"])
    assert code == 0, data
    return data


def component_bytes(img: Path, comp: dict, bs: int = 512) -> bytes:
    with open(img, "rb") as fh:
        out = b""
        for ext in comp["extents"]:
            fh.seek(ext["block"] * bs)
            out += fh.read(ext["blocks"] * bs)
    return out


def parmline(img: Path, prog: dict) -> str:
    """The direct layout loads the command line at 0x50000 (zipl's parmline address)."""
    comp = next(c for c in prog["components"] if c["kind"] == "load" and c["address"] == 0x50000)
    return component_bytes(img, comp).split(b"\0", 1)[0].decode()


def fs_of(img: Path, number: int) -> ExtFs:
    p = read_partition_table(img).get(number)
    return ExtFs(img, p.start_bytes, p.size_bytes)


def test_debian_style_image(tmp_path: Path) -> None:
    img = debian_image(tmp_path)
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 0, res
    assert res["bootmap_file"] == "/boot/bootmap" and res["partition"]["number"] == 1
    data = inspect(img)
    assert data["valid"] and [p["index"] for p in data["programs"]] == [0]
    assert parmline(img, data["programs"][0]) == "root=/dev/vda1 console=ttysclp0"
    kernel = data["programs"][0]["components"][0]
    # past the parm area zipl patches (initrd address and size), the kernel file as it is
    assert component_bytes(img, kernel)[0x1000 : kernel["length"]] == kernel_image()[0x11000:]
    fs = fs_of(img, 1)
    st = fs.lstat("/boot/bootmap")
    assert st is not None and st.mode & 0o7777 == 0o600 and (st.uid, st.gid) == (0, 0)
    assert st.size < 1 << 20 and not fs.exists("/bootmap") and fs.fsck() == 0


def test_debian_kernel_update_reinstall(tmp_path: Path) -> None:
    """New kernel file, old one deleted, config edited: a second install boots the new one
    and frees the old bootmap only after block 0 points at the new one (file system clean)."""
    img = debian_image(tmp_path)
    assert main(["-q", "install", str(img), "-n"]) == 0
    fs = fs_of(img, 1)
    new = "6.1.0-19-s390x"
    newk = bytearray(kernel_image())
    newk[-16:] = b"new kernel 6.1.0"
    fs.write_file(f"/boot/vmlinuz-{new}", bytes(newk))
    fs.remove(f"/boot/vmlinuz-{DEBIAN_KERNEL}")
    conf = fs.read_file("/etc/zipl.conf").decode().replace(f"vmlinuz-{DEBIAN_KERNEL}", f"vmlinuz-{new}")
    fs.write_file("/etc/zipl.conf", conf.encode())
    assert main(["-q", "install", str(img), "-n"]) == 0
    data = inspect(img)
    kernel = data["programs"][0]["components"][0]
    assert component_bytes(img, kernel)[0x1000 : kernel["length"]] == bytes(newk[0x11000:])
    assert fs.fsck() == 0 and fs.listdir("/boot").count("bootmap") == 1


def test_fedora_style_image_bls_menu(tmp_path: Path) -> None:
    img = fedora_image(tmp_path)
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 0, res
    # /boot is partition 1 (fstab UUID=): its /bootmap is the image's /boot/bootmap
    assert res["partition"]["number"] == 1 and res["bootmap_file"] == "/bootmap"
    # zipl: highest version first, positions 1..3, default 1
    want = sorted(FEDORA_VERSIONS, key=lambda v: [int(x) for x in v.split("-")[0].split(".")], reverse=True)
    assert [p["name"] for p in res["programs"]] == [f"Fedora Linux ({v}) 39" for v in want]
    data = inspect(img)
    by_index = {p["index"]: p for p in data["programs"]}
    assert sorted(by_index) == [0, 1, 2, 3] and data["valid"]
    for pos, v in enumerate(want, 1):
        assert parmline(img, by_index[pos]) == fedora_options(v)
    assert by_index[0]["component_table"] == by_index[1]["component_table"]  # default = entry 1
    boot = fs_of(img, 1)
    assert boot.file_size("/bootmap") < 1 << 20 and boot.fsck() == 0 and fs_of(img, 2).fsck() == 0


def test_fedora_style_msdos_and_section_by_title(tmp_path: Path) -> None:
    img = fedora_image(tmp_path, table="msdos")
    v = FEDORA_VERSIONS[2]
    code, res = run_json(["install", str(img), f"Fedora Linux ({v}) 39", "-n", "-q", "--json"])
    assert code == 0, res
    assert [(p["position"], p["parmline"]) for p in res["programs"]] == [(0, fedora_options(v))]


def test_config_then_image_in_zipls_order(tmp_path: Path) -> None:
    """`install -c CONF IMAGE`: -c takes one file, IMAGE follows (zipl's order); -q after the command."""
    img = debian_image(tmp_path)
    kernel = tmp_path / "k"
    kernel.write_bytes(kernel_image())
    conf = tmp_path / "zipl.conf"
    conf.write_text("[defaultboot]\ndefault=a\n[a]\nimage=k\ntarget=1\nsecure=0\n")
    assert main(["install", "-c", str(conf), str(img), "-n", "-q"]) == 0
    assert main(["install", "-c", str(conf), str(img), "a", "-n", "-q", "--dry-run"]) == 0
    assert fs_of(img, 1).exists("/bootmap")


def test_reproducible_with_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same image and SOURCE_DATE_EPOCH give the same bytes: e2fsprogs' clock (inode,
    directory and superblock write times) follows it, so runs seconds apart agree."""
    import shutil
    import time

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    base = fedora_image(tmp_path)
    shas = []
    for name in ("a.img", "b.img"):
        img = shutil.copy(base, tmp_path / name)
        assert main(["-q", "install", str(img), "-n"]) == 0
        shas.append(hashlib.sha256(Path(img).read_bytes()).hexdigest())
        time.sleep(1.1)
    assert shas[0] == shas[1]
    st = fs_of(Path(img), 1).lstat("/bootmap")
    assert st is not None


def test_no_configuration_in_image(tmp_path: Path) -> None:
    from builders.images import Part, tree_image, write_tree

    img = tree_image(tmp_path / "x.img", [Part(None, write_tree(tmp_path / "t", {"etc/hostname": "x\n"}))])
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 2 and "holds a zipl configuration" in res["error"]["message"]


def test_ziplconf_names_a_file_inside_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = debian_image(tmp_path)
    fs = fs_of(img, 1)
    fs.write_file("/etc/other.conf", fs.read_file("/etc/zipl.conf").decode().replace("console=ttysclp0", "quiet").encode())
    monkeypatch.setenv("ZIPLCONF", "/etc/other.conf")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "other.conf").write_text("[host file]\n")  # never read
    monkeypatch.chdir(tmp_path)
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 0, res
    assert res["programs"][0]["parmline"] == "root=/dev/vda1 quiet"
    assert os.environ["ZIPLCONF"] == "/etc/other.conf"


def test_optional_section_with_missing_kernel_is_left_out(tmp_path: Path) -> None:
    img = debian_image(tmp_path)
    fs = fs_of(img, 1)
    conf = (
        "[defaultboot]\ndefaultauto\ntarget=/boot\n"
        f"[a]\nimage=/boot/vmlinuz-{DEBIAN_KERNEL}\n[gone]\nimage=/boot/vmlinuz-old\noptional=1\n"
        f"[c]\nimage=/vmlinuz\nparameters=via-link\n"
    )
    fs.write_file("/etc/zipl.conf", conf.encode())
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 0, res
    assert [(p["position"], p["name"]) for p in res["programs"]] == [(1, "a"), (3, "c")]
    fs.write_file("/etc/zipl.conf", conf.replace("defaultauto", "defaultauto\ndefault=gone").encode())
    code, res = run_json(["install", str(img), "-n", "-q", "--json"])
    assert code == 2 and "cannot be left out" in res["error"]["message"]
