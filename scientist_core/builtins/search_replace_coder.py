"""The built-in coder: the model answers with SEARCH/REPLACE edits as JSON; code applies them exactly.

Structured output keeps small models on the rails (they cannot write free-form edit blocks reliably but can
fill a schema), and applying the edits in code means an edit that does not match is a reported failure,
never a silent no-op: every edit must match its file exactly once, or nothing is changed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from scientist_core.coder import Coder, CodeRequest
from scientist_core.component import Config
from scientist_core.hookspecs import hookimpl
from scientist_core.models import CodeChange, Message


class CodeEdit(BaseModel):
    file: str = Field(description="one of the files shown, by name")
    search: str = Field(description="exact lines of the file to replace, copied verbatim, long enough to be unique")
    replace: str = Field(description="the lines that take their place")


class CodeEdits(BaseModel):
    summary: str = Field(description="one sentence: what the edits do")
    edits: list[CodeEdit]


class EditFailed(Exception):
    pass


def apply_edit(text: str, edit: CodeEdit) -> str:
    """`text` with `edit.search` replaced once; whitespace at line ends is forgiven, ambiguity is not."""
    count = text.count(edit.search)
    if count == 1:
        return text.replace(edit.search, edit.replace, 1)
    if count > 1:
        raise EditFailed(f"the search text occurs {count} times in {edit.file}; include more lines to make it unique")
    lines = text.splitlines(keepends=True)
    wanted = [line.rstrip() for line in edit.search.splitlines()]
    if not wanted:
        raise EditFailed(f"an edit to {edit.file} has empty search text")
    starts = [i for i in range(len(lines) - len(wanted) + 1)
              if [line.rstrip() for line in lines[i:i + len(wanted)]] == wanted]
    if len(starts) != 1:
        raise EditFailed(f"the search text was not found in {edit.file}" if not starts else
                         f"the search text occurs {len(starts)} times in {edit.file}")
    start = starts[0]
    replacement = edit.replace if edit.replace.endswith("\n") or not edit.replace else edit.replace + "\n"
    return "".join(lines[:start]) + replacement + "".join(lines[start + len(wanted):])


class SearchReplaceCoder(Coder):
    name: ClassVar[str] = "search_replace"
    description: ClassVar[str] = "SEARCH/REPLACE edits as structured JSON, applied exactly by code"

    class Config(Config):
        max_file_chars: int = Field(24000, gt=0, description="longest file shown to the model")

    def apply(self, workspace: Path, request: CodeRequest, chat) -> CodeChange:
        originals = {name: (workspace / name).read_text() for name in request.files if (workspace / name).is_file()}
        if not originals:
            return CodeChange(ok=False, message=f"no edit made: none of {', '.join(request.files)} exists")
        shown = "\n\n".join(f"=== {name} ===\n{text[:self.config.max_file_chars]}" for name, text in originals.items())
        for name in request.read_only:  # context the model may read but not edit (the run's notes)
            if (workspace / name).is_file():
                text = (workspace / name).read_text()[-self.config.max_file_chars:]
                shown += f"\n\n=== {name} (read only) ===\n{text}"
        context = request.context()
        messages = [
            Message(role="system", content="You change experiment code with exact SEARCH/REPLACE edits. Copy the "
                    "search text verbatim from the file, including indentation. Keep edits small."),
            Message(role="user", content=(f"{context}\n\n" if context else "")
                    + f"Files:\n\n{shown}\n\nChange to make:\n{request.instruction}"),
        ]
        try:
            proposal = chat.ask_structured(messages, CodeEdits)
        except Exception as exc:
            from scientist_core.chat import BudgetExceeded

            if isinstance(exc, BudgetExceeded):
                raise
            return CodeChange(ok=False, message=f"no usable edit from the model: {exc}")
        return self._apply_all(workspace, originals, proposal)

    def _apply_all(self, workspace: Path, originals: dict[str, str], proposal: CodeEdits) -> CodeChange:
        if not proposal.edits:
            return CodeChange(ok=False, message="no edit made: the model proposed no change")
        updated = dict(originals)
        try:
            for number, edit in enumerate(proposal.edits, 1):
                if edit.file not in updated:
                    raise EditFailed(f"{edit.file} is not one of the files that may be edited ({', '.join(updated)})")
                try:
                    updated[edit.file] = apply_edit(updated[edit.file], edit)
                except EditFailed as exc:
                    raise EditFailed(f"edit {number}: {exc}") from None
        except EditFailed as exc:
            return CodeChange(ok=False, message=str(exc))
        changed = [name for name in updated if updated[name] != originals[name]]
        if not changed:
            return CodeChange(ok=False, message="no edit made: the edits leave the files unchanged")
        diff = "".join("".join(difflib.unified_diff(originals[name].splitlines(keepends=True),
                                                    updated[name].splitlines(keepends=True), name, name))
                       for name in changed)
        for name in changed:
            (workspace / name).write_text(updated[name])
        return CodeChange(ok=True, files_edited=changed, diff=diff, message=proposal.summary)


@hookimpl
def register_coders(register):
    register(SearchReplaceCoder)
