"""The test tree mirrors the package and its modules do not import each other.

A test file lives at tests/ top level (whole-house tests) or in a folder named
after a package of zipldump/ (tests/zipl/ for zipldump/zipl/, ...).  Shared
helpers live in tests/builders/; a test module (test_*.py or conftest.py) is
never imported by another module, so a helper cannot hide in one suite and be
reused, changed or shadowed by another.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "zipldump"

def package_folders() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def modules_under(root: Path = TESTS) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p.name.startswith("test_") or p.name == "conftest.py")


def imported_test_modules(path: Path) -> list[str]:
    """Names of test modules (test_*, conftest) that `path` imports, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):  # relative: from . import test_x / from .test_x import y
            names = [node.module] if node.module else [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if any(p.startswith("test_") or p == "conftest" for p in parts) or parts[0] == "tests":
                found.append(name)
    return found


def misplaced(root: Path = TESTS) -> list[str]:
    """Test files not at top level, nor in a folder that names a zipldump package."""
    allowed = package_folders()
    out = []
    for path in sorted(root.rglob("test_*.py")):
        rel = path.relative_to(root)
        if len(rel.parts) == 1:
            continue
        if len(rel.parts) != 2 or rel.parts[0] not in allowed:
            out.append(str(rel))
    return out


def test_no_test_module_imports_another() -> None:
    bad = [f"{p.relative_to(TESTS)} imports {name}" for p in modules_under() for name in imported_test_modules(p)]
    bad += [f"{p.relative_to(TESTS)} imports {name}" for p in (TESTS / "builders").rglob("*.py") for name in imported_test_modules(p)]
    assert not bad, "move shared helpers to tests/builders/:\n" + "\n".join(bad)


def test_every_test_file_sits_where_its_package_is() -> None:
    assert {"formats", "disk", "plan", "zipl", "dump", "sim", "qemu", "commands"} <= package_folders()
    assert not misplaced(), "test files outside tests/ top level or tests/<zipldump package>/: " + ", ".join(misplaced())
    assert not list((TESTS / "builders").rglob("test_*.py")), "tests/builders/ holds helpers, not tests"


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    bad = tmp_path / "test_bad.py"
    bad.write_text("from test_lowcore import sample_regs\n"
                   "def f():\n    from conftest import have_tool\n    import tests.zipl.test_bootmap\n"
                   "from . import test_x\nfrom builders.dumps import dump_disk\nimport zipldump.formats.lowcore\n")
    assert sorted(imported_test_modules(bad)) == ["conftest", "test_lowcore", "test_x", "tests.zipl.test_bootmap"]
    for rel in ("zipl/test_ok.py", "test_top.py", "dumptools/test_old.py", "zipl/deeper/test_x.py", "builders/test_y.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert misplaced(tmp_path) == ["builders/test_y.py", "dumptools/test_old.py", "zipl/deeper/test_x.py"]
