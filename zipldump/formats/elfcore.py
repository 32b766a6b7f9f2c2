"""ELF64 big-endian s390x core files: headers, notes and the s390 register notes.

Structures of the ELF core that `zgetdump -f elf`, Linux /proc/vmcore and QEMU's
`dump-guest-memory` write for s390x (EM_S390 = 22), s390-dump-format.md §7.5,
§8.9, §9, and the conversion between one CPU's notes and `CpuRegisters`.
No file I/O here: zipldump/dump/elf.py reads and writes core files.

Per-CPU note set written here (the order of `zgetdump -f elf`): NT_PRSTATUS,
NT_FPREGSET, NT_S390_TIMER, NT_S390_TODCMP, NT_S390_TODPREG, NT_S390_CTRS,
NT_S390_PREFIX, then NT_S390_VXRS_LOW/HIGH when vector registers are known.

Clock comparator in NT_S390_TODCMP: zgetdump and /proc/vmcore copy the save-area
field (CKC >> 8); QEMU writes the full CKC.  `cpu_notes` writes the save-area
encoding; `cpus_from_notes(..., ckc_encoding="auto")` takes a core with an
NT_PRPSINFO note (zgetdump, the kernel, zipldump) as shifted and one without
(QEMU) as full.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import (
    Array,
    Bytes,
    Int8ub,
    Int16ub,
    Int32sb,
    Int32ub,
    Int64ub,
    Padding,
    Struct,
)

from zipldump.errors import FormatError, MagicError
from zipldump.formats.lowcore import CpuRegisters, ckc_from_field, ckc_to_field

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2MSB = 2
EV_CURRENT = 1
ET_CORE = 4
EM_S390 = 22

PT_NULL = 0
PT_LOAD = 1
PT_NOTE = 4
PF_X = 1
PF_W = 2
PF_R = 4

NT_PRSTATUS = 1
NT_FPREGSET = 2  # NT_PRFPREG
NT_PRPSINFO = 3
NT_S390_TIMER = 0x301
NT_S390_TODCMP = 0x302
NT_S390_TODPREG = 0x303
NT_S390_CTRS = 0x304
NT_S390_PREFIX = 0x305
NT_S390_LAST_BREAK = 0x306
NT_S390_SYSTEM_CALL = 0x307
NT_S390_TDB = 0x308
NT_S390_VXRS_LOW = 0x309
NT_S390_VXRS_HIGH = 0x30A
NT_S390_GS_CB = 0x30B
NT_S390_GS_BC = 0x30C
NT_S390_RI_CB = 0x30D
NT_S390_PV_CPU_DATA = 0x30E
NT_VMCOREINFO = 0

NOTE_NAMES = {
    NT_PRSTATUS: "NT_PRSTATUS",
    NT_FPREGSET: "NT_FPREGSET",
    NT_PRPSINFO: "NT_PRPSINFO",
    NT_S390_TIMER: "NT_S390_TIMER",
    NT_S390_TODCMP: "NT_S390_TODCMP",
    NT_S390_TODPREG: "NT_S390_TODPREG",
    NT_S390_CTRS: "NT_S390_CTRS",
    NT_S390_PREFIX: "NT_S390_PREFIX",
    NT_S390_LAST_BREAK: "NT_S390_LAST_BREAK",
    NT_S390_SYSTEM_CALL: "NT_S390_SYSTEM_CALL",
    NT_S390_TDB: "NT_S390_TDB",
    NT_S390_VXRS_LOW: "NT_S390_VXRS_LOW",
    NT_S390_VXRS_HIGH: "NT_S390_VXRS_HIGH",
    NT_S390_GS_CB: "NT_S390_GS_CB",
    NT_S390_GS_BC: "NT_S390_GS_BC",
    NT_S390_RI_CB: "NT_S390_RI_CB",
    NT_S390_PV_CPU_DATA: "NT_S390_PV_CPU_DATA",
}

CORE_NAME = "CORE"  # owner of the generic notes
LINUX_NAME = "LINUX"  # owner of the s390 register notes (what gdb/BFD look for)

EHDR_SIZE = 64
PHDR_SIZE = 56
NHDR_SIZE = 12

ElfHeader = Struct(
    "magic" / Bytes(4),
    "ei_class" / Int8ub,
    "ei_data" / Int8ub,
    "ei_version" / Int8ub,
    "ei_osabi" / Int8ub,
    Padding(8),
    "e_type" / Int16ub,
    "e_machine" / Int16ub,
    "e_version" / Int32ub,
    "e_entry" / Int64ub,
    "e_phoff" / Int64ub,
    "e_shoff" / Int64ub,
    "e_flags" / Int32ub,
    "e_ehsize" / Int16ub,
    "e_phentsize" / Int16ub,
    "e_phnum" / Int16ub,
    "e_shentsize" / Int16ub,
    "e_shnum" / Int16ub,
    "e_shstrndx" / Int16ub,
)
assert ElfHeader.sizeof() == EHDR_SIZE

ProgramHeader = Struct(
    "p_type" / Int32ub,
    "p_flags" / Int32ub,
    "p_offset" / Int64ub,
    "p_vaddr" / Int64ub,
    "p_paddr" / Int64ub,
    "p_filesz" / Int64ub,
    "p_memsz" / Int64ub,
    "p_align" / Int64ub,
)
assert ProgramHeader.sizeof() == PHDR_SIZE

NoteHeader = Struct("n_namesz" / Int32ub, "n_descsz" / Int32ub, "n_type" / Int32ub)
assert NoteHeader.sizeof() == NHDR_SIZE

# s390x struct elf_prstatus (336 bytes) with s390_regs at 0x70.
PrStatus = Struct(
    "si_signo" / Int32sb,
    "si_code" / Int32sb,
    "si_errno" / Int32sb,
    "pr_cursig" / Int16ub,
    Padding(2),
    "pr_sigpend" / Int64ub,
    "pr_sighold" / Int64ub,
    "pr_pid" / Bytes(4),  # raw: QEMU writes it in host byte order
    "pr_ppid" / Int32sb,
    "pr_pgrp" / Int32sb,
    "pr_sid" / Int32sb,
    "times" / Bytes(64),  # pr_utime, pr_stime, pr_cutime, pr_cstime
    "psw" / Array(2, Int64ub),  # 0x70
    "gprs" / Array(16, Int64ub),  # 0x80
    "acrs" / Array(16, Int32ub),  # 0x100
    "orig_gpr2" / Int64ub,  # 0x140
    "pr_fpvalid" / Int32sb,  # 0x148
    Padding(4),
)
assert PrStatus.sizeof() == 336

FpRegSet = Struct("fpc" / Int32ub, Padding(4), "fprs" / Array(16, Int64ub))
assert FpRegSet.sizeof() == 136

# s390x struct elf_prpsinfo (136 bytes).
PrPsInfo = Struct(
    "pr_state" / Int8ub,
    "pr_sname" / Int8ub,
    "pr_zomb" / Int8ub,
    "pr_nice" / Int8ub,
    Padding(4),
    "pr_flag" / Int64ub,
    "pr_uid" / Int32ub,
    "pr_gid" / Int32ub,
    "pr_pid" / Int32sb,
    "pr_ppid" / Int32sb,
    "pr_pgrp" / Int32sb,
    "pr_sid" / Int32sb,
    "pr_fname" / Bytes(16),
    "pr_psargs" / Bytes(80),
)
assert PrPsInfo.sizeof() == 136

Ctrs = Array(16, Int64ub)
VxrsLow = Array(16, Int64ub)  # bytes 8-15 of V0-V15
VxrsHigh = Bytes(256)  # V16-V31


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class Note:
    name: str
    type: int
    desc: bytes

    @property
    def type_name(self) -> str:
        return NOTE_NAMES.get(self.type, f"0x{self.type:x}")

    def build(self) -> bytes:
        name = self.name.encode() + b"\0"
        out = bytearray(NoteHeader.build({"n_namesz": len(name), "n_descsz": len(self.desc), "n_type": self.type}))
        out += name + bytes(_pad4(len(name)) - len(name))
        out += self.desc + bytes(_pad4(len(self.desc)) - len(self.desc))
        return bytes(out)

    @property
    def size(self) -> int:
        return NHDR_SIZE + _pad4(len(self.name) + 1) + _pad4(len(self.desc))


def build_notes(notes: list[Note]) -> bytes:
    return b"".join(n.build() for n in notes)


MAX_NOTES = 1 << 16  # a core of 512 CPUs has about 5000 notes; more is damage, not data


def parse_notes(data: bytes | memoryview, *, where: str = "PT_NOTE", base: int = 0, max_notes: int = MAX_NOTES) -> list[Note]:
    """Split a PT_NOTE segment; every note must lie inside it.  `base` is the
    segment's file offset, used in error messages.  More than `max_notes` notes
    are refused (each costs far more memory than its 12-byte header)."""
    data = bytes(data)
    notes: list[Note] = []
    pos = 0
    while pos < len(data):
        if len(notes) >= max_notes:
            raise FormatError(f"too many notes (at most {MAX_NOTES} in a core)", where=f"{where} file offset 0x{base + pos:x}")
        if len(data) - pos < NHDR_SIZE:
            if not any(data[pos:]):
                break  # zero padding at the end of the segment
            raise FormatError("truncated note header", where=f"{where} file offset 0x{base + pos:x}")
        h = NoteHeader.parse(data[pos : pos + NHDR_SIZE])
        name_end = pos + NHDR_SIZE + h.n_namesz
        desc_start = pos + NHDR_SIZE + _pad4(h.n_namesz)
        desc_end = desc_start + h.n_descsz
        if name_end > len(data) or desc_end > len(data):
            raise FormatError(
                f"note (type 0x{h.n_type:x}, name {h.n_namesz} bytes, desc {h.n_descsz} bytes) runs past the segment end",
                where=f"{where} file offset 0x{base + pos:x}",
            )
        name = data[pos + NHDR_SIZE : name_end].split(b"\0", 1)[0].decode("ascii", "replace")
        notes.append(Note(name, h.n_type, data[desc_start:desc_end]))
        pos = desc_start + _pad4(h.n_descsz)
    return notes


# --- headers -------------------------------------------------------------------
def build_ehdr(phnum: int, *, phoff: int = EHDR_SIZE) -> bytes:
    if phnum > 0xFFFF:
        raise FormatError(f"{phnum} program headers exceed the ELF limit of 65535", where="ELF header e_phnum")
    return bytes(ElfHeader.build(
        {
            "magic": ELF_MAGIC,
            "ei_class": ELFCLASS64,
            "ei_data": ELFDATA2MSB,
            "ei_version": EV_CURRENT,
            "ei_osabi": 0,
            "e_type": ET_CORE,
            "e_machine": EM_S390,
            "e_version": EV_CURRENT,
            "e_entry": 0,
            "e_phoff": phoff,
            "e_shoff": 0,
            "e_flags": 0,
            "e_ehsize": EHDR_SIZE,
            "e_phentsize": PHDR_SIZE,
            "e_phnum": phnum,
            "e_shentsize": 0,
            "e_shnum": 0,
            "e_shstrndx": 0,
        }
    ))


def build_phdr(p_type: int, *, offset: int, filesz: int, paddr: int = 0, vaddr: int | None = None, memsz: int | None = None,
               flags: int = 0, align: int = 0) -> bytes:
    return bytes(ProgramHeader.build(
        {
            "p_type": p_type,
            "p_flags": flags,
            "p_offset": offset,
            "p_vaddr": paddr if vaddr is None else vaddr,
            "p_paddr": paddr,
            "p_filesz": filesz,
            "p_memsz": filesz if memsz is None else memsz,
            "p_align": align,
        }
    ))


def parse_ehdr(data: bytes | memoryview) -> dict[str, int]:
    """Check that this is an ELF64 big-endian s390x core; return the header fields.

    e_ehsize and the section header fields are not checked: QEMU 7.2 writes
    wrong ones (§8.9)."""
    if len(data) < EHDR_SIZE:
        raise FormatError(f"file has {len(data)} bytes, an ELF header needs {EHDR_SIZE}", where="ELF header")
    c = ElfHeader.parse(bytes(data[:EHDR_SIZE]))
    if c.magic != ELF_MAGIC:
        raise MagicError(f"magic {c.magic.hex()} is not \\x7fELF", where="ELF header offset 0x0")
    checks = (
        ("ei_class", 4, c.ei_class, ELFCLASS64, "ELFCLASS64"),
        ("ei_data", 5, c.ei_data, ELFDATA2MSB, "ELFDATA2MSB (big-endian)"),
        ("e_type", 0x10, c.e_type, ET_CORE, "ET_CORE"),
        ("e_machine", 0x12, c.e_machine, EM_S390, "EM_S390"),
    )
    for name, off, got, want, text in checks:
        if got != want:
            raise FormatError(f"{name} is {got}, expected {want} ({text})", where=f"ELF header offset 0x{off:x} field {name}")
    if c.e_phentsize != PHDR_SIZE:
        raise FormatError(f"e_phentsize is {c.e_phentsize}, expected {PHDR_SIZE}", where="ELF header offset 0x36 field e_phentsize")
    return {k: v for k, v in c.items() if not k.startswith("_") and isinstance(v, int)}


# --- CPU notes -----------------------------------------------------------------
def build_prpsinfo(fname: str = "vmlinux") -> bytes:
    return bytes(PrPsInfo.build(
        {
            "pr_state": 0, "pr_sname": ord("R"), "pr_zomb": 0, "pr_nice": 0, "pr_flag": 0, "pr_uid": 0, "pr_gid": 0,
            "pr_pid": 0, "pr_ppid": 0, "pr_pgrp": 0, "pr_sid": 0,
            "pr_fname": fname.encode()[:15].ljust(16, b"\0"), "pr_psargs": bytes(80),
        }
    ))


def cpu_notes(regs: CpuRegisters, pid: int, *, todcmp_field: int | None = None) -> list[Note]:
    """The notes of one CPU; `pid` is the 1-based CPU number (pr_pid).
    NT_S390_TODCMP carries the save-area encoding CKC >> 8, like zgetdump; a
    writer converting a dump passes the save area's raw u64 at 0x1330 as
    `todcmp_field`, which zgetdump copies unchanged (also when it holds an
    unshifted CKC, which `regs.ckc` cannot tell apart)."""
    if todcmp_field is None:
        todcmp_field = ckc_to_field(regs.ckc)
    prstatus = PrStatus.build(
        {
            "si_signo": 0, "si_code": 0, "si_errno": 0, "pr_cursig": 0, "pr_sigpend": 0, "pr_sighold": 0,
            "pr_pid": pid.to_bytes(4, "big"), "pr_ppid": 0, "pr_pgrp": 0, "pr_sid": 0, "times": bytes(64),
            "psw": [regs.psw_mask, regs.psw_addr], "gprs": list(regs.gprs), "acrs": list(regs.acrs),
            "orig_gpr2": 0, "pr_fpvalid": 0,
        }
    )
    notes = [
        Note(CORE_NAME, NT_PRSTATUS, prstatus),
        Note(CORE_NAME, NT_FPREGSET, FpRegSet.build({"fpc": regs.fpc, "fprs": list(regs.fprs)})),
        Note(LINUX_NAME, NT_S390_TIMER, regs.timer.to_bytes(8, "big")),
        Note(LINUX_NAME, NT_S390_TODCMP, todcmp_field.to_bytes(8, "big")),
        Note(LINUX_NAME, NT_S390_TODPREG, regs.todpreg.to_bytes(4, "big")),
        Note(LINUX_NAME, NT_S390_CTRS, Ctrs.build(list(regs.crs))),
        Note(LINUX_NAME, NT_S390_PREFIX, regs.prefix.to_bytes(4, "big")),
    ]
    if regs.vxrs is not None:
        low = b"".join(regs.vxrs[16 * i + 8 : 16 * i + 16] for i in range(16))
        notes.append(Note(LINUX_NAME, NT_S390_VXRS_LOW, low))
        notes.append(Note(LINUX_NAME, NT_S390_VXRS_HIGH, bytes(regs.vxrs[256:])))
    return notes


_EXACT_SIZES = {
    NT_PRSTATUS: (336,),
    NT_FPREGSET: (136,),
    NT_S390_TIMER: (8,),
    NT_S390_TODCMP: (8,),
    NT_S390_TODPREG: (4, 8),  # 8 in some kernels: register in the first 4 bytes
    NT_S390_CTRS: (128,),
    NT_S390_PREFIX: (4,),
    NT_S390_VXRS_LOW: (128,),
    NT_S390_VXRS_HIGH: (256,),
}


def cpus_from_notes(notes: list[Note], *, ckc_encoding: str = "auto", where: str = "PT_NOTE") -> list[CpuRegisters]:
    """CPU register sets from a core's notes; a new CPU starts at each NT_PRSTATUS.

    ckc_encoding: "shifted" (NT_S390_TODCMP = CKC >> 8: zgetdump, /proc/vmcore,
    zipldump), "full" (QEMU dump-guest-memory), or "auto" (shifted when the core
    has an NT_PRPSINFO note, else full).  Vector registers are kept only when
    both vector notes exist and are not all zero (QEMU writes zeros when unused).
    """
    if ckc_encoding == "auto":
        ckc_encoding = "shifted" if any(n.type == NT_PRPSINFO for n in notes) else "full"
    if ckc_encoding not in ("shifted", "full"):
        raise ValueError(f"ckc_encoding {ckc_encoding!r}")
    cpus: list[dict[str, object]] = []
    for idx, note in enumerate(notes):
        sizes = _EXACT_SIZES.get(note.type)
        if sizes is None:
            continue
        if note.type == NT_PRSTATUS:
            cpus.append({})
        if not cpus:
            raise FormatError(f"{note.type_name} before the first NT_PRSTATUS", where=f"{where} note {idx}")
        if len(note.desc) not in sizes:
            raise FormatError(
                f"{note.type_name} has {len(note.desc)} bytes, expected {' or '.join(map(str, sizes))}",
                where=f"{where} note {idx} (CPU {len(cpus) - 1})",
            )
        cur = cpus[-1]
        d = note.desc
        if note.type == NT_PRSTATUS:
            p = PrStatus.parse(d)
            cur.update(psw_mask=p.psw[0], psw_addr=p.psw[1], gprs=tuple(p.gprs), acrs=tuple(p.acrs))
        elif note.type == NT_FPREGSET:
            f = FpRegSet.parse(d)
            cur.update(fpc=f.fpc, fprs=tuple(f.fprs))
        elif note.type == NT_S390_TIMER:
            cur["timer"] = int.from_bytes(d, "big")
        elif note.type == NT_S390_TODCMP:
            v = int.from_bytes(d, "big")
            cur["ckc"] = v if ckc_encoding == "full" else ckc_from_field(v)
        elif note.type == NT_S390_TODPREG:
            cur["todpreg"] = int.from_bytes(d[:4], "big")
        elif note.type == NT_S390_CTRS:
            cur["crs"] = tuple(Ctrs.parse(d))
        elif note.type == NT_S390_PREFIX:
            cur["prefix"] = int.from_bytes(d, "big")
        elif note.type == NT_S390_VXRS_LOW:
            cur["_vx_low"] = d
        elif note.type == NT_S390_VXRS_HIGH:
            cur["_vx_high"] = d
    out: list[CpuRegisters] = []
    for fields in cpus:
        low = fields.pop("_vx_low", None)
        high = fields.pop("_vx_high", None)
        if isinstance(low, bytes) and isinstance(high, bytes) and (any(low) or any(high)):
            fprs = fields.get("fprs", (0,) * 16)
            assert isinstance(fprs, tuple)
            fields["vxrs"] = b"".join(fprs[i].to_bytes(8, "big") + low[8 * i : 8 * i + 8] for i in range(16)) + high
        out.append(CpuRegisters(**fields))  # type: ignore[arg-type]
    return out
