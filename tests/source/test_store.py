"""The `volctl apply` spec store on a real directory: atomic per-resource files, validation
before any write, ownership refusal, revisions, and the watchdog trigger."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.store import SpecStore

from .specs import BASE, attachment, vm, volume


def test_apply_writes_one_file_per_resource_and_reports_each(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    res = store.apply([("in.yaml", BASE + "---\n" + vm("test_vm"))])
    assert res == [
        ("host/h1", "created"),
        ("instancetype/small", "created"),
        ("image/cirros", "created"),
        ("vm/test_vm", "created"),
    ]
    assert (tmp_path / "store/virtualmachine/test_vm.yaml").is_file()
    assert (tmp_path / "store/host/h1.yaml").is_file()
    again = store.apply([("in.yaml", vm("test_vm"))])
    assert again == [("vm/test_vm", "unchanged")]
    changed = store.apply([("in.yaml", "# a comment\n" + vm("test_vm"))])
    assert changed == [("vm/test_vm", "unchanged")]  # comments do not count
    rev = store.fetch()
    assert rev.state is not None
    assert set(rev.state.vms) == {"test_vm"}
    assert rev.state.revision == rev.revision


def test_invalid_apply_writes_nothing_and_names_the_users_file_and_line(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("base.yaml", BASE)])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    bad = vm("ok_vm") + "---\n" + vm("bad_vm", itype="huge")
    with pytest.raises(SpecValidationError) as err:
        store.apply([("mine.yaml", bad)])
    text = str(err.value)
    assert "mine.yaml:" in text
    assert "huge" in text
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml")) == before


def test_references_resolve_against_what_is_already_stored(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("base.yaml", BASE)])
    res = store.apply(
        [("more.yaml", vm("a") + "---\n" + volume("v") + "---\n" + attachment("a-v", "v", "a"))]
    )
    assert [r for _, r in res] == ["created"] * 3
    # changing one resource rewrites only its own file
    other = (tmp_path / "store/volume/v.yaml").stat().st_mtime_ns
    assert store.apply([("x.yaml", vm("a", itype="small"))]) == [("vm/a", "unchanged")]
    store.apply([("x.yaml", volume("v", size=3))])
    assert (tmp_path / "store/virtualmachine/a.yaml").read_text().count("instanceType") == 1
    assert (tmp_path / "store/volume/v.yaml").stat().st_mtime_ns >= other
    assert "size: 3" in (tmp_path / "store/volume/v.yaml").read_text()


def test_git_owned_resources_are_refused(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    with pytest.raises(SpecValidationError) as err:
        store.apply(
            [("in.yaml", BASE)],
            owned={"image/cirros": "specs/images.yaml:3"},
            owner="git repo file:///srv/repo",
        )
    assert "file:///srv/repo" in str(err.value)
    assert "specs/images.yaml:3" in str(err.value)
    assert not list(tmp_path.rglob("*.yaml"))


def test_delete_refuses_to_leave_dangling_references(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("in.yaml", BASE + "---\n" + vm("a"))])
    with pytest.raises(SpecValidationError):
        store.delete([("InstanceType", "small")])
    assert (tmp_path / "store/instancetype/small.yaml").is_file()
    assert store.delete([("VirtualMachine", "a"), ("VirtualMachine", "nope")]) == ["vm/a"]
    assert not (tmp_path / "store/virtualmachine").exists()
    rev = store.fetch()
    assert rev.state is not None
    assert not rev.state.vms


def test_concurrent_applies_never_lose_or_tear_a_file(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("base.yaml", BASE)])
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                SpecStore(tmp_path / "store").apply([(f"w{i}.yaml", vm(f"vm{i}_{j}"))])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rev = store.fetch()
    assert rev.state is not None
    assert len(rev.state.vms) == 20
    assert not list((tmp_path / "store").rglob(".*.tmp"))


def test_revision_changes_with_content_and_broken_store_is_rejected(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("in.yaml", BASE)])
    first = store.fetch()
    assert first.state is not None
    assert store.fetch().revision == first.revision
    (tmp_path / "store/virtualmachine").mkdir()
    (tmp_path / "store/virtualmachine/hand.yaml").write_text(vm("hand", itype="nope"))
    broken = store.fetch()
    assert broken.state is None
    assert broken.revision != first.revision
    assert any("hand.yaml:" in e for e in broken.errors)
    status = store.status()
    assert status.last_applied_revision == first.revision
    assert status.last_attempted_revision == broken.revision
    assert status.error
    assert "hand.yaml" in status.error


def test_watch_fires_debounced_on_changes_but_not_on_temp_files(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store", debounce=0.2)
    store.root.mkdir(parents=True)
    fired = threading.Event()
    count = [0]

    def on_change() -> None:
        count[0] += 1
        fired.set()

    store.watch(on_change)
    try:
        time.sleep(0.2)
        (store.root / ".scratch.tmp").write_text("x")
        time.sleep(0.6)
        assert count[0] == 0
        store.apply([("in.yaml", BASE)])  # three files in a burst -> one call
        assert fired.wait(5)
        time.sleep(0.5)
        assert count[0] == 1
    finally:
        store.close()


def test_a_fetch_during_an_apply_reads_all_of_it_not_the_first_files(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "store")
    store.apply([("base.yaml", BASE)])
    first_written = threading.Event()
    write = store.write

    def slow_write(kind: str, name: str, text: str) -> str:
        result = write(kind, name, text)
        first_written.set()
        time.sleep(0.1)  # a loaded machine: the files of one apply land far apart
        return result

    store.write = slow_write  # type: ignore[method-assign]
    docs = "---\n".join(vm(f"vm{i}") for i in range(5))
    applier = threading.Thread(target=store.apply, args=([("fleet.yaml", docs)],))
    applier.start()
    assert first_written.wait(5)
    rev = store.fetch()  # the controller's fetch, while the apply is half way
    applier.join()
    assert rev.state is not None
    assert set(rev.state.vms) == {f"vm{i}" for i in range(5)}
    assert rev.revision == store.fetch().revision


def test_a_commit_of_ours_fires_at_once_and_a_hand_edit_waits_for_quiet(tmp_path: Path) -> None:
    """`apply` and `delete` end with the commit marker: the watch fires without waiting out
    the debounce (an hour here), and only once.  A file written by anything else still waits
    for the files to be quiet (an editor may rename the old file away before writing)."""
    store = SpecStore(tmp_path / "store", debounce=3600)
    store.root.mkdir(parents=True)
    calls: list[float] = []
    fired = threading.Event()

    def on_change() -> None:
        calls.append(time.monotonic())
        fired.set()

    store.watch(on_change)
    try:
        time.sleep(0.2)
        store.apply([("in.yaml", BASE)])
        assert fired.wait(10), "the commit did not fire the watch"
        fired.clear()
        store.delete([("InstanceType", "small")])
        assert fired.wait(10), "the commit of a delete did not fire the watch"
        time.sleep(0.5)
        assert len(calls) == 2
        (store.root / "host" / "h2.yaml").write_text((store.root / "host/h1.yaml").read_text())
        time.sleep(1.0)
        assert len(calls) == 2  # a hand edit waits for the (hour-long) quiet period
    finally:
        store.close()


def test_a_fetch_waits_for_the_writer_and_sees_its_whole_change(tmp_path: Path) -> None:
    """The controller's read takes the lock shared: while a writer holds it, the read waits,
    and then sees every file of the change, never a part of it."""
    store = SpecStore(tmp_path / "store")
    store.apply([("in.yaml", BASE)])
    first = store.fetch()
    assert first.state is not None
    got: list[object] = []
    with store.locked():
        reader = threading.Thread(target=lambda: got.append(store.fetch()))
        reader.start()
        # a change in two steps; a read between them would see a VM without its volume
        store.write("Volume", "data", volume("data"))
        reader.join(0.5)
        assert reader.is_alive()
        assert not got
        store.write("VirtualMachine", "test_vm", vm("test_vm"))
        store.write("VolumeAttachment", "data", attachment("data", "data", "test_vm"))
    reader.join(10)
    (rev,) = got
    assert isinstance(rev, type(first))
    assert rev.state is not None
    assert set(rev.state.vms) == {"test_vm"}
    assert set(rev.state.attachments) == {"data"}


def test_a_fetch_of_unchanged_texts_reuses_the_last_verdict(tmp_path: Path) -> None:
    """The revision is a digest of every text: the same revision is not loaded again (the
    same DesiredState object comes back), a changed one is, and a bad one stays rejected."""
    store = SpecStore(tmp_path / "store")
    store.apply([("in.yaml", BASE)])
    first, again = store.fetch(), store.fetch()
    assert first.state is not None
    assert again.state is first.state
    assert again.revision == first.revision
    store.apply([("v.yaml", volume("data"))])
    changed = store.fetch()
    assert changed.state is not first.state
    assert changed.state is not None
    assert set(changed.state.volumes) == {"data"}
    (store.root / "volume" / "bad.yaml").write_text("apiVersion: volctl.io/v1\nkind: Volume\n")
    bad, bad_again = store.fetch(), store.fetch()
    assert bad.state is None
    assert bad_again.state is None
    assert bad_again.errors == bad.errors
    assert store.status().error
