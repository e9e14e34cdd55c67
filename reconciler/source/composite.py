"""Desired state from git and from the `volctl apply` store at the same time.

Why merge instead of choosing one: a team converts to GitOps gradually, and ad-hoc resources
applied by hand must not vanish the moment a repository is configured.  The rule that keeps
this unambiguous is that every resource has exactly one owner: a resource defined in both
places is an error naming the repository and the path, never a silent override.

What is validated is the merged desired state: each file against its schema, then references,
ids and attachments across the union, so a VM committed to git may use the Image and Hosts
that `volctl apply` put in the store (and the other way round).  Every file is named with its
source in errors (`git 1a2b3c4d5e6f:specs/vm.yaml:3`, `store /var/lib/volctl/specs/...`), and
an unresolved reference lists what each source defines.  A git commit whose merge fails is
rejected as a whole: the last good commit, merged with the live store, stays in force; until
git has produced one good revision nothing is handed out, so a restart on a broken commit can
never make the controller believe the git-owned resources were removed.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.loading.diagnostics import Diagnostic, SpecValidationError
from reconciler.model import DesiredState
from reconciler.source.git import GitSource, label
from reconciler.source.protocol import Revision, SourceStatus
from reconciler.source.store import documents_of, load_texts
from reconciler.source.stores import AnyStore


class CompositeSource:
    """Store + git as one `Source`; status and ownership are git's."""

    kind = "git"

    def __init__(self, store: AnyStore, git: GitSource) -> None:
        self.store = store
        self.git = git
        self.url = git.url
        self._error: str | None = None
        self._applied: str | None = None

    def fetch(self) -> Revision:
        try:
            store_texts = self.store.texts()
        except SpecValidationError as exc:
            # an unreadable store must never look empty: keep what is in force
            errors = tuple(f"store {d}" for d in exc.diagnostics)
            self._error = "\n".join(errors)
            return Revision("unreadable", None, errors)
        self._error = None
        digest = self.store.revision_of(store_texts) if store_texts else ""

        def merged(sha: str, git_texts: list[tuple[str, str]]) -> DesiredState:
            return self.merge(sha, git_texts, store_texts, digest)

        rev = self.git.evaluate(merged, key=digest)
        if rev.state is not None:
            self._applied = rev.revision
        return rev

    def merge(
        self,
        sha: str,
        git_texts: list[tuple[str, str]],
        store_texts: list[tuple[str, str]],
        digest: str,
    ) -> DesiredState:
        """The union of a commit and the store, validated as one; raises SpecError."""
        ours = [(label(sha, n), t) for n, t in git_texts]
        theirs = [(f"store {n}", t) for n, t in store_texts]
        conflicts = self._conflicts(ours, theirs)
        if conflicts:
            raise SpecValidationError(conflicts)
        origins = {n: f"git {sha[:12]}" for n, _ in ours} | {n: "store" for n, _ in theirs}
        revision = f"{sha}+{digest}" if digest else sha
        return load_texts(ours + theirs, revision=revision, origins=origins)

    def _conflicts(
        self, git_texts: list[tuple[str, str]], store_texts: list[tuple[str, str]]
    ) -> list[Diagnostic]:
        git_docs, _ = documents_of(git_texts)
        owned = {(d.kind, d.name): d for d in git_docs}
        store_docs, _ = documents_of(store_texts)
        out = []
        for doc in store_docs:
            theirs = owned.get((doc.kind, doc.name))
            if theirs is not None:
                out.append(
                    Diagnostic(
                        doc.file,
                        doc.line,
                        "metadata.name",
                        f"is also defined in git repo {self.git.url} at "
                        f"{theirs.file}:{theirs.line}; a resource must come from one source "
                        "(delete it with `volctl delete` or from the repo)",
                        f"{doc.kind}/{doc.name}",
                    )
                )
        return out

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

    def refresh(self) -> None:
        self.git.refresh()

    def watch(self, on_change: Callable[[], None]) -> None:
        self.store.watch(on_change)
        self.git.watch(on_change)

    def close(self) -> None:
        self.git.close()
        self.store.close()
