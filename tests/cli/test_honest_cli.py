"""Honest answers and kubectl habits, with real `volctl` processes (no lab needed).

- `plan` and `reconcile --once` exit 1 with "cannot plan: ..." when hosts or Ceph are unknown;
- a config with an unknown key is refused with its file:line and a `did you mean`;
- a second `volctl run` on the same store is refused, naming the first one's pid and host,
  and a controller that died leaves no lock behind;
- `get -l` selects on labels and `get -w` prints what a real controller changes;
- `version` prints volctl, the libvirt library and each host's daemon.

Hosts are libvirt's `test:///default` driver, or an address nobody listens on for a host that
is down; Ceph is a conf file that does not exist, which librados reports as unreachable.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from reconciler.cli.completion_cmd import script
from reconciler.cli.main import build_parser, main
from reconciler.lab.proc import free_ports
from tests.source.specs import BASE, vm

ROOT = Path(__file__).resolve().parents[2]
DOWN = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1: connection refused


def host(name: str, uri: str) -> str:
    head = "apiVersion: volctl.io/v1\nkind: Host\n"
    return head + f'metadata: {{name: {name}}}\nspec: {{uri: "{uri}"}}\n'


def labelled_vm(name: str, labels: dict[str, str]) -> str:
    shown = ", ".join(f"{k}: {v}" for k, v in labels.items())
    return vm(name).replace(
        f"metadata: {{name: {name}}}", f"metadata: {{name: {name}, labels: {{{shown}}}}}"
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLCTL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def volctl(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), *args],
        check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env(),
    )  # fmt: skip


def spawn(config: Path, *args: str, out: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), *args],
        stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(),
    )  # fmt: skip


def until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (port,) = free_ports(1)
    path = tmp_path / "volctl.yaml"
    path.write_text(
        f"api: http://127.0.0.1:{port}\nlisten: 127.0.0.1:{port}\n"
        f"store: {tmp_path / 'store'}\nstateDir: {tmp_path / 'state'}\n"
        f"consoleDir: {tmp_path / 'consoles'}\n"
        f"ceph:\n  conf: {tmp_path / 'no-such-ceph.conf'}\n  pool: rbd\n"
    )
    return path


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---- honest plan / reconcile ---------------------------------------------------------------


def test_plan_with_every_host_down_exits_1_and_never_says_no_changes(
    config: Path, tmp_path: Path
) -> None:
    specs = tmp_path / "specs.yaml"
    hosts = host("h1", DOWN) + "---\n" + host("h2", DOWN.replace(":1/", ":2/"))
    specs.write_text(hosts + "---\n" + BASE.split("---\n", 1)[1] + "---\n" + vm("web"))
    done = volctl(config, "plan", "-f", str(specs))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No changes" not in done.stdout + done.stderr
    assert "cannot plan:" in done.stderr
    assert "host h1 is unknown" in done.stderr
    assert "host h2 is unknown" in done.stderr
    assert "Ceph pool is unknown" in done.stderr
    as_json = volctl(config, "plan", "-f", str(specs), "-o", "json")
    assert as_json.returncode == 1
    assert as_json.stdout == ""  # no plan document on partial knowledge

    once = volctl(config, "reconcile", "--once", "-f", str(specs), "--log-level", "error")
    assert once.returncode == 1
    assert "cannot plan:" in once.stderr
    assert "host h1 is unknown" in once.stderr


def test_plan_with_hosts_up_but_ceph_unknown_exits_1(config: Path, tmp_path: Path) -> None:
    specs = tmp_path / "specs.yaml"
    specs.write_text(BASE)  # one test:/// host, nothing else: still needs the pool
    # the default installation name is <fsid>/<pool>: without Ceph, whose marked domains
    # are whose cannot be told, so the host is unknown too, and says why
    done = volctl(config, "plan", "-f", str(specs))
    assert done.returncode == 1
    assert "cannot plan: host h1 is unknown: installation name unknown until Ceph" in done.stderr
    assert "Ceph pool is unknown" in done.stderr
    # with `installation:` named in the config the host needs no Ceph
    config.write_text(config.read_text() + "installation: site-a\n")
    done = volctl(config, "plan", "-f", str(specs))
    assert done.returncode == 1
    assert "cannot plan: Ceph pool is unknown" in done.stderr
    assert "host h1" not in done.stderr


# ---- the config is validated ----------------------------------------------------------------


def test_a_config_with_an_unknown_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "volctl.yaml"
    path.write_text(
        "listen: 127.0.0.1:8470\n"
        "apii: http://127.0.0.1:8470\n"
        "ceph:\n"
        "  conf: /etc/ceph/ceph.conf\n"
        "  secretUuid: 5b3c1a2e-8f4d-4c6b-9a7e-2d1f0e3c4b5a\n"
        "git: {url: https://example.com/r.git, interval: soon}\n"
    )
    done = volctl(path, "get", "vms")
    assert done.returncode == 1
    err = done.stderr
    assert "invalid config (3 problems)" in err
    assert f"{path}:2: apii: unknown field; did you mean 'api'?" in err
    assert f"{path}:5: ceph.secretUuid: unknown field; did you mean 'secretUUID'?" in err
    assert f"{path}:6: git.interval: must be a duration such as 30, 30s, 5m or 1h" in err
    for cmd in (("plan",), ("run", "--once"), ("apply", "-f", str(path))):
        assert volctl(path, *cmd).returncode == 1, cmd


def test_a_bad_token_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "volctl.yaml"
    path.write_text("token: 918273645546372819\nwebhook: {token: 1234567890123456789}\n")
    done = volctl(path, "get", "vms")
    assert done.returncode == 1
    assert f"{path}:1: token: must be a non-empty string" in done.stderr
    assert f"{path}:2: webhook.token: must be a non-empty string" in done.stderr
    assert "918273645546372819" not in done.stderr
    assert "1234567890123456789" not in done.stderr


def test_every_key_of_the_documented_config_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "volctl.yaml"
    path.write_text(
        "api: http://127.0.0.1:1\nlisten: 127.0.0.1:8470\ntoken: s3cret\n"
        f"store: {tmp_path / 'store'}\nstateDir: {tmp_path}\nconsoleDir: /var/log/c\n"
        "ceph: {conf: /etc/ceph/ceph.conf, pool: rbd, user: admin,\n"
        "       secretUUID: 5b3c1a2e-8f4d-4c6b-9a7e-2d1f0e3c4b5a, monitors: ['10.0.0.1:6789']}\n"
        "git: {url: https://example.com/r.git, branch: main, path: dc, interval: 5m}\n"
        "cors: {origins: ['https://dash.example.com']}\n"
        "webhook: {tokenFile: /etc/volctl/webhook-token}\n"
    )
    done = volctl(path, "validate", "-f", str(tmp_path / "store"))
    assert "invalid config" not in done.stderr


# ---- one controller per store ---------------------------------------------------------------


def _lock_pid(store: Path) -> int | None:
    try:
        raw = (store / ".volctl-controller.lock").read_text()
    except FileNotFoundError:
        return None
    return int(json.loads(raw)["pid"]) if raw.strip() else None


def test_a_second_controller_on_the_same_store_is_refused(config: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = spawn(config, "run", "--no-api", "--log-level", "error", out=subprocess.DEVNULL)
    try:
        until("the first controller to hold the store", lambda: _lock_pid(store) == first.pid)
        second = volctl(config, "run", "--no-api", timeout=60)
        assert second.returncode == 1
        assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert str(store) in second.stderr
        once = volctl(config, "reconcile", "--once", timeout=60)  # a pass is a controller's work
        assert once.returncode == 1
        assert f"pid {first.pid} on host" in once.stderr
        assert first.poll() is None  # the first one is unaffected
    finally:
        first.kill()  # dies without cleaning up: the kernel releases the flock
        first.wait(timeout=10)
    third = spawn(config, "run", "--no-api", "--log-level", "error", out=subprocess.DEVNULL)
    try:
        until("a new controller to take the store", lambda: _lock_pid(store) == third.pid)
        assert third.poll() is None
    finally:
        stop(third)


# ---- get -l, get -w with a real controller ---------------------------------------------------


@contextmanager
def controller(config: Path, tmp_path: Path) -> Iterator[str]:
    log = (tmp_path / "controller.log").open("w")
    proc = spawn(config, "run", "--resync", "1s", "--log-level", "warning", out=log)
    base = next(line.split(": ", 1)[1] for line in config.read_text().splitlines()
                if line.startswith("api:"))  # fmt: skip
    try:
        until("the first pass", lambda: _get(base, "/readyz"))
        yield base
    finally:
        stop(proc)
        log.close()


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=5) as resp:
        return json.loads(resp.read())


class Lines:
    """The stdout lines of a process, read by a thread (select() on a buffered pipe would miss
    lines already in the buffer)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.queue.put(x) for x in stream], daemon=True).start()

    def next(self, timeout: float) -> str:
        """The next line, or "" after `timeout` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return ""


def _lines_until(
    lines: Lines, done: Callable[[list[str]], bool], timeout: float = 30
) -> list[list[str]]:
    """Rows `proc` prints until one satisfies `done` (that one last)."""
    rows: list[list[str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = lines.next(max(0.1, deadline - time.monotonic()))
        if line.split():
            rows.append(line.split())
            if done(rows[-1]):
                return rows
    raise AssertionError(f"timed out; rows so far: {rows}")


def test_get_selects_on_labels_and_watches_changes(config: Path, tmp_path: Path) -> None:
    specs = tmp_path / "specs.yaml"
    web1 = labelled_vm("web1", {"app": "web", "tier": "front"})
    db1 = labelled_vm("db1", {"app": "db"})
    specs.write_text(BASE + "---\n" + web1 + "---\n" + db1 + "---\n" + vm("plain"))
    assert volctl(config, "apply", "-f", str(specs)).returncode == 0
    with controller(config, tmp_path) as base:
        until("the VMs in status", lambda: len(_get(base, "/api/v1/vms")["items"]) == 3)

        def names(*selector: str) -> list[str]:
            done = volctl(config, "get", "vms", *selector, "-o", "name")
            assert done.returncode == 0, done.stderr
            return done.stdout.split()

        assert names("-l", "app=web") == ["vm/web1"]
        assert names("-l", "app!=web") == ["vm/db1", "vm/plain"]
        assert names("-l", "app") == ["vm/db1", "vm/web1"]
        assert names("-l", "!app") == ["vm/plain"]
        assert names("-l", "app=web,tier=front") == ["vm/web1"]
        assert names("-l", "app=web,tier=back") == []
        bad = volctl(config, "get", "vms", "-l", "app=we b")
        assert bad.returncode == 1
        assert "label selector" in bad.stderr

        watch = spawn(config, "get", "vms", "-l", "app", "-w", "--watch-interval", "0.2")
        try:
            out = Lines(watch)
            header = out.next(30)
            assert header.split()[:2] == ["NAME", "PHASE"]
            first = sorted(out.next(10).split()[0] for _ in range(2))
            assert first == ["db1", "web1"]
            # a new labelled VM appears in the watch; an unlabelled one does not.  (Other
            # rows may change too: with Ceph unknown nothing is created, so the provisional
            # vmids move as names are added.)
            more = labelled_vm("web2", {"app": "web"}) + "---\n" + vm("plain2")
            (tmp_path / "more.yaml").write_text(more)
            assert volctl(config, "apply", "-f", str(tmp_path / "more.yaml")).returncode == 0
            seen = _lines_until(out, lambda cells: cells[0] == "web2")
            assert not [c for c in seen if c[0].startswith("plain")], seen
            # a deleted VM shows once more, as Deleted
            assert volctl(config, "delete", "vm", "db1").returncode == 0
            seen = _lines_until(out, lambda cells: cells[0] == "db1")
            assert seen[-1][:2] == ["db1", "Deleted"], seen
        finally:
            stop(watch)


# ---- version ---------------------------------------------------------------------------------


def test_version_prints_volctl_libvirt_hosts_and_ceph(config: Path, tmp_path: Path) -> None:
    specs = tmp_path / "specs.yaml"
    specs.write_text(BASE + "---\n" + host("h2", DOWN))
    done = volctl(config, "version", "-f", str(specs), "-o", "json", "--timeout", "5")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["volctl"] == "0.1.0"
    assert found["libvirt"].count(".") == 2
    assert found["hosts"]["h1"] == found["libvirt"]  # the test driver is the library itself
    assert found["hosts"]["h2"].startswith("unreachable:")
    assert found["ceph"].startswith("unreachable:")
    client = volctl(config, "version", "--client")
    assert client.returncode == 0
    assert client.stdout.startswith("volctl:   0.1.0\n")
    assert "host/" not in client.stdout


# ---- the help says what the code does -------------------------------------------------------


def test_run_help_shows_defaults_and_takes_durations(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "parallel actions per host (default 4)" in text
    assert "parallel actions overall (default 16)" in text
    assert "(default 15.0s)" in text  # --detach-wait
    assert "git poll interval: seconds or 30s, 5m, 1h (default 60.0s)" in text
    assert "at most --max-passes" in text
    assert "stop after N passes (default 10)" in text
    args = build_parser().parse_args(
        ["run", "--interval", "5m", "--resync", "30s", "--detach-wait", "2", "--max-passes", "3"]
    )
    assert (args.interval, args.resync, args.detach_wait, args.max_passes) == (300.0, 30.0, 2.0, 3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--interval", "soon"])
    assert "'soon' is not a duration" in capsys.readouterr().err


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_offers_the_output_formats_each_command_takes(shell: str) -> None:
    text = script(shell)
    assert "text json" in text  # validate, plan, version
    assert "table wide json yaml name" in text  # get only
    assert " version " in text
    assert "--selector" in text
