"""The LaTeX compiler `latexmk`: latexmk (pdflatex + bibtex) and chktex, both run inside the sandbox.

A paper's source is written by a model, so it is treated like any other generated code: no network, writes
only in the paper folder, and a time limit (pdflatex's shell escape is off as well).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from scientist_core import CompileResult, Compiler, Config, ExecutionResult, Limits, Readiness

TOOLS = ("latexmk", "pdflatex", "bibtex", "chktex")
INSTALL_HINT = ("apt-get install texlive-latex-base texlive-latex-recommended texlive-fonts-recommended "
                "texlive-latex-extra texlive-science latexmk chktex (see scripts/system-packages.txt)")
# `./paper.tex:12: Undefined control sequence.` (pdflatex -file-line-error), and `! LaTeX Error: ...`
ERROR_LINE = re.compile(r"^(?:\S+\.tex:\d+: .+|! .+)$")


class LatexmkCompiler(Compiler):
    name: ClassVar[str] = "latexmk"
    description: ClassVar[str] = "pdflatex and bibtex driven by latexmk, linted by chktex, in the sandbox"

    class Config(Config):
        timeout_s: float = Field(180, gt=0, description="limit for one compilation")
        ignored_chktex_warnings: list[int] = Field(
            [1, 2, 8, 13, 24, 36], description="chktex warning numbers not worth a model's fix round")

    def readiness(self) -> Readiness:
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            return Readiness(ready=False, detail=f"{', '.join(missing)} not found; install with {INSTALL_HINT}")
        return Readiness(ready=True, detail=shutil.which("pdflatex") or "")

    def _run(self, command: list[str], source_dir: Path, log_dir: Path) -> ExecutionResult:
        from scientist_sandbox import run

        limits = Limits(timeout_s=self.config.timeout_s, memory_mb=2048, disk_mb=512, procs=64)
        return run(command, source_dir, limits, log_dir=log_dir)

    def check(self, source_dir: Path, main: str) -> list[str]:
        ignored = [f"-n{number}" for number in self.config.ignored_chktex_warnings]
        result = self._run(["chktex", "-q", "-v0", *ignored, main], source_dir, source_dir / ".chktex")
        return [line for line in result.stdout_tail.splitlines() if line.strip()]

    def compile(self, source_dir: Path, main: str) -> CompileResult:
        command = ["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
                   "-no-shell-escape", main]
        result = self._run(command, source_dir, source_dir / ".latexmk")
        pdf = source_dir / (Path(main).stem + ".pdf")
        log_file = source_dir / (Path(main).stem + ".log")
        log = log_file.read_text(errors="replace") if log_file.exists() else result.stdout_tail
        errors = list(dict.fromkeys(line for line in log.splitlines() if ERROR_LINE.match(line)))
        if result.limit_hit:
            errors.append(f"compilation stopped: {result.limit_hit} limit")
        ok = result.ok and pdf.is_file()
        return CompileResult(ok=ok, pdf_path=str(pdf) if ok else None, log_tail=log[-3000:], errors=errors)
