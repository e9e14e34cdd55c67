"""What the controller needs from a source of desired state.

A source yields a whole, validated revision or a rejection with diagnostics; never a partial
model.  The controller keeps reconciling the last good revision while a newer one is bad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import DesiredState


@dataclass(frozen=True)
class Revision:
    revision: str  # git sha, or a digest of the store's files
    state: DesiredState | None  # None when invalid
    errors: tuple[str, ...] = ()  # "file:line: field: message", with the commit for git


class Source(Protocol):
    kind: str  # "store" | "git"
    url: str

    def fetch(self) -> Revision:
        """Read the newest revision (clone/fetch for git).  Never raises for bad specs."""
        ...

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call on_change (debounced) when a new revision may be available."""
        ...

    def close(self) -> None: ...
