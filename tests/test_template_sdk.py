"""The template SDK as an outside author meets it: `scientist template new` makes a package that installs into a
fresh virtual environment and passes its own generated tests, `scientist template check` and a scripted
`scientist run NAME --model script/...` from the shell to a reviewed PDF; `--from-v1` ports a template folder in the
original AI Scientist layout and lists exactly what `template check` still finds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from scientist_core.testing import SCRIPTED_SETTINGS_TOML, Script
from tests.helpers import run_cli

needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment that sees this one's packages (a .pth file adds its site-packages; nothing is
    downloaded) and has the `scientist` console script pip would write for scientist-core. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "scientist-dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    launcher = folder / "bin" / "scientist"
    launcher.write_text(f"#!{python}\nimport sys\nfrom scientist_core.cli import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    return python


def isolated_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCIENTIST_")}
    return {**env, "HOME": str(home / "home"), "SCIENTIST_DATA_DIR": str(home / "data"), "CI": "true"}


@needs_latex
def test_a_new_package_installs_passes_its_tests_the_check_and_a_scripted_run_from_the_shell(tmp_path):
    made = run_cli("template", "new", "line_fit", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    package = Path(made.stdout.strip())
    assert package == tmp_path / "scientist-line-fit" and (package / "pyproject.toml").is_file()

    python = fresh_environment(tmp_path / "venv")
    env = isolated_env(tmp_path)
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "-e", str(package)], capture_output=True, text=True, env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr
    scientist = str(tmp_path / "venv" / "bin" / "scientist")

    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                           capture_output=True, text=True, env=env, timeout=300)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "10 passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout[-500:]

    checked = subprocess.run([scientist, "template", "check", "line_fit"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "line_fit: keeps the template contract" in checked.stdout

    work = tmp_path / "ci"
    work.mkdir()
    (work / "scientist.toml").write_text(SCRIPTED_SETTINGS_TOML)
    Script().full_run(ideas=["momentum_sweep"], metric="line.val_loss", plan=[{"momentum": 0.9}],
                      knobs=["momentum"]).save(work / "replies.jsonl")
    run = subprocess.run([scientist, "run", "line_fit", "--quick", "--num-ideas", "1", "--max-runs", "1",
                          "--reflections", "2", "--novelty-rounds", "3", "--citation-rounds", "1",
                          "--model", "script/replies.jsonl"], capture_output=True, text=True, env=env, cwd=work,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    (paper,) = (work / "scientist-runs").glob("*/momentum_sweep/momentum_sweep.pdf")
    assert paper.read_bytes()[:5] == b"%PDF-"
    assert "overall: 5" in run.stdout and "decision: Reject" in run.stdout


V1_EXPERIMENT = """\
    import argparse
    import json
    import os
    import random

    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", type=str, default="run_0")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="step size of SGD")
    parser.add_argument("--num_steps", type=int, default=200, help="SGD steps")
    args = parser.parse_args()  # at module level, as every original template does

    final_infos = []
    for seed in range(2):
        rng = random.Random(seed)
        w = 0.0
        for _ in range(args.num_steps):
            x = rng.uniform(-1, 1)
            w -= args.learning_rate * 2 * (w * x - 3 * x) * x
        final_infos.append({"final_loss": (w - 3) ** 2})
    final_info_dict = {k: [d[k] for d in final_infos] for k in final_infos[0]}
    means = {f"{k}_mean": sum(v) / len(v) for k, v in final_info_dict.items()}
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump({"toy": {"means": means, "stderrs": {}, "final_info_dict": final_info_dict}}, f)
"""
V1_PLOT = """\
    import json
    import os
    import matplotlib.pyplot as plt

    folders = [f for f in os.listdir("./") if f.startswith("run")]
    losses = [json.load(open(os.path.join(f, "final_info.json")))["toy"]["means"]["final_loss_mean"] for f in folders]
    plt.bar(folders, losses)
    plt.savefig("final_loss.png")
"""
V1_IDEAS = [{"Name": "lr_sweep", "Title": "Learning rates", "Experiment": "Sweep learning_rate over 0.01 to 0.3.",
             "Interestingness": 3, "Feasibility": 9, "Novelty": 2},
            {"Name": "more_data", "Title": "More data", "Experiment": "Draw more points.",
             "Interestingness": 3, "Feasibility": 9, "Novelty": 2}]


def original_template(folder: Path) -> Path:
    """A template folder in the original AI Scientist's layout."""
    (folder / "latex").mkdir(parents=True)
    (folder / "experiment.py").write_text(textwrap.dedent(V1_EXPERIMENT))
    (folder / "plot.py").write_text(textwrap.dedent(V1_PLOT))
    (folder / "prompt.json").write_text(json.dumps({"system": "You are a researcher.",
                                                    "task_description": "Fit one weight by SGD."}))
    (folder / "seed_ideas.json").write_text(json.dumps(V1_IDEAS))
    (folder / "latex" / "template.tex").write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    return folder


@needs_latex
def test_from_v1_lists_exactly_what_the_check_still_finds(tmp_path):
    ported = run_cli("template", "new", "toy_fit", "--from-v1", str(original_template(tmp_path / "v1")),
                     "--out", str(tmp_path / "pkg"), cwd=tmp_path)
    assert ported.returncode == 0, ported.stderr
    to_do = [line.removeprefix("to do: ") for line in ported.stderr.splitlines() if line.startswith("to do: ")]
    assert [line.split(":")[0] for line in to_do] == ["seed_ideas.json", "plot.py reads the current folder, not "
                                                      "the run folders it is given (`python plot.py run_0 run_1 ...`)",
                                                      "latex/", "plugin.py"]
    files = tmp_path / "pkg" / "src" / "scientist_toy_fit" / "template"
    assert (files / "v1_experiment.py").read_text() == textwrap.dedent(V1_EXPERIMENT)
    assert json.loads((files / "seed_ideas.json").read_text())[0]["Knobs"] == ["learning_rate"]

    checked = run_cli("template", "check", str(tmp_path / "pkg"), cwd=tmp_path, timeout=300)
    assert checked.returncode == 1
    problems = checked.stdout.splitlines()
    assert len(problems) == 1 and "the seed idea more_data" in problems[0] and "more_data" in to_do[0]

    ideas = json.loads((files / "seed_ideas.json").read_text())
    ideas[1]["Knobs"] = ["num_steps"]  # what the to-do line asks for
    (files / "seed_ideas.json").write_text(json.dumps(ideas))
    checked = run_cli("template", "check", str(tmp_path / "pkg"), "--out", str(tmp_path / "check"), cwd=tmp_path,
                      timeout=300)
    assert checked.returncode == 0, checked.stdout
    (results,) = (tmp_path / "check" / "baseline").glob("*/sandbox/run_0/final_info.json")
    means = json.loads(results.read_text())["toy"]["means"]
    assert set(means) == {"final_loss_mean"} and means["final_loss_mean"] >= 0  # v1's shape, made the contract's


def test_new_refuses_a_bad_name_and_a_used_folder(tmp_path):
    bad = run_cli("template", "new", "My-Template", cwd=tmp_path)
    assert bad.returncode == 1 and "is not a template name" in bad.stderr and bad.stderr.count("\n") == 1
    (tmp_path / "scientist-taken" / "x").mkdir(parents=True)
    used = run_cli("template", "new", "taken", cwd=tmp_path)
    assert used.returncode == 1 and "is not empty" in used.stderr


def test_check_names_each_problem_with_its_fix_and_exits_1(tmp_path):
    made = run_cli("template", "new", "broken_fit", cwd=tmp_path)
    files = Path(made.stdout.strip()) / "src" / "scientist_broken_fit" / "template"
    (files / "prompt.json").write_text('{"system": "You are a researcher."}')
    (files / "seed_ideas.json").write_text("[]")
    experiment = files / "experiment.py"
    experiment.write_text(experiment.read_text().replace("allow_nan=False", "allow_nan=True").replace(
        '"means": {key: statistics.fmean(values)', '"means": {key: float("nan")'))
    checked = run_cli("template", "check", str(files.parent.parent.parent), cwd=tmp_path, timeout=300)
    assert checked.returncode == 1
    problems = checked.stdout.splitlines()
    assert problems == [
        "problem: prompt.json has no task_description: add the text",
        "problem: seed_ideas.json holds 0 idea(s) with 0 distinct names: keep one or two, each its own name",
        *[line for line in problems if line.startswith("problem: the quick baseline: ")],
    ], problems
    assert "line.means.train_loss: Input should be a finite number" in problems[-1]
