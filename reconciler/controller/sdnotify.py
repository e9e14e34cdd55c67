"""Tell systemd how the controller is doing: the `sd_notify` protocol, without libsystemd.

Why: the unit (contrib/systemd/volctl.service) is `Type=notify`, so `systemctl start volctl`
returns, and units ordered after it start, only once the first pass has run and status is
published: before that the REST view would answer from an empty snapshot.  The protocol is
one datagram of `KEY=VALUE` lines to the unix socket named by $NOTIFY_SOCKET (a leading `@`
means the abstract namespace); outside systemd the variable is unset and every call is a
no-op.  No dependency is worth ~15 lines.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger("volctl.sdnotify")


def notify(*lines: str, environ: dict[str, str] | None = None) -> bool:
    """Send LINES (e.g. "READY=1", "STATUS=...") to systemd; True if a datagram was sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not lines:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("sdnotify.bad_socket", socket=address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(lines).encode())
    except OSError as exc:  # systemd gone or socket not ours: readiness is advisory
        log.warning("sdnotify.failed", socket=address, error=str(exc))
        return False
    return True
