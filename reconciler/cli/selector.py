"""`-l` label selectors, as kubectl takes them: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma = and.

Selection happens in the CLI on the `labels` the REST view returns for each resource, so the
controller needs no query language; a selector that cannot be parsed is refused up front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import VolctlError

_KEY = re.compile(r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.op:
            case "=":
                return labels.get(self.key) == self.value
            case "!=":
                return labels.get(self.key) != self.value
            case "exists":
                return self.key in labels
            case _:
                return self.key not in labels


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)


def parse(text: str) -> Selector:
    """`app=web,tier!=db,canary,!legacy` -> Selector; VolctlError when malformed."""
    out: list[Requirement] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            raise VolctlError(f"label selector {text!r}: empty requirement")
        if "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            req = Requirement(key, "!=", value)
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=", 1).split("=", 1))
            req = Requirement(key, "=", value)
        elif term.startswith("!"):
            req = Requirement(term[1:].strip(), "!exists")
        else:
            req = Requirement(term, "exists")
        if not _KEY.match(req.key) or not _VALUE.match(req.value):
            raise VolctlError(f"label selector {text!r}: {term!r} is not a valid requirement")
        out.append(req)
    return Selector(tuple(out))
