"""The REST view over real HTTP (urllib against a running server), fed hand-built snapshots:
the seed's shapes and status codes, /api/v1, probes, metrics and bearer-token auth."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.api.server import ApiServer, parse_listen, serve
from reconciler.status.types import Phase, Snapshot

from .snapshots import ready, world


def call(
    server: ApiServer, path: str, *, method: str = "GET", token: str | None = None
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(server.url + path, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if method in {"POST", "PUT"}:
        req.data = b"{}"
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, dict(err.headers), err.read()
    ctype = headers.get("Content-Type", "")
    body = json.loads(raw) if ctype.startswith("application/json") else raw.decode()
    return status, headers, body


@pytest.fixture(scope="module")
def state() -> dict[str, Snapshot]:
    return {"snap": world()}


@pytest.fixture(autouse=True)
def _fresh(state: dict[str, Snapshot]) -> None:
    state["snap"] = world()


@pytest.fixture(scope="module")
def server(state: dict[str, Snapshot]) -> Iterator[ApiServer]:
    srv = serve(lambda: state["snap"], listen="127.0.0.1:0")
    yield srv
    srv.stop()


def test_binds_loopback_by_default() -> None:
    assert parse_listen("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)


def test_seed_vm_query(server: ApiServer) -> None:
    assert call(server, "/vm/query?vmid=100")[::2] == (
        200,
        {"vmid": 100, "name": "test_vm", "instance_type": 1, "pmid": 1},
    )
    # tid resolved through the instance type when the VM's ids lack it
    assert call(server, "/vm/query?vmid=101")[2]["instance_type"] == 3
    assert call(server, "/vm/query?vmid=999")[::2] == (404, {"error": "vmid : 999 does not exist"})


@pytest.mark.parametrize(
    "path",
    [
        "/vm/query",
        "/vm/query?vmid=",
        "/vm/query?vmid=abc",
        "/vm/query?vmid=-1",
        "/vm/query?vmid=1&vmid=2",
        "/volume/query?volumeid=1.5",
        "/volume/query?id=1",
    ],
)
def test_bad_parameters_are_400_json(server: ApiServer, path: str) -> None:
    status, _, body = call(server, path)
    assert status == 400
    assert set(body) == {"error"}


def test_seed_types_and_images(server: ApiServer) -> None:
    assert call(server, "/vm/types")[::2] == (
        200,
        {
            "types": [
                {"tid": 1, "cpu": 1, "ram": 512, "disk": 1},
                {"tid": 3, "cpu": 4, "ram": 4096, "disk": 8},
            ]
        },
    )
    assert call(server, "/image/list")[::2] == (
        200,
        {"images": [{"id": 2, "name": "debian"}, {"id": 7, "name": "cirros"}]},
    )


def test_seed_volume_query(server: ApiServer) -> None:
    assert call(server, "/volume/query?volumeid=500")[2] == {
        "volumeid": 500,
        "name": "data1",
        "size": 2,
        "status": "attached",
        "vmid": 100,
    }
    assert call(server, "/volume/query?volumeid=501")[2] == {
        "volumeid": 501,
        "name": "spare",
        "size": 5,
        "status": "available",
    }
    assert call(server, "/volume/query?volumeid=7")[::2] == (
        404,
        {"error": "volumeid : 7 does not exist"},
    )


def test_seed_volume_query_released_volume_reports_its_rbd_size(
    server: ApiServer, state: dict[str, Snapshot]
) -> None:
    released = ready(
        "Volume",
        "old",
        phase=Phase.RELEASED,
        ids={"volumeid": 502},
        details={"sizeBytes": str(3 << 30), "reclaimPolicy": "Retain"},
    )
    snap = state["snap"]
    state["snap"] = replace(snap, resources={**snap.resources, "volume/old": released})
    assert call(server, "/volume/query?volumeid=502")[::2] == (
        200,
        {"volumeid": 502, "name": "old", "size": 3, "status": "available"},
    )


@pytest.mark.parametrize(
    "path",
    [
        "/vm/create",
        "/vm/destroy",
        "/volume/create",
        "/volume/destroy",
        "/volume/attach",
        "/volume/detach",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_mutating_seed_endpoints_explain_the_declarative_way(
    server: ApiServer, path: str, method: str
) -> None:
    status, _, body = call(server, path + "?vmid=1", method=method)
    assert status == 405
    assert "volctl apply -f" in body["error"]
    assert "GitOps" in body["error"]


def test_api_v1_answers_follow_each_new_snapshot(
    server: ApiServer, state: dict[str, Snapshot]
) -> None:
    first = call(server, "/api/v1/vms")
    assert call(server, "/api/v1/vms") == first  # same snapshot, same answer
    snap = state["snap"]
    state["snap"] = replace(
        snap, resources={k: v for k, v in snap.resources.items() if k != "vm/web"}
    )
    status, headers, body = call(server, "/api/v1/vms")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert [i["name"] for i in body["items"]] == ["pending_vm", "test_vm"]
    assert call(server, "/api/v1/vms/web")[0] == 404


def test_api_v1_collections_and_items(server: ApiServer) -> None:
    status, _, body = call(server, "/api/v1/vms")
    assert status == 200
    names = [i["name"] for i in body["items"]]
    assert names == ["pending_vm", "test_vm", "web"]
    vm = call(server, "/api/v1/vms/test_vm")[2]
    assert vm["phase"] == "Ready"
    assert vm["host"] == "h1"
    assert vm["ids"]["vmid"] == 100
    assert vm["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "Converged",
        "message": "",
        "lastTransitionTime": 100.0,
    }
    assert vm["events"][0]["reason"] == "Created"
    assert call(server, "/api/v1/vms/pending_vm")[2]["lastError"] == "no host has 64 free vCPUs"
    assert call(server, "/api/v1/vms/nope")[0] == 404
    assert call(server, "/api/v1/volumes/data1")[2]["attachedTo"] == "test_vm"
    assert call(server, "/api/v1/volumes/spare")[2]["attachedTo"] is None
    assert [i["name"] for i in call(server, "/api/v1/attachments")[2]["items"]] == [
        "data1-on-test_vm"
    ]
    assert len(call(server, "/api/v1/types")[2]["items"]) == 2
    assert len(call(server, "/api/v1/images")[2]["items"]) == 2
    hosts = call(server, "/api/v1/hosts")[2]["items"]
    assert [(h["name"], h["reachable"], h["reason"]) for h in hosts] == [
        ("h1", True, None),
        ("h2", False, "connection refused"),
    ]
    assert call(server, "/api/v1/hosts/h1")[2]["cpuUsedForeign"] == 1
    assert call(server, "/api/v1/events")[2]["items"][0]["resource"] == "vm/pending_vm"
    assert call(server, "/api/v1/events?limit=0")[0] == 400
    src = call(server, "/api/v1/source")[2]
    assert src["lastAppliedRevision"] == "abc123"
    assert src["error"].startswith("commit def456: specs/vm.yaml:3")
    assert src["owned"] == {"vm/web": "specs/web.yaml:1"}
    assert call(server, "/api/v1/nothing")[0] == 404


def test_probes(server: ApiServer, state: dict[str, Snapshot]) -> None:
    assert call(server, "/healthz")[0] == 200
    assert call(server, "/readyz")[0] == 200
    state["snap"] = Snapshot()
    assert call(server, "/readyz")[0] == 503
    assert call(server, "/healthz")[0] == 200


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, read by prometheus_client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_metrics_prometheus_text(server: ApiServer, state: dict[str, Snapshot]) -> None:
    status, headers, text = call(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["volctl_reconcile_duration_seconds"] == "histogram"
    assert types["volctl_actions"] == "counter"  # samples are volctl_actions_total
    assert types["volctl_resources"] == "gauge"
    got = _samples(text)
    assert got["volctl_reconcile_duration_seconds_bucket", (("le", "0.25"),)] == 3
    assert got["volctl_reconcile_duration_seconds_bucket", (("le", "+Inf"),)] == 3
    assert got["volctl_reconcile_duration_seconds_count", ()] == 3
    assert got["volctl_actions_total", (("kind", "create_domain"), ("result", "ok"))] == 2
    assert got["volctl_drift_corrections_total", ()] == 1
    assert got["volctl_resources", (("kind", "VirtualMachine"), ("phase", "Ready"))] == 2
    assert got["volctl_resources", (("kind", "VirtualMachine"), ("phase", "Unschedulable"))] == 1
    assert got["volctl_resources", (("kind", "VirtualMachine"), ("phase", "Failed"))] == 0
    assert got["volctl_host_reachable", (("host", "h2"), ("pmid", "2"))] == 0
    info = [k for k in got if k[0] == "volctl_source_info"]
    assert len(info) == 1
    assert dict(info[0][1])["revision"] == "abc123"
    assert got["volctl_source_error", ()] == 1  # the snapshot carries a rejected commit
    assert got["volctl_generation", ()] == state["snap"].generation


def test_metrics_of_two_servers_do_not_mix(server: ApiServer, state: dict[str, Snapshot]) -> None:
    """No global registry: each server renders the snapshot it serves."""
    other = serve(lambda: replace(state["snap"], generation=4242), listen="127.0.0.1:0")
    try:
        theirs = _samples(call(other, "/metrics")[2])
        mine = _samples(call(server, "/metrics")[2])
    finally:
        other.stop()
    assert theirs["volctl_generation", ()] == 4242
    assert mine["volctl_generation", ()] == state["snap"].generation != 4242


def test_read_only_methods(server: ApiServer) -> None:
    status, headers, _ = call(server, "/api/v1/vms", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_bearer_token(state: dict[str, Snapshot]) -> None:
    srv = serve(lambda: state["snap"], listen="127.0.0.1:0", token="s3cret")
    try:
        for path in ("/vm/query?vmid=100", "/api/v1/vms", "/metrics", "/readyz"):
            status, headers, body = call(srv, path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert "s3cret" not in json.dumps(body)
            assert call(srv, path, token="wrong")[0] == 401
            assert call(srv, path, token="s3cret")[0] == 200
        assert call(srv, "/healthz")[0] == 200  # liveness carries no data
        assert call(srv, "/")[0] == 200  # the page itself asks for the token
    finally:
        srv.stop()


def test_dashboard_assets_are_served_locally(server: ApiServer) -> None:
    status, headers, html = call(server, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "/static/app.js" in html
    assert "http://" not in html.replace(server.url, "")
    assert "https://" not in html
    assert call(server, "/static/app.js")[0] == 200
    assert call(server, "/static/app.css")[0] == 200
    assert call(server, "/static/../server.py")[0] == 404


def test_long_poll_answers_when_the_next_generation_is_published() -> None:
    """`?afterGeneration=N` is held until a snapshot with another generation is published
    (or `wait` runs out, then the current one); bad values are a 400."""
    import threading

    from reconciler.status.store import StatusStore

    status = StatusStore(replace(world(), generation=3))
    srv = serve(status.snapshot, listen="127.0.0.1:0", wait_fn=status.wait_newer)
    try:
        got: list[Any] = []
        poll = threading.Thread(
            target=lambda: got.append(call(srv, "/api/v1/status?afterGeneration=3&wait=30"))
        )
        poll.start()
        poll.join(1.0)
        assert poll.is_alive()  # held: generation 3 is what the client has
        status.publish(replace(world(), generation=4))
        poll.join(10)
        assert got[0][0] == 200
        assert got[0][2]["generation"] == 4
        # already newer: at once; a wait that runs out: the current snapshot
        assert call(srv, "/api/v1/snapshot?afterGeneration=3")[2]["generation"] == 4
        assert call(srv, "/api/v1/status?afterGeneration=4&wait=0.2")[2]["generation"] == 4
        for bad in ("afterGeneration=x", "afterGeneration=1&wait=61", "afterGeneration=1&wait=no"):
            status_code, _, body = call(srv, f"/api/v1/status?{bad}")
            assert status_code == 400
            assert "afterGeneration" in body["error"]
    finally:
        srv.stop()
