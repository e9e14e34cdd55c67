"""Checks that need the whole set of documents, not one at a time.

JSON Schema sees one document; these rules see them all: names unique per kind, every
reference resolves, a volume has at most one attachment, user-set ids (`tid`, image `id`,
`pmid`) are never used twice, and hosts without a `pmid` get the lowest free ids in name
order.  Documents that failed their schema still reserve their name, so one typo does not
cascade into "not defined" errors everywhere that refers to it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.loading.diagnostics import Diagnostic, show
from reconciler.loading.yamldoc import Document
from reconciler.model import Kind

_MAX_SUGGESTION_POOL = 5000
_MAX_LISTED = 8  # names listed per source in a "not defined" message


@dataclass(frozen=True)
class Entry:
    """A document of a known kind with a usable name; `valid` if it passed its schema."""

    kind: Kind
    name: str
    document: Document
    valid: bool

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.document.data.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def subject(self) -> str:
        return f"{self.kind.value}/{self.name}"

    def where(self) -> str:
        return f"{self.document.file}:{self.document.line}"

    def problem(self, path: tuple[str, ...], message: str) -> Diagnostic:
        line = self.document.line_of(path)
        return Diagnostic(self.document.file, line, ".".join(path), message, self.subject)


# (kind, spec field, referenced kind); all optional fields are checked when present
REFERENCES: tuple[tuple[Kind, str, Kind], ...] = (
    (Kind.VIRTUAL_MACHINE, "instanceType", Kind.INSTANCE_TYPE),
    (Kind.VIRTUAL_MACHINE, "image", Kind.IMAGE),
    (Kind.VIRTUAL_MACHINE, "host", Kind.HOST),
    (Kind.VOLUME_ATTACHMENT, "volume", Kind.VOLUME),
    (Kind.VOLUME_ATTACHMENT, "vm", Kind.VIRTUAL_MACHINE),
)
# (kind, spec field, what to call it)
UNIQUE_IDS: tuple[tuple[Kind, str, str], ...] = (
    (Kind.INSTANCE_TYPE, "tid", "tid"),
    (Kind.IMAGE, "id", "image id"),
    (Kind.HOST, "pmid", "pmid"),
    (Kind.HOST, "uri", "uri"),
)


def index(entries: Iterable[Entry]) -> tuple[dict[Kind, dict[str, Entry]], list[Diagnostic]]:
    """Entries by kind and name; later duplicates become diagnostics."""
    by_kind: dict[Kind, dict[str, Entry]] = {kind: {} for kind in Kind}
    problems: list[Diagnostic] = []
    for entry in entries:
        names = by_kind[entry.kind]
        first = names.get(entry.name)
        if first is None:
            names[entry.name] = entry
        else:
            problems.append(
                entry.problem(
                    ("metadata", "name"),
                    f"duplicate name: {entry.kind.value} {show(entry.name)} is already "
                    f"defined at {first.where()}",
                )
            )
    return by_kind, problems


def check(
    by_kind: Mapping[Kind, Mapping[str, Entry]], origins: Mapping[str, str] | None = None
) -> list[Diagnostic]:
    """Diagnostics for ids, references and attachments across all documents.

    With `origins` (display file name -> source, for merged sources) an unresolved reference
    also says what each source defines, so "not defined" is never ambiguous about where the
    loader looked.
    """
    problems: list[Diagnostic] = []
    for kind, field, label in UNIQUE_IDS:
        seen: dict[Any, Entry] = {}
        for entry in _valid(by_kind[kind]):
            value = entry.spec.get(field)
            if value is None:
                continue
            first = seen.setdefault(value, entry)
            if first is not entry:
                problems.append(
                    entry.problem(
                        ("spec", field),
                        f"{label} {show(value)} is already used by {first.subject} "
                        f"({first.where()})",
                    )
                )
    problems.extend(_unresolved(by_kind, origins or {}))
    attached: dict[str, Entry] = {}
    for entry in _valid(by_kind[Kind.VOLUME_ATTACHMENT]):
        volume = entry.spec.get("volume")
        if not isinstance(volume, str):
            continue
        first = attached.setdefault(volume, entry)
        if first is not entry:
            problems.append(
                entry.problem(
                    ("spec", "volume"),
                    f"Volume {show(volume)} is already attached by {first.subject} "
                    f"({first.where()}); a volume has at most one attachment",
                )
            )
    return problems


def assign_pmids(hosts: Mapping[str, Entry]) -> dict[str, int]:
    """Every host's pmid: its own, else the lowest free ids in metadata.name order."""
    pmids = {name: e.spec["pmid"] for name, e in hosts.items() if "pmid" in e.spec}
    used = set(pmids.values())
    candidate = 1
    for name in sorted(n for n in hosts if n not in pmids):
        while candidate in used:
            candidate += 1
        pmids[name] = candidate
        used.add(candidate)
    return pmids


def _valid(entries: Mapping[str, Entry]) -> Iterable[Entry]:
    return (entry for entry in entries.values() if entry.valid)


def _unresolved(
    by_kind: Mapping[Kind, Mapping[str, Entry]], origins: Mapping[str, str]
) -> list[Diagnostic]:
    """A diagnostic for every reference to a name its kind does not define."""
    problems: list[Diagnostic] = []
    listed: dict[Kind, str] = {}  # once per kind: a big state has many names
    for kind, field, target in REFERENCES:
        targets = by_kind[target]
        for entry in _valid(by_kind[kind]):
            ref = entry.spec.get(field)
            if ref is None or ref in targets:
                continue
            if not origins:
                hint = _suggest(ref, target, targets)
            elif not targets:
                hint = _nowhere(target, origins)
            else:
                if target not in listed:
                    listed[target] = _defined_by_source(target, targets, origins)
                hint = _suggest(ref, target, targets) + listed[target]
            problems.append(
                entry.problem(
                    ("spec", field),
                    f"refers to {target.value} {show(ref)}, which is not defined{hint}",
                )
            )
    return problems


def _nowhere(target: Kind, origins: Mapping[str, str]) -> str:
    """ " (no Image is defined at all; looked in git 1a2b3c4d5e6f and store)"."""
    sources = " and ".join(sorted(set(origins.values())))
    return f" (no {target.value} is defined at all; looked in {sources})"


def _defined_by_source(
    target: Kind, targets: Mapping[str, Entry], origins: Mapping[str, str]
) -> str:
    """ " (Images defined: git 1a2b3c4d5e6f: c; store: a, b)": every source is named, also
    one that defines none."""
    by_source: dict[str, list[str]] = {source: [] for source in sorted(set(origins.values()))}
    for name, entry in sorted(targets.items()):
        by_source.setdefault(origins.get(entry.document.file, "?"), []).append(name)
    shown = []
    for source, names in by_source.items():
        listed = ", ".join(names[:_MAX_LISTED]) if names else "none"
        more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        shown.append(f"{source}: {listed}{more}")
    return f" ({target.value}s defined: {'; '.join(shown)})"


def _suggest(ref: str, target: Kind, targets: Mapping[str, Entry]) -> str:
    if not targets:
        return f" (no {target.value} is defined at all)"
    if len(targets) > _MAX_SUGGESTION_POOL:
        return ""
    close = difflib.get_close_matches(ref, list(targets), n=1)
    return f"; did you mean {show(close[0])}?" if close else ""
