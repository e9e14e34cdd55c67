"""`volctl store migrate --from DIR|rados://… --to DIR|rados://…`: move the spec store.

Why a command: going from one machine (the directory store) to an HA control plane (the
RADOS store, docs/ha.md) and back must not mean re-applying every file by hand; this copies
each resource's stored text as is.  Stop the controllers (or point them at the new store
right after), since a controller reads only the store its config names.
"""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli import client


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("store", help="manage the spec store (migrate)")
    sub = p.add_subparsers(dest="store_command", metavar="SUBCOMMAND")
    sub.required = True
    m = sub.add_parser(
        "migrate",
        help="copy every resource from one store to another (directory or rados://POOL/NS)",
        description="Copy each resource's stored text unchanged.  A non-empty target is "
        "refused unless --force, which makes the target equal to the source.",
    )
    m.add_argument("--from", dest="source", required=True, metavar="STORE")
    m.add_argument("--to", dest="target", required=True, metavar="STORE")
    m.add_argument("--force", action="store_true", help="replace a non-empty target")
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from reconciler.controller.stores import open_store
    from reconciler.loading.diagnostics import SpecValidationError
    from reconciler.source.migrate import migrate

    config = client.config_of(args)
    source = open_store(config, args.source)
    target = open_store(config, args.target)
    try:
        done = migrate(source, target, force=args.force)
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "migrated")
        return 1
    finally:
        source.close()
        target.close()
    print(
        f"migrated {source.url} -> {target.url}: {done.copied} written, "
        f"{done.unchanged} unchanged, {done.removed} removed"
    )
    return 0
