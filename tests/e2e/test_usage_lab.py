"""How people use volctl, end to end on the real lab: `volctl run` as a subprocess,
`volctl apply --wait`, the seed's endpoints over real HTTP, `get`/`describe`/`delete`, and
GitOps with a real git repository (commit, broken commit, fix).  Every check that matters is
also made against libvirt itself, not only against what the REST view claims."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import libvirt

from reconciler.lab.guest_image import READY_LINE
from reconciler.lab.testing import LabPool, wait_console

ROOT = Path(__file__).resolve().parents[2]
CONVERGE = 240


def http(base: str, path: str, method: str = "GET") -> tuple[int, Any]:
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, _body(resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as err:
        return err.code, _body(err.read(), err.headers.get("Content-Type", ""))


def _body(raw: bytes, ctype: str) -> Any:
    return json.loads(raw) if ctype.startswith("application/json") else raw.decode()


def until(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; last={last!r}\n{tail}")


def volctl(pool: LabPool, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path), *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=CONVERGE + 60,
        cwd=ROOT,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLCTL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def controller(pool: LabPool, *extra: str) -> Iterator[tuple[str, Path]]:
    """`volctl run` as the user starts it; yields (REST base URL, its log file)."""
    log = pool.root / "controller.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path),
             "run", "--resync", "5", *extra],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(),
        )  # fmt: skip
    base = pool.config.api.rstrip("/")
    try:
        until("the REST view", lambda: http(base, "/healthz")[0] == 200, 60, log)
        until("the first pass", lambda: http(base, "/readyz")[0] == 200, 120, log)
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def domain_state(pool: LabPool, name: str) -> dict[str, int]:
    """{host name: libvirt state} of domain `name` on every lab host, straight from libvirt."""
    out: dict[str, int] = {}
    for host in pool.info.hosts:
        conn = libvirt.open(host.uri)
        try:
            with suppress(libvirt.libvirtError):
                out[host.name] = conn.lookupByName(name).state()[0]
        finally:
            conn.close()
    return out


def vm_doc(name: str, itype: str = "small") -> str:
    return (
        f"apiVersion: volctl.io/v1\nkind: VirtualMachine\nmetadata:\n  name: {name}\n"
        f"spec:\n  instanceType: {itype}\n  image: lab-base\n"
    )


VOLUME = """\
apiVersion: volctl.io/v1
kind: Volume
metadata:
  name: data_1
spec:
  size: 1
---
apiVersion: volctl.io/v1
kind: VolumeAttachment
metadata:
  name: data_1-on-test_vm
spec:
  volume: data_1
  vm: test_vm
"""


def test_apply_wait_seed_endpoints_get_describe_delete(lab_pool: LabPool, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(lab_pool.info.inventory_path, specs / "inventory.yaml")
    (specs / "app.yaml").write_text(vm_doc("test_vm") + "---\n" + VOLUME)

    # invalid input: nothing is written, the user's file:line is named
    bad = volctl(lab_pool, "apply", "-f", "-", stdin=vm_doc("oops", itype="huge"))
    assert bad.returncode == 1
    assert "<stdin>:" in bad.stderr
    assert "huge" in bad.stderr
    assert not list((lab_pool.root / "store").rglob("*.yaml"))

    # --dry-run: what would be created, and the plan against the live lab; nothing written
    dry = volctl(lab_pool, "apply", "-f", str(specs), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "vm/test_vm created (dry run)" in dry.stdout
    assert "plan against the live world" in dry.stdout
    assert "vm/test_vm" in dry.stdout.split("plan against the live world")[1]
    assert "to change, 0 to destroy." in dry.stdout
    assert not list((lab_pool.root / "store").rglob("*.yaml"))

    with controller(lab_pool) as (base, log):
        done = volctl(lab_pool, "apply", "-f", str(specs), "--wait", "--timeout", f"{CONVERGE}s")
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()[-3000:]
        assert "vm/test_vm created" in done.stdout
        assert "attachment/data_1-on-test_vm created" in done.stdout
        assert "all " in done.stdout

        vm = http(base, "/api/v1/vms/test_vm")[1]
        assert vm["phase"] == "Ready"
        host = vm["host"]
        assert domain_state(lab_pool, "test_vm") == {host: libvirt.VIR_DOMAIN_RUNNING}

        # the seed's query API, with the seed's shapes
        vmid = vm["ids"]["vmid"]
        status, body = http(base, f"/vm/query?vmid={vmid}")
        assert status == 200
        assert body == {"vmid": vmid, "name": "test_vm", "instance_type": 1, "pmid": vm["pmid"]}
        assert vm["pmid"] == int(host.removeprefix("h"))
        assert http(base, "/vm/types") == (
            200,
            {"types": [{"tid": 1, "cpu": 1, "ram": 512, "disk": 1},
                       {"tid": 2, "cpu": 2, "ram": 1024, "disk": 2},
                       {"tid": 3, "cpu": 4, "ram": 2048, "disk": 3}]},
        )  # fmt: skip
        assert http(base, "/image/list") == (200, {"images": [{"id": 1, "name": "lab-base"}]})
        volid = http(base, "/api/v1/volumes/data_1")[1]["ids"]["volumeid"]
        assert http(base, f"/volume/query?volumeid={volid}") == (
            200,
            {"volumeid": volid, "name": "data_1", "size": 1, "status": "attached", "vmid": vmid},
        )
        assert http(base, "/volume/query?volumeid=987654") == (
            404,
            {"error": "volumeid : 987654 does not exist"},
        )
        assert http(base, "/vm/query?vmid=x")[0] == 400
        status, body = http(base, "/vm/create", method="POST")
        assert status == 405
        assert "volctl apply -f" in body["error"]
        metrics = http(base, "/metrics")[1]
        assert 'volctl_resources{kind="VirtualMachine",phase="Ready"} 1.0' in metrics.splitlines()
        assert f'volctl_host_reachable{{host="{host}"' in metrics

        # kubectl-like reading
        got = volctl(lab_pool, "get", "vms")
        assert got.returncode == 0
        row = next(line for line in got.stdout.splitlines() if line.startswith("test_vm "))
        assert row.split()[1:4] == ["Ready", host, str(vmid)]
        as_json = json.loads(volctl(lab_pool, "get", "volume", "data_1", "-o", "json").stdout)
        assert as_json["attachedTo"] == "test_vm"
        described = volctl(lab_pool, "describe", "vm", "test_vm")
        assert described.returncode == 0
        assert "Conditions:" in described.stdout
        assert "instanceType: small" in described.stdout
        hosts = volctl(lab_pool, "get", "hosts").stdout
        assert "h1" in hosts
        assert "h2" in hosts

        # idempotent re-apply, diff exit codes
        again = volctl(lab_pool, "apply", "-f", str(specs))
        assert "vm/test_vm unchanged" in again.stdout
        assert volctl(lab_pool, "diff", "-f", str(specs)).returncode == 0
        changed = volctl(lab_pool, "diff", "-f", "-", stdin=VOLUME.replace("size: 1", "size: 2"))
        assert changed.returncode == 1
        assert "+  size: 2" in changed.stdout

        # delete the attachment: the controller detaches, the seed view says available.
        # A virtio unplug needs the guest's cooperation, so wait until it has booted (a user
        # deleting an attachment seconds after boot would just wait longer).
        wait_console(Path(lab_pool.config.console_dir) / "test_vm+console.log", READY_LINE, 120)
        gone = volctl(lab_pool, "delete", "attachment", "data_1-on-test_vm")
        assert gone.returncode == 0, gone.stderr
        until(
            "the volume to be available",
            lambda: http(base, f"/volume/query?volumeid={volid}")[1]["status"] == "available",
            CONVERGE,
            log,
        )
        assert "data_1" not in _disks_of(lab_pool, host, "test_vm")

        # secrets stay secret: the cephx key is in no REST answer, CLI output or log line
        user = f"client.{lab_pool.info.ceph_user}"
        key = subprocess.run(
            ["ceph", "-c", lab_pool.info.ceph_conf, "auth", "get-key", user],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        assert len(key) > 20
        seen = [
            json.dumps(http(base, path)[1])
            for path in ("/api/v1/snapshot", "/api/v1/hosts", "/api/v1/source", "/metrics")
        ]
        seen += [described.stdout, volctl(lab_pool, "get", "vms", "-o", "yaml").stdout]
        seen.append(log.read_text())
        assert all(key not in text for text in seen)


def _disks_of(pool: LabPool, host: str, name: str) -> str:
    uri = next(h.uri for h in pool.info.hosts if h.name == host)
    conn = libvirt.open(uri)
    try:
        return str(conn.lookupByName(name).XMLDesc(0))
    finally:
        conn.close()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_gitops_commit_broken_fix_on_the_lab(lab_pool: LabPool, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ops@example.com")
    git(repo, "config", "user.name", "ops")
    inventory = Path(lab_pool.info.inventory_path).read_text()
    first = commit(repo, {"dc/inventory.yaml": inventory, "dc/vms/git_vm.yaml": vm_doc("git_vm")},
                   "inventory and one VM")  # fmt: skip
    url = f"file://{repo}"

    with controller(lab_pool, "--git", url, "--path", "dc", "--interval", "1") as (base, log):
        until("git_vm Ready", lambda: http(base, "/api/v1/vms/git_vm")[1].get("phase") == "Ready",
              CONVERGE, log)  # fmt: skip
        src = http(base, "/api/v1/source")[1]
        assert src["kind"] == "git"
        assert src["url"] == url
        assert src["lastAppliedRevision"].startswith(first)
        assert src["owned"]["vm/git_vm"] == "dc/vms/git_vm.yaml:1"
        assert list(domain_state(lab_pool, "git_vm").values()) == [libvirt.VIR_DOMAIN_RUNNING]

        described = volctl(lab_pool, "describe", "vm", "git_vm").stdout
        assert f"Defined in:   git repo {url}" in described
        assert "dc/vms/git_vm.yaml:1" in described

        # apply of a git-owned resource is refused, naming the repo and the path
        refused = volctl(lab_pool, "apply", "-f", "-", stdin=vm_doc("git_vm", itype="medium"))
        assert refused.returncode == 1
        assert url in refused.stderr
        assert "dc/vms/git_vm.yaml:1" in refused.stderr

        # a broken commit: rejected as a whole, with commit, file and line; nothing changes
        broken = commit(
            repo,
            {"dc/vms/db_vm.yaml": vm_doc("db_vm", itype="xxl"),
             "dc/vms/git_vm.yaml": vm_doc("git_vm", itype="medium")},
            "broken",
        )  # fmt: skip
        src = until(
            "the broken commit to be rejected",
            lambda: (s := http(base, "/api/v1/source")[1])["lastAttemptedRevision"] == broken and s,
            60,
            log,
        )
        assert src["lastAppliedRevision"].startswith(first)
        assert f"git {broken[:12]}:dc/vms/db_vm.yaml:" in src["error"]
        assert "xxl" in src["error"]
        time.sleep(3)  # a few passes with the bad commit in place
        assert http(base, "/api/v1/vms/db_vm")[0] == 404
        assert domain_state(lab_pool, "db_vm") == {}
        assert http(base, "/api/v1/vms/git_vm")[1]["instanceType"] == "small"
        assert "volctl_source_error 1.0" in http(base, "/metrics")[1].splitlines()

        # the fix converges
        fixed = commit(repo, {"dc/vms/db_vm.yaml": vm_doc("db_vm")}, "fix")
        until("db_vm Ready", lambda: http(base, "/api/v1/vms/db_vm")[1].get("phase") == "Ready",
              CONVERGE, log)  # fmt: skip
        src = http(base, "/api/v1/source")[1]
        assert src["lastAppliedRevision"].startswith(fixed)
        assert src["error"] is None
        assert list(domain_state(lab_pool, "db_vm").values()) == [libvirt.VIR_DOMAIN_RUNNING]
        assert f'revision="{fixed}' in http(base, "/metrics")[1]
