"""What reaches the terminal from models, runs and papers: shown as written. A name, a review or an experiment's
output line is never read as rich markup (`[red]`), an emoji code (`:x:` printed a cross), or a control sequence
(an escape code can erase or recolour what was printed before), so neither a model nor a run can hide or forge what
the user sees."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: Any) -> str:
    """`text` with its control characters (but newlines and tabs) as visible `\\xNN`: for plain output."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))


def shown(text: Any) -> str:
    """`text` for a rich console: control characters visible and markup escaped."""
    from rich.markup import escape

    return escape(visible(text))


def console(stderr: bool = False) -> Any:
    """A rich Console that reads no emoji codes and colours nothing by guess: markup is only what code writes."""
    from rich.console import Console

    return Console(stderr=stderr, emoji=False, highlight=False)
