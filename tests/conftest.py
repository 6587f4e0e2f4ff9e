import pytest


@pytest.fixture(autouse=True)
def _isolated(scientist_env):
    """Every test runs in an empty folder with its own HOME and data folder (fixture from scientist_core.testing)."""
    yield
