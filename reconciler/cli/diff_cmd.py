"""`volctl diff -f ...`: what `apply` would change in the spec store, as a unified diff.

Exit codes are kubectl's, so scripts can branch on them: 0 no differences, 1 differences,
2 (more than 1) for errors such as invalid documents or a resource that git owns.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from reconciler.cli import client
from reconciler.cli.client import Client
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.source.store import SpecStore, render

ERROR = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "diff",
        help="show what apply would change (exit 0 same, 1 different, 2 error)",
        description="Unified diff of the stored documents against the given ones. Exit 0 "
        "when there is no difference, 1 when there are differences, 2 on errors.",
    )
    client.add_filename(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = client.config_of(args)
    texts, problems = client.read_inputs(args.paths)
    if problems:
        client.print_diagnostics(problems, "compared")
        return ERROR
    own = client.ownership(config, Client(config))
    store = SpecStore(config.store)
    try:
        # validates everything exactly like apply does, writes nothing
        store.apply(texts, owned=own.owned, owner=own.owner, context=own.context, dry_run=True)
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "compared")
        return ERROR
    docs, _ = client.documents_of(texts)
    different = False
    for d in docs:
        path = store.path_for(d.kind, d.name)
        old = store.read(d.kind, d.name) or ""
        new = render(d.data)
        if old == new:
            continue
        different = True
        label = f"{d.kind.lower()}/{d.name}.yaml"
        sys.stdout.writelines(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"stored/{label}" if old else "/dev/null",
                tofile=f"{d.file}:{d.line}",
            )
        )
        if not old:
            print(f"# new: {path}")
    return 1 if different else 0
