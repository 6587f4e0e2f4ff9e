"""What every plugin kind has in common: a registered name and a validated Config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from scientist_core.errors import SettingsError, first_problem

if TYPE_CHECKING:
    from scientist_core.models import Readiness


class Config(BaseModel):
    """Base of every plugin's settings section; unknown keys are an error, not a silent typo."""

    model_config = ConfigDict(extra="forbid")


class Component:
    """Base of the per-kind base classes (Template, LLM, Searcher, ...).

    Subclasses set `name` (unique within their kind), `description`, and may nest their own
    `Config(scientist_core.Config)` whose fields become the `[<kind>.<name>]` section of scientist.toml.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # on a kind's base class: a kind of which a run uses one plugin gets the setting `<kind>`, naming it
    # (default: `chosen_by_default`), and the settings derive it from these two (settings.py)
    chosen_by_default: ClassVar[str | None] = None
    chosen_for: ClassVar[str] = ""

    class Config(Config):
        pass

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def readiness(self, model: str | None = None) -> "Readiness":
        """Whether this plugin can work now (installed, configured, reachable), asked before anything is spent:
        by `scientist run`'s pre-flight, `scientist models` and `scientist coder list`. `model` is the model it
        would work with, where that matters: for an LLM provider its model name, for a coder the scientist's
        model as provider/name. Say what to do in `detail` when not ready."""
        from scientist_core.models import Readiness

        return Readiness(ready=True)

    @classmethod
    def from_settings(cls, section: dict[str, Any] | None, flags: dict[str, Any] | None = None) -> "Component":
        """Instantiate with the plugin's settings section, and command-line `flags` on top (None: not given),
        validated by its Config; a bad value is one line naming where it came from."""
        given = {key: value for key, value in (flags or {}).items() if value is not None}
        try:
            config = cls.Config.model_validate({**(section or {}), **given})
        except ValidationError as exc:
            where, what = first_problem(exc)
            source = (f"--{where.replace('_', '-')}" if where in given else
                      f"[{cls.kind}s.{cls.name}] {where or '(section)'} in scientist.toml or "
                      f"SCIENTIST_{cls.kind.upper()}S__{cls.name.upper()}__{where.upper()}")
            raise SettingsError(f"{cls.kind} {cls.name}: {where + ': ' if where else ''}{what} (from {source})",
                                "fix that value; `scientist config show` lists the settings") from None
        return cls(config)
