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
        digest = hashlib.sha256(repr(sorted(self.paths)).encode())
        if result.state is None:
            errors = tuple(str(d) for d in result.diagnostics)
            return self._attempts.record(Revision(digest.hexdigest()[:12], None, errors))
        rev = result.state.revision or digest.hexdigest()[:12]
        return self._attempts.record(Revision(rev, result.state))

    def watch(self, on_change: Callable[[], None]) -> None:
        del on_change  # files given once; `volctl run` watches the store or git instead

    def status(self) -> SourceStatus:
        return self._attempts.status()

    def refresh(self) -> None:
        """Nothing to do: every fetch reads the files afresh."""

    def close(self) -> None:
        pass
