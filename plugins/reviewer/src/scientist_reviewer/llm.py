"""The `llm` reviewer: a language model fills the NeurIPS review form, as in the AI Scientist paper.

For one paper it runs an ensemble of reviewers at once (threads). Each reviewer sees the review guide,
worked examples and the paper's text, writes a review, then reconsiders it for up to `reflections - 1`
rounds, stopping when it says the review needs no change. With two or more reviewers an area chair writes
the meta-review's text from their reviews, while its scores are the rounded means of theirs. The final
Decision is not the model's: Accept when Overall >= `threshold` (the paper's post-calibration).

Settings: `[reviewers.llm]` in scientist.toml, or the flags of `scientist review`.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from scientist_core import Config, Message, Review, ReviewResult, Reviewer, ScientistError, Usage

if TYPE_CHECKING:
    from scientist_core import Chat

EXAMPLES_DIR = Path(__file__).resolve().parent / "review_examples"

# Scores averaged into the meta-review, with their ranges (the Review model enforces the same).
SCORE_FIELDS: dict[str, tuple[int, int]] = {
    "originality": (1, 4), "quality": (1, 4), "clarity": (1, 4), "significance": (1, 4),
    "soundness": (1, 4), "presentation": (1, 4), "contribution": (1, 4),
    "overall": (1, 10), "confidence": (1, 5),
}

SYSTEM_PROMPT = """\
You review submissions to a leading machine-learning conference, NeurIPS. You read closely and judge a paper \
by the evidence it gives: do the claims follow from the experiments or proofs; are the baselines strong and \
the comparisons fair; would the results survive more seeds, other data or a larger scale; could someone \
reproduce the work from the text? Be concrete: name the section, table or number you mean. Give no credit \
for what a paper promises but does not show, and none for length or confident wording. Most submissions are \
rejected; score a paper at 6 (weak accept) or above only when you would argue for it in the discussion.

Only the paper's text is available to you, extracted from its PDF: figures are not visible, so judge them \
by their captions and by what the text says about them.

The review form:
- Summary: the paper's question, method and main results in your own words, without judgement.
- Strengths and Weaknesses: lists of specific points; each weakness says what is wrong and why it matters.
- Originality, Quality, Clarity, Significance: 1 low, 2 medium, 3 high, 4 very high.
- Questions: what you would ask the authors, above all answers that could change your assessment.
- Limitations: are the work's limitations and possible negative impact stated honestly; what is missing.
- Ethical Concerns: true only if the work needs an ethics review.
- Soundness, Presentation, Contribution: 1 poor, 2 fair, 3 good, 4 excellent.
- Overall, 1 to 10: 10 award quality; 9 very strong accept; 8 strong accept; 7 accept; 6 weak accept; \
5 borderline accept; 4 borderline reject; 3 reject; 2 strong reject; 1 very strong reject (flawed, trivial \
or already known).
- Confidence, 1 to 5: 5 certain (you know the area and checked the details); 4 confident; 3 fairly \
confident; 2 willing to defend it but unsure; 1 an educated guess.
- Decision: Accept or Reject."""

EXAMPLE_INTRO = """\
Below is a worked example: a paper and a review of it written to the standard expected. It shows the \
depth and specificity wanted; it is about another paper, so take nothing from its content."""

PAPER_PROMPT = """\
{examples}Review the following paper. Its text was extracted from the PDF:

<paper>
{paper}
</paper>"""

# what the paper's check against the experiment records (`scientist check`) found, after the paper
CHECK_PROMPT = "\n\nAn automatic check of this paper against its experiment records found these problems:\n"

REFLECTION_PROMPT = """\
Reflection {round} of {rounds}. Reread the paper and your latest review, and check it: is every weakness \
specific and true of this paper? Did you miss a flaw in the experiments, a missing baseline, an unsupported \
claim? Do the scores agree with each other and with your text (Overall 6 or more means you would argue for \
acceptance)? Write your critique of the latest review in Critique, then the complete improved review in \
Review. If it needed no change, repeat it unchanged and set Done to true; otherwise set Done to false."""

AREA_CHAIR_SYSTEM = """\
You are an area chair at NeurIPS. From the reviews of one submission you write its meta-review: what the \
paper does, how the reviewers assessed it, and the points that decide the case. Where reviewers disagree, \
weigh the evidence each cites rather than counting votes, and say which side it supports."""

AREA_CHAIR_PROMPT = """\
Here are the {count} reviews of one submission:

{reviews}

Write the meta-review: a summary of the paper and of the reviewers' assessment; the strengths and the \
weaknesses that matter most; the questions that remain open; the limitations. Give no scores: they are \
computed from the reviews."""


class ReviewRevision(BaseModel):
    """One reflection round's answer: a critique of the latest review, the revised review, and whether done."""

    model_config = ConfigDict(populate_by_name=True)

    critique: str = Field(alias="Critique", description="what the latest review got wrong or missed")
    review: Review = Field(alias="Review", description="the complete revised review")
    done: bool = Field(alias="Done", description="true when the latest review needed no change")


class MetaReviewText(BaseModel):
    """The area chair's text; the scores come from the ensemble's."""

    model_config = ConfigDict(populate_by_name=True)

    summary: str = Field(alias="Summary")
    strengths: list[str] = Field(alias="Strengths")
    weaknesses: list[str] = Field(alias="Weaknesses")
    questions: list[str] = Field(alias="Questions")
    limitations: list[str] = Field(alias="Limitations")


@dataclass(frozen=True)
class Example:
    """A shipped (or user-supplied) paper text and its review, used as a worked example."""

    name: str
    paper: str
    review: Review


def load_examples(folder: Path = EXAMPLES_DIR) -> list[Example]:
    """The examples in `folder`: each NAME.txt with its NAME.json review, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScientistError(f"there is no review-examples folder {folder}",
                             "set [reviewers.llm] examples_dir to a folder of NAME.txt + NAME.json pairs")
    examples = []
    for text_path in sorted(folder.glob("*.txt")):
        review_path = text_path.with_suffix(".json")
        if not review_path.is_file():
            continue
        try:
            data = json.loads(review_path.read_text(encoding="utf-8"))
            review = Review.model_validate(data.get("review", data) if isinstance(data, dict) else data)
        except (ValueError, TypeError) as exc:
            raise ScientistError(f"the example review {review_path} is not a valid review: {exc}",
                                 "fix it against the NeurIPS form (see docs/reviewer.md)") from None
        examples.append(Example(text_path.stem, text_path.read_text(encoding="utf-8").strip(), review))
    return examples


def rounded_mean(values: list[int]) -> int:
    """The mean rounded half up (6.5 -> 7), as the meta-review's scores are."""
    return math.floor(sum(values) / len(values) + 0.5)


def decide(overall: int, threshold: int) -> str:
    return "Accept" if overall >= threshold else "Reject"


def aggregate(reviews: list[Review], text: MetaReviewText, threshold: int) -> Review:
    """The meta-review: the area chair's text, each score the rounded mean of the reviews', the Decision from
    `threshold`, and Ethical Concerns when any reviewer raised them."""
    scores = {name: rounded_mean([getattr(r, name) for r in reviews]) for name in SCORE_FIELDS}
    return Review(
        summary=text.summary, strengths=text.strengths, weaknesses=text.weaknesses, questions=text.questions,
        limitations=text.limitations, ethical_concerns=any(r.ethical_concerns for r in reviews),
        decision=decide(scores["overall"], threshold), **scores)


def _as_json(review: BaseModel) -> str:
    return json.dumps(review.model_dump(mode="json", by_alias=True), indent=1, ensure_ascii=False)


class _Tally:
    """Requests and usage of the forked chats of one review (they run in several threads)."""

    def __init__(self) -> None:
        self.forks: list["Chat"] = []
        self.calls = 0
        self._lock = threading.Lock()

    def fork(self, chat: "Chat", *, stage: str, temperature: float) -> "Chat":
        """A copy of `chat` for one thread: same provider, ledger and budget; its own usage and last answer."""
        fork = copy.copy(chat)
        fork.usage = Usage()
        fork.last = None
        fork.stage = stage
        fork.temperature = temperature
        complete = fork.complete

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
            return complete(*args, **kwargs)

        fork.complete = counted  # type: ignore[method-assign]
        self.forks.append(fork)
        return fork

    @property
    def usage(self) -> Usage:
        return Usage(tokens_in=sum(f.usage.tokens_in for f in self.forks),
                     tokens_out=sum(f.usage.tokens_out for f in self.forks),
                     cost_usd=sum(f.usage.cost_usd for f in self.forks))


class LLMReviewer(Reviewer):
    name = "llm"
    description = "a language model fills the NeurIPS form: few-shot, self-reflection, ensemble and area chair"

    class Config(Config):
        examples_dir: Path | None = Field(None, description="a folder of NAME.txt + NAME.json worked examples "
                                          "to use instead of the shipped ones")
        reflections: int = Field(5, ge=1, le=20, description="rounds of writing each review: 1 = a single draft, "
                                 "more = self-reflection rounds, ending early when the reviewer is done")
        fewshot: int = Field(1, ge=0, description="worked examples shown (at most the number available)")
        ensemble: int = Field(5, ge=1, le=20, description="independent reviews per paper, run concurrently; "
                              "2 or more adds an area chair's meta-review")
        threshold: int = Field(6, ge=1, le=10, description="Overall at or above which the decision is Accept")
        temperature: float = Field(0.1, ge=0, le=2, description="sampling temperature of a single reviewer "
                                   "and of the area chair")
        ensemble_temperature: float = Field(0.75, ge=0, le=2, description="sampling temperature of each "
                                            "reviewer when the ensemble has 2 or more")
        max_paper_chars: int | None = Field(None, ge=1000, description="cut the paper's text to this many "
                                            "characters (for models with a small context window)")

        @field_validator("fewshot")
        @classmethod
        def _enough_examples(cls, value: int, info: ValidationInfo) -> int:
            if value:
                available = len(load_examples(info.data.get("examples_dir") or EXAMPLES_DIR))
                if value > available:
                    raise ValueError(f"{value} worked examples asked for, but only {available} are available")
            return value

    def __init__(self, config: BaseModel | None = None) -> None:
        super().__init__(config)
        self._examples: list[Example] | None = None

    # -- prompts ---------------------------------------------------------------------------------------

    def examples(self) -> list[Example]:
        if self._examples is None:
            self._examples = load_examples(self.config.examples_dir or EXAMPLES_DIR)[: self.config.fewshot]
        return self._examples

    def prompt(self, paper_text: str, problems: Sequence[str] = ()) -> list[Message]:
        """The first request of every ensemble member: the guide, the examples, the paper, and what the paper's
        check against its experiment records found."""
        limit = self.config.max_paper_chars
        if limit and len(paper_text) > limit:
            paper_text = paper_text[:limit] + f"\n[... the rest of the paper, {len(paper_text) - limit} " \
                                              "characters, was cut to fit the model's context ...]"
        examples = ""
        for number, example in enumerate(self.examples(), start=1):
            intro = EXAMPLE_INTRO if number == 1 else "Another worked example:"
            examples += (f"{intro}\n\n<example_paper>\n{example.paper}\n</example_paper>\n\n"
                         f"<example_review>\n{_as_json(example.review)}\n</example_review>\n\n")
        found = CHECK_PROMPT + "\n".join(f"- {problem}" for problem in problems) if problems else ""
        return [Message(role="system", content=SYSTEM_PROMPT),
                Message(role="user", content=PAPER_PROMPT.format(examples=examples, paper=paper_text.strip()) + found)]

    # -- one reviewer ------------------------------------------------------------------------------------

    def write_review(self, messages: list[Message], chat: "Chat") -> Review:
        """A draft, then reflection rounds until the reviewer is done or the rounds run out."""
        review = chat.ask_structured(messages, Review)
        history = [*messages, Message(role="assistant", content=_as_json(review))]
        rounds = self.config.reflections
        for round_ in range(2, rounds + 1):
            history.append(Message(role="user", content=REFLECTION_PROMPT.format(round=round_ - 1,
                                                                                 rounds=rounds - 1)))
            revision = chat.ask_structured(history, ReviewRevision)
            review = revision.review
            if revision.done:
                break
            history.append(Message(role="assistant", content=_as_json(revision)))
        return review

    # -- the whole review ----------------------------------------------------------------------------------

    def review_file(self, path: Path, chat: "Chat", problems: Sequence[str] = ()) -> ReviewResult:
        """Review the paper at `path`: a PDF's text by PyMuPDF, or a .txt / .md / .tex file as it is."""
        from scientist_reviewer.pdf_text import paper_text

        return self.review(paper_text(path), chat, problems)

    def review(self, paper_text: str, chat: "Chat", problems: Sequence[str] = ()) -> ReviewResult:
        from scientist_core import BudgetExceeded, LLMNotReady

        start = time.monotonic()
        tally = _Tally()
        size = self.config.ensemble
        temperature = self.config.temperature if size == 1 else self.config.ensemble_temperature
        messages = self.prompt(paper_text, problems)
        forks = [tally.fork(chat, stage=chat.stage, temperature=temperature) for _ in range(size)]

        def one(fork: "Chat") -> Review | BaseException:
            try:
                return self.write_review(messages, fork)
            except (BudgetExceeded, LLMNotReady):
                raise  # no other member can do better: stop the review
            except Exception as exc:  # one member's failure leaves the others' reviews usable
                return exc

        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="reviewer") as pool:
            outcomes = list(pool.map(one, forks))
        reviews = [o for o in outcomes if isinstance(o, Review)]
        errors = [o for o in outcomes if not isinstance(o, Review)]
        failures = [f"reviewer {i + 1}: {_describe(o)}" for i, o in enumerate(outcomes) if not isinstance(o, Review)]
        if not reviews:
            raise errors[0]

        meta: Review | None = None
        if size > 1:
            meta_chat = tally.fork(chat, stage=f"{chat.stage}-meta", temperature=self.config.temperature)
            meta = self.meta_review(reviews, meta_chat, failures)
            final = meta
        else:
            final = reviews[0].model_copy(update={"decision": decide(reviews[0].overall, self.config.threshold)})

        usage = tally.usage
        chat.usage = Usage(tokens_in=chat.usage.tokens_in + usage.tokens_in,
                           tokens_out=chat.usage.tokens_out + usage.tokens_out,
                           cost_usd=chat.usage.cost_usd + usage.cost_usd)
        return ReviewResult(review=final, reviews=reviews, meta_review=meta, failures=failures, calls=tally.calls,
                            usage=usage, model=chat.model_id, seconds=round(time.monotonic() - start, 3))

    def meta_review(self, reviews: list[Review], chat: "Chat", failures: list[str]) -> Review:
        """The area chair's text over the reviews' rounded-mean scores; if the area chair gives no valid
        answer, the text of the review whose Overall is nearest the mean stands in (noted in `failures`)."""
        from scientist_core import BudgetExceeded, LLMNotReady

        listing = "\n\n".join(f"Review {i}:\n{_as_json(r)}" for i, r in enumerate(reviews, start=1))
        messages = [Message(role="system", content=AREA_CHAIR_SYSTEM),
                    Message(role="user", content=AREA_CHAIR_PROMPT.format(count=len(reviews), reviews=listing))]
        try:
            text = chat.ask_structured(messages, MetaReviewText)
        except (BudgetExceeded, LLMNotReady):
            raise
        except Exception as exc:
            failures.append(f"area chair: {_describe(exc)}")
            mean = sum(r.overall for r in reviews) / len(reviews)
            nearest = min(reviews, key=lambda r: abs(r.overall - mean))
            text = MetaReviewText.model_validate(nearest.model_dump(by_alias=True))
        return aggregate(reviews, text, self.config.threshold)


def _describe(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, ScientistError) else f"{type(exc).__name__}: {exc}"
