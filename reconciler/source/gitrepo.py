"""The git plumbing of the git source: a private cache clone, fetched and read by the git binary.

Why apart from `git.py`: fetching (a branch, or any revision a reviewer names, even one on no
branch) and reading the YAML files of a commit straight from the object store are mechanics;
which commit is in force, and why, is the source's business.  Every call has a timeout, never
prompts for credentials, and reports failures as `GitError` with credentials redacted.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from reconciler.errors import SpecError
from reconciler.loading import sources as spec_sources
from reconciler.loading.diagnostics import SpecValidationError

GIT_TIMEOUT = 120.0
_CRED = re.compile(r"(?<=://)[^/@]+@")


def redact(url: str) -> str:
    """The URL without any user:password part, for status, logs and REST."""
    return _CRED.sub("***@", url)


class GitError(SpecError):
    """git itself failed (unreachable remote, unknown branch)."""


_HEX = re.compile(r"[0-9a-fA-F]{4,40}")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:")


def label(sha: str, name: str) -> str:
    """How a file of a commit is named in diagnostics: "git 1a2b3c4d5e6f:specs/vm.yaml"."""
    return f"git {sha[:12]}:{name}"


def local_path(url: str) -> str:
    """A relative local path (`--git .`) made absolute: git runs inside the cache clone."""
    if "://" in url or _SCP.match(url) or not Path(url).exists():
        return url
    return str(Path(url).resolve())


class GitCache:
    """A private clone at `root` that fetches from `url` (credentials and all); nothing is
    ever checked out, files are read from the object store."""

    def __init__(self, path: Path, url: str, shown_url: str) -> None:
        self.root = path
        self.url = url
        self.shown_url = shown_url

    def exists(self) -> bool:
        return (self.root / ".git").is_dir()

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd or self.root,
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
        if self.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q")

    def fetch_branch(self, branch: str) -> str:
        """The commit `branch` points at in the remote, fetched into refs/volctl/BRANCH."""
        self._ensure_repo()
        ref = f"refs/volctl/{branch}"
        self.git(
            "fetch",
            "-q",
            "--no-tags",
            "--force",
            self.url,
            f"+refs/heads/{branch}:{ref}",
        )
        return self.git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()

    def fetch_rev(self, rev: str) -> str:
        """The commit `rev` names in the remote: a ref or tag is fetched by name (so a pull
        request head that is on no branch works); a sha that was not advertised is looked
        for after fetching every branch and tag."""
        self._ensure_repo()
        if re.fullmatch(r"[0-9a-fA-F]{40}", rev) and self._has_commit(rev):
            return rev.lower()
        try:
            self.git("fetch", "-q", "--no-tags", "--force", self.url, rev)
            return self.git("rev-parse", "--verify", "FETCH_HEAD^{commit}").strip()
        except GitError as exc:
            if not _HEX.fullmatch(rev):
                raise GitError(f"revision {rev!r} not found in {self.shown_url}: {exc}") from exc
        self.git(
            "fetch",
            "-q",
            "--force",
            self.url,
            "+refs/heads/*:refs/volctl-review/heads/*",
            "+refs/tags/*:refs/volctl-review/tags/*",
        )
        if not self._has_commit(rev):
            raise GitError(f"revision {rev!r} not found in {self.shown_url}")
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()

    def _has_commit(self, rev: str) -> bool:
        try:
            self.git("rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        except GitError:
            return False
        return True

    def texts_at(self, sha: str, path: str) -> list[tuple[str, str]]:
        """The YAML files under the path at `sha`, named relative to the repository root.

        Read from the object store (`ls-tree` + `cat-file`), which is the checked-out
        revision without a working tree: the CLI can read the same cache while the
        controller fetches, and no stray local file can ever sneak into a revision.
        """
        prefix = "" if path == "." else path.rstrip("/") + "/"
        listing = self.git("ls-tree", "-r", "-z", "--full-tree", sha, "--", prefix or ".")
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
            if prefix and not self.git("ls-tree", sha, "--", prefix.rstrip("/")).strip():
                raise GitError(f"path {path!r} does not exist in commit {sha[:12]}")
            return []
        out: list[tuple[str, str]] = []
        problems = []
        for name in sorted(names):
            raw = self._git_bytes("cat-file", "blob", f"{sha}:{name}")
            text, problem = spec_sources.decode(label(sha, name), raw)
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
                cwd=self.root,
                capture_output=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise GitError(f"git {args[0]} failed: {exc}") from exc
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout
