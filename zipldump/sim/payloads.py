"""Generated demo payloads: a stand-in zfcpdump kernel image and its initramfs.

These are zipldump simulator payloads, not runnable programs.  The kernel image
has the real s390 Linux image layout (spec zipl-scsi-format.md §10) so that the
installer, the inspector, the firmware model and stage 3 treat it exactly like
a real zfcpdump kernel:

* 0x00000  IPL PSW and the two CCWs of a CCW-IPL-able image, EBCDIC blank fill;
* 0x00200  where `iplstart` would be: a text label instead of code;
* 0x10000  `startup`: a few real instructions that only load a disabled-wait PSW
           (so a real machine or QEMU that starts it stops at once, wait code 0x5A1D);
* 0x10008  "S390EP" and the entry-point count;
* 0x10400  parm area (ipl_device, initrd_start/size, oldmem, kernel_version pointer,
           max_command_line_size = 4096 at 0x10430);
* 0x10480  default command line "root=/dev/ram0 ro" (what head.S ships);
* the rest up to the image size is a labelled filler pattern.

A 16 KiB stage3.bin stand-in (disabled wait at 0xA000, zipl's trailer at
0xDFE0) lets the installer write zipl's stage-3 layout.

The initramfs is built from a gen_init_cpio list in the style of the original
zfcpdump documentation (device nodes /dev/sda1..15, /init, /sbin/e2fsck); its
/init and /sbin/e2fsck are text files that say what they stand for.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from zipldump import __version__
from zipldump.formats.kernel_image import (
    COMMAND_LINE,
    EP_OFFSET,
    EP_STRING,
    IMAGE_LOAD_ADDRESS,
    KERNEL_VERSION,
    MAX_COMMAND_LINE_SIZE,
    PARMAREA,
)

LABEL = b"zipldump simulator payload: zfcpdump stand-in kernel image. NOT RUNNABLE s390 CODE."
DEFAULT_KERNEL_SIZE = 0x40000  # 256 KiB: small, above zipl's 0x10438 minimum and 64 KiB wrap
KERNEL_COMMAND_LINE_SIZE = 4096  # modern CONFIG_COMMAND_LINE_SIZE default, stored at 0x10430
DEFAULT_COMMAND_LINE = b"root=/dev/ram0 ro"
DISABLED_WAIT_CODE = 0x5A1D
VERSION_STRING_ADDR = 0x10100
LABEL_ADDR = 0x10200

# The two format-0 CCWs every s390 image carries at 0x08 (spec §10).
_IPL_CCWS = bytes.fromhex("0200001860000050" "0200006860000050")
_IPLSTART = 0x200

# startup at 0x10000; entry point count at 0x1000E..F; kdump entry at 0x10010.
#   0x10000 basr %r13,0        r13 = 0x10002
#   0x10002 j    0x10018
#   0x10006 nopr
#   0x10008 "S390EP" 00 01
#   0x10010 j    0x10018       (kdump entry)
#   0x10014 nopr; nopr
#   0x10018 lpsw 0x1e(%r13)    -> disabled-wait PSW at 0x10020
#   0x1001c nopr; nopr
#   0x10020 PSW 000A0000 0000 5A1D
_STARTUP = (
    bytes.fromhex("0dd0" "a7f4000b" "0700")
    + EP_STRING
    + b"\x00\x01"
    + bytes.fromhex("a7f40004" "07000700" "8200d01e" "07000700")
    + struct.pack(">Q", 0x000A000000000000 | DISABLED_WAIT_CODE)
)
assert len(_STARTUP) == 0x28
assert _STARTUP[EP_OFFSET - IMAGE_LOAD_ADDRESS :][:6] == EP_STRING


def kernel_image(size: int = DEFAULT_KERNEL_SIZE) -> bytes:
    """The stand-in kernel image file (whole file, offset = memory address)."""
    if size < COMMAND_LINE + KERNEL_COMMAND_LINE_SIZE or size % 0x1000:
        raise ValueError(f"kernel image size {size:#x} must be a multiple of 4 KiB and hold the command line area")
    img = bytearray(_filler(size))
    # CCW IPL header: PSW (31-bit, address iplstart), two CCWs, EBCDIC blanks to 0x4F.
    img[0:8] = struct.pack(">II", 0x00080000, 0x80000000 | _IPLSTART)
    img[8:0x18] = _IPL_CCWS
    img[0x18:0x50] = b"\x40" * 0x38
    img[0x50:_IPLSTART] = bytes(_IPLSTART - 0x50)
    _put_text(img, _IPLSTART, LABEL)
    # Startup code, entry marker and the labelled version string.
    img[IMAGE_LOAD_ADDRESS : IMAGE_LOAD_ADDRESS + 0x100] = _STARTUP.ljust(0x100, b"\0")
    version = f"zipldump-sim {__version__} zfcpdump stand-in".encode()
    img[VERSION_STRING_ADDR:LABEL_ADDR] = bytes(LABEL_ADDR - VERSION_STRING_ADDR)
    _put_text(img, VERSION_STRING_ADDR, version)
    img[LABEL_ADDR:PARMAREA] = bytes(PARMAREA - LABEL_ADDR)
    _put_text(img, LABEL_ADDR, LABEL)
    # Parm area: all zero except the version pointer and the command line size.
    img[PARMAREA:COMMAND_LINE] = bytes(COMMAND_LINE - PARMAREA)
    struct.pack_into(">Q", img, KERNEL_VERSION, VERSION_STRING_ADDR)
    struct.pack_into(">Q", img, MAX_COMMAND_LINE_SIZE, KERNEL_COMMAND_LINE_SIZE)
    img[COMMAND_LINE : COMMAND_LINE + KERNEL_COMMAND_LINE_SIZE] = bytes(KERNEL_COMMAND_LINE_SIZE)
    img[COMMAND_LINE : COMMAND_LINE + len(DEFAULT_COMMAND_LINE)] = DEFAULT_COMMAND_LINE
    return bytes(img)


def _put_text(img: bytearray, at: int, text: bytes) -> None:
    img[at : at + len(text) + 1] = text + b"\0"


def _filler(size: int) -> bytes:
    """A filler that names itself every 64 bytes, so a hex dump of any part says what it is."""
    unit = (b"[zipldump simulator payload filler - not code] ").ljust(64, b".")
    return (unit * (size // len(unit) + 1))[:size]


# --- stage 3 loader stand-in -------------------------------------------------------
STAGE3_SIZE = 0x4000  # 0xA000..0xDFFF, like zipl's stage3.bin (spec §9)
STAGE3_LABEL = b"zipldump simulator payload: zipl stage 3 stand-in. NOT RUNNABLE s390 CODE."
# zipl >= 2.24 trailer at 0xDFE0 (file offset 0x3FE0), spec §9.
STAGE3_TRAILER = struct.pack(">QQQQ", 0x0000C00000000000, 0x000800008000A000, 0xA000, 0x000000207A49504C)
#   0xA000 basr %r13,0 ; 0xA002 lpsw 0xe(%r13) -> disabled-wait PSW at 0xA010
_STAGE3_CODE = bytes.fromhex("0dd0" "8200d00e" "070007000700" "07000700") + struct.pack(
    ">Q", 0x000A000000000000 | DISABLED_WAIT_CODE
)
assert len(_STAGE3_CODE) == 0x18


def stage3_image() -> bytes:
    """16 KiB stand-in for stage3.bin: a disabled wait at 0xA000, a label, zipl's trailer.

    The simulator never runs it: sim/stage3.py applies stage 3's effects."""
    img = bytearray(STAGE3_SIZE)
    img[0 : len(_STAGE3_CODE)] = _STAGE3_CODE
    _put_text(img, 0x40, STAGE3_LABEL)
    img[STAGE3_SIZE - 32 :] = STAGE3_TRAILER
    return bytes(img)


INIT_TEXT = (
    "zipldump simulator payload: stand-in for the zfcpdump /init program.\n"
    "Not runnable. In the simulator, zipldump's reference dump writers do what\n"
    "this program would do: read zcore/mem and write the dump.\n"
)
E2FSCK_TEXT = "zipldump simulator payload: stand-in for /sbin/e2fsck. Not runnable.\n"


def initramfs_list(init_path: str, e2fsck_path: str) -> str:
    """gen_init_cpio list like the one in the zfcpdump documentation (the seed)."""
    lines = [
        "# zipldump simulator payload: zfcpdump stand-in initramfs",
        "dir /dev 755 0 0",
        "nod /dev/console 644 0 0 c 5 1",
        "nod /dev/null 644 0 0 c 1 3",
    ]
    lines += [f"nod /dev/sda{i} 644 0 0 b 8 {i}" for i in range(1, 16)]
    lines += [
        "dir /proc 755 0 0",
        "dir /sys 755 0 0",
        "dir /mnt 755 0 0",
        "dir /sbin 755 0 0",
        f"file /init {init_path} 755 0 0",
        f"file /sbin/e2fsck {e2fsck_path} 755 0 0",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DemoPayloads:
    """Paths of the written payload files and facts about them."""

    image: Path
    ramdisk: Path
    stage3: Path
    cpio_list: Path
    image_size: int
    ramdisk_size: int
    image_sha256: str
    ramdisk_sha256: str

    def to_json(self) -> dict[str, object]:
        return {
            "image": str(self.image),
            "ramdisk": str(self.ramdisk),
            "stage3": str(self.stage3),
            "image_size": self.image_size,
            "ramdisk_size": self.ramdisk_size,
            "image_sha256": self.image_sha256,
            "ramdisk_sha256": self.ramdisk_sha256,
        }


def write_demo_payloads(directory: str | os.PathLike[str], *, kernel_size: int = DEFAULT_KERNEL_SIZE) -> DemoPayloads:
    """Write zfcpdump-image, zfcpdump-initrd (and its list and source files) and stage3.bin into `directory`."""
    from zipldump.disk.initramfs import build_initramfs

    out = Path(directory)
    src = out / "zfcpdump-initramfs"
    src.mkdir(parents=True, exist_ok=True)
    init = src / "init"
    e2fsck = src / "e2fsck"
    init.write_text(INIT_TEXT)
    e2fsck.write_text(E2FSCK_TEXT)
    cpio_list = out / "zfcpdump-initramfs.list"
    cpio_list.write_text(initramfs_list("zfcpdump-initramfs/init", "zfcpdump-initramfs/e2fsck"))
    image_bytes = kernel_image(kernel_size)
    ramdisk_bytes = build_initramfs(cpio_list.read_text(), base_dir=out, compress="gzip")
    image = out / "zfcpdump-image"
    ramdisk = out / "zfcpdump-initrd"
    _write_atomic(image, image_bytes)
    _write_atomic(ramdisk, ramdisk_bytes)
    stage3 = out / "stage3.bin"
    _write_atomic(stage3, stage3_image())
    return DemoPayloads(
        image=image,
        ramdisk=ramdisk,
        stage3=stage3,
        cpio_list=cpio_list,
        image_size=len(image_bytes),
        ramdisk_size=len(ramdisk_bytes),
        image_sha256=hashlib.sha256(image_bytes).hexdigest(),
        ramdisk_sha256=hashlib.sha256(ramdisk_bytes).hexdigest(),
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
