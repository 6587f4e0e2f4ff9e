"""The one exception family users see.

The CLI turns any ScientistError into a single line: what is wrong, then what to do about it.
"""

from __future__ import annotations

from typing import Any


class ScientistError(Exception):
    """A problem the user can fix; `hint` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}; {self.hint.rstrip('.')}." if self.hint else f"{text}."

    def __str__(self) -> str:
        return self.one_line()


class PluginError(ScientistError):
    """A plugin is missing, duplicated, misconfigured or broken."""


class SettingsError(ScientistError):
    """scientist.toml, an environment variable or a flag holds an invalid value."""


class StoreError(ScientistError):
    """The run store cannot be opened or does not hold what was asked for."""


class SandboxError(ScientistError):
    """The sandbox cannot run a command as asked (not: the command failed)."""


class ExperimentError(ScientistError):
    """An experiment or baseline did not produce its results."""


def first_problem(exc: Any) -> tuple[str, str]:
    """(where, what) of a pydantic ValidationError's first error, e.g. ("run.max_runs", "Input should be greater
    than 0"): the one line every bad value becomes; where is "" for the whole object."""
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]
