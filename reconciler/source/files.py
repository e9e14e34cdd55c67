"""Spec files and directories named on the command line, as a `Source`.

`volctl plan -f` and `reconcile --once -f` read files given once, like `kubectl diff -f`; this
makes them look like any other source, so the engine's code path is the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from reconciler.loading import check_paths
from reconciler.source.protocol import Attempts, Revision, SourceStatus


class FileSource:
    """Spec files and directories given on the command line, as a Source."""

    kind = "files"

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self.url = ",".join(self.paths)
        self._attempts = Attempts(self.kind, self.url)

    def fetch(self) -> Revision:
        result = check_paths(self.paths)
        if result.state is None:
            errors = tuple(str(d) for d in result.diagnostics)
            return self._attempts.record(Revision(_digest(self.paths, errors), None, errors))
        rev = result.state.revision or _digest(self.paths, result.state)
        return self._attempts.record(Revision(rev, result.state))

    def watch(self, on_change: Callable[[], None]) -> None:
        del on_change  # files given once; `volctl run` watches the store or git instead

    def status(self) -> SourceStatus:
        return self._attempts.status()

    def refresh(self) -> None:
        """Nothing to do: every fetch reads the files afresh."""

    def close(self) -> None:
        pass


def _digest(paths: Sequence[str], content: object) -> str:
    """A revision that changes when the files' content does (the loaded model, or the
    diagnostics of a bad edit), not only when other paths are given."""
    return hashlib.sha256(repr((sorted(paths), content)).encode()).hexdigest()[:12]
