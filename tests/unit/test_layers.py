"""The package's architecture, checked: imports point downward only and nothing is circular.

Every ``import benchmark...`` in ``benchmark/`` (module-level and inside functions: a lazy
import does not make an upward dependency acceptable) is mapped to its top-level subpackage
and must go to a strictly lower layer than the importer's. Module-level imports between
modules must form no cycle. The layers are the ones DEVELOPERS.md and STYLE.md describe:
cli -> evaluation / leaderboard / reports -> components -> results, registry.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "benchmark"

#: Lowest first. A module may import from strictly lower layers only.
LAYERS: list[set[str]] = [
    {"errors"},
    {"registry", "paths", "hashing", "device", "params"},
    {"results"},
    {"metrics", "corruptions", "datasets"},
    {"models"},
    {"attacks"},
    {"defenses"},
    {"training", "testing"},
    {"evaluation", "leaderboard", "reports"},
    {"diagnostics"},  # draws a run's figures from its re-built evaluation plan
    {"api"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """``benchmark.attacks.base`` -> ``attacks``; the package root itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, *, top_level_only: bool) -> list[tuple[str, int]]:
    """(imported benchmark module, line) of one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            if base == "benchmark" or base.startswith("benchmark."):
                # `from benchmark.x import y` imports submodule benchmark.x.y when there is
                # one, else a name of benchmark.x.
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in _MODULES else base, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("benchmark")]
    return out


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


_MODULES = {_module_name(f) for f in _files()}


def test_every_subpackage_has_a_layer():
    parts = {_part(_module_name(f)) for f in _files()} - {""}
    assert parts <= set(RANK), f"give these a layer in LAYERS: {sorted(parts - set(RANK))}"


def test_imports_point_downward_only():
    upward = []
    for f in _files():
        mine = _part(_module_name(f))
        if not mine:  # the package root re-exports the public API lazily (PEP 562)
            continue
        for target, line in _imports(f, top_level_only=False):
            theirs = _part(target)
            if not theirs or theirs == mine or theirs not in RANK:
                continue
            if RANK[theirs] >= RANK[mine]:
                upward.append(f"{f.relative_to(PACKAGE.parent)}:{line} {mine} -> {theirs}")
    assert not upward, "upward or sideways imports:\n" + "\n".join(upward)


def test_no_circular_module_imports():
    modules = {_module_name(f): f for f in _files()}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, f in modules.items():
        for target, _ in _imports(f, top_level_only=True):
            if target in modules and target != name:
                graph[name].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(modules):
        if node not in state:
            visit(node)
    assert not cycles, "circular imports:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_leaderboard_and_results_load_no_torch():
    code = (
        "import sys, benchmark, benchmark.results, benchmark.leaderboard.build, "
        "benchmark.reports.zoo; "
        "print(sorted(m for m in ('torch', 'torchattacks', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
