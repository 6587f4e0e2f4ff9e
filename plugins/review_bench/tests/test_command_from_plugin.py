"""The command comes from the plugin alone: the installed `scientist` lists it when the plugin loads, and
runs without it, the command simply absent, when SCIENTIST_LOAD_PLUGINS leaves the plugin out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCIENTIST = Path(sys.executable).with_name("scientist")


def scientist(*args: str, load_plugins: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script in this test's environment; `load_plugins` sets the selection."""
    env = dict(os.environ)
    if load_plugins is not None:
        env["SCIENTIST_LOAD_PLUGINS"] = load_plugins
    return subprocess.run([str(SCIENTIST), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("load_plugins", [None, "scientist-review-bench"])
def test_listed_when_the_plugin_loads(scientist_env, load_plugins):
    listed = scientist("--help", load_plugins=load_plugins)
    assert listed.returncode == 0, listed.stderr
    assert "review-bench" in listed.stdout
    usage = scientist("review-bench", "--help", load_plugins=load_plugins)
    assert usage.returncode == 0, usage.stderr
    assert "--bootstrap" in usage.stdout and "--jobs" in usage.stdout


def test_absent_without_the_plugin_and_the_cli_still_runs(scientist_env):
    listed = scientist("--help", load_plugins="")
    assert listed.returncode == 0, listed.stderr
    assert "review-bench" not in listed.stdout
    missing = scientist("review-bench", "toy.jsonl", load_plugins="")
    assert missing.returncode != 0 and "No such command" in missing.stderr
    review = scientist("review", "--help", load_plugins="scientist-reviewer")  # whose options it borrows
    assert review.returncode == 0 and "--ensemble" in review.stdout and "review-bench" not in \
        scientist("--help", load_plugins="scientist-reviewer").stdout
