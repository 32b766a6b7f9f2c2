"""The kernel's vmcoreinfo and utsname found in a dump's memory, as zgetdump finds them.

zgetdump (zdump/dfi_vmcoreinfo.c, dfi.c `utsname_init`) looks in the absolute
lowcore of every dump format, s390 and ELF alike:

1. the u64 at 0xE18 points to the kernel's `os_info` (page aligned, magic
   "OSINFOSZ", CKSM of everything from `version_major` on, seed 0, in `csum`);
   when it names a vmcoreinfo (`vmcoreinfo_size` != 0), that is the text;
2. else the u64 at 0xE0C points to an ELF note named "VMCOREINFO"; its text
   starts 24 bytes after the note (12-byte header, 12-byte padded name) and is
   `n_descsz` bytes long.

`SYMBOL(init_uts_ns)=<hex>` in that text points to the kernel's uts namespace:
the first 'L' in the 1024 bytes there starts a `struct new_utsname` (six
65-byte strings) whose sysname must be "Linux".  `-i` prints its nodename,
release and version; `-f elf` appends the text as a VMCOREINFO note.

`read(addr, n)` returns the bytes or None when [addr, addr + n) is not all memory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zipldump.formats.dump_superblock import cksm

LC_VMCORE_INFO = 0xE0C  # u64, unaligned (64-bit kernels)
LC_OS_INFO = 0xE18
OS_INFO_MAGIC = 0x4F53494E464F535A  # "OSINFOSZ"
OS_INFO_SIZE = 4096
OS_INFO_CSUM_FROM = 12  # offset of version_major: the checksum covers the rest
OS_INFO_VMCOREINFO = 0x20  # u64 addr, u64 size (after magic, csum, versions, crashkernel addr/size)
UTS_FIELD = 65
UTS_SIZE = 6 * UTS_FIELD
UTS_SEARCH = 1024

Reader = Callable[[int, int], bytes | None]


@dataclass(frozen=True)
class Utsname:
    sysname: str
    nodename: str
    release: str
    version: str
    machine: str
    domainname: str


def _u64(read: Reader, addr: int) -> int | None:
    raw = read(addr, 8)
    return None if raw is None or len(raw) < 8 else int.from_bytes(raw, "big")


def find_vmcoreinfo(read: Reader) -> bytes | None:
    """The vmcoreinfo text (without a trailing NUL), or None when the memory holds none."""
    addr = _u64(read, LC_OS_INFO)
    if addr is not None and addr % 4096 == 0:
        info = read(addr, OS_INFO_SIZE)
        if info is not None and len(info) == OS_INFO_SIZE and int.from_bytes(info[:8], "big") == OS_INFO_MAGIC:
            if int.from_bytes(info[8:12], "big") == cksm(info[OS_INFO_CSUM_FROM:], 0):
                vaddr, vsize = struct.unpack_from(">QQ", info, OS_INFO_VMCOREINFO)
                if vsize:
                    text = read(vaddr, vsize)
                    return None if text is None else text.split(b"\0", 1)[0]
    addr = _u64(read, LC_VMCORE_INFO)
    if not addr:
        return None
    head = read(addr, 12)
    if head is None:
        return None
    namesz, descsz, _ = struct.unpack(">III", head)
    name = read(addr + 12, min(namesz, 128))
    if name is None or name[:11] != b"VMCOREINFO\0":
        return None
    text = read(addr + 24, descsz)
    return None if text is None else text.split(b"\0", 1)[0]


def vmcoreinfo_value(text: bytes, key: str) -> str | None:
    """The value of `key=` (e.g. "SYMBOL(init_uts_ns)") up to the end of its line."""
    at = text.find(key.encode() + b"=")
    if at < 0:
        return None
    rest = text[at + len(key) + 1 :]
    return rest.split(b"\n", 1)[0].decode("ascii", "replace")


def find_utsname(read: Reader, text: bytes | None) -> Utsname | None:
    if text is None:
        return None
    value = vmcoreinfo_value(text, "SYMBOL(init_uts_ns)")
    if value is None:
        return None
    try:
        addr = int(value, 16)
    except ValueError:
        return None
    buf = read(addr, UTS_SEARCH)
    if buf is None:
        return None
    at = buf.find(b"L", 0, UTS_SEARCH - UTS_SIZE)
    if at < 0:
        return None
    raw = buf[at : at + UTS_SIZE]
    fields = [raw[i * UTS_FIELD : (i + 1) * UTS_FIELD].split(b"\0", 1)[0].decode("utf-8", "replace") for i in range(6)]
    if fields[0] != "Linux":
        return None
    return Utsname(*fields)


def build_vmcoreinfo_note(text: bytes) -> bytes:
    """The ELF note Linux keeps its vmcoreinfo in (what LC_VMCORE_INFO points to)."""
    name = b"VMCOREINFO\0\0"
    return struct.pack(">III", 11, len(text), 0) + name + text + bytes(-len(text) % 4)


def build_utsname(release: str, version: str, nodename: str = "(none)", machine: str = "s390x") -> bytes:
    """A struct new_utsname (390 bytes)."""
    return b"".join(s.encode()[:64].ljust(UTS_FIELD, b"\0") for s in ("Linux", nodename, release, version, machine, "(none)"))
