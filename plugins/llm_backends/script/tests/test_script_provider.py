"""The `script` provider answers from a reply file written by scientist_core.testing's Script, through the real
plugin host and Chat; a missing reply is one line naming the reply kind and the file."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from scientist_core import LLMError, load_settings, open_chat
from scientist_core.testing import Script


class ExperimentPlan(BaseModel):  # a request names its reply kind by its schema's class name
    runs: list[dict]


def test_replies_come_from_the_file_in_order_per_kind(plugin_host, tmp_path):
    path = Script().plan({"hidden_size": 64}).plan({"steps": 10}).enqueue("plain words").save(tmp_path / "r.jsonl")
    chat = open_chat(load_settings(), stage="test", model=f"script/{path}", host=plugin_host)
    assert chat.ask_structured("plan", ExperimentPlan).runs[0]["knob_changes"] == {
        "hidden_size": 64}
    assert chat.ask("say") == "plain words"
    assert chat.ask_structured("plan", ExperimentPlan).runs[0]["knob_changes"] == {
        "steps": 10}
    with pytest.raises(LLMError) as caught:
        chat.ask_structured("plan", ExperimentPlan)
    line = caught.value.one_line()
    assert "ExperimentPlan" in line and str(path) in line and '"for": "experiment_plan"' in line
    assert "\n" not in line


def test_a_missing_file_is_not_ready(plugin_host, tmp_path):
    with pytest.raises(LLMError, match="does not exist"):
        open_chat(load_settings(), stage="test", model=f"script/{tmp_path}/none.jsonl", host=plugin_host)
