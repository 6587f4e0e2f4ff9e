"""The LaTeX compiler `latexmk`: latexmk (pdflatex + bibtex) and chktex, both run inside the sandbox.

A paper's source is written by a model, so it is treated like any other generated code: no network, writes
only in the paper folder, and a time limit (pdflatex's shell escape is off as well). What TeX may read is
confined twice, because a TeX document can read any file it names (`\\input`, `\\openin`, `\\pdffiledump` ...)
and the PDF goes to the reviewer model: kpathsea's paranoid mode (`openin_any=p`, `openout_any=p`: no absolute
paths, no `..`) and a sandbox that shows only the paper folder, the TeX tree and the system's programs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from scientist_core import CompileResult, Compiler, ExecutionResult, Limits, Readiness

TOOLS = ("latexmk", "pdflatex", "bibtex", "chktex")
# kpathsea's paranoid mode, read from the environment by every kpathsea program (pdflatex, bibtex, kpsewhich)
PARANOID = {"openin_any": "p", "openout_any": "p"}
# kpathsea variables naming the TeX trees and the folders of its configuration
TEXMF_VARIABLES = ("TEXMF", "TEXMFCNF", "TEXMFROOT")
# chktex's global configuration, where distributions put it (TeX Live's own lies in the TeX tree)
CHKTEXRC = ("/etc/chktexrc", "/usr/local/etc/chktexrc")
INSTALL_HINT = ("apt-get install texlive-latex-base texlive-latex-recommended texlive-fonts-recommended "
                "texlive-latex-extra texlive-science latexmk chktex (see scripts/system-packages.txt)")
# `./paper.tex:12: Undefined control sequence.` (pdflatex -file-line-error), and `! LaTeX Error: ...`
ERROR_LINE = re.compile(r"^(?:\S+\.tex:\d+: .+|! .+)$")


class LatexmkCompiler(Compiler):
    name: ClassVar[str] = "latexmk"
    description: ClassVar[str] = "pdflatex and bibtex driven by latexmk, linted by chktex, in the sandbox"

    class Config(Compiler.Config):
        timeout_s: float = Field(180, gt=0, description="limit for one compilation")
        ignored_chktex_warnings: list[int] = Field(
            [1, 2, 8, 13, 24, 36], description="chktex warning numbers not worth a model's fix round")

    def readiness(self) -> Readiness:
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            return Readiness(ready=False, detail=f"{', '.join(missing)} not found; install with {INSTALL_HINT}")
        return Readiness(ready=True, detail=shutil.which("pdflatex") or "")

    def _run(self, command: list[str], source_dir: Path, log_dir: Path) -> ExecutionResult:
        """`command` in the sandbox, seeing only `source_dir`, the TeX tree and the system; never the network."""
        from scientist_sandbox import run

        limits = Limits(timeout_s=self.config.timeout_s, memory_mb=2048, disk_mb=512, procs=64, network=False,
                        allow_unisolated_code=self.config.allow_unisolated_code, env=PARANOID, read_only=tex_tree())
        return run(command, source_dir, limits, log_dir=log_dir, system_only=True)

    def check(self, source_dir: Path, main: str) -> list[str]:
        ignored = [f"-n{number}" for number in self.config.ignored_chktex_warnings]
        result = self._run(["chktex", "-q", "-v0", *ignored, main], source_dir, source_dir / ".chktex")
        return [line for line in result.stdout_tail.splitlines() if line.strip()]

    def compile(self, source_dir: Path, main: str) -> CompileResult:
        command = ["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
                   "-no-shell-escape", "-norc", main]  # -norc: a latexmkrc in the folder is Perl it would run
        result = self._run(command, source_dir, source_dir / ".latexmk")
        pdf = source_dir / (Path(main).stem + ".pdf")
        log_file = source_dir / (Path(main).stem + ".log")
        log = log_file.read_text(errors="replace") if log_file.exists() else result.stdout_tail
        errors = list(dict.fromkeys(line for line in log.splitlines() if ERROR_LINE.match(line)))
        if result.limit_hit:
            errors.append(f"compilation stopped: {result.limit_hit} limit")
        ok = result.ok and pdf.is_file()
        return CompileResult(ok=ok, pdf_path=str(pdf) if ok else None, log_tail=log[-3000:], errors=errors)


@lru_cache(maxsize=1)
def tex_tree() -> list[str]:
    """What the TeX tools read besides the system's folders: kpathsea's trees and configuration folders (not the
    user's own, in the home folder the sandbox hides), the folders on the way from each tool's name to its program
    (Debian's /etc/alternatives), and chktex's configuration."""
    found: set[str] = set()
    for variable in TEXMF_VARIABLES:
        try:
            value = subprocess.run(["kpsewhich", f"-var-value={variable}"], capture_output=True, text=True,
                                   timeout=30).stdout
        except (OSError, subprocess.SubprocessError):  # no kpsewhich: the compile will say what is missing
            continue
        found.update(part.strip().lstrip("!") for part in re.split(r"[{},:;]", value))
    for tool in TOOLS:
        path = shutil.which(tool)
        for _ in range(40):  # as many links as the kernel follows
            if not path or not os.path.islink(path):
                break
            path = os.path.join(os.path.dirname(path), os.readlink(path))
            found.add(os.path.dirname(path))
    found.update(CHKTEXRC)
    home = os.path.realpath(os.path.expanduser("~"))
    real = {os.path.realpath(path) for path in found if os.path.isabs(path) and os.path.exists(path)}
    return sorted(path for path in real if path != "/" and not (path + "/").startswith(home + "/"))
