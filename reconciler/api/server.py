"""The HTTP server of `volctl run`: seed API, `/api/v1`, probes, metrics and the dashboard.

Why the standard library's ThreadingHTTPServer: the server only serialises an immutable
snapshot the controller publishes after each pass, so it needs no framework, no async and no
extra dependency; one thread per request is plenty and a slow client cannot stall the loop.
No handler ever calls libvirt or Ceph: `snapshot_fn` must return the in-memory snapshot.

Safe defaults: it binds 127.0.0.1 unless told otherwise, and with a token configured every
data endpoint needs `Authorization: Bearer <token>` (compared in constant time).  The
dashboard's static files and `/healthz` carry no data and stay open, so a browser can load
the page and then send the token with its API calls.

Long polling: `GET /api/v1/status` and `/api/v1/snapshot` with `?afterGeneration=N` (and
`&wait=SECONDS`, default 30, at most 60) answer as soon as a pass has published a snapshot
whose generation is not N, or when the wait is over, whichever is first.  `volctl apply
--wait` and `get -w` use it, so they are woken by the pass that changes the status instead of
asking once a second.  The waiting is `wait_fn`'s (the status store's condition variable).

Browsers on other origins: the seed's endpoints speak JSONP (`jsonp.py`, the seed GUI's way)
and, when `cors: {origins: [...]}` is configured, every GET answer carries CORS headers
(`cors.py`).  Both are layers over the replies; the handlers do not know about them.
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from reconciler.api import hooks, jsonp, metrics, replica_view, seed, v1
from reconciler.api.cors import Cors, not_configured
from reconciler.api.hooks import GitHook
from reconciler.api.seed import Reply
from reconciler.status.replica import ReplicaInfo
from reconciler.status.types import Snapshot

log = structlog.get_logger("volctl.api")

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
OPEN_PATHS = {"/", "/index.html", "/healthz", "/favicon.ico"}
READ_METHODS = {"GET", "HEAD"}
CACHE_ENTRIES = 256  # distinct /api/v1 requests cached per snapshot
WAITABLE = {"/api/v1/status", "/api/v1/snapshot"}
WAIT_DEFAULT = 30.0
WAIT_MAX = 60.0
# blocks until a snapshot whose generation is not the given one is published, or timeout
WaitFn = Callable[[int, float], object]


def _decimal(text: str, most: int) -> bool:
    """`text` is 1 to `most` ASCII digits, so int() takes it."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:8470", "[::1]:8470", ":8470" (loopback), "8470"."""
    text = listen.strip()
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = "", text
    if not port.isdigit():
        raise ValueError(f"listen address {listen!r} needs a port, e.g. 127.0.0.1:8470")
    return host or "127.0.0.1", int(port)


class ApiServer:
    """A running server; `.url` is where it answers, `.stop()` shuts it down."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        self.url = f"http://{shown}:{port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        snapshot_fn: Callable[[], Snapshot],
        token: str | None,
        cors: Cors | None = None,
        git_hook: GitHook | None = None,
        *,
        replica_fn: Callable[[], ReplicaInfo] | None = None,
        wait_fn: WaitFn | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.snapshot_fn = snapshot_fn
        self.replica_fn = replica_fn  # set in an HA replica (docs/ha.md)
        self.wait_fn = wait_fn  # long polling; without it `afterGeneration` answers at once
        self.token = token
        self.cors = cors
        self.git_hook = git_hook
        # encoded /api/v1 answers of the current snapshot: a snapshot never changes, so the
        # same request gets the same bytes until the controller publishes the next one
        self._cache_lock = threading.Lock()
        self._cache_snap: Snapshot | None = None
        self._cache: dict[str, Reply] = {}

    def cached(self, snap: Snapshot, key: str, build: Callable[[], Reply | None]) -> Reply | None:
        with self._cache_lock:
            if self._cache_snap is not snap:
                self._cache_snap, self._cache = snap, {}
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        reply = build()
        if reply is None or reply.status != 200 or not isinstance(reply.body, dict | list):
            return reply
        encoded = Reply(
            reply.status,
            (json.dumps(reply.body, indent=None, separators=(",", ":")) + "\n").encode(),
            (("Content-Type", "application/json"), *reply.headers),
        )
        with self._cache_lock:
            if self._cache_snap is snap and len(self._cache) < CACHE_ENTRIES:
                self._cache[key] = encoded
        return encoded

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-reply is normal (load tools, closed tabs): no traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "volctl"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection may hold its thread
    # headers and body go out in separate writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per request on keep-alive connections, seen in bench B5)
    disable_nagle_algorithm = True
    _extra_headers: dict[str, str] = {}  # noqa: RUF012 - replaced per request, never mutated

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """No access log: probes and the dashboard poll constantly; errors are logged."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def _serve(self, method: str) -> None:
        try:
            reply = self._dispatch(method)
        except Exception:  # a bug must not kill the server thread
            log.exception("api_error", path=self.path)
            reply = Reply(500, {"error": "internal error while rendering the status"})
        if method in READ_METHODS and self.server.cors is not None:
            cors = self.server.cors.headers(self.headers.get("Origin"))
            reply = replace(reply, headers=(*reply.headers, *cors))
        self._send(reply, head=method == "HEAD")

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        )

    def _dispatch(self, method: str) -> Reply:
        body = self._drain()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path == hooks.PATH:  # its own token: a forge calls it, not a REST client
            return hooks.receive(self.server.git_hook, method, self.headers, body)
        if method == "OPTIONS":
            return self._preflight()
        scripted = self._jsonp(method, path, url.query)
        if scripted is not None:
            return scripted
        if path in seed.MUTATING:
            return seed.mutating(path)  # explain even before auth: no data is revealed
        static = self._static(path)
        if static is not None and method in READ_METHODS:
            return static
        if path == "/healthz" and method in READ_METHODS:
            return Reply(200, {"status": "ok"})
        if not self._authorized():
            return Reply(
                401,
                {"error": "missing or wrong bearer token (send Authorization: Bearer TOKEN)"},
                (("WWW-Authenticate", 'Bearer realm="volctl"'),),
            )
        if method not in READ_METHODS:
            return Reply(
                405,
                {"error": f"{method} is not allowed: the volctl REST view is read-only"},
                (("Allow", "GET, HEAD"),),
            )
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            return Reply(400, {"error": "malformed query string"})
        waiting = _wait_of(path, query)
        if isinstance(waiting, Reply):
            return waiting
        if waiting is not None and self.server.wait_fn is not None:
            self.server.wait_fn(*waiting)
        snap = self.server.snapshot_fn()
        if self.server.replica_fn is not None:
            ha = self._replica(path, snap, self.server.replica_fn())
            if ha is not None:
                return ha
        if path == "/readyz":
            if snap.generation >= 1:
                return Reply(200, {"status": "ready", "generation": snap.generation})
            return Reply(503, {"status": "not ready: the first reconcile pass has not finished"})
        if path == "/metrics":
            return Reply(200, metrics.render(snap), (("Content-Type", metrics.CONTENT_TYPE),))
        key = path if waiting is not None else f"{path}?{url.query}"  # waits share the body
        reply = seed.route(snap, path, query) or self.server.cached(
            snap, key, lambda: v1.route(snap, path, query)
        )
        if reply is None:
            return Reply(404, {"error": f"no such endpoint: {path}"})
        return reply

    def _preflight(self) -> Reply:
        cors = self.server.cors
        if cors is None:
            return not_configured()
        return cors.preflight(
            self.headers.get("Origin"),
            self.headers.get("Access-Control-Request-Method"),
            self.headers.get("Access-Control-Request-Headers"),
        )

    def _jsonp(self, method: str, path: str, raw_query: str) -> Reply | None:
        """A seed endpoint called with `jsonp_callback` (the seed GUI's way), else None."""
        if method not in READ_METHODS or path not in jsonp.PATHS:
            return None
        try:
            query = parse_qs(raw_query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            return None  # the plain mode says what is wrong
        if not jsonp.wanted(path, query):
            return None
        name = jsonp.callback(query)
        if isinstance(name, Reply):
            return name
        if not self._authorized():
            return jsonp.wrap(name, jsonp.token_required(path))
        if path in seed.MUTATING:
            return jsonp.wrap(name, jsonp.refused(path))
        reply = seed.route(self.server.snapshot_fn(), path, query)
        if reply is None:  # cannot happen: every jsonp.PATHS entry is a seed endpoint
            reply = Reply(404, {"error": f"no such endpoint: {path}"})
        return jsonp.wrap(name, jsonp.answer(path, reply))

    def _replica(self, path: str, snap: Snapshot, info: ReplicaInfo) -> Reply | None:
        """The HA answers; every other answer of a replica carries the snapshot's age."""
        snap_age = replica_view.age(snap)
        self._extra_headers = {
            "X-Volctl-Role": info.role,
            "X-Volctl-Snapshot-Age": "" if snap_age is None else f"{snap_age:.3f}",
        }
        if path == "/readyz":
            return replica_view.readyz(info, snap)
        if path == "/api/v1/leader":
            return Reply(200, replica_view.leader_json(info, snap))
        if path == "/metrics":
            text = metrics.render(snap) + replica_view.metrics(info)
            return Reply(200, text, (("Content-Type", metrics.CONTENT_TYPE),))
        return None

    def _drain(self) -> bytes:
        """Read a request body (only a webhook signature looks at it) so keep-alive
        connections stay in sync."""
        length = self.headers.get("Content-Length")
        # ASCII digits, and few of them: headers arrive as latin-1 and '²' (0xb2) is a digit
        # to isdigit() but not to int(), which also refuses more than 4300 digits (R5)
        if length and _decimal(length, 7) and 0 < int(length) <= 1 << 20:
            return self.rfile.read(int(length))
        if (length and length != "0") or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # a body we will not read: do not reuse the stream
        return b""

    def _static(self, path: str) -> Reply | None:
        if path in {"/", "/index.html"}:
            name = "index.html"
        elif path.startswith("/static/"):
            name = path[len("/static/") :]
        else:
            return None
        file = STATIC / name
        if "/" in name or name.startswith(".") or file.suffix not in STATIC_TYPES:
            return Reply(404, {"error": f"no such file: {path}"})
        try:
            data = file.read_bytes()
        except OSError:
            return Reply(404, {"error": f"no such file: {path}"})
        return Reply(200, data, (("Content-Type", STATIC_TYPES[file.suffix]),))

    def _send(self, reply: Reply, *, head: bool) -> None:
        headers = dict(reply.headers)
        headers.update(self._extra_headers)
        self._extra_headers = {}
        if isinstance(reply.body, bytes):
            data = reply.body
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = (json.dumps(reply.body, indent=None, separators=(",", ":")) + "\n").encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(reply.status, HTTPStatus(reply.status).phrase)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(data)


def _wait_of(path: str, query: dict[str, list[str]]) -> tuple[int, float] | Reply | None:
    """(generation, seconds) of a long-poll request, None for an ordinary one, or a 400."""
    if path not in WAITABLE or "afterGeneration" not in query:
        return None
    gen = query["afterGeneration"][0]
    wait = (query.get("wait") or [str(WAIT_DEFAULT)])[0]
    try:
        seconds = float(wait)
    except ValueError:
        seconds = -1.0
    if not gen.isdigit() or not 0 <= seconds <= WAIT_MAX:
        return Reply(
            400,
            {
                "error": "afterGeneration must be a generation (0, 1, ...) and wait a number of "
                f"seconds from 0 to {WAIT_MAX:g}"
            },
        )
    return int(gen), seconds


def serve(
    snapshot_fn: Callable[[], Snapshot],
    listen: str = "127.0.0.1:8470",
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    git_hook: GitHook | None = None,
    *,
    replica_fn: Callable[[], ReplicaInfo] | None = None,
    wait_fn: WaitFn | None = None,
) -> ApiServer:
    """Start serving in a daemon thread and return at once; `git_hook` enables
    `POST /hooks/git` (see `api/hooks.py`); `replica_fn` makes it an HA replica's view
    (`/api/v1/leader`, replica metrics and readiness; docs/ha.md); `wait_fn` serves long
    polls (`?afterGeneration=N`, see the module docstring)."""
    cors = Cors.of(cors_origins)
    httpd = _Server(
        parse_listen(listen),
        snapshot_fn,
        token or None,
        cors,
        git_hook,
        replica_fn=replica_fn,
        wait_fn=wait_fn,
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="volctl-api", daemon=True
    )
    thread.start()
    server = ApiServer(httpd, thread)
    origins = sorted(cors.origins) if cors else []
    log.info(
        "api_listening",
        url=server.url,
        auth=bool(token),
        cors=origins,
        git_hook=git_hook is not None,
    )
    return server
