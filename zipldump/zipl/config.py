"""zipl.conf parser: sections, menus and [defaultboot], adapted to disk images.

The syntax follows zipl's configuration file (zipl.conf(5)); docs/zipl-conf.md
lists what is supported and where zipldump differs.  The one deliberate change:
`target=`, `dumpto=` and `dumptofs=` name a PARTITION NUMBER of the image given
on the command line, not a directory or a device node.

Relative `image`, `ramdisk` and `parmfile` paths are resolved against the
directory that holds the configuration file, so a config works no matter where
zipldump is started from.

Every error is a UsageError whose `where` is "FILE:LINE".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from zipldump.disk.io import open_binary
from zipldump.errors import UsageError
from zipldump.ui import clip as _clip
from zipldump.zipl.bls import BlsEntry

DEFAULTBOOT = "defaultboot"
# Program-table entries 1..30 are menu positions on SCSI; entry 0 is the default copy.
MAX_MENU_POSITION = 30
# zipl's limits on the boot menu's timeout/prompt are not relevant to SCSI IPL
# (the firmware selects by boot program number), but the values are still checked.

SECTION_KEYS = {"image", "ramdisk", "parmfile", "parameters", "target", "dumpto", "dumptofs", "secure", "optional"}
MENU_KEYS = {"default", "prompt", "timeout", "target", "secure"}
DEFAULTBOOT_KEYS = {"default", "defaultmenu", "defaultauto", "target", "prompt", "timeout", "secure"}
# zipl's secure= values: "auto" and "0" write what zipldump writes (no signatures);
# "1" asks for signed components, which zipldump cannot make.
SECURE_VALUES = ("auto", "0", "1")
# zipl keywords that are valid in zipl.conf but mean nothing for a SCSI disk image.
UNSUPPORTED_KEYS = {
    "mvdump": "multi-volume DASD dumps",
    "segment": "segment loading",
    "tape": "tape IPL",
    "kdump": "kdump sections",
    "targetbase": "target device options (the image is the target)",
    "targettype": "target device options (the image is the target)",
    "targetgeometry": "target device options (the image is the target)",
    "targetblocksize": "target device options (use --block-size)",
    "targetoffset": "target device options (the image is the target)",
}

MAX_CONFIG_SIZE = 16 << 20  # a larger "configuration file" is refused, not read whole
MAX_PARMFILE_SIZE = 1 << 20  # no kernel takes a longer command line
MAX_LINE_LENGTH = 65536  # longer lines are refused (a kernel command line is at most 1 MiB, usually 4 KiB)
MAX_NUMBER_DIGITS = 9  # positions, partition numbers, timeouts: plain decimal, at most 9 digits
MAX_PARTITION = 65536  # partition numbers beyond any table zipldump reads are refused


def _is_number(text: str) -> bool:
    """Plain ASCII decimal digits, at most MAX_NUMBER_DIGITS (no '²', no '1_0', no 5000-digit values)."""
    return 0 < len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()


_SECTION_RE = re.compile(r"^\[(?P<name>[^\]]*)\]$")
_MENU_RE = re.compile(r"^:(?P<name>.*)$")
_KEYVAL_RE = re.compile(r"^(?P<key>[^=\s]+)[ \t]*=[ \t]*(?P<value>.*)$")
BLANKS = " \t"  # zipl's isblank(): what it skips around keywords and values
_ADDR_RE = re.compile(r"^(?P<path>.+),(?P<addr>(0[xX])?[0-9a-fA-F]+)$")


@dataclass(frozen=True)
class SectionSpec:
    """One configuration section, with paths already resolved.

    `kind` is "ipl" (image=), "dump" (dumpto=) or "dumptofs" (dumptofs=).
    `target`, `dumpto`, `dumptofs` are partition numbers of the image; read from
    inside an image (`in_image`), they stay None and `*_path` hold the values as
    zipl takes them (a directory, a device node), resolved by the image root.
    `*_address` are the optional ",ADDR" load addresses zipl allows after a file name.
    """

    name: str
    image: Path | None
    ramdisk: Path | None
    parameters: str | None
    parmfile: Path | None
    target: int | None
    dumpto: int | None
    dumptofs: int | None
    source_line: int
    source_file: str = ""
    image_address: int | None = None
    ramdisk_address: int | None = None
    parmfile_address: int | None = None
    target_path: str | None = None
    dumpto_path: str | None = None
    dumptofs_path: str | None = None
    optional: bool = False  # optional=1: a menu entry whose files are missing is left out
    secure: str | None = None

    @property
    def kind(self) -> str:
        if self.dumpto is not None or self.dumpto_path is not None:
            return "dump"
        if self.dumptofs is not None or self.dumptofs_path is not None:
            return "dumptofs"
        return "ipl"

    @property
    def where(self) -> str:
        return f"{self.source_file}:{self.source_line}"

    def command_line(self, read: Callable[[Path, int, str, str], bytes] | None = None) -> str:
        """Kernel command line: parmfile contents, then `parameters`, joined by a space (as zipl).

        `read(path, limit, what, where)` reads the parmfile (an image root's reader for a
        configuration inside an image); by default it is a host file."""
        parts: list[str] = []
        if self.parmfile is not None:
            text = parmfile_text(self.parmfile, MAX_PARMFILE_SIZE, self.where, f"section '{self.name}': parmfile", read)
            if text:
                parts.append(text)
        if self.parameters:
            parts.append(self.parameters)
        return " ".join(parts)


def parmfile_text(
    path: Path, limit: int, where: str, what: str = "parmfile", read: Callable[[Path, int, str, str], bytes] | None = None
) -> str:
    """A parmfile's parameters: ASCII, line breaks count as blanks (as zipl)."""
    raw = (read or _read_bounded)(path, limit, what, where)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {_clip(str(path))} has a non-ASCII byte at offset {exc.start}", where=where) from None
    return " ".join(text.split())


@dataclass(frozen=True)
class Selection:
    """What to install: program-table position -> section.

    A single section is position 0.  A menu uses its positions 1..30; the
    installer also points table entry 0 at `entries[default_position]`.
    """

    entries: dict[int, SectionSpec]
    default_position: int
    menu: str | None = None
    target: int | None = None
    prompt: bool | None = None
    timeout: int | None = None
    target_path: str | None = None

    @property
    def default(self) -> SectionSpec:
        return self.entries[self.default_position]


@dataclass
class _Block:
    kind: str  # "section" | "menu"
    name: str
    line: int
    values: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (value, line)


@dataclass
class ZiplConfig:
    """A parsed configuration file.  `sections` and `menus` keep file order."""

    path: Path
    sections: dict[str, SectionSpec]
    menus: dict[str, _Block]
    defaultboot: _Block | None
    in_image: bool = False

    def _where(self, line: int) -> str:
        return f"{self.path}:{line}"

    def select(self, section: str | None = None, menu: str | None = None) -> Selection:
        """Pick a section or a menu; with neither, follow [defaultboot]."""
        if section is not None and menu is not None:
            raise UsageError("give a section or a menu, not both")
        if section is not None:
            return self._single(section, None)
        if menu is not None:
            return self._menu(menu, None)
        db = self.defaultboot
        if db is None:
            if len(self.sections) == 1 and not self.menus:
                return self._single(next(iter(self.sections)), None)
            names = ", ".join(list(self.sections) + [":" + m for m in self.menus]) or "none"
            raise UsageError(f"no section or menu given and no [defaultboot] section (choose one of: {names})", where=str(self.path))
        if "defaultauto" in db.values or "target" in db.values:
            # zipl: defaultauto, or a target= in [defaultboot], builds the automatic menu
            return self._auto(db)
        if "default" in db.values:
            name, line = db.values["default"]
            return self._single(name, line)
        if "defaultmenu" in db.values:
            name, line = db.values["defaultmenu"]
            return self._menu(name, line)
        raise UsageError("[defaultboot] needs default=, defaultmenu= or defaultauto", where=self._where(db.line))

    def _single(self, name: str, line: int | None) -> Selection:
        spec = self.sections.get(name)
        if spec is None:
            where = self._where(line) if line else str(self.path)
            raise UsageError(f"no section [{_clip(name)}] in the configuration (sections: {', '.join(self.sections) or 'none'})", where=where)
        return Selection(entries={0: spec}, default_position=0)

    def _menu(self, name: str, line: int | None) -> Selection:
        block = self.menus.get(name)
        if block is None:
            where = self._where(line) if line else str(self.path)
            raise UsageError(f"no menu :{_clip(name)} in the configuration (menus: {', '.join(self.menus) or 'none'})", where=where)
        entries: dict[int, SectionSpec] = {}
        for key, (value, vline) in block.values.items():
            if not _is_number(key):
                continue
            spec = self.sections.get(value)
            if spec is None:
                raise UsageError(f"menu :{_clip(name)} position {int(key)} names unknown section [{_clip(value)}]", where=self._where(vline))
            if spec.kind == "dump":
                raise UsageError(
                    f"menu :{_clip(name)} position {int(key)}: section [{_clip(value)}] is a dump section; only IPL and dumptofs sections can be menu entries",
                    where=self._where(vline),
                )
            entries[int(key)] = spec
        target, target_path = _menu_target(block, self._where, self.in_image)
        entries = {pos: _inherit_target(spec, target, target_path) for pos, spec in entries.items()}
        if not entries:
            raise UsageError(f"menu :{_clip(name)} has no entries (add lines like 1=SECTION)", where=self._where(block.line))
        default = _menu_default(block, entries, self._where)
        return Selection(
            entries=dict(sorted(entries.items())),
            default_position=default,
            menu=name,
            target=target,
            target_path=target_path,
            prompt=_menu_bool(block, "prompt", self._where),
            timeout=_menu_int(block, "timeout", self._where),
        )

    def _auto(self, db: _Block) -> Selection:
        # defaultauto: a menu of every IPL section, in file order.
        ipl = [s for s in self.sections.values() if s.kind == "ipl"]
        if not ipl:
            raise UsageError("defaultauto: the configuration has no IPL section", where=self._where(db.line))
        if len(ipl) > MAX_MENU_POSITION:
            raise UsageError(f"defaultauto: {len(ipl)} IPL sections exceed the {MAX_MENU_POSITION} menu positions", where=self._where(db.line))
        target, target_path = _menu_target(db, self._where, self.in_image)
        entries = {i + 1: _inherit_target(s, target, target_path) for i, s in enumerate(ipl)}
        default = 1
        if "default" in db.values:
            value, vline = db.values["default"]
            names = [s.name for s in ipl]
            if _is_number(value):
                default = int(value)
            elif value in names:
                default = names.index(value) + 1
            else:
                raise UsageError(f"defaultauto: default={_clip(value)} is neither a position nor an IPL section", where=self._where(vline))
            if default not in entries:
                raise UsageError(f"defaultauto: default position {default} has no entry", where=self._where(vline))
        return Selection(
            entries=entries,
            default_position=default,
            menu=DEFAULTBOOT,
            target=target,
            target_path=target_path,
            prompt=_menu_bool(db, "prompt", self._where),
            timeout=_menu_int(db, "timeout", self._where),
        )


def _inherit_target(spec: SectionSpec, target: int | None, target_path: str | None = None) -> SectionSpec:
    # A menu's target= applies to entries that do not name their own.
    if spec.target is not None or spec.target_path is not None:
        return spec
    if target is not None:
        return replace(spec, target=target)
    if target_path is not None:
        return replace(spec, target_path=target_path)
    return spec


def _menu_default(block: _Block, entries: dict[int, SectionSpec], where: Callable[[int], str]) -> int:
    if "default" not in block.values:
        return min(entries)
    value, line = block.values["default"]
    if not _is_number(value) or int(value) not in entries:
        raise UsageError(f"menu :{block.name}: default={_clip(value)} is not one of the positions {sorted(entries)}", where=where(line))
    return int(value)


def _menu_target(block: _Block, where: Callable[[int], str], in_image: bool = False) -> tuple[int | None, str | None]:
    if "target" not in block.values:
        return None, None
    value, line = block.values["target"]
    if in_image:
        return None, value
    return _partition_number("target", value, where(line)), None


def _menu_bool(block: _Block, key: str, where: Callable[[int], str]) -> bool | None:
    if key not in block.values:
        return None
    value, line = block.values[key]
    if value not in ("0", "1"):
        raise UsageError(f"{_clip(key)}={_clip(value)}: expected 0 or 1", where=where(line))
    return value == "1"


def _menu_int(block: _Block, key: str, where: Callable[[int], str]) -> int | None:
    if key not in block.values:
        return None
    value, line = block.values[key]
    if not _is_number(value):
        raise UsageError(f"{_clip(key)}={_clip(value)}: expected a number of seconds", where=where(line))
    return int(value)


def _partition_number(key: str, value: str, where: str) -> int:
    if not _is_number(value) or not 1 <= int(value) <= MAX_PARTITION:
        raise UsageError(
            f"{_clip(key)}={_clip(value)}: zipldump expects the partition number of the image here (for example {_clip(key)}=1), not a path or device",
            where=where,
        )
    return int(value)


def _atoi(text: str) -> int:
    """C's atoi, as zipl reads optional=: leading blanks, a sign, then digits; anything else is 0."""
    m = re.match(r"[ \t]*([+-]?\d{1,18})", text)
    return int(m.group(1)) if m else 0


def _unquote(raw: str, where: str) -> str:
    raw = raw.strip(BLANKS)
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end < 0:
            raise UsageError(f"unterminated quoted value {_clip(raw)}", where=where)
        if raw[end + 1 :].strip(BLANKS):
            raise UsageError(f"unexpected characters after the closing quote: {_clip(raw[end + 1 :].strip(BLANKS))!r}", where=where)
        return raw[1:end]
    return raw


def _split_address(value: str, key: str, where: str) -> tuple[str, int | None]:
    m = _ADDR_RE.match(value)
    if not m:
        return value, None
    try:
        return m["path"], int(m["addr"], 16)
    except ValueError as exc:  # pragma: no cover - regex guarantees hex
        raise UsageError(f"{_clip(key)}: bad load address {_clip(m['addr'])}", where=where) from exc


def parse_config(path: str | Path, *, bls: Sequence[BlsEntry] = ()) -> ZiplConfig:
    """Parse a zipl.conf-style file (host file).  Raises UsageError naming FILE:LINE."""
    path = Path(path)
    raw = _read_bounded(path, MAX_CONFIG_SIZE, "configuration file", str(path))
    return parse_config_bytes(raw, path, bls=bls)


def parse_config_bytes(raw: bytes, path: str | Path, *, in_image: bool = False, bls: Sequence[BlsEntry] = ()) -> ZiplConfig:
    """Decode and parse configuration bytes (read from the host or out of an image)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"configuration file is not UTF-8 text (byte {exc.start})", where=f"{path}:{line}") from None
    return parse_config_text(text, path, in_image=in_image, bls=bls)


def _read_bounded(path: Path, limit: int, what: str, where: str) -> bytes:
    """At most `limit` bytes of `path`; a longer file (or /dev/zero) is refused instead of read whole."""
    try:
        with open_binary(path, error=UsageError) as fh:
            data = fh.read(limit + 1)
    except UsageError as exc:  # a FIFO or device: refused before any read
        raise UsageError(f"{what} {_clip(str(path))} {exc.message}", where=where) from None
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror or exc}", where=where) from None
    if len(data) > limit:
        raise UsageError(f"{what} {_clip(str(path))} is larger than {limit} bytes", where=where)
    return data


def parse_config_text(text: str, path: str | Path = "zipl.conf", *, in_image: bool = False, bls: Sequence[BlsEntry] = ()) -> ZiplConfig:
    """Parse configuration text; `path` names the file in errors and anchors relative paths.

    `in_image`: the file was read out of a disk image (zipl's view of a running system):
    relative paths are taken from the image's "/" (zipl's working directory there) and
    `target`/`dumpto`/`dumptofs` keep their directory or device values.  `bls`: entries
    appended as sections after the file's own, as zipl appends them (zipl/bls.py).
    """
    path = Path(path)
    base = Path("/") if in_image else path.parent

    def where(line: int) -> str:
        return f"{path}:{line}"

    blocks: list[_Block] = []
    current: _Block | None = None
    seen_sections: dict[str, int] = {}
    seen_menus: dict[str, int] = {}
    # Only '\n' ends a line, as in zipl (str.splitlines would also break at form feeds,
    # U+2028 and others, and every later FILE:LINE would be wrong); a CR before it is dropped.
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if len(raw) > MAX_LINE_LENGTH:
            raise UsageError(f"line of {len(raw)} characters is longer than {MAX_LINE_LENGTH}", where=where(lineno))
        line = raw.removesuffix("\r").strip(BLANKS)
        if not line or line.startswith("#"):
            continue
        m = _SECTION_RE.match(line)
        if m:
            name = m["name"].strip()
            if not name or any(c.isspace() or not c.isprintable() for c in name):
                raise UsageError(f"bad section name [{_clip(m['name'])}] (printable characters, no blanks)", where=where(lineno))
            if name in seen_sections:
                raise UsageError(f"section [{_clip(name)}] defined twice (first at line {seen_sections[name]})", where=where(lineno))
            seen_sections[name] = lineno
            current = _Block("section", name, lineno)
            blocks.append(current)
            continue
        m = _MENU_RE.match(line)
        if m:
            name = m["name"].strip()
            if not name or not name.isalnum() or not name.isascii():
                raise UsageError(f"bad menu name :{_clip(m['name'])} (letters and digits only)", where=where(lineno))
            if name in seen_menus:
                raise UsageError(f"menu :{_clip(name)} defined twice (first at line {seen_menus[name]})", where=where(lineno))
            seen_menus[name] = lineno
            current = _Block("menu", name, lineno)
            blocks.append(current)
            continue
        if line == "defaultauto" and current is not None and current.name == DEFAULTBOOT and current.kind == "section":
            current.values["defaultauto"] = ("", lineno)
            continue
        m = _KEYVAL_RE.match(line)
        if not m:
            raise UsageError(f"expected [section], :menu or key=value, got {_clip(line)!r}", where=where(lineno))
        if current is None:
            raise UsageError(f"keyword '{_clip(m['key'])}' outside of a section (add a [section] line above it)", where=where(lineno))
        key = m["key"]  # keywords are case-sensitive, as in zipl
        value = _unquote(m["value"], where(lineno))
        if current.kind == "menu" and _is_number(key):
            key = str(int(key))  # '01=' is position 1
            if key in current.values:
                raise UsageError(
                    f"position {key} given twice in menu :{current.name} (first at line {current.values[key][1]})",
                    where=where(lineno),
                )
        if key in current.values:
            raise UsageError(
                f"keyword '{_clip(key)}' given twice in {_describe(current)} (first at line {current.values[key][1]})",
                where=where(lineno),
            )
        _check_key(current, key, value, where(lineno))
        current.values[key] = (value, lineno)

    sections: dict[str, SectionSpec] = {}
    menus: dict[str, _Block] = {}
    defaultboot: _Block | None = None
    for block in blocks:
        if block.kind == "menu":
            menus[block.name] = block
        elif block.name == DEFAULTBOOT:
            _check_defaultboot(block, where)
            defaultboot = block
        else:
            sections[block.name] = _make_section(block, base, str(path), where, in_image)
    target = _default_target(defaultboot, menus)
    for entry in bls:
        if entry.title in sections or entry.title == DEFAULTBOOT:
            first = sections[entry.title].where if entry.title in sections else where(defaultboot.line if defaultboot else 1)
            raise UsageError(f"BLS entry title {_clip(entry.title)!r} is already a section name (at {first})", where=f"{entry.file}:{entry.title_line}")
        block = _Block("section", entry.title, entry.title_line, dict(entry.values))
        if target is not None:
            block.values["target"] = target
        sections[entry.title] = _make_section(block, base, entry.file, _where_in(entry.file), in_image)
    return ZiplConfig(path=path, sections=sections, menus=menus, defaultboot=defaultboot, in_image=in_image)


def _where_in(file: str) -> Callable[[int], str]:
    def where(line: int) -> str:
        return f"{file}:{line}"

    return where


def _default_target(defaultboot: _Block | None, menus: dict[str, _Block]) -> tuple[str, int] | None:
    """zipl's scan_get_default_target: what BLS sections inherit as target= -- that of
    [defaultboot], or of the menu it names with defaultmenu=."""
    if defaultboot is None:
        return None
    if "defaultmenu" in defaultboot.values:
        menu = menus.get(defaultboot.values["defaultmenu"][0])
        return menu.values.get("target") if menu is not None else None
    return defaultboot.values.get("target")


def _check_secure(value: str, where: str) -> None:
    if value not in SECURE_VALUES:
        raise UsageError(f"invalid secure boot setting secure={_clip(value)} (zipl takes auto, 0 or 1)", where=where)
    if value == "1":
        raise UsageError(
            "keyword 'secure=1' (secure boot: signed components) is not supported by zipldump; secure=auto or secure=0 installs without signatures",
            where=where,
        )


def _describe(block: _Block) -> str:
    return f"menu :{block.name}" if block.kind == "menu" else f"section [{block.name}]"


def _check_key(block: _Block, key: str, value: str, where: str) -> None:
    if block.kind == "menu":
        if _is_number(key):
            pos = int(key)
            if not 1 <= pos <= MAX_MENU_POSITION:
                raise UsageError(
                    f"position {pos} in menu :{block.name} is outside 1..{MAX_MENU_POSITION} (the SCSI maximum)", where=where
                )
            if not value:
                raise UsageError(f"position {pos} in menu :{block.name} names no section", where=where)
            return
        if key not in MENU_KEYS:
            raise UsageError(f"keyword '{_clip(key)}' is not allowed in a menu (allowed: N=section, {', '.join(sorted(MENU_KEYS))})", where=where)
        if key == "secure":
            _check_secure(value, where)
        return
    if block.name == DEFAULTBOOT:
        if key not in DEFAULTBOOT_KEYS:
            raise UsageError(f"keyword '{_clip(key)}' is not allowed in [defaultboot] (allowed: {', '.join(sorted(DEFAULTBOOT_KEYS))})", where=where)
        if key == "secure":
            _check_secure(value, where)
        return
    if key in UNSUPPORTED_KEYS:
        raise UsageError(f"keyword '{_clip(key)}' ({UNSUPPORTED_KEYS[key]}) is not supported by zipldump", where=where)
    if key not in SECTION_KEYS:
        raise UsageError(f"unknown keyword '{_clip(key)}' (allowed: {', '.join(sorted(SECTION_KEYS))})", where=where)
    if not value and key != "parameters":
        raise UsageError(f"keyword '{_clip(key)}' has an empty value", where=where)
    if key == "secure":
        _check_secure(value, where)


def _check_defaultboot(block: _Block, where: Callable[[int], str]) -> None:
    v = block.values
    modes: list[str] = [k for k in ("default", "defaultmenu", "defaultauto") if k in v]
    auto = "defaultauto" in v or "target" in v  # zipl: either one builds the automatic menu
    if auto:
        modes = ["defaultauto" if "defaultauto" in v else "target"] + (["defaultmenu"] if "defaultmenu" in v else [])
    if not modes:
        raise UsageError("[defaultboot] needs default=, defaultmenu= or defaultauto", where=where(block.line))
    if len(modes) > 1:
        raise UsageError(f"[defaultboot] may use only one of {', '.join(modes)}", where=where(block.line))
    if not auto:
        for key in ("prompt", "timeout"):
            if key in v:
                raise UsageError(f"keyword '{_clip(key)}' in [defaultboot] needs defaultauto or target=", where=where(v[key][1]))


def _make_section(
    block: _Block, base: Path, source: str, where: Callable[[int], str], in_image: bool = False
) -> SectionSpec:
    v = block.values

    def get(key: str) -> tuple[str, int] | None:
        return v.get(key)

    kinds = [k for k in ("image", "dumpto", "dumptofs") if k in v]
    if not kinds:
        raise UsageError(f"section [{block.name}] needs image=, dumpto= or dumptofs=", where=where(block.line))
    if "dumpto" in v and "dumptofs" in v:
        raise UsageError(f"section [{block.name}]: dumpto and dumptofs exclude each other", where=where(v["dumptofs"][1]))

    def file_value(key: str) -> tuple[Path | None, int | None]:
        item = get(key)
        if item is None:
            return None, None
        value, line = item
        name, addr = _split_address(value, key, where(line))
        p = Path(name)
        if not p.is_absolute():
            p = base / p
        return p, addr

    image, image_addr = file_value("image")
    ramdisk, ramdisk_addr = file_value("ramdisk")
    parmfile, parmfile_addr = file_value("parmfile")

    def part(key: str) -> int | None:
        item = get(key)
        if item is None or in_image:
            return None
        value, line = item
        if key == "dumpto" and "," in value:
            raise UsageError(
                f"dumpto={_clip(value)}: the dump size cannot be limited for a partition dump on a SCSI disk", where=where(line)
            )
        return _partition_number(key, value, where(line))

    def raw(key: str) -> str | None:
        item = get(key)
        if item is None or not in_image:
            return None
        if key == "dumpto" and "," in item[0]:
            raise UsageError(
                f"dumpto={_clip(item[0])}: the dump size cannot be limited for a partition dump on a SCSI disk", where=where(item[1])
            )
        return item[0]

    optional = get("optional")
    secure = get("secure")
    params = get("parameters")
    return SectionSpec(
        target_path=raw("target"),
        dumpto_path=raw("dumpto"),
        dumptofs_path=raw("dumptofs"),
        optional=optional is not None and _atoi(optional[0]) == 1,
        secure=secure[0] if secure else None,
        name=block.name,
        image=image,
        ramdisk=ramdisk,
        parameters=params[0] if params else None,
        parmfile=parmfile,
        target=part("target"),
        dumpto=part("dumpto"),
        dumptofs=part("dumptofs"),
        source_line=block.line,
        source_file=source,
        image_address=image_addr,
        ramdisk_address=ramdisk_addr,
        parmfile_address=parmfile_addr,
    )
