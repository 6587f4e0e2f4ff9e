"""scientist-literature: the searchers `semantic_scholar`, `openalex` and `offline`, and BibTeX written from
real metadata (bibtex.py), which the paper's bibliography uses too."""

__version__ = "0.1.0"
