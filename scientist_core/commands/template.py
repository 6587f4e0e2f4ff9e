"""`scientist template`: start a research template package, and check one against the template contract.

    scientist template new seir                       # ./scientist-seir: a package that passes its own tests
    scientist template new seir --from-v1 PATH        # an original AI Scientist template folder, ported
    scientist template check ./scientist-seir         # or an installed template's name; exit 1 on a problem

docs/writing-a-template.md walks from `new` to a published package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Start a research template package, and check one.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Start a research template package, and check one."""


@app.command("new")
def new(name: str = typer.Argument(..., help="The template's name: lowercase letters, digits, underscores."),
        from_v1: Optional[Path] = typer.Option(None, "--from-v1", help="Port this template folder of the "
                                               "original AI Scientist (experiment.py, plot.py, prompt.json, "
                                               "seed_ideas.json, latex/)."),
        out: Optional[Path] = typer.Option(None, "--out", help="The package's folder (default: ./scientist-NAME)."),
        description: str = typer.Option("A research template for scientist.", "--description",
                                        help="One line: what the experiment studies.")) -> None:
    """Write a complete, installable template package: pyproject with the entry point, plugin, experiment with
    its knobs, plot step, prompts, seed ideas, tests and README. Prints its folder; with --from-v1, also what is
    left to do by hand, one line each."""
    from dataclasses import replace

    from scientist_core.scaffold import check_name, write_package

    names = replace(check_name(name), description=description)
    root = (out or Path(names.dist)).resolve()
    if from_v1 is None:
        write_package(names, root)
        left: list[str] = []
    else:
        from scientist_core.scaffold.v1 import from_v1 as port

        left = port(from_v1, names, root)
    typer.echo(str(root))
    for line in left:
        typer.echo(f"to do: {line}", err=True)
    typer.echo(f"next: pip install -e '{root}[test]' && scientist template check {root}", err=True)


@app.command("check")
def check(target: str = typer.Argument(..., help="A template package's folder, or an installed template's name."),
          out: Optional[Path] = typer.Option(None, "--out", help="Where the quick baseline and the compiled "
                                             "skeleton go (default: a temporary folder).")) -> None:
    """Check a template against the contract: imports, the command, prompts, seed ideas, the paper skeleton
    compiles, and a quick baseline runs in the sandbox with valid results. One line per problem, with its fix;
    exit code 1 when there is one."""
    import tempfile

    from scientist_core.template_contract import check_template, load_template

    template = load_template(target)
    with tempfile.TemporaryDirectory(prefix="scientist-check-") as scratch:
        work = out.resolve() if out else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        problems = check_template(template, work)
    for problem in problems:
        typer.echo(f"problem: {problem}")
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{template.name}: keeps the template contract (a quick baseline ran in the sandbox, the paper "
               "skeleton compiled)")
