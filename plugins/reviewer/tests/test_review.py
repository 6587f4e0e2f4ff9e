"""The built-in `llm` reviewer with the scripted fake LLM: reflection, ensemble, area chair, repair; PDF text;
and `scientist review` end to end in this process."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scientist_core.chat import StructuredOutputError
from scientist_core.errors import ScientistError, SettingsError
from scientist_core.model_choice import open_chat
from scientist_core.models import Review
from scientist_core.reviewer import ReviewResult
from scientist_core.settings import load_settings
from scientist_core.store import Store
from scientist_core.testing import FakeLLM, Script, register_fake_llm
from scientist_reviewer.command import review as review_command
from scientist_reviewer.llm import (
    EXAMPLES_DIR, LLMReviewer, MetaReviewText, ReviewRevision, aggregate, load_examples, rounded_mean,
)
from scientist_reviewer.pdf_text import PaperTextError, paper_text, pdf_to_text

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test

MODEL = "fake/scripted"
PAPER = ("Sparse Mixture Adapters. We add a sparse mixture of low-rank adapters to a frozen transformer "
         "and report a 0.8 point gain on three text-classification tasks over single adapters. ") * 5


def form(overall: int = 5, **changes) -> dict:
    """A valid review as the model writes it (aliases); `changes` by alias, e.g. Soundness=3."""
    review = {
        "Summary": f"A paper scored {overall}.", "Strengths": ["clear"], "Weaknesses": ["small"],
        "Originality": 2, "Quality": 2, "Clarity": 3, "Significance": 2, "Questions": ["why?"],
        "Limitations": ["few datasets"], "Ethical Concerns": False, "Soundness": 2, "Presentation": 3,
        "Contribution": 2, "Overall": overall, "Confidence": 4, "Decision": "Reject",
    }
    review.update(changes)
    return review


def revision(overall: int, done: bool) -> dict:
    return {"Critique": f"revised to {overall}", "Review": form(overall), "Done": done}


META_TEXT = {"Summary": "The area chair's summary.", "Strengths": ["s"], "Weaknesses": ["w"],
             "Questions": ["q"], "Limitations": ["l"]}


def reviewer(**config) -> LLMReviewer:
    base = {"ensemble": 1, "reflections": 1, "fewshot": 0}
    return LLMReviewer(LLMReviewer.Config(**{**base, **config}))


def chat(store: Store | None = None, run_id: str | None = None, model: str = MODEL):
    return open_chat(load_settings(), stage="review", role="reviewer", model=model, store=store, run_id=run_id)


# -- reflection --------------------------------------------------------------------------------------------

def test_single_review_one_call_and_the_threshold_decides(fake_llm):
    fake_llm.enqueue(form(6, Decision="Reject"))
    result = reviewer().review(PAPER, chat())
    assert result.calls == 1 and len(fake_llm.history) == 1
    assert result.review.overall == 6
    assert result.review.decision == "Accept"  # post-calibrated: 6 >= threshold 6, whatever the model said
    assert result.reviews[0].decision == "Reject"  # the member's review is kept as written
    assert result.meta_review is None
    assert fake_llm.history[0].schema is Review
    assert PAPER.strip() in fake_llm.history[0].messages[-1].content


def test_reflection_stops_early_when_the_reviewer_is_done(fake_llm):
    fake_llm.enqueue(form(3), revision(4, done=False), revision(5, done=True))
    result = reviewer(reflections=5).review(PAPER, chat())
    assert result.calls == 3 and len(fake_llm.history) == 3  # not 5: round 2 said it was done
    assert result.review.overall == 5
    assert [call.schema for call in fake_llm.history] == [Review, ReviewRevision, ReviewRevision]
    last = fake_llm.history[-1].messages
    assert "Reflection 2 of 4" in last[-1].content
    # the conversation carries the earlier answers
    assert [m.role for m in last[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert json.loads(last[2].content)["Overall"] == 3


def test_reflection_runs_at_most_the_configured_rounds(fake_llm):
    fake_llm.enqueue(form(3), revision(4, done=False), revision(7, done=False))
    result = reviewer(reflections=3).review(PAPER, chat())
    assert result.calls == 3 and len(fake_llm.history) == 3
    assert result.review.overall == 7 and result.review.decision == "Accept"
    assert not fake_llm.replies


# -- repair --------------------------------------------------------------------------------------------------

def test_out_of_range_score_is_repaired_and_both_calls_are_in_the_ledger(fake_llm, run_store, tmp_path):
    run_store.create_run("r1", "review", "-", tmp_path)
    fake_llm.enqueue(form(11), form(8))
    result = reviewer().review(PAPER, chat(run_store, "r1"))
    assert result.review.overall == 8 and result.calls == 2
    rows = run_store.llm_calls("r1")
    assert len(rows) == 2 and all(row["stage"] == "review" for row in rows)
    repair_request = fake_llm.history[1].messages[-1].content
    assert "Overall" in repair_request and "10" in repair_request


# -- ensemble and area chair ---------------------------------------------------------------------------------

class BarrierLLM(FakeLLM):
    """The fake LLM, but the first `parties` requests wait for each other: they only pass if concurrent."""

    name = "barrier"
    parties = 3
    barrier: threading.Barrier
    threads: set[str]

    def complete(self, model, messages, **kwargs):
        cls = type(self)
        with cls.lock:
            cls.seen += 1
            first_wave = cls.seen <= cls.parties
        if first_wave:
            cls.threads.add(threading.current_thread().name)
            cls.barrier.wait(timeout=10)
        return super().complete(model, messages, **kwargs)


def add_barrier_llm(host, script: Script, parties: int) -> type[BarrierLLM]:
    return register_fake_llm(host, script, BarrierLLM, plugin="barrier-llm", parties=parties,
                             barrier=threading.Barrier(parties), threads=set(), lock=threading.Lock(), seen=0)


def test_ensemble_reviews_concurrently_and_the_area_chair_aggregates(plugin_host, run_store, tmp_path):
    script = Script()
    llm = add_barrier_llm(plugin_host, script, parties=3)
    script.enqueue(form(5, Soundness=2, Confidence=3), form(6, Soundness=3, Confidence=4),
                   form(6, Soundness=3, Confidence=4, **{"Ethical Concerns": True}), META_TEXT)
    run_store.create_run("r2", "review", "-", tmp_path)
    result = reviewer(ensemble=3, temperature=0.2, ensemble_temperature=0.9).review(
        PAPER, chat(run_store, "r2", model="barrier/scripted"))
    assert len(llm.threads) == 3  # three reviewers met at the barrier: they ran at the same time
    assert len(result.reviews) == 3 and result.calls == 4 and not result.failures
    assert sorted(r.overall for r in result.reviews) == [5, 6, 6]
    final = result.review
    assert final == result.meta_review
    assert final.overall == 6          # mean 5.67 rounded
    assert final.soundness == 3        # mean 2.67 rounded
    assert final.confidence == 4       # mean 3.67 rounded
    assert final.decision == "Accept"  # from the threshold, though every reviewer wrote Reject
    assert final.ethical_concerns is True
    assert final.summary == "The area chair's summary."
    stages = [row["stage"] for row in run_store.llm_calls("r2")]
    assert sorted(stages) == ["review", "review", "review", "review-meta"]
    assert script.history[-1].schema is MetaReviewText
    assert "Review 3:" in script.history[-1].messages[-1].content


def test_meta_scores_round_half_up_and_the_threshold_is_a_setting(fake_llm):
    fake_llm.enqueue(form(5), form(6), META_TEXT)
    result = reviewer(ensemble=2).review(PAPER, chat())
    assert result.review.overall == 6 and result.review.decision == "Accept"  # 5.5 -> 6
    fake_llm.enqueue(form(5), form(6), META_TEXT)
    result = reviewer(ensemble=2, threshold=7).review(PAPER, chat())
    assert result.review.overall == 6 and result.review.decision == "Reject"


def test_aggregate_and_rounded_mean():
    assert [rounded_mean(v) for v in ([1, 2], [2, 2, 3], [3, 4, 4], [7])] == [2, 2, 4, 7]
    reviews = [Review.model_validate(form(o, Clarity=c)) for o, c in ((2, 1), (3, 2), (4, 2), (8, 4))]
    text = MetaReviewText.model_validate(META_TEXT)
    meta = aggregate(reviews, text, threshold=4)
    assert (meta.overall, meta.clarity, meta.decision) == (4, 2, "Accept")  # 17/4 = 4.25; 9/4 = 2.25


def test_area_chair_failure_falls_back_to_the_most_typical_review(fake_llm):
    fake_llm.enqueue(form(4), form(4), "not json", "still not", "no")
    result = reviewer(ensemble=2).review(PAPER, chat())
    assert result.review.overall == 4 and result.review.summary == "A paper scored 4."
    assert len(result.failures) == 1 and result.failures[0].startswith("area chair:")


def test_every_member_failing_raises_the_structured_output_error(fake_llm):
    fake_llm.enqueue(*(["nonsense"] * 6))
    with pytest.raises(StructuredOutputError):
        reviewer(ensemble=2).review(PAPER, chat())


# -- prompts, examples, settings -------------------------------------------------------------------------------

def test_shipped_examples_are_valid_and_fewshot_puts_them_in_the_prompt(fake_llm):
    examples = load_examples(EXAMPLES_DIR)
    assert len(examples) >= 1 and all(len(e.paper.split()) > 400 for e in examples)
    fake_llm.enqueue(form(4))
    reviewer(fewshot=1).review(PAPER, chat())
    prompt = fake_llm.history[0].messages[-1].content
    assert examples[0].paper[:200] in prompt and "<example_review>" in prompt
    assert examples[-1].paper[:200] not in prompt or len(examples) == 1


def test_fewshot_beyond_the_shipped_examples_is_a_clear_settings_error(plugin_host):
    available = len(load_examples())
    with pytest.raises(SettingsError) as caught:
        plugin_host.create("reviewer", "llm", load_settings().reviewers, flags={"fewshot": available + 1})
    line = caught.value.one_line()
    assert "\n" not in line and "--fewshot" in line and f"only {available}" in line


def test_the_reviewer_reads_its_settings_section(plugin_host, monkeypatch):
    monkeypatch.setenv("SCIENTIST_REVIEWERS__LLM__ENSEMBLE", "2")
    made = plugin_host.create("reviewer", "llm", load_settings().reviewers, flags={"reflections": 2})
    assert (made.name, made.config.ensemble, made.config.reflections, made.config.fewshot) == ("llm", 2, 2, 1)


def test_a_long_paper_is_cut_to_max_paper_chars():
    messages = reviewer(max_paper_chars=1000).prompt("x" * 5000)
    assert "x" * 1000 in messages[-1].content and "x" * 1001 not in messages[-1].content
    assert "4000 characters, was cut" in messages[-1].content


# -- PDF text ---------------------------------------------------------------------------------------------------

def make_pdf(path: Path, lines: list[str]) -> Path:
    import pymupdf

    document = pymupdf.open()
    page = document.new_page()
    for number, line in enumerate(lines):
        page.insert_text((50, 60 + 14 * number), line, fontsize=10)
    document.save(path)
    document.close()
    return path


def test_pdf_text_reads_every_page(tmp_path):
    pdf = make_pdf(tmp_path / "p.pdf", [f"Line {i}: adapters improve accuracy on small tasks." for i in range(20)])
    text = pdf_to_text(pdf)
    assert "Line 0: adapters" in text and "Line 19" in text


def test_empty_or_scanned_pdf_is_one_clear_line(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf", [])
    with pytest.raises(PaperTextError) as caught:
        paper_text(pdf)
    line = caught.value.one_line()
    assert "\n" not in line and "scanned" in line and "OCR" in line


def test_not_a_pdf_is_one_clear_line(tmp_path):
    fake = tmp_path / "paper.pdf"
    fake.write_text("<html>this is a web page saved with the wrong name</html>")
    with pytest.raises(PaperTextError) as caught:
        paper_text(fake)
    assert "\n" not in caught.value.one_line() and "is not a PDF" in caught.value.one_line()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    with pytest.raises(PaperTextError) as caught:
        paper_text(broken)
    assert "\n" not in caught.value.one_line()
    with pytest.raises(PaperTextError, match="there is no file"):
        paper_text(tmp_path / "missing.pdf")


def test_a_text_file_is_read_as_is(tmp_path):
    path = tmp_path / "paper.txt"
    path.write_text(PAPER)
    assert paper_text(path) == PAPER.strip()


# -- the command -------------------------------------------------------------------------------------------------

def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("review")(review_command)
    app.command("noop")(lambda: None)  # two commands, so typer keeps the command name
    return app


def test_review_command_prints_json_records_the_run_and_logs_show_it(fake_llm, scientist_env):
    pdf = make_pdf(scientist_env / "paper.pdf", [f"{i}. " + PAPER[:90] for i in range(30)])
    fake_llm.enqueue(form(7, Decision="Accept"))
    result = CliRunner().invoke(cli(), ["review", str(pdf), "--model", MODEL, "--ensemble", "1",
                                        "--reflections", "1", "--fewshot", "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["review"]["Overall"] == 7 and data["review"]["Decision"] == "Accept" and data["calls"] == 1
    assert "Sparse Mixture Adapters" in fake_llm.history[0].messages[-1].content
    store = Store(scientist_env / "scientist-runs" / "scientist.db")
    run = store.latest_run()
    assert run["kind"] == "review" and run["status"] == "done" and run["id"] == data["run_id"]
    assert len(store.llm_calls(run["id"])) == 1
    assert [a["kind"] for a in store.artifacts(run["id"])] == ["review"]
    store.close()

    from scientist_core.cli import app as main_app

    logs = CliRunner().invoke(main_app, ["logs", "--json"])
    assert logs.exit_code == 0, logs.output
    assert json.loads(logs.stdout)["total"]["calls"] == 1


def test_review_command_prints_a_readable_review(fake_llm, scientist_env):
    paper = scientist_env / "paper.txt"
    paper.write_text(PAPER)
    fake_llm.enqueue(form(5), form(6), META_TEXT)
    result = CliRunner().invoke(cli(), ["review", str(paper), "--model", MODEL, "--ensemble", "2",
                                        "--reflections", "1", "--fewshot", "0"])
    assert result.exit_code == 0, result.output
    assert "Accept (Overall 6 ≥ 6)" in result.stdout and "6/10" in result.stdout and "Weaknesses" in result.stdout
    assert "Overall of the 2 reviewers: " in result.stdout


def test_review_command_refuses_a_bad_file_before_asking_any_model(fake_llm, scientist_env):
    bad = scientist_env / "notes.pdf"
    bad.write_text("plain words")
    result = CliRunner().invoke(cli(), ["review", str(bad), "--model", MODEL])
    assert isinstance(result.exception, ScientistError) and "is not a PDF" in str(result.exception)
    assert fake_llm.history == []


def test_review_result_round_trips_as_json(fake_llm):
    fake_llm.enqueue(form(5))
    result = reviewer().review(PAPER, chat())
    again = ReviewResult.model_validate_json(result.model_dump_json(by_alias=True))
    assert again == result


def test_console_script_prints_one_line_for_a_file_that_is_not_a_pdf(scientist_env):
    from tests.helpers import run_cli

    bad = scientist_env / "paper.pdf"
    bad.write_text("<html>not a paper</html>")
    done = run_cli("review", str(bad), cwd=scientist_env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ") and "is not a PDF" in done.stderr
