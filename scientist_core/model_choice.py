"""Choosing the model for a role and opening a Chat with it, from the installed plugins and the settings.

Kept apart from scientist_core.chat, which calls a provider it is given and knows no plugins."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from scientist_core.chat import (INSTALL_LOCAL_HINT, KEY_ENV_VARS, LOCAL_PROVIDER, Chat, LLMNotReady,
                                 NoModelConfigured, refuse_unpriced, split_model_id)
from scientist_core.plugins import get_host

if TYPE_CHECKING:
    from scientist_core.plugins import PluginHost
    from scientist_core.settings import Settings
    from scientist_core.store import Store


def resolve_model(settings: "Settings", role: Literal["scientist", "reviewer"] = "scientist",
                  override: str | None = None, host: "PluginHost | None" = None) -> str:
    """The model id (provider/name) for `role`: `override` (--model), else the setting (`reviewer_model`,
    falling back to `model`, for the reviewer), else the local model when its plugin is installed."""
    if override:
        return override
    chosen = (settings.reviewer_model or settings.model) if role == "reviewer" else settings.model
    if chosen:
        return chosen
    if host is None:
        host = get_host()
    if LOCAL_PROVIDER in host.names("llm"):
        offered = host.create("llm", LOCAL_PROVIDER, settings.llms).models()
        if offered:
            return offered[0].id
    raise NoModelConfigured(
        "no model is configured and the local model's plugin is not installed",
        f"{INSTALL_LOCAL_HINT}, or set {' or '.join(KEY_ENV_VARS)} and choose a model with --model or "
        "SCIENTIST_MODEL, e.g. openai/gpt-4o-mini")


def open_chat(settings: "Settings", *, stage: str, role: Literal["scientist", "reviewer"] = "scientist",
              model: str | None = None, store: "Store | None" = None, run_id: str | None = None,
              host: "PluginHost | None" = None, check_ready: bool = True, **options: Any) -> Chat:
    """A Chat for `role`'s model (see resolve_model), created from the installed plugins and settings,
    with settings.max_cost as its budget (a model without a price is refused then: UnpricedModel); `options`
    go to Chat (temperature, max_tokens, retry, ...)."""
    if host is None:
        host = get_host()
    model_id = resolve_model(settings, role, model, host)
    provider_name, name = split_model_id(model_id)
    provider = host.create("llm", provider_name, settings.llms)
    if check_ready:
        readiness = provider.readiness(name)
        if not readiness.ready:
            detail = readiness.detail or "not ready"
            unset = re.match(r"([A-Z][A-Z0-9_]*) is not set", detail)
            fix = f"export {unset.group(1)}=... (keys are read from the environment only)" if unset else "fix that"
            raise LLMNotReady(f"{model_id} cannot answer: {detail}",
                              f"{fix}, or choose another model with --model (see `scientist models`)")
    options.setdefault("max_cost", settings.max_cost)
    refuse_unpriced(provider, name, options["max_cost"])
    return Chat(provider, name, store=store, run_id=run_id, stage=stage, **options)
