"""`SectionRules` and `check_section(text, rules)`: what a model's section may not contain (typed numbers, unknown
`\\result` keys and citations, "Run 2", forbidden commands, unbalanced braces, prompt text, Markdown, a knob said to
move the wrong way, praise the results do not bear ...), as problems to feed back to the model."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scientist_paper.commands import CONTROL_WORD, decode_carets, forbidden_uses
from scientist_paper.latex import NON_ASCII, latex_escape, non_ascii_encoder
from scientist_paper.results import (CLAIM, WORD, ResultValue, compare_with_baseline, has_phrase, has_standard_errors,
                                     value_text)


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


ABBREVIATIONS = frozenset({"e.g", "i.e", "al", "etc", "vs", "cf", "fig", "figs", "eq", "eqs", "sec", "tab",
                           "resp", "approx", "no", "dr", "prof", "mr", "ms"})

COMMENT = re.compile(r"(?<!\\)%[^\n]*")
CITE = re.compile(r"\\(cite[a-zA-Z]*|nocite)\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^{}]*)\}")
RESULT = re.compile(r"\\result\s*\{([^{}]*)\}")
REF = re.compile(r"\\(ref|eqref|autoref|cref|Cref|pageref|nameref)\*?\s*\{([^{}]*)\}")
LABEL = re.compile(r"\\label\s*\{([^{}]*)\}")
_KEY_ARG_COMMANDS = re.compile(
    r"\\(?:result|change|cite[a-zA-Z]*|nocite|ref|eqref|autoref|cref|Cref|pageref|nameref|label|includegraphics|input|"
    r"include|url|href|begin|end|hspace|vspace|setlength|addtolength|rule)\*?\s*(?:\[[^\]]*\]\s*)*\{[^{}]*\}")
_TABULAR_SPEC = re.compile(r"\\begin\{(?:tabular\*?|tabularx|array|longtable)\}\s*(?:\{[^{}]*\}\s*)?\{[^{}]*\}")
_DIMENSION = re.compile(r"\d*\.?\d+(?:pt|em|ex|cm|mm|in|bp|sp)\b|\d*\.?\d+\s*\\(?:linewidth|textwidth|"
                        r"columnwidth|hsize|textheight|baselineskip)")
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w]|\.\d)(\s*(?:\\%|percent\b))?")
# "Run 2", "run_2", "run\\_2", "Run~3", "run no. 4"; not "runs 5 seeds" or "run 3 times"
RUN_LABEL = re.compile(r"\b[Rr]uns?(?:\\_|_|-|\\#|~|\s|no\.)*(\d+)\b(?!\s*(?:seeds?|times|steps|epochs|trials|"
                        r"repetitions|replicates|iterations|updates|models|configurations|experiments)\b)")
_GPU_NAME = re.compile(r"\b(?:[AHV]100|H200|P100|K80|T4|L4|L40S?|A10G?|A6000|MI\d{2,3}X?|RTX[\s-]?\w*\d{3,4}\w*|"
                       r"GTX[\s-]?\d{3,4}\w*|TPU(?:\s?v\d\w*)?|Titan\s?[A-Z]+\w*|Tesla\s?\w+)\b")
_HARDWARE_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\s*(?:GB|GiB|TB)\s*(?:of\s*)?(?:RAM|memory|VRAM|GPU)\b|"
                              r"\b\d+\s*(?:CPU\s*)?(?:cores|vCPUs?|CPUs|threads|GPUs?)\b", re.IGNORECASE)
PERCENT_COMMENT = re.compile(r"(\d\s*)(?<!\\)%")
_VERB = re.compile(r"\\verb\*?([^A-Za-z\s*])(.*?)\1")
SECTION_CMD = re.compile(r"\\section\*?\s*\{([^{}]*)\}")


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def prose_of(text: str) -> str:
    """`text` with everything that is not prose blanked out (same length, so positions still match):
    comments, command names, keys of \\result, \\cite, \\ref ..., tabular specs, lengths."""
    spans: list[tuple[int, int]] = []
    for pattern in (COMMENT, _KEY_ARG_COMMANDS, _TABULAR_SPEC, _DIMENSION, _VERB):
        spans += [m.span() for m in pattern.finditer(text)]
    spans += [m.span() for m in CONTROL_WORD.finditer(text) if m.group(1)[0].isalpha() or m.group(1) == "@"]
    return _mask(text, spans)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, max(0, pos)) + 1


def cited_keys(text: str) -> list[str]:
    """Citation keys used in `text`, in order, without repeats (comments skipped)."""
    keys: list[str] = []
    for match in CITE.finditer(COMMENT.sub("", text)):
        keys += [k.strip() for k in match.group(2).split(",") if k.strip()]
    return list(dict.fromkeys(keys))


def labels_in(text: str) -> set[str]:
    return {m.group(1).strip() for m in LABEL.finditer(COMMENT.sub("", text))}


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
    """A model's LaTeX made safe for pdflatex without changing its meaning: `^^` escapes decoded, commands mangled
    by JSON escaping restored, a Markdown fence or **bold** undone, typographic Unicode as LaTeX, other non-ASCII
    as LaTeX macros, line ends and trailing spaces normalised."""
    text = decode_carets(text)  # what TeX reads: ^^5c is a backslash
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
        text = NON_ASCII.sub(lambda m: non_ascii_encoder().unicode_to_latex(m.group()), text)
    return "\n".join(line.rstrip() for line in text.strip().split("\n")) + "\n"


def parse_error(text: str) -> tuple[str, int] | None:
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


def text_specials(text: str) -> list[tuple[int, str]]:
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


def matching_results(token: str, percent: bool, rules: SectionRules) -> list[ResultValue]:
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


def number_problems(text: str, prose: str, rules: SectionRules) -> list[Problem]:
    problems = []
    for match in NUMBER.finditer(prose):
        token, percent = match.group(1), bool(match.group(2))
        number = float(token)
        if any(_close(number, allowed) for allowed in rules.allowed_numbers) and not percent:
            continue
        precise = ("." in token and len(token.split(".", 1)[1].rstrip("0")) >= 2) or "e" in token.lower()
        matches = matching_results(token, percent, rules) if ("." in token or percent or precise) else []
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
    stripped = COMMENT.sub(lambda m: " " * len(m.group()), text)
    for match in RESULT.finditer(stripped):
        key = match.group(1).strip()
        if key not in rules.results:
            problems.append(Problem("unknown_result", f"line {_line_of(text, match.start())}: \\result{{{key}}} is "
                                    "not a recorded result; use only the keys listed", *match.span()))
    for match in CITE.finditer(stripped):
        if match.group(1) == "nocite":
            continue
        unknown = [k.strip() for k in match.group(2).split(",") if k.strip() and k.strip() not in rules.cite_keys]
        if unknown:
            problems.append(Problem("unknown_citation", f"line {_line_of(text, match.start())}: citation key(s) "
                                    f"{', '.join(unknown)} are not among the references given; cite only those keys",
                                    *match.span()))
    known_labels = rules.labels | labels_in(text)
    for match in REF.finditer(stripped):
        label = match.group(2).strip()
        if label not in known_labels:
            problems.append(Problem("unknown_label", f"line {_line_of(text, match.start())}: \\{match.group(1)}"
                                    f"{{{label}}} refers to no label of this paper (labels: "
                                    f"{', '.join(sorted(rules.labels))})", *match.span()))
    problems += command_problems(text)
    for match in PERCENT_COMMENT.finditer(text):
        problems.append(Problem("percent", f"line {_line_of(text, match.start())}: a bare % after a number starts a "
                                "comment and hides the rest of the line; write \\% (and no typed results)",
                                *match.span()))
    prose = prose_of(text)
    for match in RUN_LABEL.finditer(prose):
        index = int(match.group(1))
        problems.append(Problem("run_label", f"line {_line_of(text, match.start())}: \"{match.group().strip()}\" "
                                "names a run by its number; name it by what it changed (e.g. "
                                f"{rules.run_phrase(index)})", *match.span()))
    problems += number_problems(text, prose, rules)
    problems += _spin_problems(text, stripped, rules)
    problems += _repeated_sentences(text, stripped)
    problems += markdown_problems(text, stripped)
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
    for pos, char in text_specials(text):
        problems.append(Problem("special_char", f"line {_line_of(text, pos)}: a bare {char} in text is a LaTeX error; "
                                f"write \\{char} (or put it in math mode)", pos, pos + 1))
    error = parse_error(stripped)
    if error is not None:
        message, pos = error
        where = f"line {_line_of(text, pos)}: " if pos >= 0 else ""
        problems.append(Problem("unbalanced", f"{where}{message} (braces, environments and $...$ must be "
                                "balanced)", pos, pos))
    return problems


_HEDGE = re.compile(r"\b(?:not|no|nor|neither|never|fails?|failed|without|worse|degrad\w*|hurts?|unchanged|"
                    r"within|comparable|similar|whether|if|expected|hypothesi[sz]\w*|aim\w*|hope\w*)\b|n't\b",
                    re.IGNORECASE)


def _spin_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences that call a run's result an improvement when the recorded numbers say it is worse than the
    baseline or not clearly different: the spin on negative results the paper's system was known for."""
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    for match in RESULT.finditer(stripped):
        value = rules.results.get(match.group(1).strip())
        comparison = compare_with_baseline(value, rules.results) if value else None
        if comparison is None or comparison.better is None or comparison.improvement:
            continue
        start, end = sentence_bounds(stripped, match.start(), match.end())
        if (start, end) in seen:
            continue
        sentence = prose_of(stripped[start:end])
        if not CLAIM.search(sentence) or _HEDGE.search(sentence):
            continue
        keys = [m.group(1).strip() for m in RESULT.finditer(stripped[start:end])]
        others = [rules.results[k] for k in keys if k in rules.results]
        if any((c := compare_with_baseline(v, rules.results)) is not None and c.improvement for v in others):
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
    if not comparisons or any(c.improvement for c in comparisons):
        return []
    knobs = [tuple(WORD.findall(name.lower().replace("_", " "))) for name in rules.knob_directions]
    problems = []
    for start, end, words in prose_sentences(stripped):
        sentence = prose_of(stripped[start:end])
        about_runs = _FINDING.search(sentence) or any(has_phrase(words, knob) for knob in knobs)
        if about_runs and _praises(stripped[start:end]) and not CITE.search(stripped[start:end]) \
                and not _HYPOTHETICAL.search(sentence):
            problems.append(Problem("spin", f"line {_line_of(text, start)}: no variant was clearly better than the "
                                    "baseline in any recorded result, but this sentence praises one; say plainly "
                                    "what the numbers show", start, end))
    return problems


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
    verdict = _one_of({"better": bool(CLAIM.search(sentence) and not _HEDGE.search(sentence)),
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
            verdict = "better" if comparison.improvement else "worse" if comparison.worse else "unclear"
            recorded.setdefault(value.run, {}).setdefault(value.metric, {})[value.dataset] = \
                {verdict, comparison.direction}
    return recorded


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
    metrics = {tuple(WORD.findall(value.metric.lower())) for value in rules.results.values()}
    problems = []
    for start, end, words in prose_sentences(stripped):
        words = [_METRIC_WORDS.get(word, word) for word in words]
        sentence = prose_of(stripped[start:end])
        about_results = any(has_phrase(words, metric) for metric in metrics) or _FINDING.search(sentence)
        talks = about_results and _says_anything(sentence) and not _HYPOTHETICAL.search(sentence)
        if talks or RESULT.search(stripped[start:end]):
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
            knobs.setdefault(tuple(WORD.findall(knob.lower())), set()).add(index)
    no_stderrs = not has_standard_errors(rules.results)
    problems = []
    for start, end, words in prose_sentences(stripped):
        sentence = prose_of(stripped[start:end])
        if no_stderrs and _STATS_CLAIM.search(sentence) and not _NEGATION.search(sentence):
            problems.append(Problem("contradiction", f"line {_line_of(text, start)}: no standard error was recorded "
                                    "(no run has two seeds or more): claim no standard errors or significance",
                                    start, end))
            continue
        words = [_METRIC_WORDS.get(word, word) for word in words]
        runs = set().union(*(indices for knob, indices in knobs.items() if has_phrase(words, knob)))
        if not runs and len(variants) == 1 and not _baseline_first(sentence):
            runs = set(variants)  # with one variant, a sentence about a result is about it, unless about the baseline
        said = _claims(sentence) if len(runs) == 1 and not _HYPOTHETICAL.search(sentence) else set()
        by_metric = recorded.get(next(iter(runs)), {}) if said else {}
        named = [metric for metric in by_metric if has_phrase(words, WORD.findall(metric.lower()))]
        if not named and _ALL_METRICS.search(sentence):
            named = list(by_metric)
        # the datasets the sentence names ("lower loss on circle, line and moons"), else all of them together
        wrong = []
        for metric in named:
            datasets = [d for d in by_metric[metric] if has_phrase(words, WORD.findall(d.lower()))] or [None]
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


# a sentence of prose: a full stop inside a number or a key (blanked by prose_of) does not end it
_PROSE_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s.!?]))+[.!?]*")


PROMPT_NGRAM = 5


def prose_sentences(stripped: str) -> Iterable[tuple[int, int, list[str]]]:
    """(start, end, words) of each sentence of `stripped`'s prose, from its first character to the last before its
    full stop; words lowercased, without LaTeX commands."""
    prose = prose_of(stripped)
    for match in _PROSE_SENTENCE.finditer(prose):
        words = WORD.findall(match.group().lower())
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
    return set(_ngrams(WORD.findall(prose_of(_QUOTED.sub(" ", text)).lower())))


def _prompt_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences that copy the instructions or the listings of the prompt ("write the macros, not their values",
    "References you may cite: ..."): small models recite what they were given."""
    problems = []
    for start, end, words in prose_sentences(stripped):
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


def markdown_problems(text: str, stripped: str) -> list[Problem]:
    return [Problem("markdown", f"line {_line_of(text, match.start())}: {what} is Markdown, not LaTeX",
                    *match.span())
            for pattern, what in _MARKDOWN for match in pattern.finditer(stripped)]


def markdown_to_latex(text: str) -> str:
    """Markdown in a LaTeX section made LaTeX: bullets become itemize; tables, headings and fences go."""
    for pattern in (_MD_TABLE, _MD_HEADING, _MD_FENCE):
        text = pattern.sub("", text)
    text = collapse_blank_lines(text)

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


_FROM_TO = re.compile(r"\bfrom\s+(?:an?\s+|the\s+)?([\w.+-]+)\s+to\s+(?:an?\s+|the\s+)?([\w.+-]+)", re.IGNORECASE)


def _knob_problems(text: str, stripped: str, rules: SectionRules) -> list[Problem]:
    """Sentences saying a knob went the way no run moved it ("decreased the learning rate" when it rose, "the
    beta schedule from quadratic to linear" when the runs changed it from linear to quadratic)."""
    problems = []
    for start, end, words in prose_sentences(stripped):
        sentence = prose_of(stripped[start:end])
        for knob, moves in rules.knob_moves.items():
            if not has_phrase(words, WORD.findall(knob.lower())) or _HYPOTHETICAL.search(sentence):
                continue  # a sentence about what to try next may move a knob back
            for match in _FROM_TO.finditer(sentence):
                said = (value_text(match.group(1).rstrip(".")), value_text(match.group(2).rstrip(".")))
                if said not in moves and said[::-1] in moves:
                    done = ", ".join(f"from {a} to {b}" for a, b in sorted(moves))
                    problems.append(Problem("knob_direction", f"line {_line_of(text, start)}: this sentence says "
                                            f"{knob} went from {said[0]} to {said[1]}, but the runs changed it "
                                            f"{done}; say what was done", start, end))
                    break
        for knob, directions in rules.knob_directions.items():
            if directions - {"raised", "lowered"}:
                continue  # a knob that is not a number, or whose baseline is unknown, has no direction
            name = WORD.findall(knob.lower())
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
    prose = _mask(prose_of(stripped), [m.span() for m in _MATH.finditer(stripped)])
    problems = []
    for start, end, _ in prose_sentences(stripped):
        known = rules.terms.union(*(rules.cited_terms.get(key, ()) for key in cited_keys(stripped[start:end])))
        problems += [Problem("unsupported_term", f"line {_line_of(text, match.start())}: \"{match.group()}\" "
                             "appears nowhere in the records of these experiments or the references cited; state "
                             "only what was run", *match.span())
                     for match in _TERM.finditer(prose, start, end)
                     if match.group().lower().replace("-", "") not in known and not _ORDINAL.fullmatch(match.group())]
    return problems


def command_problems(text: str) -> list[Problem]:
    """Forbidden commands and environments (commands.forbidden_uses: in what TeX reads, comments and math
    included), and \\section."""
    problems = [Problem("forbidden", f"line {_line_of(text, start)}: {what}" if start >= 0 else what, start, end)
                for start, end, what in forbidden_uses(text)]
    for match in CONTROL_WORD.finditer(text):
        if match.group(1) == "section":
            problems.append(Problem("section", f"line {_line_of(text, match.start())}: no \\section in a section's "
                                    "text (code writes the heading); use \\subsection if needed", *match.span()))
    return problems


_BLOCK_LINE = re.compile(r"[ \t]*(?:\\(?:item|begin|end)\b|[-*+|#][ \t])")


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
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


def collapse_blank_lines(text: str) -> str:
    """One blank line where removed text left several."""
    return re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)
