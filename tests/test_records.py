"""Resume trusts no half-written record (issue 16, part 6): a run is stopped during its write-up, saved outcomes
of each kind (stages, and steps within a stage) are cut at random offsets, as a crash in the middle of a write
would leave them were writes not atomic, and `resume` finishes the run, doing again only what was cut."""

from __future__ import annotations

import json
import random
import shutil
import threading

import pytest

from scientist_core.pipeline.context import RunOptions, checkpoint_file
from scientist_core.pipeline.run import resume_run, start_run
from scientist_core.settings import load_settings
from tests.pipeline_script import script_full_run

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")

IDEA = "wider_hidden_layers"


class Crash(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the pipeline may catch it."""


def crash(call):
    raise Crash("killed during the write-up")


def options() -> RunOptions:
    return RunOptions(template="example", num_ideas=1, reflections=2, novelty_rounds=3, max_runs=2, max_tries=2,
                      citation_rounds=1, quick=True)


def executed(store, run_id) -> list[tuple[str, int]]:
    """(idea, run index) of every experiment that ran to the end, cached baselines included."""
    return [(row["idea"], row["run_index"]) for row in store.experiments(run_id) if row["status"] == "done"]


PLAN = {"runs": [
    {"description": "double the hidden size", "knob_changes": {"hidden_size": 64}, "code_change": ""},
    {"description": "a tenth of the learning rate", "knob_changes": {"learning_rate": 0.001}, "code_change": ""}]}
# records cut together -> (extra answers the parts done again ask for, the runs they execute again). A step's
# record (the plan, one experiment run) is read only when its stage is done again, so its stage's is cut too.
CASES = {
    "stages": (("ideas", f"novelty:{IDEA}", f"experiments:{IDEA}", f"plots:{IDEA}"),
               {"NoveltyStep": [{"thought": "again", "action": "novel", "query": ""}] * 2,
                "NoveltyDecision": [{"thought": "again", "novel": True}], "FigureNotes": [{"figures": []}]}, []),
    "steps": ((f"experiments:{IDEA}", f"experiments:{IDEA}:plan", f"experiments:{IDEA}:run_1"),
              {"ExperimentPlan": [PLAN]}, [(IDEA, 1)]),
}
REDONE_WITH_A_CALL = {"stages": {"NoveltyStep", "FigureNotes"}, "steps": {"ExperimentPlan"}}


def cut(saved, seed: str) -> None:
    """Keep `saved` up to a random offset, the same on every machine."""
    data = saved.read_bytes()
    saved.write_bytes(data[:random.Random(seed).randrange(1, len(data))])


@pytest.mark.parametrize("case", list(CASES))
def test_cut_records_are_done_again_and_nothing_else(configured, plugin_host, fake_llm, case):
    from scientist_core.store import Store

    script_full_run(fake_llm, ideas=(IDEA,))
    fake_llm.by_schema["SectionText"].appendleft(crash)
    with pytest.raises(Crash):
        start_run(load_settings(), plugin_host, options(), report=lambda line: None)
    store = Store.open_existing(load_settings().store_path)
    run = store.latest_run()
    before = executed(store, run["id"])

    records, extra, again = CASES[case]
    run_dir = load_settings().out_dir.resolve() / run["id"]
    for name in records:
        cut(checkpoint_file(run_dir, name), name)
    for schema, replies in extra.items():
        fake_llm.answer(schema, *replies)
    calls = len(fake_llm.history)
    lines: list[str] = []
    summary = resume_run(load_settings(), plugin_host, run["id"], report=lines.append)

    (item,) = summary.ideas
    assert item.problem == "" and item.paper and item.overall == 5, lines
    for name in records:
        assert f"{name}: its saved outcome is unreadable, so it is done again" in lines
    assert sorted(executed(store, run["id"])) == sorted(before + again)  # only the cut run ran again
    assert store.run(run["id"])["status"] == "done"
    redone = {call.schema.__name__ for call in fake_llm.history[calls:] if call.schema is not None}
    assert REDONE_WITH_A_CALL[case] <= redone, "a part done again made no model call"
    assert "Idea" not in redone  # the ideas stage was done again from its intact steps, with no call


def test_a_cut_idea_archive_is_set_aside_and_the_run_goes_on(configured, plugin_host, fake_llm):
    settings = load_settings()
    archive = settings.data_dir / "archive" / "example.json"
    archive.parent.mkdir(parents=True)
    archive.write_text('[{"idea": {"Name": "older_idea", "Title": "An older idea"}, "run_id": "r0"}, {"idea"')
    script_full_run(fake_llm, ideas=(IDEA,))
    lines: list[str] = []
    summary = start_run(settings, plugin_host, options(), report=lines.append)
    assert summary.ideas[0].paper and any("idea archive" in line and "unreadable" in line for line in lines)
    assert archive.with_name("example.json.unreadable").read_text().startswith('[{"idea": {"Name": "older_idea"')
    assert [entry["idea"]["Name"] for entry in json.loads(archive.read_text())] == [IDEA]


def test_concurrent_archive_updates_lose_no_entry(configured, plugin_host):
    """--workers: ideas finish at once, each adding to the template's archive; every entry survives."""
    from scientist_core.models import Idea
    from scientist_core.pipeline.archive import load_archive, save_to_archive
    from scientist_core.pipeline.context import RunContext
    from scientist_core.store import Store

    settings = load_settings()
    ctx = RunContext(run_id="r", run_dir=settings.out_dir, options=options(), settings=settings, host=plugin_host,
                     store=Store(settings.store_path), template=plugin_host.create("template", "example"))
    ideas = [Idea.model_validate({"Name": f"idea_{n}", "Title": f"Idea {n}", "Experiment": "x",
                                  "Interestingness": 5, "Feasibility": 5, "Novelty": 5}) for n in range(24)]
    threads = [threading.Thread(target=save_to_archive, args=(ctx, idea), kwargs={"review_overall": 4})
               for idea in ideas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(entry["idea"]["Name"] for entry in load_archive(ctx)) == sorted(idea.name for idea in ideas)


def test_a_cut_baseline_cache_is_run_again_not_trusted(configured, plugin_host, fake_llm):
    """The baseline cache in the data folder outlives its run: one cut short is executed again by the next run."""
    from scientist_core.store import Store

    settings = load_settings()
    script_full_run(fake_llm, ideas=(IDEA, "slower_learning"))
    first = start_run(settings, plugin_host, options(), report=lambda line: None)
    (cache,) = (settings.data_dir / "baselines" / "example").iterdir()
    cut(cache / "final_info.json", "cache")
    second = start_run(settings, plugin_host, options(), report=lambda line: None)
    assert second.ideas[0].paper and second.ideas[0].problem == ""
    store = Store.open_existing(settings.store_path)
    baselines = [row for run in (first, second) for row in store.experiments(run.run_id) if row["run_index"] == 0]
    assert [row["execution"].get("cached_from") is None for row in baselines] == [True, True]  # both executed
    assert json.loads((cache / "final_info.json").read_text())  # and the cache is whole again
