"""`volctl plan`: what a pass would do now, without doing it (terraform plan style).

It observes every host and the pool, runs the same pure planner the controller runs, and
prints the pending changes.  Exit codes follow `terraform plan -detailed-exitcode`: 0 when
there is nothing to do, 2 when there are changes, 1 on error: an invalid spec, or a host or
Ceph that could not be observed ("cannot plan: ..."), since a plan on partial knowledge would
understate what is pending.
With `--git URL --rev REV` it plans one commit of the repository (merged with the apply
store) instead, for reviewing a change before it is merged (see `cli/review.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.cli import client, review

if TYPE_CHECKING:
    from reconciler.config import Config
    from reconciler.controller.wiring import BackendConnections
    from reconciler.plan.actions import Plan

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what volctl would change now (exit 0: none, 2: changes, 1: error)",
        description="Exit 0 when in sync, 2 when there are changes, 1 on error (including "
        "'cannot plan: ...' when any host or Ceph is unknown). Observe the "
        "hosts and the RBD pool, plan against the desired state and print the pending "
        "changes. Reads the configured source (store directory or git) unless -f is given; "
        "with --git/--rev, plans that git revision merged with the apply store (review a "
        "change before merging it).",
    )
    client.add_filename(
        parser,
        required=False,
        help_text="spec file or directory to plan against instead of the configured source",
    )
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="plan deletions even when they exceed the mass-deletion guard",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    review.add_git_options(parser)
    parser.set_defaults(func=run)


def run(
    args: argparse.Namespace,
    *,
    connect: Callable[[Config], BackendConnections] | None = None,
) -> int:
    from reconciler.controller.knowledge import CannotPlan, unknowns
    from reconciler.controller.oneshot import connections_for, plan_only, source_for
    from reconciler.controller.wiring import plan_settings
    from reconciler.loading.config_file import load_config
    from reconciler.logging import configure

    connector = connect or connections_for
    configure("warning")
    config = load_config(getattr(args, "config", None))
    reviewing = review.wanted(args)
    if reviewing and args.paths:
        print("plan: -f cannot be combined with --git/--rev/--branch/--path", file=sys.stderr)
        return EXIT_ERROR
    if reviewing:
        rev = args.rev or review.branch_of(config, args)
        git = review.open_source(config, args, rev)
        try:
            fetched = git.fetch()
            review.announce(git, rev)
        finally:
            git.close()
    else:
        source = source_for(config, args.paths)
        try:
            fetched = source.fetch()
        finally:
            source.close()
    if fetched.state is None:
        review.print_errors(
            fetched.errors or ("the source has no valid revision",),
            "plan: the desired state is invalid; nothing planned",
        )
        return EXIT_ERROR
    for err in fetched.errors:  # the controller's source keeps its last good revision
        print(f"warning: {err}", file=sys.stderr)
    if fetched.errors:
        print(f"warning: planning the last good revision {fetched.revision}", file=sys.stderr)
    settings = plan_settings(config, allow_mass_delete=args.allow_mass_delete)
    result = plan_only(fetched.state, lambda: connector(config), settings)
    missing = unknowns(result.observed)
    if missing:  # never "No changes" on partial knowledge
        print(f"error: {CannotPlan(missing)}", file=sys.stderr)
        return EXIT_ERROR
    if args.output == "json":
        json.dump(plan_json(result.plan), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result.plan))
    return EXIT_CHANGES if result.plan.actions else EXIT_NO_CHANGES


def render_text(plan: Plan) -> str:
    from reconciler.plan.render import render

    out = render(plan)
    return out if out.endswith("\n") else out + "\n"


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "actions": [
            {
                "id": a.id,
                "kind": str(a.kind),
                "resource": a.resource,
                "host": a.host,
                "dependsOn": list(a.depends_on),
                "before": a.before,
                "after": a.after,
                "reason": a.reason,
            }
            for a in plan.actions
        ],
        "blocked": [
            {"resource": b.resource, "reason": b.reason, "message": b.message} for b in plan.blocked
        ],
        "changes": [
            {"resource": c.resource, "op": str(c.op), "before": c.before, "after": c.after}
            for c in plan.changes
        ],
    }
