"""Plugin loading: entry points, selection, broken plugins, duplicates, unknown names."""

import json

import pytest

from scientist_core.errors import PluginError
from scientist_core.plugins import PluginHost
from tests.helpers import make_distribution, run_cli, template_module


def plugins_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_builtins_load_without_entry_points(monkeypatch):
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "")
    host = PluginHost().load()
    assert all(info.builtin for info in host.plugins.values())
    assert host.names("coder") == ["search_replace"]
    assert host.names("template") == host.names("executor") == []


def test_example_template_listed_and_hidden_by_selection():
    listed = plugins_json(run_cli("plugins", "--json"))
    example = [p for p in listed["plugins"] if p["distribution"] == "scientist-example"]
    assert len(example) == 1
    assert example[0]["registers"] == {"template": ["example"]}
    assert example[0]["version"]

    hidden = plugins_json(run_cli("plugins", "--json", env={"SCIENTIST_LOAD_PLUGINS": ""}))
    assert {p["distribution"] for p in hidden["plugins"]} == {"scientist-core"}
    assert all(p["builtin"] for p in hidden["plugins"])
    assert {"coder": ["search_replace"]} in [p["registers"] for p in hidden["plugins"]]

    chosen = plugins_json(run_cli("plugins", "--json", env={"SCIENTIST_LOAD_PLUGINS": "scientist-example"}))
    assert {p["distribution"] for p in chosen["plugins"]} == {"scientist-core", "scientist-example"}


def test_plugin_whose_import_raises_is_reported_and_cli_still_works(tmp_path):
    site = make_distribution(tmp_path / "site", "broken-plugin", "1.2.3", {"broken": "broken_plugin"},
                             {"broken_plugin": "raise RuntimeError('boom at import')\n"})
    env = {"PYTHONPATH": str(site)}
    listed = plugins_json(run_cli("plugins", "--json", env=env))
    assert listed["failed"] == [{"name": "broken", "distribution": "broken-plugin", "version": "1.2.3",
                                 "error": "RuntimeError: boom at import"}]
    assert "scientist-example" in {p["distribution"] for p in listed["plugins"]}

    table = run_cli("plugins", env=env)
    assert table.returncode == 0
    assert "broken-plugin 1.2.3" in table.stderr and "boom at import" in table.stderr

    templates = run_cli("templates", env=env)
    assert templates.returncode == 0 and "example" in templates.stdout


def test_duplicate_name_is_an_error_naming_both_packages(tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "first-dist", "1.0", {"first": "first_plugin"}, {"first_plugin": template_module("dup")})
    make_distribution(site, "second-dist", "2.0", {"second": "second_plugin"},
                      {"second_plugin": template_module("dup")})
    result = run_cli("baseline", "dup", env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "first-dist 1.0" in lines[0] and "second-dist 2.0" in lines[0]
    assert "SCIENTIST_LOAD_PLUGINS" in lines[0]


def test_unknown_name_lists_installed(plugin_host):
    with pytest.raises(PluginError) as raised:
        plugin_host.get("template", "nonesuch")
    assert "installed: " in raised.value.one_line() and "example" in raised.value.one_line()


def test_registering_a_non_template_is_reported_as_a_failure(tmp_path, monkeypatch):
    source = """
        from scientist_core import hookimpl

        @hookimpl
        def register_templates(register):
            register(dict)
    """
    site = make_distribution(tmp_path / "site", "wrong-kind", "0.1", {"wrong": "wrong_plugin"},
                             {"wrong_plugin": source})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "wrong-kind")
    host = PluginHost().load()
    assert host.names("template") == []
    (failure,) = host.failures
    assert failure.distribution == "wrong-kind" and "subclass of scientist_core.Template" in failure.error


def test_misspelled_hook_is_caught(tmp_path, monkeypatch):
    source = """
        from scientist_core import hookimpl

        @hookimpl
        def register_templtes(register):
            pass
    """
    site = make_distribution(tmp_path / "site", "typo-plugin", "0.1", {"typo": "typo_plugin"}, {"typo_plugin": source})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "typo-plugin")
    host = PluginHost().load()
    (failure,) = host.failures
    assert failure.distribution == "typo-plugin" and "register_templtes" in failure.error
    assert "typo" not in host.plugins
