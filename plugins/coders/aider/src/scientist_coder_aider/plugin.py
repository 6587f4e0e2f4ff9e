"""The `aider` coder: aider (https://aider.chat) edits a run's copy of the template with SEARCH/REPLACE blocks,
as in the AI Scientist paper's loop.

aider runs as a subprocess from its own virtual environment (`scientist coder install aider`), on copies of
the experiment file and the plot file (the run's notes.txt alongside, read-only), with the run's scientist
model reached through litellm: the same provider, endpoint and price as the run's other calls; the key goes
into aider's environment only. Its prompt holds the change, the idea, which run this is, the results so far
and, on a retry, why the last attempt failed with the tail of its stderr. aider's endpoint is a loopback
budget gate (gate.py) that holds each of its requests against `max_cost` before forwarding it and records it
as one row of the run's LLM ledger; a request the budget cannot hold stops aider, and `apply` raises
BudgetExceeded. Edits that did not apply, or no edit at all, are a failed CodeChange that goes back to the
retry loop; the workspace keeps its files unless aider's edits applied.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from scientist_core import CodeChange, CodeRequest, Coder, Config, Message, PluginError, Readiness, hookimpl, redact

from scientist_coder_aider.environment import AIDER_VERSION, AiderEnvironment, default_venv
from scientist_coder_aider.gate import DEFAULT_UPSTREAM, BudgetGate
from scientist_coder_aider.runner import ModelRoute, run_aider, stop_process

DEFAULT_CONTEXT = 128_000
DEFAULT_OUTPUT = 8_192


class AiderCoder(Coder):
    name: ClassVar[str] = "aider"
    description: ClassVar[str] = f"aider {AIDER_VERSION} edits the experiment with SEARCH/REPLACE blocks (own venv)"

    class Config(Config):
        venv: Path | None = Field(None, description=f"aider's virtual environment (default: "
                                                    f"<data_dir>/coders/aider-{AIDER_VERSION})")
        python: str | None = Field(None, description="the Python (3.10 - 3.12) that creates it (default: this one)")
        edit_format: Literal["diff", "diff-fenced", "udiff", "whole"] = Field(
            "diff", description="how aider asks the model to write edits; diff is SEARCH/REPLACE blocks")
        timeout_s: float = Field(1800.0, gt=0, description="longest one aider invocation may take, seconds")
        request_timeout_s: float = Field(600.0, gt=0, description="longest one model request may take, seconds")
        max_input_tokens: int | None = Field(None, gt=0, description="the model's context window, for aider "
                                             "(default: litellm's, else 128k)")
        max_output_tokens: int | None = Field(None, gt=0, description="longest answer (default: litellm's, else 8k)")
        model_settings: dict[str, Any] = Field(default_factory=dict, description="more aider model settings, e.g. "
                                               "{extra_params = {temperature = 0}}; extra_params go to litellm")
        env: dict[str, str] = Field(default_factory=dict, description="more environment variables for aider "
                                    "(not for keys: they are read from the provider's usual variable)")

    def environment(self) -> AiderEnvironment:
        return AiderEnvironment(Path(self.config.venv).expanduser() if self.config.venv else default_venv())

    # -- readiness and installation ---------------------------------------------------------------------

    def readiness(self, model: str | None = None) -> Readiness:
        """Installed, and (given the scientist's model as provider/name) able to reach that model."""
        environment = self.environment()
        problem = environment.problem()
        if problem:
            return Readiness(ready=False, detail=problem)
        if model is not None:
            from scientist_core import get_host
            from scientist_litellm import LiteLLMProvider

            provider = model.split("/", 1)[0]
            if not issubclass(get_host().get("llm", provider).cls, LiteLLMProvider):
                return Readiness(ready=False, detail=(
                    f"aider reaches models through litellm, and {model} is not such a model "
                    "(openai, anthropic and ollama models are)"))
        return Readiness(ready=True, detail=f"aider {AIDER_VERSION} in {environment.path}")

    def install(self, say: Callable[[str], None] = print, force: bool = False) -> None:
        self.environment().install(self.config.python, say=say, force=force)

    # -- the edit -------------------------------------------------------------------------------------------

    def apply(self, workspace: Path, request: CodeRequest, chat: Any) -> CodeChange:
        environment = self.environment()
        problem = environment.problem()
        if problem:
            raise PluginError(problem)
        route = self.route(chat.provider, chat.model)
        secrets = [route.key] if route.key else []
        files = [name for name in request.files if (workspace / name).is_file()]
        if not files:
            return CodeChange(ok=False, message=f"no edit made: none of {', '.join(request.files)} exists")
        read_only = [name for name in request.read_only if (workspace / name).is_file()]
        message = self.message(request, files, read_only)
        shown = "\n\n".join(f"=== {name} ===\n{(workspace / name).read_text()}" for name in files)
        # a first look, so a budget that cannot pay for one request does not start aider at all
        chat.check_budget([Message(role="user", content=f"{message}\n\n{shown}")])
        with BudgetGate(chat, self.upstream(chat.provider, route), int(route.metadata["max_output_tokens"]),
                        self.config.request_timeout_s) as gate:
            def started(process: Any) -> None:
                gate.stop = lambda: stop_process(process)
                if gate.refused is not None:
                    gate.stop()

            result = run_aider(environment, workspace, files, read_only, message, replace(route, api_base=gate.url),
                               edit_format=self.config.edit_format, timeout_s=self.config.timeout_s,
                               request_timeout_s=self.config.request_timeout_s,
                               extra_settings=self.config.model_settings, extra_env=self.config.env,
                               on_start=started)
        if gate.refused is not None:
            raise gate.refused  # BudgetExceeded: aider was stopped before the request that could pass max_cost
        change = self._outcome(workspace, files, result, secrets)
        change.usage = result.usage
        if change.ok:
            for name, text in result.edited.items():
                (workspace / name).write_text(text)
        return change

    def _outcome(self, workspace: Path, files: list[str], result, secrets: list[str]) -> CodeChange:
        """The CodeChange for `result`: edits are kept only when aider finished and its last edits applied."""
        def failed(text: str) -> CodeChange:
            return CodeChange(ok=False, message=redact(text, secrets))

        tail = " ".join(result.output.split())[-600:]
        if result.timed_out:
            return failed(f"aider did not finish within {self.config.timeout_s:g} s ([coders.aider] timeout_s)")
        if result.exit_code != 0:
            return failed(f"aider exited with status {result.exit_code}: {tail}")
        if result.gave_up:
            return failed(f"aider's edits did not apply after its retries: {result.edit_error or tail}")
        if not result.edited:
            if result.calls == 0:
                why = f"the model gave no answer ({result.model_error or tail})"
            elif result.edit_error:
                why = f"aider could not apply the model's edits: {result.edit_error}"
            else:
                why = f"the model's answer held no SEARCH/REPLACE edit of {', '.join(files)}"
            return failed(f"no edit made: {why}")
        diff = "".join("".join(difflib.unified_diff((workspace / name).read_text().splitlines(keepends=True),
                                                    text.splitlines(keepends=True), name, name))
                       for name, text in result.edited.items())
        calls = f"{result.calls} model call{'s' if result.calls != 1 else ''}"
        summary = f"aider edited {', '.join(result.edited)} ({calls})"
        if result.created:
            summary += f"; ignored the new files {', '.join(result.created)} (only {', '.join(files)} may change)"
        return CodeChange(ok=True, files_edited=list(result.edited), diff=redact(diff, secrets),
                          message=redact(summary, secrets))

    # -- what aider is told, and how it reaches the model -----------------------------------------------------

    @staticmethod
    def message(request: CodeRequest, files: list[str], read_only: list[str]) -> str:
        parts = ["You are changing the code of one experiment run of an automated research project."]
        context = request.context()
        if context:
            parts.append(context)
        parts.append(f"Make this change with SEARCH/REPLACE blocks, editing only {', '.join(files)} "
                     f"({files[0]} is the experiment):\n{request.instruction.strip()}")
        if read_only:
            parts.append(f"{', '.join(read_only)} (read-only) is the journal of the runs so far, for reference.")
        return "\n\n".join(parts) + "\n"

    @staticmethod
    def upstream(provider: Any, route: ModelRoute) -> str:
        """Where the budget gate sends aider's requests on: the provider's endpoint."""
        where = route.api_base or DEFAULT_UPSTREAM.get(provider.litellm_prefix)
        if where is None:
            raise PluginError(f"the endpoint of {provider.name} is not known to the aider coder",
                              f"set [llms.{provider.name}] base_url")
        return where

    def route(self, provider: Any, model: str) -> ModelRoute:
        """How aider's litellm reaches `provider`'s `model`: the same route, endpoint, key and price as the
        provider's own calls."""
        from scientist_litellm import LiteLLMProvider, import_litellm

        if not isinstance(provider, LiteLLMProvider):
            raise PluginError(f"aider reaches models through litellm, and {provider.name}/{model} is not such a model",
                              "use an openai, anthropic or ollama model, or another coder (--coder search_replace)")
        name = provider.litellm_model(model)
        key = provider.api_key()
        key_env = provider.key_env or (f"{provider.litellm_prefix.upper()}_API_KEY" if key else None)
        known = import_litellm().model_cost.get(name) or import_litellm().model_cost.get(model) or {}
        max_input = self.config.max_input_tokens or known.get("max_input_tokens") or DEFAULT_CONTEXT
        max_output = self.config.max_output_tokens or known.get("max_output_tokens") or DEFAULT_OUTPUT
        metadata: dict[str, Any] = {"max_input_tokens": max_input, "max_output_tokens": max_output,
                                    "max_tokens": max_output, "mode": "chat",
                                    "litellm_provider": known.get("litellm_provider") or provider.litellm_prefix}
        price = provider.price(model)
        if price is not None:
            metadata["input_cost_per_token"] = price.input_per_token
            metadata["output_cost_per_token"] = price.output_per_token
        return ModelRoute(name=name, api_base=provider.base_url(), key_env=key_env, key=key, metadata=metadata)


@hookimpl
def register_coders(register) -> None:
    register(AiderCoder)
