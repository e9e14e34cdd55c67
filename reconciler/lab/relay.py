"""Make the lab's loopback-only Ceph reachable as 127.0.0.1 inside the hosts' network namespaces.

Why: in network-namespace mode each lab host (and the qemu processes it starts) has its own
loopback.  Ceph binds only to 127.0.0.1 of the machine, and its maps advertise 127.0.0.1:PORT,
so a proxy on the bridge would not help: clients inside a namespace must find the mon and the
OSD at 127.0.0.1:PORT of *their* loopback.  This process listens on 127.0.0.1:PORT inside each
namespace (a socket keeps the namespace it was created in) and splices every connection to
127.0.0.1:PORT of the machine.  No traffic leaves loopback.

Usage (the lab starts it):
    python -m reconciler.lab.relay --ports 3300,6789,6800,6801 NETNS [NETNS...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys
from collections.abc import Awaitable, Callable

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in_netns(netns: str, ports: list[int]) -> list[tuple[socket.socket, int]]:
    """Listening sockets on 127.0.0.1:PORT inside NETNS (created there, used from here)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    out = []
    try:
        _setns(target)
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            sock.setblocking(False)
            out.append((sock, port))
    finally:
        _setns(home)
        os.close(target)
        os.close(home)
    return out


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(
    port: int,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))

    return handle


async def serve(netns: list[str], ports: list[int]) -> None:
    listeners = [pair for ns in netns for pair in listen_in_netns(ns, ports)]
    for sock, port in listeners:
        await asyncio.start_server(_handler(port), sock=sock)
    print(f"relaying 127.0.0.1:{ports} into {netns}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.lab.relay")
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports")
    parser.add_argument("netns", nargs="+")
    args = parser.parse_args(argv)
    ports = sorted({int(p) for p in args.ports.split(",") if p})
    asyncio.run(serve(args.netns, ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
