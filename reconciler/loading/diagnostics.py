"""Diagnostics as data: what is wrong, where, in words a human understands.

The loader never stops at the first problem; it collects `Diagnostic`s and, if there is
any, raises one `SpecValidationError` carrying all of them (terraform style).  Keeping the
diagnostic a plain value lets the CLI print text or JSON and lets REST return it as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import SpecError

_MAX_SHOWN = 60
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in the desired state.

    `line` is 1-based (0 when the whole file is at fault and no line applies); `path` is
    the dotted field path inside the document ("spec.size"), empty for whole-document
    problems; `subject` is "Kind/name" when the document got that far.
    """

    file: str
    line: int
    path: str
    message: str
    subject: str = ""

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        if self.subject:
            parts.append(self.subject)
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "subject": self.subject,
            "message": self.message,
            "text": str(self),
        }


class SpecValidationError(SpecError):
    """The desired state has one or more problems; no model was produced."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        count = len(self.diagnostics)
        head = "\n".join(str(d) for d in self.diagnostics[:20])
        more = f"\n... and {count - 20} more" if count > 20 else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid desired state ({count} {noun}):\n{head}{more}")


def show(value: Any) -> str:
    """A user's value, quoted and shortened, with control characters escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
        return "'" + text.encode("unicode_escape").decode("ascii").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def type_word(value: Any) -> str:
    """Plain-words name of a value's YAML type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def described(value: Any) -> str:
    """ "an integer 5", "a string 'x'", "null", "a list": for "(got ...)" messages."""
    if value is None or isinstance(value, list | dict):
        return type_word(value)
    return f"{type_word(value)} {show(value)}"


def dotted(path: Iterable[str | int]) -> str:
    """`spec.source.path`, `items[2]`, `metadata.labels["example.com/role"]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += ("." if out else "") + part
        else:
            out += "[" + json.dumps(part[:_MAX_SHOWN]) + "]"
    return out
