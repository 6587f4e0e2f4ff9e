"""The SQLite run store: migrations, WAL, the ledger and its sums."""

import sqlite3
import threading

import pytest

from scientist_core.errors import StoreError
from scientist_core.store import MIGRATIONS, Store


def test_schema_created_in_wal_mode(run_store):
    assert run_store.schema_version == len(MIGRATIONS)
    db = sqlite3.connect(run_store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "stages", "ideas", "experiments", "llm_calls", "artifacts"} <= tables


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    store = Store(tmp_path / "s.db")
    store.create_run("r1", "run", "example", tmp_path)
    store.close()
    again = Store(tmp_path / "s.db")
    assert again.run("r1")["template"] == "example"
    assert again.schema_version == len(MIGRATIONS)


def test_newer_schema_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer scientist"):
        Store(tmp_path / "s.db")


def test_not_a_database(tmp_path):
    (tmp_path / "s.db").write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"is damaged \(file is not a database\)"):
        Store(tmp_path / "s.db")


def test_stages_and_experiments(run_store, tmp_path):
    run_store.create_run("r1", "run", "example", tmp_path)
    run_store.start_stage("r1", "ideas")
    run_store.finish_stage("r1", "ideas", "done", "3 ideas")
    run_store.add_idea("r1", "idea_a", {"Name": "idea_a"})
    run_store.add_idea("r1", "idea_a", {"Name": "idea_a", "Title": "again"})  # a resumed step adds it again
    assert [row["data"]["Title"] for row in run_store.ideas("r1")] == ["again"]
    run_store.set_novelty("r1", "idea_a", True, {"rounds": 2})
    experiment = run_store.start_experiment("r1", "idea_a", 1, {"lr": 0.1}, tmp_path / "run_1")
    run_store.finish_experiment(experiment, "done", {"d": {"means": {"kl": 0.5}}}, {"exit_code": 0})
    (stage,) = run_store.stages("r1")
    assert (stage["status"], stage["detail"]) == ("done", "3 ideas") and stage["finished_at"] >= stage["started_at"]
    (idea,) = run_store.ideas("r1")
    assert idea["novel"] == 1 and idea["novelty"] == {"rounds": 2}
    (row,) = run_store.experiments("r1")
    assert row["metrics"] == {"d": {"means": {"kl": 0.5}}} and row["config"] == {"lr": 0.1}


def test_ledger_sums_per_stage(run_store, tmp_path):
    run_store.create_run("r1", "run", "example", tmp_path)
    for stage, tokens_in, cost in [("ideas", 10, 0.01), ("ideas", 5, 0.02), ("review", 7, 0.5)]:
        run_store.record_llm_call(run_id="r1", stage=stage, model="m", messages=[{"role": "user", "content": "q"}],
                                  response="a", tokens_in=tokens_in, tokens_out=1, cost_usd=cost, latency_s=0.1)
    run_store.record_llm_call(run_id="r1", stage="review", model="m", messages=[], response=None, error="timeout")
    usage = {row["stage"]: row for row in run_store.usage_by_stage("r1")}
    assert usage["ideas"]["calls"] == 2 and usage["ideas"]["tokens_in"] == 15
    assert usage["ideas"]["cost_usd"] == pytest.approx(0.03)
    assert usage["review"]["errors"] == 1
    assert run_store.total_cost("r1") == pytest.approx(0.53)


def test_concurrent_writers(run_store, tmp_path):
    run_store.create_run("r1", "run", "example", tmp_path)
    other = Store(run_store.path)

    def write(store):
        for _ in range(50):
            store.record_llm_call(run_id="r1", stage="s", model="m", messages=[], response="x", cost_usd=0.001)

    threads = [threading.Thread(target=write, args=(s,)) for s in (run_store, run_store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(run_store.llm_calls("r1")) == 150


def test_unknown_run_names_latest(run_store, tmp_path):
    run_store.create_run("r1", "run", "example", tmp_path)
    with pytest.raises(StoreError, match="latest: r1"):
        run_store.run("nope")
