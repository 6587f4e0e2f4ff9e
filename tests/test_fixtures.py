"""The fixtures shipped to plugin authors behave as documented."""

import pytest
from pydantic import BaseModel

from scientist_core.models import Message


class Answer(BaseModel):
    value: int


def test_fake_llm_is_a_registered_plugin(fake_llm, plugin_host):
    assert "fake" in plugin_host.names("llm")
    provider = plugin_host.create("llm", "fake")
    assert [m.id for m in provider.models()] == ["fake/scripted"]

    fake_llm.enqueue("plain text", {"value": 3}, Answer(value=4), TimeoutError("slow"))
    ask = [Message(role="user", content="two words")]
    assert provider.complete("scripted", ask).text == "plain text"
    assert Answer.model_validate_json(provider.complete("scripted", ask, schema=Answer).text).value == 3
    completion = provider.complete("scripted", ask)
    assert completion.text == '{"value":4}' and completion.usage.tokens_in == 2
    with pytest.raises(TimeoutError):
        provider.complete("scripted", ask)
    with pytest.raises(AssertionError, match="more often than replies were enqueued"):
        provider.complete("scripted", ask)
    assert len(fake_llm.history) == 5 and fake_llm.history[1].schema is Answer


def test_each_test_gets_its_own_script(fake_llm):
    assert fake_llm.history == [] and not fake_llm.replies


def test_scientist_env_isolates(scientist_env, monkeypatch):
    import os
    from pathlib import Path

    assert Path.cwd() == scientist_env and list(scientist_env.iterdir()) == []
    assert os.environ["SCIENTIST_DATA_DIR"].startswith(str(scientist_env.parent))
    assert Path.home() != Path("/root")
