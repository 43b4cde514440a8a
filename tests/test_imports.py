"""The import graph of the three packages: downward only, no circle.

Layers, bottom to top: ``device_models`` ← ``pcmsim`` ← ``hardware_in_loop``, whose top is the command
line (``hardware_in_loop/cli/``): no module is an exception. The graph is built
from the source with :mod:`ast`: every ``import`` statement counts, at module level, inside
functions and under ``if TYPE_CHECKING``. A package's ``__init__`` is the node of the package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("device_models", "pcmsim", "hardware_in_loop")
LAYER = {"device_models": 0, "pcmsim": 1, "hardware_in_loop": 2}
def project_modules() -> dict[str, Path]:
    """Dotted name → source file of every module of the three packages."""
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The project module that importing ``name`` executes last (its longest module prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in mods:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (anywhere in its source)."""
    mods = project_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # ``from package import submodule`` imports the submodule; a name from the package
                # (or module) imports that package (or module)
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in mods else source
                           for alias in node.names]
            for target in targets:
                resolved = _resolve(target, mods)
                if resolved is not None and resolved != mod:
                    graph[mod].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_sees_every_package() -> None:
    graph = import_graph()
    assert {"device_models", "pcmsim.crossbar", "hardware_in_loop.schemes"} <= set(graph)
    assert "pcmsim.crossbar" in graph["hardware_in_loop.schemes"]


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_imports_run_downward_only() -> None:
    wrong = []
    for mod, targets in import_graph().items():
        for target in sorted(targets):
            if LAYER[target.split(".")[0]] > LAYER[mod.split(".")[0]]:
                wrong.append(f"{mod} imports {target}")
    assert not wrong, "imports against the layers device_models ← pcmsim ← hardware_in_loop:\n" + "\n".join(
        wrong
    )


def test_every_module_imports_on_its_own() -> None:
    """Each module imported first, with no project module loaded before it (one interpreter; the
    project's modules are dropped from ``sys.modules`` between imports, torch stays loaded)."""
    names = sorted(project_modules())
    code = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        f"roots = {PACKAGES!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] in roots]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["device_models", "pcmsim", "hardware_in_loop"])
def test_every_public_class_and_function_has_a_docstring(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__
               if (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
               and not (obj.__doc__ or "").strip()]
    assert missing == [], f"{package}: public names without a docstring: {missing}"
