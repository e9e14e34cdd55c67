"""`volctl reconcile --once`: one full pass, then exit 0 only if the world has converged.

Meant for CI jobs and cron-style use without a long-running controller.  The pass is the
controller's own (fetch, observe, plan, execute, re-observe); the exit code says whether the
re-observed world matches the desired state, and a summary names every resource that is
not there yet and why.  A host or Ceph that cannot be observed makes the pass refuse to plan
("cannot plan: ...", exit 1): nothing is executed on partial knowledge.  The pass is a
controller's work, so it is refused while `volctl run` holds the store.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from reconciler.cli import client

if TYPE_CHECKING:
    from reconciler.status.types import Snapshot


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="run one reconcile pass; exit 0 only if converged",
        description="Run one reconcile pass against the configured source (or -f files) and "
        "exit 0 only if the world has converged; otherwise print what is left and exit 1. "
        "Exit 1 with 'cannot plan: ...' (and change nothing) when a host or Ceph is unknown.",
    )
    parser.add_argument("--once", action="store_true", required=True, help="run one pass")
    client.add_filename(
        parser,
        required=False,
        help_text="spec file or directory to reconcile instead of the configured source",
    )
    parser.add_argument("--allow-mass-delete", action="store_true")
    parser.add_argument("--log-level", default="info", help="structlog level (default info)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.controller.knowledge import CompleteKnowledge
    from reconciler.controller.oneshot import source_for
    from reconciler.controller.store_lock import StoreLock
    from reconciler.controller.wiring import build_runtime
    from reconciler.loading.config_file import load_config
    from reconciler.logging import configure
    from reconciler.plan.planner import plan as default_planner
    from reconciler.source.stores import refuse_unfenced

    configure(args.log_level)
    config = load_config(getattr(args, "config", None))
    refuse_unfenced(config, "volctl reconcile --once")
    source = source_for(config, args.paths)
    gate = CompleteKnowledge(default_planner)
    rt = build_runtime(config, source, allow_mass_delete=args.allow_mass_delete, planner=gate)
    lock = contextlib.nullcontext() if args.paths else StoreLock(config.store)
    try:
        with lock:  # a pass is a controller's work: not while `volctl run` holds the store
            result = rt.engine.run_pass(frozenset({"once"}))
    finally:
        rt.close()
    if gate.refused is not None:  # nothing was executed on partial knowledge
        print(f"error: {gate.refused}", file=sys.stderr)
        return 1
    sys.stdout.write(summary(result.snapshot))
    return 0 if result.snapshot.converged else 1


def summary(snap: Snapshot) -> str:
    """Human summary of a snapshot: counts, actions run, and what is not converged."""
    from reconciler.status.types import Phase

    quiet = (Phase.READY, Phase.STOPPED, Phase.RELEASED)
    lines: list[str] = []
    if snap.source is not None and snap.source.error:
        lines.append(f"source error: {snap.source.error}")
    if snap.last_error:
        lines.append(f"error: {snap.last_error}")
    ran = {k: v for k, v in snap.metrics.actions_total.items() if v}
    if ran:
        parts = [f"{kind} {result}: {n}" for (kind, result), n in sorted(ran.items())]
        lines.append("actions: " + ", ".join(parts))
    for h in snap.hosts.values():
        if not h.reachable:
            lines.append(f"host/{h.name}: Unknown: {h.reason}")
    for key, r in sorted(snap.resources.items()):
        if r.phase in quiet or key.startswith("host/"):
            continue
        why = r.last_error or next((c.message for c in r.conditions if c.message), "")
        lines.append(f"{key}: {r.phase}" + (f": {why}" if why else ""))
    state = "converged" if snap.converged else "NOT converged"
    n = len(snap.resources)
    lines.append(f"{state}: {n} resources, {snap.pending_actions} actions pending")
    return "\n".join(lines) + "\n"
