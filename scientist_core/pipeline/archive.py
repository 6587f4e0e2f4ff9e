"""The archive of a template's ideas across runs, with their review scores and failures: what later ideation
sees (data folder, archive/<template>.json)."""

from __future__ import annotations

import json
from pathlib import Path

from scientist_core.models import Idea
from scientist_core.pipeline.context import RunContext


def archive_path(ctx: RunContext) -> Path:
    return Path(ctx.settings.data_dir) / "archive" / f"{ctx.template.name}.json"


def load_archive(ctx: RunContext) -> list[dict]:
    path = archive_path(ctx)
    return json.loads(path.read_text()) if path.is_file() else []


def save_to_archive(ctx: RunContext, idea: Idea, **extra) -> None:
    """Add or update the archive entry of `idea` (e.g. with its review score once known)."""
    path = archive_path(ctx)
    entries = load_archive(ctx)
    entry = next((e for e in entries if e["idea"]["Name"] == idea.name), None)
    if entry is None:
        entry = {"idea": idea.model_dump(by_alias=True), "run_id": ctx.run_id}
        entries.append(entry)
    entry.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)
