"""BLS entries and the zipl.conf compatibility rules of docs/zipl-conf.md, one test per rule."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from zipldump.errors import UsageError
from zipldump.zipl import bls
from zipldump.zipl.config import parse_config_text


def entry(title: str, version: str | None = None, linux: str = "/vmlinuz", extra: str = "") -> bytes:
    v = f"version {version}\n" if version else ""
    return f"title {title}\n{v}linux {linux}\ninitrd /initrd\noptions root=/dev/x {title}\n{extra}".encode()


def test_only_conf_files_count() -> None:
    assert bls.wanted("a.conf") and bls.wanted(".conf") and not bls.wanted("a.conf~") and not bls.wanted("a.cfg")


def test_strverscmp_matches_the_man_page_order() -> None:
    order = [b"000", b"00", b"01", b"010", b"09", b"0", b"1", b"9", b"10"]
    assert sorted(reversed(order), key=functools.cmp_to_key(bls.strverscmp)) == order
    assert bls.strverscmp(b"6.5.10-200", b"6.5.9-300") > 0


def test_sorted_by_version_highest_first() -> None:
    files = {"/e/a.conf": entry("A", "6.5.9"), "/e/b.conf": entry("B", "6.5.10"), "/e/c.conf": entry("C", "6.4.1")}
    assert [e.title for e in bls.order(files)] == ["B", "A", "C"]


def test_sorted_by_file_name_when_one_has_no_version() -> None:
    files = {"/e/x-9.conf": entry("A", "1"), "/e/x-10.conf": entry("B"), "/e/x-2.conf": entry("C", "3")}
    assert [e.title for e in bls.order(files)] == ["B", "A", "C"]


def test_keys_are_prefixes_and_unknown_keys_ignored() -> None:
    (e,) = bls.order({"/e/a.conf": b"title Short\nl /k\ni /r\no a b  \nmachine-id 123\nsort-key x\n# comment\n\n"})
    assert e.title == "Short" and e.values["image"][0] == "/k" and e.values["ramdisk"][0] == "/r"
    assert e.values["parameters"][0] == "a b"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"linux /k\n", "no title"),
        (b"title a\ntitle b\nlinux /k\n", "more than one title"),
        (b"title a\nlinux /k\ninitrd /a\ninitrd /b\n", "given twice"),
        (b"title a\nlinux\n", "incorrect BLS field"),
        (b"title a\nli=nux /k\n", "incorrect BLS field"),
        (b"title a\noptions x\n", "no linux line"),
    ],
)
def test_bad_entries_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(UsageError) as ei:
        bls.order({"/e/a.conf": data})
    assert fragment in ei.value.message and ei.value.where.startswith("/e/a.conf")


def test_too_many_entries_refused() -> None:
    with pytest.raises(UsageError):
        bls.order({f"/e/{i}.conf": entry(str(i), str(i)) for i in range(bls.MAX_ENTRIES + 1)})


def config(text: str, files: dict[str, bytes] | None = None, in_image: bool = True):
    return parse_config_text(text, "/etc/zipl.conf", in_image=in_image, bls=bls.order(files or {}))


def test_bls_sections_follow_the_files_and_inherit_target() -> None:
    files = {"/e/a.conf": entry("A", "1"), "/e/b.conf": entry("B", "2")}
    sel = config("[defaultboot]\ndefaultauto\ntarget=/boot\n[own]\nimage=/k\n", files).select()
    assert [(p, s.name) for p, s in sel.entries.items()] == [(1, "own"), (2, "B"), (3, "A")]
    assert {s.target_path for s in sel.entries.values()} == {"/boot"} and sel.default_position == 1
    assert sel.entries[2].parameters == "root=/dev/x B" and sel.entries[2].where == "/e/b.conf:1"


def test_bls_target_from_the_default_menu() -> None:
    cfg = config("[defaultboot]\ndefaultmenu=m\n[s]\nimage=/k\n:m\ntarget=/boot\n1=s\n", {"/e/a.conf": entry("A", "1")})
    assert cfg.sections["A"].target_path == "/boot"


def test_default_names_a_bls_title() -> None:
    sel = config("[defaultboot]\ndefault=A\ntarget=/boot\n", {"/e/a.conf": entry("A", "1"), "/e/b.conf": entry("B", "2")}).select()
    assert sel.entries[sel.default_position].name == "A" and sel.default_position == 2


def test_implicit_menu_target_without_defaultauto() -> None:
    sel = config("[defaultboot]\ndefault=b\ntarget=/boot\nprompt=1\ntimeout=5\n[a]\nimage=/a\n[b]\nimage=/b\n").select()
    assert sel.menu == "defaultboot" and sel.default_position == 2 and sel.prompt and sel.timeout == 5


def test_title_clashing_with_a_section_refused() -> None:
    with pytest.raises(UsageError, match="already a section"):
        config("[A]\nimage=/k\n", {"/e/a.conf": entry("A", "1")})


@pytest.mark.parametrize("where", ["[defaultboot]\ndefaultauto\ntarget=/b\n", "[a]\nimage=/k\n", ":m\n1=a\n"])
def test_secure_auto_and_0_accepted_1_refused(where: str) -> None:
    base = "[a]\nimage=/k\n" if not where.startswith("[a]") else ""
    for value in ("auto", "0"):
        config(base + where + f"secure={value}\n")
    with pytest.raises(UsageError, match="secure=1"):
        config(base + where + "secure=1\n")
    with pytest.raises(UsageError, match="invalid secure"):
        config(base + where + "secure=yes\n")


def test_optional_read_as_atoi() -> None:
    cfg = config("[a]\nimage=/k\noptional=1\n[b]\nimage=/k\noptional=0\n[c]\nimage=/k\noptional= 1x\n")
    assert [cfg.sections[n].optional for n in "abc"] == [True, False, True]


def test_relative_paths_in_an_image_start_at_its_root() -> None:
    cfg = config("[a]\nimage=boot/k\ntarget=/boot\n")
    assert cfg.sections["a"].image == Path("/boot/k") and cfg.sections["a"].target_path == "/boot"


def test_host_config_keeps_partition_numbers() -> None:
    with pytest.raises(UsageError, match="partition number"):
        config("[a]\nimage=k\ntarget=/boot\n", in_image=False)
