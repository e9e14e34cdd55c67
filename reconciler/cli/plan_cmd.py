"""`volctl plan`: what a pass would do now, without doing it (terraform plan style).

It observes every host and the pool, runs the same pure planner the controller runs, and
prints the pending changes.  Exit codes follow `terraform plan -detailed-exitcode`: 0 when
there is nothing to do, 2 when there are changes, 1 on error (an invalid spec included).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reconciler.config import load_config
from reconciler.controller.oneshot import (
    SourceInvalid,
    connections_for,
    desired_or_raise,
    plan_only,
    source_for,
)
from reconciler.controller.wiring import plan_settings
from reconciler.logging import configure
from reconciler.plan.actions import Plan
from reconciler.plan.render import render

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what volctl would change now (exit 0: none, 2: changes, 1: error)",
        description="Observe the hosts and the RBD pool, plan against the desired state and "
        "print the pending changes. Reads the configured source (store directory or git) "
        "unless -f is given. Exit 0 when in sync, 2 when there are changes, 1 on error.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="extend",
        nargs="+",
        metavar="PATH",
        help="spec file or directory to plan against instead of the configured source",
    )
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="plan deletions even when they exceed the mass-deletion guard",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure("warning")
    config = load_config(getattr(args, "config", None))
    source = source_for(config, args.paths)
    try:
        desired = desired_or_raise(source)
    except SourceInvalid as exc:
        for err in exc.errors:
            print(err, file=sys.stderr)
        print("plan: the desired state is invalid; nothing planned", file=sys.stderr)
        return EXIT_ERROR
    finally:
        source.close()
    settings = plan_settings(config, allow_mass_delete=args.allow_mass_delete)
    result = plan_only(desired, lambda: connections_for(config), settings)
    if args.output == "json":
        json.dump(plan_json(result.plan), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result.plan))
    unknown = [h for h in result.observed.hosts.values() if not h.reachable]
    for h in unknown:
        print(f"warning: host {h.name} is unknown: {h.reason}", file=sys.stderr)
    if not result.observed.storage.reachable:
        print(f"warning: storage unreachable: {result.observed.storage.reason}", file=sys.stderr)
    return EXIT_CHANGES if result.plan.actions else EXIT_NO_CHANGES


def render_text(plan: Plan) -> str:
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
