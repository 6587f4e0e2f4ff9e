"""What code does with a section the model could not fix: `repair_section(text, rules)` removes the problems
`check_section` finds; `plain_text_section(text, rules)` is the last resort, the section as escaped plain text that
always compiles, keeping its `\\result` values and citations; `drop_repeats(texts)` keeps a sentence repeated across
the parts of a paper in the first part only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scientist_paper.checks import (
    CITE, COMMENT, LABEL, NUMBER, PERCENT_COMMENT, REF, RESULT, RUN_LABEL, SECTION_CMD, SectionRules, check_section,
    collapse_blank_lines, command_problems, labels_in, markdown_problems, markdown_to_latex, normalize_text,
    number_problems, parse_error, prose_of, prose_sentences, sentence_bounds, text_specials,
)
from scientist_paper.commands import CONTROL_WORD, FORBIDDEN_ENVIRONMENTS, decode_carets
from scientist_paper.latex import NON_ASCII, latex_escape
from scientist_paper.results import run_label


def remove_sentences(text: str, spans: Sequence[tuple[int, int]]) -> str:
    bounds = sorted(sentence_bounds(text, s, e) for s, e in spans if s >= 0)
    merged: list[list[int]] = []
    for left, right in bounds:
        if merged and left <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], right)
        else:
            merged.append([left, right])
    for left, right in reversed(merged):
        text = text[:left] + text[right:]
    return collapse_blank_lines(_EMPTY_LIST.sub("", text))


_EMPTY_LIST = re.compile(r"\\begin\{(itemize|enumerate)\}\s*\\end\{\1\}")


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
    text = decode_carets(text)
    if markdown_problems(text, text):
        text = markdown_to_latex(text)
        done.append("turned Markdown into LaTeX (bullets into itemize; tables, headings and fences removed)")
    escaped_percent = PERCENT_COMMENT.sub(r"\1\\%", text)
    if escaped_percent != text:
        done.append("escaped % after numbers")
    text = COMMENT.sub("", escaped_percent)

    # forbidden environments and commands, \section
    before = text
    text = _remove_environments(text, sorted(FORBIDDEN_ENVIRONMENTS - {"document", "abstract"}))
    text = re.sub(r"\\(?:begin|end)\s*\{(?:document|abstract)\}", "", text)
    for _ in range(200):
        problem = next((p for p in command_problems(text) if p.kind == "forbidden" and p.start >= 0), None)
        if problem is None:
            break
        command = CONTROL_WORD.match(text, problem.start)
        if command:
            text = _remove_command(text, problem.start, command.group(1))
        else:  # a ^^ left at the very end
            text = text[:problem.start] + text[problem.end:]
    leading = SECTION_CMD.match(text.lstrip())
    if leading:
        text = text.lstrip()[leading.end():]
    text = SECTION_CMD.sub(lambda m: f"\\subsection{{{m.group(1)}}}", text)
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

    fixed = CITE.sub(fix_cite, text)
    if fixed != text:
        fixed = re.sub(r"[ \t]*~(?=[.,;:)])", "", fixed)
        fixed = re.sub(r"[ \t]+(?=[.,;:])", "", fixed)
        done.append("removed unknown citation keys")
        text = fixed

    # "Run 2" -> the run's name
    prose = prose_of(text)
    matches = list(RUN_LABEL.finditer(prose))
    for match in reversed(matches):
        text = text[:match.start()] + rules.run_phrase(int(match.group(1))) + text[match.end():]
    if matches:
        done.append("named runs by what they changed instead of their numbers")

    # typed numbers: the one result they write, else their sentence goes
    doomed: list[tuple[int, int]] = []
    replaced = 0
    prose = prose_of(text)
    for problem in reversed(number_problems(text, prose, rules)):
        match = NUMBER.match(prose, problem.start)
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
        doomed = [(p.start, p.end) for p in number_problems(text, prose_of(text), rules)]
    doomed += [(p.start, p.end) for p in check_section(text, rules) if p.kind in kinds]
    if doomed:
        text = remove_sentences(text, doomed)
        done.append(f"deleted {len(doomed)} sentence(s) with unrecorded numbers, unknown keys, hardware claims, "
                    "a worse result called an improvement, said before, copied from the prompt, a knob moved the "
                    "wrong way, or terms nothing recorded")

    # bare specials in text
    specials = text_specials(text)
    for pos, char in reversed(specials):
        text = text[:pos] + "\\" + char + text[pos + 1:]
    if specials:
        done.append("escaped bare _ ^ # & in text")

    text = normalize_text(text)
    if parse_error(text) is not None or any(p.kind != "special_char" for p in check_section(text, rules)):
        text = plain_text_section(text, rules)
        done.append("turned the section into plain text (its LaTeX could not be repaired)")
    return text, done


_PLACEHOLDER = "zqxplaceholder{}zqx"


def plain_text_section(text: str, rules: SectionRules | None = None) -> str:
    """The section as escaped plain text, which always compiles: LaTeX markup becomes text (pylatexenc),
    special characters are escaped; known \\result values, citations and references are kept. With `rules`,
    sentences with typed numbers, hardware claims or run numbers are deleted as well."""
    kept: list[str] = []

    def keep(latex: str) -> str:
        kept.append(latex)
        return f" {_PLACEHOLDER.format(len(kept) - 1)} "

    text = COMMENT.sub("", text)
    known_results = set(rules.results) if rules else set()
    known_cites = rules.cite_keys if rules else set()
    known_labels = (rules.labels | labels_in(text)) if rules else set()
    text = RESULT.sub(lambda m: keep(f"\\result{{{m.group(1).strip()}}}") if m.group(1).strip() in known_results
                       else " ", text)

    def cite(match: re.Match) -> str:
        keys = [k.strip() for k in match.group(2).split(",") if k.strip() in known_cites]
        command = match.group(1) if match.group(1) in ("cite", "citep", "citet", "citealp", "citeauthor") else "cite"
        return keep(f"\\{command}{{{','.join(keys)}}}") if keys else " "

    text = CITE.sub(cite, text)
    text = REF.sub(lambda m: keep(f"\\ref{{{m.group(2).strip()}}}") if m.group(2).strip() in known_labels
                    else " ", text)
    text = LABEL.sub(" ", text)
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip():
            paragraphs.append(re.sub(r"^[-*+] ", "", " ".join(_to_text(paragraph).split())))  # no Markdown bullet
    escaped = "\n\n".join(latex_escape(p) for p in paragraphs if p)
    escaped = NON_ASCII.sub("", escaped)

    def restore(match: re.Match) -> str:
        index = int(match.group(1))
        return kept[index] if index < len(kept) else ""

    restored = re.sub(r"zqxplaceholder(\d+)zqx", restore, escaped)
    restored = re.sub(r"[ \t]+([.,;:])", r"\1", restored)
    if rules is not None:  # the words are kept: sentences with numbers or claims that have no source still go
        doomed = [(p.start, p.end) for p in check_section(restored, rules)
                  if p.kind in ("typed_number", "hardware", "run_label")]
        restored = remove_sentences(restored, doomed) if doomed else restored
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


def settings_numbers(runs: Iterable[Any], baseline: Mapping[str, Any]) -> set[float]:
    """Numbers prose may state: the runs' settings (their knob changes and names) and the template's defaults."""
    runs = list(runs)
    return (numbers_of(run.knob_changes for run in runs) | numbers_of(run_label(run) for run in runs)
            | numbers_of(baseline.values()))


_TOKEN = re.compile(r"\\(?:result|cite[a-zA-Z]*|ref)\s*\{[^{}]*\}|[A-Za-z0-9]+")
REPEAT_SIMILARITY = 0.6


def _gist(sentence: str) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """A sentence's word pairs, and the results it cites: the same words about other results say something else."""
    tokens = [token.lower() for token in _TOKEN.findall(sentence)]
    return frozenset(zip(tokens, tokens[1:])), frozenset(m.group(1).strip() for m in RESULT.finditer(sentence))


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
        stripped = COMMENT.sub(lambda m: " " * len(m.group()), text)
        mine, doomed = [], []
        for start, end, words in prose_sentences(stripped):
            gist = _gist(stripped[start:end])
            if len(words) < min_words:
                continue
            if any(_repeats(gist, other) for other in seen):
                doomed.append((start, end))
            else:
                mine.append(gist)
        seen += mine
        kept.append(normalize_text(remove_sentences(text, doomed)) if doomed else text)
        dropped += len(doomed)
    return kept, dropped
