"""`volctl diff`: what would change in the desired state, as a unified diff.

`diff -f ...` compares the given documents with the spec store (what `apply` would write);
`diff --rev REV` compares a git revision with the branch the controller follows (what merging
a pull request would change), after validating REV merged with the store as the controller
would.  Exit codes are kubectl's, so scripts can branch on them: 0 no differences,
1 differences, 2 (more than 1) for every error: invalid documents, a resource that git owns,
an unreadable store, a revision that cannot be fetched, a bad config.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import TYPE_CHECKING, Any

from reconciler.cli import client, review
from reconciler.cli.client import Client
from reconciler.errors import VolctlError

if TYPE_CHECKING:
    from reconciler.config import Config
    from reconciler.source.store import StoredDocument

SAME = 0
DIFFERENT = 1
ERROR = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "diff",
        help="show what apply (or merging a git revision) would change "
        "(exit 0 same, 1 different, 2 error)",
        description="Unified diff of the stored documents against the given ones (-f), or of "
        "the followed git branch against a revision (--rev). Exit 0 when there is no "
        "difference, 1 when there are differences, 2 on any error.",
    )
    client.add_filename(p, required=False)
    review.add_git_options(p)
    p.add_argument(
        "--base",
        metavar="REV",
        help="with --rev: the revision to compare with (default: the branch the controller "
        "follows)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (VolctlError, OSError) as exc:  # kubectl: every error is > 1, never "different"
        print(f"error: {exc}", file=sys.stderr)
        return ERROR


def _run(args: argparse.Namespace) -> int:
    config = client.config_of(args)
    if review.wanted(args) or args.base:
        if args.paths or not args.rev:
            print("diff: give either -f PATH... or --rev REV (with --git/--base)", file=sys.stderr)
            return ERROR
        return _revisions(config, args)
    if not args.paths:
        print("diff: give -f PATH... (or --rev REV to review a git revision)", file=sys.stderr)
        return ERROR
    return _files(config, args)


def _files(config: Config, args: argparse.Namespace) -> int:
    from reconciler.loading.diagnostics import SpecValidationError
    from reconciler.source.store import documents_of, render

    texts, problems = client.read_inputs(args.paths)
    if problems:
        client.print_diagnostics(problems, "compared")
        return ERROR
    own = client.ownership(config, Client(config))
    store = client.store_of(config)
    try:
        # validates everything exactly like apply does, writes nothing
        store.apply(texts, owned=own.owned, owner=own.owner, context=own.context, dry_run=True)
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "compared")
        return ERROR
    docs, _ = documents_of(texts)
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
    return DIFFERENT if different else SAME


def _revisions(config: Config, args: argparse.Namespace) -> int:
    from reconciler.source.store import documents_of

    """Per resource, the documents at the base revision against those at REV."""
    base_rev = args.base or review.branch_of(config, args)
    target = review.open_source(config, args, args.rev)
    base = review.open_source(config, args, base_rev)
    try:
        fetched = target.fetch()
        review.announce(target, args.rev)
        if fetched.state is None:
            review.print_errors(fetched.errors, "diff: the revision is invalid; nothing compared")
            return ERROR
        new_sha = target.git.head()
        old_sha = base.git.head()
        new, _ = documents_of(target.git.texts_at(new_sha))
        old, _ = documents_of(base.git.texts_at(old_sha))
    finally:
        target.close()
        base.close()
    print(f"comparing with {base_rev} (commit {old_sha[:12]})", file=sys.stderr)
    return DIFFERENT if _write(old, new, old_sha, new_sha) else SAME


def _write(
    old: list[StoredDocument], new: list[StoredDocument], old_sha: str, new_sha: str
) -> bool:
    from reconciler.source.store import render

    before = {(d.kind, d.name): d for d in old}
    after = {(d.kind, d.name): d for d in new}
    keys = list(after) + [k for k in before if k not in after]
    different = False
    for key in keys:
        a, b = before.get(key), after.get(key)
        old_text = render(a.data) if a else ""
        new_text = render(b.data) if b else ""
        if old_text == new_text:
            continue
        different = True
        sys.stdout.writelines(
            difflib.unified_diff(
                old_text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=f"git {old_sha[:12]}:{a.file}:{a.line}" if a else "/dev/null",
                tofile=f"git {new_sha[:12]}:{b.file}:{b.line}" if b else "/dev/null",
            )
        )
    return different
