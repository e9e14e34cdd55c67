"""Git and the apply store validated as one desired state, with real repositories and a real
store directory: the lab's way of working (inventory applied to the store, workloads committed
to git) must be accepted, and every error must say which source each side comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import Config
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.composite import CompositeSource
from reconciler.source.factory import build_source
from reconciler.source.store import SpecStore

from .specs import BASE, vm
from .test_git import commit, git


@pytest.fixture
def workloads(tmp_path: Path) -> Path:
    """A repository that holds only workloads (no Host, Image or InstanceType)."""
    path = tmp_path / "workloads"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    commit(path, {"README.md": "workloads\n"}, "empty")
    return path


def composite(tmp_path: Path, repo: Path) -> tuple[CompositeSource, SpecStore]:
    store = SpecStore(tmp_path / "store")
    cfg = Config(store=str(store.root), state_dir=str(tmp_path / "state"))
    src = build_source(cfg, git_url=f"file://{repo}", path="specs", interval=0)
    assert isinstance(src, CompositeSource)
    return src, store


def test_a_commit_may_refer_to_the_inventory_in_the_store(workloads: Path, tmp_path: Path) -> None:
    src, store = composite(tmp_path, workloads)
    store.apply([("inventory.yaml", BASE)])
    sha = commit(workloads, {"specs/web.yaml": vm("web")}, "web uses the store's image")
    rev = src.fetch()
    assert rev.errors == ()
    assert rev.state is not None
    assert set(rev.state.vms) == {"web"}
    assert rev.state.vms["web"].image == "cirros"
    assert set(rev.state.hosts) == {"h1"}
    status = src.status()
    assert status.last_applied_revision == rev.revision
    assert status.last_applied_revision.startswith(f"{sha}+")
    assert status.error is None
    assert set(status.owned) == {"vm/web"}  # git owns only what it defines


def test_a_bad_commit_is_rejected_whole_naming_both_sources(
    workloads: Path, tmp_path: Path
) -> None:
    src, store = composite(tmp_path, workloads)
    store.apply([("inventory.yaml", BASE)])
    commit(workloads, {"specs/web.yaml": vm("web")}, "web")
    good = src.fetch()
    assert good.state is not None

    bad = commit(
        workloads,
        {"specs/db.yaml": vm("db", image="lab-base"), "specs/api.yaml": vm("api")},
        "db refers to an image nobody defines",
    )
    rejected = src.fetch()
    expected = (
        f"git {bad[:12]}:specs/db.yaml:4: VirtualMachine/db: spec.image: refers to Image "
        f"'lab-base', which is not defined (Images defined: git {bad[:12]}: none; "
        "store: cirros)"
    )
    assert expected in rejected.errors, rejected.errors
    # whole commit rejected: `api` (valid on its own) is not in force either
    assert rejected.state is not None
    assert set(rejected.state.vms) == {"web"}
    assert rejected.revision == good.revision
    status = src.status()
    assert status.last_attempted_revision == bad
    assert status.last_applied_revision == good.revision
    assert status.error is not None
    assert expected in status.error

    fixed = commit(workloads, {"specs/db.yaml": vm("db")}, "db uses cirros")
    rev = src.fetch()
    assert rev.state is not None
    assert set(rev.state.vms) == {"web", "db", "api"}
    assert src.status().error is None
    assert src.status().last_applied_revision == rev.revision
    assert rev.revision.startswith(f"{fixed}+")


def test_a_commit_that_removes_what_the_store_uses_names_the_store_file(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "inventory"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    commit(repo, {"specs/base.yaml": BASE}, "inventory in git")
    src, store = composite(tmp_path, repo)
    assert src.fetch().state is not None
    store.apply([("mine.yaml", vm("adhoc"))], context=src.git.cached_texts())
    assert src.fetch().state is not None

    git(repo, "rm", "-q", "specs/base.yaml")
    commit(repo, {"specs/hosts.yaml": BASE.split("---\n")[0]}, "types and images moved away")
    rev = src.fetch()
    stored = store.path_for("VirtualMachine", "adhoc")
    assert any(
        e.startswith(f"store {stored}:7: VirtualMachine/adhoc: spec.instanceType: refers to")
        and "InstanceType 'small', which is not defined" in e
        for e in rev.errors
    ), rev.errors
    assert rev.state is not None
    assert set(rev.state.vms) == {"adhoc"}  # the last good commit, merged with the store


def test_no_state_before_the_first_good_merge_and_the_store_stays_live(
    workloads: Path, tmp_path: Path
) -> None:
    src, store = composite(tmp_path, workloads)
    commit(workloads, {"specs/web.yaml": vm("web")}, "web, but no inventory anywhere")
    rev = src.fetch()
    assert rev.state is None
    assert any(
        "which is not defined (no InstanceType is defined at all; looked in git " in e
        for e in rev.errors
    ), rev.errors
    # the inventory arrives in the store: the same commit is judged again and accepted
    store.apply([("inventory.yaml", BASE)], context=[])
    rev = src.fetch()
    assert rev.state is not None
    assert set(rev.state.vms) == {"web"}


def test_deleting_from_the_store_what_a_commit_uses_names_the_git_file(
    workloads: Path, tmp_path: Path
) -> None:
    src, store = composite(tmp_path, workloads)
    store.apply([("inventory.yaml", BASE)])
    sha = commit(workloads, {"specs/web.yaml": vm("web")}, "web uses the store's image")
    assert src.fetch().state is not None
    with pytest.raises(SpecValidationError) as refused:
        store.delete([("Image", "cirros")], context=src.git.cached_texts())
    assert (
        f"git {sha[:12]}:specs/web.yaml:4: VirtualMachine/web: spec.image: refers to Image "
        "'cirros', which is not defined" in str(refused.value)
    ), refused.value
    assert store.read("Image", "cirros") is not None
