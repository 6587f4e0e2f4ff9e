"""For tests and CI only: the head of tiny Shakespeare, kept in this package, stands in for a finished download.

The repository holds no full copy of the corpus (its loader downloads it, 1,115,394 bytes), only its first 3,609
lines in `testdata/` (see testdata/README.md): enough text for quick mode and the pipeline's runs. The tests
describe it by a Source with the canonical address and the excerpt's own size and sha256, and put it into a data
folder through the loader itself: `install_copy` checks it, `prepare` checks it again and tokenizes it. A later
`prepare` of the canonical source, as a `scientist` command started by a test does, finds those token files
ready (the address is the same), so the test needs nothing outside the repository and no network.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scientist_nanogpt import data

EXCERPT = Path(__file__).with_name("testdata") / "tinyshakespeare_head.txt"
EXCERPT_SIZE = 92_005
EXCERPT_SHA256 = "df0b4e5c349f0b49190d4c3f4288afe5d2a875db3728eab71630cf3aac41e50c"


def excerpt_source() -> data.Source:
    """shakespeare_char as the tests download it: the published address, split and file name, the excerpt's
    size and hash."""
    return dataclasses.replace(data.SOURCES["shakespeare_char"], size=EXCERPT_SIZE, sha256=EXCERPT_SHA256)


def seed_shakespeare(data_dir: Path) -> Path:
    """Put the excerpt into `data_dir` as a finished download of shakespeare_char and prepare it; its folder."""
    source = excerpt_source()
    data.install_copy("shakespeare_char", EXCERPT, data_dir, source)
    return data.prepare("shakespeare_char", data_dir, source)
