"""`scientist review` of a real PDF, compiled here with pdflatex, over real HTTP: the openai provider plugin
against the loopback OpenAI-compatible server, with the run store's ledger."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scientist_core.plugins import PluginInfo
from scientist_core.store import Store
from scientist_reviewer.command import review as review_command

pytestmark = [pytest.mark.usefixtures("scientist_env"),  # an empty folder, HOME and data folder per test
              pytest.mark.skipif(shutil.which("pdflatex") is None,
                                 reason="pdflatex is not installed (apt-get install texlive-latex-base)")]

LATEX = r"""
\documentclass[11pt]{article}
\usepackage{booktabs}
\title{Quasi-Periodic Dropout for Small Convolutional Networks}
\author{Anonymous}
\begin{document}
\maketitle
\begin{abstract}
We replace the independent Bernoulli masks of dropout with masks that follow a quasi-periodic pattern over
channels. On CIFAR-10 with a 6-layer convolutional network, quasi-periodic dropout reaches 88.4\% test
accuracy against 87.9\% for standard dropout, averaged over 5 seeds.
\end{abstract}
\section{Introduction}
Dropout regularises networks by zeroing random units. We ask whether structured masks that vary smoothly
from step to step regularise convolutional networks better than independent ones.
\section{Method}
At step $t$, channel $c$ is dropped when $\sin(\omega t + \phi c) > \tau$, with $\tau$ set so that the
expected drop rate is $p = 0.3$.
\section{Results}
\begin{table}[h]
\centering
\begin{tabular}{lc}
\toprule
Method & Test accuracy (\%) \\
\midrule
No dropout & 86.1 \\
Dropout & 87.9 \\
Quasi-periodic dropout & 88.4 \\
\bottomrule
\end{tabular}
\caption{CIFAR-10, mean of 5 seeds.}
\end{table}
\section{Conclusion}
Quasi-periodic masks give a small gain on one dataset; more datasets are needed.
\end{document}
"""


def form(overall: int) -> dict:
    return {"Summary": "Structured dropout masks.", "Strengths": ["simple"], "Weaknesses": ["one dataset"],
            "Originality": 2, "Quality": 2, "Clarity": 3, "Significance": 2, "Questions": ["more data?"],
            "Limitations": ["one dataset"], "Ethical Concerns": False, "Soundness": 2, "Presentation": 3,
            "Contribution": 2, "Overall": overall, "Confidence": 4, "Decision": "Reject"}


@pytest.fixture
def compiled_pdf(tmp_path: Path) -> Path:
    folder = tmp_path / "latex"
    folder.mkdir()
    (folder / "paper.tex").write_text(LATEX)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    return folder / "paper.pdf"


@pytest.fixture
def openai_plugin(plugin_host):
    """The openai provider plugin: installed (its entry point), or at least importable."""
    if "openai" not in plugin_host.names("llm"):
        try:
            from scientist_llm_openai import plugin
        except ImportError:
            pytest.fail("the openai provider plugin is not installed: pip install -e plugins/llm_backends/openai")
        plugin_host.add(plugin, PluginInfo("llm-openai", "scientist-llm-openai", "test"))
    return plugin_host


def test_review_a_compiled_pdf_over_http(openai_plugin, openai_server, compiled_pdf, scientist_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai_server.enqueue(form(5), form(7), {"Summary": "Area chair: promising but narrow.", "Strengths": ["s"],
                                             "Weaknesses": ["w"], "Questions": ["q"], "Limitations": ["l"]})
    app = typer.Typer()
    app.command("review")(review_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["review", str(compiled_pdf), "--model", "openai/fake-model", "--ensemble", "2",
                                      "--reflections", "1", "--fewshot", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["review"]["Overall"] == 6 and data["review"]["Decision"] == "Accept"  # mean of 5 and 7
    assert data["review"]["Summary"] == "Area chair: promising but narrow."
    assert sorted(r["Overall"] for r in data["reviews"]) == [5, 7] and data["calls"] == 3

    requests = openai_server.chat_requests()
    assert len(requests) == 3
    for request in requests[:2]:  # the reviewers read the PDF's text, with a worked example before it
        prompt = " ".join(request.messages[-1]["content"].split())  # the PDF's line breaks aside
        assert "Quasi-Periodic Dropout for Small Convolutional Networks" in prompt
        assert "88.4" in prompt and "<example_paper>" in prompt
        assert request.json["model"] == "fake-model"
        assert request.json.get("response_format", {}).get("type") == "json_schema"
    assert "Review 2:" in requests[2].messages[-1]["content"]

    store = Store(scientist_env / "scientist-runs" / "scientist.db")
    calls = store.llm_calls(data["run_id"])
    assert len(calls) == 3 and all(c["error"] is None and c["tokens_in"] > 0 for c in calls)
    assert {c["model"] for c in calls} == {"openai/fake-model"}
    store.close()
