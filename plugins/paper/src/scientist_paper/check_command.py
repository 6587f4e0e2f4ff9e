"""`scientist check RUN_DIR`: every number, claim, citation, figure and machine statement of a run's papers
(or of one idea's, or one paper folder's) with its trace in the records or its problem; exit 1 on a problem.

    scientist check scientist-runs/20260101-120000-example-1a2b
    scientist check scientist-runs/20260101-120000-example-1a2b/wider_hidden_layers --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def check(
    folder: Annotated[Path, typer.Argument(help="A run folder, one of its idea folders, or a paper (latex/) folder.",
                                           show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a readable report.")] = False,
) -> None:
    """Trace every number, claim, citation, figure and machine statement of a paper to the run's records."""
    from scientist_paper.claims import check_paper
    from scientist_paper.evidence import evidence_for, paper_folders

    reports = [check_paper(paper, evidence_for(paper)) for paper in paper_folders(folder)]
    if as_json:
        typer.echo(json.dumps({"papers": [report.json() for report in reports],
                               "problems": sum(len(report.problems) for report in reports)}, indent=1))
    else:
        typer.echo("\n\n".join(report.text() for report in reports))
    if any(report.problems for report in reports):
        raise typer.Exit(1)
