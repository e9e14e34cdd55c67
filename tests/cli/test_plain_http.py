"""The CLI's REST client: plain-socket GETs for `http://`, urllib for anything else.

Real HTTP servers on loopback: the controller's own (`reconciler.api.server`, through the
REST tests' fixtures elsewhere) answers with Content-Length; here a stdlib server answers
plainly, chunked, with a redirect, with errors, or not at all, and the client must give the
same results urllib gave before.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.cli import client as cli_client
from reconciler.cli import plain_http
from reconciler.cli.client import ApiError, Client, Unreachable

SEEN: list[dict[str, Any]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        SEEN.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if self.path.startswith("/plain"):
            self._send(200, json.dumps({"ok": True, "path": self.path}).encode())
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = json.dumps({"chunked": True}).encode()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/plain-after-redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/missing":
            self._send(404, json.dumps({"error": "no VM with vmid 7"}).encode())
        elif self.path == "/bare-error":
            self._send(503, b"not json")
        elif self.path == "/garbage":
            self._send(200, b"{not json")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Iterator[Client]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    SEEN.clear()

    class Cfg:
        api = f"http://127.0.0.1:{httpd.server_address[1]}"
        token = "s3cret"

    try:
        yield Client(Cfg())  # type: ignore[arg-type]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_plain_answer_with_query_and_token(api: Client) -> None:
    assert api.get("/plain", vmid="3", x="a b") == {"ok": True, "path": "/plain?vmid=3&x=a+b"}
    assert SEEN[-1]["auth"] == "Bearer s3cret"


def test_chunked_and_redirect_answers_go_through_urllib(api: Client) -> None:
    assert api.get("/chunked") == {"chunked": True}
    assert api.get("/moved") == {"ok": True, "path": "/plain-after-redirect"}


def test_errors_keep_their_status_and_message(api: Client) -> None:
    with pytest.raises(ApiError) as err:
        api.get("/missing")
    assert err.value.status == 404
    assert str(err.value).endswith("/missing: 404 no VM with vmid 7")
    with pytest.raises(ApiError) as err2:
        api.get("/bare-error")
    assert err2.value.status == 503
    assert str(err2.value).endswith("503 Service Unavailable")


def test_a_body_that_is_not_json_is_unreachable(api: Client) -> None:
    with pytest.raises(Unreachable, match="cannot reach the volctl controller"):
        api.get("/garbage")


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Cfg:
        api = f"http://127.0.0.1:{port}"
        token = None

    with pytest.raises(Unreachable, match="Connection refused"):
        Client(Cfg()).get("/plain")  # type: ignore[arg-type]


def test_a_silent_server_times_out() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)

        class Cfg:
            api = f"http://127.0.0.1:{srv.getsockname()[1]}"
            token = None

        with pytest.raises(Unreachable, match="timed out"):
            Client(Cfg(), timeout=0.3).get("/plain")  # type: ignore[arg-type]


def test_the_plain_path_is_taken_for_http(api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """No urllib for a plain answer: the fallback is not called."""

    def no_urllib(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("urllib used for a plain http answer")

    monkeypatch.setattr(cli_client.Client, "_get_urllib", no_urllib)
    assert api.get("/plain")["ok"] is True


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"garbage", "no complete header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "short body"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nxx", "content-encoding"),
        (b"SPDY 200\r\n\r\n", "status line"),
    ],
)
def test_unusual_answers_are_not_plain(data: bytes, why: str) -> None:
    with pytest.raises(plain_http.NotPlain, match=why):
        plain_http.parse(data)


def test_https_and_odd_urls_are_not_plain() -> None:
    for url in ("https://h:1/x", "http://h:port/x", "ftp://h/x"):
        with pytest.raises(plain_http.NotPlain):
            plain_http.split_url(url)
    assert plain_http.split_url("http://[::1]:8470/api?a=1") == ("::1", 8470, "/api?a=1")
    assert plain_http.split_url("http://ctl") == ("ctl", 80, "/")
