"""zipl/image_root.py: the image seen as a chroot, and hostile images that try to leave it."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders.images import BOOT_UUID, ROOT_UUID, Part, tree_image, write_tree
from builders.tools import have_tool

from zipldump.errors import UsageError
from zipldump.zipl.image_root import MAX_SYMLINKS, ImageRoot

pytestmark = pytest.mark.skipif(not have_tool("debugfs") or not have_tool("mke2fs"), reason="e2fsprogs missing")
CONF = "[defaultboot]\ndefault=a\n[a]\nimage=/boot/k\ntarget=/boot\n"


def image(tmp: Path, root: dict, boot: dict | None = None, *, table: str = "msdos", label: str | None = None) -> Path:
    parts = []
    if boot is not None:
        parts.append(Part(16 << 20, write_tree(tmp / "boot", boot), BOOT_UUID, label))
    parts.append(Part(None, write_tree(tmp / "root", root), ROOT_UUID))
    return tree_image(tmp / "img", parts, table=table, size=64 << 20)


def test_symlinks_and_dotdot_stay_inside(tmp_path: Path) -> None:
    host_secret = tmp_path / "secret"
    host_secret.write_text("host file")
    img = image(tmp_path, {
        "etc/zipl.conf": CONF,
        "etc/passwd": "image passwd\n",
        "a/abs": "->/etc/passwd",
        "a/up": "->../../../../../etc/passwd",
        "a/host": f"->{host_secret}",
        "a/loop1": "->loop2",
        "a/loop2": "->loop1",
    })
    root = ImageRoot.open(img)
    for link in ("/a/abs", "/a/up", "/../../a/../etc/passwd"):
        assert root.read_file(link, 100, "file", link) == b"image passwd\n"
    assert root.lookup("/a/host") is None  # the host path, looked up in the image: absent
    with pytest.raises(UsageError, match=f"more than {MAX_SYMLINKS} symbolic links"):
        root.lookup("/a/loop1")


def test_fstab_places_boot_by_each_key(tmp_path: Path) -> None:
    boot = {"k": "kernel on boot"}
    for spec in (f"UUID={BOOT_UUID}", "LABEL=BOOT", f"/dev/disk/by-uuid/{BOOT_UUID}", "/dev/vda1", "/dev/disk/by-label/BOOT"):
        d = tmp_path / spec.replace("/", "_")
        d.mkdir()
        img = image(d, {"etc/zipl.conf": CONF, "etc/fstab": f"{spec} /boot ext4 defaults 0 2\n", "boot/.x": ""}, boot, label="BOOT")
        root = ImageRoot.open(img)
        assert root.read_file("/boot/k", 100, "k", spec) == b"kernel on boot", spec
        assert root.directory("/boot", "t", spec).mount.partition == 1


def test_partuuid_msdos_and_gpt(tmp_path: Path) -> None:
    for table in ("msdos", "gpt"):
        d = tmp_path / table
        d.mkdir()
        img = image(d, {"etc/zipl.conf": CONF, "boot/.x": ""}, {"k": "x"}, table=table)
        root = ImageRoot.open(img)
        assert root.table is not None
        p = root.table.get(1)
        partuuid = p.uuid if table == "gpt" else f"{int(root.table.disk_id, 16):08x}-01"
        assert root.partition_of_device(f"PARTUUID={partuuid.upper()}", "t") == 1


@pytest.mark.parametrize("line", ["/dev/mapper/vg-boot /boot ext4 defaults 0 2", "UUID=0000 /boot ext4 defaults", "LABEL=nope /boot ext4"])
def test_unmappable_fstab_device_names_the_line(tmp_path: Path, line: str) -> None:
    img = image(tmp_path, {"etc/zipl.conf": CONF, "etc/fstab": f"# comment\n\n{line}\n"}, {"k": "x"})
    with pytest.raises(UsageError) as ei:
        ImageRoot.open(img)
    assert ei.value.where == "/etc/fstab:3"


def test_boot_on_xfs_is_refused_naming_the_type(tmp_path: Path) -> None:
    img = image(tmp_path, {"etc/zipl.conf": CONF, "etc/fstab": "UUID=x /boot xfs defaults 0 2\n"})
    root = ImageRoot.open(img)
    with pytest.raises(UsageError, match="xfs") as ei:
        root.lookup("/boot/k")
    assert ei.value.where == "/etc/fstab:1"


def test_config_search_order_and_root_choice(tmp_path: Path) -> None:
    img = image(tmp_path, {"etc/zipl.conf": CONF, "run/zipl/zipl.conf": CONF, "lib/s390-tools/zipl.conf": CONF}, {"k": "x"})
    root = ImageRoot.open(img)
    assert root.root_partition == 2 and root.find_config(None) == "/run/zipl/zipl.conf"
    assert root.find_config("/lib/s390-tools/zipl.conf") == "/lib/s390-tools/zipl.conf"
    with pytest.raises(UsageError, match="ZIPLCONF"):
        root.find_config("/nope")
    other = ImageRoot.open(img, root=1)  # --root is obeyed: partition 1 holds no configuration
    with pytest.raises(UsageError, match="no zipl configuration"):
        other.find_config(None)
    with pytest.raises(UsageError, match="--root 5"):
        ImageRoot.open(img, root=5)


def test_sizes_read_from_the_image_are_bounded(tmp_path: Path) -> None:
    img = image(tmp_path, {"etc/zipl.conf": CONF, "etc/fstab": "#" * ((1 << 20) + 10)})
    with pytest.raises(UsageError, match="more than"):
        ImageRoot.open(img)
