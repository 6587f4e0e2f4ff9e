"""The archive of a template's ideas across runs, with their review scores and failures: what later ideation
sees (data folder, archive/<template>.json). Several ideas (--workers) and several runs may update it at once,
so every update is a read-modify-write under a file lock, written atomically."""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

from scientist_core.models import Idea
from scientist_core.pipeline.context import RunContext
from scientist_core.untrusted import write_atomic


def archive_path(ctx: RunContext) -> Path:
    return Path(ctx.settings.data_dir) / "archive" / f"{ctx.template.name}.json"


def load_archive(ctx: RunContext) -> list[dict]:
    """The archive's entries; an unreadable archive is set aside (archive/<template>.json.unreadable) and
    counts as empty, so a bad file costs the history of ideas, never the run."""
    path = archive_path(ctx)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        entries = None
    if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("idea"), dict)
                                         and isinstance(e["idea"].get("Name"), str) for e in entries):
        return entries
    path.replace(path.with_name(path.name + ".unreadable"))
    ctx.report(f"ideas: the idea archive {path} was unreadable; it was kept as {path.name}.unreadable and "
               "a new one started")
    return []


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def save_to_archive(ctx: RunContext, idea: Idea, **extra) -> None:
    """Add or update the archive entry of `idea` (e.g. with its review score once known)."""
    path = archive_path(ctx)
    with _locked(path):
        entries = load_archive(ctx)
        entry = next((e for e in entries if e["idea"]["Name"] == idea.name), None)
        if entry is None:
            entry = {"idea": idea.model_dump(by_alias=True), "run_id": ctx.run_id}
            entries.append(entry)
        entry.update(extra)
        write_atomic(path, json.dumps(entries, indent=2))
