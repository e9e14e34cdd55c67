"""Desired state from git and from the `volctl apply` store at the same time.

Why merge instead of choosing one: a team converts to GitOps gradually, and ad-hoc resources
applied by hand must not vanish the moment a repository is configured.  The rule that keeps
this unambiguous is that every resource has exactly one owner: a resource defined in both
places is an error naming the repository and the path, never a silent override.

The two sets of texts are validated together (a VM in the store may use an InstanceType from
git).  A bad git commit keeps the last good commit in force while the store stays live; until
git has produced one good revision nothing is handed out, so a restart on a broken commit can
never make the controller believe the git-owned resources were removed.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.errors import SpecError
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.git import GitSource
from reconciler.source.protocol import Revision, SourceStatus
from reconciler.source.store import SpecStore, documents_of, load_texts


class CompositeSource:
    """Store + git as one `Source`; status and ownership are git's."""

    kind = "git"

    def __init__(self, store: SpecStore, git: GitSource) -> None:
        self.store = store
        self.git = git
        self.url = git.url
        self._error: str | None = None
        self._attempted: str | None = None
        self._applied: str | None = None

    def fetch(self) -> Revision:
        fetched = self.git.fetch()
        good = self.git.good_revision
        if good is None:
            self._error = "\n".join(fetched.errors) or "no valid git revision yet"
            return Revision(fetched.revision, None, fetched.errors)
        try:
            store_texts = self.store.texts()
        except SpecValidationError as exc:
            return self._reject(good.revision, tuple(str(d) for d in exc.diagnostics))
        rev = good.revision
        if store_texts:
            rev = f"{good.revision}+{self.store.revision_of(store_texts)}"
        self._attempted = rev
        git_texts = self.git.good_texts
        conflicts = self._conflicts(git_texts, store_texts)
        if conflicts:
            return self._reject(rev, conflicts)
        try:
            state = load_texts(git_texts + store_texts, revision=rev)
        except SpecValidationError as exc:
            return self._reject(rev, tuple(str(d) for d in exc.diagnostics))
        except SpecError as exc:
            return self._reject(rev, (str(exc),))
        self._applied = rev
        self._error = None
        return Revision(rev, state)

    def _reject(self, rev: str, errors: tuple[str, ...]) -> Revision:
        self._attempted = rev
        self._error = "\n".join(errors)
        return Revision(rev, None, errors)

    def _conflicts(
        self, git_texts: list[tuple[str, str]], store_texts: list[tuple[str, str]]
    ) -> tuple[str, ...]:
        git_docs, _ = documents_of(git_texts)
        owned = {(d.kind, d.name): d for d in git_docs}
        store_docs, _ = documents_of(store_texts)
        out = []
        for doc in store_docs:
            theirs = owned.get((doc.kind, doc.name))
            if theirs is not None:
                out.append(
                    f"{doc.file}:{doc.line}: {doc.kind}/{doc.name} is also defined in git "
                    f"repo {self.git.url} at {theirs.file}:{theirs.line}; a resource must "
                    f"come from one source (delete it with `volctl delete` or from the repo)"
                )
        return tuple(out)

    def status(self) -> SourceStatus:
        base = self.git.status()
        error = base.error
        if self._error and self._error != error:
            error = f"{error}\n{self._error}" if error else self._error
        return SourceStatus(
            kind="git",
            url=base.url,
            path=base.path,
            branch=base.branch,
            # "SHA" or "SHA+STOREDIGEST" when `volctl apply` resources are merged in
            last_applied_revision=self._applied or base.last_applied_revision,
            last_attempted_revision=base.last_attempted_revision,
            error=error,
            owned=base.owned,
        )

    def watch(self, on_change: Callable[[], None]) -> None:
        self.store.watch(on_change)
        self.git.watch(on_change)

    def close(self) -> None:
        self.git.close()
        self.store.close()
