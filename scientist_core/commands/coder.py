"""`scientist coder`: list the installed coders and whether each is ready; install what a coder needs.

    scientist coder list                 # every coder, ready or not, and why
    scientist coder install aider        # e.g. aider's own virtual environment (once; idempotent)

The `coder` setting (or `scientist run --coder NAME`) chooses the coder a run uses.
"""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="List coders and install what they need.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """List coders and install what they need."""


@app.command("list")
def list_coders(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines.")) -> None:
    """Every installed coder, whether it is ready, and which one runs use."""
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    settings, host = load_settings(), get_host()
    rows = []
    for reg in host.registrations("coder"):
        try:
            readiness = host.create("coder", reg.name, settings.coders).readiness()
            ready, detail = readiness.ready, readiness.detail
        except Exception as exc:  # a broken coder is listed, not fatal
            ready, detail = False, f"{type(exc).__name__}: {exc}"
        rows.append({"name": reg.name, "ready": ready, "detail": detail, "chosen": reg.name == settings.coder,
                     "distribution": reg.plugin.distribution, "description": reg.cls.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        mark = "*" if row["chosen"] else " "
        state = "ready" if row["ready"] else "not ready"
        typer.echo(f"{mark} {row['name']}\t{state}\t{row['distribution']}\t{row['detail'] or row['description']}")


@app.command("install")
def install(name: str = typer.Argument(..., help="The coder, e.g. aider."),
            force: bool = typer.Option(False, "--force", help="Install again even if it is installed.")) -> None:
    """Install what coder NAME needs (a coder's own environment); running it again changes nothing."""
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    coder = get_host().create("coder", name, load_settings().coders)
    coder.install(say=lambda line: typer.echo(line, err=True), force=force)
