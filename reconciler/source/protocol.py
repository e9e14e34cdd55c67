"""What the controller needs from a source of desired state.

A source yields a whole, validated revision or a rejection with diagnostics; never a partial
model.  The controller keeps reconciling the last good revision while a newer one is bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.model import DesiredState


@dataclass(frozen=True)
class Revision:
    revision: str  # git sha, or a digest of the store's files
    state: DesiredState | None  # None when invalid
    errors: tuple[str, ...] = ()  # "file:line: field: message", with the commit for git


@dataclass(frozen=True)
class SourceStatus:
    """Where the desired state came from (store directory or git) and how that went."""

    kind: str  # "store" | "git"
    url: str
    path: str = ""
    branch: str | None = None
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    error: str | None = None  # validation error of the last attempted revision, with file:line
    # resources this source defines at its last applied revision: "vm/NAME" -> "path:line"
    # (lets `volctl apply` refuse to write a resource that git owns, naming repo and path)
    owned: Mapping[str, str] = field(default_factory=dict)


class Attempts:
    """What a source remembers of its fetches for `status()`: the last revision attempted, the
    last one applied, and the error of the last bad one (the last good one stays in force)."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.applied: str | None = None
        self.attempted: str | None = None
        self.error: str | None = None
        self.last: Revision | None = None  # the last verdict, reused for the same texts

    def record(self, rev: Revision) -> Revision:
        self.last = rev
        self.attempted = rev.revision
        if rev.state is not None:
            self.applied, self.error = rev.revision, None
        else:
            self.error = "\n".join(rev.errors)
        return rev

    def reject(self, revision: str, errors: Iterable[object]) -> Revision:
        """Record a revision that has no desired state, with its diagnostics."""
        return self.record(Revision(revision, None, tuple(str(e) for e in errors)))

    def status(self) -> SourceStatus:
        return SourceStatus(
            kind=self.kind,
            url=self.url,
            last_applied_revision=self.applied,
            last_attempted_revision=self.attempted,
            error=self.error,
        )


class Source(Protocol):
    kind: str  # "store" | "git"
    url: str

    def fetch(self) -> Revision:
        """Read the newest revision (clone/fetch for git).  Never raises for bad specs."""
        ...

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call on_change (debounced) when a new revision may be available."""
        ...

    def status(self) -> SourceStatus:
        """Where this source reads from and how its last fetch went (shown in status)."""
        ...

    def refresh(self) -> None:
        """Make the next fetch read the origin now, not when a poll interval says so
        (`POST /hooks/git`); a no-op for sources that are read in full on every fetch."""
        ...

    def close(self) -> None: ...
