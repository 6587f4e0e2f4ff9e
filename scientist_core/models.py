"""Data that crosses plugin boundaries, as pydantic models (an execution's Limits and ExecutionResult are in
executor.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat


class Readiness(BaseModel):
    """Whether a plugin can work right now, and if not, what to do."""

    ready: bool
    detail: str = Field("", description="why not ready, or what it will use")


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


class Completion(BaseModel):
    """One answer from a model: the text, and what it cost."""

    text: str
    model: str
    usage: Usage = Field(default_factory=Usage)


class ModelInfo(BaseModel):
    """A model an LLM plugin offers, addressed as `provider/name`."""

    provider: str
    name: str
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"


class Paper(BaseModel):
    """A search hit; `bibtex` is written by code from real metadata, never by a model."""

    title: str
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    venue: str = ""
    abstract: str = ""
    citation_count: int | None = None
    bibtex: str = ""
    source: str = Field("", description="the searcher that found it")


class CompileResult(BaseModel):
    ok: bool
    pdf_path: str | None = None
    log_tail: str = ""
    errors: list[str] = Field(default_factory=list)


class CodeChange(BaseModel):
    """What a coder did to a run's copy of the template."""

    ok: bool
    files_edited: list[str] = Field(default_factory=list)
    diff: str = ""
    message: str = Field("", description="why it failed, or the coder's summary")
    usage: Usage = Field(default_factory=Usage)


Score4 = Field(ge=1, le=4)


class Review(BaseModel):
    """The NeurIPS review form, every range enforced."""

    model_config = ConfigDict(populate_by_name=True)

    summary: str = Field(alias="Summary")
    strengths: list[str] = Field(alias="Strengths")
    weaknesses: list[str] = Field(alias="Weaknesses")
    originality: int = Field(alias="Originality", ge=1, le=4)
    quality: int = Field(alias="Quality", ge=1, le=4)
    clarity: int = Field(alias="Clarity", ge=1, le=4)
    significance: int = Field(alias="Significance", ge=1, le=4)
    questions: list[str] = Field(alias="Questions")
    limitations: list[str] = Field(alias="Limitations")
    ethical_concerns: bool = Field(alias="Ethical Concerns")
    soundness: int = Field(alias="Soundness", ge=1, le=4)
    presentation: int = Field(alias="Presentation", ge=1, le=4)
    contribution: int = Field(alias="Contribution", ge=1, le=4)
    overall: int = Field(alias="Overall", ge=1, le=10)
    confidence: int = Field(alias="Confidence", ge=1, le=5)
    decision: Literal["Accept", "Reject"] = Field(alias="Decision")


class Idea(BaseModel):
    """A research idea in the paper's JSON shape."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(alias="Name", pattern=r"^[a-z0-9_]+$", description="lowercase_with_underscores")
    title: str = Field(alias="Title")
    experiment: str = Field(alias="Experiment", description="how to test it with this template")
    interestingness: int = Field(alias="Interestingness", ge=1, le=10)
    feasibility: int = Field(alias="Feasibility", ge=1, le=10)
    novelty: int = Field(alias="Novelty", ge=1, le=10)
    knobs: list[str] = Field(default_factory=list, alias="Knobs",
                             description="the template's knobs this idea's experiment changes")
    code_change: str = Field("", alias="Code_change",
                             description="a change to the code that the knobs cannot express; empty when the knobs "
                                         "suffice")


class DatasetResult(BaseModel):
    """One dataset's results: each metric's mean over `n` seeds and, with n >= 2, its standard error."""

    # another key (the original AI Scientist's final_info_dict) means a results shape this is not
    model_config = ConfigDict(extra="forbid")

    means: dict[str, FiniteFloat] = Field(min_length=1)
    stderrs: dict[str, FiniteFloat] = Field(default_factory=dict)
    n: int | None = Field(None, ge=1, description="the seeds (replicates) behind each mean; None in files written "
                                                  "before it was recorded")

    def seeds(self, metric: str) -> int | None:
        """How many seeds `metric`'s mean is over: `n`; in an older file without it, 1 when no positive standard
        error was recorded (the templates wrote 0.0 for one seed), else None (several, how many unknown)."""
        if self.n is not None:
            return self.n
        return None if self.stderrs.get(metric, 0.0) > 0 else 1


class FinalInfo(BaseModel):
    """The results contract of a run folder: `final_info.json`, {dataset: {means, stderrs, n}}, finite numbers
    only, at least one dataset with at least one metric."""

    datasets: dict[str, DatasetResult] = Field(min_length=1)

    @classmethod
    def from_json_obj(cls, obj: dict) -> "FinalInfo":
        return cls(datasets=obj)
