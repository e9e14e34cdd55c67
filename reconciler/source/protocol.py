"""What the controller needs from a source of desired state.

A source yields a whole, validated revision or a rejection with diagnostics; never a partial
model.  The controller keeps reconciling the last good revision while a newer one is bad.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
