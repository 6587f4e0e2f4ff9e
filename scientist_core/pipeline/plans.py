"""What a run may change, as the schemas the model answers in: ideas that name the knobs they change, plans whose
runs change a few of those knobs to valid values. Every rule is a validator of the schema, so an answer that
breaks one goes back to the model in the structured-output repair rounds and never costs a run attempt."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema

from scientist_core.errors import ExperimentError
from scientist_core.models import Idea
from scientist_core.template import Template

NO_CODE_CHANGE = {"", "none", "null", "n/a", "na", "no", "-", "nothing", "no change", "no code change"}


def wants_code_change(text: str) -> bool:
    """Whether a planned run or an idea asks for a code change; small models write "None" for none."""
    return text.strip().strip(".").lower() not in NO_CODE_CHANGE


def changeable_knobs(template: Template) -> list[str]:
    return [name for name in template.knobs_model().model_fields if name not in template.fixed_knobs]


def baseline_values(template: Template, quick: bool) -> dict[str, Any]:
    return template.knobs(quick=quick).model_dump(mode="json")


def describe_changes(changes: dict[str, Any], baseline: dict[str, Any]) -> str:
    """`lr from 0.0003 to 0.005 (raised), schedule from cosine to constant`: what code knows of a run's knobs."""
    parts = []
    for name, value in changes.items():
        before = baseline.get(name)
        way = ""
        if isinstance(value, (int, float)) and isinstance(before, (int, float)) and not isinstance(value, bool):
            way = " (raised)" if value > before else " (lowered)" if value < before else ""
        parts.append(f"{name} from {before} to {value}{way}")
    return ", ".join(parts) or "no knob"


_DEF = re.compile(r"^(\s*)(?:async\s+)?(?:def|class)\s+(\w+)")


def _enclosing(lines: list[str], at: int) -> str:
    """The function or class that line `at` of `lines` lies in, as `name()`; "module level" outside any."""
    if at >= len(lines):
        return "module level"
    own = _DEF.match(lines[at])
    if own:
        return f"{own.group(2)}()"
    line = lines[at]
    indent = len(line) - len(line.lstrip())
    for earlier in reversed(lines[:at]):
        found = _DEF.match(earlier)
        if found and len(found.group(1)) < indent:
            return f"{found.group(2)}()"
    return "module level"


def summarize_code_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """How the sources `after` differ from `before` (file name -> text), in one line computed with difflib:
    "experiment.py: 3 lines changed in train(), evaluate()"; "" when they are the same. A changed line counts
    once, a replaced block as its longer side; a deleted block is placed where it was in `before`."""
    from difflib import SequenceMatcher

    parts = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, "").splitlines(), after.get(name, "").splitlines()
        changed, where = 0, []
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            changed += max(i2 - i1, j2 - j1)
            place = _enclosing(new, j1) if j2 > j1 else _enclosing(old, i1)
            if place not in where:
                where.append(place)
        if changed:
            places = [place for place in where if place != "module level"] + \
                     [place for place in where if place == "module level"]
            inside = f" in {', '.join(places[:3])}{' and elsewhere' if len(places) > 3 else ''}" \
                if places != ["module level"] else " at module level"
            parts.append(f"{name}: {changed} line{'s' if changed != 1 else ''} changed{inside}")
    return "; ".join(parts)


# -- ideas ------------------------------------------------------------------------------------------------

@lru_cache(maxsize=32)
def _code_names(path: Path, mtime: float) -> frozenset[str]:
    """Functions and classes the experiment file defines, by names no prose uses (snake_case or CamelCase)."""
    names = {node.name for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return frozenset(n for n in names if "_" in n.strip("_") or re.search(r"[a-z][A-Z]", n))


def code_names(template: Template) -> frozenset[str]:
    path = template.files_dir() / template.experiment_file
    return _code_names(path, path.stat().st_mtime) - set(template.knobs_model().model_fields)


def idea_model(template: Template, code_changes: bool, max_knobs: int) -> type[Idea]:
    """The Idea schema for `template`: Knobs from the template's changeable knobs, at most `max_knobs`; without
    `code_changes`, at least one, asked before the Experiment (which then describes changes to them), Code_change
    out of the schema, and an idea that needs a code change is refused with the reason."""
    knob_names = changeable_knobs(template)
    defined = code_names(template)
    knob_list = ", ".join(knob_names)
    knobs_type = list[Literal[tuple(knob_names)]]  # type: ignore[valid-type]
    about = f"the template's knobs this idea's experiment changes (at most {max_knobs})"
    if code_changes:
        return create_model("Idea", __base__=Idea, knobs=(knobs_type, Field(
            default_factory=list, alias="Knobs", max_length=max_knobs, description=about)))
    knobs_field = (knobs_type, Field(alias="Knobs", min_length=1, max_length=max_knobs, description=about))

    def check(idea: Idea) -> Idea:
        if wants_code_change(idea.code_change):
            raise ValueError(f"this idea needs a code change ({idea.code_change.strip()[:120]}), but this run "
                             f"cannot change code: propose an idea tested by changing only these knobs: {knob_list}")
        named = sorted(n for n in defined if re.search(rf"\b{re.escape(n)}\b", idea.experiment))
        if named:
            raise ValueError(f"the Experiment changes {', '.join(named)}, code of the template, but this run cannot "
                             f"change code: describe an experiment made only of changes to the knobs {knob_list}")
        mentioned = {n for n in knob_names if re.search(rf"\b{re.escape(n)}\b", idea.experiment)}
        unlisted = sorted(n for n in mentioned - set(idea.knobs) if "_" in n)
        if unlisted and not mentioned & set(idea.knobs):  # the plan changes only the knobs in Knobs
            raise ValueError(f"the Experiment changes {', '.join(unlisted)}, which Knobs does not name "
                             f"({', '.join(idea.knobs)}): name in Knobs the knobs the Experiment changes")
        return idea

    field = Idea.model_fields  # the same fields, Knobs before Experiment: a model writes the knobs, then the runs
    return create_model(
        "Idea", __config__=ConfigDict(populate_by_name=True),
        __validators__={"runnable": model_validator(mode="after")(check)},
        name=(str, field["name"]), title=(str, field["title"]), knobs=knobs_field,
        experiment=(str, Field(alias="Experiment", description="the runs that test the idea, each as new values "
                                                               "of the knobs named in Knobs")),
        interestingness=(int, field["interestingness"]), feasibility=(int, field["feasibility"]),
        novelty=(int, field["novelty"]),
        code_change=(SkipJsonSchema[str], Field("", alias="Code_change")),  # validated, never asked for
    )


# -- plans ------------------------------------------------------------------------------------------------

def knob_changes_model(template: Template, knobs: set[str] | None = None,
                       baseline: dict[str, Any] | None = None) -> type[BaseModel]:
    """The template's knobs (or only `knobs`), every one optional and with its own bounds: the schema knob changes
    are written in, so even a small model under constrained decoding can only name knobs that exist, with values
    in range. A knob with a few choices offers only those other than its `baseline` value."""
    from typing import Annotated, get_args, get_origin

    fields = {}
    for name, info in template.knobs_model().model_fields.items():
        if name in template.fixed_knobs or (knobs is not None and name not in knobs):
            continue
        annotation = info.annotation
        choices = get_args(annotation) if get_origin(annotation) is Literal else (True, False) \
            if annotation is bool else ()
        if choices and baseline is not None and len(choices) > 1:
            annotation = Literal[tuple(c for c in choices if c != baseline.get(name))]  # type: ignore[misc]
        bounded = Annotated[(annotation, *info.metadata)] if info.metadata else annotation
        fields[name] = (Optional[bounded], Field(None, description=info.description))

    def only_these(data: Any) -> Any:
        others = sorted(set(data) - set(fields)) if isinstance(data, dict) else []
        if others:
            raise ValueError(f"{', '.join(others)}: not among the knobs this run may change ({', '.join(fields)}); "
                             "leave them out")
        return data

    return create_model("KnobChanges", __config__=ConfigDict(extra="forbid"),
                        __validators__={"only_these": model_validator(mode="before")(only_these)}, **fields)


def plan_models(template: Template, max_runs: int, code_changes: bool = True, *, quick: bool = False,
                idea: Idea | None = None, max_knob_changes: int = 3) -> tuple[type[BaseModel], type[BaseModel]]:
    """(PlannedRun, ExperimentPlan) for this template and idea. A run changes at most `max_knob_changes` knobs,
    only those the idea names when it names some, each to a value that differs from the baseline's (a restated
    default is dropped by code), the whole set valid for the template; without `code_changes` knobs only. The
    knob changes come before the description, so the description follows the values and not the other way."""
    baseline = baseline_values(template, quick)
    named = set(idea.knobs) if idea is not None and idea.knobs else None
    changes_model = knob_changes_model(template, named, baseline)
    fields: dict[str, Any] = {
        "knob_changes": (changes_model, Field(default_factory=changes_model,
                                              description=f"at most {max_knob_changes} knobs to change, each to a "
                                                          "value other than the baseline's; leave the rest null")),
        "description": (str, Field(description="what this run changes and why, in one sentence")),
    }
    if code_changes:
        fields["code_change"] = (str, Field("", description="a code change the knobs cannot express, or empty"))

    def check_run(run: BaseModel) -> BaseModel:
        restated = []
        for name, value in run.knob_changes.model_dump(exclude_none=True, mode="json").items():
            if value == baseline.get(name):  # restating the baseline changes nothing: not a change
                setattr(run.knob_changes, name, None)
                restated.append(name)
        changes = run.knob_changes.model_dump(exclude_none=True)
        coded = code_changes and wants_code_change(run.code_change)
        if not changes and not coded:
            said = f"{', '.join(f'{n}={baseline[n]}' for n in restated)} {'is' if len(restated) == 1 else 'are'} " \
                   "the baseline's" if restated else "every knob is null"
            example = _new_values(template, quick, baseline, restated or sorted(named or changes_model.model_fields))
            raise ValueError(f"the run changes nothing ({said}): give at least one knob a new value, for example "
                             f"{example}")
        if len(changes) > max_knob_changes:
            raise ValueError(f"the run changes {len(changes)} knobs ({', '.join(changes)}): change at most "
                             f"{max_knob_changes}, those the idea is about, and leave the others null")
        try:
            template.knobs(quick=quick, changes=changes)
        except ExperimentError as exc:
            raise ValueError(f"{exc.message}; choose a valid value") from None
        return run

    planned = create_model("PlannedRun", __validators__={"valid": model_validator(mode="after")(check_run)},
                           **fields)

    def drop_empty_and_repeated(data: Any) -> Any:
        """Runs that change nothing, or repeat an earlier run, are dropped by code while another run is left: an
        idea about a knob with one other value (a schedule of two) allows one run, and a small model fills the
        plan's length with empty or repeated runs (measured: seed 18 lost all three repair rounds to that)."""
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            return data
        kept, seen = [], []
        for run in data["runs"]:
            key = _what_changes(run, baseline, code_changes)
            if key == () or (key is not None and key in seen):
                continue
            kept.append(run)
            seen.append(key)
        return {**data, "runs": kept} if kept else data

    def check_plan(plan: BaseModel) -> BaseModel:
        seen: list[dict] = []
        for number, run in enumerate(plan.runs, 1):
            key = run.model_dump(exclude={"description"}, mode="json")
            if key in seen:
                raise ValueError(f"run {number} repeats run {seen.index(key) + 1}: every run changes something else")
            seen.append(key)
        return plan

    plan = create_model("ExperimentPlan", __validators__={
                            "drop": model_validator(mode="before")(drop_empty_and_repeated),
                            "distinct": model_validator(mode="after")(check_plan)},
                        runs=(list[planned], Field(min_length=1, max_length=max_runs)))
    return planned, plan


def _what_changes(run: Any, baseline: dict[str, Any], code_changes: bool) -> Any:
    """What a run as the model wrote it changes: () for nothing, else its changed knobs and code change; None
    when it is not a run at all (validation says so later)."""
    if not isinstance(run, dict) or not isinstance(run.get("knob_changes", {}), dict):
        return None
    changes = sorted((name, repr(value)) for name, value in (run.get("knob_changes") or {}).items()
                     if value is not None and value != baseline.get(name))
    code = run.get("code_change", "") if code_changes else ""
    code = code.strip() if isinstance(code, str) and wants_code_change(code) else ""
    return (tuple(changes), code) if changes or code else ()


def _new_values(template: Template, quick: bool, baseline: dict[str, Any], names: list[str]) -> str:
    """`hidden_size=512 or hidden_size=128`: valid values other than the baseline's for the first of `names` that
    has some, so a model that keeps restating the baseline is shown what a change looks like."""
    for name in names:
        before = baseline.get(name)
        if isinstance(before, bool) or not isinstance(before, (int, float)):
            continue  # a knob with choices offers only the other choices in its schema already
        candidates = [before * 2, before // 2 if isinstance(before, int) else before / 2] if before else [1]
        valid = []
        for value in candidates:
            try:
                template.knobs(quick=quick, changes={name: value})
            except ExperimentError:
                continue
            if value != before:
                valid.append(f"{name}={value:g}")
        if valid:
            return " or ".join(valid)
    return "one of " + ", ".join(names)


def refusing(planned_model: type[BaseModel], failed: list[BaseModel]) -> type[BaseModel]:
    """`planned_model`, refusing any of the `failed` configurations again: a fix must change something."""
    tried = [run.model_dump(exclude={"description"}, mode="json") for run in failed]

    def check(run: BaseModel) -> BaseModel:
        if run.model_dump(exclude={"description"}, mode="json") in tried:
            raise ValueError("this repeats a configuration that already failed: change the values that made it "
                             "fail")
        return run

    return create_model(planned_model.__name__, __base__=planned_model,
                        __validators__={"new": model_validator(mode="after")(check)})
