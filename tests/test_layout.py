"""The rule the tree shows (issue #11): web and cli call services; services call store and domain;
domain imports nothing above itself and does no I/O.  No import cycle, no environment read outside
``gridmap/settings.py``, no function-level import without a comment saying why it is deferred."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gridmap"
#: What each layer may import from gridmap (besides itself).
ALLOWED = {
    "domain": {"domain", "geo", "errors"},
    "store": {"store", "domain", "geo", "errors", "settings"},
    "services": {"services", "store", "domain", "geo", "errors", "settings"},
    "web": {"web", "services", "domain", "geo", "errors", "settings"},
    "cli": {"cli", "services", "domain", "errors", "settings", "web"},
}
#: Top-level modules of the standard library that read or write files, the network or processes.
IO_MODULES = {"csv", "tomllib", "os", "io", "json", "subprocess", "socket", "tempfile", "shutil", "pathlib"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _resolve(module: str, node: ast.ImportFrom, is_package: bool, known) -> set[str]:
    """The gridmap modules an ``import from`` takes: each name that is a module, else the module it is
    taken from."""
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("gridmap"):
        return set()
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}


def _graph() -> dict[str, set[str]]:
    """Module -> the gridmap modules it imports at module level."""
    found = {name: (path, tree) for name, path, tree in _modules()}
    graph = {}
    for name, (path, tree) in found.items():
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                deps |= {d for d in _resolve(name, node, path.name == "__init__.py", found) if d in found}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in found}
        graph[name] = deps - {name}
    return graph


def test_no_import_cycle():
    graph = _graph()
    done, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(node) :] + [node]))
        if node in done:
            return
        path.append(node)
        for dep in sorted(graph[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer):
    wrong = []
    for module, deps in _graph().items():
        if module.split(".")[1:2] != [layer]:
            continue
        for dep in deps:
            top = dep.split(".")[1] if dep != "gridmap" else "gridmap"
            if top not in ALLOWED[layer]:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, wrong


def test_domain_does_no_io():
    wrong = []
    for module, _path, tree in _modules():
        if not module.startswith("gridmap.domain"):
            continue
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            wrong += [f"{module} imports {n}" for n in names if n.split(".")[0] in IO_MODULES]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                wrong.append(f"{module} calls open()")
    assert not wrong, wrong


def _reads_os_environment(node) -> bool:
    """``os.environ``/``os.getenv`` (a WSGI request's ``environ`` is not the process environment)."""
    if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(a.name in ("environ", "getenv") for a in node.names)
    )


def test_environment_is_read_in_settings_only():
    wrong = [
        module
        for module, _path, tree in _modules()
        if module != "gridmap.settings" and any(_reads_os_environment(n) for n in ast.walk(tree))
    ]
    assert not wrong, wrong


def test_function_level_imports_say_why():
    """Imports belong at the top; the only exception is a heavy dependency deferred on purpose, with a
    comment on the line before (or at the end of the line) saying so."""
    wrong = []
    for module, path, tree in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    above = node.lineno - 2  # the comment may head a block of imports
                    while lines[above].strip().startswith(("import ", "from ")):
                        above -= 1
                    inline = "# deferred:" in lines[node.lineno - 1]  # or said at the end of the line
                    if not inline and not lines[above].strip().startswith("# deferred:"):
                        wrong.append(f"{module}:{node.lineno}")
    assert not wrong, wrong
