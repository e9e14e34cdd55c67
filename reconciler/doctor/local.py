"""Checks on the controller's own node: its spec store and state are writable, and the REST
address can be bound (or is already served by a volctl controller).

Why: a read-only store (ProtectSystem=strict without ReadWritePaths, a wrong owner) fails
`volctl apply` and the controller's state writes later and less clearly; a REST port taken by
something else stops `volctl run` at start.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import urllib.request
from pathlib import Path

from reconciler.api.server import parse_listen
from reconciler.config import Config
from reconciler.doctor.result import CheckResult, failed, passed

NODE = "this node"


def writable_dir(check: str, what: str, path: str) -> CheckResult:
    """PATH exists and a file can be created in it, or it can be created (nearest existing
    parent writable): `volctl run` and `apply` create it on first use."""
    target = Path(path)
    label = f"{what} {path}"
    if target.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=target, prefix=".volctl-doctor-"):
                pass
        except OSError as exc:
            return failed(
                check,
                NODE,
                f"{label}: cannot write ({exc.strerror})",
                f"make {path} writable by user {_user()} (with the systemd unit it "
                "is StateDirectory=volctl, i.e. under /var/lib/volctl)",
            )
        return passed(check, NODE, f"{label}: writable")
    if target.exists():
        return failed(
            check,
            NODE,
            f"{label}: exists but is not a directory",
            f"remove it or point the config's {what} elsewhere",
        )
    parent = next((p for p in target.parents if p.exists()), Path("/"))
    if os.access(parent, os.W_OK | os.X_OK):
        return passed(check, NODE, f"{label}: missing, will be created under {parent}")
    return failed(
        check,
        NODE,
        f"{label}: missing and {parent} is not writable",
        f"create {path} owned by user {_user()}: install -d -o {_user()} {path}",
    )


def _user() -> str:
    try:
        import pwd  # noqa: PLC0415 - POSIX only, used for a message

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def rest_address(listen: str) -> CheckResult:
    check = "node.listen"
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        return failed(check, NODE, str(exc), "set `listen: HOST:PORT` in the config")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and _is_volctl(host, port):
                return passed(check, NODE, f"{listen}: served by a running volctl controller")
            return failed(
                check,
                NODE,
                f"cannot bind {listen}: {exc.strerror}",
                "free the port, or set another `listen` (and `api`) in the config; "
                "binding below 1024 needs root",
            )
    return passed(check, NODE, f"{listen}: can be bound")


def _is_volctl(host: str, port: int) -> bool:
    """Does HOST:PORT answer /healthz like `volctl run` (doctor next to a running service)?"""
    shown = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{shown}:{port}/healthz", timeout=2) as reply:
            body = json.loads(reply.read() or b"{}")
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and "status" in body


def local_checks(config: Config) -> list[CheckResult]:
    return [
        writable_dir("node.store", "store", config.store),
        writable_dir("node.state", "stateDir", config.state_dir),
        rest_address(config.listen),
    ]
