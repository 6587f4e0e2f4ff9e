"""`scientist run nanogpt --quick` end to end with the scripted model: the data prepared from the cache before
anything is spent, real training in the sandbox (which sees the data folder read-only), plots and the paper;
and a code change that lets the model see the future fails its run, whose numbers never reach the paper."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from scientist_core import Limits
from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import start_run
from scientist_core.settings import load_settings
from scientist_paper.results import result_values
from scientist_sandbox import run
from tests.pipeline_script import recorded_runs, script_full_run

METRIC = "shakespeare_char.best_val_loss"



def options(**overrides) -> RunOptions:
    values = dict(template="nanogpt", num_ideas=1, reflections=2, novelty_rounds=3, max_runs=2, max_tries=2,
                  citation_rounds=1, quick=True)
    return RunOptions(**{**values, **overrides})


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")
def test_full_run_on_the_nanogpt_template(configured, plugin_host, fake_llm):
    from scientist_nanogpt.testing import seed_shakespeare

    seed_shakespeare(Path(os.environ["SCIENTIST_DATA_DIR"]))
    # run 1 changes knobs; run 2 first asks for a code change that removes the causal mask (the paper's leak):
    # the guard fails that attempt, the model is told why and plans a knob-only run instead
    script_full_run(fake_llm, ideas=("shorter_context",), metric=METRIC,
                    plan=(("half the context", {"block_size": 32, "max_iters": 200}),
                          ("attention without the mask", {"max_iters": 60})))
    plan = fake_llm.by_schema["ExperimentPlan"][0]
    plan["runs"][1]["code_change"] = "let attention see every position of the context"
    fake_llm.answer("CodeEdits", {"summary": "drop the causal mask", "edits": [
        {"file": "experiment.py", "search": "is_causal=True", "replace": "is_causal=False"}]})
    fake_llm.answer("PlannedRun", {"description": "a lower learning rate instead",
                                   "knob_changes": {"learning_rate": 1e-3, "max_iters": 200}, "code_change": ""})

    summary = start_run(load_settings(), plugin_host, options(), report=lambda line: None)
    (item,) = summary.ideas
    assert item.problem == "" and item.runs_done == 2 and item.overall == 5
    workspace = summary.run_dir / "shorter_context"
    records = recorded_runs(summary.run_dir, workspace.name)
    assert [r.knob_changes for r in records[1:]] == [{"block_size": 32, "max_iters": 200},
                                                     {"learning_rate": 1e-3, "max_iters": 200}]
    assert not records[2].code_changed and "is_causal=True" in (workspace / "experiment.py").read_text()
    for index in (0, 1, 2):
        assert json.loads((workspace / "sandbox" / f"run_{index}" / "causality.json").read_text())["ok"] is True

    from scientist_core.store import Store

    store = Store.open_existing(load_settings().store_path)
    attempts = [row for row in store.experiments(summary.run_id) if row["run_index"] == 2]
    assert [row["status"] for row in attempts] == ["failed", "done"]
    assert attempts[0]["metrics"] is None  # the leaky run's numbers were never recorded
    assert attempts[0]["execution"]["stderr_tail"].startswith(
        "causality check failed: shakespeare_char seed 0: in eval mode")

    values = result_values(records)
    import pymupdf

    with pymupdf.open(item.paper) as pdf:
        assert pdf.page_count >= 2
        text = " ".join(page.get_text() for page in pdf)
    for key in (f"run0.{METRIC}", f"run1.{METRIC}"):
        assert values[key].plain in text, key
    assert {"train_loss_shakespeare_char.png", "val_loss_shakespeare_char.png"} <= {
        p.name for p in (workspace / "figures").glob("*.png")}


def test_the_sandbox_shows_a_data_folder_read_only(tmp_path):
    """What `run_limits` relies on: a folder under /tmp (hidden in the sandbox) named in Limits.read_only is
    readable inside and cannot be written; without it the run does not see it."""
    data = tmp_path / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    (data / "train.bin").write_bytes(b"\x01\x02")
    work = tmp_path / "box"
    work.mkdir()
    probe = (f"import pathlib; p = pathlib.Path({str(data / 'train.bin')!r}); print(p.exists() and p.read_bytes()); "
             "p.write_bytes(b'x')")
    seen = run(["python", "-c", probe], work, Limits(timeout_s=60, read_only=[str(data)]))
    if not seen.isolation.get("filesystem"):
        pytest.skip("no filesystem isolation on this machine: everything is visible and writable anyway")
    assert seen.stdout_tail.strip() == "b'\\x01\\x02'" and not seen.ok
    assert "Read-only file system" in seen.stderr_tail
    assert (data / "train.bin").read_bytes() == b"\x01\x02"
    hidden = run(["python", "-c", probe], work, Limits(timeout_s=60))
    assert hidden.stdout_tail.strip() == "False"


def test_offline_without_data_the_baseline_stops_in_one_line_before_starting(tmp_path, scientist_env, monkeypatch):
    import dataclasses
    import socket

    from scientist_nanogpt import data

    with socket.socket() as sock:  # a port nothing listens on: connection refused, as offline
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setitem(data.SOURCES, "shakespeare_char",
                        dataclasses.replace(data.SOURCES["shakespeare_char"], url=f"http://127.0.0.1:{port}/input.txt"))
    from scientist_core.errors import ScientistError
    from scientist_core.pipeline.baseline import run_baseline
    from scientist_core.plugins import get_host

    with pytest.raises(ScientistError) as caught:
        run_baseline(get_host(), load_settings(out_dir=tmp_path / "out"), "nanogpt", quick=True)
    line = caught.value.one_line()
    where = Path(os.environ["SCIENTIST_DATA_DIR"]).resolve() / "shakespeare_char" / "input.txt"
    assert "\n" not in line and f"at {where}" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing started

