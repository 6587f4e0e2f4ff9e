"""A real `scientist run` process, its model served over HTTP by the loopback OpenAI-compatible server, is
killed with SIGKILL at a random stage; `scientist resume` finishes the run and no finished experiment runs
again."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import deque
from pathlib import Path

import pytest

from scientist_core.testing.fake_openai import FakeOpenAIServer
from tests.helpers import SCIENTIST
from tests.pipeline_script import script_full_run

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")

STAGES = ["novelty", "experiments", "plots", "writeup", "review"]


class SchemaQueues:
    """The fake model's script, answered by the server from the JSON schema each request names. A schema's
    script starts over when it runs out: the kill may land after a reply was sent and before the run recorded
    it, so the resumed run asks again and gets the same answers."""

    def __init__(self) -> None:
        self.script: dict[str, list] = {}
        self.by_schema: dict[str, deque] = {}

    def answer(self, name: str, *replies) -> None:
        self.script.setdefault(name, []).extend(replies)

    def __call__(self, request):
        name = request.json["response_format"]["json_schema"]["name"]
        queue = self.by_schema.setdefault(name, deque())
        if not queue:
            queue.extend(self.script[name])
        reply = queue.popleft()
        return reply(request) if callable(reply) else reply


def settings_text(base_url: str) -> str:
    return f"""
model = "openai/fake-model"
searchers_order = ["offline"]
[llms.openai]
base_url = "{base_url}"
[searchers.offline]
sources = ["nips*"]
[reviewers.llm]
ensemble = 1
reflections = 1
[run]
quick = true
num_ideas = 1
reflections = 2
novelty_rounds = 3
max_runs = 2
max_tries = 2
citation_rounds = 1
"""


def stage_started(db: Path, prefix: str) -> str | None:
    """The run id once a stage named `prefix:...` has started (the store is read by a second connection)."""
    if not db.is_file():
        return None
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT run_id FROM stages WHERE name LIKE ? LIMIT 1", (prefix + ":%",)).fetchone()
    except sqlite3.OperationalError:  # the store is being created
        return None
    return row[0] if row else None


def finished(db: Path, run_id: str) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT idea, run_index FROM experiments WHERE run_id = ? AND status = 'done'",
                            (run_id,)).fetchall()


def test_sigkill_at_a_random_stage_then_resume(scientist_env):
    seed = random.randrange(1_000_000)
    stage = random.Random(seed).choice(STAGES)
    queues = SchemaQueues()
    script_full_run(queues, ideas=("wider_hidden_layers",))
    with FakeOpenAIServer() as server:
        server.responder = queues
        Path("scientist.toml").write_text(settings_text(server.base_url))
        env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-a-real-key"}
        db = scientist_env / "scientist-runs" / "scientist.db"
        process = subprocess.Popen([str(SCIENTIST), "run", "example"], env=env, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 240
        run_id = None
        while run_id is None and process.poll() is None and time.monotonic() < deadline:
            run_id = stage_started(db, stage)
            time.sleep(0.05)
        assert run_id, f"stage {stage} never started (seed {seed}): {process.communicate()[0][-3000:]}"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        before = finished(db, run_id)

        resumed = subprocess.run([str(SCIENTIST), "resume", run_id], env=env, capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, f"killed at {stage} (seed {seed}): {resumed.stderr[-3000:]}"
    after = finished(db, run_id)
    assert len(after) == len(set(after)), f"an experiment finished twice after a kill at {stage} (seed {seed})"
    assert set(before) <= set(after) and len(after) == 3
    workspace = scientist_env / "scientist-runs" / run_id / "wider_hidden_layers"
    assert (workspace / "wider_hidden_layers.pdf").is_file()
    assert json.loads((workspace / "review.json").read_text())["review"]["Overall"] == 5
