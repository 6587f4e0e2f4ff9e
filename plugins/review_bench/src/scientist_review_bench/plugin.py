"""The entry point: adds `scientist review-bench` to the CLI.

The command module is imported only when the CLI asks for commands, so loading plugins for a pipeline run
(which never calls `register_commands`) costs nothing.
"""

from __future__ import annotations

from scientist_core import hookimpl


@hookimpl
def register_commands(cli) -> None:
    from scientist_review_bench.command import review_bench

    cli.command("review-bench")(review_bench)
