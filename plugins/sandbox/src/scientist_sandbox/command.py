"""`scientist sandbox exec`: run one command in the sandbox and print what happened as JSON.

Exit status: 0 when the command exited 0 within its limits, 1 when it failed or hit a limit,
2 for usage errors (bad option, missing work folder, an isolation unavailable and not allowed).
The runner is imported only when a command runs, to keep `scientist --help` fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Run commands inside the sandbox that contains every experiment (see docs/sandbox.md).",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Run commands inside the sandbox that contains every experiment (see docs/sandbox.md)."""


def _fresh_workdir() -> Path:
    """A new ./sandbox-<timestamp> folder: never the current folder itself, which may be a repository."""
    stem = Path.cwd() / f"sandbox-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, number = stem, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = stem.with_name(f"{stem.name}-{number}")


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    """A usage error: one line, as every other command prints it, and exit status 2."""
    from scientist_core import SandboxError

    typer.echo(f"Error: {SandboxError(message, hint).one_line()}", err=True)
    return typer.Exit(2)


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.", show_default=False)],
    workdir: Annotated[
        Optional[Path],
        typer.Option(
            "--workdir",
            "-w",
            help="Run folder (must exist). Default: a new ./sandbox-<timestamp> folder, never the current folder.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Wall-clock limit in seconds (default: 3600).", show_default=False)] = None,
    memory: Annotated[Optional[int], typer.Option("--memory", help="Memory cap in MiB, 0 for none (default: 8192).", show_default=False)] = None,
    disk: Annotated[Optional[int], typer.Option("--disk", help="Disk quota in MiB, 0 for none (default: 2048).", show_default=False)] = None,
    procs: Annotated[Optional[int], typer.Option("--procs", help="Processes+threads cap, 0 for none (default: 256).", show_default=False)] = None,
    cpu_time: Annotated[Optional[float], typer.Option("--cpu-time", help="CPU-time cap in seconds (default: none).", show_default=False)] = None,
    stdout_mb: Annotated[Optional[float], typer.Option("--stdout-mb", help="Cap on each captured stream in MiB (default: 10).", show_default=False)] = None,
    network: Annotated[bool, typer.Option("--network", help="Give the command the host network (default: none).")] = False,
    allow_unisolated_code: Annotated[
        bool,
        typer.Option(
            "--allow-unisolated-code",
            help="Run even where the sandbox cannot isolate the command (it then reaches your files, network and "
            "processes). Default: refuse.",
        ),
    ] = False,
    env: Annotated[
        Optional[list[str]], typer.Option("--env", "-e", help="KEY=VALUE to pass into the sandbox (repeatable).", show_default=False)
    ] = None,
    log_dir: Annotated[
        Optional[Path], typer.Option("--log-dir", help="Folder for stdout.log/stderr.log (default: WORKDIR/.sandbox).", show_default=False)
    ] = None,
) -> None:
    """Run COMMAND in the sandbox; print the ExecutionResult as JSON; exit 0 if it succeeded, else 1."""
    from pydantic import ValidationError

    from scientist_core import Limits, SandboxError, ScientistError, writable_folder
    from scientist_sandbox.runner import run

    fields: dict[str, object] = {"network": network, "allow_unisolated_code": allow_unisolated_code}
    for name, value in (("timeout_s", timeout), ("cpu_time_s", cpu_time), ("stdout_mb", stdout_mb)):
        if value is not None:
            fields[name] = value
    for name, value in (("memory_mb", memory), ("disk_mb", disk), ("procs", procs)):
        if value is not None:
            fields[name] = value or None  # 0 switches the cap off
    extra = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--env needs KEY=VALUE, got {item!r}")
        extra[key] = value
    fields["env"] = extra
    try:
        limits = Limits(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid limits: {problems}") from None
    if workdir is not None and not workdir.is_dir():
        what = "is a file, not a folder" if workdir.exists() else "does not exist"
        raise _fail(f"work folder {workdir} {what}",
                    "give a folder that exists, or leave out --workdir for a fresh one")
    if log_dir is not None:  # checked here, so that nothing runs whose logs could not be kept
        try:
            writable_folder(log_dir, "the log folder (--log-dir)")
        except ScientistError as exc:
            raise _fail(exc.message, exc.hint) from None
    try:
        result = run(command, workdir or _fresh_workdir(), limits, log_dir=log_dir)
    except SandboxError as exc:
        raise _fail(exc.message, exc.hint) from None
    typer.echo(result.model_dump_json(indent=2))
    raise typer.Exit(0 if result.ok else 1)
