"""`volctl doctor`: preflight checks of a site, a table (or JSON) with a fix per failure.

Exit 0 when every check passes, 1 otherwise.  The checks themselves live in
`reconciler.doctor`; this module only reads the desired Hosts and prints.  Heavy modules
(the Ceph and libvirt bindings) are imported inside `run`, so `volctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check that this site is ready: hosts, QEMU/RBD, secrets, Ceph caps, clocks",
        description="Check every Host URI (libvirt and QEMU versions, the ceph secret, QEMU "
        "opening an RBD scratch image, the clock), Ceph as the configured user (monitors, "
        "pool, caps for create/meta/lock/clone/blocklist/remove, proven on a scratch image "
        "that is removed), the spec store and the REST address. Exit 0 when all pass, 1 "
        "otherwise.",
    )
    p.add_argument(
        "-f", "--filename", dest="paths", action="extend", nargs="+", metavar="PATH",
        help="spec files or directories with the Host documents (default: the configured "
        "source)",
    )  # fmt: skip
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument(
        "--fix-secrets",
        action="store_true",
        help="define the ceph secret on hosts that lack it, from the controller's keyring "
        "(prints no key; existing secrets are left alone)",
    )
    p.add_argument("--max-clock-skew", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="per probe call (default 10)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.controller.oneshot import source_for
    from reconciler.doctor import DoctorSettings, run_doctor
    from reconciler.doctor.render import as_json, table
    from reconciler.doctor.result import all_passed
    from reconciler.loading.config_file import load_config
    from reconciler.logging import configure

    configure("warning")
    config = load_config(getattr(args, "config", None))
    source = source_for(config, args.paths)
    try:
        fetched = source.fetch()
    finally:
        source.close()
    for err in fetched.errors:
        print(err, file=sys.stderr)
    if fetched.state is None:
        print("doctor: the desired state is invalid; fix it first", file=sys.stderr)
        return 1
    desired = fetched.state
    settings = DoctorSettings(
        fix_secrets=args.fix_secrets, max_clock_skew=args.max_clock_skew, timeout=args.timeout
    )
    hosts = sorted(desired.hosts.values(), key=lambda h: h.meta.name)
    results = run_doctor(config, hosts, settings)
    sys.stdout.write(as_json(results) if args.output == "json" else table(results))
    return 0 if all_passed(results) else 1
