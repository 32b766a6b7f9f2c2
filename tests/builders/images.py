"""OS-style disk images built the way image builders do: file trees written by the
test, turned into ext4 file systems with `mke2fs -d` at a partition's offset (no mount)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zipldump.disk.extfs import find_tool
from zipldump.disk.partitions import PartSpec, make_disk
from zipldump.sim.payloads import kernel_image

MiB = 1 << 20


@dataclass
class Part:
    size: int | None  # None: the rest of the disk
    tree: Path | None = None  # None: no file system
    uuid: str | None = None
    label: str | None = None


def tree_image(path: Path, parts: list[Part], *, table: str = "msdos", size: int = 96 * MiB) -> Path:
    """A disk image whose partitions hold ext4 file systems made from directory trees."""
    layout = make_disk(path, size, label=table, parts=[PartSpec(p.size) for p in parts])
    for number, part in enumerate(parts, 1):
        if part.tree is None:
            continue
        p = layout.get(number)
        cmd = [find_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(part.tree), "-E", f"offset={p.start_bytes}"]
        cmd += ["-U", part.uuid] if part.uuid else []
        cmd += ["-L", part.label] if part.label else []
        env = dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000")
        subprocess.run([*cmd, str(path), str(p.size_bytes // 4096)], check=True, capture_output=True, env=env)
    return path


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Files (and "->target" symlinks) under `root`; str values are text, "->x" makes a link."""
    for name, data in files.items():
        target = root / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str) and data.startswith("->"):
            os.symlink(data[2:], target)
        elif isinstance(data, str):
            target.write_text(data)
        else:
            target.write_bytes(data)
    return root


ROOT_UUID = "11111111-2222-3333-4444-555555555555"
BOOT_UUID = "bbbbbbbb-2222-3333-4444-555555555555"
DEBIAN_KERNEL = "6.1.0-18-s390x"
FEDORA_VERSIONS = ("6.5.6-300.fc39.s390x", "6.5.10-200.fc39.s390x", "6.4.15-200.fc38.s390x")


def debian_image(tmp: Path, name: str = "debian.img", *, kernel: str = DEBIAN_KERNEL) -> Path:
    """One ext4 root: /etc/zipl.conf with target=/boot and image=/boot/vmlinuz-X, as Debian's zipl.conf."""
    tree = write_tree(
        tmp / f"{name}.tree",
        {
            f"boot/vmlinuz-{kernel}": kernel_image(),
            f"boot/initrd.img-{kernel}": b"R" * 5000,
            "vmlinuz": f"->boot/vmlinuz-{kernel}",
            "etc/fstab": f"# <file system> <mount point> <type> <options> <dump> <pass>\nUUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\n",
            "etc/zipl.conf": (
                "[defaultboot]\ndefault=debian\n\n[debian]\ntarget=/boot\n"
                f"image=/boot/vmlinuz-{kernel}\nramdisk=/boot/initrd.img-{kernel}\n"
                'parameters="root=/dev/vda1 console=ttysclp0"\n'
            ),
        },
    )
    return tree_image(tmp / name, [Part(None, tree, ROOT_UUID)])


def fedora_options(version: str) -> str:
    return f"root=UUID={ROOT_UUID} ro console=ttysclp0 kver={version}"


def fedora_image(tmp: Path, name: str = "fedora.img", *, table: str = "gpt") -> Path:
    """/boot on its own ext4 (BLS entries, kernels), root with zipl.conf and fstab, as Fedora/RHEL."""
    boot: dict[str, bytes | str] = {}
    for i, v in enumerate(FEDORA_VERSIONS):
        boot[f"vmlinuz-{v}"] = kernel_image()
        boot[f"initramfs-{v}.img"] = bytes([0x41 + i]) * 3000
        boot[f"loader/entries/0123abcd-{v}.conf"] = (
            f"title Fedora Linux ({v}) 39\nversion {v}\nlinux /vmlinuz-{v}\ninitrd /initramfs-{v}.img\n"
            f"options {fedora_options(v)}\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class fedora\n"
        )
    boot_tree = write_tree(tmp / f"{name}.boot", boot)
    root_tree = write_tree(
        tmp / f"{name}.root",
        {
            "boot/.keep": "",
            "etc/fstab": f"UUID={ROOT_UUID} / ext4 defaults 1 1\nUUID={BOOT_UUID} /boot ext4 defaults 1 2\n",
            "etc/zipl.conf": "[defaultboot]\ndefaultauto\nprompt=1\ntimeout=5\nsecure=auto\ntarget=/boot\n",
        },
    )
    return tree_image(tmp / name, [Part(40 * MiB, boot_tree, BOOT_UUID), Part(None, root_tree, ROOT_UUID)], table=table)
