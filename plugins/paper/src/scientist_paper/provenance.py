"""What was run and who wrote the paper, by code from the host's records, never from the model's words: the runs
table (each run's knob changes and code diff), whether the runs implemented what the idea proposed, the machines
the runs used, and the disclosure that ends every paper."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from scientist_paper.latex import RUNS_TABLE_LABEL, latex_escape
from scientist_paper.results import KnobChange, run_label

if TYPE_CHECKING:
    from scientist_core import Idea, RunRecord


def runs_table_tex(runs: Sequence["RunRecord"], baseline: Mapping[str, Any]) -> str:
    """`generated/runs-table.tex`: one row per run, named as everywhere in the paper (run_label), with each knob
    it changed (the baseline's value, then the run's) and how its code differs from the template's (the host's
    one-line diff summary)."""
    rows = []
    for run in sorted(runs, key=lambda run: run.index):
        changes = [KnobChange(name, baseline.get(name), value).tex() for name, value in run.knob_changes.items()]
        if run.code_diff:
            changes.append(f"code: {latex_escape(run.code_diff)}")
        elif run.code_changed:
            changes.append("code: changed (no summary was recorded)")
        if run.index == 0:
            what = "nothing: the template's code and settings"
        else:
            what = "; ".join(changes) or "nothing recorded"
        rows.append(f"{latex_escape(run_label(run))} & {what[0].upper() + what[1:]} \\\\")
    return "\n".join([
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{What each run changed, from the host's records: each setting's value in the baseline and in the "
        r"run, and how the code the run executed differs from the template's, counted by code from the files.}",
        f"\\label{{{RUNS_TABLE_LABEL}}}",
        r"\small",
        r"\begin{tabular}{@{}p{0.3\linewidth}p{0.64\linewidth}@{}}",
        r"\toprule",
        r"Run & What it changed \\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]) + "\n"


def _words(text: str) -> str:
    """`text` as lowercase words separated by single spaces, underscores and hyphens as spaces."""
    return " ".join(re.findall(r"[a-z0-9.]+", text.lower().replace("_", " ").replace("-", " ")))


def _names(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text) is not None


def unimplemented_idea(idea: "Idea", runs: Sequence["RunRecord"], knobs: Iterable[str]) -> str:
    """Why the runs did not implement what `idea` proposed; "" when they did, as far as code can tell.

    The rule, kept simple so a reader can check it: the idea counts as implemented when a run other than the
    baseline ran changed code (its code_diff or code_changed), or when the idea's own text (its Name, Title and
    Experiment, written before any run) names a knob that a run changed, by the knob's name in words
    ("learning rate" for learning_rate), or names a word value a run gave it ("cosine"). The idea's Knobs list
    does not count: the plan is made to change those, whatever the idea's text proposes. Otherwise the runs
    changed none of what the idea named (another knob, or a method the knobs cannot express), and the paper must
    not be written as if they had. `knobs` are the template's knob names."""
    variants = [run for run in runs if run.index != 0]
    if not variants:
        return "no run other than the baseline finished"
    if any(run.code_diff or run.code_changed for run in variants):
        return ""
    text = _words(f"{idea.name} {idea.title} {idea.experiment}")
    changed: dict[str, set[str]] = {}
    for run in variants:
        for name, value in run.knob_changes.items():
            words = changed.setdefault(name, set())
            if isinstance(value, str) and re.search(r"[a-z]{3}", value.lower()):
                words.add(_words(value))
    for name, values in changed.items():
        if _names(text, _words(name)) or any(_names(text, value) for value in values):
            return ""
    named = [name for name in dict.fromkeys(knobs) if name not in changed and _names(text, _words(name))]
    ran = ", ".join(changed) or "no setting"
    if idea.code_change.strip():
        wanted = "a change to the experiment's code"
    elif named:
        wanted = f"a change to {', '.join(named)}"
    else:
        wanted = "a change that none of the settings the runs changed expresses"
    return f"it proposed {wanted}, while its runs changed only {ran} and none changed the code"


def combined_facts(machines: Sequence[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """One set of machine facts for runs that each carry their own (label, facts): a fact all runs share is given
    as it is; one that differs lists each value with the runs that had it: "none (baseline); NVIDIA A100 (...)"."""
    keys = list(dict.fromkeys(key for _, facts in machines for key in facts))
    combined = {}
    for key in keys:
        by_value: dict[str, list[str]] = {}
        for label, facts in machines:
            by_value.setdefault(facts.get(key, "not recorded"), []).append(label)
        combined[key] = next(iter(by_value)) if len(by_value) == 1 else \
            "; ".join(f"{value} ({', '.join(labels)})" for value, labels in by_value.items())
    return combined


def machine_count(machines: Sequence[tuple[str, Mapping[str, str]]]) -> int:
    """How many different machines (different facts) the runs used."""
    return len({tuple(sorted(facts.items())) for _, facts in machines})


def run_machines(runs: Sequence["RunRecord"], default: Mapping[str, str]) -> list[tuple[str, Mapping[str, str]]]:
    """(label, facts) of each run: its own recorded machine, else `default` (records made before runs carried
    one)."""
    return [(run_label(run), run.machine or default) for run in sorted(runs, key=lambda run: run.index)]


def scientist_version() -> str:
    try:
        return metadata.version("scientist-core")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def disclosure_tex(models: Sequence[str]) -> str:
    """`generated/disclosure.tex`: that the paper was generated by an AI system, which version of it, and the
    models that wrote it (from the run's ledger)."""
    named = ", ".join(f"\\texttt{{{latex_escape(model)}}}" for model in models) or "no recorded model"
    return (f"\\paragraph{{Disclosure.}} This paper was generated by an AI system: scientist "
            f"{latex_escape(scientist_version())}, an implementation of The AI Scientist, planned and ran its "
            f"experiments and wrote its text with the language model{'s' if len(models) != 1 else ''} {named}. "
            "Code wrote its numbers, its tables, the description of the machine and the bibliography from the "
            "recorded runs.\n")
