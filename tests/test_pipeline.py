"""`scientist run` end to end on the example template with the scripted model: every stage, for real
(sandboxed experiments, plots, latexmk, the offline literature index), then crashes and `resume`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scientist_core.pipeline.context import RunOptions
from scientist_core.pipeline.run import resume_run, start_run
from scientist_core.settings import load_settings
from scientist_paper.results import result_values
from tests.pipeline_script import GOOD_REVIEW, recorded_runs, script_full_run

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")



def options(**overrides) -> RunOptions:
    values = dict(template="example", num_ideas=2, reflections=2, novelty_rounds=3, max_runs=2, max_tries=2,
                  citation_rounds=1, quick=True)
    return RunOptions(**{**values, **overrides})


def finished_experiments(store, run_id):
    return [(row["idea"], row["run_index"]) for row in store.experiments(run_id) if row["status"] == "done"]


def test_full_run_produces_every_artifact(configured, plugin_host, fake_llm):
    script_full_run(fake_llm)
    summary = start_run(load_settings(), plugin_host, options(), report=lambda line: None)

    from scientist_core.store import Store

    store = Store.open_existing(load_settings().store_path)
    assert [i.problem for i in summary.ideas] == ["", ""]
    for row in store.ideas(summary.run_id):
        assert row["novel"] == 1 and row["novelty"]["rounds"][0]["source"] == "offline"
    for item in summary.ideas:
        workspace = summary.run_dir / item.name
        baseline, *records = recorded_runs(summary.run_dir, item.name)
        assert [r.knob_changes for r in records] == [{"hidden_size": 64}, {"learning_rate": 0.001}]
        for run in ("run_0", "run_1", "run_2"):
            assert (workspace / "sandbox" / run / "final_info.json").is_file()
        for run in ("run_1", "run_2"):  # the host keeps each run's logs and the code it executed
            assert (workspace / "logs" / run / "stderr.log").is_file()
            assert (workspace / "code" / run / "experiment.py").is_file()
        drawn = {p.name for p in (workspace / "figures").glob("*.png")}
        assert drawn == {p.name for p in (workspace / "sandbox").glob("*.png")}
        assert len(drawn) == len(list((workspace / "latex" / "figures").glob("*.png")))  # in the paper
        assert "## run_1" in (workspace / "notes.txt").read_text()
        assert item.runs_done == 2 and item.overall == 5 and item.decision == "Reject"
        review = json.loads((workspace / "review.json").read_text())
        assert review["review"]["Overall"] == 5 and len(review["reviews"]) == 2

        import pymupdf

        values = result_values([baseline, *records])
        with pymupdf.open(item.paper) as pdf:
            assert pdf.page_count >= 2
            text = " ".join(page.get_text() for page in pdf)
        for key in ("run0.spirals.val_accuracy", "run1.spirals.val_accuracy"):
            assert values[key].plain in text, key
        recorded = {(r["idea"], r["run_index"]): r["metrics"] for r in store.experiments(summary.run_id)
                    if r["status"] == "done"}
        assert recorded[(item.name, 1)]["spirals"]["means"]["val_accuracy"] == values["run1.spirals.val_accuracy"].value
    stages = {s["name"]: s["status"] for s in store.stages(summary.run_id)}
    assert set(stages.values()) == {"done"}
    assert {"ideas", "novelty:slower_learning", "review:wider_hidden_layers"} <= set(stages)
    usage = {row["stage"] for row in store.usage_by_stage(summary.run_id)}
    assert {"ideas", "novelty:wider_hidden_layers", "experiments:slower_learning", "writeup:slower_learning",
            "review:wider_hidden_layers"} <= usage


class Crash(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the pipeline may catch it."""


@pytest.mark.parametrize("crash_at", ["NoveltyStep", "ExperimentPlan", "SectionText", "Review"])
def test_crash_then_resume_redoes_no_finished_experiment(configured, plugin_host, fake_llm, crash_at):
    script_full_run(fake_llm, ideas=("wider_hidden_layers",))
    queue = fake_llm.by_schema[crash_at]

    def crash(call):
        raise Crash(f"killed while asking for {crash_at}")

    queue.insert(1 if crash_at == "NoveltyStep" else 0, crash)
    if crash_at == "NoveltyStep":  # resumed, the novelty check starts over: its decision again follows a search
        queue.append({"thought": "nothing does this", "action": "novel", "query": ""})
    with pytest.raises(Crash):
        start_run(load_settings(), plugin_host, options(num_ideas=1), report=lambda line: None)

    from scientist_core.store import Store

    store = Store.open_existing(load_settings().store_path)
    run = store.latest_run()
    assert run["status"] == "failed"
    before = finished_experiments(store, run["id"])
    summary = resume_run(load_settings(), plugin_host, run["id"], report=lambda line: None)
    after = finished_experiments(store, run["id"])
    assert len(after) == len(set(after)), "an experiment finished twice"
    assert set(before) <= set(after) and len(after) == 3
    (item,) = summary.ideas
    assert item.problem == "" and item.paper and item.overall == 5
    assert store.run(run["id"])["status"] == "done"


MALFORMED = ["this is not JSON at all", '{"wrong": "fields", "Overall": "ten"}', "", "{" + "x" * 200_000]


def test_malformed_answers_at_every_stage_are_repaired_and_recorded(configured, plugin_host, fake_llm):
    """Bad JSON, wrong types, an empty and a huge answer before the good one of every schema: repaired within
    the bounds, every answer in the ledger, and the run finishes."""
    script_full_run(fake_llm, ideas=("wider_hidden_layers",))
    for number, queue in enumerate(fake_llm.by_schema.values()):
        queue.appendleft(MALFORMED[number % len(MALFORMED)])
    # and a code change that does not apply: the failure goes back to the model, which plans the run again
    plan = fake_llm.by_schema["ExperimentPlan"]
    plan[1] = {"runs": [{"description": "rename the optimiser", "knob_changes": {},
                         "code_change": "rename the variable nothing_like_this"}]}
    fake_llm.answer("CodeEdits", {"summary": "rename", "edits": [
        {"file": "experiment.py", "search": "nothing_like_this = 1", "replace": "renamed = 1"}]})
    fake_llm.answer("PlannedRun", {"description": "double the hidden size", "knob_changes": {"hidden_size": 64},
                                   "code_change": ""})
    summary = start_run(load_settings(), plugin_host, options(num_ideas=1), report=lambda line: None)
    (item,) = summary.ideas
    assert item.problem == "" and item.paper and item.overall == 5 and item.runs_done == 1

    from scientist_core.store import Store

    store = Store.open_existing(load_settings().store_path)
    responses = [row["response"] for row in store.llm_calls(summary.run_id)]
    for bad in MALFORMED:
        assert bad in responses
    (edit,) = [a for a in store.artifacts(summary.run_id) if a["kind"] == "code_change"]
    assert edit["meta"]["ok"] is False and "not found" in edit["meta"]["message"]


def test_without_the_novelty_gate_a_not_novel_idea_goes_on(configured, plugin_host, fake_llm):
    script_full_run(fake_llm, ideas=("wider_hidden_layers",))
    fake_llm.by_schema["NoveltyStep"].clear()
    fake_llm.answer("NoveltyStep", *[{"thought": "done before", "action": "not_novel", "query": ""}] * 2)
    summary = start_run(load_settings(), plugin_host, options(num_ideas=1, novelty_gate=False),
                        report=lambda line: None)
    (item,) = summary.ideas
    assert item.novel is False and item.paper and item.problem == ""
    # a decision before any search is not taken: code searched the idea's title first, and kept what it found
    from scientist_core.store import Store

    (row,) = Store.open_existing(load_settings().store_path).ideas(summary.run_id)
    assert [r["query"] for r in row["novelty"]["rounds"]] == ["Study of wider hidden layers"]
    found = row["novelty"]["papers"][0]["title"]
    assert found == row["novelty"]["rounds"][0]["results"][0]
    # the paper may cite what the novelty check found: the scripted model picks its first result
    cited = json.loads((summary.run_dir / item.name / "latex" / "generated" / "citations.json").read_text())
    assert found in [paper["title"] for paper in cited]


def test_improve_revises_the_paper_from_its_review_and_reviews_it_again(configured, plugin_host, fake_llm):
    script_full_run(fake_llm, ideas=("wider_hidden_layers",))
    summary = start_run(load_settings(), plugin_host, options(num_ideas=1, improve=True), report=lambda line: None)
    (item,) = summary.ideas
    assert item.problem == "" and item.paper.endswith("-improved.pdf") and Path(item.paper).is_file()
    workspace = summary.run_dir / "wider_hidden_layers"
    assert (workspace / "review.json").is_file() and (workspace / "review_improved.json").is_file()
    revision_prompts = [call for call in fake_llm.history if call.schema is not None
                        and call.schema.__name__ == "SectionText"
                        and GOOD_REVIEW["Weaknesses"][0] in call.messages[-1].content]
    assert revision_prompts, "the review's weaknesses never reached the write-up"
