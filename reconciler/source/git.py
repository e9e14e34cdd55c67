"""GitOps: a git branch as the source of desired state, the way Flux's GitRepository works.

Why real git through subprocess: users point volctl at the repositories they already have
(file://, ssh, https); only the git binary speaks all of those with the user's own
credentials helpers and known_hosts.  The fetch is into a private cache clone under the state
directory, the fetched commit of the branch is checked out there and the documents under the
configured path are handed to the loader as one revision (the plumbing is `gitrepo.py`).

A revision that fails validation is rejected as a whole: the last good revision stays in
force (also across restarts: its sha is remembered in the cache), and the error names the
commit, the file and the line.  Status follows Flux: `lastAttemptedRevision` is the newest
commit seen, `lastAppliedRevision` the newest one that was valid and handed out.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import SpecError
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.model import DesiredState
from reconciler.source.gitrepo import GIT_TIMEOUT, GitCache, GitError, label, local_path, redact
from reconciler.source.protocol import Revision, SourceStatus
from reconciler.source.store import documents_of, load_texts, short_key

__all__ = ["GitError", "GitSource", "Validate", "label", "redact"]

Validate = Callable[[str, list[tuple[str, str]]], DesiredState]
"""(commit sha, repository-relative texts under the path) -> desired state; raises SpecError.
The git source alone validates the commit by itself; `CompositeSource` merges the store in."""


class GitSource:
    """A branch of a git repository (or one pinned revision); implements `Source`.

    With `rev` the source is pinned to that one revision (sha, branch, tag or any ref such
    as `refs/pull/7/head`), fetched even when it is on no branch: that is what `volctl plan
    --rev` reviews.  A pinned source never falls back to another commit and leaves the
    controller's last-applied marker alone.  Without `cache_root` the clone lives in a
    temporary directory removed by `close()` (CI runners rarely own /var/lib/volctl).
    """

    kind = "git"

    def __init__(
        self,
        url: str,
        *,
        cache_root: str | os.PathLike[str] | None,
        branch: str = "main",
        path: str = ".",
        interval: float = 60.0,
        rev: str | None = None,
    ) -> None:
        self.raw_url = local_path(url)
        self.url = redact(url)
        self.branch = branch
        self.rev = rev
        self.path = path.strip("/") or "."
        self.interval = interval
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if cache_root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="volctl-git-")
            cache_root = self._tmp.name
        which = f"rev\0{self.raw_url}" if rev is not None else f"{self.raw_url}\0{branch}"
        key = hashlib.sha256(which.encode()).hexdigest()[:12]
        self.cache = Path(cache_root) / "git" / key
        self.repo = self.cache / "repo"
        self._repo = GitCache(self.repo, self.raw_url, self.url)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._head: str | GitError | None = None  # newest commit (or why it is unknown)
        self._fetched_at = 0.0
        self._dirty = False
        self._texts_cache: dict[str, list[tuple[str, str]]] = {}
        self._verdict: tuple[tuple[str | None, str], Revision] | None = None
        self._last_attempted: str | None = None
        self._last_error: str | None = None
        self._good: Revision | None = None
        self._good_sha: str | None = None
        self._good_texts: list[tuple[str, str]] = []
        if ".." in Path(self.path).parts or Path(self.path).is_absolute():
            raise SpecError(f"git path {path!r} must be relative to the repository root")
        for what, value in (("url", url), ("branch", branch), ("revision", rev or "x")):
            # git would read a leading "-" as an option (--upload-pack=...)
            if not value or value.startswith("-") or any(c.isspace() for c in value):
                raise SpecError(f"git {what} {value!r} is not valid")

    def _fetch_sha(self) -> str:
        if self.rev is not None:
            return self._repo.fetch_rev(self.rev)
        return self._repo.fetch_branch(self.branch)

    def texts_at(self, sha: str) -> list[tuple[str, str]]:
        """The YAML files under the path at `sha` (repository-relative names), remembered
        for the last few commits (a commit never changes)."""
        hit = self._texts_cache.get(sha)
        if hit is None:
            hit = self._repo.texts_at(sha, self.path)
            if len(self._texts_cache) >= 4:
                self._texts_cache.pop(next(iter(self._texts_cache)))
            self._texts_cache[sha] = hit
        return list(hit)

    def cached(self) -> tuple[str | None, list[tuple[str, str]]]:
        """The last applied commit and its texts from the cache, without fetching (for the
        CLI, which validates `apply` and `delete` against what git defines).  (None, []) when
        there is none."""
        sha = self._remembered()
        if sha is None or not self._repo.exists():
            return None, []
        try:
            return sha, self._repo.texts_at(sha, self.path)
        except (GitError, SpecValidationError):
            return None, []

    def cached_texts(self) -> list[tuple[str, str]]:
        """`cached()` named as diagnostics name git files ("git 1a2b3c4d5e6f:specs/vm.yaml"),
        so an error in a git document is never mistaken for one in the user's own files."""
        sha, texts = self.cached()
        return [(label(sha, n), t) for n, t in texts] if sha else []

    # ---- Source --------------------------------------------------------------------------

    def fetch(self) -> Revision:
        """The newest commit validated on its own (see `evaluate`)."""
        return self.evaluate(self._alone)

    def _alone(self, sha: str, texts: list[tuple[str, str]]) -> DesiredState:
        return load_texts([(label(sha, n), t) for n, t in texts], revision=sha)

    def head(self) -> str:
        """The newest commit of the branch (or the pinned revision); raises GitError."""
        with self._lock:
            sha, failure = self._newest()
        if sha is None:
            raise GitError(failure[0])
        return sha

    def refresh(self) -> None:
        """Ask the remote at the next fetch, whatever the interval (webhook, poller)."""
        self._dirty = True

    def evaluate(self, validate: Validate, key: str = "") -> Revision:
        """The newest commit as `validate` judges it.

        A commit that fails is rejected as a whole: the result then carries its errors and
        the state of the last good commit (also the one remembered from before a restart),
        judged again by `validate` because what it is merged with may have changed; no state
        at all when there is none.  `key` names what else the verdict depends on (the
        store's digest), so a pass that changed nothing re-validates nothing.
        """
        with self._lock:
            sha, failure = self._newest()
            if self._verdict is not None and self._verdict[0] == (sha, key):
                return self._verdict[1]
            result = self._judge_newest(sha, failure, validate)
            self._verdict = ((sha, key), result)
            return result

    def _newest(self) -> tuple[str | None, tuple[str, ...]]:
        """The newest commit; the remote is asked at most once per `interval` unless the
        poller or a webhook saw a new head, so frequent passes cost no network."""
        fresh = time.monotonic() - self._fetched_at < self.interval
        if self._head is None or self._dirty or not (fresh or self.rev is not None):
            self._dirty = False
            self._fetched_at = time.monotonic()
            try:
                self._head = self._fetch_sha()
            except GitError as exc:
                self._head = exc
        if isinstance(self._head, GitError):
            self._last_error = str(self._head)
            return None, (str(self._head),)
        return self._head, ()

    def _judge_newest(
        self, sha: str | None, failure: tuple[str, ...], validate: Validate
    ) -> Revision:
        errors = failure
        if sha is not None:
            self._last_attempted = sha
            rev, texts = self._judge(sha, validate)
            self._last_error = "\n".join(rev.errors) or None
            if rev.state is not None:
                self._accept(sha, rev, texts)
                return rev
            errors = rev.errors
        fallback = self._fallback(sha, validate)
        if fallback is not None:
            return Revision(fallback.revision, fallback.state, errors)
        return Revision(sha or self._last_attempted or "unknown", None, errors)

    def _judge(self, sha: str, validate: Validate) -> tuple[Revision, list[tuple[str, str]]]:
        try:
            texts = self.texts_at(sha)
            state = validate(sha, texts)
        except SpecValidationError as exc:
            return Revision(sha, None, tuple(str(d) for d in exc.diagnostics)), []
        except SpecError as exc:
            return Revision(sha, None, (f"git {sha[:12]}: {exc}",)), []
        return Revision(state.revision or sha, state), texts

    def _fallback(self, newest: str | None, validate: Validate) -> Revision | None:
        """The last good commit (or the one remembered across a restart), if still valid."""
        if self.rev is not None:
            return None  # a review judges exactly the commit asked for
        good = self._good_sha or self._remembered()
        if good is None or good == newest:
            return None
        rev, texts = self._judge(good, validate)
        if rev.state is None:
            return None
        self._accept(good, rev, texts)
        return rev

    def _accept(self, sha: str, rev: Revision, texts: list[tuple[str, str]]) -> None:
        changed = sha != self._good_sha
        self._good, self._good_sha, self._good_texts = rev, sha, texts
        if changed and self.rev is None:
            self._remember(sha)

    def _remembered(self) -> str | None:
        try:
            return (self.cache / "last-applied").read_text().strip() or None
        except OSError:
            return None

    def _remember(self, sha: str) -> None:
        marker = self.cache / "last-applied"
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(sha + "\n")
        tmp.replace(marker)

    @property
    def good_revision(self) -> Revision | None:
        return self._good

    def owned(self) -> dict[str, str]:
        docs, _ = documents_of(self._good_texts)
        return {short_key(d.kind, d.name): f"{d.file}:{d.line}" for d in docs}

    def status(self) -> SourceStatus:
        return SourceStatus(
            kind="git",
            url=self.url,
            path=self.path,
            branch=self.branch,
            last_applied_revision=self._good_sha,
            last_attempted_revision=self._last_attempted,
            error=self._last_error,
            owned=self.owned(),
        )

    def watch(self, on_change: Callable[[], None]) -> None:
        """Poll the remote every `interval` seconds (`refresh()` is the push channel)."""
        if self.rev is not None:
            return  # a pinned revision never changes

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    out = self._repo.git("ls-remote", self.raw_url, f"refs/heads/{self.branch}")
                except GitError:
                    self._dirty = True
                    on_change()  # let the pass record the error
                    continue
                head = out.split()[0] if out.strip() else None
                if head != self._last_attempted:
                    self._dirty = True
                    on_change()

        self._thread = threading.Thread(target=loop, name="volctl-git-poll", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=GIT_TIMEOUT)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
