"""Port a template folder of the original AI Scientist (experiment.py taking `--out_dir`, plot.py, prompt.json,
seed_ideas.json, latex/) into a package (`write_package`), and say what a human must finish.

What is converted by code: the original experiment.py is kept whole as `v1_experiment.py`; a new experiment.py
declares its command-line options (argparse's `add_argument` calls, read without running the file) as `Knobs`,
runs the original with them, and rewrites its final_info.json into the results contract (the means and stderrs of
each dataset, finite numbers only; the original is kept as final_info_v1.json). Seed ideas get the knobs their
text names. The rest (the paper's layout, a plot step that ignores its arguments, hyperparameters that are not
options) is listed, one line each, for the author.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

from scientist_core.errors import ScientistError
from scientist_core.scaffold import PackageNames, write_package

# options that stay the core's or v1's own, never knobs
NOT_KNOBS = {"out_dir", "help"}
# words in a knob's name that make it the length of a run: quick mode runs a quarter of it
LENGTH_WORDS = ("step", "iter", "epoch")
TYPES = {"int": "int", "float": "float", "str": "str"}


def v1_options(experiment: Path) -> list[dict[str, Any]]:
    """The `parser.add_argument("--name", type=..., default=..., help=...)` calls of a script, read by `ast`:
    name, type, default and help of each option whose values are literals."""
    options = []
    for node in ast.walk(ast.parse(experiment.read_text(), str(experiment))):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args):
            continue
        flag = node.args[-1]
        if not (isinstance(flag, ast.Constant) and str(flag.value).startswith("--")):
            continue
        keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        name = str(flag.value)[2:].replace("-", "_")
        kind = getattr(keywords.get("type"), "id", None)
        try:
            default = ast.literal_eval(keywords["default"]) if "default" in keywords else None
            help_text = ast.literal_eval(keywords["help"]) if "help" in keywords else ""
        except ValueError:
            default, help_text = None, ""
        if name in NOT_KNOBS:
            continue
        if kind is None and "action" in keywords and "store_true" in ast.dump(keywords["action"]):
            kind, default = "bool", bool(default)
        options.append({"name": name, "type": TYPES.get(kind, "bool" if kind == "bool" else None),
                        "default": default, "help": str(help_text)})
    return options


def _knob_line(option: dict[str, Any]) -> str:
    extra = ""
    if option["type"] == "int" and any(word in option["name"] for word in LENGTH_WORDS) and option["default"]:
        extra = f', json_schema_extra={{"quick": {max(1, option["default"] // 4)}}}'
    description = option["help"] or f"the original option --{option['name']}"
    return (f"    {option['name']}: {option['type']} = Field({option['default']!r}, "
            f"description={description!r}{extra})")


WRAPPER = '''"""The original AI Scientist experiment (v1_experiment.py, unchanged) with its options as knobs.

The exact command (the core runs it in the workspace, after writing the validated knobs to the knobs file):

    python experiment.py --out_dir run_0 --knobs run_0/knobs.json

It runs v1_experiment.py with `--out_dir` and one option per knob, then rewrites <out_dir>/final_info.json into
the results contract, {{dataset: {{"means": {{metric: number}}, "stderrs": {{...}}}}}} with finite numbers; the
original file is kept as <out_dir>/final_info_v1.json. Made by `scientist template new --from-v1`.
"""

import argparse
import json
import math
import runpy
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ORIGINAL = Path(__file__).with_name("v1_experiment.py")


class Knobs(BaseModel):
    """The original script's command-line options: everything an idea may change without editing code."""

    model_config = ConfigDict(extra="forbid")

{knobs}


def contract_results(original: dict) -> dict:
    """v1's {{dataset: {{"means": ..., "stderrs": ..., "final_info_dict": ...}}}} as the results contract."""
    results = {{}}
    for dataset, entry in original.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("means"), dict):
            continue
        results[dataset] = {{key: {{metric: float(value) for metric, value in entry.get(key, {{}}).items()
                                  if isinstance(value, (int, float)) and math.isfinite(value)}}
                            for key in ("means", "stderrs")}}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the original experiment with the knobs given.")
    parser.add_argument("--out_dir", default="run_0", help="folder for final_info.json")
    parser.add_argument("--knobs", help="JSON file of knob values; knobs it leaves out take their defaults")
    args = parser.parse_args()
    knobs = Knobs.model_validate_json(Path(args.knobs).read_text()) if args.knobs else Knobs()
    argv = [str(ORIGINAL), "--out_dir", args.out_dir]
    for name, value in knobs.model_dump().items():
        if isinstance(value, bool):
            argv += [f"--{{name}}"] if value else []
        else:
            argv += [f"--{{name}}", str(value)]
    sys.argv = argv
    runpy.run_path(str(ORIGINAL), run_name="__main__")
    out = Path(args.out_dir)
    original = json.loads((out / "final_info.json").read_text())
    (out / "final_info_v1.json").write_text(json.dumps(original, indent=2))
    (out / "final_info.json").write_text(json.dumps(contract_results(original), indent=2, allow_nan=False))


if __name__ == "__main__":
    main()
'''

TEST = '''"""The `{name}` template keeps the contract every template keeps (scientist_core.testing)."""

from scientist_core.testing import TemplateContract
from {package}.plugin import {class_name}


class Test{class_name}(TemplateContract):
    template_class = {class_name}
    allowed_imports = {allowed!r}
'''


def from_v1(source: Path, names: PackageNames, root: Path) -> list[str]:
    """Write the package for the original template folder `source` into `root`; returns what is left to do."""
    experiment = source / "experiment.py"
    if not experiment.is_file():
        raise ScientistError(f"{source} holds no experiment.py", "point --from-v1 at an AI Scientist template folder")
    options = v1_options(experiment)
    layout = write_package(names, root, with_example_files=False)
    files = layout["files"]
    left: list[str] = []
    for entry in sorted(source.iterdir()):
        if entry.name in ("experiment.py", "latex", "seed_ideas.json", "__pycache__") or entry.name.startswith("run_"):
            continue
        copy = shutil.copytree if entry.is_dir() else shutil.copy2
        copy(entry, files / entry.name)
    shutil.copy2(experiment, files / "v1_experiment.py")
    typed = [option for option in options if option["type"] is not None]
    left += [f"experiment.py: the option --{o['name']} has no literal type or default: add it to Knobs by hand"
             for o in options if o["type"] is None]
    if not typed:
        left.append("experiment.py: the original takes no option besides --out_dir: move its hyperparameters into "
                    "argparse options or Knobs fields, so ideas can change them")
    if not any('"quick"' in _knob_line(option) for option in typed):
        left.append('experiment.py: no knob has a quick-mode value: give the knob of the run\'s length '
                    'json_schema_extra={"quick": value}')
    knobs = "\n".join(_knob_line(option) for option in typed) or "    pass"
    (files / "experiment.py").write_text(WRAPPER.format(knobs=knobs))
    knob_names = [option["name"] for option in typed]
    left += _seed_ideas(source, files, knob_names)
    left += _prompt(source)
    if not (source / "plot.py").is_file():
        left.append("plot.py is missing: write one that draws the run folders given as arguments into PNG files")
    elif "sys.argv" not in (text := (source / "plot.py").read_text()) and "argparse" not in text:
        left.append("plot.py reads the current folder, not the run folders it is given (`python plot.py run_0 "
                    "run_1 ...`): read them from sys.argv, and exit naming a folder that holds no results")
    if (source / "latex").is_dir():
        left.append("latex/: not converted: papers start from scientist's skeleton (scientist_core/latex_skeleton); "
                    "copy into src/.../template/latex/ only what your layout changes, e.g. references.bib")
    left.append(_undeclare_metrics(layout["source"] / "plugin.py"))
    allowed = sorted(_third_party_imports([files / "experiment.py", files / "plot.py"]))
    (layout["tests"] / f"test_{names.name}_template.py").write_text(
        TEST.format(name=names.name, package=names.package, class_name=names.class_name, allowed=set(allowed)))
    return left


def _undeclare_metrics(plugin: Path) -> str:
    """The starter's metric declarations taken out of the ported plugin.py (the original's metrics are known only
    once it runs); returns the to-do line that asks for the real ones."""
    text = plugin.read_text()
    start, end = text.index("    metrics = {\n"), text.index("    }\n", text.index("    metrics = {\n")) + 6
    plugin.write_text(text[:start] + "    metrics: dict[str, Metric] = {}  # declare what final_info.json writes\n"
                      + text[end:])
    return ("plugin.py: declare the metrics the experiment writes (`metrics = {\"name\": Metric(direction=...)}`; "
            "`scientist baseline NAME` shows them): until then their direction is guessed from their names")


def _seed_ideas(source: Path, files: Path, knob_names: list[str]) -> list[str]:
    path = source / "seed_ideas.json"
    if not path.is_file():
        (files / "seed_ideas.json").write_text("[]\n")
        return ["seed_ideas.json is missing: write one or two ideas, each naming the knobs it changes in Knobs"]
    ideas = json.loads(path.read_text())
    left = []
    if len(ideas) > 2:
        left.append(f"seed_ideas.json: kept the first 2 of {len(ideas)} ideas (a template ships one or two)")
        ideas = ideas[:2]
    for idea in ideas:
        text = json.dumps(idea)
        idea["Knobs"] = [name for name in knob_names if name in text][:3]
        if not idea["Knobs"]:
            left.append(f"seed_ideas.json: the idea {idea.get('Name')} names no knob: list the knobs it changes "
                        "in its \"Knobs\"")
    (files / "seed_ideas.json").write_text(json.dumps(ideas, indent=2) + "\n")
    return left


def _prompt(source: Path) -> list[str]:
    try:
        prompt = json.loads((source / "prompt.json").read_text())
    except (OSError, ValueError):
        return ["prompt.json is missing or not JSON: write {\"system\": ..., \"task_description\": ...}"]
    return [f"prompt.json has no {key}: add it" for key in ("system", "task_description") if not prompt.get(key)]


def _third_party_imports(scripts: list[Path]) -> set[str]:
    import sys

    found = set()
    for script in scripts:
        if not script.is_file():
            continue
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names)
