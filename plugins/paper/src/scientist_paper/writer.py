"""The writer `latex`: a model writes the prose, section by section; code writes everything that must be true:
the numbers, the results table, the figures, the bibliography, and the machine's description.

1. Title and abstract, then `citation_rounds` literature-search rounds (the model asks, the searchers answer,
   the model picks; BibTeX is written by code), then the sections, each drafted and reflected on once.
2. After every answer code checks the section (checks.check_section): typed numbers,
   unknown `\\result` keys or citations, "Run 2", forbidden commands, unbalanced LaTeX. Problems go back to the
   model for `writeup_fix_rounds` rounds; what is left is repaired by code.
3. The paper is compiled; chktex warnings and compile errors go back to the model, mapped to the section file
   and line they come from, for `writeup_fix_rounds` rounds. A paper that still fails falls back to its last
   compiling version, then to plain text for the failing sections, so a PDF exists whenever LaTeX is installed.

The LaTeX contract between the core and a template's `latex/` skeleton is in docs/writeup.md.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from scientist_core import (
    LATEX_SKELETON, CompileResult, Figure, Idea, Message, Paper, PaperCheck, RunContext, RunRecord,
    StructuredOutputError, Writer, WriteupResult, copy_out, describe_changes, facts_for_run,
)
from scientist_literature.bibtex import Bibliography, BibEntry, latex_to_text, normalize_title, parse_bibtex
from scientist_paper.checks import (
    SectionRules, check_section, cited_keys, labels_in, normalize_text, record_terms, word_ngrams,
)
from scientist_paper.latex import (
    ABSTRACT_FILE, BODY_FILE, DISCLOSURE_FILE, FIGURES_DIR, GENERATED_DIR, META_FILE, RUNS_TABLE_FILE,
    RUNS_TABLE_LABEL, SECTIONS, TABLE_FILE, TABLE_LABEL, body_tex, env_macros, figure_tex, latex_escape,
)
from scientist_paper.provenance import (
    combined_facts, disclosure_tex, machine_count, run_machines, runs_table_tex, unimplemented_idea,
)
from scientist_paper.claims import CheckReport, Evidence, check_paper, instruction_ngrams
from scientist_paper.repairs import (
    drop_repeats, plain_text_section, remove_sentences, repair_section, settings_numbers,
)
from scientist_paper.results import (
    ResultValue, Study, compare_with_baseline, meta_tex, related_work_sentence, result_values, results_table_tex,
    run_label, title_is_supported,
)

__all__ = ["MAIN_FILE", "STAGE", "LatexWriter", "preflight_latex", "skeleton_problems"]

STAGE = "writeup"
MAIN_FILE = "template.tex"
BUILTIN_MAIN = "scientist-paper.tex"
CITATIONS_FILE = f"{GENERATED_DIR}/citations.json"
PROVENANCE_FILE = f"{GENERATED_DIR}/provenance.json"  # what code knew of the runs, for a checker of the paper
TITLE_FILE = f"{GENERATED_DIR}/title.txt"
SEARCH_LIMIT = 10
MAX_ISSUES_SHOWN = 12
MIN_SECTION_CHARS = 40
ABSTRACT = "abstract"
PIECE_MAX_TOKENS = 400   # a piece is 2-4 sentences; a cap on small models that go on reciting
MAX_RELATED = 8          # references the Related Work of the structured style discusses

_SKELETON_NEEDS = ((r"\input{generated/meta}", re.compile(r"\\input\s*\{\s*generated/meta(?:\.tex)?\s*\}")),
                   (r"\input{generated/body}", re.compile(r"\\input\s*\{\s*generated/body(?:\.tex)?\s*\}")),
                   (r"\bibliography{references}", re.compile(r"\\bibliography\s*\{\s*references\s*\}")))


# -- what the model answers -------------------------------------------------------------------------

class TitleAbstract(BaseModel):
    title: str = Field(description="the paper's title, plain text")
    abstract: str = Field(description="one paragraph of LaTeX")


class TitleAbstractRevision(BaseModel):
    critique: str = Field(description="what is wrong with the draft, briefly")
    title: str
    abstract: str


class SectionText(BaseModel):
    latex: str = Field(description="the section's LaTeX body, without \\section")


class SectionRevision(BaseModel):
    critique: str = Field(description="what is wrong with the draft, briefly")
    latex: str = Field(description="the rewritten section's LaTeX body")


class CitationQuery(BaseModel):
    done: bool = Field(description="true when the paper cites enough work")
    query: str = Field("", description="a search query for one paper or topic to cite")


class CitationChoice(BaseModel):
    indices: list[int] = Field(description="numbers of the results to cite; empty for none")


# The structured style's pieces: short, each checked on its own; code writes the rest of the paper.

class Motivation(BaseModel):
    latex: str = Field(description="2 to 4 sentences of LaTeX: the problem and why these changes could matter")


class Interpretation(BaseModel):
    latex: str = Field(description="2 to 4 sentences of LaTeX: what the computed comparisons suggest")


class NextSteps(BaseModel):
    latex: str = Field(description="1 to 3 sentences of LaTeX: what to try next")


def related_work_schema(keys: list[str]) -> type[BaseModel]:
    """RelatedWork: one sentence per reference, its key chosen from `keys` (a JSON enum)."""
    cited = create_model("CitedSentence", key=(Literal[tuple(keys)], Field(description="the reference's key")),
                         sentence=(str, Field(description="one sentence of LaTeX: what the reference did and how "
                                                          "these runs relate to it")))
    return create_model("RelatedWork", sentences=(list[cited], Field(description="one item per reference")))


# -- prompts ------------------------------------------------------------------------------------------

RULES = r"""You are writing a research paper in LaTeX about experiments that have already been run. Rules:
1. Every experimental number enters the text only as \result{KEY}, with a KEY from the list you are given.
   Never type a result, a difference or a percentage yourself: a run's change relative to the baseline is
   \change{KEY}, computed by code. Describe the machine only with the macros given.
2. Name runs by what they changed (for example "the run with a larger learning rate"), never "Run 2" or run_2.
3. Report what the results show. If a change made things worse or made no clear difference, say so plainly;
   never present a worse or unchanged result as an improvement.
4. Cite only with \citep{KEY} or \citet{KEY} and the reference keys listed; cite nothing else.
5. Write only the body of the section asked for: no \section, no preamble, no figures or tables of results
   (code places the results table and the figures; refer to them with \ref and the labels listed), no \input,
   no macro definitions.
6. Escape LaTeX special characters in text: \%, \_, \&, \#."""

TASKS: dict[str, str] = {
    ABSTRACT: "Write the title (plain text, no LaTeX) and the abstract: one paragraph of at most 200 words "
              "saying what was tried, on what, and what was found, negative findings included.",
    "introduction": "Write the Introduction: the problem and why it matters, what this paper does, and its "
                    "contributions as an itemize list. State the findings as they are.",
    "related-work": "Write the Related Work section: compare and contrast this work with the references listed, "
                    "citing each where it is relevant. Say how the approaches differ, not only what they are.",
    "background": "Write the Background section: the concepts and notation a reader needs for the method, "
                  "briefly.",
    "method": "Write the Method section: exactly what was changed relative to the baseline, and why, in terms "
              "of the runs listed.",
    "experimental-setup": "Write the Experimental Setup section: datasets, metrics, the settings of each run, "
                          "seeds and the machine (with the macros given).",
    "results": "Write the Results section: for each run, what it changed and how its results compare with the "
               "baseline, with \\result values; refer to Table~\\ref{tab:results} and the figures. Say where "
               "differences are within the standard errors. End with the limitations of these experiments.",
    "conclusion": "Write the Conclusions and Future Work section: what was learned, the limitations, and what "
                  "to try next. Do not repeat every number.",
}

WRITING_ORDER = ("introduction", "background", "method", "experimental-setup", "results", "conclusion",
                 "related-work")

REFLECT = ("Criticise your {what}, then rewrite it. Check that every statement about the results agrees with "
           "the values and comparisons listed (a worse or unchanged result is reported as such, plainly); that "
           "every number is a \\result{{KEY}} with a listed key; that runs are named by what they changed; that "
           "only the listed citation keys are used; that the LaTeX is valid; and that nothing is repeated or "
           "padded.")


PIECE_RULES = r"""You write short parts of a research paper in LaTeX about experiments that have already been run;
code writes the rest of the paper from the records. Rules:
1. Plain LaTeX prose only: no lists, tables, headings, Markdown, \section or figures.
2. Type no numbers and do not repeat the settings or comparisons code wrote: build on them.
3. State only what the records say was run. A worse or unclear result is said plainly, never called an
   improvement; a difference from a single seed is not a clear one.
4. Cite only with \citep{KEY} or \citet{KEY} and the keys listed."""

# name of the piece, its schema, what it asks for
PIECES: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("motivation", Motivation, "Write the opening of the Introduction: the problem these runs address and why "
                               "their changes could matter, in 2 to 4 sentences. No results."),
    ("interpretation", Interpretation, "Interpret the comparisons code wrote, in 2 to 4 sentences: what they "
                                       "suggest and why, saying plainly where a variant was worse or made no clear "
                                       "difference."),
    ("next-steps", NextSteps, "Say what to try next, given these results, in 1 to 3 sentences."),
)
# parts that state no results of these runs (code's Results section does); related work speaks of the references
PIECES_WITHOUT_RESULTS = ("motivation", "next-steps", "related-work")
RELATED_TASK = ("For each reference listed, write one sentence: what it did and how these runs relate to it. Give "
                "the reference's key with each sentence.")

# what each section of the structured style is made of, in order: code's parts and the model's pieces
STRUCTURED_LAYOUT: dict[str, tuple[str, ...]] = {
    ABSTRACT: ("abstract",), "introduction": ("motivation", "opening"), "related-work": ("related-work",),
    "background": ("background",), "method": ("method",), "experimental-setup": ("setup",),
    "results": ("results", "interpretation", "limitations"), "conclusion": ("summary", "next-steps"),
}


def _phrases(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """`n` words in a row, one of them long ("simulated annealing through" yes, "one of the" no), citations out."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"\\cite\w*\{[^{}]*\}", "", text).lower())
    return {gram for gram in zip(*(words[i:] for i in range(n))) if any(len(word) >= 5 for word in gram)}


def _heading(name: str) -> str:
    if name == ABSTRACT:
        return "abstract"
    return next((section.heading + " section" for section in SECTIONS if section.name == name),
                name.replace("-", " "))


def _bullets(lines: list[str]) -> str:
    shown = lines[:MAX_ISSUES_SHOWN]
    more = len(lines) - len(shown)
    return "\n".join(f"- {line}" for line in shown) + (f"\n- ... and {more} more" if more > 0 else "")


# -- the machine -----------------------------------------------------------------------------------

# -- the skeleton -----------------------------------------------------------------------------------

def skeleton_problems(tex: str) -> list[str]:
    """How a skeleton breaks the LaTeX contract (docs/writeup.md); empty when it follows it."""
    uncommented = re.sub(r"(?<!\\)%[^\n]*", "", tex)
    return [f"it has no {needed}" for needed, pattern in _SKELETON_NEEDS if not pattern.search(uncommented)]


def _use_builtin_skeleton(latex_dir: Path) -> str:
    """Write the core's skeleton into `latex_dir` as BUILTIN_MAIN, beside the style files it uses, so a paper
    whose template skeleton breaks the contract still compiles; the main file's name."""
    (latex_dir / BUILTIN_MAIN).write_text((LATEX_SKELETON / MAIN_FILE).read_text())
    for style in LATEX_SKELETON.glob("*.sty"):
        if not (latex_dir / style.name).exists():
            shutil.copy(style, latex_dir)
    return BUILTIN_MAIN


def preflight_latex(template_latex_dir: Path, compiler: Any, work_dir: Path) -> list[str]:
    """Compile a template's skeleton with placeholder generated files, before any money is spent on a paper;
    the problems found (empty: the skeleton and the toolchain work). `work_dir` must not exist yet."""
    readiness = compiler.readiness()
    if not readiness.ready:
        return [f"the LaTeX compiler is not ready: {readiness.detail}"]
    shutil.copytree(template_latex_dir, work_dir)
    main = MAIN_FILE
    problems = [f"{main}: {p}" for p in skeleton_problems((work_dir / main).read_text(errors="replace"))] \
        if (work_dir / main).is_file() else [f"the skeleton has no {main}"]
    if problems:
        main = _use_builtin_skeleton(work_dir)
    generated = work_dir / GENERATED_DIR
    generated.mkdir(exist_ok=True)
    (work_dir / META_FILE).write_text(meta_tex("A placeholder title", {}, {"cpu": "placeholder"}))
    (work_dir / ABSTRACT_FILE).write_text("A placeholder abstract.\n")
    for section in SECTIONS:
        (work_dir / section.file).write_text(f"Placeholder text of {section.heading}.\n")
    (work_dir / TABLE_FILE).write_text("% no results\n")
    (work_dir / RUNS_TABLE_FILE).write_text("% no runs\n")
    (work_dir / DISCLOSURE_FILE).write_text(disclosure_tex(["placeholder"]))
    (work_dir / BODY_FILE).write_text(body_tex())
    (work_dir / "references.bib").write_text("")
    result = compiler.compile(work_dir, main)
    if not result.ok:
        problems += [f"the skeleton does not compile: {error}" for error in result.errors[:5]] or \
            ["the skeleton does not compile (no error line in the log)"]
    return problems


# -- the writer -------------------------------------------------------------------------------------

class _Writer:
    def __init__(self, ctx: RunContext, idea: Idea, workspace: Path, runs: list[RunRecord], figures: list[Figure],
                 feedback: str | None) -> None:
        self.ctx = ctx
        self.idea = idea
        self.workspace = Path(workspace)
        self.runs = sorted(runs, key=lambda run: run.index)
        self.feedback = feedback
        self.chat = ctx.chat(STAGE)
        self.latex_dir = self.workspace / ("latex-improved" if feedback else "latex")
        self.main = MAIN_FILE
        self.problems: list[str] = []
        self.texts: dict[str, str] = {}
        self.previous: dict[str, str] = {}
        self.title = idea.title
        self.results: dict[str, ResultValue] = result_values(self.runs, ctx.template.metrics,
                                                             ctx.template.deterministic)
        # each run's own machine (a resumed run keeps the one it ran on); the run's recorded facts for a record
        # that carries none
        default = facts_for_run(ctx) if any(not run.machine for run in self.runs) else {}
        self.machines = run_machines(self.runs, default)
        self.facts = combined_facts(self.machines)
        self.unimplemented = ""  # why the runs did not implement the idea's proposed change, once prepared
        self.bibliography = Bibliography()
        self.references: dict[str, Paper] = {}
        self.template_entries: dict[str, BibEntry] = {}
        self.figures_in = list(figures)
        self.figures: list[tuple[str, str, str]] = []  # (file in latex/, caption, label)
        self.fix_rounds_used = 0
        self._allowed_numbers: set[float] = set()
        self.structured = ctx.options.writeup == "structured"
        self.baseline: dict[str, Any] = {}
        self.study: Study  # what code knows of the runs, once prepared
        self.sent: set[str] = set()                  # every prompt sent to the model
        self._said: set[tuple[str, ...]] = set()     # their word n-grams

    # -- set-up ---------------------------------------------------------------------------------------

    def report(self, message: str) -> None:
        self.ctx.report(f"writeup: {self.idea.name}: {message}")

    def problem(self, message: str) -> None:
        self.problems.append(message)
        self.report(message)

    def prepare(self) -> None:
        earlier: Path | None = None  # the paper a review asks to revise
        self._read_template_bibliography()
        if self.feedback:
            earlier = self.workspace / "latex"
            for section in SECTIONS:
                if (earlier / section.file).is_file():
                    self.previous[section.name] = (earlier / section.file).read_text()
            if (earlier / ABSTRACT_FILE).is_file():
                self.previous[ABSTRACT] = (earlier / ABSTRACT_FILE).read_text()
            if (earlier / TITLE_FILE).is_file():
                self.title = (earlier / TITLE_FILE).read_text().strip() or self.title
            if (earlier / CITATIONS_FILE).is_file():
                for item in json.loads((earlier / CITATIONS_FILE).read_text()):
                    self._cite(Paper.model_validate(item))
            if self.latex_dir.exists():
                shutil.rmtree(self.latex_dir)
        if not self.latex_dir.is_dir() and earlier is not None and earlier.is_dir():
            shutil.copytree(earlier, self.latex_dir, ignore=shutil.ignore_patterns(
                "*.aux", "*.log", "*.pdf", "*.bbl", "*.blg", "*.fls", "*.fdb_latexmk", ".latexmk", ".chktex"))
        elif not self.latex_dir.is_dir():
            self.ctx.template.write_latex(self.latex_dir)
        main = self.latex_dir / self.main
        broken = skeleton_problems(main.read_text(errors="replace")) if main.is_file() else [f"there is no {self.main}"]
        if broken:
            self.problem(f"the template's LaTeX skeleton breaks the contract ({'; '.join(broken)}): the built-in "
                         "skeleton was used (see docs/writeup.md)")
            self.main = _use_builtin_skeleton(self.latex_dir)
        (self.latex_dir / GENERATED_DIR).mkdir(exist_ok=True)
        self._place_figures()
        self.baseline = self._baseline_knobs()
        template = self.ctx.template
        self.study = Study(self.runs, self.results, self.baseline, template.description,
                           fixed=[name for name in self.baseline if name in template.fixed_knobs],
                           quick=list(template.quick_knobs) if self.ctx.options.quick else [], facts=self.facts,
                           machines=machine_count(self.machines), knob_notes=self._knob_notes())
        self.unimplemented = unimplemented_idea(self.idea, self.runs, [*self.baseline, *self._knob_notes()])
        if self.unimplemented:
            self.problem(f"the runs did not implement the idea: {self.unimplemented}; the paper says so and "
                         "describes only what was run")
            if not self.feedback:
                self.title = self.study.title()
        self._allowed_numbers = self._settings_numbers()

    def _baseline_knobs(self) -> dict[str, Any]:
        try:
            return self.ctx.template.knobs(quick=self.ctx.options.quick).model_dump()
        except Exception:  # a template whose knobs cannot be built here still gets its paper
            return {}

    def _knob_notes(self) -> dict[str, str]:
        try:
            return {name: info.description or "" for name, info in self.ctx.template.knobs_model().model_fields.items()}
        except Exception:  # as for _baseline_knobs: no knob model, no notes
            return {}

    def _settings_numbers(self) -> set[float]:
        """Numbers prose may state: the runs' settings (knob changes, the template's defaults, run names)."""
        return settings_numbers(self.runs, self.baseline)

    def _read_template_bibliography(self) -> None:
        """The template's own references.bib: entries its skeleton may cite, and the model too."""
        path = self.ctx.template.files_dir() / "latex" / "references.bib"
        if path.is_file():
            for entry in parse_bibtex(path.read_text(errors="replace")):
                if re.fullmatch(r"[A-Za-z0-9_:.\-]+", entry.key):
                    self.template_entries[entry.key] = entry

    def _place_figures(self) -> None:
        """Copy the figures into latex/figures/: the compiler's sandbox sees only the LaTeX folder."""
        folder = self.latex_dir / FIGURES_DIR
        folder.mkdir(exist_ok=True)
        used: set[str] = set()
        for figure in self.figures_in:
            path = Path(figure.path)
            if not path.is_absolute():
                path = self.workspace / path
            if not path.is_file():
                self.problem(f"figure {path.name} is missing and was left out")
                continue
            stem = re.sub(r"[^A-Za-z0-9\-]+", "-", path.stem).strip("-").lower() or "figure"
            name, n = stem, 1
            while name in used:
                n += 1
                name = f"{stem}-{n}"
            used.add(name)
            suffix = path.suffix.lower() if path.suffix.lower() in (".png", ".pdf", ".jpg", ".jpeg") else ".png"
            shutil.copyfile(path, folder / f"{name}{suffix}")
            self.figures.append((f"{FIGURES_DIR}/{name}{suffix}", figure.caption, f"fig:{name}"))

    # -- rules and context ------------------------------------------------------------------------------

    def rules(self, name: str | None = None) -> SectionRules:
        """What the text of part `name` may hold."""
        labels = {section.label for section in SECTIONS} | {TABLE_LABEL, RUNS_TABLE_LABEL} | \
            {label for _, _, label in self.figures}
        for text in self.texts.values():
            labels |= labels_in(text)
        return SectionRules(results=self.results, cite_keys=set(self.references) | set(self.template_entries),
                            labels=labels, run_names={run.index: run_label(run) for run in self.runs},
                            allowed_numbers=self._allowed_numbers, facts=self.facts,
                            knob_directions=self.study.knob_directions(), knob_moves=self.study.knob_moves(),
                            prompt_ngrams=frozenset(self._said.difference(*map(word_ngrams, self._facts_told()))),
                            terms=record_terms(self._records()),
                            cited_terms={key: record_terms([description]) for key, _, description in self._citable()},
                            states_results=name not in PIECES_WITHOUT_RESULTS)

    def _records(self) -> list[str]:
        """What the template and the recorded runs say of the experiments: the words a title may use."""
        template = self.ctx.template
        texts = [template.description, " ".join(self.baseline), json.dumps(self.baseline),
                 " ".join(self.study.datasets), " ".join(self.study.metrics), *self.facts.values()]
        for read in (lambda: template.prompt().get("task_description", ""),
                     lambda: json.dumps(template.knobs_model().model_json_schema())):
            try:
                texts.append(read())
            except Exception:  # a template without prompt.json, or knobs it cannot load here, still gets its paper
                pass
        return texts

    def _facts_told(self) -> list[str]:
        """The facts the prompts carried, which the paper may restate: the idea, the runs, their comparisons, the
        references, the figures, the machine, and the paper's own text so far."""
        comparisons = [comparison.describe() for value in self.results.values()
                       if (comparison := compare_with_baseline(value, self.results))]
        runs = [f"{run_label(run)} {run.description} {json.dumps(run.knob_changes)}" for run in self.runs]
        code = self.code_parts().values() if self.structured else ()
        idea = [] if self.unimplemented else [self.idea.title, self.idea.experiment]  # not to be restated as done
        return [*idea, self.title, self.feedback or "", *self.texts.values(), *code,
                *self.previous.values(), *runs, *comparisons, *(caption for _, caption, _ in self.figures),
                *(description for _, _, description in self._citable()), *self.facts.values()]

    def _comparison(self, value: ResultValue) -> str:
        comparison = compare_with_baseline(value, self.results)
        return f"; {comparison.describe()}" if comparison else ""

    def context(self) -> str:
        lines = [f"The research idea the runs were planned from (written before any run): {self.idea.title}. "
                 f"{self.idea.experiment}"]
        if self.unimplemented:
            lines.append(f"The runs did not implement it: {self.unimplemented}. Describe only what the runs changed, "
                         "say plainly that the change the idea proposed was not implemented, and never describe or "
                         "title the paper as if it had been.")
        lines += ["", "The runs (name each by what it changed, never by its number):"]
        for run in self.runs:
            label = run_label(run)
            # a run is described by code from its record: the plan's prose may misstate what it changed
            what = "the experiment unchanged" if run.index == 0 else describe_changes(run.knob_changes, self.baseline)
            changes = f" Changed settings: {json.dumps(run.knob_changes)}." if run.knob_changes else ""
            code = f" Its code differs from the template's: {run.code_diff}." if run.code_diff else \
                " Its code was changed." if run.code_changed else ""
            lines.append(f"- {label}: {what}.{changes}{code} Result keys start with run{run.index}.")
        lines += ["", "Recorded results. Write each only as \\result{KEY}; the values are shown so you can compare "
                  "them (each metric says which way is better; n: the seeds behind a mean):"]
        groups: dict[tuple[str, str], list[ResultValue]] = {}
        for value in self.results.values():
            if not value.stderr and not value.timing:  # timings vary from run to run
                groups.setdefault((value.dataset, value.metric), []).append(value)
        names = {run.index: run_label(run) for run in self.runs}
        for (dataset, metric), values in groups.items():
            better = f" ({values[0].better_direction} is better)" if values[0].better_direction else ""
            lines.append(f"{dataset}, {metric}{better}:")
            for value in values:
                se = self.results.get(f"{value.key}.stderr")
                about = ([f"n = {value.n}"] if value.n is not None else []) + \
                    ([f"standard error \\result{{{se.key}}} = {se.plain}"] if se else [])
                spread = f" ({', '.join(about)})" if about else ""
                lines.append(f"  {names.get(value.run, value.run)}: \\result{{{value.key}}} = {value.plain}{spread}"
                             f"{self._comparison(value)}")
        lines += ["", "Placed by code (refer to them with \\ref):",
                  f"- {RUNS_TABLE_LABEL}: in the Method section, the table of what each run changed",
                  f"- {TABLE_LABEL}: in the Results section, the table of every result above"]
        lines += [f"- {label}: {caption}" for _, caption, label in self.figures]
        macros = ", ".join(f"\\{macro} ({value})" for macro, value in env_macros(self.facts).items())
        which = "The machine every run used" if self.study.machines == 1 else \
            "The machines the runs used (they differ: each macro gives every machine's value with its runs)"
        lines += ["", f"{which} (write the macros, not their values): {macros}"]
        citable = self._citable()
        if citable:
            lines += ["", "References you may cite (\\citep{KEY} or \\citet{KEY}; no other keys):"]
            lines += [f"- {key}: {description}" for key, _, description in citable]
        else:
            lines += ["", "There are no references to cite: use no \\cite commands."]
        return "\n".join(lines)

    def _citable(self) -> list[tuple[str, str, str]]:
        """(key, title, description) of each reference the paper may cite: the searched ones first."""
        items = []
        for key, paper in self.references.items():
            authors = ", ".join(paper.authors[:2]) + (" et al." if len(paper.authors) > 2 else "")
            abstract = f" {paper.abstract[:200]}" if paper.abstract else ""
            items.append((key, paper.title, f"{paper.title} ({authors}, {paper.year or 'n.d.'}).{abstract}"))
        for key, entry in self.template_entries.items():
            if key not in self.references:
                title = latex_to_text(entry.get("title"))
                items.append((key, title, f"{title} ({entry.get('year') or 'n.d.'})"))
        return items

    def system(self, rules: str = RULES) -> str:
        persona = ""
        try:
            persona = self.ctx.template.prompt().get("system", "")
        except Exception:  # a template without prompt.json still gets its paper
            pass
        return f"{persona}\n\n{rules}".strip()

    def _paper_so_far(self) -> str:
        return f"The paper's title: {self.title}\nIts abstract:\n{self.texts.get(ABSTRACT, '').strip()}"

    def opening(self, name: str) -> list[Message]:
        extra = [self._paper_so_far()] if name != ABSTRACT and ABSTRACT in self.texts else []
        if name == "conclusion" and "results" in self.texts:
            extra.append(f"The Results section as written:\n{self.texts['results'].strip()}")
        if self.feedback:
            extra.append(f"A reviewer's review of an earlier version of this paper:\n{self.feedback.strip()}\n"
                         "Address it where the recorded results allow; never invent experiments or numbers.")
        if name in self.previous:
            extra.append(f"The current text of the {_heading(name)}:\n{self.previous[name].strip()}\n"
                         "Revise it.")
        task = TASKS[name] + ("" if name == ABSTRACT else " Answer with the section's LaTeX body only.")
        return [Message(role="system", content=self.system()),
                Message(role="user", content="\n\n".join([self.context(), *extra, task]))]

    # -- asking -------------------------------------------------------------------------------------------

    def ask(self, messages: list[Message], schema: type[BaseModel], max_tokens: int | None = None) -> BaseModel | None:
        """A structured answer, or None when the model gave no valid one (BudgetExceeded propagates)."""
        for message in messages:  # what was sent, so that a paper repeating it can be caught
            if message.role != "assistant" and message.content not in self.sent:
                self.sent.add(message.content)
                self._said |= word_ngrams(message.content)
        limit = min(max_tokens or self.ctx.options.section_max_tokens, self.ctx.options.section_max_tokens)
        try:
            return self.chat.ask_structured(messages, schema, max_tokens=limit)
        except StructuredOutputError as exc:
            self.report(f"no usable answer ({exc.message})")
            return None

    def check(self, name: str, text: str) -> list[str]:
        problems = [str(p) for p in check_section(text, self.rules(name))]
        if len(text.strip()) < MIN_SECTION_CHARS:
            problems.append("the text is (nearly) empty; write the whole section")
        return problems

    def fix_rounds(self, name: str, text: str, messages: list[Message],
                   schema: type[BaseModel] = SectionText) -> tuple[str, list[str]]:
        """Feed the code's problems with `text` back for the fix rounds: the text, and the problems left."""
        text = normalize_text(text)
        problems = self.check(name, text)
        for _ in range(self.ctx.options.writeup_fix_rounds):
            if not problems:
                break
            answer = self.ask([*messages, Message(role="assistant", content=text), Message(role="user", content=(
                f"Code found these problems in your {_heading(name)}:\n{_bullets(problems)}\nRewrite the whole "
                "text fixing them, changing nothing else."))], schema)
            if answer is None:
                break
            text = normalize_text(answer.latex)
            problems = self.check(name, text)
        return text, problems

    def repair(self, name: str, text: str) -> str:
        text, done = repair_section(text, self.rules(name))
        self.report(f"{_heading(name)}: repaired by code: {'; '.join(done) or 'nothing to do'}")
        return text

    def settle(self, name: str, text: str, messages: list[Message]) -> str:
        """The fix rounds, then code repairs what is left; code's own text where nothing usable remains."""
        text, problems = self.fix_rounds(name, text, messages)
        if problems:
            text = self.repair(name, text)
            if len(text.strip()) < MIN_SECTION_CHARS and name != ABSTRACT:
                text = self.fallback_text(name)
        return text

    def fallback_text(self, name: str, why: str = "the model gave no usable") -> str:
        """Code's text of a section, from the records, when the model's is unusable; "" (the section is left
        out) where code has nothing to say."""
        if name == "related-work":
            text = " ".join(related_work_sentence(key, title) for key, title, _ in self._citable()[:MAX_RELATED])
        else:
            code = self.code_parts()
            text = "\n\n".join(code[part].strip() for part in STRUCTURED_LAYOUT[name] if part in code)
        self.problem(f"{why} {_heading(name)}: {'code wrote it from the records' if text else 'it was left out'}")
        return text + "\n" if text else ""

    def code_parts(self) -> dict[str, str]:
        """The parts of the paper code writes from the records alone (STRUCTURED_LAYOUT names them)."""
        study = self.study
        notice = self.not_implemented_notices()
        return {"abstract": notice.get(ABSTRACT, "") + study.abstract(),
                "opening": notice.get("introduction", "") + study.introduction(), "background": study.background(),
                "method": study.method(),
                "setup": study.setup(), "results": study.results([label for _, _, label in self.figures]),
                "limitations": study.limitations(), "summary": study.conclusion()}

    def not_implemented_notices(self) -> dict[str, str]:
        """Where the runs did not implement the idea: code's plain statement of it for the abstract and the
        introduction, so no paper presents the idea's change as done; {} otherwise."""
        if not self.unimplemented:
            return {}
        return {ABSTRACT: f"The idea behind this study proposed a change that these runs did not make: "
                          f"{latex_escape(self.unimplemented)}. This paper reports only what was run.\n\n",
                "introduction": "The change this study set out to test was not implemented by any of its runs; "
                                "Section~\\ref{sec:method} and Table~\\ref{" + RUNS_TABLE_LABEL + "} list what "
                                "each run changed instead.\n\n"}

    def with_notices(self) -> None:
        """The free style's abstract and introduction, led by code's not_implemented_notices where they apply."""
        for name, notice in self.not_implemented_notices().items():
            if notice.strip() not in self.texts.get(name, ""):
                self.texts[name] = notice + self.texts.get(name, "")

    def without_repeats(self, texts: list[str]) -> list[str]:
        kept, dropped = drop_repeats(texts)
        if dropped:
            self.report(f"{dropped} sentence(s) that repeated an earlier part of the paper were left out")
        return kept

    # -- the structured style ---------------------------------------------------------------------------------

    def write_structured(self) -> None:
        """Code writes what the records say; the model adds short pieces, each checked, none repeating another."""
        changed = {name for run in self.runs for name in run.knob_changes}
        supported = not self.unimplemented and title_is_supported(
            self.idea.title, " ".join(self._records()), unchanged=[name for name in self.baseline if name not in changed])
        self.title = self.study.title(self.idea.title if supported else "")
        code = self.code_parts()
        self.texts = {ABSTRACT: code["abstract"]}  # the paper so far, for the citation rounds
        self.find_citations()
        pieces = {name: self.write_piece(name, schema, task) for name, schema, task in PIECES}
        pieces["related-work"] = self.write_related_work()
        parts = dict(zip([*code, *pieces], self.without_repeats([*code.values(), *pieces.values()])))
        self.texts = {name: "\n\n".join(parts[part].strip() for part in layout if parts[part].strip()) + "\n"
                      for name, layout in STRUCTURED_LAYOUT.items()}

    def piece_messages(self, task: str) -> list[Message]:
        code = self.code_parts()
        references = "\n".join(f"- {key}: {description}" for key, _, description in self._citable()) or "none"
        idea = self._idea_told()
        parts = [*([f"The idea behind these runs: {idea}"] if idea else []),
                 f"What code wrote from the records (build on it; do not repeat it):\n{code['method']}\n"
                 f"{code['results']}", f"References:\n{references}"]
        if self.feedback:
            parts.append(f"A reviewer's review of an earlier version of this paper:\n{self.feedback.strip()}")
        return [Message(role="system", content=self.system(PIECE_RULES)),
                Message(role="user", content="\n\n".join([*parts, task]))]

    def _idea_told(self) -> str:
        """The idea's title and plan, less the sentences code's checks delete (terms nothing recorded, such as
        "3D" for 2-D data): a small model repeats what its prompt says. Nothing where the runs did not implement
        the idea: its words would be written up as if they had."""
        if self.unimplemented:
            return ""
        return repair_section(f"{self.idea.title}. {self.idea.experiment}", self.rules())[0].strip()

    def write_piece(self, name: str, schema: type[BaseModel], task: str) -> str:
        """The model's piece `name`, checked like a section; "" when it still fails after code's repairs, or they
        took half of it (what is left of a bad answer is no piece of a paper)."""
        self.report(name)
        messages = self.piece_messages(task)
        answer = self.ask(messages, schema, max_tokens=PIECE_MAX_TOKENS)
        if answer is None:
            return ""
        text, problems = self.fix_rounds(name, answer.latex, messages, schema)
        if not problems:
            return text
        repaired = self.repair(name, text)
        if self.check(name, repaired) or len(repaired.strip()) < len(text.strip()) / 2:
            self.report(f"{name}: left out, code's checks took too much of it")
            return ""
        return repaired

    def write_related_work(self) -> str:
        """One sentence per reference, cited: the model's where it passes code's checks and speaks of that
        reference, else code's from the reference's title; "" without references."""
        citable = self._citable()[:MAX_RELATED]
        if not citable:
            return ""
        self.report("related work")
        answer = self.ask(self.piece_messages(RELATED_TASK), related_work_schema([key for key, _, _ in citable]))
        items = answer.sentences if answer is not None else []
        written: dict[str, str] = {}
        # a small model says the same of every reference ("X was used to train the model, which improved ..."):
        # a sentence sharing five words in a row with what is said of another reference is said of none
        sentences = [re.split(r"(?<=[.!?])\s+", item.sentence.strip()) for item in items]
        phrases = [[_phrases(sentence) for sentence in group] for group in sentences]
        own_items = []
        for i, item in enumerate(items):
            elsewhere = set().union(*(p for j, group in enumerate(phrases) if j != i for p in group))
            own = [sentence for sentence, said in zip(sentences[i], phrases[i]) if not said & elsewhere]
            if own:
                own_items.append(item.model_copy(update={"sentence": " ".join(own)}))
        items = own_items
        for item, text in zip(items, drop_repeats([normalize_text(item.sentence) for item in items])[0]):
            about = next(description for key, _, description in citable if key == item.key)
            others = [description for key, _, description in citable if key != item.key]
            sentence = self._cited_sentence(item.key, text, about, others)
            if sentence and item.key not in written:
                written[item.key] = sentence
        return " ".join(written.get(key) or related_work_sentence(key, title) for key, title, _ in citable) + "\n"

    def _cited_sentence(self, key: str, sentence: str, about: str, others: Sequence[str] = ()) -> str | None:
        """The model's `sentence` on reference `key`, citing it; None unless it passes code's checks and shares a
        word with what is known of the reference (`about`): "This section could not be written." does not. Nor
        does a sentence that describes another reference in its words (three words in a row from what is known of
        one of the `others` and not of this one): a small model mixes the references up."""
        text = normalize_text(sentence).strip()
        if key not in cited_keys(text):
            text = re.sub(r"[\s.!?]*$", lambda _: f" \\citep{{{key}}}.", text, count=1)
        plain = re.sub(r"\\cite\w*\{[^{}]*\}", "", text).lower()
        words = set(re.findall(r"[a-z]{5,}", plain))
        if not words & set(re.findall(r"[a-z]{5,}", about.lower())) or self.check("related-work", text):
            return None
        own, said = _phrases(about, 3), _phrases(plain, 3)
        if any(said & (_phrases(other, 3) - own) for other in others):
            return None
        return text

    # -- title and abstract ---------------------------------------------------------------------------------

    def write_title_abstract(self) -> None:
        self.report("title and abstract")
        messages = self.opening(ABSTRACT)
        if self.feedback:
            messages[-1] = Message(role="user", content=messages[-1].content + (
                f"\n\nThe current title: {self.title}"))
        draft = self.ask(messages, TitleAbstract)
        if draft is None:  # code's text: no model answer to check, nothing to ask again
            self.texts[ABSTRACT] = self.previous.get(ABSTRACT) or self.fallback_text(ABSTRACT)
            return
        text = draft.abstract
        self.title = _plain_title(draft.title) or self.title
        if not self.feedback:
            problems = self.check(ABSTRACT, normalize_text(text))
            notes = f"\nCode also found these problems:\n{_bullets(problems)}" if problems else ""
            revision = self.ask([*messages, Message(role="assistant", content=draft.model_dump_json()),
                                 Message(role="user", content=REFLECT.format(what="title and abstract") + notes)],
                                TitleAbstractRevision)
            if revision is not None:
                text = revision.abstract
                self.title = _plain_title(revision.title) or self.title
        self.texts[ABSTRACT] = self.settle(ABSTRACT, text, messages)

    # -- citations -----------------------------------------------------------------------------------------

    def _cite(self, paper: Paper) -> str | None:
        """Add `paper` to the bibliography; its key (a template entry's when it is the same paper)."""
        norm = normalize_title(paper.title)
        for key, entry in self.template_entries.items():
            if norm and normalize_title(latex_to_text(entry.get("title"))) == norm:
                return key
        existing = self.bibliography.key_for(paper)
        if existing:
            return existing
        key = self.bibliography.add(paper)
        if key in self.template_entries:  # a different paper with a template entry's key: leave it out
            return None
        self.references[key] = paper
        return key

    def find_citations(self) -> None:
        rounds = self.ctx.options.citation_rounds
        if rounds == 0 or self.feedback:
            return
        from scientist_core import search_with_fallback

        searchers = self.ctx.searchers()
        if not searchers:
            self.problem("no literature searcher is installed: the paper cites nothing it found")
            return
        queries: list[str] = []
        failures: list[str] = []
        self._choose_citations("the novelty check's searches", self._novelty_papers(), f"{self.context()}\n\n"
                               f"{self._paper_so_far()}\n\nThe novelty check searched the literature for this idea.")
        for round_ in range(1, rounds + 1):
            # the sections' opening (system prompt and context) comes first, so a local model's KV cache and
            # hosted prompt caching carry it from the abstract through these rounds to the sections
            prompt = (f"Queries tried so far: {'; '.join(queries) or 'none'}\n\n"
                      f"Round {round_} of {rounds} of the literature search for this paper's references: give one "
                      "search query for work it should cite (the method it builds on, the datasets, closely related "
                      "approaches) that the references listed above do not cover, or done=true when the paper "
                      "cites enough.")
            opening = f"{self.context()}\n\n{self._paper_so_far()}\n\n{prompt}"
            step = self.ask([Message(role="system", content=self.system()), Message(role="user", content=opening)],
                            CitationQuery)
            query = " ".join(step.query.split())[:300] if step is not None else ""
            if step is None or step.done or not query:
                if self.references or round_ > 1:
                    break
                query = self.title  # a paper with no references at all: search for its own topic at least once
            query = query[:300]
            queries.append(query)
            papers, source, failed = search_with_fallback(searchers, query, SEARCH_LIMIT)
            failures += [str(failure) for failure in failed]
            self.report(f"citations: round {round_}: {query!r}: {len(papers)} result(s) from {source or 'no searcher'}")
            self._choose_citations(repr(query), papers, opening)
        if failures and not self.references:
            self.problem(f"literature search failed: {failures[-1]}")
        (self.latex_dir / CITATIONS_FILE).write_text(
            json.dumps([paper.model_dump(mode="json") for paper in self.references.values()], indent=1))

    def _novelty_papers(self) -> list[Paper]:
        """What the idea's novelty check found (stored with the idea; none when it was skipped)."""
        row = next((r for r in self.ctx.store.ideas(self.ctx.run_id) if r["name"] == self.idea.name), None)
        found = (row or {}).get("novelty") or {}
        return [Paper.model_validate(item) for item in found.get("papers", [])]

    def _choose_citations(self, where: str, papers: list[Paper], opening: str) -> None:
        """The model picks which of `papers` (results of `where`) the paper cites; they join its bibliography."""
        papers = [paper for paper in papers if paper.title.strip() and self.bibliography.key_for(paper) is None]
        if not papers:
            return
        listing = "\n".join(_describe(number, paper) for number, paper in enumerate(papers[:SEARCH_LIMIT], 1))
        choice = self.ask([Message(role="system", content=self.system()), Message(role="user", content=(
            f"{opening}\n\nResults of {where}:\n{listing}\n\nWhich of these should the paper cite? Give their "
            "numbers; an empty list when none is relevant."))], CitationChoice)
        for number in dict.fromkeys(choice.indices if choice else []):
            if 1 <= number <= min(len(papers), SEARCH_LIMIT):
                self._cite(papers[number - 1])

    # -- sections ---------------------------------------------------------------------------------------------

    def write_free(self) -> None:
        """The model writes every section, checked and repaired by code; repeats of earlier sections go."""
        self.write_title_abstract()
        if self.unimplemented:  # the model's title would name the idea's change: code's names what was run
            self.title = self.study.title()
        self.find_citations()
        for name in WRITING_ORDER:
            self.write_section(name)
        names = [ABSTRACT, *(section.name for section in SECTIONS)]
        written = [self.texts.get(name, "") for name in names]
        for name, before, text in zip(names, written, self.without_repeats(written)):
            shortened = text != before and len(text.strip()) < MIN_SECTION_CHARS
            self.texts[name] = self.fallback_text(name, "only repeats were left of the") if shortened else text
        self.with_notices()

    def write_section(self, name: str) -> None:
        self.report(f"{_heading(name)}")
        messages = self.opening(name)
        draft = self.ask(messages, SectionText)
        if draft is None:  # code's text: no model answer to check, nothing to ask again
            self.texts[name] = self.previous.get(name) or self.fallback_text(name)
            return
        text = draft.latex
        if name not in self.previous:  # a revision after review is one answer, not a draft to reflect on
            problems = self.check(name, normalize_text(text))
            notes = f"\nCode also found these problems:\n{_bullets(problems)}" if problems else ""
            revision = self.ask([*messages, Message(role="assistant", content=text),
                                 Message(role="user", content=REFLECT.format(what=_heading(name)) + notes)],
                                SectionRevision)
            if revision is not None and revision.latex.strip():
                text = revision.latex
        self.texts[name] = self.settle(name, text, messages)

    # -- files ----------------------------------------------------------------------------------------------

    def cited(self) -> list[str]:
        keys: list[str] = []
        for text in self.texts.values():
            keys += cited_keys(text)
        keys += cited_keys((self.latex_dir / self.main).read_text(errors="replace"))
        known = set(self.references) | set(self.template_entries)
        return [key for key in dict.fromkeys(keys) if key in known]

    def write_sources(self) -> None:
        d = self.latex_dir
        (d / META_FILE).write_text(meta_tex(self.title, self.results, self.facts))
        (d / TITLE_FILE).write_text(self.title + "\n")
        (d / ABSTRACT_FILE).write_text(self.texts.get(ABSTRACT, ""))
        for section in SECTIONS:
            (d / section.file).write_text(self.texts.get(section.name, ""))
        (d / TABLE_FILE).write_text(results_table_tex(self.runs, self.results))
        (d / RUNS_TABLE_FILE).write_text(runs_table_tex(self.runs, self.baseline))
        (d / DISCLOSURE_FILE).write_text(disclosure_tex(self.models()))
        (d / PROVENANCE_FILE).write_text(json.dumps(self.provenance(), indent=1))
        figures = [figure_tex(file, caption, label) for file, caption, label in self.figures]
        shown = [section for section in SECTIONS  # a section without text is left out; Method and Results have tables
                 if section.name in ("method", "results") or self.texts.get(section.name, "").strip()]
        (d / BODY_FILE).write_text(body_tex(shown, figures))
        searched = {entry.key: entry for entry in parse_bibtex(self.bibliography.render())}
        entries = []
        for key in self.cited():
            entry = self.template_entries.get(key) or searched.get(key)
            if entry is not None:
                entries.append(entry.render())
        (d / "references.bib").write_text("\n".join(entries))

    def models(self) -> list[str]:
        """The models that wrote the paper and planned its runs: those the run's ledger records answering, the
        reviewers' apart; the configured model where the ledger has none."""
        rows = self.ctx.store.models_by_stage(self.ctx.run_id)
        used = [row["model"] for row in rows if not row["stage"].startswith("review")]
        return list(dict.fromkeys(used)) or [m for m in (self.ctx.options.model or self.ctx.settings.model,) if m]

    def provenance(self) -> dict[str, Any]:
        """What code knew of the runs when it wrote the paper (generated/provenance.json), for a checker of it."""
        return {"idea": self.idea.name, "idea_not_implemented": self.unimplemented, "models": self.models(),
                "runs": [{"index": run.index, "label": run_label(run), "knob_changes": run.knob_changes,
                          "code_diff": run.code_diff, "machine": dict(machine)}
                         for run, (_, machine) in zip(self.runs, self.machines)]}

    # -- compiling --------------------------------------------------------------------------------------------

    def issues(self, result: CompileResult, warnings: list[str]) -> tuple[dict[str, list[str]], list[str]]:
        """Compile errors and chktex warnings by the section they come from (errors first), and the errors that
        come from no section's file."""
        files = {section.file: section.name for section in SECTIONS} | {ABSTRACT_FILE: ABSTRACT}
        by_name: dict[str, list[str]] = {}
        elsewhere: list[str] = []
        if not result.ok:
            for error in result.errors:
                match = re.match(r"^(?:\./)?(\S+?\.tex):(\d+):\s*(.*)$", error)
                name = files.get(match.group(1)) if match else None
                if name is None:
                    elsewhere.append(error)
                    continue
                if "==> Fatal error occurred" in match.group(3):
                    continue
                by_name.setdefault(name, []).append(
                    f"line {match.group(2)}: {match.group(3)}{self._line_text(name, int(match.group(2)))}")
        for warning in warnings:
            match = re.match(r"^(?:\./)?(\S+?\.tex):(\d+):(\d+):(\d+):(.*)$", warning)
            name = files.get(match.group(1)) if match else None
            if name is not None:
                by_name.setdefault(name, []).append(
                    f"line {match.group(2)}, column {match.group(3)}: warning: {match.group(5).strip()}"
                    f"{self._line_text(name, int(match.group(2)))}")
        if not result.ok and not by_name and not elsewhere:
            elsewhere.append("the compilation failed without an error line (see the log)")
        return by_name, elsewhere

    def _line_text(self, name: str, line: int) -> str:
        lines = self.texts.get(name, "").split("\n")
        return f" (the line reads: {lines[line - 1].strip()[:200]})" if 0 < line <= len(lines) else ""

    def fix_from_compiler(self, name: str, issues: list[str]) -> None:
        text = self.texts[name]
        numbered = "\n".join(f"{n:4d}| {line}" for n, line in enumerate(text.split("\n"), 1))
        messages = self.opening(name)
        answer = self.ask([*messages, Message(role="assistant", content=text), Message(role="user", content=(
            f"Compiling the paper reported these problems in your {_heading(name)} (line numbers refer to your "
            f"text, numbered here):\n{_bullets(issues)}\n\n{numbered}\n\nGive the corrected text, without the line "
            "numbers."))], SectionText)
        if answer is not None and answer.latex.strip():
            self.texts[name] = self.settle(name, _strip_line_numbers(answer.latex), messages)

    def compile(self) -> Path | None:
        """Compile with the fix rounds, then the fallbacks; the PDF, or None (the reason is in problems)."""
        compiler = self.ctx.plugin("compiler")
        readiness = compiler.readiness()
        self.write_sources()
        if not readiness.ready:
            self.problem(f"no PDF: the LaTeX compiler is not ready ({readiness.detail})")
            return None
        rounds = 0 if self.structured else self.ctx.options.writeup_fix_rounds  # code's text is not the model's to fix
        snapshot: dict[str, str] | None = None
        result = CompileResult(ok=False)
        for round_ in range(rounds + 1):
            self.write_sources()
            result = compiler.compile(self.latex_dir, self.main)
            by_name, _ = self.issues(result, compiler.check(self.latex_dir, self.main))
            self.report(f"compile {round_ + 1}: {'ok' if result.ok else 'failed'}, "
                        f"{sum(map(len, by_name.values()))} issue(s) in sections")
            if result.ok:
                snapshot = dict(self.texts)
                if not by_name:
                    break
            if round_ == rounds or not by_name:
                break
            self.fix_rounds_used += 1
            for name, lines in by_name.items():
                self.fix_from_compiler(name, lines)
        if not result.ok and snapshot is not None:
            self.report("the fixes broke the build: back to the last version that compiled")
            self.texts = snapshot
            self.write_sources()
            result = compiler.compile(self.latex_dir, self.main)
        if not result.ok:
            by_name, _ = self.issues(result, [])
            everything = list(self.texts)
            for attempt in ([name for name in everything if name in by_name], everything):
                if not attempt:
                    continue
                self.problem(f"LaTeX errors left after the fix rounds ({'; '.join(result.errors[:2])}): the "
                             f"{', '.join(_heading(n) for n in attempt)} typeset as plain text")
                for name in attempt:
                    self.texts[name] = plain_text_section(self.texts[name], self.rules())
                self.write_sources()
                result = compiler.compile(self.latex_dir, self.main)
                if result.ok:
                    break
        if not result.ok and self.figures:
            self.problem(f"LaTeX still failed ({'; '.join(result.errors[:2])}): the figures were left out")
            self.figures = []
            self.write_sources()
            result = compiler.compile(self.latex_dir, self.main)
        if not result.ok:
            self.problem(f"no PDF: LaTeX still fails: {'; '.join(result.errors[:5]) or 'see the log'}")
            return None
        return Path(result.pdf_path)

    # -- all of it ------------------------------------------------------------------------------------------

    # -- the whole paper's check ------------------------------------------------------------------------------

    def evidence(self) -> Evidence:
        """What the host recorded, which every item of the paper must trace to (claims.py)."""
        try:
            work = frozenset(self.ctx.template.quick_knobs)
        except Exception:  # as for _baseline_knobs: no knob model, no knobs that set the amount of work
            work = frozenset()
        return Evidence(runs=self.runs, facts=self.facts, baseline=self.baseline,
                        description=self.ctx.template.description, work_knobs=work,
                        template_keys=frozenset(self.template_entries),
                        prompt_ngrams=self.rules().prompt_ngrams | instruction_ngrams(),
                        metrics=self.ctx.template.metrics, deterministic=self.ctx.template.deterministic)

    def check_claims(self) -> CheckReport:
        """The assembled paper, checked as a whole: its model-written sentences that fail go back to the model once
        with their problems (the free style with fix rounds; the structured style's pieces were checked one by
        one); what still fails is removed by code; a failing title or caption becomes code's."""
        files = {section.file: section.name for section in SECTIONS} | {ABSTRACT_FILE: ABSTRACT}
        self.write_sources()
        report = check_paper(self.latex_dir, self.evidence())
        by_name: dict[str, list] = {}
        for item in report.problems:
            if item.file in files and item.start >= 0:
                by_name.setdefault(files[item.file], []).append(item)
        if by_name and not self.structured and self.ctx.options.writeup_fix_rounds:
            for name, items in by_name.items():
                text = self.texts.get(name, "")
                answer = self.ask([*self.opening(name), Message(role="assistant", content=text), Message(
                    role="user", content=f"Checking the whole paper against the records found these problems in "
                    f"your {_heading(name)}:\n{_bullets([f'{i.problem}: {i.text}' for i in items])}\nRewrite the "
                    "whole text fixing them, changing nothing else.")], SectionText)
                if answer is not None and answer.latex.strip():
                    self.texts[name] = normalize_text(answer.latex)
            self.write_sources()
            report = check_paper(self.latex_dir, self.evidence())
        removed = 0
        for name in {files[item.file] for item in report.problems if item.file in files and item.start >= 0}:
            spans = [(item.start, item.end) for item in report.problems if files.get(item.file) == name
                     and item.start >= 0]
            self.texts[name] = remove_sentences(self.texts[name], spans)
            removed += len(spans)
            if len(self.texts[name].strip()) < MIN_SECTION_CHARS and name != ABSTRACT:
                self.texts[name] = self.fallback_text(name, "the whole paper's check left nothing of the")
        for item in report.problems:
            if item.fault == "title_claim":
                self.title = self.study.title()
            elif item.fault == "caption_claim":
                self.figures = [(file, f"{Path(file).stem.replace('-', ' ')} for every run."
                                 if latex_escape(caption) == item.text else caption, label)
                                for file, caption, label in self.figures]
        if removed or report.problems:
            self.report(f"claims: {len(report.problems)} problem(s) left after the model's round; {removed} "
                        "sentence(s) removed by code")
            self.write_sources()
            report = check_paper(self.latex_dir, self.evidence())
        return report

    def run(self) -> WriteupResult:
        self.prepare()
        if self.structured:
            self.write_structured()
        else:
            self.write_free()
        self.check_claims()
        pdf = self.compile()
        final: Path | None = None
        if pdf is not None:
            final = self.workspace / f"{self.idea.name}{'-improved' if self.feedback else ''}.pdf"
            copy_out(pdf.parent, pdf.name, final)  # the compile ran model-written TeX: take the PDF back as output
            self.ctx.store.add_artifact(self.ctx.run_id, "paper", final, {
                "idea": self.idea.name, "title": self.title, "citations": len(self.cited()),
                "fix_rounds": self.fix_rounds_used, "problems": self.problems, "improved": bool(self.feedback),
                "idea_not_implemented": self.unimplemented})
        self.report(f"{'PDF ' + str(final) if final else 'no PDF'}; {len(self.cited())} reference(s), "
                    f"{len(self.problems)} problem(s)")
        return WriteupResult(pdf_path=final, latex_dir=self.latex_dir, citations=len(self.cited()),
                             fix_rounds_used=self.fix_rounds_used, problems=self.problems,
                             idea_not_implemented=self.unimplemented)


def _describe(number: int, paper: Paper) -> str:
    authors = ", ".join(paper.authors[:3]) + (" et al." if len(paper.authors) > 3 else "")
    abstract = f"\n   {paper.abstract[:300]}" if paper.abstract else ""
    return f"{number}. {paper.title} ({authors}; {paper.venue} {paper.year or ''}){abstract}"


def _plain_title(title: str) -> str:
    text = latex_to_text(title) if "\\" in title or "{" in title or "$" in title else title
    return " ".join(text.replace("\n", " ").split()).strip(" .")[:200]


def _strip_line_numbers(text: str) -> str:
    lines = text.split("\n")
    if sum(bool(re.match(r"^\s*\d+\|", line)) for line in lines) >= max(1, len(lines) // 2):
        lines = [re.sub(r"^\s*\d+\| ?", "", line) for line in lines]
    return "\n".join(lines)


class LatexWriter(Writer):
    name = "latex"
    description = "a LaTeX paper: prose by the model, section by section and checked; numbers, table, figures and " \
                  "references by code"

    def preflight(self, skeleton: Path, compiler: Any, work_dir: Path) -> list[str]:
        return preflight_latex(skeleton, compiler, work_dir)

    def skeleton_problems(self, skeleton: Path) -> list[str]:
        """The contract's needs (docs/writeup.md) and the keys its main file cites that its references.bib
        does not hold: each would print as "?" in every paper."""
        main, bib = skeleton / MAIN_FILE, skeleton / "references.bib"
        if not main.is_file():
            return [f"latex/ has no {MAIN_FILE}"]
        tex = main.read_text(errors="replace")
        held = {entry.key for entry in parse_bibtex(bib.read_text(errors="replace"))} if bib.is_file() else set()
        missing = [key for key in cited_keys(tex) if key not in held]
        return [f"latex/{MAIN_FILE}: {problem}" for problem in skeleton_problems(tex)] + (
            [f"latex/{MAIN_FILE} cites {', '.join(missing)}, which latex/references.bib does not hold"]
            if missing else [])

    def check_paper(self, ctx: RunContext, latex_dir: Path) -> PaperCheck:
        """claims.check_paper over the paper in `latex_dir`, against the records of its run (scientist check)."""
        from scientist_paper.evidence import evidence_for

        report = check_paper(latex_dir, evidence_for(latex_dir, ctx.template, ctx.options.quick))
        return PaperCheck(items=len(report.items), problems=report.problem_lines(), report=report.json())

    def write(self, ctx: RunContext, idea: Idea, workspace: Path, runs: list[RunRecord], figures: list[Figure],
              feedback: str | None = None) -> WriteupResult:
        """With `feedback` the paper is revised in `<workspace>/latex-improved/`, from the sections and references
        of `<workspace>/latex/`. The PDF is copied to `<workspace>/<idea>.pdf` (`<idea>-improved.pdf`) and recorded
        as the run's `paper` artifact."""
        return _Writer(ctx, idea, workspace, runs, figures, feedback).run()
