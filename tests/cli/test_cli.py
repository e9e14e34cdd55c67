"""The kubectl-like commands in-process (`main([...])`): exit codes, what they print, what
they write to the store, and how they read the REST view of a server fed hand-built
snapshots (the REST view's real input)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.api.server import ApiServer, serve
from reconciler.cli.completion_cmd import script
from reconciler.cli.main import main
from reconciler.source.protocol import SourceStatus
from reconciler.source.store import SpecStore
from reconciler.status.types import Phase, Snapshot
from tests.api.snapshots import world
from tests.source.specs import BASE, attachment, vm, volume


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("VOLCTL_CONFIG", "VOLCTL_API", "VOLCTL_TOKEN", "VOLCTL_STORE"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text(
        f"api: http://127.0.0.1:1\nstore: {tmp_path / 'store'}\nstateDir: {tmp_path / 'state'}\n"
    )
    monkeypatch.setenv("VOLCTL_CONFIG", str(cfg))
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_apply_created_unchanged_configured(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(env / "a.yaml", BASE + "---\n" + vm("test_vm"))
    assert main(["apply", "-f", f]) == 0
    out = capsys.readouterr().out
    assert "vm/test_vm created" in out
    assert "instancetype/small created" in out
    assert main(["apply", "-f", f]) == 0
    assert "vm/test_vm unchanged" in capsys.readouterr().out
    running_false = vm("test_vm").replace("image: cirros}", "image: cirros, running: false}")
    f2 = write(env / "b.yaml", running_false)
    assert main(["apply", "-f", f2]) == 0
    assert "vm/test_vm configured" in capsys.readouterr().out
    assert "running: false" in (env / "store/virtualmachine/test_vm.yaml").read_text()


def test_apply_invalid_writes_nothing_and_exits_1(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(env / "bad.yaml", BASE + "---\n" + vm("a") + "---\n" + volume("v", size=-1))
    assert main(["apply", "-f", f]) == 1
    err = capsys.readouterr().err
    assert f"{f}:" in err
    assert "nothing was applied" in err
    assert not (env / "store").exists() or not list((env / "store").rglob("*.yaml"))


def test_apply_dry_run_writes_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(env / "a.yaml", BASE)
    assert main(["apply", "-f", f, "--dry-run"]) == 0
    assert "host/h1 created (dry run)" in capsys.readouterr().out
    assert not list((env / "store").rglob("*.yaml")) if (env / "store").exists() else True


def test_diff_exit_codes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(env / "a.yaml", BASE + "---\n" + volume("v", size=1))
    assert main(["diff", "-f", f]) == 1  # everything is new
    assert main(["apply", "-f", f]) == 0
    capsys.readouterr()
    assert main(["diff", "-f", f]) == 0
    assert capsys.readouterr().out == ""
    g = write(env / "g.yaml", volume("v", size=4))
    assert main(["diff", "-f", g]) == 1
    out = capsys.readouterr().out
    assert "-  size: 1" in out
    assert "+  size: 4" in out
    h = write(env / "h.yaml", vm("x", itype="nope"))
    assert main(["diff", "-f", h]) == 2


def test_delete_by_name_and_by_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(env / "a.yaml", BASE + "---\n" + vm("a") + "---\n" + volume("v") + "---\n"
              + attachment("v-a", "v", "a"))  # fmt: skip
    assert main(["apply", "-f", f]) == 0
    assert main(["delete", "vm", "a"]) == 1  # the attachment still refers to it
    assert "nothing was deleted" in capsys.readouterr().err
    assert main(["delete", "attachment/v-a", "vm/a"]) == 0
    assert capsys.readouterr().out.splitlines() == ["attachment/v-a deleted", "vm/a deleted"]
    assert main(["delete", "vm", "a"]) == 1
    assert "not found" in capsys.readouterr().err
    v = write(env / "v.yaml", volume("v"))
    assert main(["delete", "-f", v]) == 0
    assert not (env / "store/volume/v.yaml").exists()
    assert main(["delete", "bogus", "x"]) == 1


def test_unreachable_controller_is_a_clear_error(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "vms"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the volctl controller at http://127.0.0.1:1" in err
    assert "volctl run" in err
    assert "VOLCTL_API" in err


@pytest.fixture
def api(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ApiServer, dict[str, Snapshot]]]:
    state = {"snap": world()}
    srv = serve(lambda: state["snap"], listen="127.0.0.1:0", token="t0k")
    monkeypatch.setenv("VOLCTL_API", srv.url)
    monkeypatch.setenv("VOLCTL_TOKEN", "t0k")
    yield srv, state
    srv.stop()


def test_get_and_describe_read_the_rest_view(
    api: tuple[ApiServer, dict[str, Snapshot]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "vms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "HOST", "VMID", "TYPE", "AGE"]
    assert lines[2].split()[:5] == ["test_vm", "Ready", "h1", "100", "small"]
    assert main(["get", "vm", "pending_vm", "-o", "wide"]) == 0
    assert "no host has 64 free vCPUs" in capsys.readouterr().out
    assert main(["get", "volumes", "-o", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert {i["name"]: i["attachedTo"] for i in items} == {"data1": "test_vm", "spare": None}
    assert main(["get", "hosts"]) == 0
    out = capsys.readouterr().out
    assert "1+1/4" in out
    assert "Unknown" in out
    assert main(["get", "types", "-o", "name"]) == 0
    assert capsys.readouterr().out.split() == ["instancetype/large", "instancetype/small"]
    assert main(["get", "vm", "nope"]) == 1
    capsys.readouterr()
    assert main(["describe", "vm", "test_vm"]) == 0
    out = capsys.readouterr().out
    assert "Phase:        Ready" in out
    assert "vmid=100" in out
    assert "Conditions:" in out
    assert "Created" in out  # its event


def test_apply_wait_follows_the_rest_view(
    api: tuple[ApiServer, dict[str, Snapshot]],
    env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, state = api
    store = SpecStore(env / "store")
    f = write(env / "a.yaml", BASE + "---\n" + vm("test_vm"))
    # the controller has applied exactly what apply wrote: test_vm is Ready
    store.apply([("a.yaml", BASE + "---\n" + vm("test_vm"))])
    rev = store.revision_of(store.texts())
    src = SourceStatus("store", str(store.root), last_applied_revision=rev)
    state["snap"] = replace(world(), source=src)
    assert main(["apply", "-f", f, "--wait", "--timeout", "10s"]) == 0
    assert "test_vm Ready on h1" in capsys.readouterr().out

    # a VM the controller reports as Unschedulable fails the wait at once
    g = write(env / "g.yaml", vm("pending_vm"))
    store.apply([("g.yaml", vm("pending_vm"))])
    rev = store.revision_of(store.texts())
    state["snap"] = replace(world(), source=replace(src, last_applied_revision=rev))
    assert main(["apply", "-f", g, "--wait", "--timeout", "10s"]) == 1
    assert "pending_vm failed" in capsys.readouterr().err

    # the controller never catches up -> timeout, non-zero
    h = write(env / "h.yaml", vm("later"))
    assert main(["apply", "-f", h, "--wait", "--timeout", "2s"]) == 1
    assert "timed out" in capsys.readouterr().err


def test_apply_refuses_git_owned_resources(
    api: tuple[ApiServer, dict[str, Snapshot]], env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # world() says git repo file:///srv/repo owns vm/web (specs/web.yaml:1)
    f = write(env / "a.yaml", BASE + "---\n" + vm("web"))
    assert main(["apply", "-f", f]) == 1
    err = capsys.readouterr().err
    assert "file:///srv/repo" in err
    assert "specs/web.yaml:1" in err
    assert not (env / "store").exists() or not list((env / "store").rglob("*.yaml"))
    assert main(["delete", "vm", "web"]) == 1
    assert "file:///srv/repo" in capsys.readouterr().err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_parse(shell: str, tmp_path: Path) -> None:
    path = tmp_path / f"c.{shell}"
    path.write_text(script(shell))
    exe = "/bin/bash" if shell == "bash" else "/usr/bin/zsh"
    if not Path(exe).exists():
        exe = "/bin/bash"
        assert "compdef _volctl volctl" in script(shell)
        return
    assert subprocess.run([exe, "-n", str(path)], check=False).returncode == 0
    assert "vms volumes attachments hosts images types" in script(shell)


def test_phase_snapshot_sanity() -> None:
    assert world().resources["vm/test_vm"].phase is Phase.READY


def test_apply_wait_is_woken_by_the_pass_that_publishes_status(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`apply --wait` long-polls: after its first look it sends one request that the server
    holds until the controller publishes the next snapshot, and that answer ends the wait.
    A client polling every second would have asked four times in the 3 s the status stood
    still; this one has one request in flight across the publication, woken by it."""
    import threading
    import time

    from reconciler.status.store import StatusStore

    store = SpecStore(env / "store")
    f = write(env / "a.yaml", BASE + "---\n" + vm("test_vm"))
    old = SourceStatus("store", str(store.root), last_applied_revision="0ld")
    status = StatusStore(replace(world(), generation=5, source=old))
    waits: list[tuple[float, float, bool]] = []  # (entered, left, woken by a publication)

    def wait_fn(generation: int, timeout: float) -> object:
        entered = time.monotonic()
        snap = status.wait_newer(generation, timeout)
        waits.append((entered, time.monotonic(), snap is not None))
        return snap

    srv = serve(status.snapshot, listen="127.0.0.1:0", wait_fn=wait_fn)
    monkeypatch.setenv("VOLCTL_API", srv.url)
    codes: list[int] = []
    waiter = threading.Thread(
        target=lambda: codes.append(main(["apply", "-f", f, "--wait", "--timeout", "60s"]))
    )
    try:
        waiter.start()
        time.sleep(3.0)
        assert waiter.is_alive()  # nothing published yet: still waiting
        rev = store.revision_of(store.texts())
        published = time.monotonic()
        new = replace(old, last_applied_revision=rev)
        status.publish(replace(world(), generation=6, source=new))
        waiter.join(30)
    finally:
        srv.stop()
    assert codes == [0]
    assert "test_vm Ready on h1" in capsys.readouterr().out
    assert len(waits) == 1, waits  # one long poll, not a request a second
    entered, left, woken = waits[0]
    assert entered < published <= left
    assert woken
