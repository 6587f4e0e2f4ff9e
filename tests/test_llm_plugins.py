"""LLM provider plugins come and go with their packages; the reviewer's model is a setting; nothing heavy loads
at start-up.

The install/uninstall test uses real `pip install -e` and `pip uninstall` in a throwaway virtual environment
that sees the dev environment's libraries but none of its scientist plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from scientist_core.model_choice import open_chat
from scientist_core.plugins import PluginHost
from scientist_core.settings import load_settings
from tests.helpers import modules_loaded_by

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ROOT / "plugins" / "llm_backends"
PROVIDERS = {"openai": "scientist-llm-openai", "anthropic": "scientist-llm-anthropic",
             "ollama": "scientist-llm-ollama", "local": "scientist-llm-local"}


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(dist)
        return True
    except PackageNotFoundError:
        return False


def _is_scientist_plugin(dist_info: Path) -> bool:
    entry_points = dist_info / "entry_points.txt"
    return entry_points.is_file() and "[scientist]" in entry_points.read_text()


@pytest.fixture(scope="module")
def throwaway_venv(tmp_path_factory) -> Path:
    """A venv whose sys.path has the dev environment's libraries (symlinked) minus every scientist plugin; the
    core and scientist-litellm (the providers' library) from the source tree, as their editable .pth files are not
    carried over."""
    base = tmp_path_factory.mktemp("venv")
    mirror = base / "libs"
    mirror.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if entry.name.endswith(".pth") or (entry.name.endswith(".dist-info") and _is_scientist_plugin(entry)):
            continue
        (mirror / entry.name).symlink_to(entry)
    env_dir = base / "env"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    (Path(env_site) / "dev_libs.pth").write_text(f"{ROOT}\n{BACKENDS / 'litellm' / 'src'}\n{mirror}\n")
    return python


def _models(python: Path, workdir: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIENTIST_")}
    env["OPENAI_API_KEY"] = env["ANTHROPIC_API_KEY"] = ""
    env["OLLAMA_HOST"] = "127.0.0.1:9"      # nothing listens there: the ollama plugin lists no model
    result = subprocess.run([str(python), "-m", "scientist_core.cli", "models", "--json"], capture_output=True,
                            text=True, cwd=workdir, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return [row["id"] for row in json.loads(result.stdout)]


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and ("hatchling" in result.stderr and "No matching distribution" in result.stderr):
        pytest.skip("pip cannot fetch hatchling (the build backend) from the package index")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_uninstalling_a_provider_removes_its_models_and_installing_adds_them_back(throwaway_venv, tmp_path):
    python = throwaway_venv
    assert not any(m.startswith(("openai/", "anthropic/")) for m in _models(python, tmp_path))

    _pip(python, "install", "--no-deps", "-e", str(BACKENDS / "anthropic"))
    models = _models(python, tmp_path)
    assert "anthropic/claude-sonnet-4-5" in models and not any(m.startswith("openai/") for m in models)

    _pip(python, "install", "--no-deps", "-e", str(BACKENDS / "openai"))
    models = _models(python, tmp_path)
    assert "anthropic/claude-sonnet-4-5" in models and "openai/gpt-4o-mini" in models

    _pip(python, "uninstall", "-y", "scientist-llm-anthropic")
    models = _models(python, tmp_path)
    assert not any(m.startswith("anthropic/") for m in models) and "openai/gpt-4o-mini" in models


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_each_provider_is_selected_by_its_distribution(provider, monkeypatch):
    if not _installed(PROVIDERS[provider]):
        pytest.skip(f"{PROVIDERS[provider]} is not installed")
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", PROVIDERS[provider])
    host = PluginHost().load()
    assert host.names("llm") == [provider] and host.failures == []
    monkeypatch.setenv("SCIENTIST_LOAD_PLUGINS", "")
    assert PluginHost().load().names("llm") == []


def test_the_reviewer_model_is_a_setting(openai_server, monkeypatch, run_store, tmp_path):
    for dist in ("scientist-llm-openai", "scientist-llm-anthropic"):
        if not _installed(dist):
            pytest.skip(f"{dist} is not installed")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-scientist-000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-reviewer-000000")
    monkeypatch.setenv("SCIENTIST_LLMS__OPENAI__BASE_URL", openai_server.base_url)
    monkeypatch.setenv("SCIENTIST_LLMS__ANTHROPIC__BASE_URL", openai_server.url)
    monkeypatch.setenv("SCIENTIST_MODEL", "openai/gpt-4o-mini")
    run_store.create_run("r", "run", "example", tmp_path)
    openai_server.enqueue("from the scientist", "from the reviewer", "from the new reviewer")

    settings = load_settings()
    assert open_chat(settings, stage="ideas", store=run_store, run_id="r").ask("hi") == "from the scientist"
    assert open_chat(settings, stage="review", role="reviewer", store=run_store, run_id="r").ask("hi") \
        == "from the reviewer"                                      # default: the scientist's model
    monkeypatch.setenv("SCIENTIST_REVIEWER_MODEL", "anthropic/claude-haiku-4-5")
    settings = load_settings()
    assert open_chat(settings, stage="review", role="reviewer", store=run_store, run_id="r").ask("hi") \
        == "from the new reviewer"
    assert [r.path for r in openai_server.chat_requests()] == ["/v1/chat/completions"] * 2 + ["/v1/messages"]
    assert [c["model"] for c in run_store.llm_calls("r")] == ["openai/gpt-4o-mini", "openai/gpt-4o-mini",
                                                               "anthropic/claude-haiku-4-5"]


def test_start_up_imports_no_llm_library():
    """`scientist --help` loads every plugin module: none of them, nor the chat path, may import litellm or
    llama_cpp (seconds each)."""
    code = ("from scientist_core.plugins import get_host; import scientist_core.cli; "
            "import scientist_core.commands.llm, scientist_core.chat, scientist_litellm, "
            "scientist_core.testing.fake_openai; host = get_host(); host.names('llm')")
    assert modules_loaded_by(code, {"litellm", "llama_cpp", "openai", "anthropic", "tiktoken"}) == []
