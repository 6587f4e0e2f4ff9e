"""The live status line: an experiment's latest output line, followed while it runs."""

from __future__ import annotations

import subprocess
import sys

from scientist_core.pipeline.execution import _following, last_line

WRITER = """
import sys, time
for i in range(1, 6):
    print(f"step {i}/5", flush=True)
    time.sleep(0.3)
sys.stdout.write("half a line")
sys.stdout.flush()
time.sleep(0.5)
"""


def test_last_line_skips_a_half_written_line_and_blank_ones(tmp_path):
    log = tmp_path / "stdout.log"
    assert last_line(log) == ""                                    # not created yet
    log.write_text("first\n\nsecond  \n\n")
    assert last_line(log) == "second"
    log.write_text("first\nsecond\nthird, still being writ")
    assert last_line(log) == "second"
    log.write_text("x" * 10_000 + "\n" + "y" * 300 + "\n")
    assert last_line(log) == "y" * 200                             # long lines are cut for the status line


def test_following_a_real_process_reports_new_lines_in_order_then_clears(tmp_path):
    log = tmp_path / "stdout.log"
    seen: list[str] = []
    with log.open("w") as out, _following(log, seen.append, every_s=0.1):
        subprocess.run([sys.executable, "-c", WRITER], stdout=out, check=True, timeout=30)
    assert seen[-1] == ""
    steps = [line for line in seen if line]
    assert steps == sorted(set(steps), key=steps.index)            # each line once, never repeated
    assert steps[-1] == "step 5/5" and "half a line" not in seen
    assert len(steps) >= 3                                         # it followed the run, not only its end


def test_without_a_listener_nothing_is_followed(tmp_path):
    follower = _following(tmp_path / "stdout.log", None)
    with follower:
        pass
    assert not follower.thread.is_alive() and follower.thread.ident is None


def test_model_and_run_text_reach_the_console_as_written(capsys):
    """An idea named `x` printed "novelty❌ started": rich read `:x:` as an emoji code. Markup, emoji codes and
    control sequences in model or run text are shown as written, so they can neither hide nor forge a line."""
    from scientist_core.cli import _ConsoleProgress

    hostile = "novelty:x: [bold red]ACCEPTED[/] \x1b[2K\x1b[1Aerased \x07"
    progress = _ConsoleProgress()
    progress.report(hostile)
    progress.close()
    printed = capsys.readouterr().err
    assert "novelty:x: [bold red]ACCEPTED[/] \\x1b[2K\\x1b[1Aerased \\x07" in printed
    assert "\x1b" not in printed and "❌" not in printed


def test_a_line_a_progress_bar_rewrote_shows_what_a_terminal_would(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("epoch 1\nstep 10%\rstep 50%\rstep 90%\r\n")
    assert last_line(log) == "step 90%"


def test_the_isolation_line_says_what_a_run_could_reach():
    from scientist_core.pipeline.execution import contained, uncontained

    held = {"processes": True, "filesystem": True, "network": True, "unprivileged": True}
    assert uncontained([held]) == []
    assert uncontained([held, {**held, "network": False, "filesystem": False}]) == \
        ["files outside the run folder", "the network"]
    assert uncontained([{**held, "network": False}], network_allowed=True) == []  # a template that asked for it
    assert "no network" in contained() and "no network" not in contained(network_allowed=True)
