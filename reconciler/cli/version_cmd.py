"""`volctl version`: volctl, the libvirt library and each host's daemon, librados and Ceph.

Like `kubectl version`, which prints client and server: the client side (volctl, the libvirt
and librados libraries) always prints; the hosts (from the configured source, or `-f`) and
the Ceph cluster (from the config) are asked with a short timeout each, and one that does not
answer is shown as unreachable instead of failing the command.  `--client` skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "version",
        help="print the versions of volctl, libvirt (library and hosts) and Ceph",
        description="Print the versions of volctl, the libvirt library, each host's libvirt "
        "daemon (hosts from the configured source or -f) and the Ceph cluster.",
    )
    p.add_argument("--client", action="store_true", help="only the local versions")
    p.add_argument("-f", "--filename", dest="paths", action="extend", nargs="+", metavar="PATH")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per host or cluster (default 5)"
    )
    p.set_defaults(func=run)


def versions(args: argparse.Namespace) -> dict[str, Any]:
    from reconciler.backends import versions as backend

    out: dict[str, Any] = {
        "volctl": metadata.version("volctl"),
        "libvirt": backend.libvirt_library(),
        "librados": backend.librados_library(),
    }
    if args.client:
        return out
    from reconciler.controller.oneshot import source_for
    from reconciler.loading.config_file import load_config

    config = load_config(getattr(args, "config", None))
    source = source_for(config, args.paths)
    hosts: dict[str, str] = {}
    try:
        fetched = source.fetch()
    finally:
        source.close()
    if fetched.state is None:
        errors = fetched.errors or ("the source has no valid revision",)
        hosts["(source)"] = f"invalid: {errors[0]}"
    else:
        for name, host in sorted(fetched.state.hosts.items()):
            hosts[name] = backend.libvirt_daemon(host.uri, timeout=args.timeout)
    out["hosts"] = hosts
    out["ceph"] = backend.ceph_cluster(config.ceph.conf, config.ceph.user, timeout=args.timeout)
    return out


def run(args: argparse.Namespace) -> int:
    found = versions(args)
    if args.output == "json":
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"volctl:   {found['volctl']}")
    print(f"libvirt:  {found['libvirt']} (library)")
    print(f"librados: {found['librados']} (library API)")
    for name, version in found.get("hosts", {}).items():
        print(f"host/{name}: libvirt {version}")
    if "ceph" in found:
        print(f"ceph:     {found['ceph']}")
    return 0
