"""`volctl console VM` and `volctl logs VM [-f]`: the guest's serial port, from anywhere.

Both find the VM's host the way `get` does, through the controller's REST view (its host,
that host's libvirt URI, the domain's console log path); `--uri` skips that lookup.  Then
they talk to the host's libvirt directly (`reconciler.backends.console`): no ssh, no file
access on the host, so they work from any machine that can reach the libvirt URI.

`console` puts the terminal in raw mode and detaches on Ctrl-] (as `virsh console`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.cli import client
from reconciler.cli.client import ApiError, Client
from reconciler.errors import VolctlError


def register(subparsers: Any) -> None:
    c = subparsers.add_parser(
        "console",
        help="attach to a VM's serial console (detach with Ctrl-])",
        description="Attach to a VM's serial console through libvirt's console stream. "
        "Detach with Ctrl-]. Works from any machine that reaches the host's libvirt URI.",
    )
    c.add_argument("name", metavar="VM")
    c.add_argument("--uri", help="libvirt URI of the VM's host (default: ask the controller)")
    c.add_argument("--force", action="store_true", help="take the console over from another client")
    c.set_defaults(func=run_console)
    lg = subparsers.add_parser(
        "logs",
        help="print a VM's serial console log",
        description="Print the VM's serial console log (read through libvirt, from any machine).",
    )
    lg.add_argument("name", metavar="VM")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    lg.add_argument("--tail", type=int, metavar="BYTES", help="start this many bytes from the end")
    lg.add_argument("--uri", help="libvirt URI of the VM's host (default: ask the controller)")
    lg.add_argument("--path", help="the log file on the host (default: from the VM's domain)")
    lg.set_defaults(func=run_logs)


@dataclass(frozen=True)
class Target:
    uri: str
    domain: str
    console_log: str | None


def _target(args: argparse.Namespace) -> Target:
    config = client.config_of(args)
    name = args.name
    if args.uri:
        path = getattr(args, "path", None)
        return Target(
            args.uri, name, path or f"{config.console_dir.rstrip('/')}/{name}+console.log"
        )
    api = Client(config)
    try:
        vm = api.get(f"/api/v1/vms/{name}")
    except ApiError as exc:
        if exc.status == 404:
            raise VolctlError(f'vm "{name}" not found by the controller') from exc
        raise
    host = vm.get("host")
    if not host:
        raise VolctlError(f'vm "{name}" has no host yet (phase {vm.get("phase")})')
    uri = api.get(f"/api/v1/hosts/{host}").get("uri")
    if not uri:
        raise VolctlError(f"the controller does not report host {host}'s URI; pass --uri")
    details = vm.get("details") or {}
    path = getattr(args, "path", None) or details.get("consoleLog")
    return Target(str(uri), str(details.get("domain") or name), path)


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_console(args: argparse.Namespace) -> int:
    # libvirt only when attaching: `volctl --help` stays fast
    from reconciler.backends.console import (
        ESCAPE,
        ConsoleSession,
        stdout_writer,
    )

    target = _target(args)
    session = ConsoleSession(target.uri, target.domain, stdout_writer(), force=args.force)
    print(f"Connected to {target.domain} on {target.uri}; escape character is ^]", flush=True)
    stdin = sys.stdin.fileno()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                data = os.read(stdin, 1024)
            except OSError:
                break
            if not data:  # stdin closed: stay attached until the stream ends
                break
            if ESCAPE in data:
                session.send(data[: data.index(ESCAPE)])
                session.close()
                break
            session.send(data)

    try:
        with _raw_terminal(stdin):
            threading.Thread(target=pump, name="console-stdin", daemon=True).start()
            session.closed.wait()
    finally:
        stop.set()
        session.close()
    print(f"\r\n[{session.reason}]", file=sys.stderr)
    return 0 if session.reason == "detached" else 1


def run_logs(args: argparse.Namespace) -> int:
    from reconciler.backends.console import follow_log, stdout_writer

    target = _target(args)
    if not target.console_log:
        raise VolctlError(f"{target.domain}: its domain has no serial log; pass --path")
    follow_log(
        target.uri,
        target.console_log,
        stdout_writer(),
        follow=args.follow,
        tail_bytes=args.tail,
    )
    return 0
