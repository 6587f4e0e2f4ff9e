"""The labelled papers of a benchmark: a JSONL file (one paper per line) or a folder of per-paper JSON files.

    {"id": "iclr22-0042", "pdf": "pdfs/0042.pdf", "decision": "Reject", "human_scores": [3, 5, 5, 6]}
    {"id": "toy-1", "text": "Title ... Abstract ...", "decision": "Accept"}

The format is in docs/reviewer.md; a malformed record is one BenchError naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from scientist_core import ScientistError, first_problem


class BenchError(ScientistError):
    """A benchmark dataset or results file cannot be used."""


# -- the dataset ------------------------------------------------------------------------------------------

class BenchPaper(BaseModel):
    """One labelled paper: its text (or a PDF to read it from), the human decision and scores."""

    id: str = Field(min_length=1)
    pdf: Path | None = Field(None, description="the paper's PDF; relative paths are relative to the dataset file")
    text: str | None = Field(None, description="the paper's text, instead of a PDF")
    decision: Literal["Accept", "Reject"]
    human_scores: list[float] = Field(default_factory=list, description="the human reviewers' Overall scores")
    title: str = ""

    @field_validator("decision", mode="before")
    @classmethod
    def _normalise_decision(cls, value: Any) -> Any:
        # OpenReview writes "Accept (Poster)", "Accept: oral", "Reject" ...
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered.startswith("accept"):
                return "Accept"
            if lowered.startswith("reject"):
                return "Reject"
        return value

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _one_source(self) -> "BenchPaper":
        if (self.pdf is None) == (self.text is None):
            raise ValueError('give exactly one of "pdf" and "text"')
        return self

    @property
    def accepted(self) -> bool:
        return self.decision == "Accept"

    @property
    def human_mean(self) -> float | None:
        return sum(self.human_scores) / len(self.human_scores) if self.human_scores else None

    def read_text(self) -> str:
        if self.text is not None:
            return self.text
        from scientist_reviewer.pdf_text import paper_text

        assert self.pdf is not None
        return paper_text(self.pdf)


def _paper(obj: Any, base: Path, where: str, default_id: str | None = None) -> BenchPaper:
    if not isinstance(obj, dict):
        raise BenchError(f"{where}: expected a JSON object, found {type(obj).__name__}",
                         "see the dataset format in docs/reviewer.md")
    if default_id is not None:
        obj = {"id": default_id, **obj}
    try:
        paper = BenchPaper.model_validate(obj)
    except ValidationError as exc:
        field, what = first_problem(exc)
        raise BenchError(f"{where}: {field or '(record)'}: {what}", "see the dataset format in docs/reviewer.md") \
            from None
    if paper.pdf is not None and not paper.pdf.is_absolute():
        paper = paper.model_copy(update={"pdf": (base / paper.pdf)})
    return paper


def load_dataset(path: Path) -> list[BenchPaper]:
    """The papers of a JSONL file, or of a folder whose *.json files each hold one paper (id: file stem;
    without "pdf" or "text", the paper is the PDF or .txt file of the same stem beside it)."""
    path = Path(path)
    papers: list[BenchPaper] = []
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path}:{number} is not JSON ({exc.msg})",
                                 "write one JSON object per line (see docs/reviewer.md)") from None
            papers.append(_paper(obj, path.parent, f"{path}:{number}"))
    elif path.is_dir():
        for record in sorted(path.glob("*.json")):
            try:
                obj = json.loads(record.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BenchError(f"{record} is not JSON ({exc.msg})", "fix or remove it") from None
            if isinstance(obj, dict) and "pdf" not in obj and "text" not in obj:
                for suffix in (".pdf", ".txt"):
                    if record.with_suffix(suffix).is_file():
                        obj = {**obj, "pdf": record.with_suffix(suffix).name}
                        break
            papers.append(_paper(obj, path, str(record), default_id=record.stem))
    else:
        raise BenchError(f"there is no dataset at {path}", "give a .jsonl file or a folder of .json records")
    if not papers:
        raise BenchError(f"the dataset {path} holds no paper", "see the dataset format in docs/reviewer.md")
    seen: set[str] = set()
    for paper in papers:
        if paper.id in seen:
            raise BenchError(f"the dataset {path} uses the id {paper.id!r} twice", "give every paper its own id")
        seen.add(paper.id)
    return papers
