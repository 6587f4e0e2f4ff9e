"""The main job's first two model stages, ideas and the experiment plan, for many seeds of the local model.

    python benchmarks/ideas_and_plans.py --seeds 20 [--template diffusion] [--config configs/offline-cpu.toml]

No experiment runs but the template's quick baseline, once (its results are part of the plan's prompt). Per seed
(the local model's sampling seed) on an empty idea archive: the idea and the knobs it names, then the plan; printed
per seed: whether the idea and the plan validated, each run's knob changes, whether every run changes at most
`max_knob_changes` knobs and only knobs its idea named, the seconds and tokens, and whether the template's
seed idea stood in for the model's. Exits 1 unless every seed gives a valid plan that keeps those rules. About
1-2 minutes a seed on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--template", default="diffusion")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "offline-cpu.toml")
    args = parser.parse_args()
    os.environ["SCIENTIST_CONFIG"] = str(args.config.resolve())

    from scientist_core.chat import StructuredOutputError
    from scientist_core.pipeline.context import RunContext, RunOptions
    from scientist_core.pipeline.experiments import baseline_record, plan_conversation, prepare_idea_folder
    from scientist_core.pipeline.ideas import generate_ideas
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings
    from scientist_core.store import Store

    host = get_host()
    base = load_settings()
    work = Path(tempfile.mkdtemp(prefix="scientist-ideas-plans-"))
    store = Store(work / "scientist.db")
    template = host.create("template", args.template, base.templates)

    def context(run_id: str, settings) -> RunContext:
        options = RunOptions.model_validate({**settings.run.model_dump(), "template": args.template})
        store.create_run(run_id, "run", args.template, work / run_id, options.model_dump(mode="json"))
        return RunContext(run_id=run_id, run_dir=work / run_id, options=options, settings=settings, host=host,
                          store=store, template=template)

    ctx = context("baseline", base)
    baseline = baseline_record(ctx, prepare_idea_folder(template, work / "baseline" / "workspace"))
    print(f"load average {os.getloadavg()[0]:.1f}; baseline ready; work in {work}", flush=True)
    good = stood_in_count = 0
    seeds = {idea.name for idea in template.seed_ideas()}
    for seed in range(args.first, args.first + args.seeds):
        data = work / f"data-{seed}"  # an empty archive per seed: each seed's idea is its first
        (data / "models").parent.mkdir(parents=True)
        (data / "models").symlink_to(Path(base.data_dir).expanduser() / "models")
        llms = {**base.llms, "local": {**base.llms.get("local", {}), "seed": seed}}
        ctx = context(f"seed-{seed}", base.model_copy(update={"data_dir": data, "llms": llms}))
        started = time.monotonic()
        line, ok = f"seed {seed}:", False
        try:
            ideas = generate_ideas(ctx)
            if not ideas:
                line += " no valid idea"
            else:
                idea = ideas[0]
                stood_in = " (the template's seed idea stood in)" if idea.name in seeds else ""
                line += f" idea {idea.name}{stood_in} knobs {idea.knobs};"
                _, plan_model, messages = plan_conversation(ctx, idea, [baseline])
                plan = ctx.chat("experiments").ask_structured(messages, plan_model)
                kept = True
                for run in plan.runs:
                    changes = run.knob_changes.model_dump(exclude_none=True)
                    kept &= 0 < len(changes) <= ctx.options.max_knob_changes and set(changes) <= set(idea.knobs)
                    line += f" {changes};"
                ok = kept
                line += " plan valid" + ("" if kept else " BUT BREAKS A RULE")
        except StructuredOutputError as exc:
            line += f" no valid answer: {exc.message[:200]}"
        usage = [row for row in store.llm_calls(ctx.run_id)]
        line += (f" {time.monotonic() - started:.0f} s, {sum(r['tokens_in'] for r in usage):,} tokens in, "
                 f"{sum(r['tokens_out'] for r in usage):,} out")
        good += ok
        stood_in_count += "seed idea stood in" in line
        print(line, flush=True)
    print(f"\n{good} of {args.seeds} seeds gave a valid plan within the rules; the seed idea stood in for "
          f"{stood_in_count}")
    sys.exit(0 if good == args.seeds else 1)


if __name__ == "__main__":
    main()
