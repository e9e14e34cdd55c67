"""`volctl delete -f FILE` and `volctl delete KIND NAME...`: take resources out of the store.

Deleting only changes the desired state; the controller then converges (destroys the VM and
its root disk, detaches, and deletes a volume only when its reclaimPolicy is Delete).  The
rest of the store must stay valid, so deleting an InstanceType that VMs still use is refused
with the loader's diagnostics, and resources that git owns are refused with repo and path.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reconciler.cli import client
from reconciler.cli.client import Client
from reconciler.errors import VolctlError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "delete",
        help="remove resources from the spec store (the controller converges)",
        description="Remove resources named in files (-f) or by KIND NAME... "
        "(KIND: vm, volume, attachment, host, image, type; or KIND/NAME).",
    )
    p.add_argument("names", nargs="*", metavar="KIND NAME", help="e.g. vm test_vm, or vm/test_vm")
    client.add_filename(p, required=False)
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.set_defaults(func=run)


def targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    from reconciler.loading.diagnostics import SpecValidationError
    from reconciler.source.store import documents_of

    out: list[tuple[str, str]] = []
    if args.paths:
        texts, problems = client.read_inputs(args.paths)
        if problems:
            raise SpecValidationError(problems)
        docs, problems = documents_of(texts)
        if problems:
            raise SpecValidationError(problems)
        out.extend((d.kind, d.name) for d in docs)
    words = list(args.names)
    if words and "/" in words[0]:
        for word in words:
            kind, _, name = word.partition("/")
            if not name:
                raise VolctlError(f"{word!r}: expected KIND/NAME")
            out.append((client.kind_of(kind), name))
    elif words:
        kind = client.kind_of(words[0])
        if len(words) < 2:
            raise VolctlError(f"delete {words[0]}: which one? give a NAME")
        out.extend((kind, name) for name in words[1:])
    if not out:
        raise VolctlError("nothing to delete: give -f FILE or KIND NAME")
    return out


def run(args: argparse.Namespace) -> int:
    from reconciler.loading.diagnostics import SpecValidationError
    from reconciler.source.store import short_key

    config = client.config_of(args)
    try:
        wanted = targets(args)
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "deleted")
        return 1
    own = client.ownership(config, Client(config))
    refused = [
        f"error: {short_key(k, n)} is managed by {own.owner} ({own.owned[short_key(k, n)]}); "
        "remove it there"
        for k, n in wanted
        if short_key(k, n) in own.owned
    ]
    if refused:
        print("\n".join(refused), file=sys.stderr)
        return 1
    store = client.store_of(config)
    try:
        gone = store.delete(wanted, context=own.context, dry_run=args.dry_run)
    except SpecValidationError as exc:
        print("error: the store would be invalid without these resources:", file=sys.stderr)
        client.print_diagnostics(exc.diagnostics, "deleted")
        return 1
    suffix = " (dry run)" if args.dry_run else ""
    for key in gone:
        print(f"{key} deleted{suffix}")
    missing = [short_key(k, n) for k, n in wanted if short_key(k, n) not in gone]
    for key in missing:
        print(f"error: {key} not found in the spec store ({config.store})", file=sys.stderr)
    return 1 if missing else 0
