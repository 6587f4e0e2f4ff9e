"""What a template author tripped over (issue 18), each fixed: results that are not numbers or not the
contract's shape fail `scientist baseline` in one line, an experiment file that parses its arguments at module level
does not break `scientist templates`, SCIENTIST_LOAD_PLUGINS is named when it hides a template, and
`scientist run --help` names the [run] section."""

from __future__ import annotations

import json

import pytest

from tests.helpers import make_distribution, run_cli

V1_RESULTS = {"circle": {"means": {"loss_mean": 0.5}, "stderrs": {"loss_stderr": 0.1},
                         "final_info_dict": {"loss": [0.4, 0.6]}}}


def template_without_knobs_model(name: str, metrics: str = "{}") -> str:
    """A plugin module registering template `name` whose knobs the core reads from its experiment.py, declaring
    `metrics` (Python source of a dict of Metric)."""
    return f'''
        from pathlib import Path
        from scientist_core import Metric, Template, hookimpl

        class T(Template):
            name = {name!r}
            description = "a test template"
            metrics = {metrics}

            def files_dir(self):
                return Path(__file__).parent / {name!r}

        @hookimpl
        def register_templates(register):
            register(T)
    '''


def install_template(site, name: str, experiment: str, metrics: str = "{}"):
    make_distribution(site, f"{name}-template", "0.1", {name: f"{name}_plugin"},
                      {f"{name}_plugin": template_without_knobs_model(name, metrics)})
    (site / name).mkdir()
    (site / name / "experiment.py").write_text(experiment)
    return site


@pytest.mark.parametrize("results, problem", [
    ('{"circle": {"means": {"loss": NaN}}}', "circle.means.loss: Input should be a finite number"),
    ('{"circle": {"means": {"loss": Infinity}}}', "Input should be a finite number"),
    ("{}", "the file: Dictionary should have at least 1 item"),
    (json.dumps(V1_RESULTS), "circle.final_info_dict: Extra inputs are not permitted"),
], ids=["nan", "inf", "empty", "v1-shape"])
def test_results_that_break_the_contract_fail_the_baseline_in_one_line(tmp_path, scientist_env, results, problem):
    experiment = writes_results(results)
    site = install_template(tmp_path / "site", "badresults", experiment)
    result = run_cli("baseline", "badresults", "--out", "out", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert "run_0/final_info.json is not {dataset: {means:" in result.stderr and problem in result.stderr


@pytest.mark.parametrize("results, problem", [
    ('{"seir": {"means": {"peak_day": 31}}}', "dataset 'seir' lacks the declared metric(s) peak_infected"),
    ('{"seir": {"means": {"peak_day": 31, "peak_infected": 0.2, "r0": 2.5}}}',
     "dataset 'seir' writes the undeclared metric(s) r0"),
], ids=["missing", "undeclared"])
def test_results_that_disagree_with_the_declared_metrics_fail_the_baseline_in_one_line(tmp_path, scientist_env,
                                                                                         results, problem):
    declared = '{"peak_day": Metric(direction="lower"), "peak_infected": Metric(direction="lower")}'
    site = install_template(tmp_path / "site", "seirlike", writes_results(results), declared)
    result = run_cli("baseline", "seirlike", "--out", "out", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert problem in result.stderr


def writes_results(results: str) -> str:
    """An experiment.py writing `results` as its final_info.json."""
    return ("import sys\nfrom pathlib import Path\nfrom pydantic import BaseModel\n\n"
            "class Knobs(BaseModel):\n    steps: int = 1\n\n"
            f"out = Path(sys.argv[2])\nout.mkdir(exist_ok=True)\n(out / 'final_info.json').write_text({results!r})\n")


def test_an_experiment_parsing_arguments_at_module_level_does_not_break_the_listing(tmp_path, scientist_env):
    experiment = ("import argparse\nfrom pydantic import BaseModel, Field\n\n"
                  "class Knobs(BaseModel):\n    width: int = Field(8, description='units')\n\n"
                  "parser = argparse.ArgumentParser()\nparser.add_argument('--out_dir', required=True)\n"
                  "args = parser.parse_args()\nraise SystemExit('trained at import')\n")
    site = install_template(tmp_path / "site", "v1style", experiment)
    result = run_cli("templates", "--json", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listed["v1style"]["knobs"]["width"]["default"] == 8
    assert "example" in listed and listed["example"]["knobs"]


def test_a_template_whose_knobs_fail_to_import_is_one_line_and_the_others_list(tmp_path, scientist_env):
    site = install_template(tmp_path / "site", "broken", "import no_such_module_here\n")
    result = run_cli("templates", "--json", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert "no_such_module_here" in listed["broken"]["knobs_error"] and "\n" not in listed["broken"]["knobs_error"]
    assert listed["example"]["knobs"]


def test_an_empty_plugin_selection_is_named_when_a_template_is_missing(scientist_env):
    result = run_cli("baseline", "example", env={"SCIENTIST_LOAD_PLUGINS": ""}, cwd=scientist_env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "SCIENTIST_LOAD_PLUGINS=''" in result.stderr and "unset it" in result.stderr


def test_run_help_names_the_run_section(scientist_env):
    result = run_cli("run", "--help", env={"COLUMNS": "200"}, cwd=scientist_env)
    assert "Defaults come from the [run] section" in result.stdout
