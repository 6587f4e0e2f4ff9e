"""Bad input to every command, as a user gives it: an output folder that cannot be made or written, a file where
a folder is expected (and a folder where a file is), a data folder the user may not read, a damaged run store,
a disk that fills. Each ends in one `Error:` line naming the path and what to do, never a traceback, and what
was done before is still there.

Every case runs the real `scientist` script; the reviewers' model is the loopback OpenAI-compatible server.
The full disk is a 2 MiB tmpfs (root only); the unreadable data folder is tried as the user nobody (setpriv),
since root reads any folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from scientist_core.store import Store
from scientist_core.testing.fake_openai import FakeOpenAIServer
from tests.helpers import SCIENTIST, run_cli
from tests.pipeline_script import GOOD_REVIEW, script_full_run
from tests.test_pipeline_kill import SchemaQueues, settings_text  # the loopback model, one review per paper

UNMAKEABLE = Path("/proc/forbidden/out")  # not even root can make a folder in /proc
PAPER_TEXT = "We widen a small MLP on toy data and measure its validation accuracy. " * 30


def answer_review(request):
    return GOOD_REVIEW


@pytest.fixture(scope="module")
def model_server():
    """One loopback model for the module: every request gets a valid review unless a test sets a responder."""
    with FakeOpenAIServer() as server:
        yield server


@dataclass
class Place:
    """A test's working folder with the inputs the commands take, and the settings that reach the model."""

    work: Path
    file: Path  # an ordinary file, to put where a folder is expected
    folder: Path  # an ordinary folder, to put where a file is expected
    paper: Path
    dataset: Path
    env: dict[str, str]


@pytest.fixture
def place(scientist_env, model_server) -> Place:
    model_server.responder = answer_review
    (scientist_env / "scientist.toml").write_text(settings_text(model_server.base_url))
    file = scientist_env / "notes.txt"
    file.write_text("the user's own notes\n")
    folder = scientist_env / "a-folder"
    folder.mkdir()
    paper = scientist_env / "paper.txt"
    paper.write_text(PAPER_TEXT)
    dataset = scientist_env / "bench.jsonl"
    dataset.write_text("".join(json.dumps({"id": f"p{i}", "text": f"paper {i}. {PAPER_TEXT}", "decision": "Reject"})
                               + "\n" for i in (1, 2)))
    return Place(scientist_env, file, folder, paper, dataset, {"OPENAI_API_KEY": "sk-test-not-a-real-key"})


# every command that takes --out, with its other arguments
OUT_COMMANDS = {
    "baseline": lambda p: ["baseline", "example", "--quick"],
    "run": lambda p: ["run", "example", "--quick"],
    "resume": lambda p: ["resume", "20260101-000000-example-0000"],
    "logs": lambda p: ["logs"],
    "review": lambda p: ["review", str(p.paper)],
    "review-bench": lambda p: ["review-bench", str(p.dataset)],
}
WRITERS = ["baseline", "run", "review", "review-bench"]  # the commands that make their output folder
DATA_USERS = ["baseline", "run", "resume"]  # the commands that cache in the data folder


def model_calls(server: FakeOpenAIServer) -> int:
    """How many answers the model has been asked for (listing its models is no call)."""
    return sum(1 for request in server.requests if request.method == "POST")


def scientist(place: Place, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, env={**place.env, **(env or {})}, cwd=place.work)


def one_line(result: subprocess.CompletedProcess, *names: object, alone: bool = True) -> str:
    """The command failed with one `Error:` line naming each of `names`, and no traceback; `alone`: nothing else
    on stderr (it failed before it started any work that reports progress)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    if alone:
        assert result.stderr.splitlines() == errors, output
    for name in names:
        assert str(name) in errors[0], output
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its content's hash: what a failed command must leave as it was."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# -- the output folder ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_an_output_folder_that_cannot_be_made(place, command):
    line = one_line(scientist(place, *OUT_COMMANDS[command](place), "--out", str(UNMAKEABLE)), UNMAKEABLE)
    assert "--out" in line or "scientist run" in line  # the option to change, or (nothing there) what makes one


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_a_file_given_as_the_output_folder(place, command):
    before = place.file.read_text()
    one_line(scientist(place, *OUT_COMMANDS[command](place), "--out", str(place.file)), place.file)
    below = place.file / "runs"
    one_line(scientist(place, *OUT_COMMANDS[command](place), "--out", str(below)), below)
    assert place.file.read_text() == before


def test_a_folder_given_as_a_file(place, model_server):
    calls = model_calls(model_server)
    results = one_line(scientist(place, "review-bench", str(place.dataset), "--results", str(place.folder)),
                       place.folder, "--results")
    assert "folder" in results
    one_line(scientist(place, "llm", "prompt", "--schema", str(place.folder), "hello"), place.folder)
    for command in (["config", "show"], ["models"], ["coder", "list"], ["logs"], ["baseline", "example"]):
        one_line(scientist(place, *command, env={"SCIENTIST_CONFIG": str(place.folder)}), place.folder)
    assert model_calls(model_server) == calls


# -- the sandbox's folders ------------------------------------------------------------------------------------

def test_sandbox_folders(place):
    before = place.file.read_text()
    for args, named in (
        (["--workdir", str(place.file)], place.file),
        (["--workdir", str(place.work), "--log-dir", str(place.file)], place.file),  # was deleted for a folder
        (["--workdir", str(place.work), "--log-dir", str(UNMAKEABLE)], UNMAKEABLE),
    ):
        result = scientist(place, "sandbox", "exec", *args, "--", "true")
        one_line(result, named)
        assert result.returncode == 2  # the sandbox's usage errors
    assert place.file.read_text() == before


# -- the data folder ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", DATA_USERS)
def test_a_file_given_as_the_data_folder(place, command):
    out = place.work / "out"
    if command == "resume":  # a run store, so that resume gets as far as the data folder
        Store(out / "scientist.db").close()
    result = scientist(place, *OUT_COMMANDS[command](place), "--out", str(out),
                       env={"SCIENTIST_DATA_DIR": str(place.file)})
    one_line(result, place.file, "data_dir")
    assert not any(path.is_dir() for path in out.glob("*"))  # no run was started


# -- a damaged run store --------------------------------------------------------------------------------------

def damaged_store(out: Path, how: str) -> Path:
    """A run store in `out` with a finished run whose folder sits beside it, then damaged: random bytes over the
    whole file ("not a database"), or over every page but the first ("malformed")."""
    run_dir = out / "20260101-000000-example-baseline-0000"
    run_dir.mkdir(parents=True)
    (run_dir / "final_info.json").write_text('{"xor": {"means": {"val_accuracy": 0.95}}}')
    store = Store(out / "scientist.db")
    store.create_run(run_dir.name, "baseline", "example", run_dir)
    for number in range(200):  # a few pages of rows, so damage past the first page hits a table
        store.record_llm_call(run_id=run_dir.name, stage="ideas", model="fake/m", messages=[], response="x" * 100)
    store.close()
    path = out / "scientist.db"
    data = bytearray(path.read_bytes())
    start = 0 if how == "not a database" else 4096
    data[start:] = os.urandom(len(data) - start)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["not a database", "malformed"])
@pytest.mark.parametrize("command", ["logs", "baseline", "run", "resume", "review", "review-bench"])
def test_a_damaged_run_store(place, model_server, command, how):
    out = place.work / "out"
    db = damaged_store(out, how)
    before = snapshot(out)
    calls = model_calls(model_server)
    line = one_line(scientist(place, *OUT_COMMANDS[command](place), "--out", str(out)), db)
    assert "damaged" in line or "not a database" in line
    assert snapshot(out) == before  # the store as it was, the finished run's folder untouched, nothing new
    assert model_calls(model_server) == calls


# -- a disk that fills ----------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, to fill; needs root (skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte; the filler's path, to remove to free it."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


@pytest.fixture
def finished_baseline(place, small_disk) -> tuple[Path, Path, dict[str, str]]:
    """A baseline finished on the small disk before it fills: its output folder, its run folder and its files."""
    out = small_disk / "out"
    first = scientist(place, "baseline", "example", "--quick", "--out", str(out))
    assert first.returncode == 0, first.stderr
    run_dir = Path(first.stdout.strip()).parents[2]  # <run>/sandbox/run_0/final_info.json
    return out, run_dir, snapshot(run_dir)


def still_there(place: Place, finished: tuple[Path, Path, dict[str, str]]) -> None:
    """The finished baseline's files as they were, and its record in the run store (read once there is room)."""
    out, run_dir, files = finished
    assert snapshot(run_dir) == files
    logs = scientist(place, "logs", "--out", str(out), "--run", run_dir.name, "--json")
    assert json.loads(logs.stdout)["run"]["status"] == "done"


def test_a_full_disk_stops_each_command_before_it_starts(place, small_disk, finished_baseline):
    filler = fill(small_disk)
    for command in ("baseline", "run", "resume", "review", "review-bench"):  # one baseline to keep, for speed
        one_line(scientist(place, *OUT_COMMANDS[command](place), "--out", str(finished_baseline[0])), small_disk)
    filler.unlink()
    still_there(place, finished_baseline)


def test_a_disk_that_fills_during_a_review(place, model_server, small_disk, finished_baseline):
    def fill_then_answer(request):
        fill(small_disk)
        return GOOD_REVIEW

    model_server.responder = fill_then_answer
    one_line(scientist(place, "review", str(place.paper), "--out", str(finished_baseline[0])), small_disk,
             alone=False)
    (small_disk / "filler").unlink()
    still_there(place, finished_baseline)


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="needs latexmk (make test installs it)")
def test_a_disk_that_fills_during_a_run_keeps_the_finished_stages(place, model_server, small_disk):
    """The disk fills when the write-up asks for its first text: the experiments before it stay recorded."""
    answers = SchemaQueues()
    script_full_run(answers, ideas=("wider_hidden_layers",))

    def fill_at_the_writeup(request):
        if request.json["response_format"]["json_schema"]["name"] == "TitleAbstract":
            fill(small_disk)
        return answers(request)

    model_server.responder = fill_at_the_writeup
    out = small_disk / "out"
    result = scientist(place, "run", "example", "--quick", "--num-ideas", "1", "--max-runs", "2", "--out", str(out))
    one_line(result, small_disk, alone=False)
    (small_disk / "filler").unlink()
    logs = json.loads(scientist(place, "logs", "--out", str(out), "--json").stdout)
    done = {stage["name"] for stage in logs["stages"] if stage["status"] == "done"}
    assert {"ideas", "novelty:wider_hidden_layers", "experiments:wider_hidden_layers"} <= done
    run_dir = Path(logs["run"]["workdir"])
    runs = run_dir / "wider_hidden_layers" / "sandbox"
    assert all((runs / f"run_{index}" / "final_info.json").is_file() for index in range(3))
    assert logs["total"]["calls"] > 0  # the ledger of what was paid for


def test_a_disk_that_fills_during_a_benchmark_keeps_the_finished_reviews(place, model_server, small_disk):
    """The results file on the small disk, the run store not: the append that fails names no path of its own."""
    results = small_disk / "results.jsonl"
    bench = ["review-bench", str(place.dataset), "--results", str(results), "--json"]

    def fill_at_the_second_paper(request):
        if "paper 2." in json.dumps(request.json):
            fill(small_disk)
        return GOOD_REVIEW

    model_server.responder = fill_at_the_second_paper
    one_line(scientist(place, *bench), small_disk, alone=False)
    (small_disk / "filler").unlink()
    assert json.loads(results.read_text().splitlines()[0])["id"] == "p1"
    model_server.responder = answer_review
    before = len(model_server.requests)
    rerun = scientist(place, *bench)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["reviewed"] == 2
    asked_again = [json.dumps(request.json) for request in model_server.requests[before:]]
    assert not any("paper 1." in text for text in asked_again)  # the first paper's review was kept
    calls = model_calls(model_server)
    assert scientist(place, *bench).returncode == 0 and model_calls(model_server) == calls  # and the second's


# -- a folder the user may not read ---------------------------------------------------------------------------

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def as_nobody():
    """A folder the user nobody may use, and a way to run `scientist` as nobody there; skipped where that is
    not possible (not root, no setpriv) or where nobody still reads a folder with mode 000."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as an unprivileged user")
    shared = Path(tempfile.mkdtemp(prefix="scientist-bad-input-"))
    shared.chmod(0o755)
    locked = shared / "locked"
    locked.mkdir(mode=0o000)
    locked.chmod(0o000)
    try:
        probe = subprocess.run([*NOBODY, "ls", str(locked)], capture_output=True)
        if probe.returncode == 0:
            pytest.skip("the user nobody can read a folder with mode 000 here")
        home = shared / "home"
        home.mkdir()
        os.chown(home, 65534, 65534)

        def run(*args: str, env: dict[str, str] | None = None, cwd: Path = home) -> subprocess.CompletedProcess:
            full = {key: value for key, value in os.environ.items() if not key.startswith("SCIENTIST_")}
            full.update(HOME=str(home), **(env or {}))
            return subprocess.run([*NOBODY, str(SCIENTIST), *args], capture_output=True, text=True, env=full,
                                  cwd=cwd, timeout=120)

        yield shared, locked, run
    finally:
        locked.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.parametrize("command", DATA_USERS)
def test_an_unreadable_data_folder(as_nobody, command):
    shared, locked, run = as_nobody
    out = shared / "home" / "out"
    if command == "resume":  # a run store nobody may write, so that resume gets as far as the data folder
        Store(out / "scientist.db").close()
        for path in (out, out / "scientist.db"):
            os.chown(path, 65534, 65534)
    args = {"baseline": ["baseline", "example", "--quick"], "run": ["run", "example", "--quick"],
            "resume": ["resume", "some-run"]}[command]
    line = one_line(run(*args, "--out", str(out), env={"SCIENTIST_DATA_DIR": str(locked)}), locked)
    assert "data_dir" in line and "permission denied" in line
    assert not any(p.is_dir() for p in out.glob("*"))  # no run was started


def test_paths_the_user_may_not_use(as_nobody):
    shared, locked, run = as_nobody  # shared: root's, mode 755
    schema = shared / "schema.json"
    schema.write_text('{"type": "object"}')
    schema.chmod(0o600)
    for args, named in ((["baseline", "example", "--quick", "--out", str(shared / "out")], shared / "out"),
                        (["sandbox", "exec", "--log-dir", str(shared / "logs"), "--", "true"], shared / "logs"),
                        (["llm", "prompt", "--schema", str(schema), "hello"], schema)):
        assert "permission denied" in one_line(run(*args), named)
    # the sandbox's fresh work folder goes in the current folder, here one the user may not write
    assert "permission denied" in one_line(run("sandbox", "exec", "--", "true", cwd=shared), shared / "sandbox-")
    assert sorted(path.name for path in shared.iterdir()) == ["home", "locked", "schema.json"]  # nothing made
