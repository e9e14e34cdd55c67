"""The seed's own client code in Debian's headless chromium against `volctl run` on the lab.

A page served from a second port (another origin, as the seed's GUI was) loads Debian's
libjs-jquery and makes exactly the seed GUI's call, `$.ajax({dataType: 'jsonp', jsonp:
'jsonp_callback', url, data, success})`, to every seed endpoint: the success callback must run
with the seed's fields for a converged VM and volume, the seed's error for unknown ids, and the
seed's failure value for every mutating endpoint, while libvirt and RBD stay exactly as they
were.  Hostile callback names must fail to load (400) and run nothing; with a token no data is
served.  `fetch()` from the listed origin reads the API through CORS, from another origin not.
"""

from __future__ import annotations

import html
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import libvirt
import pytest
import rbd
import yaml

from reconciler.lab.ceph import CephCluster
from reconciler.lab.testing import LabPool

from .test_dashboard import CHROMIUM, ROOT, _env, chromium

JQUERY = Path("/usr/share/javascript/jquery/jquery.min.js")
TOKEN = "gui-t0ken"
CONVERGE = 240

SPECS = """\
apiVersion: volctl.io/v1
kind: VirtualMachine
metadata:
  name: gui_vm
spec:
  instanceType: small
  image: lab-base
---
apiVersion: volctl.io/v1
kind: Volume
metadata:
  name: gui_data
spec:
  size: 1
---
apiVersion: volctl.io/v1
kind: VolumeAttachment
metadata:
  name: gui_data-on-gui_vm
spec:
  volume: gui_data
  vm: gui_vm
"""

# The page: every call is the seed GUI's $.ajax call (plus an error handler, so a failed
# script load is seen rather than waited for); results land as JSON in <pre id="out">.
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>seed gui</title>
<script src="/jquery.js"></script></head>
<body><pre id="out">pending</pre>
<script>
window.alerted = [];
window.alert = function (m) { window.alerted.push(String(m)); };
var API = %(api)s, CALLS = %(calls)s, FETCHES = %(fetches)s, TOKEN = %(token)s;
var results = {jsonp: {}, fetch: {}}, left = CALLS.length + FETCHES.length;
function done(kind, name, value) {
  results[kind][name] = value;
  if (--left === 0) {
    results.alerted = window.alerted;
    results.origin = location.origin;
    document.getElementById('out').textContent = JSON.stringify(results);
  }
}
CALLS.forEach(function (c) {
  var opts = {
    dataType: 'jsonp',
    jsonp: 'jsonp_callback',
    url: API + c.path,
    data: c.data,
    success: function (data) { done('jsonp', c.name, {ok: true, data: data}); },
    error: function (xhr, text) { done('jsonp', c.name, {ok: false, error: text}); },
    timeout: 15000
  };
  if (c.callback !== undefined) { opts.jsonpCallback = c.callback; }
  $.ajax(opts);
});
FETCHES.forEach(function (f) {
  var init = TOKEN ? {headers: {'Authorization': 'Bearer ' + TOKEN}} : {};
  fetch(API + f.path, init)
    .then(function (r) {
      return r.json().then(function (b) { return {status: r.status, body: b}; });
    })
    .then(function (v) { done('fetch', f.name, {ok: true, status: v.status, body: v.body}); })
    .catch(function (e) { done('fetch', f.name, {ok: false, error: String(e)}); });
});
</script></body></html>
"""


@contextmanager
def page_server() -> Iterator[tuple[int, dict[str, bytes]]]:
    """Serve `pages[path]` and /jquery.js on 127.0.0.1:PORT (the seed GUI's own origin);
    yields (PORT, pages).  Port 0: a port taken now cannot be the one a config names."""
    pages: dict[str, bytes] = {"/jquery.js": JQUERY.read_bytes()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:
            data = pages.get(self.path.split("?")[0])
            self.send_response(200 if data is not None else 404)
            kind = "text/javascript" if self.path.endswith(".js") else "text/html; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), pages
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_page(
    pages: dict[str, bytes],
    url: str,
    profile: Path,
    api: str,
    calls: list[dict[str, Any]],
    fetches: Sequence[dict[str, Any]] = (),
    token: str | None = None,
) -> dict[str, Any]:
    """Load the page at `url` in headless chromium; the results it wrote into the DOM."""
    pages["/" + url.rsplit("/", 1)[1]] = (
        PAGE
        % {
            "api": json.dumps(api),
            "calls": json.dumps(calls),
            "fetches": json.dumps(list(fetches)),
            "token": json.dumps(token),
        }
    ).encode()
    done = chromium(url, profile, "--dump-dom", "--virtual-time-budget=30000")
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert match, done.stdout[-3000:]
    text = html.unescape(match.group(1))
    assert text != "pending", "the page's calls did not all finish:\n" + done.stderr[-2000:]
    result: dict[str, Any] = json.loads(text)
    return result


def http(base: str, path: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(base + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError as exc:
        return 0, str(exc)


@contextmanager
def controller(pool: LabPool, token: str | None = None) -> Iterator[tuple[str, Path]]:
    """`volctl run` on the pool's config; ready once /readyz answers 200 (with the token)."""
    log = pool.root / f"controller-{int(time.time() * 1000)}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path),
             "run", "--resync", "5"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(),
        )  # fmt: skip
    base = pool.config.api.rstrip("/")
    try:
        deadline = time.monotonic() + 120
        while http(base, "/readyz", token)[0] != 200:
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def configure(pool: LabPool, **keys: Any) -> None:
    doc = yaml.safe_load(pool.config_path.read_text())
    doc.update(keys)
    pool.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))


def world_state(pool: LabPool) -> dict[str, Any]:
    """Every domain on every lab host (state and disks) and every RBD image in the pool (size),
    read from libvirt and Ceph themselves."""
    domains: dict[str, Any] = {}
    for host in pool.info.hosts:
        conn = libvirt.open(host.uri)
        try:
            for dom in conn.listAllDomains():
                disks = re.findall(r"<source protocol='rbd' name='([^']+)'", dom.XMLDesc(0))
                domains[f"{host.name}/{dom.name()}"] = (dom.state()[0], sorted(disks))
        finally:
            conn.close()
    cluster = CephCluster(Path(pool.info.ceph_conf).parent, user=pool.info.ceph_user)
    images: dict[str, int] = {}
    with cluster.connect(timeout=30) as rados, rados.open_ioctx(pool.pool) as ioctx:
        for name in rbd.RBD().list(ioctx):
            with rbd.Image(ioctx, name, read_only=True) as img:
                images[name] = img.size()
    return {"domains": domains, "images": images}


def seed_calls(vmid: int, volid: int) -> list[dict[str, Any]]:
    """The seed GUI pages' calls (v3.0 colClient/col/*.html), with their `data`."""
    return [
        {"name": "queryVM", "path": "/vm/query", "data": {"vmid": vmid}},
        {"name": "queryVM unknown", "path": "/vm/query", "data": {"vmid": 987654}},
        {"name": "queryVolume", "path": "/volume/query", "data": {"volumeid": volid}},
        {"name": "queryVolume unknown", "path": "/volume/query", "data": {"volumeid": 987654}},
        {"name": "vmTypes", "path": "/vm/types", "data": {}},
        {"name": "imageTypes", "path": "/image/list", "data": {}},
        {"name": "createVM", "path": "/vm/create",
         "data": {"name": "gui_new", "instance_type": 1, "image_id": 1}},
        {"name": "destroyVM", "path": "/vm/destroy", "data": {"vmid": vmid}},
        {"name": "createVolume", "path": "/volume/create", "data": {"name": "gui_v2", "size": 1}},
        {"name": "destroyVolume", "path": "/volume/destroy", "data": {"volumeid": volid}},
        {"name": "attachVolume", "path": "/volume/attach",
         "data": {"volumeid": volid, "vmid": vmid}},
        {"name": "detachVolume", "path": "/volume/detach", "data": {"volumeid": volid}},
    ]  # fmt: skip


FAILURE_KEY = {
    "createVM": "vmid",
    "destroyVM": "status",
    "createVolume": "volumeid",
    "destroyVolume": "status",
    "attachVolume": "status",
    "detachVolume": "status",
}
HOSTILE = {"alert": "alert(1)//", "tag": "<script>", "long": "a" * 65}


def apply_and_wait(pool: LabPool, specs: Path, log: Path) -> None:
    applied = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path),
         "apply", "-f", str(specs), "--wait", "--timeout", f"{CONVERGE}s"],
        capture_output=True, text=True, timeout=CONVERGE + 60, cwd=ROOT, env=_env(), check=False,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stdout + applied.stderr + log.read_text()[-3000:]


def check_seed_answers(jsonp: dict[str, Any], vm: dict[str, Any], volid: int) -> None:
    """What each seed GUI page's success callback received."""
    vmid = vm["ids"]["vmid"]
    ok = {"ok": True}
    assert jsonp["queryVM"] == ok | {
        "data": {"vmid": vmid, "name": "gui_vm", "instance_type": 1, "pmid": vm["pmid"]}
    }
    assert jsonp["queryVolume"] == ok | {
        "data": {"volumeid": volid, "name": "gui_data", "size": 1, "status": "attached",
                 "vmid": vmid}
    }  # fmt: skip
    assert jsonp["queryVM unknown"] == ok | {"data": {"error": "vmid : 987654 does not exist"}}
    assert jsonp["queryVolume unknown"] == ok | {
        "data": {"error": "volumeid : 987654 does not exist"}
    }
    assert jsonp["vmTypes"]["data"]["types"][0] == {"tid": 1, "cpu": 1, "ram": 512, "disk": 1}
    assert jsonp["imageTypes"] == ok | {"data": {"images": [{"id": 1, "name": "lab-base"}]}}
    for name, key in FAILURE_KEY.items():  # the seed's failure value, and why
        answer = jsonp[name]
        assert answer["ok"] is True, (name, answer)
        assert set(answer["data"]) == {key, "error"}, (name, answer)
        assert answer["data"][key] == 0
        assert "volctl is declarative" in answer["data"]["error"]
    for key in HOSTILE:  # a failed script load (400), nothing ran
        assert jsonp[f"hostile {key}"] == {"ok": False, "error": "error"}, jsonp


def browse_without_token(
    pool: LabPool, specs: Path, pages: dict[str, bytes], gui_port: int, tmp_path: Path
) -> dict[str, Any]:
    """Converge a VM with an attached volume, then run every seed call from the page; returns
    the seed's /vm/query body and the world as it was, for the token run."""
    gui = f"http://127.0.0.1:{gui_port}"
    with controller(pool) as (api, log):
        apply_and_wait(pool, specs, log)
        vm = http(api, "/api/v1/vms/gui_vm")[1]
        volume = http(api, "/api/v1/volumes/gui_data")[1]
        vmid, volid = vm["ids"]["vmid"], volume["ids"]["volumeid"]
        image = volume["details"]["rbdImage"]
        before = world_state(pool)
        # this test's domains (a shared session lab may hold other tests' leftovers)
        ours = [d for d in before["domains"] if d.split("/", 1)[1].startswith("gui")]
        assert ours == [f"{vm['host']}/gui_vm"], before
        state, disks = before["domains"][f"{vm['host']}/gui_vm"]
        assert state == libvirt.VIR_DOMAIN_RUNNING
        assert image in disks, before  # attached, as /volume/query will say
        assert image.split("/", 1)[1] in before["images"], before

        calls = seed_calls(vmid, volid) + [
            {"name": f"hostile {k}", "path": "/vm/query", "data": {"vmid": vmid}, "callback": name}
            for k, name in HOSTILE.items()
        ]
        fetches = [
            {"name": "vm", "path": f"/vm/query?vmid={vmid}"},
            {"name": "vms", "path": "/api/v1/vms"},
        ]
        got = run_page(pages, f"{gui}/gui.html", tmp_path / "p1", api, calls, fetches)
        check_seed_answers(got["jsonp"], vm, volid)
        assert got["alerted"] == []
        for name in HOSTILE.values():
            quoted = urllib.parse.quote(name, safe="")
            assert http(api, f"/vm/query?vmid={vmid}&jsonp_callback={quoted}")[0] == 400
        # CORS: fetch() from the listed origin reads the answers
        seed_vm = got["jsonp"]["queryVM"]["data"]
        assert got["fetch"]["vm"] == {"ok": True, "status": 200, "body": seed_vm}
        assert [i["name"] for i in got["fetch"]["vms"]["body"]["items"]] == ["gui_vm"]

        # the same page from an origin that is not listed: JSONP works (script tags need no
        # CORS), fetch() is refused by the browser
        other = run_page(
            pages, f"http://localhost:{gui_port}/o.html", tmp_path / "p2", api, calls[:1],
            fetches[:1],
        )  # fmt: skip
        assert other["origin"] == f"http://localhost:{gui_port}"
        assert other["jsonp"]["queryVM"] == {"ok": True, "data": seed_vm}
        assert other["fetch"]["vm"] == {"ok": False, "error": "TypeError: Failed to fetch"}

        time.sleep(6)  # more than one resync pass after the calls
        assert world_state(pool) == before
        assert [i["name"] for i in http(api, "/api/v1/vms")[1]["items"]] == ["gui_vm"]
        assert [i["name"] for i in http(api, "/api/v1/volumes")[1]["items"]] == ["gui_data"]
    return {"seed_vm": seed_vm, "volid": volid, "before": before}


def test_seed_gui_calls_in_chromium_on_the_lab(lab_pool: LabPool, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() or not JQUERY.exists():
        pytest.fail("chromium or libjs-jquery is missing (scripts/bootstrap.sh installs both)")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "inventory.yaml").write_text(Path(lab_pool.info.inventory_path).read_text())
    (specs / "app.yaml").write_text(SPECS)
    with page_server() as (gui_port, pages):
        gui = f"http://127.0.0.1:{gui_port}"
        configure(lab_pool, cors={"origins": [gui]})
        seen = browse_without_token(lab_pool, specs, pages, gui_port, tmp_path)
        seed_vm, vmid = seen["seed_vm"], seen["seed_vm"]["vmid"]

        # with a token: JSONP (no header possible) gets the failure shape, never data; fetch()
        # with the token through CORS (preflight) gets the data
        configure(lab_pool, token=TOKEN)
        with controller(lab_pool, TOKEN) as (api, log):
            calls = seed_calls(vmid, seen["volid"])
            fetches = [{"name": "vm", "path": f"/vm/query?vmid={vmid}"}]
            got = run_page(pages, f"{gui}/t.html", tmp_path / "p3", api, calls, fetches, TOKEN)
            assert len(got["jsonp"]) == len(calls)
            for name, answer in got["jsonp"].items():
                assert answer["ok"] is True, (name, answer)
                key = FAILURE_KEY.get(name)
                assert set(answer["data"]) == ({key, "error"} if key else {"error"}), answer
                assert "bearer token is required" in answer["data"]["error"]
                assert "gui_vm" not in json.dumps(answer)
            assert got["fetch"]["vm"] == {"ok": True, "status": 200, "body": seed_vm}
            assert world_state(lab_pool) == seen["before"]
            assert TOKEN not in log.read_text()
