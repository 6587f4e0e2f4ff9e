"""`scientist run grokking` end to end with the scripted model, in quick mode: real Transformer training in the
sandbox (the baseline and two planned runs), the plot step, the paper compiled with latexmk, the review."""

from __future__ import annotations

import shutil

import pytest

from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import start_run
from scientist_core.settings import load_settings
from scientist_paper.results import result_values
from tests.pipeline_script import recorded_runs, script_full_run

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")
pytest.importorskip("scientist_grokking", reason="needs the grokking plugin: pip install -e plugins/grokking")

# two runs planned by the scripted model, a quarter of quick mode's 800 updates to keep the test short: a
# shorter schedule and, on top of it, no weight decay
PLAN = (("a shorter schedule of 200 updates", {"steps": 200}),
        ("no weight decay, 200 updates", {"weight_decay": 0.0, "steps": 200}))
METRIC = "x_plus_y.final_val_acc"



def test_full_run_on_the_grokking_template(configured, plugin_host, fake_llm):
    script_full_run(fake_llm, ideas=("weight_decay_and_schedule",), metric=METRIC, plan=PLAN)
    options = RunOptions(template="grokking", num_ideas=1, reflections=2, novelty_rounds=3, max_runs=2,
                         max_tries=2, citation_rounds=1, quick=True)
    summary = start_run(load_settings(), plugin_host, options, report=lambda line: None)
    (item,) = summary.ideas
    assert item.problem == "" and item.runs_done == 2 and item.overall == 5
    workspace = summary.run_dir / "weight_decay_and_schedule"
    records = recorded_runs(summary.run_dir, workspace.name)
    assert [record.knob_changes for record in records[1:]] == [changes for _, changes in PLAN]
    for record in records:
        assert set(record.results.datasets) == {"x_plus_y"}
    values = result_values(records)
    # 800 updates generalise further than 200
    assert values["run0.x_plus_y.final_val_acc"].value > values["run1.x_plus_y.final_val_acc"].value
    import pymupdf

    with pymupdf.open(item.paper) as pdf:
        assert pdf.page_count >= 2
        text = " ".join(page.get_text() for page in pdf)
    for key in (f"run0.{METRIC}", f"run1.{METRIC}"):
        assert values[key].plain in text, key
    drawn = {path.name for path in (workspace / "figures").glob("*.png")}
    assert {"loss_curves.png", "accuracy_curves.png"} <= drawn
    assert len(list((workspace / "latex" / "figures").glob("*.png"))) == len(drawn)  # every figure in the paper
