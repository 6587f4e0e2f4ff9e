"""Finding plugins: built-ins and entry points of group "scientist", loaded once, lazily.

SCIENTIST_LOAD_PLUGINS selects which installed plugins load: unset loads all, an empty value loads none
(built-ins only: the way out of a broken plugin), a comma-separated list loads those distributions or
entry points by name.
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from scientist_core import hookspecs
from scientist_core.component import Component
from scientist_core.errors import PluginError
from scientist_core.kinds import BASE_CLASSES, KIND_HOOKS

ENTRY_POINT_GROUP = "scientist"
LOAD_PLUGINS_ENV = "SCIENTIST_LOAD_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "scientist_core.builtins.search_replace_coder",
)

@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin module and the distribution that ships it."""

    name: str
    distribution: str
    version: str
    builtin: bool = False

@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, or whose hook raised."""

    name: str
    distribution: str
    version: str
    error: str

@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    cls: type[Component]
    plugin: PluginInfo

def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")

def _selected_names() -> set[str] | None:
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {_normalise(part) for part in raw.split(",") if part.strip()}

def _core_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scientist-core")
    except PackageNotFoundError:
        return "0+unknown"

@dataclass
class PluginHost:
    """The plugin manager plus what it learnt while loading: who registers what, and what failed."""

    pm: pluggy.PluginManager = field(default_factory=lambda: pluggy.PluginManager("scientist"))
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)
    _registrations: dict[str, list[Registration]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pm.add_hookspecs(hookspecs)

    # -- loading -----------------------------------------------------------------------------------

    def load(self) -> "PluginHost":
        core = _core_version()
        for module_name in DEFAULT_PLUGINS:
            short_name = module_name.rsplit(".", 1)[-1]
            self.add(importlib.import_module(module_name), PluginInfo(short_name, "scientist-core", core, True))
        self._load_entry_points()
        return self

    def _load_entry_points(self) -> None:
        selected = _selected_names()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist else "?"
            dist_version = ep.dist.version if ep.dist else "?"
            if selected is not None and not {_normalise(ep.name), _normalise(dist_name)} & selected:
                continue
            if ep.name in self.plugins:
                other = self.plugins[ep.name]
                self.failures.append(LoadFailure(ep.name, dist_name, dist_version,
                                                 f"entry point name also used by {other.distribution}"))
                continue
            try:  # a broken plugin must not take the CLI down
                self.add(ep.load(), PluginInfo(ep.name, dist_name, dist_version))
            except Exception as exc:
                self.failures.append(LoadFailure(ep.name, dist_name, dist_version, _describe(exc)))

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register a plugin object (module or instance); tests use this for their doubles.

        A hook implementation no hookspec knows (a misspelt hook) is refused, so it cannot go unnoticed."""
        self.pm.register(plugin, name=info.name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=info.name)
            raise PluginError(f"{info.distribution} implements an unknown hook: {exc}",
                              "see docs/plugins.md for the hook names") from None
        self.plugins[info.name] = info
        self._registrations.clear()

    def remove(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registrations.clear()

    # -- what plugins register ---------------------------------------------------------------------

    def registrations(self, kind: str) -> list[Registration]:
        """Every class registered for `kind`, duplicates included, in load order."""
        if kind not in KIND_HOOKS:
            raise ValueError(f"unknown plugin kind {kind!r}")
        if kind not in self._registrations:
            self._registrations[kind] = self._collect(kind)
        return self._registrations[kind]

    def _collect(self, kind: str) -> list[Registration]:
        base = BASE_CLASSES[kind]
        found: list[Registration] = []
        hook = getattr(self.pm.hook, KIND_HOOKS[kind])
        for impl in reversed(hook.get_hookimpls()):  # pluggy lists last-registered first
            info = self.plugins[impl.plugin_name]

            def register(cls: type, info: PluginInfo = info) -> None:
                if not (isinstance(cls, type) and issubclass(cls, base) and cls.name):
                    raise PluginError(f"{info.distribution} registered {cls!r} as a {kind}",
                                      f"register a named subclass of scientist_core.{base.__name__}")
                found.append(Registration(kind, cls.name, cls, info))

            try:
                impl.function(register=register)
            except Exception as exc:
                self.failures.append(LoadFailure(info.name, info.distribution, info.version, _describe(exc)))
        return found

    def names(self, kind: str) -> list[str]:
        return sorted({r.name for r in self.registrations(kind)})

    def get(self, kind: str, name: str) -> Registration:
        """The one class registered as `name`; an unknown or duplicated name is a PluginError."""
        matches = [r for r in self.registrations(kind) if r.name == name]
        if not matches:
            installed = ", ".join(self.names(kind)) or "none"
            broken = f"; {len(self.failures)} plugin(s) failed to load" if self.failures else ""
            if _selected_names() is not None:  # the user's selection, not the installation, may be what hides it
                raise PluginError(f"no {kind} named {name!r} is loaded: {LOAD_PLUGINS_ENV}="
                                  f"{os.environ[LOAD_PLUGINS_ENV]!r} selects the plugins that load (loaded: "
                                  f"{installed}{broken})", f"add its plugin to {LOAD_PLUGINS_ENV}, or unset it "
                                  "to load every installed plugin")
            raise PluginError(f"no {kind} named {name!r} is installed (installed: {installed}{broken})",
                              "install the plugin that provides it; `scientist plugins` lists what is loaded")
        if len(matches) > 1:
            owners = " and ".join(f"{r.plugin.distribution} {r.plugin.version}" for r in matches)
            raise PluginError(f"the {kind} name {name!r} is registered twice, by {owners}",
                              f"uninstall one, or choose with {LOAD_PLUGINS_ENV}")
        return matches[0]

    def create(self, kind: str, name: str, sections: dict[str, dict[str, Any]] | None = None,
               flags: dict[str, Any] | None = None) -> Any:
        """Instantiate plugin `name` of `kind` with its settings section, and command-line `flags` on top,
        validated by its Config."""
        cls = self.get(kind, name).cls
        return cls.from_settings((sections or {}).get(name), flags)

    def call_commands(self, cli: object) -> None:
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            info = self.plugins[impl.plugin_name]
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.failures.append(LoadFailure(info.name, info.distribution, info.version, _describe(exc)))

def _describe(exc: BaseException) -> str:
    if os.environ.get("SCIENTIST_DEBUG"):
        return "".join(traceback.format_exception(exc)).strip()
    return f"{type(exc).__name__}: {exc}"

_host: PluginHost | None = None

def get_host() -> PluginHost:
    """The process's plugin host, loaded on first use."""
    global _host
    if _host is None:
        _host = PluginHost().load()
    return _host

def reset_host() -> None:
    """Forget loaded plugins so the next get_host() loads again (tests, and after changing the env)."""
    global _host
    _host = None
