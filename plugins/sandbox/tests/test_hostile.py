"""Hostile programs: each is contained within its limit, the result names the limit, the host is unharmed.

The `hostile` fixture runs a program as experiment.py in a fresh run folder with a unique marker in its
argv, and afterwards checks that no process carrying the marker (or the run's SCIENTIST_SANDBOX_ID)
survived, that no file appeared outside the run folders, and that the run's cgroups are gone.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from scientist_sandbox import runner as sandbox

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test

MB = 1024 * 1024

DAEMONIZE = textwrap.dedent(
    """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for fd in (0, 1, 2):
                os.close(fd)
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
        os._exit(0)
    os.wait()
    time.sleep(0.3)
"""
)


@pytest.mark.parametrize("cgroups", ["cgroups", "no-cgroups"])
def test_fork_bomb_is_stopped_at_the_process_cap(hostile, request, cgroups):
    request.getfixturevalue("no_cgroups" if cgroups == "no-cgroups" else "writable_cgroups")
    result, _ = hostile.run(
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """,
        timeout_s=20,
        procs=40,
    )
    assert result.limit_hit == "procs"
    assert not result.ok
    assert result.wall_s < 10
    assert result.isolation["pids_cgroup"] is (cgroups == "cgroups")


def test_thread_bomb_counts_threads_too(hostile):
    result, _ = hostile.run(
        """
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        """,
        timeout_s=20,
        procs=30,
    )
    assert result.limit_hit == "procs"
    assert result.wall_s < 10


@pytest.mark.parametrize("cgroups", ["cgroups", "no-cgroups"])
def test_memory_bomb_hits_the_memory_cap(hostile, request, cgroups):
    request.getfixturevalue("no_cgroups" if cgroups == "no-cgroups" else "writable_cgroups")
    result, _ = hostile.run(
        """
        hoard = []
        while True:
            hoard.append(bytearray(20 * 2**20))
        """,
        timeout_s=20,
        memory_mb=200,
    )
    assert result.limit_hit == "memory"
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr_tail
    assert 100 < result.peak_memory_mb < 400


@pytest.mark.parametrize("cgroups", ["cgroups", "no-cgroups"])
def test_memory_spread_over_processes_hits_the_cap(hostile, request, cgroups):
    # Each child stays under RLIMIT_DATA; only the whole run is over the cap.
    request.getfixturevalue("no_cgroups" if cgroups == "no-cgroups" else "writable_cgroups")
    result, _ = hostile.run(
        """
        import os, time
        for _ in range(5):
            if os.fork() == 0:
                block = bytearray(100 * 2**20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(600)
        time.sleep(600)
        """,
        timeout_s=20,
        memory_mb=256,
    )
    assert result.limit_hit == "memory"
    assert result.wall_s < 10
    assert result.peak_memory_mb >= 200


def test_disk_filler_is_stopped_at_the_quota(hostile):
    result, _ = hostile.run(
        """
        chunk = b"x" * 2**20
        for i in range(100000):
            with open(f"fill-{i}", "wb") as handle:
                handle.write(chunk)
        """,
        timeout_s=20,
        disk_mb=30,
    )
    workdir = Path(result.workdir)
    assert result.limit_hit == "disk"
    assert result.disk_used_mb >= 30
    written = sum(path.stat().st_size for path in workdir.glob("fill-*"))
    assert 29 * MB <= written < 230 * MB  # stopped within about one poll of crossing the quota


def test_one_huge_file_cannot_outgrow_the_quota(hostile):
    result, _ = hostile.run(
        """
        with open("huge", "wb") as handle:
            while True:
                handle.write(b"x" * 2**20)
        """,
        timeout_s=20,
        disk_mb=20,
    )
    assert result.limit_hit == "disk"
    assert (Path(result.workdir) / "huge").stat().st_size <= 20 * MB


def test_filling_the_private_tmp_counts_against_the_quota(hostile, full_isolation):
    result, marker = hostile.run(
        """
        import sys
        chunk = b"x" * 2**20
        for i in range(100000):
            with open(f"/tmp/{sys.argv[1]}-{i}", "wb") as handle:
                handle.write(chunk)
        """,
        timeout_s=20,
        disk_mb=20,
    )
    assert result.limit_hit == "disk"
    assert not list(Path("/tmp").glob(f"{marker}*"))  # the private /tmp never reached the host


def test_infinite_loop_dies_at_the_timeout(hostile):
    result, _ = hostile.run("while True:\n    pass\n", timeout_s=1)
    assert result.limit_hit == "timeout"
    assert result.signal_name == "SIGKILL" and result.exit_code is None
    assert 1.0 <= result.wall_s < 2.5
    assert result.cpu_s > 0.1  # the loop was measured (it gets less than the full second on a busy machine)


def test_infinite_loop_dies_at_the_cpu_time_cap(hostile):
    result, _ = hostile.run("while True:\n    pass\n", timeout_s=20, cpu_time_s=1)
    assert result.limit_hit == "cpu_time"
    assert 0.9 <= result.cpu_s < 4
    assert result.wall_s < 8


def test_cpu_time_is_summed_over_processes(hostile):
    # Three busy processes: none reaches its own RLIMIT_CPU of 2 s before the run has used 2 s in total.
    result, _ = hostile.run(
        """
        import os
        for _ in range(2):
            if os.fork() == 0:
                break
        while True:
            pass
        """,
        timeout_s=20,
        cpu_time_s=2,
    )
    assert result.limit_hit == "cpu_time"
    assert result.cpu_s >= 2
    assert result.wall_s < 6


def test_daemon_cannot_outlive_the_timeout(hostile):
    result, marker = hostile.run(DAEMONIZE + "while True:\n    pass\n", timeout_s=1.5)
    assert result.limit_hit == "timeout"
    # the fixture checks that the daemon carrying the marker is gone


def test_daemon_left_behind_by_a_finished_command_is_killed(hostile):
    result, _ = hostile.run(DAEMONIZE + "print('main done')\n", timeout_s=20)
    assert result.ok and result.exit_code == 0
    assert "main done" in result.stdout_tail


def test_daemon_is_killed_even_without_namespaces(hostile, monkeypatch):
    monkeypatch.setattr(sandbox, "_FORCE_NO_NAMESPACES", True)
    result, _ = hostile.run(DAEMONIZE + "while True:\n    pass\n", timeout_s=1.5, allow_unisolated_code=True)
    assert result.limit_hit == "timeout"
    assert result.isolation["processes"] is False
    assert "namespaces disabled" in result.notes


CONNECT = """
    import socket, sys
    try:
        with socket.create_connection(("127.0.0.1", {port}), timeout=2) as conn:
            conn.sendall(sys.argv[1].encode())
        print("connected")
    except OSError as exc:
        print("blocked", exc)
        sys.exit(3)
"""


def test_network_is_cut_by_default(hostile, loopback_server, full_isolation):
    port, received = loopback_server
    result, marker = hostile.run(CONNECT.replace("{port}", str(port)), timeout_s=20)
    assert result.exit_code == 3 and "blocked" in result.stdout_tail
    assert result.isolation["network"] is True
    assert marker.encode() not in received


def test_network_true_keeps_the_host_network(hostile, loopback_server):
    port, received = loopback_server
    result, marker = hostile.run(CONNECT.replace("{port}", str(port)), timeout_s=20, network=True)
    assert result.ok and "connected" in result.stdout_tail
    assert result.isolation["network"] is False
    assert marker.encode() in received


def test_secrets_in_the_callers_environment_are_absent(hostile, monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "SCIENTIST_SECRET"):
        monkeypatch.setenv(name, "sk-do-not-leak")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    result, _ = hostile.run(
        """
        import json, os
        print(json.dumps(dict(os.environ)))
        """,
        timeout_s=20,
        env={"ALLOWED_BY_CALLER": "yes"},
    )
    assert result.ok
    seen = json.loads(result.stdout_tail)
    assert "sk-do-not-leak" not in result.stdout_tail
    assert seen["OMP_NUM_THREADS"] == "3"
    assert seen["ALLOWED_BY_CALLER"] == "yes"
    assert seen[sandbox.ENV_MARKER] == result.sandbox_id
    scratch = Path(result.workdir) / sandbox.SCRATCH_DIR_NAME
    assert seen["HOME"] == str(scratch / "home") and seen["TMPDIR"] == str(scratch)
    assert set(seen) <= set(sandbox.PASSTHROUGH_ENV) | {
        "PATH", "HOME", "TMPDIR", "TMP", "TEMP", "USER", "LOGNAME", "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE", "ALLOWED_BY_CALLER", sandbox.ENV_MARKER,
    } | {name for name in seen if name.startswith("LC_")}


def test_writes_outside_the_run_folder_fail(hostile, tmp_path, full_isolation):
    target = tmp_path / "outside.txt"
    home = Path(os.environ["HOME"])  # the caller's home (a folder of tmp_path under the suite's fixtures)
    home.mkdir(exist_ok=True)
    hostile.before.add(home.name)
    result, marker = hostile.run(
        f"""
        import os, sys
        marker = sys.argv[1]
        targets = [{str(target)!r}, {str(home / "planted")!r}, "/etc/" + marker, "/root/" + marker,
                   {str(Path(sys.executable).parent)!r} + "/" + marker, "/tmp/" + marker, "/dev/shm/" + marker]
        for path in targets:
            try:
                with open(path, "w") as handle:
                    handle.write("pwned")
                print("WROTE", path)
            except OSError as exc:
                print("FAILED", path, exc.strerror)
        with open("inside.txt", "w") as handle:
            handle.write("fine")
        """,
        timeout_s=20,
    )
    assert result.ok, result.stderr_tail
    assert f"FAILED {target}" in result.stdout_tail
    assert f"FAILED /etc/{marker}" in result.stdout_tail
    assert not target.exists()
    assert not (home / "planted").exists()
    for folder in ("/etc", "/root", "/tmp", "/dev/shm", str(Path(sys.executable).parent)):
        try:
            assert not (Path(folder) / marker).exists()
        except PermissionError:  # not root: we cannot look into /root, and neither could the run's uid write there
            assert os.geteuid() != 0
    assert (Path(result.workdir) / "inside.txt").read_text() == "fine"
    assert result.isolation["filesystem"] is True


def test_system_only_shows_the_system_the_run_folder_and_what_is_read_only(tmp_path, full_isolation):
    """What the LaTeX compiler runs under: /etc (but one file and one folder lent read-only), /var, /srv and every
    other folder at the top are empty; the system's programs work and the run folder is writable."""
    workdir, lent, config = tmp_path / "run", tmp_path / "lent", tmp_path / "conf" / "tool.rc"
    for folder in (workdir, lent, config.parent):
        folder.mkdir()
        folder.chmod(0o755)  # reachable for the run's own uid when the suite runs as root
    (lent / "tree.txt").write_text("lent folder")
    config.write_text("lent file")
    (tmp_path / "conf" / "secret.txt").write_text("not lent")
    for path in (lent / "tree.txt", config, tmp_path / "conf" / "secret.txt"):
        path.chmod(0o644)
    code = textwrap.dedent(f"""
        import json, os, subprocess

        def read(path):
            try:
                return open(path).read()
            except OSError as exc:
                return exc.strerror

        def writable(path):
            try:
                open(path, "w").close()
                return True
            except OSError:
                return False

        print(json.dumps({{"etc": os.listdir("/etc"), "var": os.listdir("/var"), "passwd": read("/etc/passwd"),
                          "lent": read({str(lent / "tree.txt")!r}), "config": read({str(config)!r}),
                          "secret": read({str(tmp_path / "conf" / "secret.txt")!r}),
                          "etc_writable": writable("/etc/planted"), "here_writable": writable("inside.txt"),
                          "ls": subprocess.run(["ls", "/usr"], capture_output=True).returncode}}))
        """)
    limits = sandbox.Limits(timeout_s=30, read_only=[str(lent), str(config)])
    shown = sandbox.run(["python", "-c", "print(open('/etc/passwd').read()[:4])"], workdir, limits)
    assert shown.stdout_tail.strip(), "the default view shows /etc"
    result = sandbox.run(["python", "-c", code], workdir, limits, system_only=True)
    seen = json.loads(result.stdout_tail)
    assert seen["passwd"] == "No such file or directory" and seen["var"] == []
    assert seen["etc"] == []
    assert (seen["lent"], seen["config"]) == ("lent folder", "lent file")
    assert seen["secret"] == "No such file or directory"
    assert seen["here_writable"] and not seen["etc_writable"] and seen["ls"] == 0
    assert not Path("/etc/planted").exists()


def test_run_has_no_privileges_inside(hostile, full_isolation):
    result, _ = hostile.run(
        """
        import ctypes, os
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        libc = ctypes.CDLL(None, use_errno=True)
        remount = libc.mount(None, b"/", None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND, i.e. read-write
        print(os.getuid(), int(status["CapEff"], 16), status["NoNewPrivs"].strip(), remount, len(os.listdir("/proc")))
        """,
        timeout_s=20,
    )
    uid, caps, no_new_privs, remount, _ = result.stdout_tail.split()
    assert int(uid) != 0 and int(caps) == 0 and no_new_privs == "1" and remount == "-1"
    assert result.isolation["unprivileged"] is True


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_gigabyte_of_output_is_capped(hostile, stream):
    result, _ = hostile.run(
        f"""
        import sys
        chunk = b"y" * 2**20
        for _ in range(1024):
            sys.{stream}.buffer.write(chunk)
        """,
        timeout_s=30,
        stdout_mb=1,
    )
    assert result.limit_hit == "stdout"
    assert os.path.getsize(getattr(result, f"{stream}_path")) == 1 * MB
    assert result.wall_s < 10
    assert getattr(result, f"{stream}_tail").endswith("y" * 100)


def test_rewriting_its_own_config_does_not_extend_the_timeout(hostile):
    workdir = hostile.workdir()
    (workdir / "limits.json").write_text(json.dumps({"timeout_s": 1}))
    (workdir / "scientist.toml").write_text("[sandbox]\ntimeout_s = 1\n")
    result, _ = hostile.run(
        """
        import json, time
        with open("limits.json", "w") as handle:
            json.dump({"timeout_s": 3600}, handle)
        with open("scientist.toml", "w") as handle:
            handle.write("[sandbox]\\ntimeout_s = 3600\\n")
        print("extended", flush=True)
        time.sleep(30)
        """,
        workdir=workdir,
        timeout_s=1,
    )
    assert "extended" in result.stdout_tail  # it did rewrite them...
    assert json.loads((workdir / "limits.json").read_text())["timeout_s"] == 3600
    assert result.limit_hit == "timeout"  # ...and still died at the original timeout
    assert result.wall_s < 2.5
