"""Does a remote libvirt host answer at all?  A cheap TCP probe for the reconnect loop.

Why: while a host's link is cut, a `libvirt.open` hangs for its whole connect deadline (5 s
over TCP, 30 s over SSH, whose handshake alone can take seconds), and one started during the
cut keeps waiting on the kernel's SYN back-off (1, 2, 4, 8, 16 s...) after the link heals.
A fresh TCP connect to the transport's port, with a 1 s deadline, answers "is the host back?"
within a second of the heal, so the connection only pays for a full open when it can succeed,
and a call never waits a connect deadline on a host that is known not to answer.

"Answers" is about the network, not the daemon: a refused connection (a dead libvirtd, or
a port this guess got wrong) is an answer, since the full open will then fail or succeed
quickly.  A URI that names no remote host (unix socket, `test:///`), or a host name this
machine cannot resolve (an ssh_config alias, a ProxyJump), cannot be probed: it is taken as
answering, i.e. the caller behaves as it did before the probe existed.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

# libvirt's default ports per remote transport (libvirt.org/uri.html, "Remote URIs")
_PORTS = {"tcp": 16509, "tls": 16514, "ssh": 22, "libssh": 22, "libssh2": 22}


def probe_address(uri: str) -> tuple[str, int] | None:
    """(host, port) a TCP probe should reach for this libvirt URI, or None (not remote)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None  # qemu:///system, qemu+unix:///..., test:///default
    transport = parts.scheme.partition("+")[2] or "tls"  # a bare qemu://host is TLS
    default = _PORTS.get(transport)
    if default is None:
        return None  # unix, ext: nothing to probe
    return host, port or default


def answers(address: tuple[str, int] | None, timeout: float = 1.0) -> bool:
    """False only when ADDRESS is known not to answer within TIMEOUT (no route, or silence)."""
    if address is None:
        return True
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except ConnectionRefusedError:
        return True  # the host is there; its daemon is not (the open will say so at once)
    except socket.gaierror:
        return True  # not resolvable here (an ssh alias?): cannot judge, do not block
    except OSError:
        return False  # timed out, no route to host, network unreachable
