"""LaTeX primitives: the paper folder's files and sections, escaping, the machine's macros, figures and the
body that inputs the sections."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache


GENERATED_DIR = "generated"
META_FILE = "generated/meta.tex"
BODY_FILE = "generated/body.tex"
ABSTRACT_FILE = "generated/abstract.tex"
TABLE_FILE = "generated/results-table.tex"
RUNS_TABLE_FILE = "generated/runs-table.tex"  # in the Method section: what each run changed, from the records
DISCLOSURE_FILE = "generated/disclosure.tex"  # the last thing of the body: who wrote the paper, with which models
FIGURES_DIR = "figures"
TABLE_LABEL = "tab:results"
RUNS_TABLE_LABEL = "tab:runs"


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


_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
             "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
             ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: whitespace collapsed, specials escaped, non-ASCII as LaTeX macros."""
    escaped = "".join(_SPECIALS.get(char, char) for char in " ".join(str(text).split()))
    if not escaped.isascii():
        escaped = NON_ASCII.sub(lambda m: non_ascii_encoder().unicode_to_latex(m.group()), escaped)
    return escaped


_ENV_MACROS = {"cpu": "EnvCPU", "cores": "EnvCores", "ram": "EnvRAM", "gpu": "EnvGPU", "os": "EnvOS",
               "python": "EnvPython", "numpy": "EnvNumpy", "torch": "EnvTorch"}


def env_macros(facts: Mapping[str, str]) -> dict[str, str]:
    """Macro name (without backslash) -> plain-text value, for the facts that are known."""
    return {_ENV_MACROS[key]: str(value) for key, value in facts.items() if key in _ENV_MACROS and value}


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
    """`generated/body.tex`: each section's heading and file in order; the Method section also gets the runs
    table, the Results section the results table and the figure environments (`figures`, LaTeX as from
    figure_tex); it ends with the disclosure, in every paper the same place."""
    lines = ["% Written by scientist; the sections' text is in generated/sec-*.tex."]
    for section in sections:
        lines += ["", f"\\section{{{section.heading}}}", f"\\label{{{section.label}}}",
                  f"\\input{{{section.file.removesuffix('.tex')}}}"]
        if section.name == "method" and with_table:
            lines.append(f"\\input{{{RUNS_TABLE_FILE.removesuffix('.tex')}}}")
        if section.name == "results":
            if with_table:
                lines.append(f"\\input{{{TABLE_FILE.removesuffix('.tex')}}}")
            lines += [figure.rstrip("\n") for figure in figures]
    lines += ["", f"\\input{{{DISCLOSURE_FILE.removesuffix('.tex')}}}"]
    return "\n".join(lines) + "\n"


NON_ASCII = re.compile(r"[^\x00-\x7f]+")


@lru_cache(maxsize=1)
def non_ascii_encoder():
    from pylatexenc.latexencode import UnicodeToLatexEncoder

    return UnicodeToLatexEncoder(non_ascii_only=True, replacement_latex_protection="braces-all",
                                 unknown_char_policy="replace", unknown_char_warning=False)
