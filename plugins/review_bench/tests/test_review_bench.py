"""`scientist review-bench`: dataset formats, metrics against hand-computed values, resuming, cost."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scientist_core.chat import Price
from scientist_core.store import Store
from scientist_core.testing import FakeLLM, Script, register_fake_llm
from scientist_review_bench import plugin
from scientist_review_bench.dataset import BenchError, load_dataset
from scientist_review_bench.metrics import (
    accuracy, balanced_accuracy, bootstrap, f1_score, false_negative_rate, false_positive_rate, pearson, roc_auc,
    summarise,
)
from scientist_review_bench.results import BenchRecord

TEXT = "A short paper about adapters. " * 20

# id, human decision, the scripted reviewer's Overall, human Overall scores
PAPERS = [
    ("p1", "Accept", 8, [8, 6, 7]),
    ("p2", "Accept (Poster)", 6, [6, 8]),
    ("p3", "Reject", 6, [5, 5]),
    ("p4", "Reject", 5, [3, 6, 6]),
    ("p5", "Reject", 3, [3, 3]),
    ("p6", "Reject", 2, []),
]
PRICE_IN, PRICE_OUT = 2e-6, 8e-6  # USD per token (per word for the fake)




@pytest.fixture
def priced(plugin_host) -> Script:
    """The scripted fake LLM as provider `priced`, with a price, so reviews cost something."""
    script = Script()

    class PricedLLM(FakeLLM):
        name = "priced"

        def price(self, model: str) -> Price:
            return Price(PRICE_IN, PRICE_OUT)

    register_fake_llm(plugin_host, script, PricedLLM, plugin="priced-llm")
    return script


def form(overall: int) -> dict:
    return {"Summary": "s", "Strengths": ["a"], "Weaknesses": ["b"], "Originality": 2, "Quality": 2, "Clarity": 2,
            "Significance": 2, "Questions": [], "Limitations": [], "Ethical Concerns": False, "Soundness": 2,
            "Presentation": 2, "Contribution": 2, "Overall": overall, "Confidence": 3, "Decision": "Reject"}


def write_dataset(folder: Path) -> Path:
    path = folder / "toy.jsonl"
    lines = [json.dumps({"id": pid, "text": f"{pid}: {TEXT}", "decision": decision, "human_scores": scores})
             for pid, decision, _, scores in PAPERS]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli() -> typer.Typer:
    """A CLI holding what the plugin's hook adds, beside a second command so typer keeps subcommand names."""
    app = typer.Typer()
    plugin.register_commands(app)
    app.command("noop")(lambda: None)
    return app


def bench(dataset: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli(), ["review-bench", str(dataset), "--model", "priced/scripted", "--ensemble",
                                        "1", "--reflections", "1", "--fewshot", "0", "--bootstrap", "300", "--json",
                                        *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def value(summary: dict, name: str) -> float:
    return summary["metrics"][name]["value"]


# -- the metrics, by hand --------------------------------------------------------------------------------------

def test_metrics_match_the_hand_computation_and_a_rerun_makes_no_calls(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    priced.enqueue(*(form(overall) for _, _, overall, _ in PAPERS))
    summary = bench(dataset)
    assert len(priced.history) == 6 and summary["reviewed"] == 6 and summary["failed"] == 0
    assert f"p3: {TEXT}".strip() in priced.history[2].messages[-1].content

    # At threshold 6 the reviewer accepts p1, p2, p3: TP = 2 (p1, p2), FP = 1 (p3), TN = 3 (p4-p6), FN = 0.
    assert value(summary, "accuracy") == pytest.approx(5 / 6)
    assert value(summary, "balanced_accuracy") == pytest.approx((2 / 2 + 3 / 4) / 2)   # 0.875
    assert value(summary, "f1") == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))             # 0.8
    assert value(summary, "fpr") == pytest.approx(1 / 4)
    assert value(summary, "fnr") == pytest.approx(0.0)
    # AUC over the 2 x 4 (accepted, rejected) pairs of Overall: 8 beats 6, 5, 3, 2 (4 wins); 6 ties 6 (a half)
    # and beats 5, 3, 2 (3 wins): 7.5 / 8.
    assert value(summary, "roc_auc") == pytest.approx(7.5 / 8)
    # Pearson over p1-p5 (p6 has no human score): Overall 8, 6, 6, 5, 3 (mean 5.6) against human means
    # 7, 7, 5, 5, 3 (mean 5.4): deviations 2.4, .4, .4, -.6, -2.6 and 1.6, 1.6, -.4, -.4, -2.4;
    # Sxy = 3.84 + .64 - .16 + .24 + 6.24 = 10.8, Sxx = 13.2, Syy = 11.2.
    assert value(summary, "human_correlation") == pytest.approx(10.8 / math.sqrt(13.2 * 11.2))  # 0.8882
    assert summary["metrics"]["human_correlation"]["n"] == 5
    for name, estimate in summary["metrics"].items():
        if estimate["value"] is not None and estimate["low"] is not None:
            assert estimate["low"] <= estimate["value"] + 1e-9 and estimate["value"] <= estimate["high"] + 1e-9, name
    assert (summary["accepted_by_humans"], summary["accepted_by_reviewer"]) == (2, 3)

    # cost per review: what the ledger recorded, word counts at the fake's price
    assert summary["cost_usd_per_review"] > 0
    assert summary["cost_usd_this_run"] == pytest.approx(summary["cost_usd_total"])
    assert summary["cost_usd_total"] == pytest.approx(6 * summary["cost_usd_per_review"])
    store = Store(scientist_env / "scientist-runs" / "scientist.db")
    run = store.run(summary["run_id"])
    assert run["kind"] == "review-bench" and run["status"] == "done"
    assert store.total_cost(run["id"]) == pytest.approx(summary["cost_usd_total"])
    store.close()

    # a rerun finds every review in the results file: no model call, the same numbers, no new run
    again = bench(dataset)
    assert len(priced.history) == 6
    assert again["metrics"] == summary["metrics"] and again["run_id"] is None and again["cost_usd_this_run"] == 0
    assert Path(again["results"]).is_file() and (Path(again["results"]).parent / "metrics.json").is_file()


def test_rethresholding_reuses_the_reviews(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    priced.enqueue(*(form(overall) for _, _, overall, _ in PAPERS))
    bench(dataset)
    strict = bench(dataset, "--threshold", "7")
    assert len(priced.history) == 6  # no new call: the threshold only re-derives decisions from Overall
    # At 7 only p1 is accepted: TP = 1, FN = 1 (p2), FP = 0, TN = 4.
    assert value(strict, "accuracy") == pytest.approx(5 / 6)
    assert value(strict, "balanced_accuracy") == pytest.approx((1 / 2 + 4 / 4) / 2)  # 0.75
    assert value(strict, "f1") == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))              # 0.667
    assert value(strict, "fpr") == pytest.approx(0.0) and value(strict, "fnr") == pytest.approx(0.5)
    assert value(strict, "roc_auc") == pytest.approx(7.5 / 8)


def test_an_interrupted_benchmark_resumes_and_retries_failures(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    # p1, p2 fine; p3 gives no valid review in its 3 tries (recorded as failed); p4 fine
    priced.enqueue(form(8), form(6), "no", "no", "no", form(5))
    first = bench(dataset, "--limit", "4")
    assert len(priced.history) == 6 and first["reviewed"] == 3 and first["failed"] == 1
    assert "p3" in first["errors"]
    # the full set: only p3 (again), p5 and p6 are asked for
    priced.enqueue(form(6), form(3), form(2))
    full = bench(dataset)
    assert len(priced.history) == 9 and full["reviewed"] == 6 and full["failed"] == 0
    assert value(full, "roc_auc") == pytest.approx(7.5 / 8)
    asked = [call.messages[-1].content for call in priced.history[6:]]
    assert [text.split("<paper>\n")[1][:2] for text in asked] == ["p3", "p5", "p6"]


def test_changing_the_reviewer_settings_reviews_again(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    priced.enqueue(*(form(overall) for _, _, overall, _ in PAPERS[:2]))
    bench(dataset, "--limit", "2")
    priced.enqueue(*(form(overall) for _, _, overall, _ in PAPERS[:2]))
    bench(dataset, "--limit", "2", "--reflections", "1", "--fewshot", "1")
    assert len(priced.history) == 4


def test_papers_reviewed_concurrently(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    priced.enqueue(*(form(5) for _ in PAPERS))
    summary = bench(dataset, "--jobs", "3")
    assert summary["reviewed"] == 6 and len(priced.history) == 6


def test_readable_report(priced, scientist_env):
    dataset = write_dataset(scientist_env)
    priced.enqueue(*(form(overall) for _, _, overall, _ in PAPERS))
    result = CliRunner().invoke(cli(), ["review-bench", str(dataset), "--model", "priced/scripted", "--ensemble",
                                        "1", "--reflections", "1", "--fewshot", "0", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.stdout and "0.875" in result.stdout and "cost per review $" in result.stdout


# -- metric functions ------------------------------------------------------------------------------------------

def test_metric_functions_on_small_cases():
    truth = [True, True, False, False]
    assert accuracy(truth, [True, False, False, True]) == 0.5
    assert balanced_accuracy(truth, [True, True, True, True]) == 0.5
    assert balanced_accuracy([True, True], [True, False]) is None  # one class only
    assert f1_score(truth, [False] * 4) == 0.0 and f1_score([False], [False]) is None
    assert false_positive_rate(truth, [True, True, True, False]) == 0.5
    assert false_negative_rate(truth, [False, True, False, False]) == 0.5
    assert roc_auc(truth, [4, 3, 2, 1]) == 1.0 and roc_auc(truth, [1, 2, 3, 4]) == 0.0
    assert roc_auc(truth, [5, 5, 5, 5]) == 0.5 and roc_auc([True], [3]) is None
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0) and pearson([1, 1], [2, 3]) is None


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rows = [(i % 3 == 0, i % 2 == 0, i % 10 + 1, None, None) for i in range(60)]
    metrics = {"acc": lambda rs: accuracy([r[0] for r in rs], [r[1] for r in rs])}
    first = bootstrap(rows, metrics, samples=400, seed=7)
    assert first == bootstrap(rows, metrics, samples=400, seed=7)
    low, high = first["acc"]
    point = accuracy([r[0] for r in rows], [r[1] for r in rows])
    assert low < point < high and high - low < 0.4


def test_summary_counts_failures_and_skips_them():
    records = [BenchRecord(id="a", config_key="k", decision="Accept", overall=7, llm_decision="Accept"),
               BenchRecord(id="b", config_key="k", decision="Reject", error="boom")]
    summary = summarise(records, threshold=6, samples=10)
    assert (summary["reviewed"], summary["failed"], summary["errors"]) == (1, 1, {"b": "boom"})
    assert summary["metrics"]["roc_auc"]["value"] is None  # one class only


# -- dataset formats -----------------------------------------------------------------------------------------------

def test_a_folder_of_records_with_sibling_papers(scientist_env):
    folder = scientist_env / "set"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"decision": "Accept (Oral)", "human_scores": [8, 7]}))
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.json").write_text(json.dumps({"decision": "reject", "pdf": "pdfs/b.pdf"}))
    papers = load_dataset(folder)
    assert [(p.id, p.decision) for p in papers] == [("a", "Accept"), ("b", "Reject")]
    assert papers[0].pdf == folder / "a.txt" and papers[0].read_text() == TEXT.strip()
    assert papers[1].pdf == folder / "pdfs" / "b.pdf" and papers[0].human_mean == 7.5


@pytest.mark.parametrize("lines, message", [
    (['{"id": "a", "text": "t"}'], "toy.jsonl:1: decision: Field required"),
    (['{"id": "a", "text": "t", "decision": "Accept"}', "not json"], "toy.jsonl:2 is not JSON"),
    (['{"id": "a", "text": "t", "pdf": "a.pdf", "decision": "Accept"}'], 'exactly one of "pdf" and "text"'),
    (['{"id": "a", "text": "t", "decision": "Maybe"}'], "toy.jsonl:1: decision"),
    (['{"id": "a", "text": "t", "decision": "Accept"}'] * 2, "uses the id 'a' twice"),
    ([""], "holds no paper"),
])
def test_bad_datasets_are_one_clear_line(scientist_env, lines, message):
    path = scientist_env / "toy.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(BenchError) as caught:
        load_dataset(path)
    assert message in caught.value.one_line() and "\n" not in caught.value.one_line()
