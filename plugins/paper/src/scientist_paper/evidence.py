"""What `scientist check` reads from a finished run: the paper folders a path names, and for each the evidence
the host recorded (claims.Evidence): the run records, the machine, the template's baseline and references, the
idea. The latex/ and .stages/ folders and machine.json are the host's own; nothing a run wrote is read."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from scientist_core import ScientistError
from scientist_paper.claims import Evidence, instruction_ngrams
from scientist_paper.latex import BODY_FILE
from scientist_paper.provenance import combined_facts, run_machines

PAPER_FOLDERS = ("latex", "latex-improved")


def paper_folders(path: Path) -> list[Path]:
    """The paper folders `path` names: a run folder (every idea's papers), an idea folder, or a paper folder."""
    path = Path(path).resolve()
    if (path / BODY_FILE).is_file():
        return [path]
    found = [path / name for name in PAPER_FOLDERS if (path / name / BODY_FILE).is_file()]
    if not found and (path / ".stages").is_dir():
        found = [idea / name for idea in sorted(path.iterdir()) if idea.is_dir()
                 for name in PAPER_FOLDERS if (idea / name / BODY_FILE).is_file()]
    if not found:
        raise ScientistError(f"{path} is not a run folder, an idea folder or a paper folder of scientist (no "
                             f"{BODY_FILE} in it)", "pass the folder `scientist run` printed, or one of its ideas")
    return found


def recorded_machine(run_dir: Path, runs: Sequence[Any] = ()) -> dict[str, str]:
    """The machine facts the runs used: each run's own (`RunRecord.machine`, combined as the paper's setup
    combines them), else the run's machine.json (records made before runs carried their machine)."""
    path = run_dir / "machine.json"
    try:
        facts = json.loads(path.read_text())
    except (OSError, ValueError):
        facts = {}
    default = {str(k): str(v) for k, v in facts.items()} if isinstance(facts, dict) else {}
    return combined_facts(run_machines(runs, default)) if runs else default


def _runs(run_dir: Path, idea: str) -> list[Any]:
    from pydantic import TypeAdapter, ValidationError

    from scientist_core import RunRecord, checkpoint_file

    saved = checkpoint_file(run_dir, f"experiments:{idea}")
    try:
        return sorted(TypeAdapter(list[RunRecord]).validate_json(saved.read_bytes()), key=lambda run: run.index)
    except (OSError, ValidationError) as exc:
        raise ScientistError(f"the run records of idea {idea!r} cannot be read from {saved} ({type(exc).__name__})",
                             "check a folder whose experiments finished") from None


def _idea_text(run_dir: Path, idea: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from scientist_core import Idea

    for saved in sorted((run_dir / ".stages").glob("ideas*.json")):
        try:
            ideas = TypeAdapter(list[Idea]).validate_json(saved.read_bytes())
        except (OSError, ValidationError):
            continue
        for item in ideas:
            if item.name == idea:
                return f"{item.title}. {item.experiment}"
    return ""


def _template(run_dir: Path) -> tuple[Any, bool]:
    """The run's template plugin (named in its store row) and whether the run was in quick mode."""
    from scientist_core import Store, get_host, load_settings

    store_path = run_dir.parent / "scientist.db"
    if not store_path.is_file():
        raise ScientistError(f"{run_dir} has no run store beside it ({store_path})",
                             "check a run inside the output folder `scientist run` made")
    store = Store.open_existing(store_path)
    try:
        row = store.run(run_dir.name)
    finally:
        store.close()
    settings = load_settings()
    template = get_host().create("template", row["template"], settings.templates)
    return template, bool((row.get("settings") or {}).get("quick"))


def evidence_for(latex_dir: Path, template: Any = None, quick: bool = False) -> Evidence:
    """The records the paper in `latex_dir` (<run>/<idea>/latex) must trace to; the run's `template` (and whether
    it ran in `quick` mode) from its store row unless given."""
    from scientist_literature.bibtex import parse_bibtex

    idea_dir = latex_dir.parent
    run_dir = idea_dir.parent
    runs = _runs(run_dir, idea_dir.name)
    if template is None:
        template, quick = _template(run_dir)
    try:
        baseline = template.knobs(quick=quick).model_dump()
        work = frozenset(template.quick_knobs)
    except Exception:  # a template whose knobs cannot be built here: its paper is still checked
        baseline, work = {}, frozenset()
    bib = template.files_dir() / "latex" / "references.bib"
    keys = frozenset(entry.key for entry in parse_bibtex(bib.read_text(errors="replace"))) if bib.is_file() \
        else frozenset()
    return Evidence(runs=runs, facts=recorded_machine(run_dir, runs), baseline=baseline,
                    description=template.description, work_knobs=work, template_keys=keys,
                    idea_text=_idea_text(run_dir, idea_dir.name), prompt_ngrams=instruction_ngrams(),
                    metrics=template.metrics, deterministic=template.deterministic)
