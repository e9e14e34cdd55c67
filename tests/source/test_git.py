"""The git source against real local repositories: commit -> applied, broken commit ->
rejected with commit/file/line while the last good stays, fix -> applied; plus merging with
the apply store and the one-owner rule."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from reconciler.config import Config
from reconciler.errors import SpecError
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.composite import CompositeSource
from reconciler.source.factory import build_source
from reconciler.source.git import GitSource, redact
from reconciler.source.store import SpecStore

from .specs import BASE, vm


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    commit(path, {"README.md": "not a spec\n", "specs/base.yaml": BASE}, "base")
    return path


def test_commit_broken_fix_cycle(repo: Path, tmp_path: Path) -> None:
    src = GitSource(f"file://{repo}", cache_root=tmp_path / "state", path="specs", interval=0)
    first = src.fetch()
    assert first.state is not None
    assert first.revision == git(repo, "rev-parse", "HEAD")
    assert set(first.state.hosts) == {"h1"}

    good = commit(repo, {"specs/vms/web.yaml": vm("web")}, "add web")
    rev = src.fetch()
    assert rev.revision == good
    assert rev.state is not None
    assert set(rev.state.vms) == {"web"}

    bad = commit(repo, {"specs/vms/db.yaml": vm("db", itype="nosuch")}, "broken")
    rejected = src.fetch()
    # rejected as a whole: its errors, and the last good commit's state stays in force
    assert rejected.state is not None
    assert set(rejected.state.vms) == {"web"}
    assert rejected.revision == good
    assert any(
        e.startswith(f"git {bad[:12]}:specs/vms/db.yaml:") and "nosuch" in e
        for e in rejected.errors
    ), rejected.errors
    status = src.status()
    assert status.last_applied_revision == good
    assert status.last_attempted_revision == bad
    assert status.error
    assert "specs/vms/db.yaml:" in status.error
    assert status.owned["vm/web"] == "specs/vms/web.yaml:1"

    fixed = commit(repo, {"specs/vms/db.yaml": vm("db")}, "fix")
    rev = src.fetch()
    assert rev.state is not None
    assert set(rev.state.vms) == {"web", "db"}
    assert src.status().last_applied_revision == fixed
    assert src.status().error is None


def test_restart_on_a_broken_head_keeps_the_last_good_commit(repo: Path, tmp_path: Path) -> None:
    url = f"file://{repo}"
    good = commit(repo, {"specs/vms/web.yaml": vm("web")}, "add web")
    assert (
        GitSource(url, cache_root=tmp_path / "s", path="specs", interval=0).fetch().state
        is not None
    )
    commit(repo, {"specs/vms/web.yaml": "kind: [unclosed\n"}, "broken")
    again = GitSource(url, cache_root=tmp_path / "s", path="specs", interval=0)
    rev = again.fetch()
    assert rev.errors
    assert rev.state is not None
    assert set(rev.state.vms) == {"web"}
    assert again.good_revision is not None
    assert again.good_revision.revision == good
    assert again.status().last_applied_revision == good


def test_unreachable_remote_and_unknown_branch_are_errors_not_crashes(tmp_path: Path) -> None:
    src = GitSource(f"file://{tmp_path}/nope", cache_root=tmp_path / "s", interval=0)
    rev = src.fetch()
    assert rev.state is None
    assert rev.errors
    assert "git fetch failed" in rev.errors[0]
    assert src.status().error


def test_composite_merges_and_refuses_a_resource_defined_twice(repo: Path, tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    cfg = Config(store=str(store.root), state_dir=str(tmp_path / "state"))
    src = build_source(cfg, git_url=f"file://{repo}", path="specs", interval=0)
    assert isinstance(src, CompositeSource)
    with pytest.raises(SpecValidationError):  # git not fetched yet: nothing to refer to
        store.apply([("mine.yaml", vm("adhoc"))], context=src.git.cached_texts())
    assert src.fetch().state is not None
    # uses git's InstanceType and Image, as the CLI would validate it
    store.apply([("mine.yaml", vm("adhoc"))], context=src.git.cached_texts())
    rev = src.fetch()
    assert rev.state is not None
    assert set(rev.state.vms) == {"adhoc"}
    assert set(rev.state.hosts) == {"h1"}

    commit(repo, {"specs/adhoc.yaml": vm("adhoc")}, "git takes adhoc")
    clash = src.fetch()
    # the commit is rejected whole; the last good commit merged with the store stays
    assert clash.state is not None
    assert clash.revision == rev.revision
    assert any(f"file://{repo}" in e and "specs/adhoc.yaml:1" in e for e in clash.errors)
    assert src.status().error


def test_factory_without_git_is_the_store(tmp_path: Path) -> None:
    src = build_source(Config(store=str(tmp_path / "st"), state_dir=str(tmp_path)))
    assert isinstance(src, SpecStore)


def test_credentials_never_reach_status() -> None:
    assert redact("https://bob:hunter2@example.com/r.git") == "https://***@example.com/r.git"


def test_remote_is_asked_once_per_interval_and_the_poller_notices_commits(
    repo: Path, tmp_path: Path
) -> None:
    src = GitSource(f"file://{repo}", cache_root=tmp_path / "s", path="specs", interval=3600)
    first = src.fetch()
    commit(repo, {"specs/vms/web.yaml": vm("web")}, "add web")
    assert src.fetch() is first  # a resync pass within the interval costs no network

    fast = GitSource(f"file://{repo}", cache_root=tmp_path / "f", path="specs", interval=0.2)
    assert fast.fetch().state is not None
    seen = threading.Event()
    fast.watch(seen.set)
    try:
        newest = commit(repo, {"specs/vms/db.yaml": vm("db")}, "add db")
        assert seen.wait(10)
        assert fast.fetch().revision == newest
    finally:
        fast.close()


@pytest.mark.parametrize(
    ("url", "branch", "rev"),
    [
        ("--upload-pack=touch /tmp/x", "main", None),
        ("file:///r", "-x", None),
        ("file:///r", "main", "--upload-pack=touch /tmp/x"),
        ("file:///r", "main", "a b"),
    ],
)
def test_arguments_that_git_would_read_as_options_are_refused(
    url: str, branch: str, rev: str | None, tmp_path: Path
) -> None:
    with pytest.raises(SpecError, match="is not valid"):
        GitSource(url, cache_root=tmp_path, branch=branch, rev=rev)
