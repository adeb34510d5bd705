"""The layers of the library, checked on its source (docs/architecture.md draws them).

Each module may import only modules of its own layer or of layers below it; features do
not import each other; no module imports another's private names; dulwich is imported
only by the git engine (``gitstate/git/``); only the engine deletes or renames files;
the command line builds on the façade, never on the engine or the core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY, CLI = ROOT / "gitstate", ROOT / "cli"

LAYERS = {  # bottom to top
    "base": {"errors", "ids", "codec", "message", "models", "retention", "jsonmerge"},
    "engine": {"git"},
    "core": {"core", "checkpoints", "rewrite", "settings", "maintenance", "merge"},
    "features": {"history", "prune", "diff", "seed_import", "remote", "verify", "langgraph", "explore",
                 "refnames"},
    "facade": {"repository"},
    "compat": {"compat", "__init__"},
    "web": {"web"},  # gitstate serve: above the façade, like the command line
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
FEATURES = LAYERS["features"]
# calls that remove or rename files: only the engine makes them (objects, packs, refs, locks)
FILE_REMOVERS = {("os", "unlink"), ("os", "remove"), ("os", "rename"), ("os", "replace"),
                 ("os", "rmdir"), ("os", "removedirs"), ("shutil", "rmtree"), ("shutil", "move")}


def modules(folder: Path, package: str) -> dict[str, ast.Module]:
    """Every module of a package folder by dotted name, parsed."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        found[".".join((package, *parts))] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) of every import in a module."""
    package = name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            names = [alias.name for alias in node.names]
            if node.module is None:  # from . import a, b: each is a module
                found += [(f"{target}.{alias}", [], node.lineno) for alias in names]
            else:
                found.append((target, names, node.lineno))
    return found


def layer_module(dotted: str) -> str | None:
    """The layer key (first component under ``gitstate``) of a library module, else None."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "gitstate" and len(parts) > 1 else None


LIBRARY_MODULES = modules(LIBRARY, "gitstate")
CLI_MODULES = modules(CLI, "gitstate_cli")


def test_every_library_module_has_a_layer() -> None:
    missing = {layer_module(name) for name in LIBRARY_MODULES} - RANK.keys()
    assert not missing, f"modules with no layer in this test (add them to LAYERS): {missing}"


@pytest.mark.parametrize("name", sorted(LIBRARY_MODULES))
def test_imports_go_down_the_layers(name: str) -> None:
    here = layer_module(name)
    assert here is not None
    problems = []
    for target, names, line in imports(name, LIBRARY_MODULES[name]):
        there = layer_module(target)
        if there is None or there == here or target == "gitstate":
            continue
        if there in RANK and RANK[there] > RANK[here]:
            problems.append(f"line {line}: {here} ({_layer(here)}) imports {target} ({_layer(there)})")
        if here in FEATURES and there in FEATURES:
            problems.append(f"line {line}: feature {here} imports feature {target}")
    assert not problems, f"{name}: " + "; ".join(problems)


@pytest.mark.parametrize("name", sorted({**LIBRARY_MODULES, **CLI_MODULES}))
def test_no_module_imports_private_names_of_another(name: str) -> None:
    tree = {**LIBRARY_MODULES, **CLI_MODULES}[name]
    private = [f"line {line}: {target}.{item}" for target, names, line in imports(name, tree)
               for item in names if item.startswith("_") and item != "__version__"]
    assert not private, f"{name} imports private names: {private}"


@pytest.mark.parametrize("name", sorted({**LIBRARY_MODULES, **CLI_MODULES}))
def test_only_the_engine_imports_dulwich(name: str) -> None:
    tree = {**LIBRARY_MODULES, **CLI_MODULES}[name]
    uses = [line for target, _names, line in imports(name, tree) if target.split(".")[0] == "dulwich"]
    assert not uses or name.startswith("gitstate.git."), f"{name} imports dulwich at lines {uses}"


@pytest.mark.parametrize("name", sorted({**LIBRARY_MODULES, **CLI_MODULES}))
def test_only_the_engine_deletes_or_renames_files(name: str) -> None:
    if name.startswith("gitstate.git."):
        return
    tree = {**LIBRARY_MODULES, **CLI_MODULES}[name]
    calls = [f"line {node.lineno}: {node.func.value.id}.{node.func.attr}"
             for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and isinstance(node.func.value, ast.Name)
             and (node.func.value.id, node.func.attr) in FILE_REMOVERS]
    assert not calls, f"{name} removes or renames files outside the engine: {calls}"


FRONT_ENDS = {**CLI_MODULES, **{n: t for n, t in LIBRARY_MODULES.items() if layer_module(n) == "web"}}


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_the_command_line_and_the_web_view_build_on_the_facade(name: str) -> None:
    below = [f"line {line}: {target}" for target, _names, line in imports(name, FRONT_ENDS[name])
             if layer_module(target) in LAYERS["engine"] | LAYERS["core"] | {"repository"}]
    assert not below, f"{name} reaches below the façade: {below}"


def _layer(module: str) -> str:
    return next(layer for layer, members in LAYERS.items() if module in members)
