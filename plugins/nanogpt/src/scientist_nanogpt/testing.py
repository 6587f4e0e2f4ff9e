"""For tests and CI only: a local copy of tiny Shakespeare stands in for a finished download.

The repository holds no copy of the corpus (its loader downloads it); tests find one in `shared/data/` beside
the repository (`../shared/data/tinyshakespeare.txt`), or at the path in SCIENTIST_NANOGPT_SHAKESPEARE, and
put it into a data folder the way a download would, checked against the published hash.
"""

from __future__ import annotations

import os
from pathlib import Path

from scientist_nanogpt import data

COPY_ENV = "SCIENTIST_NANOGPT_SHAKESPEARE"
COPY_NAME = "tinyshakespeare.txt"


def shakespeare_copy() -> Path | None:
    """The test copy: $SCIENTIST_NANOGPT_SHAKESPEARE, else shared/data/ in a folder above this package."""
    if os.environ.get(COPY_ENV):
        return Path(os.environ[COPY_ENV])
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "data" / COPY_NAME
        if candidate.is_file():
            return candidate
    return None


def seed_shakespeare(data_dir: Path) -> Path:
    """Put the test copy into `data_dir` as a finished download and prepare it; skips the test without one."""
    import pytest

    copy = shakespeare_copy()
    if copy is None or not copy.is_file():
        pytest.skip(f"no copy of tiny Shakespeare for the tests: put {COPY_NAME} in ../shared/data/ beside the "
                    f"repository or name it in {COPY_ENV}")
    data.install_copy("shakespeare_char", copy, data_dir)
    return data.prepare("shakespeare_char", data_dir)
