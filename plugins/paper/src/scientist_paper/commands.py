"""Which commands and environments a section may not use, found in what TeX will read.

A section is model text, and TeX can read any file it is told to (`\\input`, `\\openin`, `\\pdffiledump`, expl3's
`\\file_get:nnN`), under other names (`\\begin{input}` is `\\csname input\\endcsname`), spelled so a plain search
misses it (`^^5cinput` is `\\input`), or after a `%` that is no comment (inside `\\url` or `\\verb`). So the search
runs on the text with its `^^` escapes decoded, comments and math included, and refuses whole classes: every
command that reads or writes a file, changes how TeX reads characters, or makes a command out of text. The
compiler confines TeX as well (compiler.py); these checks tell the model, and keep code's guarantees (\\result).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Commands a section may not use: files, the shell, the preamble's job, redefinitions of what code writes, and
# what changes how TeX reads text or makes a command out of text (\csname, \string ... \input).
FORBIDDEN_COMMANDS = frozenset({
    "write18", "immediate", "openout", "openin", "closeout", "closein", "ifeof", "special", "shipout",
    "catcode", "lccode", "uccode", "sfcode", "mathcode", "delcode", "endlinechar", "newlinechar", "escapechar",
    "everyeof", "scantokens", "scantextokens", "csname", "endcsname", "ifcsname", "expandafter", "string",
    "meaning", "detokenize", "unexpanded", "UseName", "ExpandArgs", "NewCommandCopy", "csuse", "csdef", "csgdef",
    "csedef", "csxdef", "cslet", "letcs", "csletcs", "csundef", "primitive", "font", "chardef", "mathchardef",
    "countdef", "dimendef", "skipdef", "muskipdef", "toksdef", "futurelet", "makeatletter", "makeatother",
    "usepackage", "RequirePackage", "documentclass", "usetikzlibrary", "usepgflibrary", "usepgfmodule",
    "bibliography", "bibliographystyle", "nocite", "maketitle", "title", "author", "date", "def", "gdef", "edef",
    "xdef", "let", "renewcommand", "renewenvironment", "tableofcontents", "listoffigures", "listoftables",
    "addtocontents", "graphicspath", "output", "directlua", "loop", "repeat",
})
# ... and every command whose name starts with one of these: pdfTeX's primitives (\pdffiledump, \pdfobj file,
# \pdfmdfivesum file), LuaTeX's, redefinitions, expl3 syntax
FORBIDDEN_PREFIXES = ("pdf", "lua", "Renew", "Declare", "ExplSyntax", "Provides")
# ... or holds one of these words: \InputIfFileExists, \includegraphics, \verbatiminput, \lstinputlisting,
# \IfFileExists, \import, \LoadClass, \readline, \newwrite ...
FORBIDDEN_WORDS = ("input", "include", "file", "import", "load", "read", "write")
DEFINING_COMMANDS = ("newcommand", "providecommand", "newenvironment", "NewDocumentCommand",
                     "ProvideDocumentCommand", "NewExpandableDocumentCommand", "NewDocumentEnvironment")
PROTECTED_MACROS_RE = re.compile(r"^(?:result|PaperTitle|PaperAbstract|Env[A-Za-z]*)$")
FORBIDDEN_ENVIRONMENTS = frozenset({"figure", "figure*", "abstract", "document", "filecontents",
                                    "filecontents*", "thebibliography"})

CONTROL_WORD = re.compile(r"\\([A-Za-z@]+|.)")
# expl3's file and system functions (\file_get:nnN, \ior_open:Nn, \iow_now:Nn, \tex_input:D, \sys_shell_now:n)
EXPL_NAME = re.compile(r"\\((?:file|ior|iow|tex|sys)_[A-Za-z_]*(?::[A-Za-z]*)?)")
# `^^5c` (two lowercase hex digits) or `^^M` (a character, its code 64 away)
CARET_ESCAPE = re.compile(r"\^\^([0-9a-f]{2}|[\x00-\x7f])")
ENVIRONMENT_ARG = re.compile(r"\s*\{([^{}]*)\}")
ENVIRONMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\*?")


def _caret_char(match: re.Match) -> str:
    code = match.group(1)
    if len(code) == 2:
        return chr(int(code, 16))
    return chr(ord(code) + 64 if ord(code) < 64 else ord(code) - 64)


def decode_carets(text: str) -> str:
    """`text` as TeX reads it: each `^^` escape replaced by its character, left to right, what it makes read again
    (TeX reads `^^5e^^5e5c` as a character 30 and "5e5c", not as a backslash)."""
    start = 0
    while (match := CARET_ESCAPE.search(text, start)) is not None:
        text = text[:match.start()] + _caret_char(match) + text[match.end():]
        start = match.start()
    return text


def forbidden_reason(name: str) -> str | None:
    """Why a section may not use the command \\<name> (None: it may): what the command can do."""
    if name in FORBIDDEN_COMMANDS or name.startswith(FORBIDDEN_PREFIXES):
        return "code writes the preamble, figures, bibliography and files; no file, catcode or \\csname tricks"
    if "@" in name and name != "@":
        return "internal commands (with @) are not for a section"
    if any(word in name.lower() for word in FORBIDDEN_WORDS):
        return "a section reads and writes no files"
    return None


def forbidden_uses(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, what is wrong) of each `^^` escape in `text`, and of each forbidden command, expl3 function
    and environment in what TeX reads of it: positions in `text`, or (-1, -1) where only the decoded escapes
    show it."""
    for match in CARET_ESCAPE.finditer(text):
        yield (*match.span(), f"{match.group()} is TeX's character-code notation (it reads as "
               f"{_caret_char(match)!r}); write characters as themselves")
    decoded = decode_carets(text)
    for start, end, what in _forbidden_in(decoded):
        yield (start, end, what) if decoded == text else (-1, -1, f"{what} (its ^^ escapes decoded)")


def _forbidden_in(text: str) -> Iterator[tuple[int, int, str]]:
    expl = set()
    for match in EXPL_NAME.finditer(text):
        expl.add(match.start())
        yield (*match.span(), f"\\{match.group(1)} is an expl3 file or system function; a section reads and "
               "writes no files")
    for match in CONTROL_WORD.finditer(text):
        name = match.group(1)
        if match.start() in expl:
            continue
        if name in ("begin", "end"):
            argument = ENVIRONMENT_ARG.match(text, match.end())
            environment = argument.group(1).strip() if argument else ""
            if not ENVIRONMENT_NAME.fullmatch(environment):
                yield (match.start(), argument.end() if argument else match.end(),
                       f"\\{name} needs an environment's name in braces, letters only")
            elif forbidden_reason(command := ("" if name == "begin" else "end") + environment.rstrip("*")):
                yield (match.start(), argument.end(), f"\\{name}{{{environment}}} runs \\{command}: "
                       f"{forbidden_reason(command)}")
            elif name == "begin" and environment in FORBIDDEN_ENVIRONMENTS:
                yield (match.start(), argument.end(), f"no {environment} environment in a section (code places "
                       "figures and the abstract)")
        elif forbidden_reason(name):
            yield (*match.span(), f"\\{name} may not be used in a section ({forbidden_reason(name)})")
        elif name in DEFINING_COMMANDS:
            defined = re.match(r"\*?\s*\{?\s*\\([A-Za-z]+)", text[match.end():])
            if defined and PROTECTED_MACROS_RE.match(defined.group(1)):
                yield (*match.span(), f"\\{defined.group(1)} is defined by code and may not be redefined")
