"""One test per hook: a plugin implementing it is loaded, its classes are found and configured."""

from pathlib import Path

import pytest

from scientist_core import LLM, Coder, Compiler, Config, Executor, Reviewer, Searcher, Template, Writer, hookimpl
from scientist_core.errors import SettingsError
from scientist_core.plugins import PluginInfo
from tests.helpers import make_distribution, run_cli


def make_class(base: type, name: str) -> type:
    class Settings(Config):
        level: int = 1

    return type(f"Test{base.__name__}", (base,), {"name": name, "description": "test", "Config": Settings})


def check_collected(host, kind, hook_name, base):
    cls = make_class(base, f"test-{kind}")

    class Plugin:
        pass

    def implementation(register):
        register(cls)

    implementation.__name__ = hook_name
    setattr(Plugin, hook_name, staticmethod(hookimpl(implementation)))
    host.add(Plugin(), PluginInfo(f"test-{kind}-plugin", "test-dist", "9.9"))

    registration = host.get(kind, f"test-{kind}")
    assert registration.cls is cls and registration.plugin.distribution == "test-dist"
    instance = host.create(kind, f"test-{kind}", {f"test-{kind}": {"level": "3"}})
    assert isinstance(instance, base) and instance.config.level == 3
    with pytest.raises(SettingsError, match="unknown_key"):
        host.create(kind, f"test-{kind}", {f"test-{kind}": {"unknown_key": 1}})


def test_register_templates(plugin_host):
    check_collected(plugin_host, "template", "register_templates", Template)


def test_register_llms(plugin_host):
    check_collected(plugin_host, "llm", "register_llms", LLM)


def test_register_searchers(plugin_host):
    check_collected(plugin_host, "searcher", "register_searchers", Searcher)


def test_register_writers(plugin_host):
    check_collected(plugin_host, "writer", "register_writers", Writer)
    assert "latex" in plugin_host.names("writer")


def test_register_compilers(plugin_host):
    check_collected(plugin_host, "compiler", "register_compilers", Compiler)


def test_register_reviewers(plugin_host):
    check_collected(plugin_host, "reviewer", "register_reviewers", Reviewer)


def test_register_coders(plugin_host):
    check_collected(plugin_host, "coder", "register_coders", Coder)


def test_register_executors(plugin_host):
    check_collected(plugin_host, "executor", "register_executors", Executor)
    assert "local" in plugin_host.names("executor")


def test_register_commands(tmp_path: Path):
    source = """
        import typer
        from scientist_core import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def greet(who: str):
                typer.echo(f"hello {who}")
    """
    site = make_distribution(tmp_path / "site", "greeter", "0.3", {"greeter": "greeter_plugin"},
                             {"greeter_plugin": source})
    result = run_cli("greet", "world", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello world"
    assert "greet" in run_cli("--help", env={"PYTHONPATH": str(site)}).stdout
    assert "greet" not in run_cli("--help", env={"PYTHONPATH": str(site), "SCIENTIST_LOAD_PLUGINS": ""}).stdout
