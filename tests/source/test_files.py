"""`FileSource` (`plan -f`, `reconcile --once -f`): a bad edit is reported with file:line and the
last good revision stays the one applied, as with every other source."""

from __future__ import annotations

from pathlib import Path

from reconciler.source.files import FileSource

from .specs import BASE, vm


def test_files_give_a_revision_and_keep_the_last_good_one(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(BASE + "---\n" + vm("a"))
    src = FileSource([str(tmp_path)])
    good = src.fetch()
    assert good.state is not None
    assert [v.meta.name for v in good.state.vms.values()] == ["a"]
    status = src.status()
    assert (status.kind, status.url) == ("files", str(tmp_path))
    assert status.last_applied_revision == status.last_attempted_revision == good.revision
    assert status.error is None

    spec.write_text(BASE + "---\n" + vm("a", itype="huge"))  # refers to no InstanceType
    bad = src.fetch()
    assert bad.state is None
    assert any("fleet.yaml:" in e and "huge" in e for e in bad.errors), bad.errors
    status = src.status()
    assert status.last_applied_revision == good.revision  # the last good one stays in force
    assert status.last_attempted_revision == bad.revision
    assert status.error is not None
    assert "huge" in status.error

    spec.write_text(BASE + "---\n" + vm("b"))
    again = src.fetch()
    assert again.state is not None
    assert src.status().error is None
    assert src.status().last_applied_revision == again.revision != good.revision


def test_watch_and_refresh_do_nothing(tmp_path: Path) -> None:
    calls: list[int] = []
    src = FileSource([str(tmp_path / "none.yaml")])
    src.watch(lambda: calls.append(1))
    src.refresh()
    src.close()
    rev = src.fetch()  # a missing file is an error, never an empty desired state
    assert rev.state is None
    assert rev.errors
    assert calls == []
