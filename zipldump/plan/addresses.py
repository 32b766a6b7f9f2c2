"""Component load addresses (spec §8.4) and the HSA limit for dump programs (§8.5).

Pure arithmetic.  `assign_addresses` follows current zipl (>= 2.20): kernel at
0x10000 reserving ALIGN(size, 0x1000), parmline reserving 0x10000 at 0x1000
alignment, ramdisk at 0x10000 alignment, each unspecified component placed first-fit
above the ones before it.  With defaults that gives
parm = 0x10000 + ALIGN(kernel, 0x1000) and ramdisk = ALIGN(parm + 0x10000, 0x10000).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from zipldump.errors import HsaLimitError, LayoutError
from zipldump.formats.kernel_image import IMAGE_LOAD_ADDRESS

ADDRESS_LIMIT = 0x80000000  # 31-bit, for IPL and zfcpdump alike
MIN_ADDRESS = 0x10000  # zipl's lowest component address (the first 64 KiB belong to lowcore and loader)
PAGE_ALIGN = 0x1000  # MAXIMUM_PHYSICAL_BLOCKSIZE
RAMDISK_ALIGN = 0x10000
MAXIMUM_PARMLINE_SIZE = 0x10000  # reserved for the parmline since zipl 2.20
LEGACY_PARMLINE_SIZE = 0x380  # reserved before 2.20 (rounds up to 0x1000)

KERNEL = "kernel image"
PARMLINE = "parmline"
RAMDISK = "initial ramdisk"


def align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Reservation:
    """A component's reserved address range [address, address + reserve)."""

    name: str
    address: int
    reserve: int

    @property
    def end(self) -> int:
        return self.address + self.reserve


@dataclass(frozen=True)
class AddressPlan:
    image_addr: int
    parm_addr: int | None
    ramdisk_addr: int | None
    reservations: tuple[Reservation, ...]


def _request(name: str, size: int, addr: int | None, alignment: int) -> dict[str, Any]:
    return {"name": name, "reserve": align(size, PAGE_ALIGN), "address": addr, "align": alignment}


def assign_addresses(
    kernel_size: int,
    parmline_size: int | None,
    ramdisk_size: int | None,
    *,
    image_addr: int = IMAGE_LOAD_ADDRESS,
    parm_addr: int | None = None,
    ramdisk_addr: int | None = None,
    limit: int = ADDRESS_LIMIT,
    parmline_reserve: int = MAXIMUM_PARMLINE_SIZE,
) -> AddressPlan:
    """Place kernel, parmline (if any) and ramdisk (if any) the way zipl does.

    Raises LayoutError with zipl's messages for a component below 0x10000, past
    `limit`, overlapping another, or not fitting anywhere.
    """
    reqs = [_request(KERNEL, kernel_size, image_addr, PAGE_ALIGN)]
    if parmline_size is not None:
        r = _request(PARMLINE, max(parmline_size, parmline_reserve), parm_addr, PAGE_ALIGN)
        reqs.append(r)
    if ramdisk_size is not None:
        reqs.append(_request(RAMDISK, ramdisk_size, ramdisk_addr, RAMDISK_ALIGN))

    placed = [Reservation(str(r["name"]), int(r["address"]), int(r["reserve"])) for r in reqs if r["address"] is not None]
    for res in placed:
        if res.address < MIN_ADDRESS:
            raise LayoutError(
                f"Component '{res.name}' falls below available address space (limit is {MIN_ADDRESS:#010x})",
                where=f"component '{res.name}' address {res.address:#x}",
            )
        if res.end > limit:
            raise LayoutError(
                f"Component '{res.name}' exceeds available address space (limit is {limit:#010x})",
                where=f"component '{res.name}' {res.address:#010x}-{res.end - 1:#010x}",
            )
    ordered = sorted(placed, key=lambda r: r.address)
    for a, b in pairwise(ordered):
        if a.end > b.address:
            raise LayoutError(
                f"Components '{a.name}' and '{b.name}' overlap",
                where=f"{a.address:#010x}-{a.end - 1:#010x} / {b.address:#010x}-{b.end - 1:#010x}",
            )
    # First fit for the unspecified ones, in zipl's order (parmline, then ramdisk).
    for r in reqs:
        if r["address"] is not None:
            continue
        name, size, alignment = str(r["name"]), int(r["reserve"]), int(r["align"])
        candidate = align(MIN_ADDRESS, alignment)
        for other in sorted(placed, key=lambda x: x.address):
            if candidate + size <= other.address:
                break
            candidate = max(candidate, align(other.end, alignment))
        if candidate + size > limit:
            raise LayoutError(
                f"Could not fit component '{name}' into available address space (limit is {limit:#010x})",
                where=f"component '{name}' ({size:#x} bytes)",
            )
        res = Reservation(name, candidate, size)
        placed.append(res)
        r["address"] = candidate
    by_name = {r.name: r.address for r in placed}
    return AddressPlan(
        image_addr=by_name[KERNEL],
        parm_addr=by_name.get(PARMLINE),
        ramdisk_addr=by_name.get(RAMDISK),
        reservations=tuple(sorted(placed, key=lambda r: r.address)),
    )


@dataclass(frozen=True)
class LoadedRange:
    """Bytes a LOAD entry puts into memory: [address, address + length)."""

    name: str
    address: int
    length: int

    @property
    def end(self) -> int:
        return self.address + self.length


def hsa_overrun(address: int, length: int, hsa_size: int, *, block_size: int = 1) -> int | None:
    """The HSA-limit rule, for the installer, inspect, the firmware model and stage 3 alike.

    A load of `length` bytes at `address` fills whole blocks; returns the end of
    what it fills when that lies above `hsa_size` (ending exactly there is fine), else None.
    """
    end = address + align(length, block_size)
    return end if end > hsa_size else None


def check_hsa(ranges: list[LoadedRange], hsa_size: int, *, program: str = "", block_size: int = 1) -> None:
    """A SCSI dump program must lie entirely in the HSA (memory the machine saved).

    The firmware loads whole blocks, so a component's loaded end is its address plus
    its length rounded up to `block_size`.  For zipl's own addresses (multiples of
    0x1000) that changes nothing; an explicit zipl.conf address ("file,ADDR") need
    not be aligned, and then the last block may reach past the byte-exact end.
    """
    for r in ranges:
        end = hsa_overrun(r.address, r.length, hsa_size, block_size=block_size)
        if end is not None:
            raise HsaLimitError(
                f"component '{r.name}' {r.address:#010x}-{end - 1:#010x} ends above the HSA limit {hsa_size:#010x}"
                + (f" (the last {block_size}-byte block loads up to {end - 1:#010x})" if end != r.end else ""),
                where=f"dump program '{program}'" if program else None,
            )
