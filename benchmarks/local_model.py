"""How fast the local model runs on this machine: prompt and generation tokens per second.

    python benchmarks/local_model.py [--model qwen2.5-coder-1.5b-instruct] [--threads 2] [--runs 3]
    python benchmarks/local_model.py --builds DIR1 DIR2 [--threads 2] [--runs 5]

Needs the scientist-llm-local plugin, llama-cpp-python and the installed weights (`make install`, or
`scientist-llm-local install`). Each measurement starts from an empty KV cache: prompt speed is a long
prompt answered with one token; generation speed is the extra time of N more tokens after the same prompt.
It also times the sha256 check, the load, and one schema-constrained (grammar) answer end to end.

--builds compares builds of llama-cpp-python side by side: each DIR is a folder a wheel was installed into
(`pip install --no-deps --target DIR llama_cpp_python-*.whl`). Each measurement runs in its own process with
DIR first on sys.path; the builds take turns (the order flips every round, so a change in the machine's load
falls on all of them alike), and it prints each build's median tokens/s and its ratio to the first build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field

PROMPT_PARAGRAPH = (
    "We study denoising diffusion probabilistic models on two-dimensional toy datasets such as a circle, "
    "a dinosaur, a line and two moons. The baseline is a small multilayer perceptron with sinusoidal "
    "embeddings of the timestep and of the input coordinates, trained for ten thousand steps with Adam. "
)
GEN_PROMPT = ("Write a Python function that trains a small MLP with numpy on a 2-D dataset, "
              "with comments on every line.")


class Plan(BaseModel):
    name: str = Field(max_length=40, description="a short snake_case name for the experiment")
    learning_rate: float
    steps: int = Field(ge=100, le=100000)
    rationale: str = Field(max_length=300)


def load_provider(args: argparse.Namespace):
    """The local provider and model name, or exit with why it cannot run."""
    try:
        from scientist_llm_local import weights as W
        from scientist_llm_local.plugin import LocalLLM
    except ImportError:
        sys.exit("the scientist-llm-local plugin is not installed: pip install -e plugins/llm_backends/local")
    model = args.model or W.DEFAULT.name
    provider = LocalLLM.from_settings({"n_threads": args.threads, "n_ctx": 4096})
    readiness = provider.readiness(model)
    if not readiness.ready:
        sys.exit(f"local/{model} is not ready: {readiness.detail}")
    return provider, model


def measure_speed(llm, runs: int, gen_tokens: int, prompt_repeats: int) -> tuple[list[float], list[float], int]:
    """Prompt and generation tokens/s, one of each per run (after a warm-up), and the prompt's length."""
    long_prompt = [{"role": "user", "content": PROMPT_PARAGRAPH * prompt_repeats + "Summarise in one line."}]
    gen_prompt = [{"role": "user", "content": GEN_PROMPT}]

    def timed(messages: list[dict], max_tokens: int) -> tuple[float, int, int]:
        llm.reset()
        start = time.perf_counter()
        result = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
        elapsed = time.perf_counter() - start
        return elapsed, result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]

    timed(gen_prompt, 4)  # warm-up
    prompt_rates, gen_rates, n_prompt = [], [], 0
    for _ in range(runs):
        seconds, n_prompt, _ = timed(long_prompt, 1)
        prompt_rates.append(n_prompt / seconds)
        base_s, _, _ = timed(gen_prompt, 1)
        full_s, _, n_out = timed(gen_prompt, gen_tokens)
        if n_out > 1 and full_s > base_s:
            gen_rates.append((n_out - 1) / (full_s - base_s))
    return prompt_rates, gen_rates, n_prompt


def report(args: argparse.Namespace) -> None:
    """The whole report for the llama-cpp-python this interpreter imports."""
    from scientist_core.models import Message
    from scientist_llm_local import weights as W

    load_before = os.getloadavg()[0]
    provider, model = load_provider(args)
    path = provider.path(model)
    start = time.perf_counter()
    W.sha256_of(path)
    hash_s = time.perf_counter() - start
    start = time.perf_counter()
    llm = provider.load(model)
    load_s = time.perf_counter() - start

    prompt_rates, gen_rates, n_prompt = measure_speed(llm, args.runs, args.gen_tokens, args.prompt_repeats)

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


def one_build(args: argparse.Namespace) -> None:
    """One round for --builds, in a child process: a JSON line with its rates and the build it imported."""
    import llama_cpp

    imported = Path(llama_cpp.__file__).resolve()
    if args.expect_build and not imported.is_relative_to(Path(args.expect_build).resolve()):
        sys.exit(f"imported llama_cpp from {llama_cpp.__file__}, not from {args.expect_build}")
    provider, model = load_provider(args)
    llm = provider.load(model)
    prompt_rates, gen_rates, n_prompt = measure_speed(llm, 1, args.gen_tokens, args.prompt_repeats)
    print(json.dumps({"prompt": prompt_rates[0], "generation": gen_rates[0] if gen_rates else None,
                      "prompt_tokens": n_prompt, "llama_cpp": llama_cpp.__file__,
                      "system_info": llama_cpp.llama_print_system_info().decode().strip()}))


def compare_builds(args: argparse.Namespace) -> None:
    """Every build measured in turn, `--runs` rounds, each measurement in a fresh process."""
    builds = [Path(d).resolve() for d in args.builds]
    for build in builds:
        if not (build / "llama_cpp" / "__init__.py").is_file():
            sys.exit(f"{build} holds no llama_cpp package: pip install --no-deps --target {build} WHEEL")
    load_provider(args)  # exits here, once, if the model is not installed
    names = [build.name for build in builds]
    if len(set(names)) < len(names):
        sys.exit(f"the builds' folders need different names to tell them apart: {' '.join(names)}")
    rates: dict[str, dict[str, list[float]]] = {name: {"prompt": [], "generation": []} for name in names}
    print(f"{len(builds)} builds, {args.threads} thread(s), {args.runs} rounds; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'round':<7}{'build':<24}{'prompt tok/s':>14}{'generation tok/s':>18}")
    for round_ in range(args.runs):
        order = list(zip(names, builds))
        for name, build in order if round_ % 2 == 0 else reversed(order):
            path = [str(build)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
            command = [sys.executable, __file__, "--one-build", "--expect-build", str(build),
                       "--threads", str(args.threads), "--gen-tokens", str(args.gen_tokens),
                       "--prompt-repeats", str(args.prompt_repeats)]
            command += ["--model", args.model] if args.model else []
            child = subprocess.run(command, env=env, capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(f"{name}: the measurement failed:\n{child.stderr.strip()}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            if round_ == 0:
                print(f"{'':<7}{name}: {result['llama_cpp']}\n{'':<7}{result['system_info']}")
            rates[name]["prompt"].append(result["prompt"])
            if result["generation"] is not None:
                rates[name]["generation"].append(result["generation"])
            print(f"{round_ + 1:<7}{name:<24}{cell(result['prompt'], 14, 1)}{cell(result['generation'], 18, 1)}",
                  flush=True)

    print(f"\nmedians over {args.runs} rounds ({result['prompt_tokens']} prompt tokens, up to {args.gen_tokens} "
          f"generated), load average {os.getloadavg()[0]:.1f} at the end; ratio = build / {names[0]}")
    print(f"{'build':<24}{'prompt tok/s':>14}{'ratio':>8}{'generation tok/s':>18}{'ratio':>8}")
    first = {kind: median_or_none(values) for kind, values in rates[names[0]].items()}
    for name in names:
        prompt, generation = median_or_none(rates[name]["prompt"]), median_or_none(rates[name]["generation"])
        print(f"{name:<24}{cell(prompt, 14, 1)}{cell(ratio(prompt, first['prompt']), 8, 2)}"
              f"{cell(generation, 18, 1)}{cell(ratio(generation, first['generation']), 8, 2)}")


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value and reference else None


def cell(value: float | None, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local model name (default: the plugin's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="measurements (with --builds: rounds)")
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--prompt-repeats", type=int, default=8, help="paragraphs in the long prompt")
    parser.add_argument("--builds", nargs="+", metavar="DIR",
                        help="compare llama-cpp-python builds installed into these folders (pip install --target)")
    parser.add_argument("--one-build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--expect-build", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_build:
        one_build(args)
    elif args.builds:
        compare_builds(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
