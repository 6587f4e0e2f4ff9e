"""scientist-paper: the writer `latex` (writer.py) and the compiler `latexmk` (compiler.py). The paper's LaTeX is
written and checked by code around the model's prose: latex.py (primitives), results.py (the numbers and what code
says of them), checks.py (what a section may not say), repairs.py (what code does when the model cannot fix it)."""

__version__ = "0.1.0"
