"""What happens between the loader's EXECUTE and the kernel's first instruction (spec §9, §10).

Two layouts are modelled:

* **stage 3** (what zipl >= 2.9 writes): LOAD at 0xA000 (the loader), LOAD at
  0x9000 (`struct stage3_parms`), EXECUTE 0x000800008000A000.  `run_stage3`
  applies stage 3's effects instead of running its code: move the kernel image
  down by 64 KiB, store IPL_DEVICE, copy the command line (limit from 0x10430,
  or 896), store INITRD_START/INITRD_SIZE, store the load PSW at 0 and start it.
* **direct** (no stage 3): EXECUTE 0x0008000080010000 and a kernel whose parm
  area was written on disk; the loader stored the PSW at 0 already.

In both cases the kernel image in storage is then checked (KernelImageError):
"S390EP" at 0x10008, a sane parm area, a NUL-terminated command line within
the kernel's limit, an initrd that lies inside loaded storage and, for a dump
IPL, below the HSA limit.  The signature-trailer rule (zipl.rules.holds) and
the HSA limit (plan.addresses.hsa_overrun) are inspect's and the loader's too.  Where real stage 3 truncates a too long command line
silently (strlcpy), the model refuses it: the dump kernel would lose parameters.

The result is a `KernelStart`: the command line the dump kernel sees, the
initrd range and the entry address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zipldump.errors import IplError, KernelImageError
from zipldump.formats.component_table import (
    LEGACY_STAGE3_PSWS,
    PSW_LOAD,
    STAGE3_ENTRY,
    psw_address,
)
from zipldump.formats.kernel_image import (
    COMMAND_LINE,
    EP_OFFSET,
    EP_STRING,
    IMAGE_ENTRY_KDUMP,
    IMAGE_LOAD_ADDRESS,
    INITRD_SIZE,
    INITRD_START,
    IPL_DEVICE,
    KERNEL_HEADER_SIZE,
    MAX_COMMAND_LINE_SIZE,
    PARMAREA,
    ParmArea,
    command_line_limit,
)
from zipldump.formats.lowcore import LC_IPL_PSW, LC_IPLDEV, LC_SUBCHANNEL_ID
from zipldump.formats.stage3_params import (
    FLAG_KDUMP,
    NO_PARMLINE,
    STAGE3_LOAD_ADDRESS,
    STAGE3_PARAMS_ADDRESS,
    Stage3ParamsLegacy,
)
from zipldump.plan.addresses import hsa_overrun
from zipldump.sim.firmware import LoadResult
from zipldump.zipl.rules import holds

if TYPE_CHECKING:
    from zipldump.sim.interfaces import MachineView
    from zipldump.sim.storage import Storage

LOAD_PSW = PSW_LOAD | IMAGE_LOAD_ADDRESS  # 0x0008000080010000
CHUNK = 1 << 20
MAX_COMMAND_LINE_LIMIT = 1 << 20  # CONFIG_COMMAND_LINE_SIZE range ends at 1 MiB


@dataclass
class KernelStart:
    """The state the dump kernel starts in."""

    layout: str  # "stage3" or "direct"
    psw: int
    entry: int
    command_line: str
    command_line_limit: int  # bytes including the NUL
    initrd_start: int
    initrd_size: int
    ipl_device: int
    kernel_version: str | None
    image_start: int
    image_end: int
    parm_addr: int | None = None  # stage 3 only: where the parmline component was
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "psw": f"{self.psw:016x}",
            "entry": self.entry,
            "command_line": self.command_line,
            "command_line_limit": self.command_line_limit,
            "initrd_start": self.initrd_start,
            "initrd_size": self.initrd_size,
            "ipl_device": self.ipl_device,
            "kernel_version": self.kernel_version,
            "image": [self.image_start, self.image_end],
            "notes": self.notes,
        }


def _u64(storage: Storage, addr: int) -> int:
    return int.from_bytes(storage.read(addr, 8), "big")


def is_stage3_layout(load: LoadResult) -> bool:
    return (
        load.entry == STAGE3_ENTRY
        and load.component_at(STAGE3_LOAD_ADDRESS) is not None
        and load.component_at(STAGE3_PARAMS_ADDRESS) is not None
    )


def run_stage3(machine: MachineView, load: LoadResult) -> KernelStart:
    """Apply stage 3 (or accept the direct layout), then check the kernel image in storage."""
    storage = machine.storage
    if is_stage3_layout(load):
        return _stage3(machine, storage, load)
    if load.psw in LEGACY_STAGE3_PSWS:
        raise IplError(
            f"EXECUTE PSW {load.psw:016x} starts a pre-2.9 zipl stage 3 with parameters inside the loader; "
            "that layout is not modelled",
            where="component table EXECUTE",
        )
    if load.entry == STAGE3_ENTRY:
        missing = [f"{a:#x}" for a in (STAGE3_LOAD_ADDRESS, STAGE3_PARAMS_ADDRESS) if load.component_at(a) is None]
        raise IplError(
            f"EXECUTE starts stage 3 at 0xa000, but no LOAD component starts at {' and '.join(missing)}",
            where="component table EXECUTE",
        )
    return _direct(machine, storage, load)


def _stage3(machine: MachineView, storage: Storage, load: LoadResult) -> KernelStart:
    p = Stage3ParamsLegacy.parse(storage.read(STAGE3_PARAMS_ADDRESS, Stage3ParamsLegacy.sizeof()))
    where = f"stage-3 parameters at {STAGE3_PARAMS_ADDRESS:#x}"
    notes: list[str] = []
    if p.flags & FLAG_KDUMP:
        raise IplError("stage-3 flags ask for kdump; only zfcpdump (SCSI dump) programs are modelled", where=f"{where} field flags")
    # 1. (secure boot is not modelled.)  2. Relocate the image.
    kernel = load.component_at(p.image_addr)
    if kernel is None:
        raise KernelImageError(f"no LOAD component starts at image_addr {p.image_addr:#x}", where=f"{where} field image_addr")
    if p.image_len < KERNEL_HEADER_SIZE + (EP_OFFSET - IMAGE_LOAD_ADDRESS) + len(EP_STRING):
        raise KernelImageError(
            f"image_len {p.image_len:#x} is too short for an s390 kernel image (it must extend past the "
            f"64 KiB IPL header and the 'S390EP' marker at {EP_OFFSET:#x})",
            where=f"{where} field image_len",
        )
    # A signed kernel: image_len is the file's stat() size, the LOAD holds it without
    # the signature trailer (spec §8.3, §8.9).
    if not holds(kernel.length, kernel.signed_trailer, p.image_len):
        signed = f" plus its {kernel.signed_trailer:#x}-byte signature trailer" if kernel.signed_trailer else ""
        raise KernelImageError(
            f"image_len {p.image_len:#x} is larger than the kernel component loaded at {p.image_addr:#x} "
            f"({kernel.length:#x} bytes{signed})",
            where=f"{where} field image_len",
        )
    # Real stage 3 moves image_len - 64 KiB bytes; the signature trailer it would move
    # was never loaded, so the model moves only what the kernel component holds.
    loaded = min(p.image_len, kernel.length)
    if loaded < KERNEL_HEADER_SIZE + (EP_OFFSET - IMAGE_LOAD_ADDRESS) + len(EP_STRING):
        raise KernelImageError(
            f"the kernel component loaded at {p.image_addr:#x} ({kernel.length:#x} bytes, without its "
            f"{kernel.signed_trailer:#x}-byte signature trailer) is too short for an s390 kernel image",
            where=f"{where} field image_len",
        )
    _memmove(storage, p.image_addr, p.image_addr + KERNEL_HEADER_SIZE, loaded - KERNEL_HEADER_SIZE)
    image_start, image_end = p.image_addr, p.image_addr + loaded - KERNEL_HEADER_SIZE
    # The kernel's parm area sits at fixed addresses; stage 3 writes it there.
    _check_ep(storage)
    # 3. IPL device from the subchannel id the loader left at 0xB8.
    ipl_device = int.from_bytes(storage.read(LC_SUBCHANNEL_ID, 2), "big")
    storage.write(IPL_DEVICE, ipl_device.to_bytes(8, "big"))
    storage.write(LC_IPLDEV, ipl_device.to_bytes(4, "big"))
    # 4. Command line.
    limit_raw = _u64(storage, MAX_COMMAND_LINE_SIZE)
    limit = _check_limit(limit_raw)
    if p.parm_addr != NO_PARMLINE:
        parm = load.covering(p.parm_addr, 1)
        if parm is None:
            raise KernelImageError(
                f"parm_addr {p.parm_addr:#x} is not inside any loaded component", where=f"{where} field parm_addr"
            )
        text = _c_string(storage, p.parm_addr, min(parm.end - p.parm_addr, limit))
        if text is None:
            raise KernelImageError(
                f"the parameter line at {p.parm_addr:#x} has no NUL within the kernel's command line limit of "
                f"{limit} bytes (stage 3 would cut it to {limit - 1} characters)",
                where=f"{where} field parm_addr",
            )
        storage.write(COMMAND_LINE, text + b"\0")
    else:
        notes.append("no parameter line: the kernel keeps its built-in command line")
    # 5. initrd.
    storage.write(INITRD_START, p.initrd_addr.to_bytes(8, "big"))
    storage.write(INITRD_SIZE, p.initrd_len.to_bytes(8, "big"))
    # 6. Load PSW at 0; 8. the CPU starts it.
    storage.write(LC_IPL_PSW, p.load_psw.to_bytes(8, "big"))
    start = _check_kernel(machine, storage, load, p.load_psw, image_start, image_end, "stage3", notes)
    start.parm_addr = None if p.parm_addr == NO_PARMLINE else p.parm_addr
    return start


def _direct(machine: MachineView, storage: Storage, load: LoadResult) -> KernelStart:
    kernel = load.covering(IMAGE_LOAD_ADDRESS, COMMAND_LINE - IMAGE_LOAD_ADDRESS)
    if kernel is None:
        raise KernelImageError(
            f"EXECUTE PSW {load.psw:016x} is not stage 3, and no LOAD component holds a kernel image at "
            f"{IMAGE_LOAD_ADDRESS:#x}..{COMMAND_LINE:#x} (direct layout)",
            where="component table EXECUTE",
        )
    _check_ep(storage)
    return _check_kernel(
        machine, storage, load, load.psw, kernel.address, kernel.end, "direct", ["direct layout: no stage 3"]
    )


def _check_ep(storage: Storage) -> None:
    got = storage.read(EP_OFFSET, len(EP_STRING))
    if got != EP_STRING:
        raise KernelImageError(
            f"no 'S390EP' entry-point marker at {EP_OFFSET:#x} (found {got.hex()}): not an s390 Linux image, or "
            "loaded at the wrong address",
            where=f"storage {EP_OFFSET:#x}",
        )


def _check_limit(limit_raw: int) -> int:
    limit = command_line_limit(limit_raw)
    if limit > MAX_COMMAND_LINE_LIMIT:
        raise KernelImageError(
            f"max_command_line_size {limit_raw} is larger than any kernel allows ({MAX_COMMAND_LINE_LIMIT})",
            where=f"storage {MAX_COMMAND_LINE_SIZE:#x} (kernel parm area) field max_command_line_size",
        )
    return limit


def _check_kernel(
    machine: MachineView,
    storage: Storage,
    load: LoadResult,
    psw: int,
    image_start: int,
    image_end: int,
    layout: str,
    notes: list[str],
) -> KernelStart:
    entry = psw_address(psw)
    if entry not in (IMAGE_LOAD_ADDRESS, IMAGE_ENTRY_KDUMP):
        raise KernelImageError(
            f"load PSW {psw:016x} enters at {entry:#x}; an s390 kernel is entered at {IMAGE_LOAD_ADDRESS:#x}",
            where="storage 0x0 (load PSW)",
        )
    if not image_start <= PARMAREA < COMMAND_LINE <= image_end:
        raise KernelImageError(
            f"the kernel image in storage ({image_start:#x}..{image_end:#x}) does not hold the parm area "
            f"{PARMAREA:#x}..{COMMAND_LINE:#x}",
            where=f"storage {PARMAREA:#x}",
        )
    pa = ParmArea.parse(storage.read(PARMAREA, ParmArea.sizeof()))
    limit = _check_limit(pa.max_command_line_size)
    text = _c_string(storage, COMMAND_LINE, limit)
    if text is None:
        raise KernelImageError(
            f"the command line at {COMMAND_LINE:#x} is not NUL-terminated within the kernel's limit of {limit} bytes",
            where=f"storage {COMMAND_LINE:#x} (kernel command line)",
        )
    try:
        cmdline = text.decode("ascii")
    except UnicodeDecodeError as exc:
        raise KernelImageError(
            f"the command line holds a non-ASCII byte {text[exc.start]:#04x} at position {exc.start}",
            where=f"storage {COMMAND_LINE + exc.start:#x} (kernel command line)",
        ) from exc
    if pa.initrd_size:
        # A signed ramdisk: initrd_len counts the signature trailer its LOAD left out (§8.3, §8.9).
        rd = load.component_at(pa.initrd_start)
        signed = rd is not None and rd.signed_trailer and holds(rd.length, rd.signed_trailer, pa.initrd_size)
        if not signed and load.covering(pa.initrd_start, pa.initrd_size) is None:
            raise KernelImageError(
                f"initrd {pa.initrd_start:#x}+{pa.initrd_size:#x} is not inside loaded storage",
                where=f"storage {INITRD_START:#x} (kernel parm area) field initrd_start",
            )
        hsa = load.hsa_size
        if load.dump and hsa is not None and hsa_overrun(pa.initrd_start, pa.initrd_size, hsa) is not None:
            raise KernelImageError(
                f"initrd {pa.initrd_start:#x}..{pa.initrd_start + pa.initrd_size - 1:#x} ends above the HSA limit "
                f"{hsa:#x}: the dump kernel only uses memory below it",
                where=f"storage {INITRD_START:#x} (kernel parm area) field initrd_start",
            )
    elif pa.initrd_start:
        notes.append(f"initrd_start {pa.initrd_start:#x} with size 0: no initrd")
    if load.dump and load.hsa_size is not None and hsa_overrun(image_start, image_end - image_start, load.hsa_size) is not None:
        raise KernelImageError(
            f"the kernel image ends at {image_end:#x}, above the HSA limit {load.hsa_size:#x}",
            where=f"storage {image_start:#x} (kernel image)",
        )
    return KernelStart(
        layout=layout,
        psw=psw,
        entry=entry,
        command_line=cmdline,
        command_line_limit=limit,
        initrd_start=pa.initrd_start,
        initrd_size=pa.initrd_size,
        ipl_device=pa.ipl_device,
        kernel_version=_version_string(storage, pa.kernel_version, image_start, image_end),
        image_start=image_start,
        image_end=image_end,
        notes=notes,
    )


def _version_string(storage: Storage, addr: int, lo: int, hi: int) -> str | None:
    if not lo <= addr < hi:
        return None
    raw = _c_string(storage, addr, min(256, hi - addr))
    if raw is None:
        return None
    return raw.decode("ascii", "replace")


def _c_string(storage: Storage, addr: int, limit: int) -> bytes | None:
    """Bytes before the first NUL in [addr, addr+limit), or None without a NUL there."""
    raw = storage.read(addr, limit)
    nul = raw.find(b"\0")
    return None if nul < 0 else raw[:nul]


def _memmove(storage: Storage, dst: int, src: int, n: int) -> None:
    """Copy downwards in 1 MiB chunks; safe for overlap because dst < src."""
    assert dst <= src
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        storage.write(dst + done, storage.read(src + done, k))
        done += k
