"""Settings: defaults < ./scientist.toml < environment (SCIENTIST_*) < command-line flags.

Plugin sections are free-form here (`[templates.diffusion]`, `[llms.openai]` ...) and validated by the
plugin's own Config when the plugin is created.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from scientist_core.errors import SettingsError, first_problem

SETTINGS_FILE = "scientist.toml"
ENV_PREFIX = "SCIENTIST_"
CONFIG_ENV = "SCIENTIST_CONFIG"  # another settings file to read instead of ./scientist.toml


def settings_file() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or SETTINGS_FILE)


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("scientist", appauthor=False))


class SandboxSettings(BaseModel):
    """Overrides of the template's sandbox limits; unset fields keep the template's."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float | None = Field(None, gt=0, description="wall-clock limit per run, seconds")
    memory_mb: int | None = Field(None, gt=0, description="memory cap per run, MB")
    disk_mb: int | None = Field(None, gt=0, description="quota for what a run writes, MB")
    procs: int | None = Field(None, gt=0, description="processes and threads per run")
    network: bool | None = Field(None, description="allow network access from runs")
    allow_unisolated_code: bool = Field(False, description="run generated code even where the sandbox cannot isolate "
                                        "it: it then shares your files, network and processes (docs/sandbox.md)")

    @model_validator(mode="before")
    @classmethod
    def _require_isolation_is_gone(cls, values: Any) -> Any:
        if isinstance(values, dict) and "require_isolation" in values:
            raise ValueError("require_isolation is gone: isolation is required unless allow_unisolated_code = true")
        return values


class RunSettings(BaseModel):
    """Defaults of `scientist run`; its flags override them."""

    model_config = ConfigDict(extra="forbid")

    num_ideas: int = Field(2, ge=1, description="new ideas to generate")
    reflections: int = Field(3, ge=1, description="rounds per idea: a draft plus refinements")
    novelty_rounds: int = Field(5, ge=1, description="literature-search rounds per idea before deciding")
    skip_novelty: bool = Field(False, description="take every idea to experiments without a novelty check")
    novelty_gate: bool = Field(True, description="drop ideas judged not novel; false records the judgement and "
                               "goes on (for models whose judgement is unreliable)")
    max_runs: int = Field(5, ge=1, description="experiment runs per idea besides the baseline")
    max_tries: int = Field(4, ge=1, description="attempts per run when it fails")
    max_knob_changes: int = Field(3, ge=1, description="knobs one run may change: a run tests what its idea is "
                                  "about, not every setting at once")
    fresh_ideas: int = Field(2, ge=0, description="new ideas tried, one at a time, in place of ideas none of whose "
                             "runs succeeded")
    code_changes: bool = Field(True, description="let plans ask for code edits besides knob changes (false for "
                               "models that cannot write exact edits, such as small local ones)")
    citation_rounds: int = Field(5, ge=0, description="literature-search rounds for the paper's citations")
    writeup_fix_rounds: int = Field(3, ge=0, description="rounds to fix LaTeX errors and warnings")
    section_max_tokens: int = Field(3000, ge=200, description="longest answer for one part of the paper, in "
                                    "tokens (a cap on small models that repeat their prompt back)")
    writeup: str = Field("free", pattern="^(free|structured)$", description="free: the model writes every section; "
                         "structured: code writes what the records say and the model short checked pieces (small "
                         "models)")
    quick: bool = Field(False, description="the template's quick mode")
    improve: bool = Field(False, description="revise each paper from its review and review it again")
    workers: int = Field(1, ge=1, description="ideas taken through experiments to review at once")


PluginSections = dict[str, dict[str, Any]]


class _CoreSettings(BaseSettings):
    """The settings every run has; `Settings` adds those of the plugin kinds."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    model: str | None = Field(None, description="the scientist's model, provider/name")
    reviewer_model: str | None = Field(None, description="the reviewer's model, provider/name (default: model)")
    out_dir: Path = Field(Path("scientist-runs"), description="where runs and the run store are written")
    data_dir: Path = Field(default_factory=default_data_dir, description="dataset, model and archive caches")
    searchers_order: list[str] = Field(["semantic_scholar", "openalex", "offline"],
                                       description="literature searchers, tried in order until one answers")
    max_cost: float | None = Field(None, ge=0, description="budget per run in USD; no call may exceed it")
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    # and per plugin kind (kinds.py), derived below: `<kind>`, the plugin a run uses, where the kind has one
    # (executor, coder, writer, compiler, reviewer), and the `[<kind>s.NAME]` sections of every kind

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=settings_file()))

    @property
    def store_path(self) -> Path:
        return self.out_dir / "scientist.db"


def _kind_fields() -> dict[str, Any]:
    from scientist_core.kinds import BASE_CLASSES

    fields: dict[str, Any] = {}
    for kind, base in BASE_CLASSES.items():
        if base.chosen_by_default is not None:
            fields[kind] = (str, Field(base.chosen_by_default, description=base.chosen_for))
        fields[f"{kind}s"] = (PluginSections, Field(default_factory=dict, description=f"[{kind}s.NAME] sections"))
    return fields


Settings = create_model("Settings", __base__=_CoreSettings, __module__=__name__, **_kind_fields())
Settings.__doc__ = "Everything a user can set; `scientist config show` prints the effective values and their source."


def _toml_values(path: Path) -> dict[str, Any]:
    if path.exists() and not path.is_file():
        raise SettingsError(f"the settings file {path.resolve()} is a folder, not a file",
                            f"move it away, or name a file in {CONFIG_ENV}")
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path.resolve()} is not valid TOML: {exc}", "fix the file or move it away") from None


def load_settings(**flags: Any) -> Settings:
    """Effective settings; `flags` are command-line values (None means: not given)."""
    path = settings_file()
    if os.environ.get(CONFIG_ENV) and not path.exists():
        raise SettingsError(f"{CONFIG_ENV} names {path}, which does not exist", "fix the path or unset it")
    _toml_values(path)  # a syntax error gets a clear line, not pydantic's
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        key, what = first_problem(exc)
        raise SettingsError(f"setting {key}: {what} (from {origin_of(key, given)})",
                            "fix the value, or `scientist config show` to see where each setting comes from") from None


def origin_of(key: str, flags: dict[str, Any] | None = None) -> str:
    """Where the effective value of a dotted setting comes from."""
    top = key.split(".")[0]
    if flags and top in flags:
        return "command line"
    env_name = ENV_PREFIX + key.upper().replace(".", "__")
    if env_name in os.environ:
        return f"environment {env_name}"
    path = settings_file()
    node: Any = _toml_values(path)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "default"
        node = node[part]
    return str(path)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"sandbox": {"timeout_s": 5}} -> {"sandbox.timeout_s": 5}; empty sections are dropped."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
