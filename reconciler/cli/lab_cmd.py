"""`volctl lab up|down|status|env|prepare`: a real local datacenter for trying volctl and for tests.

Thin on purpose: parsing and printing only; everything else is in `reconciler.lab.lab`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

# stdlib only below reconciler.lab.state: the defaults the help text shows
from reconciler.lab.state import DEFAULT_DIR, default_cache_dir


def _default_dir() -> str:
    return os.environ.get("VOLCTL_LAB_DIR", str(DEFAULT_DIR))


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="run a local lab: single-node Ceph + N libvirtd hosts",
        description="A real local datacenter on this machine (root, loopback only).",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir",
            default=_default_dir(),
            help="lab directory (default: $VOLCTL_LAB_DIR or %(default)s)",
        )

    up = sub.add_parser("up", help="bring the lab up (idempotent)")
    common(up)
    up.add_argument("--hosts", type=int, default=3, help="number of libvirt hosts (default 3)")
    up.add_argument(
        "--mon-port",
        type=int,
        help="Ceph mon msgr v1 port (default 6789 if free, else a free port)",
    )
    up.add_argument(
        "--mon-v2-port",
        type=int,
        help="Ceph mon msgr v2 port (default 3300 if free, else a free port)",
    )
    up.add_argument(
        "--cache-dir",
        default=str(default_cache_dir()),
        help="kernel and base image cache, kept by `down` "
        "(default: $VOLCTL_LAB_CACHE or %(default)s)",
    )
    up.add_argument(
        "--netns",
        action="store_true",
        help="run each host in its own network namespace, reached by qemu+tcp over a "
        "private bridge (lets tests cut a host's link)",
    )
    up.add_argument(
        "--transport",
        choices=("tcp", "ssh"),
        default=None,
        help="with --netns, how volctl reaches the hosts: qemu+tcp (default) or qemu+ssh "
        "through an sshd in each host's namespace, with a key and known_hosts of the lab's "
        "own in DIR/ssh (the seed's user@host transport)",
    )
    up.add_argument(
        "--store",
        choices=("dir", "rados"),
        default="dir",
        help="spec store the lab config names: the lab's store/ directory (default) or "
        "rados://<lab pool>/volctl for HA replicas (docs/ha.md)",
    )
    up.set_defaults(func=_up)

    prep = sub.add_parser(
        "prepare", help="build the kernel + base image cache now (what a cold `up` would do)"
    )
    prep.add_argument(
        "--cache-dir",
        default=str(default_cache_dir()),
        help="(default: $VOLCTL_LAB_CACHE or %(default)s)",
    )
    prep.set_defaults(func=_prepare)

    down = sub.add_parser("down", help="stop everything the lab started and remove it")
    common(down)
    down.add_argument("--keep", action="store_true", help="keep the lab dir (logs) after stopping")
    down.set_defaults(func=_down)

    status = sub.add_parser("status", help="table of lab components, PIDs, addresses, health")
    common(status)
    status.set_defaults(func=_status)

    env = sub.add_parser("env", help='print shell exports (eval "$(volctl lab env)")')
    common(env)
    env.set_defaults(func=_env)


def _up(args: argparse.Namespace) -> int:
    from reconciler.lab.lab import Lab

    lab = Lab(args.dir)
    info = lab.up(
        args.hosts,
        mon_port=args.mon_port,
        mon_v2_port=args.mon_v2_port,
        cache_dir=Path(args.cache_dir),
        netns=args.netns,
        transport=args.transport,
    )
    from reconciler.lab.inventory import set_store

    set_store(
        Path(info.config_path),
        f"rados://{info.pool}/volctl" if args.store == "rados" else str(Path(info.dir) / "store"),
    )
    print(f"lab ready in {info.dir}")
    print(f"  inventory: {info.inventory_path}")
    print(f"  config:    {info.config_path}")
    print(f"  hosts:     {' '.join(h.name for h in info.hosts)}")
    print(f'next: eval "$(volctl lab env --dir {info.dir})"; volctl lab status --dir {info.dir}')
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from reconciler.lab.guest_image import ensure_base_image

    image = ensure_base_image(Path(args.cache_dir), lambda msg: print(msg, file=sys.stderr))
    print(image)
    return 0


def _down(args: argparse.Namespace) -> int:
    from reconciler.lab.lab import Lab

    Lab(args.dir).down(keep=args.keep)
    return 0


def _status(args: argparse.Namespace) -> int:
    from reconciler.lab.lab import Lab

    lab = Lab(args.dir)
    rows = lab.status()
    if not rows:
        print(f"no lab in {lab.dir}")
        return 1
    table = [("COMPONENT", "PID", "URI/ADDRESS", "HEALTH")]
    table += [(r["component"], str(r["pid"] or "-"), r["addr"], r["health"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    healthy = all(
        r["health"] in ("HEALTH_OK", "running") or r["health"].startswith("ok") for r in rows
    )
    return 0 if healthy else 1


def _env(args: argparse.Namespace) -> int:
    from reconciler.lab.lab import Lab

    lab = Lab(args.dir)
    if not (lab.dir / "lab.json").exists():
        print(f"no lab in {lab.dir}; run `volctl lab up` first", file=sys.stderr)
        return 1
    for key, value in lab.env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0
