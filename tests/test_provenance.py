"""What was run, on which machine, written by whom: the runs table and the run labels come from the host's records
(knob changes, the code diff counted from the files), each run keeps the machine it ran on through a resume, the
baseline cache is this machine's, a GPU is named only where the run could use it, every paper ends with the
core's disclosure, and an idea whose runs changed none of what it named is not written up as if they had.

One scripted `scientist run` of the example template serves the module: a knob run and a code-change run, killed
in the write-up, one run's checkpoint rewritten as done on another machine, then resumed."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from scientist_core.executor import Limits
from scientist_core.models import Idea
from scientist_core.pipeline.context import RunOptions, RunRecord, checkpoint_file
from scientist_core.pipeline.experiments import CACHED_MACHINE, baseline_cache_key, baseline_record
from scientist_core.pipeline.machine import machine_facts, run_machine
from scientist_core.pipeline.plans import summarize_code_diff
from scientist_core.pipeline.run import resume_run, start_run
from scientist_core.pipeline.writeup import write_paper
from scientist_core.plugins import get_host, reset_host
from scientist_core.settings import load_settings
from scientist_core.store import Store
from scientist_core.testing import Script, register_fake_llm
from scientist_paper.provenance import unimplemented_idea
from tests.conftest import PIPELINE_SETTINGS
from tests.pipeline_script import recorded_runs, script_full_run
from tests.test_plans import context
from tests import test_writeup
from tests.test_writeup_structured import generated, pdf_text

RUNS = test_writeup.RUNS
make_ctx = test_writeup.make_ctx  # the write-up's fixture: a run context with a fake searcher and figures
pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")

IDEA_NAME = "wider_hidden_layers"
ANOTHER_MACHINE = {"cpu": "Other Vendor CPU 9000", "cores": "64", "ram": "512 GiB", "gpu": "NVIDIA A100-SXM4-80GB",
                   "os": "Linux 5.4.0", "python": "3.10.1", "numpy": "1.21.0"}
GAIN = 'gain = 2.0 if activation == "relu" else 1.0'


class Crash(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the pipeline may catch it."""


def crash(call):
    raise Crash("killed in the write-up")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """(run folder, store path) of one scripted run: learning_rate lowered, then a code change to init_params;
    killed in the write-up; run_1 rewritten as run on ANOTHER_MACHINE; resumed to a paper."""
    home = tmp_path_factory.mktemp("provenance")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("SCIENTIST_")]:
            patch.delenv(name)
        (home / "work").mkdir()
        patch.setenv("HOME", str(home / "home"))
        patch.setenv("SCIENTIST_DATA_DIR", str(home / "data"))
        patch.chdir(home / "work")
        Path("scientist.toml").write_text(PIPELINE_SETTINGS)
        reset_host()
        host = get_host()
        script = Script()
        register_fake_llm(host, script)
        script_full_run(script, ideas=(IDEA_NAME,), plan=(("a tenth of the learning rate", {"learning_rate": 0.001}),))
        script.by_schema["ExperimentPlan"][0]["runs"].append(
            {"description": "WORDS OF THE PLAN: a gentler initialisation", "knob_changes": {},
             "code_change": "halve the gain of the initialisation"})
        script.answer("CodeEdits", {"summary": "gentler init", "edits": [
            {"file": "experiment.py", "search": GAIN, "replace": 'gain = 1.0 if activation == "relu" else 0.5'}]})
        script.by_schema["TitleAbstract"].insert(0, crash)
        settings = load_settings()
        options = RunOptions(template="example", num_ideas=1, reflections=2, novelty_rounds=3, max_runs=2,
                             max_tries=1, citation_rounds=1, quick=True)
        with pytest.raises(Crash):
            start_run(settings, host, options, report=lambda line: None)
        store = Store.open_existing(settings.store_path)
        run = store.latest_run()
        store.close()
        run_dir = Path(run["workdir"])
        records = TypeAdapter(list[RunRecord])
        for name in (f"experiments:{IDEA_NAME}", f"experiments:{IDEA_NAME}:run_1"):  # the stage's and the step's
            saved = checkpoint_file(run_dir, name)
            data = json.loads(saved.read_text())
            for item in data if isinstance(data, list) else [data]:
                if item["index"] == 1:
                    item["machine"] = ANOTHER_MACHINE
            saved.write_text(json.dumps(data))
            records.validate_json(saved.read_text()) if isinstance(data, list) else None
        summary = resume_run(settings, host, run["id"], report=lambda line: None)
        reset_host()
        yield summary, run_dir, settings
    reset_host()


def paper_files(run_dir: Path) -> dict[str, str]:
    folder = run_dir / IDEA_NAME / "latex" / "generated"
    return {path.name: path.read_text() for path in folder.iterdir() if path.is_file()}


def test_the_runs_table_lists_each_runs_knob_changes_and_its_code_diff(resumed):
    summary, run_dir, _ = resumed
    (item,) = summary.ideas
    assert item.problem == "" and item.paper
    baseline, lowered, recoded = recorded_runs(run_dir, IDEA_NAME)
    template_dir = get_host().create("template", "example").files_dir()
    ran = (run_dir / IDEA_NAME / "code" / "run_2" / "experiment.py").read_text()
    assert GAIN not in ran  # the edit was applied and the host kept the code it ran
    expected = summarize_code_diff({"experiment.py": (template_dir / "experiment.py").read_text()},
                                   {"experiment.py": ran})
    assert recoded.code_diff == expected == "experiment.py: 1 line changed in init_params()"
    assert lowered.code_diff == "" and baseline.code_diff == ""
    files = paper_files(run_dir)
    table = files["runs-table.tex"]
    assert r"learning\_rate=0.001 & The learning rate (\texttt{learning\_rate}) lowered from 0.01 to 0.001" in table
    assert r"code change (experiment.py: 1 line changed in init\_params())" in table
    assert r"Code: experiment.py: 1 line changed in init\_params()" in table
    # the labels come from the records, here and in the results table: never the plan's words
    for name in ("runs-table.tex", "results-table.tex", "meta.tex", "sec-method.tex", "abstract.tex"):
        assert "WORDS OF THE PLAN" not in files.get(name, ""), name
    assert r"code change (experiment.py: 1 line changed in init\_params())" in files["results-table.tex"]
    body = files["body.tex"].splitlines()
    assert body[body.index(r"\input{generated/sec-method}") + 1] == r"\input{generated/runs-table}"
    text = " ".join(pdf_text(item.paper)[0].split())
    assert "Run What it changed baseline Nothing" in text and "Code: experiment.py: 1 line changed in init" in text
    provenance = json.loads(files["provenance.json"])
    assert [run["code_diff"] for run in provenance["runs"]] == ["", "", expected]
    assert provenance["idea_not_implemented"] == ""


def test_each_run_keeps_its_own_machine_through_a_resume(resumed):
    summary, run_dir, _ = resumed
    baseline, lowered, recoded = recorded_runs(run_dir, IDEA_NAME)
    here = machine_facts()
    assert baseline.machine["cpu"] == recoded.machine["cpu"] == here["cpu"]
    assert lowered.machine == ANOTHER_MACHINE
    meta = paper_files(run_dir)["meta.tex"]
    cpu = next(line for line in meta.splitlines() if line.startswith(r"\newcommand{\EnvCPU}"))
    assert ANOTHER_MACHINE["cpu"] in cpu and here["cpu"].split()[0] in cpu  # both machines, each with its runs
    assert r"(learning\_rate=0.001)" in cpu and "baseline" in cpu
    gpu = next(line for line in meta.splitlines() if line.startswith(r"\newcommand{\EnvGPU}"))
    assert "NVIDIA A100" in gpu and f"{here['gpu']} (baseline" in gpu
    prompts = writeup_prompts(run_dir)
    assert any("The machines the runs used (they differ" in prompt for prompt in prompts)
    provenance = json.loads(paper_files(run_dir)["provenance.json"])
    assert [run["machine"]["cpu"] for run in provenance["runs"]] == [here["cpu"], ANOTHER_MACHINE["cpu"], here["cpu"]]


def writeup_prompts(run_dir: Path) -> list[str]:
    """The prompts the write-up of the run in `run_dir` sent, from the ledger beside it."""
    store = Store.open_existing(run_dir.parent / "scientist.db")
    try:
        return [" ".join(message["content"] for message in row["messages"])
                for row in store.llm_calls(run_dir.name) if row["stage"].startswith("writeup")]
    finally:
        store.close()


def test_every_paper_ends_with_the_cores_disclosure_naming_its_models(resumed):
    summary, run_dir, _ = resumed
    files = paper_files(run_dir)
    assert files["body.tex"].rstrip("\n").splitlines()[-1] == r"\input{generated/disclosure}"
    disclosure = files["disclosure.tex"]
    assert "generated by an AI system" in disclosure and r"\texttt{fake/scripted}" in disclosure
    assert "scientist 0." in disclosure
    main = (run_dir / IDEA_NAME / "latex" / "template.tex").read_text()
    assert "Disclosure" not in main
    text = " ".join(pdf_text(summary.ideas[0].paper)[0].split())
    assert text.count("generated by an AI system") == 1 and "fake/scripted" in text


def test_a_baseline_cached_on_another_machine_is_run_again_here(resumed, tmp_path, monkeypatch):
    _, run_dir, settings = resumed
    template = get_host().create("template", "example")
    knobs = template.knobs(quick=True)
    here = machine_facts()
    (cache,) = (Path(settings.data_dir) / "baselines" / "example").iterdir()
    assert cache.name == baseline_cache_key(template, knobs, True, here)  # the run used this machine's
    assert json.loads((cache / CACHED_MACHINE).read_text())["cpu"] == here["cpu"]
    for other in ({**here, "numpy": "0.0.1"}, {**here, "torch": "9.9"}, {**here, "cpu": "Another CPU"},
                  {**here, "gpu": "NVIDIA H100"}):
        assert baseline_cache_key(template, knobs, True, other) != cache.name
    # a cache made elsewhere, with results this machine never produced, where another machine's key puts it
    data = tmp_path / "data"
    monkeypatch.setenv("SCIENTIST_DATA_DIR", str(data))
    elsewhere = data / "baselines" / "example" / baseline_cache_key(template, knobs, True, {**here, "numpy": "0.0.1"})
    shutil.copytree(cache, elsewhere)
    forged = {"spirals": {"means": {"val_accuracy": 0.123456}}}
    (elsewhere / "final_info.json").write_text(json.dumps(forged))
    (Path.cwd() / "scientist.toml").write_text(PIPELINE_SETTINGS)
    ctx = context(get_host())
    folder = ctx.idea_dir(Idea(name="cache", title="t", experiment="e", interestingness=1, feasibility=1, novelty=1))
    from scientist_core.pipeline.experiments import prepare_idea_folder

    record = baseline_record(ctx, prepare_idea_folder(ctx.template, folder))
    assert record.results.datasets["spirals"].means["val_accuracy"] != 0.123456
    (row,) = ctx.store.experiments("run")
    assert "cached_from" not in row["execution"]  # executed here
    assert record.machine["cpu"] == here["cpu"]
    ctx.store.close()


def fake_nvidia_smi(folder: Path) -> None:
    """An nvidia-smi on PATH answering the query machine.py makes, for a machine with one H100."""
    program = folder / "nvidia-smi"
    program.write_text("#!/bin/sh\necho '0, GPU-5e1f0000-aaaa-bbbb-cccc-000000000000, NVIDIA H100 80GB HBM3'\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)


def test_a_gpu_is_named_only_where_the_run_could_use_it(plugin_host, tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert machine_facts()["gpu"] == "NVIDIA H100 80GB HBM3"  # the machine
    assert machine_facts("0")["gpu"] == machine_facts("GPU-5e1f")["gpu"] == "NVIDIA H100 80GB HBM3"
    assert machine_facts("")["gpu"] == machine_facts("-1")["gpu"] == machine_facts("3")["gpu"] == "none"
    executor = plugin_host.create("executor", "local")
    work = tmp_path / "runs"
    work.mkdir()
    hidden = executor.execute(["python", "-c", "pass"], work, Limits(timeout_s=60, env={"CUDA_VISIBLE_DEVICES": ""}))
    assert hidden.ok and hidden.gpus_visible == ""
    assert run_machine(hidden)["gpu"] == "none"
    shown = executor.execute(["python", "-c", "pass"], work, Limits(timeout_s=60))
    assert shown.gpus_visible is None and run_machine(shown)["gpu"] == "NVIDIA H100 80GB HBM3"


# -- an idea its runs did not implement -----------------------------------------------------------------------

NOISE = Idea(name="random_direction_noise", title="Noise in Random Directions for Tiny Networks",
             experiment="Add noise with random directions to the inputs during training and compare accuracy.",
             interestingness=5, feasibility=8, novelty=6, knobs=["learning_rate"])


def test_the_rule_for_an_idea_its_runs_did_not_implement():
    knobs = ["learning_rate", "hidden_size", "activation"]
    lowered = RUNS[1]  # learning_rate only, no code
    assert "none changed the code" in unimplemented_idea(NOISE, RUNS[:2], knobs)
    named = NOISE.model_copy(update={"experiment": "Shrink hidden_size to 8."})
    assert "a change to hidden_size" in unimplemented_idea(named, RUNS[:2], knobs)
    assert unimplemented_idea(NOISE.model_copy(update={"title": "Learning rate noise"}), RUNS[:2], knobs) == ""
    recoded = lowered.model_copy(update={"knob_changes": {}, "code_diff": "experiment.py: 2 lines changed in train()"})
    assert unimplemented_idea(NOISE, [RUNS[0], recoded], knobs) == ""
    valued = lowered.model_copy(update={"knob_changes": {"activation": "tanh"}})
    assert unimplemented_idea(NOISE.model_copy(update={"experiment": "Try tanh units."}), [RUNS[0], valued],
                              knobs) == ""
    assert unimplemented_idea(NOISE, RUNS[:1], knobs) == "no run other than the baseline finished"


def test_an_idea_its_runs_did_not_implement_is_not_written_up_as_if_they_had(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup="structured", writeup_fix_rounds=0, citation_rounds=0)
    fake_llm.answer("Motivation", {"latex": "The step size decides how fast a small network learns, and how stably."})
    fake_llm.answer("Interpretation", {"latex": "A smaller step size changes how far each update moves the weights."})
    fake_llm.answer("NextSteps", {"latex": "Try other step sizes next, and implement the change the idea proposed."})
    result = write_paper(ctx, NOISE, RUNS[:2], figures)

    assert result.pdf_path is not None and "none changed the code" in result.idea_not_implemented
    files = generated(result)
    title = (result.latex_dir / "generated" / "title.txt").read_text().lower()
    assert "noise" not in title and "random" not in title and "learning rate" in title
    assert files["abstract.tex"].startswith("The idea behind this study proposed a change that these runs did not "
                                            "make")
    assert "was not implemented" in files["sec-introduction.tex"]
    for name, text in files.items():  # the idea's words are nowhere presented as what was done
        if name.endswith(".tex"):
            assert "random direction" not in text.lower(), name
    pieces = [call.messages[-1].content for call in fake_llm.history]
    assert not any("random directions" in prompt for prompt in pieces)  # the idea was not told as what was run
    provenance = json.loads((result.latex_dir / "generated" / "provenance.json").read_text())
    assert provenance["idea_not_implemented"] == result.idea_not_implemented
    paper = next(row for row in ctx.store.artifacts("run") if row["kind"] == "paper")
    assert paper["meta"]["idea_not_implemented"] == result.idea_not_implemented


def test_in_the_free_style_too_the_title_is_what_was_run_and_the_paper_says_the_idea_was_not(make_ctx, fake_llm):
    ctx, workspace, figures = make_ctx(writeup_fix_rounds=0)
    test_writeup.script_paper(fake_llm)  # the model titles it "Step Size and Width in Tiny Networks"
    result = write_paper(ctx, NOISE, RUNS[:2], figures)

    assert result.pdf_path is not None and result.idea_not_implemented
    title = (result.latex_dir / "generated" / "title.txt").read_text()
    assert title.startswith("Changing the learning rate of") and "Width" not in title
    files = generated(result)
    assert files["abstract.tex"].startswith("The idea behind this study proposed a change that these runs did not")
    assert files["sec-introduction.tex"].startswith("The change this study set out to test was not implemented")
    prompt = fake_llm.history[0].messages[-1].content
    assert "The runs did not implement it: it proposed a change to noise, while its runs changed only " \
           "learning_rate and none changed the code" in prompt
    text = " ".join(pdf_text(result.pdf_path)[0].split())
    assert text.count("was not implemented by any of its runs") == 1
