"""The run store: one SQLite database (WAL) per output folder, holding every run's stages, ideas,
experiments, LLM calls and artifacts. Stages write their outcome here before the next starts, which is
what makes a run resumable and its cost auditable."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scientist_core.errors import DISK_FULL_HINT, StoreError

# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,               -- 'run' or 'baseline'
        template TEXT NOT NULL,
        status TEXT NOT NULL,             -- 'running', 'done', 'failed'
        workdir TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE stages (
        run_id TEXT NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        status TEXT NOT NULL,             -- 'running', 'done', 'failed', 'skipped'
        started_at REAL NOT NULL,
        finished_at REAL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE ideas (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        novel INTEGER,                    -- NULL until checked
        novelty TEXT NOT NULL DEFAULT '{}',
        UNIQUE (run_id, name)
    );
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        idea TEXT NOT NULL,
        run_index INTEGER NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        config TEXT NOT NULL,
        status TEXT NOT NULL,             -- 'running', 'done', 'failed'
        metrics TEXT,
        workdir TEXT NOT NULL,
        execution TEXT,
        notes TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE llm_calls (
        id INTEGER PRIMARY KEY,
        run_id TEXT,
        stage TEXT NOT NULL,
        model TEXT NOT NULL,
        messages TEXT NOT NULL,
        response TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        latency_s REAL NOT NULL DEFAULT 0,
        error TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX llm_calls_run ON llm_calls (run_id, stage);
    CREATE INDEX experiments_run ON experiments (run_id, idea, run_index);
    """,
    """
    CREATE TABLE reservations (           -- a model call's worst-case cost, held from before it is sent until
        id INTEGER PRIMARY KEY,           -- it is settled into llm_calls (see Store.reserve)
        run_id TEXT NOT NULL,
        stage TEXT NOT NULL,
        model TEXT NOT NULL,
        cost_usd REAL NOT NULL,
        pid INTEGER NOT NULL,             -- the process making the call, on `host`
        host TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX reservations_run ON reservations (run_id);
    """,
)

ORPHANED = "its process ended before the call was settled: counted at its worst case, as it may have been billed"

JSON_COLUMNS = {"settings", "data", "novelty", "config", "metrics", "execution", "meta", "messages"}


_DAMAGED = ("the run store {path} is damaged ({detail})",
            "move it away (the run folders beside it stay) or choose another --out folder")
_NOT_WRITABLE = ("cannot write the run store {path} ({detail})",
                 "make it and its folder writable for you, or choose another --out folder")
_DISK_FULL = ("no space left on the disk holding the run store {path}", DISK_FULL_HINT)
# SQLite's primary result code -> (what is wrong, what to do): what a user can fix; any other error (a constraint,
# an SQL mistake) is a bug and keeps its traceback
_SQLITE_PROBLEMS = {
    sqlite3.SQLITE_CORRUPT: _DAMAGED,
    sqlite3.SQLITE_NOTADB: _DAMAGED,
    sqlite3.SQLITE_FULL: _DISK_FULL,
    sqlite3.SQLITE_READONLY: _NOT_WRITABLE,
    sqlite3.SQLITE_PERM: _NOT_WRITABLE,
    sqlite3.SQLITE_CANTOPEN: _NOT_WRITABLE,
    sqlite3.SQLITE_IOERR: ("cannot read or write the run store {path} ({detail})",
                           "check the disk it is on, or choose another --out folder"),
    sqlite3.SQLITE_BUSY: ("the run store {path} is locked by another process ({detail})",
                          "wait for that command to finish, or choose another --out folder"),
}
_LOW_ROOM = 1 << 20  # bytes: a write error with less room than this on the store's disk is the disk being full


def _store_problem(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """The one line for an SQLite error on the store at `path` that the user can fix, else None."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    problem = _SQLITE_PROBLEMS.get(code)
    if problem is None:
        return None
    if code == sqlite3.SQLITE_IOERR:  # SQLite reports a full disk while it grows the WAL or its index this way
        try:
            stats = os.statvfs(path.parent)
            problem = _DISK_FULL if stats.f_bavail * stats.f_frsize < _LOW_ROOM else problem
        except OSError:
            pass
    what, hint = problem
    return StoreError(what.format(path=path, detail=exc), hint)


@contextmanager
def _guarded(path: Path) -> Iterator[None]:
    """SQLite errors a user can fix (a damaged store, a full disk, no permission) become one StoreError line."""
    try:
        yield
    except sqlite3.Error as exc:
        problem = _store_problem(exc, path)
        if problem is None:
            raise
        raise problem from None


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def _encode(value: Any) -> str:
    return json.dumps(value, default=str)


class Store:
    """A handle on one run store; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _guarded(self.path):
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._lock = threading.RLock()
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}",
                             "move the file away or choose another --out folder") from None

    @classmethod
    def open_existing(cls, path: Path) -> "Store":
        if not Path(path).is_file():
            raise StoreError(f"there is no run store at {path}",
                             "run `scientist run` or `scientist baseline` first, or pass the --out folder it used")
        return cls(path)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"the run store {self.path} was written by a newer scientist (schema {version})",
                             "upgrade scientist-core")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def verify(self) -> None:
        """Read every page (SQLite's quick_check): a damaged store is one line before a command starts work."""
        with self._lock, _guarded(self.path):
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            what, hint = _DAMAGED
            raise StoreError(what.format(path=self.path, detail=problems[0]), hint)

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """A write transaction begun at once (BEGIN IMMEDIATE): what it reads stays true until it commits,
        across the threads of this process (the lock) and every process sharing the file (SQLite's own)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock, _guarded(self.path):
            return self._db.execute(sql, params)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._lock, _guarded(self.path):  # a damaged page may show only while the rows are read
            return [_decode(row) for row in self._db.execute(sql, params).fetchall()]

    # -- runs and stages -----------------------------------------------------------------------------

    def create_run(self, run_id: str, kind: str, template: str, workdir: Path, settings: dict | None = None) -> None:
        now = time.time()
        self._execute(
            "INSERT INTO runs (id, kind, template, status, workdir, settings, created_at, updated_at)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
            (run_id, kind, template, str(workdir), _encode(settings or {}), now, now),
        )

    def set_run_status(self, run_id: str, status: str) -> None:
        self._execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, time.time(), run_id))

    def run(self, run_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            known = ", ".join(r["id"] for r in self.runs()[:5]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path} (latest: {known})", "pass one of those to --run")
        return rows[0]

    def runs(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM runs ORDER BY created_at DESC, id DESC")

    def latest_run(self) -> dict[str, Any]:
        runs = self.runs()
        if not runs:
            raise StoreError(f"the run store {self.path} holds no run yet", "start one with `scientist run`")
        return runs[0]

    def start_stage(self, run_id: str, name: str) -> None:
        self._execute(
            "INSERT INTO stages (run_id, name, status, started_at) VALUES (?, ?, 'running', ?)"
            " ON CONFLICT (run_id, name) DO UPDATE SET status = 'running', started_at = excluded.started_at,"
            " finished_at = NULL",
            (run_id, name, time.time()),
        )

    def finish_stage(self, run_id: str, name: str, status: str = "done", detail: str = "") -> None:
        self._execute(
            "UPDATE stages SET status = ?, finished_at = ?, detail = ? WHERE run_id = ? AND name = ?",
            (status, time.time(), detail, run_id, name),
        )

    def stages(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM stages WHERE run_id = ? ORDER BY started_at", (run_id,))

    # -- ideas ---------------------------------------------------------------------------------------

    def add_idea(self, run_id: str, name: str, data: dict) -> None:
        self._execute("INSERT INTO ideas (run_id, name, data) VALUES (?, ?, ?)"  # a resumed step may add it again
                      " ON CONFLICT (run_id, name) DO UPDATE SET data = excluded.data", (run_id, name, _encode(data)))

    def set_novelty(self, run_id: str, name: str, novel: bool, novelty: dict) -> None:
        self._execute("UPDATE ideas SET novel = ?, novelty = ? WHERE run_id = ? AND name = ?",
                      (int(novel), _encode(novelty), run_id, name))

    def ideas(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM ideas WHERE run_id = ? ORDER BY id", (run_id,))

    # -- experiments ---------------------------------------------------------------------------------

    def start_experiment(self, run_id: str, idea: str, run_index: int, config: dict, workdir: Path,
                         attempt: int = 0) -> int:
        cursor = self._execute(
            "INSERT INTO experiments (run_id, idea, run_index, attempt, config, status, workdir, started_at)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
            (run_id, idea, run_index, attempt, _encode(config), str(workdir), time.time()),
        )
        return int(cursor.lastrowid)

    def finish_experiment(self, experiment_id: int, status: str, metrics: dict | None, execution: dict,
                          notes: str = "") -> None:
        self._execute(
            "UPDATE experiments SET status = ?, metrics = ?, execution = ?, notes = ?, finished_at = ?"
            " WHERE id = ?",
            (status, None if metrics is None else _encode(metrics), _encode(execution), notes, time.time(),
             experiment_id),
        )

    def experiments(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM experiments WHERE run_id = ? ORDER BY id", (run_id,))

    # -- the LLM ledger ------------------------------------------------------------------------------

    def record_llm_call(self, *, run_id: str | None, stage: str, model: str, messages: list[dict],
                        response: str | None, tokens_in: int = 0, tokens_out: int = 0, cost_usd: float = 0.0,
                        latency_s: float = 0.0, error: str | None = None, reservation: int | None = None) -> int:
        """One ledger row; with `reservation`, that hold is released in the same transaction, so the run's
        committed total (see `reserve`) never dips between the two."""
        with self._immediate() as db:
            if reservation is not None:
                db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            cursor = db.execute(
                "INSERT INTO llm_calls (run_id, stage, model, messages, response, tokens_in, tokens_out, cost_usd,"
                " latency_s, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, stage, model, _encode(messages), response, tokens_in, tokens_out, cost_usd, latency_s,
                 error, time.time()),
            )
            return int(cursor.lastrowid)

    def reserve(self, run_id: str, *, stage: str, model: str, cost_usd: float,
                limit: float | None) -> tuple[int | None, float, float]:
        """Hold `cost_usd` of `run_id`'s budget for a call about to be made: (the hold's id, spent, held), the
        id None when spent + held + cost_usd would pass `limit`. One BEGIN IMMEDIATE transaction sums and
        inserts, so no two callers (threads or processes) can both take the last of the budget. Holds left by
        processes of this host that have ended are first settled at their worst case (a killed run's)."""
        with self._immediate() as db:
            self._settle_orphans(db, run_id)
            spent = db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE run_id = ?",
                               (run_id,)).fetchone()[0]
            held = db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM reservations WHERE run_id = ?",
                              (run_id,)).fetchone()[0]
            if limit is not None and spent + held + cost_usd > limit:
                return None, float(spent), float(held)
            cursor = db.execute(
                "INSERT INTO reservations (run_id, stage, model, cost_usd, pid, host, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, stage, model, cost_usd, os.getpid(), socket.gethostname(), time.time()))
            return int(cursor.lastrowid), float(spent), float(held)

    def release(self, reservation: int) -> None:
        """Drop a hold whose call was never sent."""
        self._execute("DELETE FROM reservations WHERE id = ?", (reservation,))

    def reservations(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM reservations WHERE run_id = ? ORDER BY id", (run_id,))

    def _settle_orphans(self, db: sqlite3.Connection, run_id: str) -> None:
        rows = db.execute("SELECT * FROM reservations WHERE run_id = ? AND host = ?",
                          (run_id, socket.gethostname())).fetchall()
        for row in rows:
            if _alive(row["pid"]):
                continue
            db.execute("DELETE FROM reservations WHERE id = ?", (row["id"],))
            db.execute("INSERT INTO llm_calls (run_id, stage, model, messages, response, cost_usd, error, created_at)"
                       " VALUES (?, ?, ?, '[]', NULL, ?, ?, ?)",
                       (run_id, row["stage"], row["model"], row["cost_usd"], ORPHANED, time.time()))

    def llm_calls(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM llm_calls WHERE run_id = ? ORDER BY id", (run_id,))

    def models_by_stage(self, run_id: str) -> list[dict[str, Any]]:
        """The models that answered the run's calls (no error), each with its stage, in the order first used: what
        a paper's disclosure names."""
        return self._rows(
            "SELECT stage, model FROM llm_calls WHERE run_id = ? AND error IS NULL GROUP BY stage, model"
            " ORDER BY MIN(id)", (run_id,))

    def usage_by_stage(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT stage, COUNT(*) AS calls, SUM(tokens_in) AS tokens_in, SUM(tokens_out) AS tokens_out,"
            " SUM(cost_usd) AS cost_usd, SUM(latency_s) AS latency_s, SUM(error IS NOT NULL) AS errors"
            " FROM llm_calls WHERE run_id = ? GROUP BY stage ORDER BY MIN(id)",
            (run_id,),
        )

    def total_cost(self, run_id: str) -> float:
        """USD the run's settled calls cost (the ledger; holds of calls in flight not included)."""
        return float(self._execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE run_id = ?",
                                   (run_id,)).fetchone()[0])

    # -- artifacts -----------------------------------------------------------------------------------

    def add_artifact(self, run_id: str, kind: str, path: Path, meta: dict | None = None) -> None:
        self._execute("INSERT INTO artifacts (run_id, kind, path, meta, created_at) VALUES (?, ?, ?, ?, ?)",
                      (run_id, kind, str(path), _encode(meta or {}), time.time()))

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
