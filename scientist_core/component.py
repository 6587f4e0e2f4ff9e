"""What every plugin kind has in common: a registered name and a validated Config."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from scientist_core.errors import PluginError


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

    class Config(Config):
        pass

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_settings(cls, section: dict[str, Any] | None) -> "Component":
        """Instantiate with the plugin's settings section, validated by its Config."""
        try:
            config = cls.Config.model_validate(section or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PluginError(
                f"setting [{cls.kind}s.{cls.name}] {where}: {first['msg']}",
                f"fix it in scientist.toml or SCIENTIST_{cls.kind.upper()}S__{cls.name.upper()}__{where.upper()}",
            ) from None
        return cls(config)
