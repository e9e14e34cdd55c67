"""One HTTP/1.1 GET over a plain socket, for a controller API at an `http://` URL.

Why not urllib: `urllib.request` loads `http.client`, `email`, `ssl`, `hashlib` and
`tempfile`, about a third of what `volctl get` imports before it sends its one request
(bench B4: `get` start to exit).  The controller's REST view answers every GET with a
`Content-Length` body, so a request with `Connection: close` needs only a socket.
Anything this module does not handle plainly (https, a redirect, a chunked or encoded body,
a malformed answer) raises `NotPlain`, and the caller asks urllib instead.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

MAX_HEAD = 64 * 1024  # bytes of status line and headers we read before giving up


class NotPlain(Exception):
    """The answer (or the URL) needs a full HTTP client."""


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, path?query) of an `http://` URL; NotPlain for anything else."""
    from urllib.parse import urlsplit  # light: no http.client behind it

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotPlain(url)
    try:
        port = parts.port or 80
    except ValueError as exc:  # a port that is not a number
        raise NotPlain(url) from exc
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, target


def get(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """(status, body) of GET `url`.  OSError when the server cannot be reached or stops
    answering within `timeout` (for each read); NotPlain when urllib must do it."""
    host, port, target = split_url(url)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"GET {target} HTTP/1.1", f"Host: {netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = _read_all(sock)
    return parse(data)


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse(data: bytes) -> tuple[int, bytes]:
    """Status and body of a whole HTTP/1.x answer read to the connection's end."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or len(head) > MAX_HEAD:
        raise NotPlain("no complete header")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise NotPlain(f"status line {status_line[:80]!r}")
    status = int(parts[1])
    fields: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise NotPlain(f"header line {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    if 300 <= status < 400 or status < 200:
        raise NotPlain(f"status {status}")
    if fields.get("transfer-encoding", "identity").lower() != "identity":
        raise NotPlain("transfer-encoding")
    if fields.get("content-encoding", "identity").lower() != "identity":
        raise NotPlain("content-encoding")
    length = fields.get("content-length")
    if length is not None:
        if not length.isdigit() or len(body) < int(length):
            raise NotPlain("short body")  # cut off: let urllib report it properly
        body = body[: int(length)]
    return status, body
