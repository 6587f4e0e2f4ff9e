"""`scientist baseline`: the template's run 0 in the sandbox, recorded in the store."""

import json
from pathlib import Path

from scientist_core.models import FinalInfo
from scientist_core.store import Store
from tests.helpers import make_distribution, run_cli, template_module


def test_quick_baseline_of_the_example_template(scientist_env):
    result = run_cli("baseline", "example", "--quick", "--out", "out", cwd=scientist_env)
    assert result.returncode == 0, result.stderr
    final_info = Path(result.stdout.strip())
    assert final_info.is_file() and final_info.is_relative_to(scientist_env / "out")
    results = FinalInfo.from_json_obj(json.loads(final_info.read_text()))
    assert results.datasets

    store = Store.open_existing(scientist_env / "out" / "scientist.db")
    run = store.latest_run()
    assert (run["kind"], run["template"], run["status"]) == ("baseline", "example", "done")
    (experiment,) = store.experiments(run["id"])
    assert experiment["status"] == "done" and experiment["run_index"] == 0
    assert experiment["metrics"] == results.model_dump()["datasets"]
    assert experiment["execution"]["exit_code"] == 0
    assert json.loads((final_info.parent / "knobs.json").read_text()) == experiment["config"]
    assert [s["status"] for s in store.stages(run["id"])] == ["done"]


def test_failing_experiment_is_one_line_and_recorded(tmp_path, scientist_env):
    site = make_distribution(tmp_path / "site", "failing-template", "0.1", {"failing": "failing_plugin"},
                             {"failing_plugin": template_module("failing")})
    (site / "experiment.py").write_text("import sys\nprint('diverged at step 3', file=sys.stderr)\nsys.exit(3)\n")
    result = run_cli("baseline", "failing", "--out", "out", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "exited with 3" in result.stderr and "diverged at step 3" in result.stderr
    store = Store.open_existing(scientist_env / "out" / "scientist.db")
    run = store.latest_run()
    assert run["status"] == "failed"
    assert store.experiments(run["id"])[0]["status"] == "failed"


def test_missing_final_info_is_reported(tmp_path, scientist_env):
    site = make_distribution(tmp_path / "site", "silent-template", "0.1", {"silent": "silent_plugin"},
                             {"silent_plugin": template_module("silent")})
    (site / "experiment.py").write_text("print('done, but wrote nothing')\n")
    result = run_cli("baseline", "silent", "--out", "out", env={"PYTHONPATH": str(site)}, cwd=scientist_env)
    assert result.returncode == 1 and "wrote no run_0/final_info.json" in result.stderr


def test_installed_template_is_never_written_to(scientist_env):
    import scientist_example

    package = Path(scientist_example.__file__).parent
    before = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    assert run_cli("baseline", "example", "--quick", "--out", "out", cwd=scientist_env).returncode == 0
    after = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    assert before == after
