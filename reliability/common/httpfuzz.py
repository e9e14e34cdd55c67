"""Random HTTP requests as raw bytes, and what the server answered to each.

Why raw sockets and not an HTTP client: a client library refuses to send most of what a fuzzer
wants (a request line of 70 KiB, a header without a colon, a body longer than its
Content-Length, NUL bytes, HTTP/0.9), and it hides a connection closed without an answer.
Every request is built from one `random.Random`, so a request that got a 500 is replayed by
its trial seed and index, and its bytes are recorded.
"""

from __future__ import annotations

import random
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass

KNOWN_PATHS = (
    "/",
    "/index.html",
    "/favicon.ico",
    "/static/app.js",
    "/static/style.css",
    "/healthz",
    "/readyz",
    "/metrics",
    "/vm/query",
    "/vm/types",
    "/image/list",
    "/volume/query",
    "/vm/create",
    "/vm/destroy",
    "/volume/create",
    "/volume/destroy",
    "/volume/attach",
    "/volume/detach",
    "/api/v1",
    "/api/v1/vms",
    "/api/v1/vms/edge-vm",
    "/api/v1/volumes",
    "/api/v1/volumes/edge-vol",
    "/api/v1/attachments",
    "/api/v1/hosts",
    "/api/v1/hosts/h1",
    "/api/v1/images",
    "/api/v1/types",
    "/api/v1/events",
    "/api/v1/source",
    "/api/v1/status",
    "/api/v1/snapshot",
    "/api/v1/leader",
    "/hooks/git",
)
METHODS = ("GET",) * 8 + ("HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
PARAMS = ("vmid", "volumeid", "jsonp_callback", "callback", "limit", "resource", "pmid", "tid")
VALUES = (
    "1", "0", "2", "-1", "007", "1e3", "1.5", "", " 1", "1 ", "+1", "0x10", "NaN", "null",
    "true", "[]", "{}", "%", "%ZZ", "%00", "99999999999999999999999", "18446744073709551616",
    "\u00b2", "\u0663", "\u0967\u0968", "\uff11", "\u2460", "\U0001d7d9", "9" * 5000,
    "1;DROP TABLE vms", "<script>alert(1)</script>", "cb", "a.b", "alert(1)", "x" * 300,
    "edge-vm", "vm/edge-vm", "\ud800", "\u202e", "../../etc/passwd",
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: closed without an answer
    seconds: float
    error: str = ""


def _value(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice(VALUES)
    if r < 0.8:
        return str(rng.randrange(-10, 1 << rng.randrange(1, 70)))
    return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 40)))


def _quote(rng: random.Random, text: str) -> str:
    if rng.random() < 0.7:
        return urllib.parse.quote(text, safe="", errors="surrogatepass")
    return text  # raw: spaces, unicode and '&' as they are


def query(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.1:
        return ""
    if r < 0.15:
        return rng.choice(("&&&", "=", "a=b=c", ";;", "&=&", "%", "?", "#frag"))
    if r < 0.2:  # more fields than the server parses
        return "&".join(f"vmid={i}" for i in range(rng.randrange(15, 60)))
    parts = []
    for _ in range(rng.randrange(1, 5)):
        name = rng.choice(PARAMS) if rng.random() < 0.85 else _value(rng)
        parts.append(f"{_quote(rng, name)}={_quote(rng, _value(rng))}")
    return rng.choice(("&", "&", ";")).join(parts)


def path(rng: random.Random) -> str:
    p = rng.choice(KNOWN_PATHS)
    r = rng.random()
    if r < 0.5:
        pass
    elif r < 0.6:
        p += rng.choice(("/", "//", "/..", "/.", "/%2e%2e/", "/x", "%00", "%ff", "/%C0%AE"))
    elif r < 0.7:
        p = p.upper() if rng.random() < 0.5 else p.replace("/", "//")
    elif r < 0.8:
        p += "/" + _quote(rng, _value(rng))
    elif r < 0.85:
        p = "/" + "a/" * rng.randrange(100, 3000)
    elif r < 0.9:
        p = rng.choice(("*", "", "vm/types", "http://x/vm/types", "//x/api/v1", "/\x7f", "/ /"))
    else:
        p = "/" + "".join(chr(rng.randrange(0x21, 0x2FFF)) for _ in range(rng.randrange(1, 30)))
    q = query(rng)
    return p + ("?" + q if q else "")


def headers(rng: random.Random, body: bytes) -> list[str]:
    out = ["Host: 127.0.0.1"]
    pool = [
        f"Authorization: Bearer {_value(rng)}",
        f"Authorization: {_value(rng)}",
        f"Origin: http://{_value(rng)}",
        "Access-Control-Request-Method: GET",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Content-Length: {rng.choice(('-1', 'abc', '99999999999', '', str(len(body) + 5)))}",
        f"Content-Length: {_value(rng)}",
        "Transfer-Encoding: chunked",
        f"X-Gitlab-Token: {_value(rng)}",
        f"X-Hub-Signature-256: sha256={_value(rng)}",
        "X-GitHub-Event: push",
        "Accept: */*",
        "Connection: keep-alive",
        "Expect: 100-continue",
        f"X-Junk: {'x' * rng.randrange(1, 9000)}",
        "NoColonHere",
        " folded: continuation",
        f"X-Unicode: {_value(rng)}",
    ]
    out += rng.sample(pool, rng.randrange(0, 5))
    if rng.random() < 0.03:
        out += [f"X-Many-{i}: {i}" for i in range(rng.randrange(90, 130))]
    if rng.random() < 0.02:
        out.append("X-Huge: " + "y" * rng.randrange(60_000, 70_000))
    return out


def request(rng: random.Random) -> bytes:
    """One random request, well-formed or not."""
    r = rng.random()
    if r < 0.12:
        return broken(rng)
    method = rng.choice(METHODS) if rng.random() < 0.95 else _value(rng)[:20] or "GET"
    body = b""
    if rng.random() < 0.15:
        body = rng.randbytes(rng.choice((1, 100, 4096, 70_000, (1 << 20) + 10)))
    lines = [f"{method} {path(rng)} {rng.choice(('HTTP/1.1',) * 9 + ('HTTP/1.0',))}"]
    lines += headers(rng, body)
    if not any(h.lower().startswith("connection") for h in lines):
        lines.append("Connection: close")
    head = "\r\n".join(lines) + "\r\n\r\n"
    if rng.random() < 0.5:  # as a latin-1 client would send it, where it can
        try:
            return head.encode("latin-1") + body
        except UnicodeEncodeError:
            pass
    return head.encode("utf-8", errors="surrogatepass") + body


def broken(rng: random.Random) -> bytes:
    """Not HTTP as the RFC knows it."""
    choices = (
        lambda: rng.randbytes(rng.randrange(1, 2000)),
        lambda: b"GET /vm/types",  # no version, no CRLF
        lambda: b"GET /vm/types\r\n\r\n",  # HTTP/0.9
        lambda: b"GET /vm/types HTTP/2.0\r\n\r\n",
        lambda: b"GET /vm/types HTTP/1.1\n\n",  # bare LF
        lambda: b"GET /vm/types HTTP/1.1\r\nHost: x\r\n",  # headers never end
        lambda: b"get /vm/types http/1.1\r\n\r\n",
        lambda: b"GET /vm/types HTTP/1.1 extra\r\n\r\n",
        lambda: b"GET " + b"/" * 70_000 + b" HTTP/1.1\r\n\r\n",
        lambda: b"\x00\x00\x00GET / HTTP/1.1\r\n\r\n",
        lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(60),  # TLS hello
        lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        lambda: b"GET /vm/types HTTP/1.1\r\nHost: x\r\n\r\n" * rng.randrange(2, 30),  # pipelined
        lambda: b"POST /hooks/git HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        lambda: b"GET /vm/query?vmid=\xff\xfe HTTP/1.1\r\n\r\n",
        lambda: b"GET /vm/types HTTP/1.1\r\nHost: \xc3\x28\r\nX: \x00\r\n\r\n",
        lambda: b"\r\n" * rng.randrange(1, 50),
        lambda: b"GET /vm/types HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",  # short body
    )
    return rng.choice(choices)()


_REQUEST_LINE = re.compile(rb"(GET|HEAD) /[!-~]* HTTP/1\.[01]\Z")
_HEADER = re.compile(rb"[!-9;-~]+: [ -~]*\Z")


def wellformed(data: bytes) -> bool:
    """A GET or HEAD an HTTP/1.x server must answer: a proper request line, printable ASCII
    headers with a colon each, the blank line, no body, all under 8 KiB."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or body or len(data) > 8192:
        return False
    first, *rest = head.split(b"\r\n")
    return bool(_REQUEST_LINE.match(first)) and all(_HEADER.match(h) for h in rest)


def send(host: str, port: int, data: bytes, timeout: float = 15.0) -> Answer:
    """Send `data`, half-close, and read the first answer's status (None if none came)."""
    t0 = time.monotonic()
    got = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may close early on what it will not read: look for an answer
            while b"\r\n" not in got:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    except OSError as exc:  # TimeoutError included
        if not got:
            return Answer(None, time.monotonic() - t0, type(exc).__name__)
    line = got.split(b"\r\n", 1)[0].split()
    status = int(line[1]) if len(line) > 1 and line[1].isdigit() else None
    return Answer(status, time.monotonic() - t0)
