"""The LaTeX a paper is built from, generated and checked by code: no model call happens here.

The write-up stage (scientist_core.pipeline.writeup) asks a model for the prose of each section; this module
holds everything around that prose that must not depend on a model being right:

- the numbers: `result_values(runs)` turns the recorded results into `\\result{KEY}` values
  (`run1.circles.val_accuracy`, `run1.circles.val_accuracy.stderr`; `run0` is the baseline), formatted with
  the same decimals across the runs of one metric; `meta_tex(...)` defines them for LaTeX together with the
  title, the abstract and the machine the runs used (facts from `pipeline.machine`);
- what code places: `results_table_tex(...)`, `figure_tex(...)`, `body_tex(...)`;
- what code writes from the records alone: `Study(...)`, the title, abstract, method, setup, results and
  conclusions of the structured style (each run's knob changes, its comparisons with the baseline);
- `SectionRules` and `check_section(text, rules)`: what a model's section may not contain (typed numbers, unknown
  `\\result` keys and citations, "Run 2", forbidden commands, unbalanced braces, prompt text, Markdown, a knob
  said to move the wrong way ...), as problems to feed back; `repair_section(text, rules)`: the same problems
  removed by code; `plain_text_section(text, rules)`: the last resort, the section as escaped plain text that
  always compiles, keeping its `\\result` values and citations; `drop_repeats(texts)`: sentences repeated
  across the parts of a paper kept in the first part only.

The LaTeX contract between the core and a template's skeleton is in docs/writeup.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scientist_core.pipeline.context import RunRecord

__all__ = [
    "ABSTRACT_FILE", "BODY_FILE", "FIGURES_DIR", "GENERATED_DIR", "META_FILE", "Comparison", "KnobChange", "Problem",
    "ResultValue", "SECTIONS", "Section", "SectionRules", "Study", "TABLE_FILE", "TABLE_LABEL", "body_tex",
    "check_section", "cited_keys", "compare_with_baseline", "drop_repeats", "env_macros", "figure_tex", "labels_in",
    "latex_escape", "meta_tex", "normalize_text", "numbers_of", "plain_text_section", "record_terms",
    "related_work_sentence", "repair_section", "result_values", "results_table_tex", "run_label", "sanitize_key",
    "title_is_supported", "word_ngrams",
]

GENERATED_DIR = "generated"
META_FILE = "generated/meta.tex"
BODY_FILE = "generated/body.tex"
ABSTRACT_FILE = "generated/abstract.tex"
TABLE_FILE = "generated/results-table.tex"
FIGURES_DIR = "figures"
TABLE_LABEL = "tab:results"


@dataclass(frozen=True)
class Section:
    """One section of the paper body: its file is `generated/sec-<name>.tex`, under `\\section{heading}`."""

    name: str
    heading: str
    label: str

    @property
    def file(self) -> str:
        return f"{GENERATED_DIR}/sec-{self.name}.tex"


# In the order they appear in the paper.
SECTIONS: tuple[Section, ...] = (
    Section("introduction", "Introduction", "sec:intro"),
    Section("related-work", "Related Work", "sec:related"),
    Section("background", "Background", "sec:background"),
    Section("method", "Method", "sec:method"),
    Section("experimental-setup", "Experimental Setup", "sec:experimental"),
    Section("results", "Results", "sec:results"),
    Section("conclusion", "Conclusions and Future Work", "sec:conclusion"),
)


# -- text -------------------------------------------------------------------------------------------------

_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
             "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
             ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: whitespace collapsed, specials escaped, non-ASCII as LaTeX macros."""
    escaped = "".join(_SPECIALS.get(char, char) for char in " ".join(str(text).split()))
    if not escaped.isascii():
        escaped = _NON_ASCII.sub(lambda m: _non_ascii_encoder().unicode_to_latex(m.group()), escaped)
    return escaped


# -- the machine (gathered by pipeline.machine) --------------------------------------------------------

_ENV_MACROS = {"cpu": "EnvCPU", "cores": "EnvCores", "ram": "EnvRAM", "gpu": "EnvGPU", "os": "EnvOS",
               "python": "EnvPython", "numpy": "EnvNumpy", "torch": "EnvTorch"}


def env_macros(facts: Mapping[str, str]) -> dict[str, str]:
    """Macro name (without backslash) -> plain-text value, for the facts that are known."""
    return {_ENV_MACROS[key]: str(value) for key, value in facts.items() if key in _ENV_MACROS and value}


# -- the numbers -----------------------------------------------------------------------------------------

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def sanitize_key(part: str) -> str:
    """A dataset or metric name as it may appear inside `\\result{...}`: letters, digits, `_ . -`."""
    return _KEY_UNSAFE.sub("-", part.strip()).strip("-") or "x"


@dataclass(frozen=True)
class ResultValue:
    """One recorded number: `plain` is what a model is shown, `latex` what `\\result{key}` typesets."""

    key: str
    value: float
    plain: str
    latex: str
    run: int
    dataset: str
    metric: str
    stderr: bool = False


def _decimals(values: Sequence[float]) -> int | None:
    """Decimals for one metric across runs: 3 significant digits of the largest value, at least 2 of the
    smallest, more (up to 3 extra) where different values would print the same; None: scientific notation."""
    magnitudes = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not magnitudes:
        return 0
    top, bottom = max(magnitudes), min(magnitudes)
    if top >= 1e6 or top < 1e-3:
        return None
    decimals = max(0, 2 - math.floor(math.log10(top)))
    if bottom >= 1e-4:
        decimals = max(decimals, min(6, 1 - math.floor(math.log10(bottom))))
    distinct = {v for v in values if math.isfinite(v)}
    for extra in range(4):
        if len({round(v, decimals + extra) for v in distinct}) == len(distinct):
            return decimals + extra
    return decimals + 3


def _format(value: float, decimals: int | None) -> tuple[str, str]:
    """(plain, latex) forms of `value`."""
    if not math.isfinite(value):
        return ("not a number" if math.isnan(value) else "infinite"), r"\textit{n/a}"
    if decimals is None:
        mantissa, _, exponent = f"{value:.2e}".partition("e")
        plain = f"{mantissa}e{int(exponent)}"
        sign = r"\ensuremath{-}" if mantissa.startswith("-") else ""
        return plain, f"{sign}{mantissa.lstrip('-')}\\ensuremath{{\\times 10^{{{int(exponent)}}}}}"
    plain = f"{value:.{decimals}f}"
    if plain.startswith("-") and float(plain) == 0:
        plain = plain[1:]
    latex = r"\ensuremath{-}" + plain[1:] if plain.startswith("-") else plain
    return plain, latex


def result_values(runs: Sequence["RunRecord"]) -> dict[str, ResultValue]:
    """Every recorded mean and standard error of `runs` by `\\result` key, the baseline (index 0) first."""
    ordered = sorted(runs, key=lambda run: run.index)
    groups: dict[tuple[str, str], list[float]] = {}
    for run in ordered:
        for dataset, result in run.results.datasets.items():
            for metric, value in result.means.items():
                groups.setdefault((dataset, metric), []).append(float(value))
    decimals = {group: _decimals(values) for group, values in groups.items()}
    values: dict[str, ResultValue] = {}
    for run in ordered:
        for dataset, result in run.results.datasets.items():
            for metric, value in result.means.items():
                key = f"run{run.index}.{sanitize_key(dataset)}.{sanitize_key(metric)}"
                places = decimals[(dataset, metric)]
                plain, latex = _format(float(value), places)
                values[key] = ResultValue(key, float(value), plain, latex, run.index, dataset, metric)
                if metric in result.stderrs:
                    stderr = float(result.stderrs[metric])
                    plain, latex = _format(stderr, places)
                    if places is not None and stderr > 0 and float(plain) == 0:
                        plain, latex = _format(stderr, None if stderr < 1e-3 else -math.floor(math.log10(stderr)))
                    values[f"{key}.stderr"] = ResultValue(f"{key}.stderr", stderr, plain, latex, run.index,
                                                          dataset, metric, stderr=True)
    return values


def run_label(run: "RunRecord") -> str:
    """How the paper names a run (plain text): `baseline`, its knob changes, or the start of its description."""
    if run.index == 0:
        return "baseline"
    if run.knob_changes and not run.code_changed:
        parts = []
        for name, value in run.knob_changes.items():
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"{name}={shown}")
        return ", ".join(parts)
    text = " ".join(run.description.split())
    first = re.split(r"(?<=[.;:])\s", text, maxsplit=1)[0].rstrip(".;:")
    if len(first) > 60:
        first = first[:57].rsplit(" ", 1)[0] + "..."
    return first or f"variant {run.index}"


# -- files written by code ---------------------------------------------------------------------------------

def meta_tex(title: str, results: Mapping[str, ResultValue], facts: Mapping[str, str]) -> str:
    """`generated/meta.tex`: \\PaperTitle (plain text, escaped here), \\PaperAbstract (reads generated/abstract),
    \\result{KEY} with every recorded value, and the machine's \\Env... macros."""
    lines = [
        "% Written by scientist from the recorded runs; do not edit: every number here is a measurement.",
        r"\RequirePackage{graphicx}  % the figures and the results table need these; loading twice is harmless",
        r"\RequirePackage{booktabs}",
        f"\\newcommand{{\\PaperTitle}}{{{latex_escape(title) or 'Untitled'}}}",
        f"\\newcommand{{\\PaperAbstract}}{{\\input{{{ABSTRACT_FILE.removesuffix('.tex')}}}}}",
        r"\makeatletter",
        r"\newcommand{\result}[1]{\@ifundefined{scientist@result@#1}{\textbf{??}%",
        r"  \PackageWarning{scientist}{no recorded result #1}}{\@nameuse{scientist@result@#1}}}",
    ]
    for key, value in results.items():
        lines.append(f"\\@namedef{{scientist@result@{key}}}{{{value.latex}}}")
    lines.append(r"\makeatother")
    for macro, value in env_macros(facts).items():
        lines.append(f"\\newcommand{{\\{macro}}}{{{latex_escape(value)}}}")
    return "\n".join(lines) + "\n"


def _words_of(name: str) -> str:
    """A metric's or a knob's name as words: "val accuracy", "learning rate"."""
    return latex_escape(name.replace("_", " "))


def results_table_tex(runs: Sequence["RunRecord"], results: Mapping[str, ResultValue]) -> str:
    """`generated/results-table.tex`: one row per dataset and run (baseline first), one column per metric,
    mean ± standard error where recorded; every number is a `\\result` of meta.tex."""
    ordered = sorted(runs, key=lambda run: run.index)
    datasets = list(dict.fromkeys(d for run in ordered for d in run.results.datasets))
    metrics = list(dict.fromkeys(m for run in ordered for r in run.results.datasets.values() for m in r.means))
    if not datasets or not metrics:
        return "% no results were recorded\n"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{Results of every run: the mean over seeds $\pm$ its standard error where one was recorded. "
        r"The baseline is the unchanged experiment; every other run is named by what it changed.}",
        f"\\label{{{TABLE_LABEL}}}",
        r"\small",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        f"\\begin{{tabular}}{{ll{'r' * len(metrics)}}}",
        r"\toprule",
        "Dataset & Run & " + " & ".join(_words_of(m) for m in metrics) + r" \\",
    ]
    for dataset in datasets:
        lines.append(r"\midrule")
        first = True
        for run in ordered:
            if dataset not in run.results.datasets:
                continue
            cells = [latex_escape(dataset) if first else "", latex_escape(run_label(run))]
            first = False
            for metric in metrics:
                key = f"run{run.index}.{sanitize_key(dataset)}.{sanitize_key(metric)}"
                if key not in results:
                    cells.append("--")
                elif f"{key}.stderr" in results:
                    cells.append(f"\\result{{{key}}} $\\pm$ \\result{{{key}.stderr}}")
                else:
                    cells.append(f"\\result{{{key}}}")
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def figure_tex(file: str, caption: str, label: str) -> str:
    """One figure environment; `file` is relative to the LaTeX folder, `caption` plain text."""
    return "\n".join([
        r"\begin{figure}[t]",
        r"\centering",
        f"\\includegraphics[width=0.8\\linewidth,height=0.4\\textheight,keepaspectratio]{{{file}}}",
        f"\\caption{{{latex_escape(caption) or 'A figure drawn by the plot step.'}}}",
        f"\\label{{{label}}}",
        r"\end{figure}",
    ]) + "\n"


def body_tex(sections: Sequence[Section] = SECTIONS, figures: Sequence[str] = (), with_table: bool = True) -> str:
    """`generated/body.tex`: each section's heading and file in order; the Results section also gets the
    results table and the figure environments (`figures`, LaTeX as from figure_tex)."""
    lines = ["% Written by scientist; the sections' text is in generated/sec-*.tex."]
    for section in sections:
        lines += ["", f"\\section{{{section.heading}}}", f"\\label{{{section.label}}}",
                  f"\\input{{{section.file.removesuffix('.tex')}}}"]
        if section.name == "results":
            if with_table:
                lines.append(f"\\input{{{TABLE_FILE.removesuffix('.tex')}}}")
            lines += [figure.rstrip("\n") for figure in figures]
    return "\n".join(lines) + "\n"


# -- comparing with the baseline -----------------------------------------------------------------------------

_HIGHER_IS_BETTER = re.compile(r"tokens_per|per_s(ec(ond)?)?\b|throughput", re.IGNORECASE)
_LOWER_IS_BETTER = re.compile(r"step|time|loss|err|kl\b|kl_|divergence|perplexity|ppl|nll|mse|mae|bpc|bpd|"
                              r"latency|regret", re.IGNORECASE)
_HIGHER_IS_BETTER_TOO = re.compile(r"acc|f1|auc|precision|recall|bleu|rouge|psnr|ssim|reward|score|win",
                                   re.IGNORECASE)


def measures_time(metric: str) -> bool:
    """A timing or a speed (training_time, train_time_s, tokens_per_s): a measure of the machine and its load,
    not of the method; it differs between two runs of the same code, so no prompt shows it and no comparison of
    the paper's text rests on it (the results table still lists it)."""
    return bool(re.search(r"time|per_s|_s$|seconds|tokens_per|throughput|latency", metric, re.I))


def better_direction(metric: str) -> str | None:
    """"lower" or "higher": which way `metric` improves, judged by its name; None when the name does not say
    (steps and times to reach a target, losses, errors and divergences go down; accuracies and rates go up)."""
    if _HIGHER_IS_BETTER.search(metric):
        return "higher"
    if _LOWER_IS_BETTER.search(metric):
        return "lower"
    if _HIGHER_IS_BETTER_TOO.search(metric):
        return "higher"
    return None


@dataclass(frozen=True)
class Comparison:
    """A run's value against the baseline's, with the two standard errors when both runs recorded them."""

    direction: str          # "higher", "lower" or "same" (equal at the precision shown)
    clear: bool | None      # more than 2 combined standard errors apart; None without standard errors
    better: bool | None     # in the metric's good direction; None when the metric's name does not say

    @property
    def improvement(self) -> bool:
        return self.better is True and self.clear is not False

    @property
    def worse(self) -> bool:
        """Worse than the baseline, and not within 2 standard errors of it (a single seed's worse is worse)."""
        return self.better is False and self.clear is not False and self.direction != "same"

    @property
    def proven(self) -> bool:
        """An improvement by more than 2 combined standard errors: what a single seed can never show."""
        return self.better is True and self.clear is True

    def stated(self) -> str:
        """This comparison in the words of code's own prose: "better" only when proven, a worse result plainly."""
        if self.direction == "same":
            return "the same as the baseline's at the precision shown"
        if self.clear:
            quality = {True: " (better)", False: " (worse)", None: ""}[self.better]
            return f"{self.direction}{quality} than the baseline's by more than two standard errors"
        if self.clear is False:
            return f"{self.direction} than the baseline's but within two standard errors: no clear difference"
        if self.better is False:
            return f"{self.direction} (worse) than the baseline's, from a single seed"
        return f"{self.direction} than the baseline's, from a single seed: no clear difference"

    def describe(self) -> str:
        if self.direction == "same":
            return "the same as the baseline at this precision"
        quality = {True: "better", False: "worse", None: ""}[self.better]
        text = f"{self.direction}{f' ({quality})' if quality else ''} than the baseline"
        if self.clear is False:
            return f"{text} but within 2 standard errors: not a clear difference"
        return f"{text} by more than 2 standard errors" if self.clear else text


def compare_with_baseline(value: ResultValue, results: Mapping[str, ResultValue]) -> Comparison | None:
    """How `value` (a mean of a run other than the baseline) compares with the baseline's same metric."""
    base = results.get(f"run0.{value.key.split('.', 1)[1]}")
    if value.run == 0 or value.stderr or base is None or not (math.isfinite(value.value) and
                                                              math.isfinite(base.value)):
        return None
    if value.plain == base.plain:
        return Comparison("same", False, False)
    direction = "higher" if value.value > base.value else "lower"
    good = better_direction(value.metric)
    se, se_base = results.get(f"{value.key}.stderr"), results.get(f"{base.key}.stderr")
    clear = None
    if se is not None and se_base is not None:
        combined = math.sqrt(se.value ** 2 + se_base.value ** 2)
        clear = not (combined > 0 and abs(value.value - base.value) < 2 * combined)
    return Comparison(direction, clear, None if good is None else direction == good)


# -- what code writes from the records ------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _setting_tex(value: Any) -> str:
    """A knob's value as LaTeX: numbers as short as Python prints them, lists as their items."""
    if isinstance(value, float):
        return latex_escape(f"{value:g}")
    if isinstance(value, list | tuple):
        return latex_escape(", ".join(map(str, value)))
    return latex_escape(str(value))


def _and(items: Sequence[str]) -> str:
    return f"{', '.join(items[:-1])} and {items[-1]}" if len(items) > 1 else "".join(items)


@dataclass(frozen=True)
class KnobChange:
    """One setting a run changed: from the baseline's value (None when the template does not say) to its own."""

    name: str
    before: Any
    after: Any

    @property
    def direction(self) -> str:
        """"raised" or "lowered" (numbers), "changed" (anything else), "set" (the baseline's value is unknown)."""
        if self.before is None:
            return "set"
        if _is_number(self.before) and _is_number(self.after) and self.before != self.after:
            return "raised" if self.after > self.before else "lowered"
        return "changed"

    def tex(self) -> str:
        """"the learning rate (\\texttt{learning\\_rate}) raised from 0.0003 to 0.005"."""
        what = f"the {_words_of(self.name)} (\\texttt{{{latex_escape(self.name)}}})"
        if self.direction == "set":
            return f"{what} set to {_setting_tex(self.after)}"
        return f"{what} {self.direction} from {_setting_tex(self.before)} to {_setting_tex(self.after)}"


@dataclass(frozen=True)
class Study:
    """What code knows of one idea's experiments (the recorded runs, the template's settings, the machine), and
    the parts of a paper it writes from that alone: every statement in them is a record or computed from one."""

    runs: Sequence["RunRecord"]
    recorded: Mapping[str, ResultValue]   # result_values(runs)
    baseline: Mapping[str, Any]           # the template's knob values for the baseline
    description: str                      # the template's description, plain text
    fixed: Sequence[str] = ()             # knobs that define the measurement
    quick: Sequence[str] = ()             # knobs the template's quick mode set for these runs
    facts: Mapping[str, str] = field(default_factory=dict)
    knob_notes: Mapping[str, str] = field(default_factory=dict)  # each knob's description in the template's code

    @property
    def variants(self) -> list["RunRecord"]:
        return sorted((run for run in self.runs if run.index != 0), key=lambda run: run.index)

    @property
    def subject(self) -> str:
        """The experiment, from the template's description: "DDPM with an MLP denoiser on 2-D data (...)"."""
        return self.description.split(";")[0].strip().rstrip(".") or "the template's experiment"

    def changes(self, run: "RunRecord") -> list[KnobChange]:
        return [KnobChange(name, self.baseline.get(name), value) for name, value in run.knob_changes.items()]

    def knob_moves(self) -> dict[str, frozenset[tuple[str, str]]]:
        """Each changed knob and the (from, to) values the runs moved it between, as text
        (SectionRules.knob_moves); knobs whose baseline value is unknown are left out."""
        moves: dict[str, set[tuple[str, str]]] = {}
        for run in self.variants:
            for change in self.changes(run):
                if change.before is not None:
                    moves.setdefault(change.name, set()).add((_value_text(change.before), _value_text(change.after)))
        return {name: frozenset(pairs) for name, pairs in moves.items()}

    def knob_directions(self) -> dict[str, frozenset[str]]:
        """Each changed knob and the ways the runs moved it (SectionRules.knob_directions)."""
        directions: dict[str, set[str]] = {}
        for run in self.variants:
            for change in self.changes(run):
                directions.setdefault(change.name, set()).add(change.direction)
        return {name: frozenset(ways) for name, ways in directions.items()}

    def _values(self) -> list[ResultValue]:
        return [value for value in self.recorded.values() if not value.stderr and not measures_time(value.metric)]

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(value.dataset for value in self._values()))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(value.metric for value in self._values()))

    @property
    def has_stderrs(self) -> bool:
        return any(value.stderr for value in self.recorded.values())

    def comparisons(self, run: "RunRecord") -> list[tuple[ResultValue, Comparison]]:
        """Each recorded mean of `run` with its comparison to the baseline's (where the baseline has one)."""
        found = []
        for value in self._values():
            comparison = compare_with_baseline(value, self.recorded) if value.run == run.index else None
            if comparison is not None:
                found.append((value, comparison))
        return found

    # -- the parts of the paper ------------------------------------------------------------------------------

    def title(self, idea_title: str = "") -> str:
        """Plain text naming what was run; `idea_title` leads it (check it with title_is_supported first)."""
        knobs = list(dict.fromkeys(name for run in self.variants for name in run.knob_changes))
        changed = (_and([f"the {name.replace('_', ' ')}" for name in knobs]) if 0 < len(knobs) <= 3
                   else f"{len(knobs)} settings" if knobs else "the code")
        subject = re.sub(r"\s*\([^()]*\)", "", self.subject)
        what = f"changing {changed} of {subject}"
        return f"{idea_title}: {what}" if idea_title else what[0].upper() + what[1:]

    def _changes_tex(self, run: "RunRecord") -> str:
        parts = [change.tex() for change in self.changes(run)]
        if run.code_changed:
            parts.append(f"its code changed, described as ``{latex_escape(run.description)}''")
        return _and(parts) if parts else "nothing recorded"

    def abstract(self) -> str:
        changes = "; ".join(f"{self._changes_tex(run)}" for run in self.variants) or "nothing"
        verdicts = [comparison for run in self.variants for _, comparison in self.comparisons(run)]
        better = sum(c.proven for c in verdicts)
        worse = sum(c.worse for c in verdicts)
        seeds = "" if self.has_stderrs else "; every run used a single seed, without standard errors"
        return (f"We take {latex_escape(self.subject)} and report {len(self.variants)} variant(s) of it, with "
                f"{changes}. Each variant is compared with the unchanged baseline on {len(self.datasets)} "
                f"dataset(s) by {_and([_words_of(m) for m in self.metrics] or ['nothing'])}. Of the {len(verdicts)} "
                f"comparisons, {better} are better than the baseline by more than two standard errors, {worse} are "
                f"worse, and {len(verdicts) - better - worse} show no clear difference{seeds}.\n")

    def introduction(self) -> str:
        return (f"The starting point of this study is {latex_escape(self.subject)}; its baseline is that experiment "
                f"with the template's default settings. This paper reports {len(self.variants)} variant(s) of it, each "
                "compared with the baseline: Section~\\ref{sec:method} lists what each variant changed, "
                "Section~\\ref{sec:experimental} describes the data, the metrics and the machine, and "
                "Section~\\ref{sec:results} gives the comparisons.\n")

    def method(self) -> str:
        items = [f"\\item \\emph{{{latex_escape(run_label(run))}}}: {self._changes_tex(run)}." for run in self.variants]
        return ("Every variant starts from the baseline and changes only what is listed here; the data, the "
                "evaluation and every other setting stay as in the baseline.\n"
                "\\begin{itemize}\n" + "\n".join(items or ["\\item no variant was run."]) + "\n\\end{itemize}\n")

    def background(self) -> str:
        """The settings the variants change, as the template's code describes them, with the baseline's values;
        "" when the code describes none of them."""
        names = list(dict.fromkeys(name for run in self.variants for name in run.knob_changes))
        items = [f"\\item the {_words_of(name)} (\\texttt{{{latex_escape(name)}}}): "
                 f"{latex_escape(self.knob_notes[name].strip().rstrip('.'))}; the baseline's value is "
                 f"{_setting_tex(self.baseline[name])}." for name in names
                 if self.knob_notes.get(name, "").strip() and name in self.baseline]
        if not items:
            return ""
        return ("The variants change these settings of the experiment, as its code describes them:\n"
                "\\begin{itemize}\n" + "\n".join(items) + "\n\\end{itemize}\n")

    def _seeds(self) -> str:
        count = next((self.baseline[name] for name in ("num_seeds", "n_seeds", "seeds")
                      if _is_number(self.baseline.get(name))), None)
        errors = "the results are means with their standard errors" if self.has_stderrs else \
            "no standard error was recorded"
        if count is not None:
            return f"Each run trains {count} seed(s) per dataset; {errors}."
        seed = f" (seed {self.baseline['seed']})" if _is_number(self.baseline.get("seed")) else ""
        return f"Each run trains {'several seeds' if self.has_stderrs else 'one model'} per dataset{seed}; {errors}."

    def _settings_tex(self, names: Sequence[str]) -> str:
        return _and([f"\\texttt{{{latex_escape(n)}}}={_setting_tex(self.baseline[n])}" for n in names
                     if n in self.baseline])

    def setup(self) -> str:
        directions = [f"{_words_of(m)} ({better_direction(m)} is better)" if better_direction(m) else _words_of(m)
                      for m in self.metrics]
        lines = [f"The template's experiment is {latex_escape(self.description.rstrip('.'))}.",
                 f"Every run is evaluated on the {_and([latex_escape(d) for d in self.datasets] or ['no'])} "
                 f"dataset(s), by {_and(directions or ['nothing'])}.", self._seeds()]
        fixed = self._settings_tex([name for name in self.fixed if name not in self.quick])
        if fixed:
            lines.append(f"The settings that define the measurement are the same in every run: {fixed}.")
        quick = self._settings_tex(self.quick)
        if quick:
            lines.append(f"Every run uses the template's quick mode, which shortens it: {quick}.")
        lines.append(self._machine())
        return " ".join(lines) + "\n"

    def _machine(self) -> str:
        macros = env_macros(self.facts)
        hardware = [text for macro, text in (("EnvCPU", "CPU: \\EnvCPU{}"), ("EnvCores", "\\EnvCores{} cores"),
                                             ("EnvRAM", "\\EnvRAM{} of memory"), ("EnvGPU", "GPU: \\EnvGPU{}"))
                    if macro in macros]
        software = [f"{name} \\{macro}{{}}" for macro, name in (("EnvPython", "Python"), ("EnvNumpy", "NumPy"),
                                                               ("EnvTorch", "PyTorch")) if macro in macros]
        return (f"All runs used one machine ({', '.join(hardware) or 'not recorded'})"
                f"{'; software: ' + ', '.join(software) if software else ''}.")

    def results(self, figure_labels: Sequence[str] = ()) -> str:
        shown = _and([f"Figure~\\ref{{{label}}}" for label in figure_labels]) if figure_labels else ""
        figures = f"; {shown} {'shows' if len(figure_labels) == 1 else 'show'} the runs as plotted" if shown else ""
        clear = ("a difference counts as clear only when it exceeds two combined standard errors" if self.has_stderrs
                 else "no run recorded a standard error, so none of the differences below is a clear one")
        opening = (f"Table~\\ref{{{TABLE_LABEL}}} lists every recorded result{figures}. Here each variant is "
                   f"compared with the baseline, metric by metric; {clear}.")
        return "\n\n".join([opening, *(self._run_results(run) for run in self.variants)]) + "\n"

    def _run_results(self, run: "RunRecord") -> str:
        sentences = [f"\\paragraph{{The \\emph{{{latex_escape(run_label(run))}}} variant.}}"]
        by_metric: dict[str, dict[str, list[str]]] = {}
        for value, comparison in self.comparisons(run):
            base = f"run0.{value.key.split('.', 1)[1]}"
            by_metric.setdefault(value.metric, {}).setdefault(comparison.stated(), []).append(
                f"{latex_escape(value.dataset)} (\\result{{{value.key}}} against \\result{{{base}}})")
        for metric, groups in by_metric.items():
            clauses = [f"on {_and(where)} it was {stated}" for stated, where in groups.items()]
            sentences.append(f"For its {_words_of(metric)}: {'; '.join(clauses)}.")
        if len(sentences) == 1:
            sentences.append("No result of it can be compared with the baseline's.")
        return " ".join(sentences)

    def limitations(self) -> str:
        seeds = "" if self.has_stderrs else ", each trained with a single seed"
        quick = " in the template's shortened quick mode" if self.quick else ""
        return (f"The evidence is limited: {len(self.variants)} variant(s) of one experiment on "
                f"{len(self.datasets)} dataset(s){seeds}{quick}; it says nothing about other models or data.\n")

    def conclusion(self) -> str:
        sentences = []
        for run in self.variants:
            found = self.comparisons(run)
            better = [f"{_words_of(v.metric)} on {latex_escape(v.dataset)}" for v, c in found if c.proven]
            worse = [f"{_words_of(v.metric)} on {latex_escape(v.dataset)}" for v, c in found if c.worse]
            parts = ([f"was clearly better than the baseline in {_and(better)}"] if better else []) + \
                ([f"was worse in {_and(worse)}"] if worse else [])
            verdict = "; it ".join(parts) if parts else "showed no clear difference from the baseline"
            sentences.append(f"The \\emph{{{latex_escape(run_label(run))}}} variant {verdict}.")
        return " ".join(sentences or ["No variant was run."]) + "\n"


def related_work_sentence(key: str, title: str) -> str:
    """Code's sentence on a reference, from its metadata alone."""
    return f"\\citet{{{key}}} studied \\emph{{{latex_escape(title)}}}."


_TITLE_FILLER = frozenset({"with", "from", "into", "over", "under", "using", "towards", "toward", "when", "does",
                           "study", "studies", "effect", "effects", "impact", "role", "analysis", "their", "through"})


def title_is_supported(title: str, records: str, unchanged: Iterable[str] = ()) -> bool:
    """Whether every content word of `title` (a model's) begins like a word of `records` (the template's texts,
    the knobs, the datasets and metrics) and it claims no improvement: "Improving DDPM on 3D Point Clouds" is not.
    Nor is a title naming a setting no run changed (`unchanged` knobs, two words or more): "... with weight decay"
    when only the learning rate and the width changed."""
    words = _WORD.findall(title.lower())
    if any(len(name) > 1 and _has(words, name) for name in (_WORD.findall(knob.lower()) for knob in unchanged)):
        return False
    known = {word.replace("-", "") for word in re.findall(r"[a-z0-9][a-z0-9-]*", records.lower())}
    for word in re.findall(r"[a-z0-9][a-z0-9-]*", title.lower()):
        word = word.replace("-", "")
        if _CLAIM.fullmatch(word):
            return False
        if any(char.isdigit() for char in word):
            if word not in known:
                return False
        elif len(word) >= 4 and word not in _TITLE_FILLER and not any(_same_stem(word, other) for other in known):
            return False
    return True


def _same_stem(word: str, other: str) -> bool:
    """"rates" and "rate", "step" and "steps", "clouds" and "cloud": the same first 4 or 5 letters."""
    n = min(5, len(word), len(other))
    return n >= 4 and word[:n] == other[:n]


# -- checking a model's LaTeX ------------------------------------------------------------------------------

@dataclass
class SectionRules:
    """What a section may refer to: recorded results, citation keys, labels, runs, and numbers it may type."""

    results: Mapping[str, ResultValue]
    cite_keys: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    run_names: Mapping[int, str] = field(default_factory=dict)
    allowed_numbers: set[float] = field(default_factory=set)
    facts: Mapping[str, str] = field(default_factory=dict)
    # which way the runs moved each knob they changed: "raised", "lowered", "changed" (Study.knob_directions)
    knob_directions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # the (from, to) values, as text, that the runs moved each knob between (Study.knob_moves)
    knob_moves: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    # word n-grams of the instructions sent to the model, which the paper may not repeat (prompt_ngrams)
    prompt_ngrams: frozenset[tuple[str, ...]] = frozenset()
    # terms mixing letters and digits ("2d", "l2") that the records use (record_terms); None: not checked
    terms: frozenset[str] | None = None
    # the terms of each reference's metadata, which a sentence citing it may use too
    cited_terms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # a difference without standard errors (a single seed) is never an improvement
    require_stderrs: bool = False
    # False: the text states no results (a motivation, a background: code's Results section states them)
    states_results: bool = True

    def run_phrase(self, index: int) -> str:
        """LaTeX naming run `index` in prose (replaces "Run 2")."""
        if index == 0:
            return "the baseline"
        name = self.run_names.get(index)
        return f"the \\emph{{{latex_escape(name)}}} run" if name else "one of the variants"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a section; `message` is written for the model that must fix it."""

    kind: str
    message: str
    start: int = -1
    end: int = -1

    def __str__(self) -> str:
        return self.message


# Commands a section may not use: files, the shell, the preamble's job, redefinitions of what code writes.
FORBIDDEN_COMMANDS = frozenset({
    "input", "include", "includeonly", "InputIfFileExists", "write", "write18", "immediate", "openout", "openin",
    "closeout", "closein", "read", "readline", "newwrite", "newread", "special", "catcode", "csname",
    "endcsname", "expandafter", "makeatletter", "makeatother", "usepackage", "RequirePackage", "documentclass",
    "bibliography", "bibliographystyle", "nocite", "maketitle", "title", "author", "date", "def", "gdef",
    "edef", "xdef", "let", "renewcommand", "renewenvironment", "DeclareRobustCommand", "includegraphics",
    "tableofcontents", "verbatiminput", "lstinputlisting", "graphicspath", "pdfoutput", "output", "end@dblfloat",
    "scantokens", "directlua", "loop", "repeat",
})
FORBIDDEN_ENVIRONMENTS = frozenset({"figure", "figure*", "abstract", "document", "filecontents",
                                    "filecontents*", "thebibliography"})
PROTECTED_MACROS_RE = re.compile(r"^(?:result|PaperTitle|PaperAbstract|Env[A-Za-z]*)$")
DEFINING_COMMANDS = ("newcommand", "providecommand", "newenvironment")
ABBREVIATIONS = frozenset({"e.g", "i.e", "al", "etc", "vs", "cf", "fig", "figs", "eq", "eqs", "sec", "tab",
                           "resp", "approx", "no", "dr", "prof", "mr", "ms"})

_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
_CITE = re.compile(r"\\(cite[a-zA-Z]*|nocite)\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^{}]*)\}")
_RESULT = re.compile(r"\\result\s*\{([^{}]*)\}")
_REF = re.compile(r"\\(ref|eqref|autoref|cref|Cref|pageref|nameref)\*?\s*\{([^{}]*)\}")
_LABEL = re.compile(r"\\label\s*\{([^{}]*)\}")
_CONTROL_WORD = re.compile(r"\\([A-Za-z@]+|.)")
_KEY_ARG_COMMANDS = re.compile(
    r"\\(?:result|cite[a-zA-Z]*|nocite|ref|eqref|autoref|cref|Cref|pageref|nameref|label|includegraphics|input|"
    r"include|url|href|begin|end|hspace|vspace|setlength|addtolength|rule)\*?\s*(?:\[[^\]]*\]\s*)*\{[^{}]*\}")
_TABULAR_SPEC = re.compile(r"\\begin\{(?:tabular\*?|tabularx|array|longtable)\}\s*(?:\{[^{}]*\}\s*)?\{[^{}]*\}")
_DIMENSION = re.compile(r"\d*\.?\d+(?:pt|em|ex|cm|mm|in|bp|sp)\b|\d*\.?\d+\s*\\(?:linewidth|textwidth|"
                        r"columnwidth|hsize|textheight|baselineskip)")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w]|\.\d)(\s*(?:\\%|percent\b))?")
# "Run 2", "run_2", "run\\_2", "Run~3", "run no. 4"; not "runs 5 seeds" or "run 3 times"
_RUN_LABEL = re.compile(r"\b[Rr]uns?(?:\\_|_|-|\\#|~|\s|no\.)*(\d+)\b(?!\s*(?:seeds?|times|steps|epochs|trials|"
                        r"repetitions|replicates|iterations|updates|models|configurations|experiments)\b)")
_GPU_NAME = re.compile(r"\b(?:[AHV]100|H200|P100|K80|T4|L4|L40S?|A10G?|A6000|MI\d{2,3}X?|RTX[\s-]?\w*\d{3,4}\w*|"
                       r"GTX[\s-]?\d{3,4}\w*|TPU(?:\s?v\d\w*)?|Titan\s?[A-Z]+\w*|Tesla\s?\w+)\b")
_HARDWARE_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\s*(?:GB|GiB|TB)\s*(?:of\s*)?(?:RAM|memory|VRAM|GPU)\b|"
                              r"\b\d+\s*(?:CPU\s*)?(?:cores|vCPUs?|CPUs|threads|GPUs?)\b", re.IGNORECASE)
_PERCENT_COMMENT = re.compile(r"(\d\s*)(?<!\\)%")
_VERB = re.compile(r"\\verb\*?([^A-Za-z\s*])(.*?)\1")
_SECTION_CMD = re.compile(r"\\section\*?\s*\{([^{}]*)\}")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def _prose(text: str) -> str:
    """`text` with everything that is not prose blanked out (same length, so positions still match):
    comments, command names, keys of \\result, \\cite, \\ref ..., tabular specs, lengths."""
    spans: list[tuple[int, int]] = []
    for pattern in (_COMMENT, _KEY_ARG_COMMANDS, _TABULAR_SPEC, _DIMENSION, _VERB):
        spans += [m.span() for m in pattern.finditer(text)]
    spans += [m.span() for m in _CONTROL_WORD.finditer(text) if m.group(1)[0].isalpha() or m.group(1) == "@"]
    return _mask(text, spans)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, max(0, pos)) + 1


def cited_keys(text: str) -> list[str]:
    """Citation keys used in `text`, in order, without repeats (comments skipped)."""
    keys: list[str] = []
    for match in _CITE.finditer(_COMMENT.sub("", text)):
        keys += [k.strip() for k in match.group(2).split(",") if k.strip()]
    return list(dict.fromkeys(keys))


def labels_in(text: str) -> set[str]:
    return {m.group(1).strip() for m in _LABEL.finditer(_COMMENT.sub("", text))}


@lru_cache(maxsize=1)
def _non_ascii_encoder():
    from pylatexenc.latexencode import UnicodeToLatexEncoder

    return UnicodeToLatexEncoder(non_ascii_only=True, replacement_latex_protection="braces-all",
                                 unknown_char_policy="replace", unknown_char_warning=False)


_TYPOGRAPHY = str.maketrans({"\u2018": "`", "\u2019": "'", "\u201c": "``", "\u201d": "''", "\u2013": "--",
                             "\u2014": "---", "\u00a0": "~", "\u2026": r"\ldots{}", "\u2212": "-"})


# A backslash command written in JSON with one backslash decodes to a control character: "\result" -> CR +
# "esult", "\textbf" -> TAB + "extbf", "\begin" -> BS + "egin", "\ref" -> FF + "ef", "\noindent" -> LF + ...
_JSON_ESCAPES = ((re.compile(r"\r(?=[A-Za-z])"), r"\\r"), (re.compile(r"\t(?=[A-Za-z])"), r"\\t"),
                 (re.compile(r"\x08(?=[A-Za-z])"), r"\\b"), (re.compile(r"\x0c(?=[A-Za-z])"), r"\\f"),
                 (re.compile(r"\n(?=(?:abla|ewline|oindent|eq|onumber|ewpage|ewcommand|ormalsize)\b)"), r"\\n"))
# "\\result" in the text (a JSON string escaped twice) is a line break followed by "result"
_DOUBLED = re.compile(r"\\\\(?=(?:result|cite[a-z]*|ref|eqref|label|emph|textbf|textit|texttt|begin|end|item|"
                      r"subsection|paragraph|Env[A-Z][A-Za-z]*|ldots|cdot|times|pm)\b)")
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(.*?)\n?\s*```\s*$", re.S)
_MARKDOWN_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")


def normalize_text(text: str) -> str:
    """A model's LaTeX made safe for pdflatex without changing its meaning: commands mangled by JSON escaping
    restored, a Markdown fence or **bold** undone, typographic Unicode as LaTeX, other non-ASCII as LaTeX
    macros, line ends and trailing spaces normalised."""
    for pattern, replacement in _JSON_ESCAPES:
        text = pattern.sub(replacement, text)
    text = _DOUBLED.sub(lambda m: "\\", text)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    text = _MARKDOWN_BOLD.sub(r"\\textbf{\1}", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").translate(_TYPOGRAPHY)
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    if not text.isascii():
        text = _NON_ASCII.sub(lambda m: _non_ascii_encoder().unicode_to_latex(m.group()), text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n")) + "\n"


def _parse_error(text: str) -> tuple[str, int] | None:
    """pylatexenc's complaint about unbalanced braces, environments or math, with its offset; None when fine."""
    from pylatexenc.latexwalker import LatexWalker, LatexWalkerError

    try:
        LatexWalker(text, tolerant_parsing=False).get_latex_nodes()
    except LatexWalkerError as exc:
        message = str(exc).split("\n", 1)[0]
        message = re.sub(r"\s*@\s*\(\d+,\s*\d+\)\s*$", "", message)
        pos = getattr(exc, "pos", None)
        return message, pos if isinstance(pos, int) else -1
    except (RecursionError, ValueError, IndexError) as exc:  # pylatexenc on pathological input
        return f"cannot be parsed ({type(exc).__name__})", -1
    return None


def _text_specials(text: str) -> list[tuple[int, str]]:
    """Unescaped `_ ^ # &` in running text (outside math and tabular-like environments): pdflatex errors."""
    from pylatexenc.latexwalker import (LatexCharsNode, LatexEnvironmentNode, LatexGroupNode, LatexMacroNode,
                                        LatexMathNode, LatexSpecialsNode, LatexWalker, LatexWalkerError)

    try:
        nodes, _, _ = LatexWalker(text, tolerant_parsing=False).get_latex_nodes()
    except (LatexWalkerError, RecursionError, ValueError, IndexError):
        return []
    aligned = {"tabular", "tabular*", "tabularx", "array", "align", "align*", "eqnarray", "eqnarray*", "matrix",
               "pmatrix", "bmatrix", "cases", "split", "aligned", "gather", "gather*", "alignat", "alignat*",
               "longtable", "multline", "multline*", "flalign", "flalign*"}
    found: list[tuple[int, str]] = []

    def walk(node_list, in_aligned: bool) -> None:
        for node in node_list or []:
            if node is None or node.parsing_state.in_math_mode:
                continue
            if isinstance(node, LatexCharsNode):
                for offset, char in enumerate(node.chars):
                    if char in "_^#":
                        found.append((node.pos + offset, char))
            elif isinstance(node, LatexSpecialsNode) and node.specials_chars == "&" and not in_aligned:
                found.append((node.pos, "&"))
            elif isinstance(node, LatexEnvironmentNode):
                walk(node.nodelist, in_aligned or node.environmentname in aligned)
            elif isinstance(node, LatexGroupNode):
                walk(node.nodelist, in_aligned)
            elif isinstance(node, LatexMacroNode) and node.nodeargd is not None:
                if node.macroname in ("label", "ref", "cite", "citep", "citet", "url", "href", "eqref", "cref",
                                      "autoref", "includegraphics", "begin", "end"):
                    continue
                walk([arg for arg in node.nodeargd.argnlist if arg is not None], in_aligned)
            elif isinstance(node, LatexMathNode):
                continue

    walk(nodes, False)
    masked = _KEY_ARG_COMMANDS.sub(lambda m: " " * len(m.group()), text)  # \result{a_b}: its key is not text
    masked = _VERB.sub(lambda m: " " * len(m.group()), masked)
    return [(pos, char) for pos, char in found if masked[pos] == char]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _matching_results(token: str, percent: bool, rules: SectionRules) -> list[ResultValue]:
    """Recorded values that `token` (a number typed in prose) writes out, at the precision typed."""
    number = float(token)
    decimals = len(token.split(".", 1)[1]) if "." in token and "e" not in token.lower() else 0
    matches = []
    for value in rules.results.values():
        if not math.isfinite(value.value):
            continue
        for candidate in ((abs(value.value) * 100,) if percent else (abs(value.value),)):
            if token == value.plain.lstrip("-") or (decimals >= 1 or percent) and _close(round(candidate, decimals),
                                                                                         number):
                matches.append(value)
                break
    return matches


def _number_problems(text: str, prose: str, rules: SectionRules) -> list[Problem]:
    problems = []
    for match in _NUMBER.finditer(prose):
        token, percent = match.group(1), bool(match.group(2))
        number = float(token)
        if any(_close(number, allowed) for allowed in rules.allowed_numbers) and not percent:
            continue
        precise = ("." in token and len(token.split(".", 1)[1].rstrip("0")) >= 2) or "e" in token.lower()
        matches = _matching_results(token, percent, rules) if ("." in token or percent or precise) else []
        written = match.group().strip()
        if matches:
            keys = ", ".join(f"\\result{{{v.key}}}" for v in matches[:3])
            problems.append(Problem("typed_number", f"line {_line_of(text, match.start())}: the number {written} is "
                                    f"typed; it is a recorded result: write {keys} instead (never type results)",
                                    match.start(), match.end()))
        elif precise:
            problems.append(Problem("typed_number", f"line {_line_of(text, match.start())}: the number {written} is "
                                    "typed; numbers with decimals must come from \\result{KEY} with a listed key, "
                                    "or be left out", match.start(), match.end()))
    return problems


def check_section(text: str, rules: SectionRules) -> list[Problem]:
    """Everything wrong with a section's LaTeX that code can see, each problem a message for the model."""
    problems: list[Problem] = []
    stripped = _COMMENT.sub(lambda m: " " * len(m.group()), text)
    for match in _RESULT.finditer(stripped):
        key = match.group(1).strip()
        if key not in rules.results:
            problems.append(Problem("unknown_result", f"line {_line_of(text, match.start())}: \\result{{{key}}} is "
                                    "not a recorded result; use only the keys listed", *match.span()))
    for match in _CITE.finditer(stripped):
        if match.group(1) == "nocite":
            continue
        unknown = [k.strip() for k in match.group(2).split(",") if k.strip() and k.strip() not in rules.cite_keys]
        if unknown:
            problems.append(Problem("unknown_citation", f"line {_line_of(text, match.start())}: citation key(s) "
                                    f"{', '.join(unknown)} are not among the references given; cite only those keys",
                                    *match.span()))
    known_labels = rules.labels | labels_in(text)
    for match in _REF.finditer(stripped):
        label = match.group(2).strip()
        if label not in known_labels:
            problems.append(Problem("unknown_label", f"line {_line_of(text, match.start())}: \\{match.group(1)}"
                                    f"{{{label}}} refers to no label of this paper (labels: "
                                    f"{', '.join(sorted(rules.labels))})", *match.span()))
    problems += _command_problems(stripped, text)
    for match in _PERCENT_COMMENT.finditer(text):
        problems.append(Problem("percent", f"line {_line_of(text, match.start())}: a bare % after a number starts a "
                                "comment and hides the rest of the line; write \\% (and no typed results)",
                                *match.span()))
    prose = _prose(text)
    for match in _RUN_LABEL.finditer(prose):
        index = int(match.group(1))
        problems.append(Problem("run_label", f"line {_line_of(text, match.start())}: \"{match.group().strip()}\" "
                                "names a run by its number; name it by what it changed (e.g. "
                                f"{rules.run_phrase(index)})", *match.span()))
    problems += _number_problems(text, prose, rules)
    problems += _spin_problems(text, stripped, rules)
    problems += _repeated_sentences(text, stripped)
    problems += _markdown_problems(text, stripped)
    problems += _prompt_problems(text, stripped, rules)
    problems += _knob_problems(text, stripped, rules)
    problems += _term_problems(text, stripped, rules)
    problems += _verdict_problems(text, stripped, rules)
    claimed = [(p.start, p.end) for p in problems if p.kind in ("spin", "contradiction")]
    problems += [p for p in _praise_problems(text, stripped, rules)  # a sentence already refused is told once
                 if not any(start < p.end and p.start < end for start, end in claimed)]
    problems += _result_talk_problems(text, stripped, rules)
    gpu = rules.facts.get("gpu", "none")
    for match in _GPU_NAME.finditer(prose):
        if match.group().replace(" ", "").lower() not in gpu.replace(" ", "").lower():
            problems.append(Problem("hardware", f"line {_line_of(text, match.start())}: \"{match.group()}\" is not "
                                    f"the hardware used (GPU: {gpu}); describe the machine only with the \\Env "
                                    "macros", *match.span()))
    for match in _HARDWARE_NUMBER.finditer(prose):
        problems.append(Problem("hardware", f"line {_line_of(text, match.start())}: \"{match.group().strip()}\" is a "
                                "typed hardware figure; use \\EnvCores, \\EnvRAM, \\EnvCPU or \\EnvGPU instead",
                                *match.span()))
    for pos, char in _text_specials(text):
        problems.append(Problem("special_char", f"line {_line_of(text, pos)}: a bare {char} in text is a LaTeX error; "
                                f"write \\{char} (or put it in math mode)", pos, pos + 1))
    error = _parse_error(stripped)
    if error is not None:
        message, pos = error
        where = f"line {_line_of(text, pos)}: " if pos >= 0 else ""
        problems.append(Problem("unbalanced", f"{where}{message} (braces, environments and $...$ must be "
                                "balanced)", pos, pos))
    return problems


_CLAIM = re.compile(r"\b(?:improv\w*|better|outperform\w*|superior|gains?|boost\w*|beats?|surpass\w*|enhanc\w*|"
                    r"benefits?|advantage\w*|stronger)\b", re.IGNORECASE)
_HEDGE = re.compile(r"\b(?:not|no|nor|neither|never|fails?|failed|without|worse|degrad\w*|hurts?|unchanged|"
                    r"within|comparable|similar|whether|if|expected|hypothesi[sz]\w*|aim\w*|hope\w*)\b|n't\b",
                    re.IGNORECASE)


def _spin_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences that call a run's result an improvement when the recorded numbers say it is worse than the
    baseline or not clearly different: the spin on negative results the paper's system was known for."""
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    for match in _RESULT.finditer(stripped):
        value = rules.results.get(match.group(1).strip())
        comparison = compare_with_baseline(value, rules.results) if value else None
        if comparison is None or comparison.better is None or _improves(comparison, rules):
            continue
        start, end = _sentence_bounds(stripped, match.start(), match.end())
        if (start, end) in seen:
            continue
        sentence = _prose(stripped[start:end])
        if not _CLAIM.search(sentence) or _HEDGE.search(sentence):
            continue
        keys = [m.group(1).strip() for m in _RESULT.finditer(stripped[start:end])]
        others = [rules.results[k] for k in keys if k in rules.results]
        if any((c := compare_with_baseline(v, rules.results)) is not None and _improves(c, rules) for v in others):
            continue  # the sentence also cites a real improvement: the claim may be about that one
        seen.add((start, end))
        name = rules.run_names.get(value.run, f"run {value.run}")
        problems.append(Problem("spin", f"line {_line_of(text, start)}: this sentence presents the {value.metric} on "
                                f"{value.dataset} of the run '{name}' as an improvement, but it is "
                                f"{comparison.describe()}; say plainly what the numbers show", *match.span()))
    return problems


def _praises(sentence: str) -> bool:
    """Whether a praise word of `sentence` is not negated by the three words before it: "improves X, while it does
    not improve Y" still praises."""
    for match in _PRAISE.finditer(sentence):
        before = " ".join(sentence[:match.start()].split()[-3:])
        if not _NEGATION.search(before) and not re.search(r"\b(?:0|zero)\b", before):  # "0 are better"
            return True
    return False


def _praise_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """When no recorded comparison shows an improvement, a sentence that praises a finding or a changed setting
    ("the quadratic schedule resulted in better performance", "the beta schedule provided a good balance") is spin,
    whatever metric it names or leaves out; a cited sentence speaks of its reference and is left alone."""
    comparisons = [c for v in rules.results.values() if (c := compare_with_baseline(v, rules.results)) is not None]
    if not comparisons or any(_improves(c, rules) for c in comparisons):
        return []
    knobs = [tuple(_WORD.findall(name.lower().replace("_", " "))) for name in rules.knob_directions]
    problems = []
    for start, end, words in _prose_sentences(stripped):
        sentence = _prose(stripped[start:end])
        about_runs = _FINDING.search(sentence) or any(_has(words, knob) for knob in knobs)
        if about_runs and _praises(stripped[start:end]) and not _CITE.search(stripped[start:end]) \
                and not _HYPOTHETICAL.search(sentence):
            problems.append(Problem("spin", f"line {_line_of(text, start)}: no variant was clearly better than the "
                                    "baseline in any recorded result, but this sentence praises one; say plainly "
                                    "what the numbers show", start, end))
    return problems


def _improves(comparison: Comparison, rules: SectionRules) -> bool:
    return comparison.proven if rules.require_stderrs else comparison.improvement


_WORSE_CLAIM = re.compile(r"\b(?:worse|worsen\w*|degrad\w*|hurts?|harm\w*|deteriorat\w*)\b", re.IGNORECASE)
_UNCLEAR_CLAIM = re.compile(r"\b(?:no\s+(?:clear\s+|significant\s+|notable\s+|real\s+)?(?:differences?|changes?|"
                            r"effects?)|not\s+(?:clearly\s+|significantly\s+)?different|similar|comparable|unchanged|"
                            r"the\s+same)\b", re.IGNORECASE)
_LOWER_CLAIM = re.compile(r"\b(?:lower|less|smaller|fewer|decreas\w*|reduc\w*|shorter)\b", re.IGNORECASE)
_HIGHER_CLAIM = re.compile(r"\b(?:higher|more|larger|greater|increas\w*|longer)\b", re.IGNORECASE)
_STATS_CLAIM = re.compile(r"\b(?:standard\s+errors?|statistical\w*|confidence\s+intervals?|p-?values?|"
                          r"significan\w*\s+(?:differen\w*|improv\w*|gains?|effects?|better|worse|higher|lower|"
                          r"increase|decrease|reduction))\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no|not|without|none|neither|nor|never)\b|n't\b", re.IGNORECASE)
_ALL_METRICS = re.compile(r"\b(?:all|every|each|these|both|across)\b[^.]{0,40}\bmetrics?\b", re.IGNORECASE)
_METRIC_WORDS = {"evaluation": "eval", "validation": "val", "losses": "loss", "divergences": "divergence",
                 "times": "time", "accuracies": "accuracy"}


def _one_of(claims: Mapping[str, bool]) -> set[str]:
    """The claim made, when exactly one of `claims` is (a sentence saying two things says neither)."""
    found = {claim for claim, said in claims.items() if said}
    return found if len(found) == 1 else set()


def _claims(sentence: str) -> set[str]:
    """What a sentence says of a result: a verdict ("better", "worse", "unclear") and a direction ("lower",
    "higher"), each when it says one only."""
    verdict = _one_of({"better": bool(_CLAIM.search(sentence) and not _HEDGE.search(sentence)),
                       "worse": bool(_WORSE_CLAIM.search(sentence)), "unclear": bool(_UNCLEAR_CLAIM.search(sentence))})
    return verdict | _one_of({"lower": bool(_LOWER_CLAIM.search(sentence)),
                              "higher": bool(_HIGHER_CLAIM.search(sentence))})


def _recorded(rules: SectionRules) -> dict[int, dict[str, dict[str, set[str]]]]:
    """Per run, metric and dataset, what its comparison with the baseline holds: its verdict ("better", "worse",
    "unclear") and direction ("higher", "lower", "same")."""
    recorded: dict[int, dict[str, dict[str, set[str]]]] = {}
    for value in rules.results.values():
        comparison = compare_with_baseline(value, rules.results)
        if comparison is not None:
            verdict = "better" if _improves(comparison, rules) else "worse" if comparison.worse else "unclear"
            recorded.setdefault(value.run, {}).setdefault(value.metric, {})[value.dataset] = \
                {verdict, comparison.direction}
    return recorded


def _has(words: Sequence[str], phrase: Sequence[str]) -> bool:
    return any(list(words[i:i + len(phrase)]) == list(phrase) for i in range(len(words) - len(phrase) + 1))


_HYPOTHETICAL = re.compile(r"\b(?:if|whether|could|might|may|would|should|expect\w*|hypothes\w*|aim\w*|hope\w*|"
                           r"try|trying|future|next)\b", re.IGNORECASE)


# what a sentence reporting a finding says: "the results show", "we observed", "X led to", "is more effective"
_FINDING = re.compile(r"\b(?:results?|resulted|observ\w*|found|show(?:s|ed|n)?|demonstrat\w*|suggest\w*|"
                      r"indicat\w*|led|leads?|outperform\w*|achiev\w*|yield\w*|performed|effective\w*)\b",
                      re.IGNORECASE)
# praise of a result: what a sentence says when it calls a change good, whatever the metric
_PRAISE = re.compile(r"\b(?:improv\w*|better|best|outperform\w*|superior|gains?|boost\w*|surpass\w*|enhanc\w*|"
                     r"benefit\w*|advantage\w*|effective\w*|good|successful\w*|helps?|helped|useful)\b",
                     re.IGNORECASE)


def _says_anything(sentence: str) -> bool:
    """Whether a sentence makes any claim about a result: a verdict or a direction, one or several."""
    return any(pattern.search(sentence) for pattern in (_PRAISE, _WORSE_CLAIM, _UNCLEAR_CLAIM, _LOWER_CLAIM,
                                                         _HIGHER_CLAIM))


def _result_talk_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """In a text that states no results: sentences citing a \\result, saying a recorded metric was better,
    worse, unclear, higher or lower, or reporting a finding in any words ("the linear schedule resulted in lower
    losses", "this suggests the change is more effective"): a small model's background that gets the
    comparisons backwards."""
    if rules.states_results:
        return []
    metrics = {tuple(_WORD.findall(value.metric.lower())) for value in rules.results.values()}
    problems = []
    for start, end, words in _prose_sentences(stripped):
        words = [_METRIC_WORDS.get(word, word) for word in words]
        sentence = _prose(stripped[start:end])
        about_results = any(_has(words, metric) for metric in metrics) or _FINDING.search(sentence)
        talks = about_results and _says_anything(sentence) and not _HYPOTHETICAL.search(sentence)
        if talks or _RESULT.search(stripped[start:end]):
            problems.append(Problem("result_talk", f"line {_line_of(text, start)}: this part states no results (the "
                                    "Results section does, from the records); leave the comparison out", start, end))
    return problems


def _baseline_first(sentence: str) -> bool:
    """Whether "baseline" comes before the sentence's first claim word: the baseline is what it speaks of."""
    baseline = re.search(r"\bbaseline", sentence, re.IGNORECASE)
    claims = [m.start() for pattern in (_PRAISE, _WORSE_CLAIM, _UNCLEAR_CLAIM, _LOWER_CLAIM, _HIGHER_CLAIM)
              for m in [pattern.search(sentence)] if m]
    return baseline is not None and (not claims or baseline.start() < min(claims))


def _verdict_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences the records contradict: one run (named by a knob it changed) said to be better, worse, unclear,
    higher or lower in metrics it is not ("the learning rate run showed no clear difference in KL" when its KL
    was worse), and standard errors claimed where none were recorded."""
    recorded = _recorded(rules)
    variants = [index for index in rules.run_names if index != 0]
    knobs: dict[tuple[str, ...], set[int]] = {}
    for index, name in rules.run_names.items():
        for knob in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", name):
            knobs.setdefault(tuple(_WORD.findall(knob.lower())), set()).add(index)
    no_stderrs = not any(value.stderr for value in rules.results.values())
    problems = []
    for start, end, words in _prose_sentences(stripped):
        sentence = _prose(stripped[start:end])
        if no_stderrs and _STATS_CLAIM.search(sentence) and not _NEGATION.search(sentence):
            problems.append(Problem("contradiction", f"line {_line_of(text, start)}: no standard error was recorded "
                                    "(one seed per run): claim no standard errors or significance", start, end))
            continue
        words = [_METRIC_WORDS.get(word, word) for word in words]
        runs = set().union(*(indices for knob, indices in knobs.items() if _has(words, knob)))
        if not runs and len(variants) == 1 and not _baseline_first(sentence):
            runs = set(variants)  # with one variant, a sentence about a result is about it, unless about the baseline
        said = _claims(sentence) if len(runs) == 1 and not _HYPOTHETICAL.search(sentence) else set()
        by_metric = recorded.get(next(iter(runs)), {}) if said else {}
        named = [metric for metric in by_metric if _has(words, _WORD.findall(metric.lower()))]
        if not named and _ALL_METRICS.search(sentence):
            named = list(by_metric)
        # the datasets the sentence names ("lower loss on circle, line and moons"), else all of them together
        wrong = []
        for metric in named:
            datasets = [d for d in by_metric[metric] if _has(words, _WORD.findall(d.lower()))] or [None]
            for dataset in datasets:
                found = by_metric[metric][dataset] if dataset else set().union(*by_metric[metric].values())
                if not said <= found:
                    wrong.append((f"{metric} on {dataset}" if dataset else metric, found))
        if wrong:
            problems.append(Problem("contradiction", f"line {_line_of(text, start)}: this sentence says the run "
                                    f"'{rules.run_names[next(iter(runs))]}' was {' and '.join(sorted(said))} in "
                                    f"{', '.join(where for where, _ in wrong)}, but the records say "
                                    f"{', '.join(sorted(wrong[0][1]))}; say what they show", start, end))
    return problems


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


def _repeated_sentences(text: str, stripped: str, min_words: int = 6) -> list[Problem]:
    """Sentences said before in the same section (small models loop): each later copy is a problem."""
    problems, seen = [], set()
    for match in _SENTENCE.finditer(stripped):
        words = re.findall(r"\w+", match.group().lower())
        if len(words) < min_words:
            continue
        key = " ".join(words)
        if key in seen:
            sentence = match.group()  # its span without the spaces around it and its full stop
            start = match.start() + len(sentence) - len(sentence.lstrip())
            end = match.start() + len(sentence.rstrip(".!? \t"))
            problems.append(Problem("repeated", f"line {_line_of(text, start)}: this sentence repeats an earlier one "
                                    "word for word; say each thing once", start, end))
        seen.add(key)
    return problems


# a sentence of prose: a full stop inside a number or a key (blanked by _prose) does not end it
_PROSE_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s.!?]))+[.!?]*")
_WORD = re.compile(r"[a-z0-9]+")
PROMPT_NGRAM = 5


def _prose_sentences(stripped: str) -> Iterable[tuple[int, int, list[str]]]:
    """(start, end, words) of each sentence of `stripped`'s prose, from its first character to the last before its
    full stop; words lowercased, without LaTeX commands."""
    prose = _prose(stripped)
    for match in _PROSE_SENTENCE.finditer(prose):
        words = _WORD.findall(match.group().lower())
        if words:
            sentence = stripped[match.start():match.end()]  # with its keys: "... \\citep{key}."
            start = match.start() + len(sentence) - len(sentence.lstrip())
            yield start, match.start() + len(sentence.rstrip(".!? \t\n")), words


def _ngrams(words: Sequence[str], n: int = PROMPT_NGRAM) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


_QUOTED = re.compile(r'"[^"\n]{1,100}"')


def word_ngrams(text: str) -> set[tuple[str, ...]]:
    """The word n-grams of `text`'s prose (quoted examples left out), for SectionRules.prompt_ngrams: those of
    the prompts sent to a model, less those of the facts they carried (the paper may restate facts)."""
    return set(_ngrams(_WORD.findall(_prose(_QUOTED.sub(" ", text)).lower())))


def _prompt_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences that copy the instructions or the listings of the prompt ("write the macros, not their values",
    "References you may cite: ..."): small models recite what they were given."""
    problems = []
    for start, end, words in _prose_sentences(stripped):
        copied = next((gram for gram in _ngrams(words) if gram in rules.prompt_ngrams), None)
        if copied:
            problems.append(Problem("prompt_text", f"line {_line_of(text, start)}: this sentence copies the "
                                    f"instructions given to you (\"{' '.join(copied)}\"); write the paper's own text",
                                    start, end))
    return problems


_MD_TABLE = re.compile(r"^[ \t]*\|.*\|[ \t]*$|^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$",
                       re.MULTILINE)
_MD_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S.*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^[ \t]*```.*$", re.MULTILINE)
_MD_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(\S.*)$", re.MULTILINE)
_MD_LIST = re.compile(r"(?:^[ \t]*[-*+][ \t]+\S.*(?:\n|$))+", re.MULTILINE)
_MARKDOWN = ((_MD_TABLE, "a Markdown table row (code places the results table: refer to it with \\ref)"),
             (_MD_HEADING, "a Markdown heading (use \\subsection, or nothing)"),
             (_MD_FENCE, "a Markdown code fence"),
             (_MD_BULLET, "a Markdown bullet (use itemize)"))


def _markdown_problems(text: str, stripped: str) -> list[Problem]:
    return [Problem("markdown", f"line {_line_of(text, match.start())}: {what} is Markdown, not LaTeX",
                    *match.span())
            for pattern, what in _MARKDOWN for match in pattern.finditer(stripped)]


def _markdown_to_latex(text: str) -> str:
    """Markdown in a LaTeX section made LaTeX: bullets become itemize; tables, headings and fences go."""
    for pattern in (_MD_TABLE, _MD_HEADING, _MD_FENCE):
        text = pattern.sub("", text)
    text = _collapse_blank_lines(text)

    def itemize(match: re.Match) -> str:
        items = [f"\\item {bullet.group(1)}" for bullet in _MD_BULLET.finditer(match.group())]
        return "\\begin{itemize}\n" + "\n".join(items) + "\n\\end{itemize}\n"

    return _MD_LIST.sub(itemize, text)


_UP = re.compile(r"increas\w*|rais\w*|rose|higher|larger|bigger|doubl\w*|grow\w*|grew|longer|wider|deeper|more")
_DOWN = re.compile(r"decreas\w*|lower\w*|reduc\w*|smaller|fewer|less|halv\w*|shr[ai]nk\w*|shorter|narrower|"
                   r"shallower|cut\w*|drop\w*")
_AUXILIARY = frozenset({"was", "were", "is", "are", "has", "have", "had", "been", "be", "being", "then", "also"})
WINDOW = 3


def _claimed_direction(words: Sequence[str], start: int, end: int) -> str | None:
    """"raised" or "lowered": what the words next to words[start:end] (a knob's name) say was done to it; the
    nearest word before wins ("decreasing the learning rate increased the loss"), then the words after."""
    after = [w for w in words[end:end + WINDOW + 2] if w not in _AUXILIARY][:WINDOW]
    for word in [*reversed(words[max(0, start - WINDOW):start]), *after]:
        if _UP.fullmatch(word):
            return "raised"
        if _DOWN.fullmatch(word):
            return "lowered"
    return None


def _value_text(value: Any) -> str:
    """A knob's value as prose writes it: 0.0003 and 3e-4 alike, strings lowercased."""
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


_FROM_TO = re.compile(r"\bfrom\s+(?:an?\s+|the\s+)?([\w.+-]+)\s+to\s+(?:an?\s+|the\s+)?([\w.+-]+)", re.IGNORECASE)


def _knob_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences saying a knob went the way no run moved it ("decreased the learning rate" when it rose, "the
    beta schedule from quadratic to linear" when the runs changed it from linear to quadratic)."""
    problems = []
    for start, end, words in _prose_sentences(stripped):
        sentence = _prose(stripped[start:end])
        for knob, moves in rules.knob_moves.items():
            if not _has(words, _WORD.findall(knob.lower())) or _HYPOTHETICAL.search(sentence):
                continue  # a sentence about what to try next may move a knob back
            for match in _FROM_TO.finditer(sentence):
                said = (_value_text(match.group(1).rstrip(".")), _value_text(match.group(2).rstrip(".")))
                if said not in moves and said[::-1] in moves:
                    done = ", ".join(f"from {a} to {b}" for a, b in sorted(moves))
                    problems.append(Problem("knob_direction", f"line {_line_of(text, start)}: this sentence says "
                                            f"{knob} went from {said[0]} to {said[1]}, but the runs changed it "
                                            f"{done}; say what was done", start, end))
                    break
        for knob, directions in rules.knob_directions.items():
            if directions - {"raised", "lowered"}:
                continue  # a knob that is not a number, or whose baseline is unknown, has no direction
            name = _WORD.findall(knob.lower())
            for i in range(len(words) - len(name) + 1):
                claimed = _claimed_direction(words, i, i + len(name)) if words[i:i + len(name)] == name else None
                if claimed and claimed not in directions:
                    done = " and ".join(sorted(directions))
                    problems.append(Problem("knob_direction", f"line {_line_of(text, start)}: this sentence says "
                                            f"{knob} was {claimed}, but the runs {done} it; say what was done",
                                            start, end))
                    break
    return problems


_TERM = re.compile(r"(?<![\w\\-])(?=[A-Za-z-]*\d)(?=[\d-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])")
_MATH = re.compile(r"(?<!\\)\$[^$]*\$")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)", re.IGNORECASE)


def record_terms(texts: Iterable[str]) -> frozenset[str]:
    """The terms mixing letters and digits ("2-D", "L2", "CIFAR-10") of `texts`, lowercased without hyphens."""
    return frozenset(match.group().lower().replace("-", "") for text in texts for match in _TERM.finditer(text))


def _term_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Terms like "3D", "CIFAR-10" or "ResNet-50" that nothing recorded mentions, nor a reference the sentence
    cites: data, models or dimensions the experiments never had."""
    if rules.terms is None:
        return []
    prose = _mask(_prose(stripped), [m.span() for m in _MATH.finditer(stripped)])
    problems = []
    for start, end, _ in _prose_sentences(stripped):
        known = rules.terms.union(*(rules.cited_terms.get(key, ()) for key in cited_keys(stripped[start:end])))
        problems += [Problem("unsupported_term", f"line {_line_of(text, match.start())}: \"{match.group()}\" "
                             "appears nowhere in the records of these experiments or the references cited; state "
                             "only what was run", *match.span())
                     for match in _TERM.finditer(prose, start, end)
                     if match.group().lower().replace("-", "") not in known and not _ORDINAL.fullmatch(match.group())]
    return problems


def _command_problems(stripped: str, text: str) -> list[Problem]:
    problems = []
    for match in _CONTROL_WORD.finditer(stripped):
        name = match.group(1)
        if name in FORBIDDEN_COMMANDS:
            problems.append(Problem("forbidden", f"line {_line_of(text, match.start())}: \\{name} may not be used in "
                                    "a section (code writes the preamble, figures, bibliography and files)",
                                    *match.span()))
        elif name in DEFINING_COMMANDS:
            after = re.match(r"\*?\s*\{?\s*\\([A-Za-z]+)", stripped[match.end():])
            if after and PROTECTED_MACROS_RE.match(after.group(1)):
                problems.append(Problem("forbidden", f"line {_line_of(text, match.start())}: \\{after.group(1)} is "
                                        "defined by code and may not be redefined", *match.span()))
        elif name == "section":
            problems.append(Problem("section", f"line {_line_of(text, match.start())}: no \\section in a section's "
                                    "text (code writes the heading); use \\subsection if needed", *match.span()))
    for match in re.finditer(r"\\begin\s*\{([^{}]*)\}", stripped):
        if match.group(1).strip() in FORBIDDEN_ENVIRONMENTS:
            problems.append(Problem("forbidden", f"line {_line_of(text, match.start())}: no {match.group(1)} "
                                    "environment in a section (code places figures and the abstract)", *match.span()))
    return problems


# -- repairing by code -------------------------------------------------------------------------------------

_BLOCK_LINE = re.compile(r"[ \t]*(?:\\(?:item|begin|end)\b|[-*+|#][ \t])")


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around text[start:end]: from after the previous sentence end or paragraph break to the
    end of the sentence holding `end` (its trailing space included)."""
    def is_end(i: int) -> bool:
        if text[i] not in ".!?" or (i + 1 < len(text) and not text[i + 1].isspace()):
            return False
        word = re.search(r"([A-Za-z.]+)$", text[max(0, i - 12):i])
        return not (word and word.group(1).lower().rstrip(".") in ABBREVIATIONS)

    def paragraph_or_item(i: int) -> bool:  # text[i:] starts a paragraph, a list item or an environment line
        return text[i - 1] == "\n" and (text[i - 2:i - 1] == "\n" or bool(_BLOCK_LINE.match(text, i)))

    left = start
    while left > 0:
        if is_end(left - 1) or paragraph_or_item(left):
            break
        left -= 1
    right = max(end, start)
    while right < len(text):
        if text[right] == "\n" and (text.startswith("\n", right + 1) or _BLOCK_LINE.match(text, right + 1)):
            break
        if is_end(right):
            right += 1
            break
        right += 1
    while right < len(text) and text[right] in " \t":
        right += 1
    while left < start and text[left] in " \t":
        left += 1
    return left, right


def _remove_sentences(text: str, spans: Sequence[tuple[int, int]]) -> str:
    bounds = sorted(_sentence_bounds(text, s, e) for s, e in spans if s >= 0)
    merged: list[list[int]] = []
    for left, right in bounds:
        if merged and left <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], right)
        else:
            merged.append([left, right])
    for left, right in reversed(merged):
        text = text[:left] + text[right:]
    return _collapse_blank_lines(_EMPTY_LIST.sub("", text))


_EMPTY_LIST = re.compile(r"\\begin\{(itemize|enumerate)\}\s*\\end\{\1\}")


def _collapse_blank_lines(text: str) -> str:
    """One blank line where removed text left several."""
    return re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)


def _skip_group(text: str, pos: int, open_: str, close: str) -> int:
    """The index after the balanced group opening at text[pos] (or pos when there is none)."""
    if pos >= len(text) or text[pos] != open_:
        return pos
    depth = 0
    for i in range(pos, len(text)):
        if text[i] == "\\":
            continue
        if text[i] == open_ and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == close and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _remove_command(text: str, start: int, name: str) -> str:
    """Remove the command at `start` and what belongs to it: `*`, [options], {arguments}; for \\def-like
    commands the macro name and parameter text as well, for TeX primitives their numbers and file names."""
    pos = start + 1 + len(name)
    if pos < len(text) and text[pos] == "*":
        pos += 1
    if name == "csname":
        end = text.find("\\endcsname", pos)
        return text[:start] + (text[end + len("\\endcsname"):] if end >= 0 else text[pos:])
    if name in _PRIMITIVE_ARGS:
        operand = re.match(_PRIMITIVE_ARGS[name], text[pos:])
        pos += operand.end() if operand else 0
    if name in ("def", "gdef", "edef", "xdef", "let"):
        macro = re.match(r"\s*\\(?:[A-Za-z@]+|.)\s*=?\s*(?:#\d)*", text[pos:])
        if macro:
            pos += macro.end()
        if name == "let":
            target = re.match(r"\s*\\(?:[A-Za-z@]+|.)", text[pos:])
            return text[:start] + text[pos + (target.end() if target else 0):]
    for _ in range(4):
        gap = re.match(r"[ \t]*", text[pos:]).end()
        if pos + gap < len(text) and text[pos + gap] in "[{":
            pos = _skip_group(text, pos + gap, text[pos + gap], "]" if text[pos + gap] == "[" else "}")
        else:
            break
    return text[:start] + text[pos:]


_PRIMITIVE_ARGS = {
    "write": r"\s*\d*", "openout": r"\s*\d*\s*=?\s*[^\s{}\\]*", "openin": r"\s*\d*\s*=?\s*[^\s{}\\]*",
    "closeout": r"\s*\d*", "closein": r"\s*\d*", "read": r"\s*\d*\s*(?:to\s*\\[A-Za-z@]+)?",
    "newwrite": r"\s*\\[A-Za-z@]+", "newread": r"\s*\\[A-Za-z@]+", "catcode": r"\s*`\\?.\s*=?\s*\d*",
}


def _remove_environments(text: str, names: Iterable[str]) -> str:
    for name in names:
        escaped = re.escape(name)
        text = re.sub(rf"\\begin\s*\{{{escaped}\}}.*?\\end\s*\{{{escaped}\}}", "", text, flags=re.S)
        text = re.sub(rf"\\(?:begin|end)\s*\{{{escaped}\}}", "", text)
    return text


def repair_section(text: str, rules: SectionRules) -> tuple[str, list[str]]:
    """`text` with the problems of check_section removed by code, and what was done (one line each).

    Markdown becomes LaTeX (bullets) or goes (tables, headings, fences), forbidden commands and environments are
    deleted, \\section becomes \\subsection, unknown citation keys are dropped, "Run 2" becomes the run's name, a
    typed number that writes exactly one recorded result becomes its \\result, bare `_ ^ # &` are escaped, and
    sentences with unknown \\result keys or labels, other typed numbers, hardware claims, a worse result called an
    improvement, text said before in the section or copied from the prompt, a knob said to move the wrong way, or
    terms nothing recorded are deleted. If the text is still unbalanced it becomes plain text (plain_text_section)."""
    done: list[str] = []
    if _markdown_problems(text, text):
        text = _markdown_to_latex(text)
        done.append("turned Markdown into LaTeX (bullets into itemize; tables, headings and fences removed)")
    escaped_percent = _PERCENT_COMMENT.sub(r"\1\\%", text)
    if escaped_percent != text:
        done.append("escaped % after numbers")
    text = _COMMENT.sub("", escaped_percent)

    # forbidden environments and commands, \section
    before = text
    text = _remove_environments(text, sorted(FORBIDDEN_ENVIRONMENTS - {"document", "abstract"}))
    text = re.sub(r"\\(?:begin|end)\s*\{(?:document|abstract)\}", "", text)
    for _ in range(200):
        problem = next((p for p in _command_problems(text, text) if p.kind == "forbidden"), None)
        if problem is None:
            break
        name = _CONTROL_WORD.match(text, problem.start).group(1)
        text = _remove_command(text, problem.start, name)
    leading = _SECTION_CMD.match(text.lstrip())
    if leading:
        text = text.lstrip()[leading.end():]
    text = _SECTION_CMD.sub(lambda m: f"\\subsection{{{m.group(1)}}}", text)
    if text != before:
        done.append("removed commands a section may not use")

    # citations: drop unknown keys, and a \cite left with none
    def fix_cite(match: re.Match) -> str:
        if match.group(1) == "nocite":
            return ""
        keys = [k.strip() for k in match.group(2).split(",") if k.strip() in rules.cite_keys]
        if not keys:
            return ""
        return re.sub(r"\{[^{}]*\}$", "{" + ",".join(keys) + "}", match.group())

    fixed = _CITE.sub(fix_cite, text)
    if fixed != text:
        fixed = re.sub(r"[ \t]*~(?=[.,;:)])", "", fixed)
        fixed = re.sub(r"[ \t]+(?=[.,;:])", "", fixed)
        done.append("removed unknown citation keys")
        text = fixed

    # "Run 2" -> the run's name
    prose = _prose(text)
    matches = list(_RUN_LABEL.finditer(prose))
    for match in reversed(matches):
        text = text[:match.start()] + rules.run_phrase(int(match.group(1))) + text[match.end():]
    if matches:
        done.append("named runs by what they changed instead of their numbers")

    # typed numbers: the one result they write, else their sentence goes
    doomed: list[tuple[int, int]] = []
    replaced = 0
    prose = _prose(text)
    for problem in reversed(_number_problems(text, prose, rules)):
        match = _NUMBER.match(prose, problem.start)
        token = match.group(1) if match else ""
        exact = [v for v in rules.results.values() if token and v.plain == token and not match.group(2)]
        if len(exact) == 1:
            text = text[:match.start(1)] + f"\\result{{{exact[0].key}}}" + text[match.end(1):]
            replaced += 1
        else:
            doomed.append((problem.start, problem.end))
    if replaced:
        done.append(f"replaced {replaced} typed result(s) with \\result")

    # sentences that cannot be saved: unknown results or labels, typed numbers, hardware claims, spin
    kinds = {"unknown_result", "unknown_label", "hardware", "spin", "repeated", "prompt_text", "knob_direction",
             "unsupported_term", "contradiction", "result_talk"}
    if doomed:
        # positions moved with the replacements above: find the typed numbers again
        doomed = [(p.start, p.end) for p in _number_problems(text, _prose(text), rules)]
    doomed += [(p.start, p.end) for p in check_section(text, rules) if p.kind in kinds]
    if doomed:
        text = _remove_sentences(text, doomed)
        done.append(f"deleted {len(doomed)} sentence(s) with unrecorded numbers, unknown keys, hardware claims, "
                    "a worse result called an improvement, said before, copied from the prompt, a knob moved the "
                    "wrong way, or terms nothing recorded")

    # bare specials in text
    specials = _text_specials(text)
    for pos, char in reversed(specials):
        text = text[:pos] + "\\" + char + text[pos + 1:]
    if specials:
        done.append("escaped bare _ ^ # & in text")

    text = normalize_text(text)
    if _parse_error(text) is not None or any(p.kind != "special_char" for p in check_section(text, rules)):
        text = plain_text_section(text, rules)
        done.append("turned the section into plain text (its LaTeX could not be repaired)")
    return text, done


# -- the last resort: plain text ---------------------------------------------------------------------------

_PLACEHOLDER = "zqxplaceholder{}zqx"


def plain_text_section(text: str, rules: SectionRules | None = None) -> str:
    """The section as escaped plain text, which always compiles: LaTeX markup becomes text (pylatexenc),
    special characters are escaped; known \\result values, citations and references are kept. With `rules`,
    sentences with typed numbers, hardware claims or run numbers are deleted as well."""
    kept: list[str] = []

    def keep(latex: str) -> str:
        kept.append(latex)
        return f" {_PLACEHOLDER.format(len(kept) - 1)} "

    text = _COMMENT.sub("", text)
    known_results = set(rules.results) if rules else set()
    known_cites = rules.cite_keys if rules else set()
    known_labels = (rules.labels | labels_in(text)) if rules else set()
    text = _RESULT.sub(lambda m: keep(f"\\result{{{m.group(1).strip()}}}") if m.group(1).strip() in known_results
                       else " ", text)

    def cite(match: re.Match) -> str:
        keys = [k.strip() for k in match.group(2).split(",") if k.strip() in known_cites]
        command = match.group(1) if match.group(1) in ("cite", "citep", "citet", "citealp", "citeauthor") else "cite"
        return keep(f"\\{command}{{{','.join(keys)}}}") if keys else " "

    text = _CITE.sub(cite, text)
    text = _REF.sub(lambda m: keep(f"\\ref{{{m.group(2).strip()}}}") if m.group(2).strip() in known_labels
                    else " ", text)
    text = _LABEL.sub(" ", text)
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip():
            paragraphs.append(re.sub(r"^[-*+] ", "", " ".join(_to_text(paragraph).split())))  # no Markdown bullet
    escaped = "\n\n".join(latex_escape(p) for p in paragraphs if p)
    escaped = _NON_ASCII.sub("", escaped)

    def restore(match: re.Match) -> str:
        index = int(match.group(1))
        return kept[index] if index < len(kept) else ""

    restored = re.sub(r"zqxplaceholder(\d+)zqx", restore, escaped)
    restored = re.sub(r"[ \t]+([.,;:])", r"\1", restored)
    if rules is not None:  # the words are kept: sentences with numbers or claims that have no source still go
        doomed = [(p.start, p.end) for p in check_section(restored, rules)
                  if p.kind in ("typed_number", "hardware", "run_label")]
        restored = _remove_sentences(restored, doomed) if doomed else restored
    return restored.strip() + "\n" if restored.strip() else ""  # an empty section is left out of the paper


def _to_text(latex: str) -> str:
    try:
        from pylatexenc.latex2text import LatexNodes2Text

        return LatexNodes2Text(math_mode="text", strict_latex_spaces=True).latex_to_text(latex)
    except Exception:  # pylatexenc on broken input: strip markup by hand
        stripped = re.sub(r"\\[A-Za-z@]+\*?", " ", latex)
        return re.sub(r"[{}$\\]", " ", stripped)


def numbers_of(values: Iterable[Any]) -> set[float]:
    """The numbers in knob values (nested lists and dicts too), which prose may state."""
    found: set[float] = set()
    for value in values:
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            found.add(float(value))
        elif isinstance(value, str):
            found |= {float(m) for m in re.findall(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", value)}
        elif isinstance(value, Mapping):
            found |= numbers_of(value.values())
        elif isinstance(value, list | tuple | set):
            found |= numbers_of(value)
    return found


# -- across sections ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\\(?:result|cite[a-zA-Z]*|ref)\s*\{[^{}]*\}|[A-Za-z0-9]+")
REPEAT_SIMILARITY = 0.6


def _gist(sentence: str) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """A sentence's word pairs, and the results it cites: the same words about other results say something else."""
    tokens = [token.lower() for token in _TOKEN.findall(sentence)]
    return frozenset(zip(tokens, tokens[1:])), frozenset(m.group(1).strip() for m in _RESULT.finditer(sentence))


def _repeats(gist: tuple[frozenset, frozenset], other: tuple[frozenset, frozenset]) -> bool:
    (pairs, results), (other_pairs, other_results) = gist, other
    return results == other_results and len(pairs & other_pairs) >= REPEAT_SIMILARITY * len(pairs | other_pairs)


def drop_repeats(texts: Sequence[str], min_words: int = 6) -> tuple[list[str], int]:
    """`texts` (parts of one paper, the one to keep first) without the sentences that nearly repeat a sentence of
    an earlier part (the same results, and word pairs with a Jaccard similarity from REPEAT_SIMILARITY up), and
    how many went."""
    seen: list[tuple[frozenset, frozenset]] = []
    kept: list[str] = []
    dropped = 0
    for text in texts:
        stripped = _COMMENT.sub(lambda m: " " * len(m.group()), text)
        mine, doomed = [], []
        for start, end, words in _prose_sentences(stripped):
            gist = _gist(stripped[start:end])
            if len(words) < min_words:
                continue
            if any(_repeats(gist, other) for other in seen):
                doomed.append((start, end))
            else:
                mine.append(gist)
        seen += mine
        kept.append(normalize_text(_remove_sentences(text, doomed)) if doomed else text)
        dropped += len(doomed)
    return kept, dropped
