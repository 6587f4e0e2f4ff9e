"""The core's shape, checked from its source: no import cycle (function-level and TYPE_CHECKING imports
included), no stage of `scientist run` importing another, and plugins reaching into the core only through its public
API: `scientist_core` (whose names load on first use where they need more of the core) and
`scientist_core.testing`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "scientist_core"
STAGES = {"ideas", "novelty", "experiments", "plots", "writeup", "review", "baseline"}  # pipeline/<stage>.py
PUBLIC = {"scientist_core", "scientist_core.testing"}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code: `from a.b import c` counts as a.b.c and a.b."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(path, ROOT): path for path in CORE.rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in modules and m != name} - {"scientist_core"}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as the modules along it, or [] when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_core_has_no_import_cycle():
    assert find_cycle(core_graph()) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]  # the check sees one


def test_no_stage_imports_another_stage():
    stage_modules = {f"scientist_core.pipeline.{stage}" for stage in STAGES}
    crossings = sorted((name, target) for name, targets in core_graph().items() if name in stage_modules
                       for target in targets if target in stage_modules)
    assert crossings == []


def plugin_private_imports() -> set[tuple[str, str]]:
    """(plugin folder, private core module) for every non-test source file of plugins/."""
    modules = {module_name(path, ROOT) for path in CORE.rglob("*.py")}
    found = set()
    for path in (ROOT / "plugins").glob("**/src/**/*.py"):
        plugin = str(path.relative_to(ROOT / "plugins")).split("/src/")[0]
        for name in imported_modules(path):
            if name in modules and name not in PUBLIC:
                found.add((plugin, name))
    return found


def test_plugins_reach_into_the_core_only_through_its_public_api():
    assert plugin_private_imports() == set(), "a plugin imports a private core module: use what scientist_core exports"


def test_every_name_the_public_api_lists_is_there():
    import scientist_core

    missing = [name for name in scientist_core.__all__ if not hasattr(scientist_core, name)]
    assert missing == []
    assert "Chat" in dir(scientist_core)
