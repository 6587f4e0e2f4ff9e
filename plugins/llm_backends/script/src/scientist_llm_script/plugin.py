"""The `script` LLM provider: a model that answers from a file of replies, so the real `scientist` command runs
a whole pipeline without a model or a key (a template's CI):

    scientist run mytemplate --model script/replies.jsonl      # the path after `script/`, relative or absolute

The file is the JSON-lines format of scientist_core.testing's Script (its module docstring): write it with
`Script(...).save(path)` or by hand. Each file is read once per process and its replies are taken in order, per
reply kind; a request the file has no reply left for is one error line naming the kind and the file. Replies
cost nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

from scientist_core import hookimpl


def _provider_class():
    """The provider, built on the fake LLM of scientist_core.testing (loaded only when a run uses it)."""
    from scientist_core import LLMError, ModelInfo, Price, Readiness
    from scientist_core.testing import FakeLLM, Script, ScriptExhausted

    class ScriptProvider(FakeLLM):
        name = "script"
        description = "answers from a file of replies (scientist_core.testing's Script format)"
        prices = Price(0.0, 0.0)
        _scripts: dict[Path, Script] = {}  # one per file and process: a run's stages share its queues
        _lock = threading.RLock()

        def models(self) -> list[ModelInfo]:
            return []  # any reply file is a model: `script/<path>`

        def readiness(self, model: str) -> Readiness:
            path = Path(model)
            if not path.is_file():
                return Readiness(ready=False, detail=f"the reply file {path} does not exist")
            return Readiness(ready=True, detail=f"replies from {path}")

        def script_for(self, model: str) -> Script:
            path = Path(model).resolve()
            with self._lock:
                if path not in self._scripts:
                    try:
                        self._scripts[path] = Script.load(path)
                    except (OSError, ValueError) as exc:
                        raise LLMError(f"the reply file {model} cannot be read: {exc}",
                                       "write it with scientist_core.testing's Script.save") from None
                return self._scripts[path]

        def complete(self, model, messages, **options):
            with self._lock:
                try:
                    return super().complete(model, messages, **options)
                except ScriptExhausted as exc:
                    wanted = f'a {{"for": "{exc.friendly}", ...}} line' if exc.kind else "a line without \"for\""
                    raise LLMError(f"the reply file {model} has no reply left for {exc.kind or 'a plain answer'}",
                                   f"add {wanted} to it") from None

    return ScriptProvider


@hookimpl
def register_llms(register) -> None:
    register(_provider_class())
