"""GitOps: a git branch as the source of desired state, the way Flux's GitRepository works.

Why real git through subprocess: users point volctl at the repositories they already have
(file://, ssh, https); only the git binary speaks all of those with the user's own
credentials helpers and known_hosts.  The fetch is into a private cache clone under the state
directory, the fetched commit of the branch is checked out there and the documents under the
configured path are handed to the loader as one revision.

A revision that fails validation is rejected as a whole: the last good revision stays in
force (also across restarts: its sha is remembered in the cache), and the error names the
commit, the file and the line.  Status follows Flux: `lastAttemptedRevision` is the newest
commit seen, `lastAppliedRevision` the newest one that was valid and handed out.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import SpecError
from reconciler.loading import sources as spec_sources
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.protocol import Revision, SourceStatus
from reconciler.source.store import documents_of, load_texts, short_key

GIT_TIMEOUT = 120.0
_CRED = re.compile(r"(?<=://)[^/@]+@")


def redact(url: str) -> str:
    """The URL without any user:password part, for status, logs and REST."""
    return _CRED.sub("***@", url)


class GitError(SpecError):
    """git itself failed (unreachable remote, unknown branch)."""


class GitSource:
    """A branch of a git repository; implements the `Source` protocol."""

    kind = "git"

    def __init__(
        self,
        url: str,
        *,
        cache_root: str | os.PathLike[str],
        branch: str = "main",
        path: str = ".",
        interval: float = 60.0,
    ) -> None:
        self.raw_url = url
        self.url = redact(url)
        self.branch = branch
        self.path = path.strip("/") or "."
        self.interval = interval
        key = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:12]
        self.cache = Path(cache_root) / "git" / key
        self.repo = self.cache / "repo"
        self._ref = f"refs/volctl/{branch}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_attempted: str | None = None
        self._last_error: str | None = None
        self._good: Revision | None = None
        self._bad: Revision | None = None
        self._last: Revision | None = None
        self._fetched_at = 0.0
        self._dirty = False
        self._good_texts: list[tuple[str, str]] = []
        if ".." in Path(self.path).parts or Path(self.path).is_absolute():
            raise SpecError(f"git path {path!r} must be relative to the repository root")

    # ---- git plumbing --------------------------------------------------------------------

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd or self.repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {GIT_TIMEOUT:.0f}s") from exc
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from exc
        if done.returncode != 0:
            msg = redact(done.stderr.strip() or done.stdout.strip())
            raise GitError(f"git {args[0]} failed: {msg}")
        return done.stdout

    def _ensure_repo(self) -> None:
        if (self.repo / ".git").is_dir():
            return
        self.repo.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q")

    def _fetch_sha(self) -> str:
        self._ensure_repo()
        self._git(
            "fetch",
            "-q",
            "--no-tags",
            "--force",
            self.raw_url,
            f"+refs/heads/{self.branch}:{self._ref}",
        )
        return self._git("rev-parse", "--verify", f"{self._ref}^{{commit}}").strip()

    def _texts_at(self, sha: str) -> list[tuple[str, str]]:
        """The YAML files under the path at `sha`, named relative to the repository root.

        Read from the object store (`ls-tree` + `cat-file`), which is the checked-out
        revision without a working tree: the CLI can read the same cache while the
        controller fetches, and no stray local file can ever sneak into a revision.
        """
        prefix = "" if self.path == "." else self.path.rstrip("/") + "/"
        listing = self._git("ls-tree", "-r", "-z", "--full-tree", sha, "--", prefix or ".")
        names: list[str] = []
        for entry in listing.split("\0"):
            if not entry.strip():
                continue
            meta, _, name = entry.partition("\t")
            if meta.split()[1] != "blob":
                continue
            rel = name[len(prefix) :] if prefix and name.startswith(prefix) else name
            parts = rel.split("/")
            if any(p.startswith(".") for p in parts) or not name.endswith(spec_sources.SUFFIXES):
                continue
            names.append(name)
        if not names:
            if prefix and not self._git("ls-tree", sha, "--", prefix.rstrip("/")).strip():
                raise GitError(f"path {self.path!r} does not exist in commit {sha[:12]}")
            return []
        out: list[tuple[str, str]] = []
        problems = []
        for name in sorted(names):
            raw = self._git_bytes("cat-file", "blob", f"{sha}:{name}")
            text, problem = spec_sources.decode(name, raw)
            if problem is not None:
                problems.append(problem)
            elif text is not None:
                out.append((name, text))
        if problems:
            raise SpecValidationError(problems)
        return out

    def _git_bytes(self, *args: str) -> bytes:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=self.repo,
                capture_output=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise GitError(f"git {args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def cached_texts(self) -> list[tuple[str, str]]:
        """Texts of the last applied commit from the cache, without fetching (for the CLI,
        which validates `apply` against what git defines).  Empty when there is none."""
        try:
            sha = (self.cache / "last-applied").read_text().strip()
        except OSError:
            return []
        if not sha or not (self.repo / ".git").is_dir():
            return []
        try:
            return self._texts_at(sha)
        except (GitError, SpecValidationError):
            return []

    # ---- Source --------------------------------------------------------------------------

    def fetch(self) -> Revision:
        """The newest revision; the remote is asked at most once per `interval` unless the
        poller saw a new head, so frequent passes (resyncs, retries) cost no network."""
        with self._lock:
            now = time.monotonic()
            fresh = now - self._fetched_at < self.interval
            if self._last is not None and fresh and not self._dirty:
                return self._last
            self._dirty = False
            self._fetched_at = now
            self._last = self._fetch_locked()
            return self._last

    def _fetch_locked(self) -> Revision:
        try:
            sha = self._fetch_sha()
        except GitError as exc:
            self._last_error = str(exc)
            return Revision(self._last_attempted or "unknown", None, (str(exc),))
        if self._good is None:
            self._restore_good(sha)
        if self._good is not None and sha == self._good.revision:
            self._last_attempted = sha
            self._last_error = None
            return self._good
        if self._bad is not None and sha == self._bad.revision:
            return self._bad
        self._last_attempted = sha
        rev = self._load(sha)
        if rev.state is not None:
            self._good = rev
            self._last_error = None
            self._bad = None
            self._remember(sha)
        else:
            self._bad = rev
            self._last_error = "\n".join(rev.errors)
        return rev

    def _load(self, sha: str) -> Revision:
        short = sha[:12]
        try:
            texts = self._texts_at(sha)
            state = load_texts(texts, revision=sha)
        except SpecValidationError as exc:
            errs = tuple(f"commit {short}: {d}" for d in exc.diagnostics)
            return Revision(sha, None, errs)
        except SpecError as exc:
            return Revision(sha, None, (f"commit {short}: {exc}",))
        self._good_texts = texts
        return Revision(sha, state)

    def _restore_good(self, newest: str) -> None:
        """After a restart, the last applied commit from before (if still valid) is in force
        until a newer commit validates."""
        marker = self.cache / "last-applied"
        try:
            sha = marker.read_text().strip()
        except OSError:
            return
        if not sha or sha == newest:
            return
        rev = self._load(sha)
        if rev.state is not None:
            self._good = rev

    def _remember(self, sha: str) -> None:
        marker = self.cache / "last-applied"
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(sha + "\n")
        tmp.replace(marker)

    @property
    def good_texts(self) -> list[tuple[str, str]]:
        """Texts of the last applied revision (empty before the first good one)."""
        return list(self._good_texts)

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
            last_applied_revision=self._good.revision if self._good else None,
            last_attempted_revision=self._last_attempted,
            error=self._last_error,
            owned=self.owned(),
        )

    def watch(self, on_change: Callable[[], None]) -> None:
        """Poll the remote every `interval` seconds (git has no push channel to us)."""

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    out = self._git("ls-remote", self.raw_url, f"refs/heads/{self.branch}")
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
