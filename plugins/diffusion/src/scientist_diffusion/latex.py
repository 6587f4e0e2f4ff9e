"""The results table of a diffusion paper, written from the runs' final_info.json, never typed by a model.

    from scientist_diffusion.latex import write_results_table
    write_results_table({"Baseline": "run_0", "Dual-scale": "run_1"}, "latex/results_table.tex")

`latex/template.tex` reads it with `\\input{results_table.tex}` (the template ships a placeholder under that name).
One row per dataset and run; where there is more than one run, the lowest KL divergence and eval loss of each
dataset are set in bold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from scientist_core.models import FinalInfo

# (key in final_info.json, column heading, decimals, lower is better)
METRICS: tuple[tuple[str, str, int, bool], ...] = (
    ("kl_divergence", "KL divergence", 3, True),
    ("eval_loss", "Eval loss", 3, True),
    ("training_time", "Training time (s)", 1, False),
    ("inference_time", "Inference time (s)", 2, False),
)

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """Text safe to put in a LaTeX table cell."""
    return "".join(_SPECIAL.get(char, char) for char in text)


def _as_final_info(value: FinalInfo | Mapping) -> FinalInfo:
    return value if isinstance(value, FinalInfo) else FinalInfo.from_json_obj(dict(value))


def results_table(runs: Mapping[str, FinalInfo | Mapping], caption: str | None = None,
                  label: str = "tab:results") -> str:
    """A booktabs table: for each dataset (in the order first seen), one row per run, one column per metric."""
    if not runs:
        raise ValueError("results_table needs at least one run")
    infos = {name: _as_final_info(info) for name, info in runs.items()}
    datasets = list(dict.fromkeys(dataset for info in infos.values() for dataset in info.datasets))
    caption = caption or ("Results per dataset: KL divergence between the data and the generated samples "
                          "(k-nearest-neighbour estimate, lower is better), denoising loss of the final model "
                          "on the data, and wall-clock times.")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + caption + "}",
        r"\label{" + label + "}",
        r"\begin{tabular}{ll" + "r" * len(METRICS) + "}",
        r"\toprule",
        " & ".join(["Dataset", "Run", *(heading for _, heading, _, _ in METRICS)]) + r" \\",
    ]
    for dataset in datasets:
        lines.append(r"\midrule")
        present = {name: info.datasets[dataset].means for name, info in infos.items() if dataset in info.datasets}
        best = {}
        for key, _, decimals, lower_is_better in METRICS:
            values = [round(means[key], decimals) for means in present.values() if key in means]
            if lower_is_better and len(values) > 1:
                best[key] = min(values)
        for row, (name, means) in enumerate(present.items()):
            cells = [escape(dataset) if row == 0 else "", escape(name)]
            for key, _, decimals, _ in METRICS:
                if key not in means:
                    cells.append("--")
                    continue
                text = f"{means[key]:.{decimals}f}"
                cells.append(r"\textbf{" + text + "}" if best.get(key) == round(means[key], decimals) else text)
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_results_table(run_dirs: Mapping[str, str | Path], path: str | Path, **options: str) -> Path:
    """Read `<run_dir>/final_info.json` for every run (label -> folder) and write the table to `path`."""
    runs = {name: json.loads((Path(folder) / "final_info.json").read_text()) for name, folder in run_dirs.items()}
    path = Path(path)
    path.write_text(results_table(runs, **options))
    return path
