"""BibTeX written by code from real metadata, never by a model.

- `citation_key(authors, year, title)`: a deterministic key, `vaswani2017attention`.
- `latex_escape(text)`: plain text to LaTeX (specials and non-ASCII, via pylatexenc's `unicode_to_latex`).
- `paper_to_bibtex(paper)`: an entry built from a Paper's metadata (@inproceedings, @article or @misc).
- `parse_bibtex(text)`: a small, lenient parser (braced, quoted and bare values, `#` concatenation), fast enough
  for the 160K entries the offline index reads; it also reads Semantic Scholar's broken entry types
  (`@['JournalArticle', 'Conference']{...}`).
- `normalize_s2_bibtex(text, paper)`: Semantic Scholar's `citationStyles.bibtex` made valid and escaped.
- `entry_to_paper(entry)`: a parsed entry (DBLP, ACL Anthology ...) as a Paper whose bibtex is that entry.
- `Bibliography`: collects the papers a write-up cites, de-duplicated by title, each with a unique key.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from scientist_core import Paper, ScientistError

__all__ = [
    "BibEntry", "BibTeXError", "Bibliography", "citation_key", "dedupe", "entry_to_paper", "entry_type_for",
    "latex_escape", "latex_to_text", "normalize_s2_bibtex", "normalize_title", "paper_to_bibtex", "parse_bibtex",
    "parse_one", "split_authors", "title_to_latex",
]

# Words skipped when a key takes the first word of a title.
STOPWORDS = frozenset(
    "a an the of on in for to and or with without by from at as is are be via into over under towards toward "
    "do does can we you your our its it this that these those what when why how all not no".split()
)
# Fields that only add noise to a paper's bibliography (DBLP bookkeeping, S2 and ACL extras).
NOISE_FIELDS = frozenset({"timestamp", "biburl", "bibsource", "abstract", "keywords", "file", "note_s2"})

_CONFERENCE_WORDS = re.compile(
    r"\b(conference|proceedings|workshops?|symposium|meeting|congress|neural information processing systems|"
    r"neurips|nips|icml|iclr|aaai|ijcai|cvpr|iccv|eccv|acl|emnlp|naacl|eacl|coling|kdd|aistats|uai|colt|"
    r"interspeech|icassp|sigir|sigmod|www|wsdm|cikm|recsys|bmvc|mlsys|corl|rss|icra|iros)\b",
    re.IGNORECASE,
)
_ARXIV_VENUE = re.compile(r"^\s*(arxiv(\.org)?|corr)\s*$", re.IGNORECASE)
_SAFE_DOI = re.compile(r"^10\.\d{4,9}/[A-Za-z0-9.;()/:\-]+$")
_SAFE_ARXIV = re.compile(r"^[A-Za-z\-.]*/?\d{4}\.?\d{3,5}(v\d+)?$")
_TRANSLIT = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss", "æ": "ae",
                           "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i", "þ": "th"})
_NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})


class BibTeXError(ScientistError):
    """Text that should be BibTeX is not."""


# -- text ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _encoder():
    from pylatexenc.latexencode import UnicodeToLatexEncoder

    # braces-all: accents become {\"o}, which BibTeX sorts and case-changes correctly; characters LaTeX has
    # no macro for become a visible placeholder rather than text pdflatex cannot typeset.
    return UnicodeToLatexEncoder(replacement_latex_protection="braces-all", unknown_char_policy="replace",
                                 unknown_char_warning=False)


@lru_cache(maxsize=1)
def _decoder():
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text()


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: `& % $ # _ { } ~ ^ \\` escaped, non-ASCII as macros (`ö` -> `{\\"o}`)."""
    text = " ".join(text.split())
    if not text:
        return ""
    if text.isascii() and not any(c in text for c in "&%$#_{}~^\\"):
        return text
    return _encoder().unicode_to_latex(text)


# BibTeX's accent and letter macros, decoded without the (slow, ≈1 ms a call) LaTeX walker.
_ACCENTS = {"`": "\u0300", "'": "\u0301", "^": "\u0302", "~": "\u0303", "=": "\u0304", "u": "\u0306",
            ".": "\u0307", '"': "\u0308", "r": "\u030a", "H": "\u030b", "v": "\u030c", "d": "\u0323",
            "c": "\u0327", "k": "\u0328", "b": "\u0331"}
_ACCENT_MACRO = re.compile(r"\\([`'^~=.\"]|[uvHrdckb](?=[\s{]))\s*(?:\{\s*(\\[ij]|[A-Za-z])\s*\}|(\\[ij]|[A-Za-z]))")
_LETTERS = {"ss": "ß", "o": "ø", "O": "Ø", "l": "ł", "L": "Ł", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ",
            "aa": "å", "AA": "Å", "i": "ı", "j": "ȷ"}
_LETTER_MACRO = re.compile(r"\\(ss|ae|AE|oe|OE|aa|AA|[oOlLij])(?![A-Za-z])\s*")
_ESCAPED = re.compile(r"\\([&%$#_{}])")
_HELD = {"{": "\x01", "}": "\x02"}  # escaped braces, kept through the removal of grouping braces


def _accent(match: re.Match) -> str:
    base = match.group(2) or match.group(3)
    base = {"\\i": "i", "\\j": "j"}.get(base, base)
    return unicodedata.normalize("NFC", base + _ACCENTS[match.group(1)])


def latex_to_text(text: str) -> str:
    """LaTeX (as found in BibTeX values) as plain text: `{BERT}` -> `BERT`, `Sch{\\"o}lkopf` -> `Schölkopf`."""
    text = " ".join(text.split())
    if "\\" in text:
        text = _ACCENT_MACRO.sub(_accent, text)
        text = _LETTER_MACRO.sub(lambda m: _LETTERS[m.group(1)], text)
    rest = _ESCAPED.sub("", text)
    if "\\" not in rest and "$" not in rest and "~" not in rest:
        # the common case, without the LaTeX walker: escapes read, grouping braces dropped, escaped ones kept
        text = _ESCAPED.sub(lambda m: _HELD.get(m.group(1), m.group(1)), text)
        return text.replace("{", "").replace("}", "").replace("\x01", "{").replace("\x02", "}")
    return " ".join(_decoder().latex_to_text(text).split())


def _needs_case_protection(word: str) -> bool:
    """Acronyms and mixed case (BERT, ImageNet, GPT-2, mBERT) that bibliography styles must not lowercase."""
    letters = [c for c in word if c.isalpha()]
    return any(c.isupper() for c in letters[1:])


def title_to_latex(title: str) -> str:
    """A plain-text title as a BibTeX value: escaped, and capitals inside words protected by braces."""
    words = []
    for word in " ".join(title.split()).split(" "):
        escaped = latex_escape(word)
        words.append(f"{{{escaped}}}" if _needs_case_protection(word) else escaped)
    return " ".join(words)


def normalize_title(title: str) -> str:
    """A title reduced to lowercase letters and digits, to tell whether two records are the same paper."""
    folded = unicodedata.normalize("NFKD", latex_to_text(title).translate(_TRANSLIT))
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return re.sub(r"[^a-z0-9]", "", folded.encode("ascii", "ignore").decode().lower())


# -- names -----------------------------------------------------------------------------------------


def split_authors(value: str) -> list[str]:
    """A BibTeX author field as plain-text names, each "First Last" (from "Last, First" where written so)."""
    text = latex_to_text(value) if ("\\" in value or "{" in value) else " ".join(value.split())
    names = []
    for raw in re.split(r"\s+and\s+", text):
        name = raw.strip().strip(",")
        if not name or name.lower() == "others":
            continue
        if "," in name:
            last, _, first = name.partition(",")
            name = f"{first.strip()} {last.strip()}".strip()
        names.append(" ".join(name.split()))
    return names


def _last_name(name: str) -> str:
    name = name.strip()
    if "," in name:
        return name.split(",", 1)[0]
    parts = [p for p in name.split() if p.lower() not in _NAME_SUFFIXES]
    return parts[-1] if parts else ""


def _author_to_bibtex(name: str) -> str:
    """ "First Last" as "Last, First", so BibTeX never misreads the last name; escaped."""
    name = " ".join(name.split())
    if "," in name:
        return latex_escape(name)
    parts = name.split()
    if len(parts) < 2:
        return latex_escape(name)
    # particles (van, von, de, ...) stay with the last name
    cut = len(parts) - 1
    while cut > 1 and parts[cut - 1].islower():
        cut -= 1
    return f"{latex_escape(' '.join(parts[cut:]))}, {latex_escape(' '.join(parts[:cut]))}"


# -- keys and types --------------------------------------------------------------------------------


def citation_key(authors: Sequence[str], year: int | str | None, title: str) -> str:
    """`<first author's last name><year><first significant title word>`, lowercase ASCII: `vaswani2017attention`.

    Takes plain text (a Paper's fields); BibTeX grouping braces are ignored.
    Deterministic: the same metadata always gives the same key. Missing parts are skipped (`anon` when there is
    no author, `paper` when the title has no usable word)."""
    last = _ascii_word(_last_name(authors[0])) if authors else ""
    year_part = str(year) if year and str(year).isdigit() else ""
    word = ""
    for token in re.split(r"[\s\-/:]+", title.replace("{", "").replace("}", "")):
        candidate = _ascii_word(token)
        if candidate and candidate not in STOPWORDS:
            word = candidate
            break
    return f"{last or 'anon'}{year_part}{word or 'paper'}"


def entry_type_for(venue: str, publication_types: Iterable[str] = ()) -> str:
    """@inproceedings for conferences and workshops, @article for journals and arXiv, @misc with no venue."""
    types = {t.lower() for t in publication_types}
    if "conference" in types:
        return "inproceedings"
    if not venue.strip():
        return "article" if "journalarticle" in types else "misc"
    if _ARXIV_VENUE.match(venue):
        return "article"
    if _CONFERENCE_WORDS.search(venue):
        return "inproceedings"
    return "article"


# -- entries ---------------------------------------------------------------------------------------


@dataclass
class BibEntry:
    """One BibTeX entry. Field values are LaTeX as written between the delimiters; `bare` names fields
    written without delimiters (`month = dec`, `year = 2017`)."""

    type: str
    key: str
    fields: dict[str, str] = field(default_factory=dict)
    bare: set[str] = field(default_factory=set)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def render(self, drop: Iterable[str] = NOISE_FIELDS) -> str:
        dropped = set(drop)
        lines = [f"@{self.type}{{{self.key},"]
        for name, value in self.fields.items():
            if name in dropped:
                continue
            value = " ".join(value.split())
            text = value if name in self.bare and re.fullmatch(r"[A-Za-z0-9]+", value) else f"{{{value}}}"
            lines.append(f"  {name} = {text},")
        lines.append("}")
        return "\n".join(lines) + "\n"


_ENTRY_START = re.compile(r"@\s*([A-Za-z]+|\[[^\]\n]*\])\s*([{(])")
_FIELD_NAME = re.compile(r"\s*([A-Za-z][\w:.+\-]*)\s*=\s*")
_BRACES = re.compile(r"[{}]")
_QUOTE_OR_BRACE = re.compile(r'[{}"]')
_BARE = re.compile(r"[^\s,}#)]+")


def _braced(text: str, start: int) -> tuple[str, int]:
    """The value of the balanced group opening at text[start] == "{", and the index after it."""
    depth = 0
    for match in _BRACES.finditer(text, start):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return text[start + 1:match.start()], match.end()
    raise BibTeXError(f"unbalanced braces in BibTeX from offset {start}", "check the entry's braces")


def _quoted(text: str, start: int) -> tuple[str, int]:
    depth = 0
    for match in _QUOTE_OR_BRACE.finditer(text, start + 1):
        char = match.group()
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and text[match.start() - 1] != "\\":
            return text[start + 1:match.start()], match.end()
    raise BibTeXError(f"unterminated quoted value in BibTeX from offset {start}", "check the entry's quotes")


_SPACE = re.compile(r"\s*")
_SIMPLE_VALUE = re.compile(r'\s*(?:\{([^{}]*)\}|"([^"{}]*)")\s*(?=[,})]|$)')


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def _parse_value(text: str, pos: int) -> tuple[str, bool, int]:
    """A field value (pieces joined by `#`); returns the value, whether it was a bare word, and the end."""
    simple = _SIMPLE_VALUE.match(text, pos)  # most values: one group without nested braces
    if simple:
        value = simple.group(1) if simple.group(1) is not None else simple.group(2)
        return value, False, simple.end()
    pieces: list[str] = []
    bare = False
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            raise BibTeXError("BibTeX ended inside a field value", "check the entry is complete")
        char = text[pos]
        if char == "{":
            piece, pos = _braced(text, pos)
        elif char == '"':
            piece, pos = _quoted(text, pos)
        else:
            match = _BARE.match(text, pos)
            if not match:
                raise BibTeXError(f"unexpected {char!r} in a BibTeX value at offset {pos}", "check the entry")
            piece, pos, bare = match.group(), match.end(), True
        pieces.append(piece)
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "#":
            pos += 1
            bare = False
            continue
        return "".join(pieces), bare and len(pieces) == 1, pos


def _parse_entry(text: str, match: re.Match) -> tuple[BibEntry | None, int]:
    raw_type = match.group(1)
    closer = "}" if match.group(2) == "{" else ")"
    pos = match.end()
    if raw_type.lower() in ("comment", "preamble", "string"):
        if match.group(2) == "{":
            _, end = _braced(text, match.end() - 1)
        else:
            end = text.find(")", pos) + 1 or len(text)
        return None, end
    comma = text.find(",", pos)
    brace = text.find(closer, pos)
    if comma < 0 or (0 <= brace < comma):
        raise BibTeXError(f"BibTeX entry at offset {match.start()} has no key", "write @type{key, field = {...}}")
    key = text[pos:comma].strip()
    entry = BibEntry(type=raw_type.lower(), key=key)
    pos = comma + 1
    while True:
        pos = _skip_space(text, pos)
        while pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        if pos >= len(text):
            raise BibTeXError(f"BibTeX entry {key!r} is not closed", f"add the closing {closer}")
        if text[pos] == closer:
            return entry, pos + 1
        name_match = _FIELD_NAME.match(text, pos)
        if not name_match:
            raise BibTeXError(f"BibTeX entry {key!r}: expected a field at offset {pos}", "write name = {value}")
        value, bare, pos = _parse_value(text, name_match.end())
        name = name_match.group(1).lower()
        entry.fields[name] = value
        if bare:
            entry.bare.add(name)


def parse_bibtex(text: str, *, strict: bool = False) -> list[BibEntry]:
    """The entries in `text`; @comment, @preamble and @string are skipped (string macros are not expanded).

    A malformed entry raises BibTeXError when `strict`, else it is skipped and parsing resumes at the next `@`."""
    entries: list[BibEntry] = []
    pos = 0
    while True:
        match = _ENTRY_START.search(text, pos)
        if not match:
            return entries
        try:
            entry, pos = _parse_entry(text, match)
        except BibTeXError:
            if strict:
                raise
            pos = match.end()
            continue
        if entry is not None:
            entries.append(entry)


def parse_one(text: str) -> BibEntry:
    """Exactly one entry, strictly parsed."""
    entries = parse_bibtex(text, strict=True)
    if len(entries) != 1:
        raise BibTeXError(f"expected one BibTeX entry, found {len(entries)}", "pass a single @type{key, ...}")
    return entries[0]


# -- building from metadata ------------------------------------------------------------------------


def _venue_fields(entry_type: str, venue: str) -> dict[str, str]:
    venue = " ".join(venue.split())
    if not venue:
        return {}
    if entry_type == "inproceedings":
        return {"booktitle": latex_escape(venue)}
    if entry_type == "article":
        return {"journal": "arXiv preprint" if _ARXIV_VENUE.match(venue) else latex_escape(venue)}
    return {"howpublished": latex_escape(venue)}


def paper_to_bibtex(paper: Paper, key: str | None = None, *, entry_type: str | None = None,
                    publication_types: Iterable[str] = (), doi: str | None = None, arxiv_id: str | None = None,
                    pages: str | None = None, volume: str | None = None) -> str:
    """A BibTeX entry built from `paper`'s metadata (title, authors, year, venue); identifiers that are safe to
    typeset (a DOI without `_`, an arXiv id) are added when given."""
    kind = entry_type or entry_type_for(paper.venue, publication_types)
    venue = paper.venue
    if kind == "article" and not venue.strip() and arxiv_id:
        venue = "arXiv"
    entry = BibEntry(type=kind, key=key or citation_key(paper.authors, paper.year, paper.title))
    entry.fields["title"] = title_to_latex(paper.title)
    if paper.authors:
        entry.fields["author"] = " and ".join(_author_to_bibtex(a) for a in paper.authors)
    entry.fields.update(_venue_fields(kind, venue))
    if kind == "article" and _ARXIV_VENUE.match(venue) and arxiv_id and _SAFE_ARXIV.match(arxiv_id):
        entry.fields["journal"] = f"arXiv preprint arXiv:{arxiv_id}"
    if volume and kind == "article" and re.fullmatch(r"[\w.\-/ ]+", volume) and not volume.startswith("abs/"):
        entry.fields["volume"] = latex_escape(volume)
    if pages and re.fullmatch(r"[\w\s\-–—]+", pages):
        entry.fields["pages"] = re.sub(r"\s*[-–—]+\s*", "--", pages.strip())
    if paper.year:
        entry.fields["year"] = str(paper.year)
    if doi and _SAFE_DOI.match(doi):
        entry.fields["doi"] = doi
    if arxiv_id and _SAFE_ARXIV.match(arxiv_id):
        entry.fields["eprint"] = arxiv_id
        entry.fields["archiveprefix"] = "arXiv"
    return entry.render()


def normalize_s2_bibtex(text: str, paper: Paper, *, publication_types: Iterable[str] = (),
                        doi: str | None = None, arxiv_id: str | None = None) -> str:
    """Semantic Scholar's `citationStyles.bibtex` as a valid, escaped entry keyed like the rest.

    S2 writes entry types as a Python list (`@['JournalArticle', 'Conference']{`), unescaped values (`&`, `_`,
    non-ASCII) and both `booktitle` and `journal`. Its venue, pages and volume are kept; title, authors and
    year come from the same record's structured metadata; the type is decided from both. When the text does
    not parse, the entry is built from the metadata alone."""
    try:
        s2 = parse_one(text)
    except BibTeXError:
        return paper_to_bibtex(paper, publication_types=publication_types, doi=doi, arxiv_id=arxiv_id)
    types = {t.lower() for t in publication_types} | set(re.findall(r"[a-z]+", s2.type.lower()))
    booktitle = latex_to_text(s2.get("booktitle")) if "\\" in s2.get("booktitle") else s2.get("booktitle")
    journal = latex_to_text(s2.get("journal")) if "\\" in s2.get("journal") else s2.get("journal")
    if s2.type in ("inproceedings", "conference") or ("conference" in types and booktitle):
        kind, venue = "inproceedings", booktitle or paper.venue
    elif booktitle and not journal:
        kind, venue = "inproceedings", booktitle
    elif journal:
        kind, venue = "article", journal
    else:
        venue = paper.venue
        kind = entry_type_for(venue, types)
    filled = paper.model_copy(update={
        "title": paper.title or latex_to_text(s2.get("title")),
        "authors": paper.authors or split_authors(s2.get("author")),
        "year": paper.year or (int(s2.get("year")) if s2.get("year").isdigit() else None),
        "venue": venue,
    })
    return paper_to_bibtex(filled, entry_type=kind, doi=doi, arxiv_id=arxiv_id, pages=s2.get("pages") or None,
                           volume=s2.get("volume") or None)


def entry_to_paper(entry: BibEntry, *, source: str = "", venue: str | None = None,
                   drop: Iterable[str] = NOISE_FIELDS) -> Paper:
    """A parsed entry (DBLP, ACL Anthology ...) as a Paper: plain-text metadata, and the entry itself as bibtex
    (re-keyed with `citation_key`, the `drop` fields left out: bookkeeping by default)."""
    title = latex_to_text(entry.get("title"))
    authors = split_authors(entry.get("author")) if entry.get("author") else []
    year_text = entry.get("year").strip()
    year = int(year_text) if year_text.isdigit() else None
    shown_venue = venue if venue is not None else latex_to_text(entry.get("booktitle") or entry.get("journal"))
    keyed = BibEntry(entry.type, citation_key(authors, year, title), dict(entry.fields), set(entry.bare))
    return Paper(title=title, authors=authors, year=year, venue=shown_venue, bibtex=keyed.render(drop),
                 source=source)


# -- collections -----------------------------------------------------------------------------------


def dedupe(papers: Iterable[Paper]) -> list[Paper]:
    """Papers without repeats of the same title (first one kept; a later copy fills in a missing abstract,
    citation count or BibTeX)."""
    kept: dict[str, Paper] = {}
    for paper in papers:
        norm = normalize_title(paper.title) or paper.title
        first = kept.get(norm)
        if first is None:
            kept[norm] = paper
            continue
        updates = {name: getattr(paper, name) for name in ("abstract", "citation_count", "bibtex", "venue", "year")
                   if not getattr(first, name) and getattr(paper, name)}
        if updates:
            kept[norm] = first.model_copy(update=updates)
    return list(kept.values())


class Bibliography:
    """The references of one paper: `add()` each cited Paper, get its key, `render()` the .bib file.

    The same paper (by normalized title) added twice keeps its first key; two different papers whose keys
    collide get suffixes in the order added (`smith2020deep`, `smith2020deepb`, ...), so keys are unique and
    deterministic."""

    def __init__(self) -> None:
        self._entries: dict[str, BibEntry] = {}
        self._by_title: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def keys(self) -> list[str]:
        return list(self._entries)

    def key_for(self, paper: Paper) -> str | None:
        return self._by_title.get(normalize_title(paper.title))

    def add(self, paper: Paper) -> str:
        norm = normalize_title(paper.title)
        if norm in self._by_title:
            return self._by_title[norm]
        entry: BibEntry | None = None
        if paper.bibtex.strip():
            try:
                entry = parse_one(paper.bibtex)
            except BibTeXError:
                entry = None
        if entry is not None and entry.type.startswith("["):  # Semantic Scholar's own, as sent
            entry = parse_one(normalize_s2_bibtex(paper.bibtex, paper))
        if entry is None:
            entry = parse_one(paper_to_bibtex(paper))
        base = citation_key(paper.authors, paper.year, paper.title)
        key, n = base, 1
        while key in self._entries:
            n += 1
            key = f"{base}{chr(ord('a') + n - 1) if n <= 26 else n}"
        entry.key = key
        self._entries[key] = entry
        if norm:
            self._by_title[norm] = key
        return key

    def render(self) -> str:
        return "\n".join(entry.render() for entry in self._entries.values())
