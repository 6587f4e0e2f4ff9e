"""Ideas the run can implement, plans that change what the idea is about, failures that teach: the rules of
scientist_core.pipeline.plans, through the real stages (the example template's experiments run in the sandbox)
with the scripted model."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from scientist_core.models import Idea
from scientist_core.pipeline.context import RunContext, RunOptions
from scientist_core.pipeline.experiments import run_experiments
from scientist_core.pipeline.ideas import generate_ideas
from scientist_core.pipeline.plans import (baseline_values, changeable_knobs, describe_changes, idea_model,
                                           knob_changes_model, plan_models, wants_code_change)
from scientist_core.settings import load_settings
from scientist_core.store import Store
from tests.pipeline_script import script_full_run

WIDER = {"Name": "wider_mlp", "Title": "Width of a small MLP", "Interestingness": 5, "Feasibility": 9,
         "Novelty": 4, "Experiment": "Double the hidden size and compare validation accuracy.",
         "Knobs": ["hidden_size"], "Code_change": ""}
# numpy refuses a 10^7 x 10^7 weight matrix at once: a run that fails fast, with a clear stderr line
TOO_WIDE = 10_000_000



def context(plugin_host, **options) -> RunContext:
    settings = load_settings()
    store = Store(settings.store_path)
    run_dir = Path(settings.out_dir).resolve() / "run"
    store.create_run("run", "run", "example", run_dir)
    opts = RunOptions.model_validate({"template": "example", "model": "fake/scripted", "quick": True, **options})
    return RunContext(run_id="run", run_dir=run_dir, options=opts, settings=settings, host=plugin_host, store=store,
                      template=plugin_host.create("template", "example"))


def repair_feedback(fake_llm, schema: str) -> list[str]:
    """What code said back to the model about its answers for `schema`."""
    return [call.messages[-1].content for call in fake_llm.history
            if call.schema is not None and call.schema.__name__ == schema
            and call.messages[-1].content.startswith("Your answer cannot be used")]


# -- ideas ------------------------------------------------------------------------------------------------

def test_an_idea_needing_code_is_refused_with_the_reason_fed_back(configured, plugin_host, fake_llm):
    ctx = context(plugin_host, code_changes=False, num_ideas=1, reflections=1)
    fake_llm.answer("Idea",
                    {**WIDER, "Code_change": "add dropout between the hidden layers"},
                    {**WIDER, "Experiment": "Rewrite make_dataset to add label noise."},
                    WIDER)
    ideas = generate_ideas(ctx)
    assert [idea.knobs for idea in ideas] == [["hidden_size"]]
    feedback = repair_feedback(fake_llm, "Idea")
    assert len(feedback) == 2
    assert "cannot change code" in feedback[0] and "hidden_size" in feedback[0]
    assert "make_dataset" in feedback[1]
    prompt = fake_llm.history[0].messages[-1].content
    assert "hidden_size = 32" in prompt and "cannot edit code" in prompt
    assert "def make_dataset" not in prompt  # the code is not shown to a run that cannot change it


def test_without_code_changes_the_knobs_come_before_the_experiment_and_no_code_change_is_asked(plugin_host):
    template = plugin_host.create("template", "diffusion")
    schema = idea_model(template, code_changes=False, max_knobs=3).model_json_schema()
    order = list(schema["properties"])
    assert order.index("Knobs") < order.index("Experiment") and "Code_change" not in order
    assert "Knobs" in schema["required"]
    with pytest.raises(ValidationError, match="Knobs"):  # a missing list is not an empty one
        idea_model(template, code_changes=False, max_knobs=3).model_validate(
            {k: v for k, v in WIDER.items() if k != "Knobs"})


def test_ideas_name_only_existing_knobs_and_at_least_one_without_code(plugin_host):
    template = plugin_host.create("template", "diffusion")
    schema = idea_model(template, code_changes=False, max_knobs=3)
    assert set(schema.model_json_schema()["properties"]["Knobs"]["items"]["enum"]) == set(changeable_knobs(template))
    for knobs in ([], ["no_such_knob"], ["learning_rate", "steps", "batch_size", "grad_clip"]):
        with pytest.raises(ValidationError):
            schema.model_validate({**WIDER, "Knobs": knobs})
    # the seed-1 idea of the main job: Knobs beta_start and beta_end, an Experiment about beta_schedule
    with pytest.raises(ValidationError, match="beta_schedule, which Knobs does not name"):
        schema.model_validate({**WIDER, "Knobs": ["beta_start", "beta_end"],
                               "Experiment": "change beta_schedule from linear to quadratic"})
    assert schema.model_validate({**WIDER, "Knobs": ["beta_schedule"], "Experiment": "change beta_schedule from "
                                  "linear to quadratic, in fewer steps"}).knobs == ["beta_schedule"]
    # the class, not the example: any function or class of the experiment's code is a code change
    with pytest.raises(ValidationError, match="add_noise"):
        schema.model_validate({**WIDER, "Knobs": ["beta_end"], "Experiment": "Scale the noise inside add_noise."})
    assert idea_model(template, code_changes=True, max_knobs=3).model_validate(
        {**WIDER, "Knobs": [], "Code_change": "add dropout"}).code_change == "add dropout"


# -- plans ------------------------------------------------------------------------------------------------

def test_plan_rules_bounds_in_the_schema_and_no_restated_defaults(plugin_host):
    template = plugin_host.create("template", "diffusion")
    idea = Idea.model_validate({**WIDER, "Knobs": ["learning_rate", "beta_end"]})
    planned, plan = plan_models(template, 2, code_changes=False, quick=True, idea=idea, max_knob_changes=3)
    schema = knob_changes_model(template).model_json_schema()["properties"]
    assert {"type": "number", "exclusiveMaximum": 1.0, "exclusiveMinimum": 0.0} in schema["beta_end"]["anyOf"]

    def run(**changes):
        return {"description": "d", "knob_changes": changes}

    kept = plan.model_validate({"runs": [run(learning_rate=1e-3, beta_end=0.02)]})  # beta_end 0.02 is the default
    assert kept.runs[0].knob_changes.model_dump(exclude_none=True) == {"learning_rate": 1e-3}
    refused = {
        "beta_end": run(beta_end=1.0),                                   # out of the knob's range
        "changes nothing": run(beta_end=0.02),                           # only a restated default
        "steps": run(steps=50),                                          # a knob the idea is not about
    }
    for expected, bad in refused.items():
        with pytest.raises(ValidationError, match=expected):
            plan.model_validate({"runs": [bad]})
    # beside a run that changes something, an empty or repeated run is dropped, not sent back
    wider = run(learning_rate=1e-3)
    kept = plan.model_validate({"runs": [run(beta_end=0.02), wider, run(), {**wider, "description": "again"}]})
    assert [r.knob_changes.model_dump(exclude_none=True) for r in kept.runs] == [{"learning_rate": 1e-3}]
    # a model that keeps restating the baseline is shown what a change would be, in values that are valid
    with pytest.raises(ValidationError, match=r"learning_rate=0\.0\d+ is the baseline's\): give at least one "
                                              r"knob a new value, for example learning_rate=[\d.e-]+ or "
                                              r"learning_rate=[\d.e-]+"):
        plan.model_validate({"runs": [run(learning_rate=baseline_values(template, True)["learning_rate"])]})
    with pytest.raises(ValidationError, match="for example beta_end=0.04 or beta_end=0.01"):
        plan.model_validate({"runs": [run()]})
    _, unnamed = plan_models(template, 2, code_changes=True, quick=True, max_knob_changes=3)  # no knobs named
    with pytest.raises(ValidationError, match="at most 3"):
        unnamed.model_validate({"runs": [run(learning_rate=1e-3, beta_end=0.03, steps=50, grad_clip=1.0)]})
    # a knob of a few choices offers the others only: a small model cannot pick the baseline's
    schedule_idea = Idea.model_validate({**WIDER, "Knobs": ["beta_schedule"]})
    _, schedule_plan = plan_models(template, 2, code_changes=False, quick=True, idea=schedule_idea)
    changes_schema = schedule_plan.model_json_schema()["$defs"]["KnobChanges"]["properties"]
    assert list(changes_schema) == ["beta_schedule"]
    offered = [option.get("const") for option in changes_schema["beta_schedule"]["anyOf"] if "null" != option["type"]]
    assert offered == ["quadratic"] and baseline_values(template, True)["beta_schedule"] == "linear"
    order = list(schedule_plan.model_json_schema()["$defs"]["PlannedRun"]["properties"])
    assert order.index("knob_changes") < order.index("description")
    assert describe_changes({"learning_rate": 5e-3, "lr_schedule": "constant"},
                            {"learning_rate": 3e-4, "lr_schedule": "cosine"}) == \
        "learning_rate from 0.0003 to 0.005 (raised), lr_schedule from cosine to constant"


def test_plans_cannot_touch_the_measurement_and_none_means_no_code_change(plugin_host):
    template = plugin_host.create("template", "example")
    assert "code_change" in plan_models(template, 2)[0].model_fields
    assert "code_change" not in plan_models(template, 2, code_changes=False)[0].model_fields

    fields = set(knob_changes_model(plugin_host.create("template", "diffusion")).model_fields)
    assert "learning_rate" in fields and not fields & {"kl_neighbours", "seed", "num_samples", "datasets"}
    assert [wants_code_change(t) for t in ("None", " none. ", "", "N/A", "add a dropout layer")] == \
        [False, False, False, False, True]


def test_a_restating_plan_and_a_bad_value_cost_repair_rounds_not_run_attempts(configured, plugin_host, fake_llm):
    ctx = context(plugin_host, code_changes=False, max_runs=1, max_tries=2)
    idea = Idea.model_validate({**WIDER, "Knobs": ["hidden_size", "learning_rate"]})
    ctx.store.add_idea("run", idea.name, idea.model_dump(by_alias=True))
    every_knob = {"hidden_size": 64, "num_layers": 3, "activation": "relu", "optimizer": "sgd",
                  "learning_rate": 0.05, "weight_decay": 0.001, "batch_size": 32, "steps": 500}
    fake_llm.answer("ExperimentPlan",
                    {"runs": [{"description": "everything at once", "knob_changes": every_knob}]},
                    {"runs": [{"description": "negative rate", "knob_changes": {"learning_rate": -1.0}}]},
                    {"runs": [{"description": "wider", "knob_changes": {"hidden_size": 64}}]})
    lines: list[str] = []
    records = run_experiments(replace(ctx, report=lines.append), idea)

    assert [r.knob_changes for r in records[1:]] == [{"hidden_size": 64}]
    # the console says what the run changed from its record, not the plan's prose
    assert any("run_1 done in" in line and "(hidden_size from 32 to 64 (raised))" in line for line in lines), lines
    attempts = [row for row in ctx.store.experiments("run") if row["run_index"] == 1]
    assert len(attempts) == 1 and attempts[0]["status"] == "done"
    feedback = repair_feedback(fake_llm, "ExperimentPlan")
    assert "num_layers, optimizer, steps, weight_decay: not among the knobs this run may change (hidden_size, " \
           "learning_rate)" in feedback[0] and "learning_rate" in feedback[1]
    plan_prompt = next(c for c in fake_llm.history if c.schema.__name__ == "ExperimentPlan").messages[-1].content
    assert "time" not in plan_prompt.split("Baseline results")[1].split("Plan at most")[0]  # timings vary


# -- failures ---------------------------------------------------------------------------------------------

def test_a_fix_that_repeats_the_failed_configuration_is_refused(configured, plugin_host, fake_llm):
    ctx = context(plugin_host, code_changes=False, max_runs=1, max_tries=2)
    idea = Idea.model_validate({**WIDER, "Knobs": ["hidden_size", "learning_rate"]})
    ctx.store.add_idea("run", idea.name, idea.model_dump(by_alias=True))
    workspace = ctx.idea_dir(idea)
    too_wide = {"description": "very wide", "knob_changes": {"hidden_size": TOO_WIDE}}
    fake_llm.answer("ExperimentPlan", {"runs": [too_wide]})
    fake_llm.answer("PlannedRun", too_wide, {"description": "wide", "knob_changes": {"hidden_size": 128}})
    records = run_experiments(ctx, idea)

    assert [r.knob_changes for r in records[1:]] == [{"hidden_size": 128}]
    fix = next(c for c in fake_llm.history if c.schema.__name__ == "PlannedRun").messages[-1].content
    assert f"hidden_size from 32 to {TOO_WIDE} (raised)" in fix
    assert "MemoryError" in fix  # the stderr tail
    assert "already failed" in repair_feedback(fake_llm, "PlannedRun")[0]
    notes = (workspace / "notes.txt").read_text()
    assert "run_1 attempt 1 failed" in notes and "MemoryError" in notes


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")
def test_an_idea_whose_runs_all_fail_makes_way_for_a_fresh_one(configured, plugin_host, fake_llm):
    script_full_run(fake_llm, ideas=("too_wide", "wider"), plan=())
    fake_llm.by_schema["ExperimentPlan"].clear()
    fake_llm.answer("ExperimentPlan",
                    {"runs": [{"description": "very wide", "knob_changes": {"hidden_size": TOO_WIDE}}]},
                    {"runs": [{"description": "wider", "knob_changes": {"hidden_size": 64}}]})
    fake_llm.answer("PlannedRun", {"description": "even wider", "knob_changes": {"hidden_size": 2 * TOO_WIDE}})
    from scientist_core.cli import NO_PAPER_EXIT, app

    result = CliRunner().invoke(app, ["run", "example", "--quick", "--num-ideas", "1", "--max-runs", "1",
                                      "--max-tries", "2", "--novelty-rounds", "3", "--citation-rounds", "1"])
    output = result.output
    assert result.exit_code == 0, output
    # what the sandbox contains is said before any model call, and for every run in the summary
    assert output.index("sandbox: each run isolated (own processes, no network") < output.index("ideas")
    assert "sandbox: every run was isolated" in output.split("Run ")[-1]
    assert "MemoryError" in output  # the failure's stderr tail reaches the console
    assert "fresh idea(s) in place of too_wide" in output
    assert "problem: no experiment run succeeded (2 failed attempt(s)" in output  # not a terminal: plain lines
    assert "replaced by the fresh idea wider" in output
    fresh_prompt = [c for c in fake_llm.history if c.schema.__name__ == "Idea"][-1].messages[-1].content
    assert "too_wide" in fresh_prompt and "none of its runs succeeded" in fresh_prompt

    # the bound: with no fresh idea allowed, an idea whose runs all fail ends the run without a paper
    fake_llm.by_schema["IdeaReflection"].clear()
    fake_llm.answer("Idea", {**WIDER, "Name": "too_wide_again", "Knobs": []})
    fake_llm.answer("IdeaReflection", {"idea": {**WIDER, "Name": "too_wide_again", "Knobs": []}, "done": True})
    fake_llm.answer("NoveltyStep", {"thought": "t", "action": "novel", "query": ""},
                    {"thought": "t", "action": "novel", "query": ""})
    fake_llm.answer("NoveltyDecision", {"thought": "nothing like it", "novel": True})
    fake_llm.answer("ExperimentPlan",
                    {"runs": [{"description": "very wide", "knob_changes": {"hidden_size": TOO_WIDE}}]})
    fake_llm.answer("PlannedRun", {"description": "even wider", "knob_changes": {"hidden_size": 3 * TOO_WIDE}})
    result = CliRunner().invoke(app, ["run", "example", "--quick", "--num-ideas", "1", "--max-runs", "1",
                                      "--max-tries", "2", "--novelty-rounds", "2", "--fresh-ideas", "0"])
    assert result.exit_code == NO_PAPER_EXIT, result.output
    assert "No idea ended with a reviewed paper" in result.output


def test_the_template_contract_refuses_seed_ideas_that_need_code(plugin_host, tmp_path, monkeypatch):
    import json

    from scientist_core.testing import template_contract_problems

    template = plugin_host.create("template", "example")
    files = tmp_path / "files"
    shutil.copytree(template.files_dir(), files)
    ideas = json.loads((files / "seed_ideas.json").read_text())
    ideas[0]["Knobs"] = []
    ideas[1]["Experiment"] = "Replace make_dataset with a harder dataset."
    (files / "seed_ideas.json").write_text(json.dumps(ideas))
    monkeypatch.setattr(type(template), "files_dir", lambda self: files)  # this test's copy of its files
    problems = template_contract_problems(template, {"numpy", "pydantic", "matplotlib"}, tmp_path / "work")
    assert [p.split(":")[0] for p in problems] == [
        f"the seed idea {ideas[0]['Name']} is not testable by knob changes alone",
        f"the seed idea {ideas[1]['Name']} is not testable by knob changes alone"]
    assert "make_dataset" in problems[1]


def test_a_template_without_latex_gets_the_core_skeleton_and_must_hold_what_it_cites(plugin_host, tmp_path,
                                                                                      monkeypatch):
    from scientist_core.template import LATEX_SKELETON
    from scientist_core.testing import template_contract_problems

    template = plugin_host.create("template", "example")
    files = tmp_path / "files"
    shutil.copytree(template.files_dir(), files, ignore=shutil.ignore_patterns("latex", "__pycache__"))
    monkeypatch.setattr(type(template), "files_dir", lambda self: files)  # the example without its latex/
    skeleton = template.prepare_workspace(tmp_path / "workspace") / "latex"
    assert sorted(path.name for path in skeleton.iterdir()) == ["scientistconf.sty", "template.tex"]
    assert (skeleton / "template.tex").read_bytes() == (LATEX_SKELETON / "template.tex").read_bytes()
    allowed = {"numpy", "pydantic", "matplotlib"}
    assert template_contract_problems(template, allowed, tmp_path / "work") == []  # it cites nothing itself
    (files / "latex").mkdir()  # a latex/ of its own holds only what it adds: here a citation it cannot hold
    (files / "latex" / "template.tex").write_text(
        (LATEX_SKELETON / "template.tex").read_text().replace(r"\begin{abstract}", r"\citep{lu2024aiscientist}"
                                                              "\n\\begin{abstract}"))
    assert template_contract_problems(template, allowed, tmp_path / "work2") == [
        "latex/template.tex cites lu2024aiscientist, which latex/references.bib does not hold"]
    (files / "latex" / "references.bib").write_text("@article{lu2024aiscientist, title={The AI Scientist}}\n")
    assert template_contract_problems(template, allowed, tmp_path / "work3") == []
    assert (template.write_latex(tmp_path / "paper") / "references.bib").is_file()


def test_without_a_usable_idea_from_the_model_a_seed_idea_stands_in(configured, plugin_host, fake_llm):
    """The 1.5B model, told that its idea needs code, answered with the same idea again nine times."""
    ctx = context(plugin_host, code_changes=False, num_ideas=1, reflections=1)
    needs_code = {**WIDER, "Experiment": "Rewrite make_dataset to add label noise."}
    fake_llm.answer("Idea", *[needs_code] * 9)
    (idea,) = generate_ideas(ctx)
    seed = ctx.template.seed_ideas()[0]
    assert idea == seed and idea.knobs
    assert len(repair_feedback(fake_llm, "Idea")) == 6  # three tries, each with its two repair rounds
