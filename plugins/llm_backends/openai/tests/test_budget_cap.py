"""`max_cost` is a hard cap: every call holds its worst case in the run store before it is sent, across threads
and processes, and settles to what it cost after. Real HTTP against the loopback OpenAI server, a real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scientist_core.chat import BudgetExceeded, Chat, LLMTimeout, RetryPolicy, UnpricedModel
from scientist_core.model_choice import open_chat
from scientist_core.models import Message
from scientist_core.settings import load_settings
from scientist_core.store import Store
from scientist_core.testing.fake_openai import Reply
from scientist_llm_openai.plugin import OpenAIProvider

pytestmark = pytest.mark.usefixtures("scientist_env")

RUN = "run-budget"
PER_MILLION_IN, PER_MILLION_OUT = 1000.0, 2000.0       # $0.001 and $0.002 a token: a few cents a call
MAX_TOKENS = 200


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget-0123456789")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "scientist.db")
    store.create_run(RUN, "run", "example", tmp_path)
    yield store
    store.close()


def priced(server, **config) -> OpenAIProvider:
    return OpenAIProvider.from_settings({"base_url": server.base_url, "input_cost_per_million": PER_MILLION_IN,
                                         "output_cost_per_million": PER_MILLION_OUT, **config})


def chat(provider, store, stage: str, max_cost: float | None) -> Chat:
    return Chat(provider, "fake-model", store=store, run_id=RUN, stage=stage, max_cost=max_cost,
                max_tokens=MAX_TOKENS, retry=RetryPolicy(max_retries=0))


def test_five_reviewers_and_three_workers_never_spend_past_max_cost(openai_server, store, tmp_path):
    # every answer takes a while, so the eight threads' calls overlap; each costs about a third of its worst case,
    # so calls unheld would overspend: eight at once cost more than twice max_cost
    openai_server.responder = lambda request: Reply(text="an answer", tokens_in=5, tokens_out=60, delay_s=0.15)
    provider = priced(openai_server)
    question = [Message(role="user", content="Review this paper, please.")]
    worst = chat(provider, store, "probe", None).estimate_cost(question)
    max_cost = worst * 1.5                     # one call's worst case fits; two at once never do
    actual = 5 * PER_MILLION_IN / 1e6 + 60 * PER_MILLION_OUT / 1e6
    assert worst * 0.25 < actual < worst * 0.5  # calls go on one at a time until the ledger holds $worst/2

    chats = [chat(provider, store, "review", max_cost) for _ in range(5)]
    chats += [chat(provider, store, f"experiments:idea_{i}", max_cost) for i in range(3)]
    refused: list[BudgetExceeded] = []
    answered = []
    lock = threading.Lock()

    def keep_asking(member: Chat) -> None:
        for _ in range(50):
            try:
                answer = member.ask(question)
            except BudgetExceeded as exc:
                with lock:
                    refused.append(exc)
                time.sleep(0.01)
                continue
            with lock:
                answered.append(answer)

    watcher = Store(tmp_path / "scientist.db")  # another connection, as another process would read it
    highest, running = [0.0], threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            highest[0] = max(highest[0], watcher.total_cost(RUN))
            time.sleep(0.005)

    observer = threading.Thread(target=watch)
    observer.start()
    threads = [threading.Thread(target=keep_asking, args=(member,)) for member in chats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    running.clear()
    observer.join()
    watcher.close()

    rows = store.llm_calls(RUN)
    total = store.total_cost(RUN)
    assert answered and refused
    assert total <= max_cost and highest[0] <= max_cost
    assert total > max_cost - worst              # the calls went on until the next worst case no longer fitted
    assert len(openai_server.chat_requests()) == len(rows) == len(answered)   # a refused call was never sent
    assert all(row["error"] is None and row["cost_usd"] == pytest.approx(actual) for row in rows)  # none at $0
    assert {row["stage"] for row in rows} <= {"review", "experiments:idea_0", "experiments:idea_1",
                                              "experiments:idea_2"}
    assert store.reservations(RUN) == []         # every hold was settled
    line = refused[-1].one_line()
    assert "max_cost" in line and f"scientist resume {RUN}" in line and "\n" not in line


def test_a_timed_out_call_is_counted_at_its_worst_case(openai_server, store):
    openai_server.enqueue(Reply.slow(5, text="too late"))
    provider = priced(openai_server, timeout_s=0.5)
    member = chat(provider, store, "ideas", None)
    question = [Message(role="user", content="an idea, please")]
    worst = member.estimate_cost(question)
    with pytest.raises(LLMTimeout):
        member.ask(question)
    (row,) = store.llm_calls(RUN)
    assert row["cost_usd"] == pytest.approx(worst) and worst > 0
    assert "did not answer within" in row["error"] and "counted at its worst case" in row["error"]
    assert store.reservations(RUN) == []


def test_an_unpriced_model_is_refused_while_max_cost_is_set_until_a_price_is_configured(openai_server, store,
                                                                                      monkeypatch):
    monkeypatch.setenv("SCIENTIST_MODEL", "openai/my-own-model")     # not in litellm's price list
    monkeypatch.setenv("SCIENTIST_MAX_COST", "1")
    Path("scientist.toml").write_text(f'[llms.openai]\nbase_url = "{openai_server.base_url}"\n')
    with pytest.raises(UnpricedModel) as caught:
        open_chat(load_settings(), stage="ideas", store=store, run_id=RUN).ask("hi")
    line = caught.value.one_line()
    assert "openai/my-own-model has no known price" in line and "\n" not in line
    assert "[llms.openai] input_cost_per_million and output_cost_per_million" in line
    assert openai_server.chat_requests() == [] and store.llm_calls(RUN) == []
    # a Chat made directly is refused too, before anything is sent
    with pytest.raises(UnpricedModel):
        Chat(OpenAIProvider.from_settings({"base_url": openai_server.base_url}), "my-own-model", store=store,
             run_id=RUN, max_cost=1.0).ask("hi")
    assert openai_server.chat_requests() == []

    Path("scientist.toml").write_text(f'[llms.openai]\nbase_url = "{openai_server.base_url}"\n'
                                      "input_cost_per_million = 1.0\noutput_cost_per_million = 2.0\n")
    openai_server.enqueue(Reply(text="priced now", tokens_in=1000, tokens_out=1000))
    assert open_chat(load_settings(), stage="ideas", store=store, run_id=RUN).ask("hi") == "priced now"
    assert store.total_cost(RUN) == pytest.approx(0.001 + 0.002)


def test_scientist_run_refuses_an_unpriced_model_before_anything_is_spent(openai_server, scientist_env):
    env = {**os.environ, "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test-budget-0123456789"}
    done = subprocess.run([sys.executable, "-m", "scientist_core.cli", "run", "example", "--quick", "--model",
                           "openai/my-own-model", "--max-cost", "2"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "openai/my-own-model has no known price" in line and "input_cost_per_million" in line
    assert openai_server.chat_requests() == []


HOLDER = """
import sys, time
from scientist_core.store import Store
store = Store(sys.argv[1])
hold, spent, held = store.reserve("run-budget", stage="experiments:other", model="openai/fake-model",
                                  cost_usd=float(sys.argv[2]), limit=float(sys.argv[3]))
print("held" if hold is not None else "refused", flush=True)
time.sleep(60)
"""


def test_a_hold_in_another_process_counts_and_is_settled_at_its_worst_case_when_that_process_dies(
        openai_server, store, tmp_path):
    openai_server.enqueue(Reply(text="after", tokens_in=5, tokens_out=5))
    provider = priced(openai_server)
    member = chat(provider, store, "ideas", None)
    question = [Message(role="user", content="one more")]
    worst = member.estimate_cost(question)
    member.max_cost = worst * 1.5
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "scientist.db"), str(worst),
                               str(member.max_cost)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BudgetExceeded, match="held by calls in flight"):
            member.ask(question)                 # the other process's hold leaves no room
        assert openai_server.chat_requests() == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (orphan,) = store.reservations(RUN)
    member.max_cost = worst * 2.5                # room for the dead process's worst case and this call
    assert member.ask(question) == "after"
    rows = store.llm_calls(RUN)
    assert [(r["stage"], r["cost_usd"]) for r in rows][0] == ("experiments:other", pytest.approx(worst))
    assert "counted at its worst case" in rows[0]["error"] and orphan["pid"] == holder.pid
    assert store.reservations(RUN) == [] and store.total_cost(RUN) <= member.max_cost
