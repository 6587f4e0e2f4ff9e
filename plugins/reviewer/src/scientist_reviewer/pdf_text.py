"""A paper's text, as a reviewer reads it: PyMuPDF's plain text of every page, or a text file as is.

    text = paper_text(Path("paper.pdf"))        # PaperTextError (one clear line) when there is nothing to read

PyMuPDF (`pymupdf>=1.26,<2`) is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path

from scientist_core import ScientistError

__all__ = ["MIN_CHARS", "PaperTextError", "TEXT_SUFFIXES", "paper_text", "pdf_to_text"]

# Fewer readable characters than this in a whole PDF means there is no text layer worth reviewing.
MIN_CHARS = 200
TEXT_SUFFIXES = (".txt", ".md", ".tex")
PDF_MAGIC = b"%PDF-"
INSTALL_HINT = 'pip install "pymupdf>=1.26,<2"'


class PaperTextError(ScientistError):
    """A paper's file cannot be read as text: missing, not a PDF, encrypted, or without a text layer."""


def _is_pdf(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(1024)  # the header may follow a little junk; readers allow 1 KB of it
    return PDF_MAGIC in head


def pdf_to_text(path: Path, *, min_chars: int = MIN_CHARS) -> str:
    """The text of every page of the PDF at `path`, pages separated by a blank line."""
    path = Path(path)
    if not path.is_file():
        raise PaperTextError(f"there is no file {path}", "check the path")
    if not _is_pdf(path):
        raise PaperTextError(f"{path} is not a PDF (it does not start with %PDF-)",
                             "give the compiled paper's .pdf, or a .txt of its text")
    try:
        import pymupdf
    except ImportError:
        raise PaperTextError("reading PDFs needs PyMuPDF, which is not installed", INSTALL_HINT) from None
    try:
        document = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises its own FileDataError, RuntimeError, ValueError ...
        raise PaperTextError(f"{path} is not a readable PDF ({type(exc).__name__}: {exc})",
                             "recompile or re-download it") from None
    with document:
        if document.needs_pass:
            raise PaperTextError(f"{path} is password-protected", "give an unencrypted copy")
        pages = [page.get_text().strip() for page in document]
    text = "\n\n".join(page for page in pages if page)
    readable = sum(1 for ch in text if not ch.isspace())
    if readable < min_chars:
        raise PaperTextError(
            f"{path} has almost no text to read ({readable} characters on {len(pages)} page"
            f"{'s' if len(pages) != 1 else ''}): it is empty or scanned images",
            "run OCR on it first (e.g. ocrmypdf), or give its text as a .txt file")
    return text


def paper_text(path: Path, *, min_chars: int = MIN_CHARS) -> str:
    """A paper's text from a PDF (by its content, whatever its name) or a .txt / .md / .tex file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES and not _is_pdf(path):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if sum(1 for ch in text if not ch.isspace()) < min_chars:
            raise PaperTextError(f"{path} has almost no text to review ({len(text)} characters)",
                                 "give the paper's full text")
        return text
    return pdf_to_text(path, min_chars=min_chars)
