"""BibTeX written by code (scientist_literature.bibtex): keys, escaping, entry types, parsing, de-duplication, and a
bibliography that bibtex and pdflatex accept."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scientist_core.models import Paper
from scientist_literature.bibtex import (
    BibTeXError, Bibliography, citation_key, dedupe, entry_to_paper, entry_type_for, latex_escape, latex_to_text,
    normalize_s2_bibtex, normalize_title, paper_to_bibtex, parse_bibtex, parse_one, split_authors, title_to_latex,
)

pytestmark = pytest.mark.usefixtures("scientist_env")  # an empty folder, HOME and data folder per test

DBLP_ENTRY = r"""
@inproceedings{DBLP:conf/nips/VaswaniSPUJGKP17,
  author    = {Ashish Vaswani and
               Noam Shazeer and
               Lukasz Kaiser},
  editor    = {Isabelle Guyon and
               Ulrike von Luxburg},
  title     = {Attention is All you Need},
  booktitle = {Advances in Neural Information Processing Systems 30: Annual Conference
               on Neural Information Processing Systems 2017, December 4-9, 2017,
               Long Beach, CA, {USA}},
  pages     = {5998--6008},
  year      = {2017},
  url       = {https://proceedings.neurips.cc/paper/2017/hash/3f5ee243547dee91fbd053c1c4a845aa-Abstract.html},
  timestamp = {Thu, 21 Jan 2021 00:00:00 +0100},
  biburl    = {https://dblp.org/rec/conf/nips/VaswaniSPUJGKP17.bib},
  bibsource = {dblp computer science bibliography, https://dblp.org}
}
"""

ACL_ENTRY = """
@inproceedings{kaas-etal-2020-team,
    title = "Team {D}i{S}aster at {S}em{E}val-2020 Task 11: Combining {BERT} and Hand-crafted Features",
    author = "Kaas, Anders  and
      M{\\"u}ller, J{\\'e}r{\\^o}me  and
      Plank, Barbara",
    booktitle = "Proceedings of the Fourteenth Workshop on Semantic Evaluation",
    month = dec,
    year = "2020",
    pages = "1817--1822",
}
"""

# What Semantic Scholar's citationStyles.bibtex looks like (allenai/s2-folks#89): a Python list as entry type,
# values unescaped, both booktitle and journal.
S2_ENTRY = """@['JournalArticle', 'Conference']{Vaswani2017AttentionIA,
 author = {Ashish Vaswani and Noam M. Shazeer},
 booktitle = {Neural Information Processing Systems},
 journal = {ArXiv},
 pages = {5998-6008},
 title = {Attention is All you Need},
 volume = {abs/1706.03762},
 year = {2017}
}
"""

NASTY = Paper(title="R&D at 100% of $x_1$ #1 {braces} ~tilde^ back\\slash: BERT and ImageNet für Schölkopf",
              authors=["Bernhard Schölkopf", "Ulrike von Luxburg", "Łukasz Kaiser", "Zoë O'Brien-Smith"],
              year=2019, venue="Journal of Machine Learning Research & Friends")


# -- keys ------------------------------------------------------------------------------------------


def test_citation_key_is_last_name_year_first_significant_word():
    assert citation_key(["Ashish Vaswani", "Noam Shazeer"], 2017, "Attention is All you Need") == "vaswani2017attention"
    assert citation_key(["Vaswani, Ashish"], 2017, "Attention is All you Need") == "vaswani2017attention"
    assert citation_key(["Diederik P. Kingma"], 2015, "Adam: A Method for Stochastic Optimization") == "kingma2015adam"
    # stopwords are skipped, LaTeX is read, non-ASCII folds to ASCII
    assert citation_key(["Bernhard Schölkopf"], 2002, "On the {L}earning of Kernels") == "scholkopf2002learning"
    assert citation_key(["Łukasz Kaiser"], 2017, "One Model To Learn Them All") == "kaiser2017one"
    assert citation_key(["Sch{\\\"o}lkopf, Bernhard"], 2001, "Kernels") == "scholkopf2001kernels"
    assert citation_key(["Guy Steele Jr."], 1990, "Common Lisp") == "steele1990common"
    # missing parts
    assert citation_key([], None, "The") == "anonpaper"
    assert citation_key(["Yann LeCun"], None, "Deep learning") == "lecundeep"


def test_citation_key_is_deterministic():
    keys = {citation_key(NASTY.authors, NASTY.year, NASTY.title) for _ in range(5)}
    assert keys == {"scholkopf2019rd"}


# -- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("char, escaped", [("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                                           ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde"),
                                           ("^", r"\textasciicircum"), ("\\", r"\textbackslash")])
def test_latex_specials_are_escaped(char, escaped):
    assert escaped in latex_escape(f"a {char} b")


def test_non_ascii_becomes_braced_macros_and_plain_text_passes_through():
    assert latex_escape("Schölkopf") == 'Sch{\\"o}lkopf'
    assert latex_escape("Łukasz") == "{\\L}ukasz"
    assert latex_escape("Plain words, no specials.") == "Plain words, no specials."


def test_latex_to_text_reads_accents_escapes_and_braces():
    assert latex_to_text('Sch{\\"o}lkopf and M\\"{u}ller') == "Schölkopf and Müller"
    assert latex_to_text("Tom{\\'a}{\\v{s}} Mikolov, Bj{\\o}rn, Stra{\\ss}e") == "Tomáš Mikolov, Bjørn, Straße"
    assert latex_to_text("R\\&D 100\\% x\\_1 \\{a\\} {BERT}") == "R&D 100% x_1 {a} BERT"
    assert latex_to_text("\\textit{Nature}") == "Nature"
    # pylatexenc reads \textasciicircum as U+02C6 (modifier letter circumflex)
    assert latex_to_text(latex_escape(NASTY.title)).replace("\u02c6", "^") == NASTY.title


def test_titles_protect_acronyms_and_inner_capitals():
    assert title_to_latex("BERT beats ImageNet models, mBERT too") == "{BERT} beats {ImageNet} models, {mBERT} too"
    assert title_to_latex("Attention is All you Need") == "Attention is All you Need"


def test_normalize_title_ignores_case_punctuation_and_latex():
    assert normalize_title("Attention is {A}ll you Need!") == normalize_title("attention is all you need")
    assert normalize_title('Sch{\\"o}lkopf') == normalize_title("Schölkopf") == "scholkopf"


def test_split_authors_reads_both_name_orders():
    assert split_authors("Kaas, Anders and M{\\\"u}ller, Jan and Barbara Plank and others") == [
        "Anders Kaas", "Jan Müller", "Barbara Plank"]


# -- entry types and building from metadata --------------------------------------------------------


@pytest.mark.parametrize("venue, types, expected", [
    ("Neural Information Processing Systems", (), "inproceedings"),
    ("International Conference on Machine Learning", (), "inproceedings"),
    ("Proceedings of the 58th Annual Meeting of the ACL", (), "inproceedings"),
    ("NeurIPS", (), "inproceedings"),
    ("Journal of Machine Learning Research", (), "article"),
    ("Nature", ("JournalArticle",), "article"),
    ("ArXiv", (), "article"),
    ("Some Venue", ("Conference",), "inproceedings"),
    ("", (), "misc"),
])
def test_entry_type_for(venue, types, expected):
    assert entry_type_for(venue, types) == expected


def test_paper_to_bibtex_builds_a_valid_escaped_entry():
    text = paper_to_bibtex(NASTY, doi="10.1000/xyz.1", arxiv_id="1810.04805")
    entry = parse_one(text)
    assert entry.type == "article" and entry.key == "scholkopf2019rd"
    assert entry.fields["journal"] == "Journal of Machine Learning Research {\\&} Friends"
    assert entry.fields["author"].startswith('Sch{\\"o}lkopf, Bernhard and von Luxburg, Ulrike and {\\L}ukasz'[:40])
    assert entry.fields["year"] == "2019" and entry.fields["doi"] == "10.1000/xyz.1"
    assert entry.fields["eprint"] == "1810.04805"
    for char in "&%#_":  # every special in the title is escaped
        assert f"\\{char}" in entry.fields["title"]
    assert latex_to_text(entry.fields["title"]).replace("\u02c6", "^") == NASTY.title
    assert split_authors(entry.fields["author"]) == NASTY.authors


def test_unsafe_identifiers_are_left_out():
    text = paper_to_bibtex(Paper(title="T", authors=["A B"], year=2020, venue="NeurIPS"),
                           doi="10.1000/has_underscore", arxiv_id="not an id")
    entry = parse_one(text)
    assert entry.type == "inproceedings" and entry.fields["booktitle"] == "NeurIPS"
    assert "doi" not in entry.fields and "eprint" not in entry.fields


def test_arxiv_papers_are_articles_with_the_id():
    entry = parse_one(paper_to_bibtex(Paper(title="A Preprint", authors=["A B"], year=2023, venue="arXiv.org"),
                                      arxiv_id="2301.00001"))
    assert entry.type == "article" and entry.fields["journal"] == "arXiv preprint arXiv:2301.00001"


def test_semantic_scholar_bibtex_is_made_valid():
    paper = Paper(title="Attention is All you Need", authors=["Ashish Vaswani", "Noam M. Shazeer"], year=2017,
                  venue="Neural Information Processing Systems")
    entry = parse_one(normalize_s2_bibtex(S2_ENTRY, paper))
    assert entry.type == "inproceedings" and entry.key == "vaswani2017attention"
    assert entry.fields["booktitle"] == "Neural Information Processing Systems"
    assert "journal" not in entry.fields and "volume" not in entry.fields
    assert entry.fields["pages"] == "5998--6008"
    journal_only = S2_ENTRY.replace("['JournalArticle', 'Conference']", "['JournalArticle']").replace(
        " booktitle = {Neural Information Processing Systems},\n", "")
    entry = parse_one(normalize_s2_bibtex(journal_only, paper.model_copy(update={"venue": "ArXiv"}),
                                          arxiv_id="1706.03762"))
    assert entry.type == "article" and entry.fields["journal"] == "arXiv preprint arXiv:1706.03762"


def test_unparseable_semantic_scholar_bibtex_falls_back_to_metadata():
    paper = Paper(title="A & B", authors=["Ann Lee"], year=2021, venue="ICML")
    entry = parse_one(normalize_s2_bibtex("@['Conference']{Broken, title = {unclosed", paper))
    assert entry.type == "inproceedings" and entry.fields["title"] == "A {\\&} B"


# -- parsing ---------------------------------------------------------------------------------------


def test_parser_reads_braces_quotes_bare_values_and_concatenation():
    text = r"""
    @string{acl = "Association for Computational Linguistics"}
    @comment{ignored {nested}}
    Free text between entries is ignored.
    @Article{k1, title = {A {Nested {Deep}} Title}, author = "Doe, J. and Roe, R.",
      journal = "J. " # {of} # " Tests", year = 2020, month = dec}
    @misc(k2, title = {Parens delimit this entry})
    """
    entries = parse_bibtex(text)
    assert [e.key for e in entries] == ["k1", "k2"]
    first = entries[0]
    assert first.type == "article" and first.fields["title"] == "A {Nested {Deep}} Title"
    assert first.fields["journal"] == "J. of Tests"
    assert first.fields["year"] == "2020" and first.fields["month"] == "dec" and first.bare == {"year", "month"}
    rendered = first.render()
    assert "month = dec," in rendered and "year = 2020," in rendered
    assert parse_one(rendered).fields == first.fields


def test_parser_is_lenient_unless_strict():
    text = "@article{bad, title = {unbalanced}\n@article{good, title = {Fine}}"
    assert [e.key for e in parse_bibtex(text)] == ["good"]
    with pytest.raises(BibTeXError):
        parse_bibtex(text, strict=True)
    with pytest.raises(BibTeXError):
        parse_one("@article{nokey}")


def test_dblp_entry_to_paper_keeps_the_real_bibtex_re_keyed():
    paper = entry_to_paper(parse_one(DBLP_ENTRY), source="offline", venue="NeurIPS")
    assert paper.title == "Attention is All you Need" and paper.year == 2017 and paper.venue == "NeurIPS"
    assert paper.authors == ["Ashish Vaswani", "Noam Shazeer", "Lukasz Kaiser"]
    entry = parse_one(paper.bibtex)
    assert entry.key == "vaswani2017attention" and entry.fields["pages"] == "5998--6008"
    assert "Long Beach, CA, {USA}" in entry.fields["booktitle"]
    assert not {"timestamp", "biburl", "bibsource"} & set(entry.fields)


def test_acl_entry_to_paper_reads_last_first_names_and_accents():
    paper = entry_to_paper(parse_one(ACL_ENTRY))
    assert paper.title.startswith("Team DiSaster at SemEval-2020 Task 11: Combining BERT")
    assert paper.authors == ["Anders Kaas", "Jérôme Müller", "Barbara Plank"]
    assert paper.venue == "Proceedings of the Fourteenth Workshop on Semantic Evaluation"
    assert "month = dec," in paper.bibtex


# -- collections -----------------------------------------------------------------------------------


def test_dedupe_keeps_the_first_and_fills_gaps():
    a = Paper(title="Attention is All you Need", year=2017, source="offline", bibtex="@misc{x, title={A}}")
    b = Paper(title="Attention Is All You Need.", year=2017, abstract="The dominant ...", citation_count=9,
              source="semantic_scholar")
    c = Paper(title="Something else")
    merged = dedupe([a, b, c])
    assert [p.title for p in merged] == ["Attention is All you Need", "Something else"]
    assert merged[0].abstract == "The dominant ..." and merged[0].citation_count == 9
    assert merged[0].source == "offline"


def test_bibliography_keys_are_unique_deterministic_and_deduplicated():
    def build() -> tuple[Bibliography, list[str]]:
        bib = Bibliography()
        keys = [
            bib.add(Paper(title="Deep Learning", authors=["Yann LeCun"], year=2015, venue="Nature")),
            bib.add(Paper(title="Deep learning!", authors=["Y. LeCun"], year=2015)),  # same paper
            bib.add(Paper(title="Deep Residual Learning", authors=["Yann LeCun"], year=2015, venue="CVPR")),
            bib.add(Paper(title="Deep Belief Nets", authors=["Yann LeCun"], year=2015)),
            bib.add(entry_to_paper(parse_one(S2_ENTRY.replace("['JournalArticle', 'Conference']", "inproceedings")))),
        ]
        return bib, keys

    bib, keys = build()
    assert keys == ["lecun2015deep", "lecun2015deep", "lecun2015deepb", "lecun2015deepc", "vaswani2017attention"]
    assert len(bib) == 4 and "lecun2015deepc" in bib
    assert build()[0].render() == bib.render()
    rendered = parse_bibtex(bib.render(), strict=True)
    assert [e.key for e in rendered] == bib.keys


def test_bibliography_repairs_s2_bibtex_and_rebuilds_unparseable_bibtex():
    bib = Bibliography()
    s2_key = bib.add(Paper(title="Attention is All you Need", authors=["Ashish Vaswani"], year=2017,
                           bibtex=S2_ENTRY))
    broken_key = bib.add(Paper(title="X & Y", authors=["Ann Lee"], year=2020, venue="ICML",
                               bibtex="@article{oops, title = {never closed"))
    s2_entry, broken_entry = parse_bibtex(bib.render(), strict=True)
    assert (s2_key, broken_key) == ("vaswani2017attention", "lee2020x")
    assert s2_entry.type == "inproceedings" and s2_entry.fields["booktitle"] == "Neural Information Processing Systems"
    assert broken_entry.key == "lee2020x" and broken_entry.fields["title"] == "X {\\&} Y"
    assert broken_entry.type == "inproceedings" and broken_entry.fields["booktitle"] == "ICML"


# -- it compiles -----------------------------------------------------------------------------------


@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("bibtex")), reason="needs pdflatex and bibtex")
def test_bibliography_compiles_with_bibtex_and_pdflatex(tmp_path: Path):
    from scientist_literature.openalex import to_paper as openalex_paper
    from scientist_literature.semantic_scholar import to_paper as s2_paper_of
    from scientist_core.testing.fake_semantic_scholar import s2_paper

    bib = Bibliography()
    papers = [
        NASTY,
        Paper(title="No Venue Note", authors=["Ann Lee"], year=2020),
        entry_to_paper(parse_one(DBLP_ENTRY), venue="NeurIPS"),
        entry_to_paper(parse_one(ACL_ENTRY)),
        s2_paper_of(s2_paper("Q&A for 100% of C# users_2", ["Jürgen Schmidhuber", "Ann Lee"], 2019,
                             "Neural Information Processing Systems")),
        openalex_paper({"display_name": "An arXiv Preprint on α-β Pruning", "publication_year": 2023,
                        "authorships": [{"author": {"display_name": "Zoë Ng"}}],
                        "doi": "https://doi.org/10.48550/arxiv.2301.00001",
                        "primary_location": {"source": {"display_name": "arXiv (Cornell University)",
                                                        "type": "repository"}}}),
    ]
    keys = [bib.add(p) for p in papers]
    assert len(set(keys)) == len(papers)
    (tmp_path / "refs.bib").write_text(bib.render(), encoding="utf-8")
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage{natbib}\n\\usepackage{url}\n\\begin{document}\n"
        f"Cited: \\citep{{{','.join(keys)}}}.\n\\bibliographystyle{{plainnat}}\n\\bibliography{{refs}}\n"
        "\\end{document}\n")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    first = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex")
    assert first.returncode == 0, first.stdout[-2000:]
    bibtex = run("bibtex", "paper")
    assert bibtex.returncode == 0, bibtex.stdout
    assert "Warning--" not in bibtex.stdout and "error" not in bibtex.stdout.lower(), bibtex.stdout
    for _ in range(2):
        final = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex")
        assert final.returncode == 0, final.stdout[-2000:]
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert "Citation" not in log or "undefined" not in log, "every key resolves"
    bbl = (tmp_path / "paper.bbl").read_text()
    assert all(f"{{{key}}}" in bbl for key in keys)
