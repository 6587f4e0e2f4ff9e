"""Meta-tests that keep the hooks honest: each has a test and a docs entry; the core imports no plugin, nor litellm."""

import ast
import inspect
import re
import tomllib
from pathlib import Path

import pluggy

from scientist_core import hookspecs
from scientist_core.kinds import KIND_HOOKS
from scientist_core.plugins import PluginHost
from tests.helpers import modules_loaded_by

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_"))


def test_hook_list_is_complete():
    assert set(KIND_HOOKS.values()) | {"register_commands"} == set(HOOKS)


def test_every_hook_has_a_test():
    tested = set(re.findall(r"^def test_(register_\w+)\(", (ROOT / "tests" / "test_hooks.py").read_text(), re.M))
    assert tested == set(HOOKS)


def test_every_hook_is_documented():
    documented = set(re.findall(r"^### (register_\w+)$", (ROOT / "docs" / "plugins.md").read_text(), re.M))
    assert documented == set(HOOKS)


def test_every_hook_has_a_docstring():
    for name in HOOKS:
        assert getattr(hookspecs, name).__doc__, name


def test_builtins_have_no_stray_hook_implementations(monkeypatch):
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "")
    host = PluginHost().load()
    host.pm.check_pending()
    assert host.failures == []


def test_core_imports_no_plugin_package():
    offenders = []
    for path in (ROOT / "scientist_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top.startswith("scientist_") and top != "scientist_core":
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_the_core_neither_needs_nor_imports_litellm():
    """litellm (seconds to import, a large dependency) belongs to scientist-litellm, the library of the provider
    plugins that reach their API through it; the core, with only the local model, runs without it."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in dependencies if d.startswith("litellm")] == []
    code = ("import pkgutil, scientist_core\n"
            "for module in pkgutil.walk_packages(scientist_core.__path__, 'scientist_core.'):\n"
            "    __import__(module.name)")
    loaded = modules_loaded_by(code, {"scientist_core", "litellm"})
    assert "scientist_core.cli" in loaded and any(m.startswith("scientist_core.pipeline.") for m in loaded)
    assert [m for m in loaded if m.split(".")[0] == "litellm"] == []


def test_pluggy_marker_is_scientist():
    assert isinstance(hookspecs.hookimpl, pluggy.HookimplMarker)
    assert hookspecs.hookimpl.project_name == "scientist"
