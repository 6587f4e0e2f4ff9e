"""How fast the local model runs on this machine: prompt and generation tokens per second.

    python benchmarks/local_model.py [--model qwen2.5-coder-1.5b-instruct] [--threads 2] [--runs 3]

Needs the scientist-llm-local plugin, llama-cpp-python and the installed weights (`make install`, or
`scientist-llm-local install`). Each measurement starts from an empty KV cache: prompt speed is a long
prompt answered with one token; generation speed is the extra time of N more tokens after the same prompt.
It also times the sha256 check, the load, and one schema-constrained (grammar) answer end to end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from pydantic import BaseModel, Field

PROMPT_PARAGRAPH = (
    "We study denoising diffusion probabilistic models on two-dimensional toy datasets such as a circle, "
    "a dinosaur, a line and two moons. The baseline is a small multilayer perceptron with sinusoidal "
    "embeddings of the timestep and of the input coordinates, trained for ten thousand steps with Adam. "
)


class Plan(BaseModel):
    name: str = Field(max_length=40, description="a short snake_case name for the experiment")
    learning_rate: float
    steps: int = Field(ge=100, le=100000)
    rationale: str = Field(max_length=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local model name (default: the plugin's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--prompt-repeats", type=int, default=8, help="paragraphs in the long prompt")
    args = parser.parse_args()

    try:
        from scientist_llm_local import weights as W
        from scientist_llm_local.plugin import LocalLLM
    except ImportError:
        sys.exit("the scientist-llm-local plugin is not installed: pip install -e plugins/llm_backends/local")

    from scientist_core.models import Message

    model = args.model or W.DEFAULT.name
    load_before = os.getloadavg()[0]
    provider = LocalLLM.from_settings({"n_threads": args.threads, "n_ctx": 4096})
    readiness = provider.readiness(model)
    if not readiness.ready:
        sys.exit(f"local/{model} is not ready: {readiness.detail}")

    path = provider.path(model)
    start = time.perf_counter()
    W.sha256_of(path)
    hash_s = time.perf_counter() - start
    start = time.perf_counter()
    llm = provider.load(model)
    load_s = time.perf_counter() - start

    long_prompt = [{"role": "user", "content": PROMPT_PARAGRAPH * args.prompt_repeats + "Summarise in one line."}]
    gen_prompt = [{"role": "user", "content": "Write a Python function that trains a small MLP with numpy on "
                                              "a 2-D dataset, with comments on every line."}]

    def timed(messages: list[dict], max_tokens: int) -> tuple[float, int, int]:
        llm.reset()
        start = time.perf_counter()
        result = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
        elapsed = time.perf_counter() - start
        return elapsed, result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]

    timed(gen_prompt, 4)  # warm-up
    prompt_rates, gen_rates = [], []
    for _ in range(args.runs):
        seconds, n_prompt, _ = timed(long_prompt, 1)
        prompt_rates.append(n_prompt / seconds)
        base_s, _, _ = timed(gen_prompt, 1)
        full_s, _, n_out = timed(gen_prompt, args.gen_tokens)
        if n_out > 1 and full_s > base_s:
            gen_rates.append((n_out - 1) / (full_s - base_s))

    messages = [Message(role="user", content="Propose one learning-rate experiment for a 2-D diffusion MLP.")]
    llm.reset()
    start = time.perf_counter()
    completion = provider.complete(model, messages, schema=Plan, temperature=0.0, max_tokens=300)
    schema_s = time.perf_counter() - start
    plan = Plan.model_validate_json(completion.text)

    load_avg = os.getloadavg()[0]
    print(f"local/{model} with {args.threads} thread(s), {path.stat().st_size / 1e9:.2f} GB; "
          f"{os.cpu_count()} cores, load average {load_before:.1f} before, {load_avg:.1f} after "
          "(other busy processes slow llama.cpp down sharply)")
    print(f"{'measure':<34}{'value':>12}")
    print(f"{'sha256 check, s':<34}{hash_s:>12.2f}")
    print(f"{'load, s':<34}{load_s:>12.2f}")
    print(f"{'prompt tokens/s (median)':<34}{statistics.median(prompt_rates):>12.1f}   "
          f"({n_prompt} prompt tokens, {args.runs} runs)")
    if gen_rates:
        print(f"{'generation tokens/s (median)':<34}{statistics.median(gen_rates):>12.1f}   "
              f"(up to {args.gen_tokens} tokens, {args.runs} runs)")
    print(f"{'schema answer, s':<34}{schema_s:>12.2f}   ({completion.usage.tokens_in} in, "
          f"{completion.usage.tokens_out} out, valid: {plan.name})")


if __name__ == "__main__":
    main()
