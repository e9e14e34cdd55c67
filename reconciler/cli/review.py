"""Reviewing a git change before it lands: the `--git/--rev` options of `plan` and `diff`.

Why: teams review GitOps changes in pull requests.  A CI job on the pull request runs
`volctl plan --git URL --rev $HEAD_SHA` and the reviewer reads "3 to add, 1 to destroy" before
merging.  The commit is judged exactly as the controller would judge it once merged (the same
loader, merged with the apply store, the one-owner rule), but pinned: an invalid commit is an
error, never quietly replaced by the last good one as the controller does.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded with every `volctl` start: the sources only when a review runs
    from reconciler.config import Config
    from reconciler.source.composite import CompositeSource


def add_git_options(parser: argparse.ArgumentParser, *, rev_required: bool = False) -> None:
    group = parser.add_argument_group(
        "reviewing a git revision (defaults from the config's git: section)"
    )
    group.add_argument("--git", dest="git_url", metavar="URL", help="repository URL or path")
    group.add_argument(
        "--rev",
        required=rev_required,
        metavar="REV",
        help="commit sha, branch, tag or ref (e.g. refs/pull/7/head) to review; it is fetched "
        "even when it is on no branch",
    )
    group.add_argument("--branch", help="the branch the controller follows (default: main)")
    group.add_argument("--path", help="directory inside the repository (default: .)")


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "git_url", None) or getattr(args, "rev", None))


def branch_of(config: Config, args: argparse.Namespace) -> str:
    return str(args.branch or (config.git or {}).get("branch") or "main")


def open_source(config: Config, args: argparse.Namespace, rev: str) -> CompositeSource:
    """REV of the repository merged with the store; fetched at the first `fetch()`."""
    from reconciler.controller.stores import open_store
    from reconciler.source.factory import review_source

    return review_source(
        config, rev=rev, git_url=args.git_url, path=args.path, store=open_store(config)
    )


def announce(source: CompositeSource, rev: str) -> None:
    """One line on stderr saying exactly what was reviewed (stdout stays the plan/diff)."""
    sha = source.git.status().last_attempted_revision
    if sha is None:
        print(f"reviewing {source.git.url} {rev}: not fetched", file=sys.stderr)
        return
    try:
        stored = len(source.store.texts())
    except Exception:  # noqa: BLE001 - the fetch already reported an unreadable store
        stored = 0
    noun = "file" if stored == 1 else "files"
    merged = f", merged with the apply store {source.store.url} ({stored} {noun})"
    if not stored:
        merged = ""
    print(
        f"reviewing {source.git.url} {rev} (commit {sha[:12]}, path {source.git.path}){merged}",
        file=sys.stderr,
    )


def print_errors(errors: Any, what: str) -> None:
    for err in errors:
        print(err, file=sys.stderr)
    print(what, file=sys.stderr)
