"""The layering of docs/architecture.md holds: no module imports from a layer below it in the table.

formats -> disk -> plan -> zipl/dump -> sim/qemu -> CLI.  A lower layer
importing a higher one (say, zipl/bootmap.py importing sim/) fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "zipldump"

LAYERS = {
    0: {"errors", "ui", "jsonout", "formats"},
    1: {"disk"},
    2: {"plan"},
    3: {"zipl", "dump"},
    4: {"sim", "qemu"},
    # __init__ re-exports the API (lazily); the lower layers import only its __version__
    5: {"commands", "cli", "__main__", "api", "__init__"},
}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for level, names in LAYERS.items():
        if top in names:
            return level
    raise AssertionError(f"{module}: not placed in a layer (add it to LAYERS and docs/architecture.md)")


def imports_of(path: Path) -> list[str]:
    """The zipldump modules `path` imports; `from zipldump import qemu` counts as zipldump.qemu."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "zipldump":
            for alias in node.names:
                is_module = (PACKAGE / f"{alias.name}.py").is_file() or (PACKAGE / alias.name).is_dir()
                out.append(f"zipldump.{alias.name}" if is_module else "zipldump")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zipldump"):
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("zipldump")]
    return out


def test_every_module_has_a_layer_and_imports_only_from_layers_above() -> None:
    violations = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    for path in modules:
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        mine = layer_of(module)
        for imported in imports_of(path):
            if imported != "zipldump" and layer_of(imported) > mine:
                violations.append(f"{module} (layer {mine}) imports {imported} (layer {layer_of(imported)})")
    assert not violations, "\n".join(violations)


def test_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bootmap.py"
    bad.write_text("from zipldump.sim.zcore import Zcore\n")
    assert imports_of(bad) == ["zipldump.sim.zcore"]
    assert layer_of("zipldump.sim.zcore") > layer_of("zipldump.zipl.bootmap")
    # the package form names the module too (it used to be skipped as plain "zipldump")
    bad.write_text("from zipldump import __version__, sim, qemu\n")
    assert imports_of(bad) == ["zipldump", "zipldump.sim", "zipldump.qemu"]


def test_no_two_modules_share_a_basename_outside_commands() -> None:
    """One name per concept: commands/ is named after the CLI's verbs; elsewhere a basename is used once."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or path.name in ("__init__.py", "__main__.py"):
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(PACKAGE)} and {rel}")
        seen[path.name] = path
    assert not clashes, clashes
