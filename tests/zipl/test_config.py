"""zipl.conf parser: sections, menus, [defaultboot], errors with FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from zipldump.errors import UsageError
from zipldump.zipl.config import parse_config, parse_config_text

CONF = """\
# a comment
[defaultboot]
defaultmenu=menu1

[linux]
    target = 1
    image=vmlinuz
    ramdisk = /abs/initrd.img,0x2000000
    parameters = "root=/dev/ram0 console=ttysclp0 "

[rescue]
image=/boot/vmlinuz-rescue
parmfile=parm.txt
parameters='quiet'

[dump]
dumpto=2

[fsdump]
image=dumpker
dumptofs=3

:menu1
target=1
1=linux
2=rescue
3=fsdump
default=2
prompt=1
timeout=15
"""


def write(tmp_path: Path, text: str, name: str = "zipl.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_menu_via_defaultboot(tmp_path: Path) -> None:
    cfg = parse_config(write(tmp_path, CONF))
    sel = cfg.select()
    assert sel.menu == "menu1"
    assert sorted(sel.entries) == [1, 2, 3]
    assert sel.default_position == 2
    assert sel.default.name == "rescue"
    assert sel.prompt is True and sel.timeout == 15 and sel.target == 1
    linux = sel.entries[1]
    assert linux.image == tmp_path / "vmlinuz"  # relative to the config's directory
    assert linux.ramdisk == Path("/abs/initrd.img") and linux.ramdisk_address == 0x2000000
    assert linux.parameters == "root=/dev/ram0 console=ttysclp0 "  # quotes keep the blank
    assert linux.source_line == 5 and linux.kind == "ipl"
    # the menu's target applies to entries without one
    assert sel.entries[2].target == 1
    assert sel.entries[3].kind == "dumptofs" and sel.entries[3].dumptofs == 3


def test_single_section_is_position_zero(tmp_path: Path) -> None:
    cfg = parse_config(write(tmp_path, CONF))
    sel = cfg.select(section="dump")
    assert sel.entries.keys() == {0} and sel.default_position == 0
    assert sel.default.dumpto == 2 and sel.default.kind == "dump"
    assert cfg.select(section="linux").default.target == 1
    assert cfg.select(section="rescue").default.target is None


def test_parmfile_then_parameters(tmp_path: Path) -> None:
    (tmp_path / "parm.txt").write_text("root=/dev/ram0\n  console=ttysclp0\n")
    cfg = parse_config(write(tmp_path, CONF))
    assert cfg.select(section="rescue").default.command_line() == "root=/dev/ram0 console=ttysclp0 quiet"


def test_missing_parmfile_names_section(tmp_path: Path) -> None:
    cfg = parse_config(write(tmp_path, CONF))
    with pytest.raises(UsageError) as ei:
        cfg.select(section="rescue").default.command_line()
    assert ei.value.where == f"{tmp_path / 'zipl.conf'}:11"


def test_defaultboot_default_section(tmp_path: Path) -> None:
    cfg = parse_config(write(tmp_path, "[defaultboot]\ndefault=b\n[a]\nimage=x\n[b]\nimage=y\nparameters=p\n"))
    sel = cfg.select()
    assert sel.entries[0].name == "b" and sel.default_position == 0


def test_defaultauto_builds_menu_of_ipl_sections(tmp_path: Path) -> None:
    text = "[defaultboot]\ndefaultauto\ntarget=1\ndefault=b\n[a]\nimage=x\n[d]\ndumpto=2\n[b]\nimage=y\n"
    sel = parse_config(write(tmp_path, text)).select()
    assert {p: s.name for p, s in sel.entries.items()} == {1: "a", 2: "b"}
    assert sel.default_position == 2 and sel.entries[1].target == 1


def test_single_section_without_defaultboot(tmp_path: Path) -> None:
    sel = parse_config(write(tmp_path, "[only]\nimage=k\n")).select()
    assert sel.entries[0].name == "only"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("image=x\n[a]\nimage=y\n", 1, "outside of a section"),
        ("[a]\nimage=x\nimage=y\n", 3, "given twice"),
        ("[a]\nimage=x\n[a]\nimage=y\n", 3, "defined twice"),
        ("[a]\nimage=x\nfoo=1\n", 3, "unknown keyword 'foo'"),
        ("[a]\nimage=x\nsecure=1\n", 3, "not supported"),
        ("[a]\nimage=x\ntarget=/boot\n", 3, "partition number"),
        ("[d]\ndumpto=2,100M\n", 2, "cannot be limited"),
        ("[a]\nparameters=x\n", 1, "needs image="),
        ("[a]\nimage=x\n:m\n31=a\n", 4, "outside 1..30"),
        ("[a]\nimage=x\n:m\n1=b\n", 4, "unknown section [b]"),
        ("[d]\ndumpto=1\n:m\n1=d\n", 4, "dump section"),
        ("[a]\nimage=x\n:m\n1=a\ndefault=2\n", 5, "default=2"),
        ("[a]\nimage=x\n:m\n1=a\nimage=q\n", 5, "not allowed in a menu"),
        ("[a]\nimage=x\nparameters=\"abc\n", 3, "unterminated"),
        ("[a b]\nimage=x\n", 1, "bad section name"),
        ("[a]\nimage='x' y\n", 2, "after the closing quote"),
        ("[a]\nImage=x\n", 2, "unknown keyword 'Image'"),
        ("[a]\nimage=x\njust words\n", 3, "expected [section]"),
        ("[defaultboot]\ndefault=a\ndefaultmenu=m\n[a]\nimage=x\n", 1, "only one of"),
        ("[defaultboot]\ndefault=zz\n[a]\nimage=x\n", 2, "no section [zz]"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as ei:
        cfg = parse_config(path)
        cfg.select(menu="m") if ":m" in text else cfg.select()
    assert ei.value.where == f"{path}:{line}", str(ei.value)
    assert fragment in ei.value.message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as ei:
        parse_config(tmp_path / "nope.conf")
    assert ei.value.where == str(tmp_path / "nope.conf")


def test_no_default_lists_choices() -> None:
    cfg = parse_config_text("[a]\nimage=x\n[b]\nimage=y\n", "z.conf")
    with pytest.raises(UsageError, match="choose one of: a, b"):
        cfg.select()
    with pytest.raises(UsageError, match="not both"):
        cfg.select(section="a", menu="m")


@pytest.mark.parametrize("odd", ["\x0c", "\x0b", "\x1c", "\x85", "\u2028"])
def test_only_newline_ends_a_line(odd: str) -> None:
    """zipl counts '\\n' only: a form feed or U+2028 inside a value neither ends the line nor shifts later line numbers."""
    text = f"[a]\nimage=x\nparameters=\"a{odd}b\"\nfoo=1\n"
    with pytest.raises(UsageError) as ei:
        parse_config_text(text, "z.conf")
    assert ei.value.where == "z.conf:4" and "unknown keyword 'foo'" in ei.value.message
    cfg = parse_config_text(text.replace("foo=1\n", ""), "z.conf")
    assert cfg.sections["a"].parameters == f"a{odd}b"


def test_crlf_lines() -> None:
    cfg = parse_config_text("[a]\r\nimage=x\r\nparameters=\"p q\"\r\n", "z.conf")
    assert cfg.sections["a"].parameters == "p q" and cfg.sections["a"].image == Path("x")


def test_menu_position_given_twice() -> None:
    """'1=' and '01=' are the same position: refused at the second, not silently replaced."""
    with pytest.raises(UsageError) as ei:
        parse_config_text("[a]\nimage=x\n[b]\nimage=y\n:m\n1=a\n01=b\n", "z.conf")
    assert ei.value.where == "z.conf:7" and "position 1" in ei.value.message and "line 6" in ei.value.message


def test_the_documented_example_parses_as_described(tmp_path: Path) -> None:
    """docs/zipl-conf.md's example, as a user would copy it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "zipl-conf.md").read_text()
    block = doc.split("## Example", 1)[1].split("## Syntax", 1)[0]
    text = "\n".join(line[4:] for line in block.splitlines() if line.startswith("    "))
    cfg = parse_config(write(tmp_path, text))
    sel = cfg.select()
    assert sel.menu == "boot" and sel.default.name == "linux" and sel.target == 1
    assert sel.default.image == tmp_path / "vmlinuz"  # a '#' after a value is part of it, so no comment there
    assert sel.entries[2].parmfile == tmp_path / "rescue.parm" and cfg.sections["dump"].dumpto == 2
