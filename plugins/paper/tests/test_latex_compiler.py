"""The latexmk compiler, for real: pdflatex, bibtex and chktex inside the sandbox."""

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None,
                                reason="needs latexmk and pdflatex (scripts/system-packages.txt; make test installs them)")

PAPER = r"""\documentclass{article}
\usepackage{natbib}
\begin{document}
Diffusion models \citep{ho2020denoising} work.
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""
BIB = """@inproceedings{ho2020denoising,
  title = {Denoising Diffusion Probabilistic Models},
  author = {Ho, Jonathan and Jain, Ajay and Abbeel, Pieter},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2020}
}
"""


@pytest.fixture
def compiler(plugin_host):
    return plugin_host.create("compiler", "latexmk")


def write_paper(folder: Path, body: str = PAPER) -> Path:
    folder.mkdir()
    (folder / "paper.tex").write_text(body)
    (folder / "references.bib").write_text(BIB)
    return folder


def test_ready_when_tools_present(compiler):
    assert compiler.readiness().ready


def test_compiles_with_bibliography(compiler, tmp_path):
    folder = write_paper(tmp_path / "paper")
    result = compiler.compile(folder, "paper.tex")
    assert result.ok, result.errors
    assert Path(result.pdf_path).read_bytes().startswith(b"%PDF")
    assert "Ho" in (folder / "paper.bbl").read_text()  # bibtex ran


def test_error_reports_line_and_message(compiler, tmp_path):
    folder = write_paper(tmp_path / "paper", PAPER.replace("work.", r"work \undefinedmacro."))
    result = compiler.compile(folder, "paper.tex")
    assert not result.ok and result.pdf_path is None
    assert any("paper.tex:4:" in error and "Undefined control sequence" in error for error in result.errors)


def test_shell_escape_is_off(compiler, tmp_path):
    body = PAPER.replace(r"\begin{document}", r"\begin{document}\immediate\write18{touch pwned}")
    folder = write_paper(tmp_path / "paper", body)
    compiler.compile(folder, "paper.tex")
    assert not (folder / "pwned").exists()


def test_chktex_warnings(compiler, tmp_path):
    folder = write_paper(tmp_path / "paper", PAPER.replace("work.", 'work "well"...'))
    warnings = compiler.check(folder, "paper.tex")
    assert any(":18:" in w for w in warnings) and any(":11:" in w for w in warnings)
    clean = write_paper(tmp_path / "clean")
    assert compiler.check(clean, "paper.tex") == []
