"""The built-in SEARCH/REPLACE coder applies the model's edits exactly, or reports why not and changes nothing."""

from scientist_core.builtins.search_replace_coder import CodeEdits
from scientist_core.chat import Chat
from scientist_core.coder import CodeRequest
from scientist_core.models import Idea

CODE = "def loss(x):\n    return x ** 2\n\n\ndef lr():\n    return 0.1\n"


def coder_and_chat(plugin_host, fake_llm):
    coder = plugin_host.create("coder", "search_replace")
    chat = Chat(plugin_host.create("llm", "fake"), "scripted")
    return coder, chat


def ask(instruction, **context):
    return CodeRequest(instruction=instruction, files=["experiment.py"], **context)


def edits(*triples, summary="change"):
    return CodeEdits(summary=summary, edits=[{"file": f, "search": s, "replace": r} for f, s, r in triples])


def test_exact_edit_is_applied_with_a_diff(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    fake_llm.enqueue(edits(("experiment.py", "    return 0.1\n", "    return 0.05\n"), summary="halve lr"))
    change = coder.apply(tmp_path, ask("halve the learning rate"), chat)
    assert change.ok and change.files_edited == ["experiment.py"] and change.message == "halve lr"
    assert "-    return 0.1" in change.diff and "+    return 0.05" in change.diff
    assert (tmp_path / "experiment.py").read_text() == CODE.replace("0.1", "0.05")
    assert "halve the learning rate" in fake_llm.history[0].messages[-1].content
    assert "return x ** 2" in fake_llm.history[0].messages[-1].content  # the model saw the file


def test_trailing_whitespace_is_forgiven(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    fake_llm.enqueue(edits(("experiment.py", "def lr():   \n    return 0.1", "def lr():\n    return 1.0")))
    assert coder.apply(tmp_path, ask("x"), chat).ok
    assert "return 1.0\n" in (tmp_path / "experiment.py").read_text()


def test_failed_edit_changes_nothing(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    fake_llm.enqueue(edits(("experiment.py", "    return 0.1\n", "    return 0.2\n"),
                           ("experiment.py", "not in the file", "x")))
    change = coder.apply(tmp_path, ask("x"), chat)
    assert not change.ok and "edit 2" in change.message and "not found" in change.message
    assert (tmp_path / "experiment.py").read_text() == CODE


def test_ambiguous_other_file_and_empty_edits_fail(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    fake_llm.enqueue(edits(("experiment.py", "    return", "    yield")),
                     edits(("plot.py", "a", "b")),
                     edits(),
                     edits(("experiment.py", "return 0.1", "return 0.1")))
    messages = [coder.apply(tmp_path, ask("x"), chat).message for _ in range(4)]
    assert "occurs 2 times" in messages[0]
    assert "plot.py is not one of the files" in messages[1]
    assert messages[2].startswith("no edit made") and messages[3].startswith("no edit made")
    assert (tmp_path / "experiment.py").read_text() == CODE


def test_unusable_model_answer_is_a_failed_change(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    fake_llm.enqueue("not json", "still not json", "{}")
    change = coder.apply(tmp_path, ask("x"), chat)
    assert not change.ok and "no usable edit" in change.message


def test_the_model_sees_the_run_context_and_may_read_but_not_edit_the_notes(plugin_host, fake_llm, tmp_path):
    (tmp_path / "experiment.py").write_text(CODE)
    (tmp_path / "notes.txt").write_text("## run_1: wider\nresults: loss 0.5\n")
    coder, chat = coder_and_chat(plugin_host, fake_llm)
    idea = Idea(Name="warm_restarts", Title="Warm restarts for tiny MLPs", Experiment="Restart the lr schedule.",
                Interestingness=5, Feasibility=8, Novelty=4)
    fake_llm.enqueue(edits(("notes.txt", "wider", "narrower")))
    change = coder.apply(tmp_path, ask("restart the schedule", read_only=["notes.txt"], idea=idea, run="run_2",
                                       budget="run 2 of at most 3, attempt 2 of 4",
                                       previous_results="run_0 (baseline): loss 0.6",
                                       failure="the experiment exited with 1; stderr ends with:\nNameError: lr"), chat)
    prompt = fake_llm.history[0].messages[-1].content
    for expected in ("Warm restarts for tiny MLPs", "run 2 of at most 3, attempt 2 of 4", "run_0 (baseline): loss 0.6",
                     "NameError: lr", "results: loss 0.5", "restart the schedule"):
        assert expected in prompt, expected
    assert not change.ok and "notes.txt is not one of the files" in change.message
    assert (tmp_path / "notes.txt").read_text() == "## run_1: wider\nresults: loss 0.5\n"
