"""The results table written from final_info.json: every number as recorded, escaped, the best in bold."""

from __future__ import annotations

import json

import pytest

from scientist_core.models import FinalInfo
from scientist_diffusion.latex import escape, results_table, write_results_table


def info(**datasets: tuple[float, float, float, float]) -> dict:
    keys = ("kl_divergence", "eval_loss", "training_time", "inference_time")
    return {name: {"means": dict(zip(keys, values))} for name, values in datasets.items()}


BASELINE = info(circle=(0.34412, 0.4421, 84.81, 8.712), dino=(1.0803, 0.6671, 99.12, 11.93))
IDEA = info(circle=(0.29, 0.4502, 90.0, 9.0), dino=(1.2, 0.6601, 101.0, 12.0))


def rows(tex: str) -> list[str]:
    return [line for line in tex.splitlines() if line.endswith(r"\\")]


def test_one_run_gives_one_row_per_dataset_with_every_metric_rounded():
    tex = results_table({"Baseline": BASELINE})
    assert rows(tex) == [
        r"Dataset & Run & KL divergence & Eval loss & Training time (s) & Inference time (s) \\",
        r"circle & Baseline & 0.344 & 0.442 & 84.8 & 8.71 \\",
        r"dino & Baseline & 1.080 & 0.667 & 99.1 & 11.93 \\",
    ]
    assert r"\textbf" not in tex  # nothing to compare with
    assert tex.startswith(r"\begin{table}") and tex.rstrip().endswith(r"\end{table}")
    assert r"\label{tab:results}" in tex and r"\toprule" in tex and r"\bottomrule" in tex


def test_several_runs_are_grouped_by_dataset_and_the_lowest_kl_and_loss_are_bold():
    tex = results_table({"Baseline": BASELINE, "dual_scale": FinalInfo.from_json_obj(IDEA)})
    assert rows(tex)[1:] == [
        r"circle & Baseline & 0.344 & \textbf{0.442} & 84.8 & 8.71 \\",
        r" & dual\_scale & \textbf{0.290} & 0.450 & 90.0 & 9.00 \\",
        r"dino & Baseline & \textbf{1.080} & 0.667 & 99.1 & 11.93 \\",
        r" & dual\_scale & 1.200 & \textbf{0.660} & 101.0 & 12.00 \\",
    ]


def test_a_dataset_missing_from_a_run_and_a_missing_metric_are_shown_as_such():
    partial = {"circle": {"means": {"kl_divergence": 0.5}}}
    tex = results_table({"Baseline": BASELINE, "circle only": partial})
    assert r" & circle only & 0.500 & -- & -- & -- \\" in rows(tex)
    assert sum(line.startswith("dino") for line in rows(tex)) == 1


def test_names_are_escaped_and_an_empty_table_is_refused():
    assert escape("run_1 & 50% {x}") == r"run\_1 \& 50\% \{x\}"
    with pytest.raises(ValueError):
        results_table({})


def test_write_results_table_reads_final_info_files(tmp_path):
    for name, data in (("run_0", BASELINE), ("run_1", IDEA)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "final_info.json").write_text(json.dumps(data))
    path = write_results_table({"Baseline": tmp_path / "run_0", "Idea": tmp_path / "run_1"}, tmp_path / "table.tex",
                               caption="Two runs.", label="tab:two")
    tex = path.read_text()
    assert tex == results_table({"Baseline": BASELINE, "Idea": IDEA}, caption="Two runs.", label="tab:two")
    assert r"\caption{Two runs.}" in tex and r"\label{tab:two}" in tex
