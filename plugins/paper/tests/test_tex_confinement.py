"""TeX reads no file outside the paper folder: each way a section could read one, against a canary file.

A section is model text and its PDF goes to the reviewer model, so a file TeX reads would leave the machine. Two
layers are tested apart: the section checks refuse every route (no compiler needed), and a section that bypasses
them, written straight into the paper folder, is compiled by the real `latexmk` compiler without the canary's
content reaching the PDF (its text, its decompressed streams), the log or any other file the compile leaves.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from scientist_core import Limits
from scientist_paper.checks import SectionRules, check_section, normalize_text
from scientist_sandbox import run as sandbox_run
from scientist_sandbox import runner as sandbox_runner

needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("chktex") is None,
                                 reason="needs latexmk, pdflatex and chktex (scripts/system-packages.txt)")

# Each route: where its text goes ("body" or "preamble"), and the text; {path} is the canary's absolute path
# without its extension, {rel} the same relative to the paper folder, {visible} the canary at a path the sandbox
# shows by default, {link} a link in the paper folder to the canary.
ROUTES = {
    "input": ("body", r"\input{{{path}}}"),
    "input relative to the folder above": ("body", r"\input{{{rel}}}"),
    "input of a path the sandbox shows by default": ("body", r"\input{{{visible}}}"),
    "input through a link in the paper folder": ("body", r"\input{{{link}}}"),
    "input through a link to a path the sandbox shows": ("body", r"\input{{{visible_link}}}"),
    "^^5c in math mode": ("body", r"$^^5cinput{{{path}}}$"),
    "\\@@input": ("body", r"\makeatletter\@@input {path}.tex \makeatother"),
    "\\csname input": ("body", r"\csname input\endcsname{{{path}}}"),
    "\\begin{input}": ("body", r"\begin{{input}}{{{path}}}"),
    "\\expandafter": ("body", r"\expandafter\input\expandafter{{{path}}}"),
    "catcode of |": ("body", r"\catcode`\|=0 |input{{{path}}}"),
    "\\include": ("body", r"\include{{{path}}}"),
    "\\InputIfFileExists": ("body", r"\InputIfFileExists{{{path}}}{{}}{{}}"),
    "\\openin and \\read": ("body", r"\newread\leak\openin\leak={path}.tex \read\leak to\got \got\closein\leak"),
    "\\readline": ("body", r"\newread\leak\openin\leak={path}.tex \readline\leak to\got \got\closein\leak"),
    "\\pdffiledump": ("body", r"\pdffiledump offset 0 length 16 {{{path}.tex}}"),
    "\\pdfmdfivesum file": ("body", r"\pdfmdfivesum file {{{path}.tex}}"),
    "\\pdfobj stream file": ("body", r"\immediate\pdfobj stream file {{{path}.tex}}"
                                    r"\pdfcatalog{{/Leak \the\pdflastobj\space 0 R}}"),
    "\\includegraphics": ("body", r"\includegraphics{{{path}.pdf}}"),
    # the TF forms: the others loop until the time limit when the file cannot be read (measured: 180 s)
    "expl3 \\file_get:nnNTF": ("body", r"\ExplSyntaxOn \file_get:nnNTF {{{path}.tex}} {{}} \l_tmpa_tl "
                                       r"{{\tl_use:N \l_tmpa_tl}} {{}} \ExplSyntaxOff"),
    "expl3 \\ior_str_get:NN": ("body", r"\ExplSyntaxOn \ior_open:NnTF \g_tmpa_ior {{{path}.tex}} "
                                       r"{{\ior_str_get:NN \g_tmpa_ior \l_tmpa_tl \tl_use:N \l_tmpa_tl}} {{}} "
                                       r"\ExplSyntaxOff"),
    "\\verbatiminput": ("body", r"\verbatiminput{{{path}.tex}}"),
    "\\lstinputlisting": ("body", r"\lstinputlisting{{{path}.tex}}"),
    "\\usepackage of a local file": ("preamble", r"\usepackage{{{path}}}"),
    "\\bibliography (bibtex)": ("body", r"\nocite{{*}}\bibliographystyle{{plain}}\bibliography{{{path}}}"),
    "\\openout then \\input": ("body", r"\immediate\openout5=leak.tex \immediate\write5{{\string\input{{{path}}}}}"
                                       r"\immediate\closeout5 \input{{leak}}"),
}


@dataclass
class Canary:
    """A file of unique content outside the paper folder (as .tex, .sty, .bib, .pdf), and one where the sandbox
    would show it; `traces` are what a read of it could leave (its text, hex, MD5)."""

    token: str
    path: Path      # without extension
    visible: Path   # without extension

    @property
    def traces(self) -> list[str]:
        content = (self.token + "\n").encode()
        return [self.token, content[:16].hex().upper(), content[:16].hex(), hashlib.md5(content).hexdigest(),
                hashlib.md5(content).hexdigest().upper()]


def plant(stem: Path, token: str) -> None:
    import fitz

    for suffix in (".tex", ".sty"):
        stem.with_suffix(suffix).write_text(token + "\n")
    stem.with_suffix(".bib").write_text(f"@misc{{canary, title = {{{{{token}}}}}}}\n")  # braces keep its case
    with fitz.open() as pdf:
        pdf.new_page().insert_text((72, 72), token)
        pdf.save(stem.with_suffix(".pdf"))


def shown_folder() -> Path | None:
    """A new folder where the sandbox's default view shows files (not /tmp nor a home), or None."""
    for parent in ("/srv", "/opt", "/mnt", "/var/cache", "/var/lib"):
        try:
            folder = Path(tempfile.mkdtemp(prefix="scientist-canary-", dir=parent))
        except OSError:
            continue
        folder.chmod(0o755)  # readable by the sandbox's own uid when the suite runs as root
        return folder
    return None


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    token = "CANARY" + uuid.uuid4().hex.upper()
    outside = tmp_path_factory.mktemp("outside")
    visible_dir = shown_folder()
    if visible_dir is None:
        pytest.skip("no folder outside /tmp and the home folders is writable here")
    try:
        plant(outside / "canary", token)
        plant(visible_dir / "canary", token)
        yield Canary(token, outside / "canary", visible_dir / "canary")
    finally:
        shutil.rmtree(visible_dir)


def section(route: str, canary: Canary, folder: Path) -> tuple[str, str]:
    where, text = ROUTES[route]
    return where, text.format(path=canary.path, rel=os.path.relpath(canary.path, folder), visible=canary.visible,
                              link="canary-link", visible_link="visible-link")


def write_paper(folder: Path, canary: Canary, route: str) -> None:
    """A paper whose one section is the route's text, written straight into the folder (no checks)."""
    where, text = section(route, canary, folder)
    (folder / "generated").mkdir(parents=True)
    (folder / "generated" / "sec-attack.tex").write_text(f"Before the attack.\n{text}\nAfter the attack.\n")
    (folder / "paper.tex").write_text("\n".join([
        r"\documentclass{article}", r"\usepackage{graphicx}", r"\usepackage{verbatim}", r"\usepackage{listings}",
        text if where == "preamble" else "", r"\begin{document}", r"\input{generated/sec-attack}",
        r"\end{document}", ""]))
    (folder / "canary-link.tex").symlink_to(canary.path.with_suffix(".tex"))
    (folder / "visible-link.tex").symlink_to(canary.visible.with_suffix(".tex"))


def leaks(folder: Path, canary: Canary, messages: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Where a trace of the canary shows: the PDF's text or streams, any file in the folder but `skip`, the
    messages."""
    import fitz

    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name in skip:
            continue
        data = path.read_bytes()
        if path.suffix == ".pdf":
            with fitz.open(path) as pdf:
                text = "".join("".join(page.get_text().split()) for page in pdf).replace("-", "")
                data += text.encode() + b"".join(pdf.xref_stream(xref) or b"" for xref in range(1, pdf.xref_length()))
        found += [f"{path.name}: {trace}" for trace in canary.traces if trace.encode() in data]
    found += [f"messages: {trace}" for trace in canary.traces for message in messages if trace in message]
    return found


# -- layer 1: the checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ROUTES)
def test_the_checks_refuse_each_route(route, tmp_path):
    stem = tmp_path / "outside" / "canary"
    text = section(route, Canary("CANARY", stem, stem), tmp_path / "paper")[1]
    for written in (text, normalize_text(text)):  # as the model sent it, and as the writer checks it
        assert "forbidden" in [problem.kind for problem in check_section(written, SectionRules(results={}))], written


# -- layer 2: the compile, checks bypassed --------------------------------------------------------------

@needs_latex
@pytest.mark.parametrize("route", ROUTES)
def test_each_route_reads_the_canary_where_tex_is_not_confined(route, canary, tmp_path):
    """The routes are real: the same paper built by latexmk outside the sandbox, with kpathsea letting TeX read
    any file (its default on Debian and in TeX Live), leaks the canary."""
    folder = tmp_path / "paper"
    write_paper(folder, canary, route)
    subprocess.run(["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-norc", "paper.tex"], cwd=folder,
                   env={**os.environ, "openin_any": "a"}, capture_output=True, timeout=120)
    assert leaks(folder, canary, []) != []


@pytest.fixture
def compiler(plugin_host):
    return plugin_host.create("compiler", "latexmk")


def test_the_visible_canary_is_shown_by_the_default_sandbox(canary, tmp_path):
    """The canary of the `visible` routes lies where an ordinary sandboxed run can read it: only the compile's own
    confinement keeps it from TeX."""
    result = sandbox_run(["cat", str(canary.visible.with_suffix(".tex"))], tmp_path, Limits(timeout_s=30))
    assert canary.token in result.stdout_tail


@needs_latex
@pytest.mark.parametrize("route", ROUTES)
def test_the_confined_compile_reads_no_file_outside(route, canary, compiler, tmp_path):
    folder = tmp_path / "paper"
    write_paper(folder, canary, route)
    result = compiler.compile(folder, "paper.tex")
    warnings = compiler.check(folder, "paper.tex")
    assert leaks(folder, canary, [result.log_tail, *result.errors, *warnings]) == []
    assert sorted(path.name for path in canary.path.parent.iterdir()) == ["canary.bib", "canary.pdf", "canary.sty",
                                                                          "canary.tex"]


# pdfTeX opens the file of \pdfobj file itself, without asking kpathsea: in mode "none" only the section checks
# stop that route (measured: the canary lands in a stream of the PDF).
PARANOID_ROUTES = [pytest.param(route, marks=pytest.mark.xfail(strict=True, reason="\\pdfobj file ignores "
                                "openin_any")) if "pdfobj" in route else route
                   for route in ROUTES if "link" not in route]


@needs_latex
@pytest.mark.parametrize("route", PARANOID_ROUTES)
def test_kpathsea_paranoid_mode_alone_refuses_paths_outside(route, canary, plugin_host, tmp_path, monkeypatch):
    """Where the sandbox cannot hide anything (mode "none", which the user allowed: the canary is in plain view),
    kpathsea's paranoid mode still keeps TeX and bibtex from absolute paths and `..`; a link planted in the folder
    needs the sandbox's hiding, and so does latexmk itself (Perl, not kpathsea), which hashes the files TeX's log
    names into its database (paper.fdb_latexmk, read by no model)."""
    monkeypatch.setattr(sandbox_runner, "_FORCE_NO_NAMESPACES", True)
    compiler = plugin_host.create("compiler", "latexmk", flags={"allow_unisolated_code": True})
    folder = tmp_path / "paper"
    write_paper(folder, canary, route)
    result = compiler.compile(folder, "paper.tex")
    assert leaks(folder, canary, [result.log_tail, *result.errors], skip=("paper.fdb_latexmk",)) == []


@needs_latex
def test_the_compile_writes_nothing_outside_the_folder(compiler, tmp_path):
    folder, outside = tmp_path / "paper", tmp_path / "outside"
    outside.mkdir()
    folder.mkdir()
    (folder / "paper.tex").write_text("\n".join([
        r"\documentclass{article}", r"\begin{document}", "Text.",
        rf"\immediate\openout5={outside}/written.tex \immediate\write5{{x}}\immediate\closeout5",
        r"\immediate\openout6=../written.tex \immediate\write6{x}\immediate\closeout6", r"\end{document}", ""]))
    compiler.compile(folder, "paper.tex")
    assert list(outside.iterdir()) == [] and not (tmp_path / "written.tex").exists()
