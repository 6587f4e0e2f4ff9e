"""The numbers and what code says of them: `result_values(runs, metrics, deterministic)` turns the recorded results
into `\\result{KEY}` values (`run1.circles.val_accuracy`, `run1.circles.val_accuracy.stderr`; `run0` is the
baseline), formatted with the same decimals across the runs of one metric, each with the seeds behind it and its
template's declaration; `meta_tex` and `results_table_tex` put them in LaTeX; `compare_with_baseline`, the one place
that says whether a difference is clear; and `Study`, which writes from the records alone the title, abstract,
method, setup, results and conclusions of the structured style."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scientist_core import Metric, resolve_metric
from scientist_paper.latex import ABSTRACT_FILE, TABLE_LABEL, env_macros, latex_escape

if TYPE_CHECKING:
    from scientist_core import RunRecord


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def sanitize_key(part: str) -> str:
    """A dataset or metric name as it may appear inside `\\result{...}`: letters, digits, `_ . -`."""
    return _KEY_UNSAFE.sub("-", part.strip()).strip("-") or "x"


@dataclass(frozen=True)
class ResultValue:
    """One recorded number: `plain` is what a model is shown, `latex` what `\\result{key}` typesets; with what the
    run and the template say of it (the seeds behind it, which way its metric improves, whether it is a timing)."""

    key: str
    value: float
    plain: str
    latex: str
    run: int
    dataset: str
    metric: str
    stderr: bool = False                  # the standard error of the mean `key` less ".stderr"
    n: int | None = 1                     # seeds behind the mean; None: several, how many an older file did not say
    better_direction: str | None = None   # "lower" or "higher" is better (Metric.direction); None: neither
    timing: bool = False                  # it measures the machine, not the method (Metric.timing)
    exact: bool = False                   # from a deterministic template: any difference shown is real
    unit: str = ""


def _decimals(values: Sequence[float]) -> int | None:
    """Decimals for one metric across runs: none when every value is an integer; else 3 significant digits of the
    largest value, at least 2 of the smallest, more (up to 3 extra) where different values would print the same;
    None: scientific notation."""
    magnitudes = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not magnitudes or all(v.is_integer() for v in values if math.isfinite(v)):
        return 0  # counts (steps to a target, a peak day) stay integers: 25, not 25.0
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


def result_values(runs: Sequence["RunRecord"], metrics: Mapping[str, Metric] | None = None,
                  deterministic: bool = False) -> dict[str, ResultValue]:
    """Every recorded mean and standard error of `runs` by `\\result` key, the baseline (index 0) first.
    `metrics` and `deterministic` are the template's (`Template.metrics`, `Template.deterministic`). A mean of one
    seed has no standard error, whatever the template wrote for it (the templates used to write 0.0)."""
    ordered = sorted(runs, key=lambda run: run.index)
    groups: dict[tuple[str, str], list[float]] = {}
    for run in ordered:
        for dataset, result in run.results.datasets.items():
            for metric, value in result.means.items():
                groups.setdefault((dataset, metric), []).append(float(value))
    decimals = {group: _decimals(values) for group, values in groups.items()}
    declared = {metric: resolve_metric(metric, metrics) for metric in dict.fromkeys(m for _, m in groups)}
    values: dict[str, ResultValue] = {}
    for run in ordered:
        for dataset, result in run.results.datasets.items():
            for metric, value in result.means.items():
                key = f"run{run.index}.{sanitize_key(dataset)}.{sanitize_key(metric)}"
                places = decimals[(dataset, metric)]
                plain, latex = _format(float(value), places)
                about = dict(n=result.seeds(metric), better_direction=declared[metric].direction,
                             timing=declared[metric].timing, exact=deterministic, unit=declared[metric].unit)
                values[key] = ResultValue(key, float(value), plain, latex, run.index, dataset, metric, **about)
                if metric in result.stderrs and about["n"] != 1:
                    stderr = float(result.stderrs[metric])
                    plain, latex = _format(stderr, places)
                    if places is not None and stderr > 0 and float(plain) == 0:
                        plain, latex = _format(stderr, None if stderr < 1e-3 else -math.floor(math.log10(stderr)))
                    values[f"{key}.stderr"] = ResultValue(f"{key}.stderr", stderr, plain, latex, run.index,
                                                          dataset, metric, **{**about, "stderr": True})
    return values


def has_standard_errors(results: Mapping[str, ResultValue]) -> bool:
    """Whether any mean of `results` has a standard error (some run trained two seeds or more)."""
    return any(value.stderr for value in results.values())


def run_label(run: "RunRecord") -> str:
    """How the paper names a run (plain text), from its record alone, never the plan's description: `baseline`,
    its knob changes ("learning_rate=0.001"), and "code change" with the host's diff summary where the code it ran
    differs from the template's."""
    if run.index == 0:
        return "baseline"
    parts = []
    for name, value in run.knob_changes.items():
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={shown}")
    knobs = ", ".join(parts)
    code = f"code change ({run.code_diff})" if run.code_diff else "code change" if run.code_changed else ""
    return "; ".join(part for part in (knobs, code) if part) or f"variant {run.index}"


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
    lines += [r"\newcommand{\change}[1]{\@ifundefined{scientist@change@#1}{\textbf{??}%",
              r"  \PackageWarning{scientist}{no relative change #1}}{\@nameuse{scientist@change@#1}}}"]
    for key, change in relative_changes(results).items():
        lines.append(f"\\@namedef{{scientist@change@{key}}}{{{change}}}")
    lines.append(r"\makeatother")
    for macro, value in env_macros(facts).items():
        lines.append(f"\\newcommand{{\\{macro}}}{{{latex_escape(value)}}}")
    return "\n".join(lines) + "\n"


def relative_changes(results: Mapping[str, ResultValue]) -> dict[str, str]:
    """`\\change{KEY}` values: a run's mean relative to the baseline's same metric, as LaTeX ("+12.5\\%"),
    computed by code from two recorded results so that no model types a difference."""
    changes = {}
    for key, value in results.items():
        base = results.get(f"run0.{key.split('.', 1)[1]}")
        if value.run == 0 or value.stderr or base is None or not base.value or not math.isfinite(value.value):
            continue
        change = (value.value - base.value) / abs(base.value) * 100
        sign = "+" if change >= 0 else r"\ensuremath{-}"
        changes[key] = f"{sign}{abs(change):.1f}\\%"
    return changes


def _words_of(name: str) -> str:
    """A metric's or a knob's name as words: "val accuracy", "learning rate"."""
    return latex_escape(name.replace("_", " "))


def _column_tex(metric: str, results: Mapping[str, ResultValue]) -> str:
    """A metric's column heading: its name as words, and its declared unit."""
    unit = next((value.unit for value in results.values() if value.metric == metric and value.unit), "")
    return _words_of(metric) + (f" ({latex_escape(unit)})" if unit else "")


def results_table_tex(runs: Sequence["RunRecord"], results: Mapping[str, ResultValue]) -> str:
    """`generated/results-table.tex`: one row per dataset and run (baseline first), one column per metric with
    the mean, $\\pm$ its standard error where it has one, and a last column n with the seeds behind the row's means
    (a plain integer; "--" where an older record did not say). Every other number is a `\\result` of meta.tex;
    a mean of one seed never shows a standard error."""
    ordered = sorted(runs, key=lambda run: run.index)
    datasets = list(dict.fromkeys(d for run in ordered for d in run.results.datasets))
    metrics = list(dict.fromkeys(m for run in ordered for r in run.results.datasets.values() for m in r.means))
    if not datasets or not metrics:
        return "% no results were recorded\n"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{Results of every run: each mean is over the n seeds of its row"
        + (r", $\pm$ its standard error where n is at least 2" if has_standard_errors(results) else "")
        + r"; a mean of one seed has no standard error. The baseline is the unchanged experiment; every other run "
        r"is named by what it changed.}",
        f"\\label{{{TABLE_LABEL}}}",
        r"\small",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        f"\\begin{{tabular}}{{ll{'r' * len(metrics)}r}}",
        r"\toprule",
        "Dataset & Run & " + " & ".join(_column_tex(m, results) for m in metrics) + r" & n \\",
    ]
    for dataset in datasets:
        lines.append(r"\midrule")
        first = True
        for run in ordered:
            if dataset not in run.results.datasets:
                continue
            cells = [latex_escape(dataset) if first else "", latex_escape(run_label(run))]
            first = False
            seeds: set[int | None] = set()
            for metric in metrics:
                key = f"run{run.index}.{sanitize_key(dataset)}.{sanitize_key(metric)}"
                if key not in results:
                    cells.append("--")
                    continue
                seeds.add(results[key].n)
                if f"{key}.stderr" in results:
                    cells.append(f"\\result{{{key}}} $\\pm$ \\result{{{key}.stderr}}")
                else:
                    cells.append(f"\\result{{{key}}}")
            cells.append(str(seeds.pop()) if len(seeds) == 1 and None not in seeds else "--")
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# why a comparison is or is not clear (Comparison.basis)
EXACT, STANDARD_ERRORS, ONE_SEED, NO_STANDARD_ERRORS = "exact", "standard errors", "one seed", "no standard errors"


@dataclass(frozen=True)
class Comparison:
    """A run's value against the baseline's. `clear`: the records can tell the difference from seed noise, which
    takes two seeds or more on both sides and a gap beyond 2 combined standard errors, or a deterministic template
    (any difference shown is exact); with one seed on either side nothing is clear, neither better nor worse."""

    direction: str          # "higher", "lower" or "same" (equal at the precision shown)
    clear: bool             # a real difference, by `basis`
    better: bool | None     # the direction is the metric's good one ("same": False); None: the metric has none
    basis: str = STANDARD_ERRORS  # EXACT, STANDARD_ERRORS, ONE_SEED or NO_STANDARD_ERRORS

    @property
    def improvement(self) -> bool:
        """Clearly in the metric's good direction: what may be called better."""
        return self.better is True and self.clear

    @property
    def worse(self) -> bool:
        """Clearly in the metric's bad direction: what may be called worse (a single seed's never is)."""
        return self.better is False and self.clear and self.direction != "same"

    @property
    def proven(self) -> bool:
        """The same as `improvement` (kept for the code that asks for it by this name)."""
        return self.improvement

    def _words(self, baseline: str, two: str) -> str:
        if self.direction == "same":
            return f"the same as {baseline} at the precision shown"
        quality = {True: " (better)", False: " (worse)", None: ""}[self.better] if self.clear else ""
        text = f"{self.direction}{quality} than {baseline}"
        if self.basis == EXACT:
            return f"{text}, exactly (the experiment is deterministic)"
        if self.basis == ONE_SEED:
            return f"{text}, from a single seed: no clear difference"
        if self.basis == NO_STANDARD_ERRORS:
            return f"{text}, without a recorded standard error: no clear difference"
        if self.clear:
            return f"{text} by more than {two} standard errors"
        return f"{text} but within {two} standard errors: no clear difference"

    def stated(self) -> str:
        """This comparison in the words of code's own prose: better or worse only when clear."""
        return self._words("the baseline's", "two")

    def describe(self) -> str:
        """This comparison for a model's prompt."""
        return self._words("the baseline", "2")


def compare_with_baseline(value: ResultValue, results: Mapping[str, ResultValue]) -> Comparison | None:
    """How `value` (a mean of a run other than the baseline) compares with the baseline's same metric: the one
    place that decides whether a difference is clear."""
    base = results.get(f"run0.{value.key.split('.', 1)[1]}")
    if value.run == 0 or value.stderr or base is None or not (math.isfinite(value.value) and
                                                              math.isfinite(base.value)):
        return None
    se, se_base = results.get(f"{value.key}.stderr"), results.get(f"{base.key}.stderr")
    if value.exact and base.exact:
        basis = EXACT
    elif value.n == 1 or base.n == 1:
        basis = ONE_SEED
    else:
        basis = STANDARD_ERRORS if se is not None and se_base is not None else NO_STANDARD_ERRORS
    if value.plain == base.plain:
        return Comparison("same", False, False, basis)
    direction = "higher" if value.value > base.value else "lower"
    better = None if value.better_direction is None else direction == value.better_direction
    clear = basis == EXACT
    if basis == STANDARD_ERRORS:
        assert se is not None and se_base is not None
        clear = abs(value.value - base.value) > 2 * math.sqrt(se.value ** 2 + se_base.value ** 2)
    return Comparison(direction, clear, better, basis)


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
    facts: Mapping[str, str] = field(default_factory=dict)  # one machine's, or provenance.combined_facts of several
    machines: int = 1                     # how many different machines the runs used
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
                    moves.setdefault(change.name, set()).add((value_text(change.before), value_text(change.after)))
        return {name: frozenset(pairs) for name, pairs in moves.items()}

    def knob_directions(self) -> dict[str, frozenset[str]]:
        """Each changed knob and the ways the runs moved it (SectionRules.knob_directions)."""
        directions: dict[str, set[str]] = {}
        for run in self.variants:
            for change in self.changes(run):
                directions.setdefault(change.name, set()).add(change.direction)
        return {name: frozenset(ways) for name, ways in directions.items()}

    def _values(self) -> list[ResultValue]:
        return [value for value in self.recorded.values() if not value.stderr and not value.timing]

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(value.dataset for value in self._values()))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(value.metric for value in self._values()))

    @property
    def has_stderrs(self) -> bool:
        return has_standard_errors(self.recorded)

    @property
    def exact(self) -> bool:
        """The template is deterministic: every difference shown is real."""
        return any(value.exact for value in self._values())

    @property
    def single_seed(self) -> bool:
        """Every compared mean is of one seed (and the template is not deterministic): no difference is clear."""
        values = self._values()
        return bool(values) and not self.exact and all(value.n == 1 for value in values)

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
        if run.code_diff:
            parts.append(f"its code differs from the template's ({latex_escape(run.code_diff)})")
        elif run.code_changed:
            parts.append("its code changed")
        return _and(parts) if parts else "nothing recorded"

    def abstract(self) -> str:
        changes = "; ".join(f"{self._changes_tex(run)}" for run in self.variants) or "nothing"
        verdicts = [comparison for run in self.variants for _, comparison in self.comparisons(run)]
        better = sum(c.improvement for c in verdicts)
        worse = sum(c.worse for c in verdicts)
        if self.single_seed:
            verdict = (f"Every run used a single seed, so none of the {len(verdicts)} comparisons can tell a "
                       "difference from seed noise: this study claims no difference from the baseline")
        else:
            how = "exactly, the experiment being deterministic" if self.exact else \
                "by more than two standard errors"
            verdict = (f"Of the {len(verdicts)} comparisons, {better} are better than the baseline {how}, {worse} "
                       f"are worse, and {len(verdicts) - better - worse} show no clear difference")
        return (f"We take {latex_escape(self.subject)} and report {len(self.variants)} variant(s) of it, with "
                f"{changes}. Each variant is compared with the unchanged baseline on {len(self.datasets)} "
                f"dataset(s) by {_and([_words_of(m) for m in self.metrics] or ['nothing'])}. {verdict}.\n")

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
        """How many seeds the recorded means are over, and what that lets the comparisons say."""
        counts = sorted({value.n for value in self._values() if value.n is not None})
        unknown = any(value.n is None for value in self._values())
        if self.exact:
            return ("The experiment is deterministic: the same settings give the same numbers, so every difference "
                    "shown is exact.")
        if counts == [1] and not unknown:
            return ("Each run trains one seed per dataset, so no result has a standard error and no difference "
                    "between runs can be told from seed noise.")
        if len(counts) == 1 and not unknown:
            many = f"{counts[0]} seeds"
        elif len(counts) > 1:
            many = f"between {counts[0]} and {counts[-1]} seeds"
        else:
            many = "several seeds (how many was not recorded)"
        return (f"Each run trains {many} per dataset; the results are means with their standard errors where a "
                "mean is over two seeds or more.")

    def _settings_tex(self, names: Sequence[str]) -> str:
        return _and([f"\\texttt{{{latex_escape(n)}}}={_setting_tex(self.baseline[n])}" for n in names
                     if n in self.baseline])

    def setup(self) -> str:
        better = {value.metric: value.better_direction for value in self._values()}
        directions = [f"{_words_of(m)} ({better[m]} is better)" if better[m] else _words_of(m) for m in self.metrics]
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
        software = f"{'; software: ' + ', '.join(software) if software else ''}"
        if self.machines > 1:
            return (f"The runs used {self.machines} different machines; each fact gives every machine's value with "
                    f"the runs that used it ({', '.join(hardware) or 'not recorded'}){software}.")
        return f"All runs used one machine ({', '.join(hardware) or 'not recorded'}){software}."

    def results(self, figure_labels: Sequence[str] = ()) -> str:
        shown = _and([f"Figure~\\ref{{{label}}}" for label in figure_labels]) if figure_labels else ""
        figures = f"; {shown} {'shows' if len(figure_labels) == 1 else 'show'} the runs as plotted" if shown else ""
        clear = ("the experiment is deterministic, so every difference shown is exact" if self.exact else
                 "every run used a single seed, so none of the differences below is a clear one" if self.single_seed
                 else "a difference counts as clear only when both runs have two seeds or more and it exceeds two "
                 "combined standard errors" if self.has_stderrs
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
        seeds = ", each trained with a single seed" if self.single_seed else \
            "" if self.has_stderrs or self.exact else ", without standard errors"
        quick = " in the template's shortened quick mode" if self.quick else ""
        return (f"The evidence is limited: {len(self.variants)} variant(s) of one experiment on "
                f"{len(self.datasets)} dataset(s){seeds}{quick}; it says nothing about other models or data.\n")

    def conclusion(self) -> str:
        sentences = []
        for run in self.variants:
            found = self.comparisons(run)
            # each verdict cites the result it rests on (claims.py traces every comparative statement)
            better = [f"{_words_of(v.metric)} on {latex_escape(v.dataset)} (\\result{{{v.key}}})"
                      for v, c in found if c.improvement]
            worse = [f"{_words_of(v.metric)} on {latex_escape(v.dataset)} (\\result{{{v.key}}})"
                     for v, c in found if c.worse]
            parts = ([f"was clearly better than the baseline in {_and(better)}"] if better else []) + \
                ([f"was worse in {_and(worse)}"] if worse else [])
            verdict = "; it ".join(parts) if parts else "showed no clear difference from the baseline" + \
                (" (one seed per run cannot show one)" if self.single_seed else "")
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
    words = WORD.findall(title.lower())
    if any(len(name) > 1 and has_phrase(words, name) for name in (WORD.findall(knob.lower()) for knob in unchanged)):
        return False
    known = {word.replace("-", "") for word in re.findall(r"[a-z0-9][a-z0-9-]*", records.lower())}
    for word in re.findall(r"[a-z0-9][a-z0-9-]*", title.lower()):
        word = word.replace("-", "")
        if CLAIM.fullmatch(word):
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


CLAIM = re.compile(r"\b(?:improv\w*|better|outperform\w*|superior|gains?|boost\w*|beats?|surpass\w*|enhanc\w*|"
                    r"benefits?|advantage\w*|stronger)\b", re.IGNORECASE)


def has_phrase(words: Sequence[str], phrase: Sequence[str]) -> bool:
    return any(list(words[i:i + len(phrase)]) == list(phrase) for i in range(len(words) - len(phrase) + 1))


WORD = re.compile(r"[a-z0-9]+")


def value_text(value: Any) -> str:
    """A knob's value as prose writes it: 0.0003 and 3e-4 alike, strings lowercased."""
    return f"{value:g}" if isinstance(value, float) else str(value).lower()
