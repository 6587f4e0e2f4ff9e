from pathlib import Path

import pytest

from scientist_core.testing import SCRIPTED_SETTINGS_TOML

# settings of the scripted full runs (tests/pipeline_script.py): the fake model, the offline literature index
PIPELINE_SETTINGS = f'model = "fake/scripted"\n{SCRIPTED_SETTINGS_TOML}'


@pytest.fixture(autouse=True)
def _isolated(scientist_env):
    """Every test runs in an empty folder with its own HOME and data folder (fixture from scientist_core.testing)."""
    yield


@pytest.fixture
def configured(scientist_env):
    """The working folder holds the scripted full runs' scientist.toml."""
    Path("scientist.toml").write_text(PIPELINE_SETTINGS)
    return scientist_env
