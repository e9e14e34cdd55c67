"""`volctl apply -f FILE|DIR|-`: put documents into the controller's spec store, kubectl style.

Why the store and not a direct call to the controller: the controller is level-based and
reads its desired state from sources; `apply` only changes that desired state (atomically,
one file per resource, after validating everything) and the controller converges on its own.
`--wait` then follows the REST view until the applied resources are Ready, so a script gets
kubectl's "apply and wait" in one command; it long-polls (`?afterGeneration=N`), so the pass
that makes a resource Ready wakes it, with no one-second poll in between.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from reconciler.cli import client
from reconciler.cli.client import Client, Ownership, Unreachable
from reconciler.status.types import Phase  # value types only: stdlib underneath

if TYPE_CHECKING:
    from reconciler.source.stores import AnyStore

# phases as the REST view shows them (a Phase is its string value)
READY: frozenset[str] = frozenset({Phase.READY, Phase.STOPPED})
FAILED: frozenset[str] = frozenset({Phase.FAILED, Phase.BLOCKED, Phase.UNSCHEDULABLE})
# kinds whose readiness --wait follows (hosts report through /api/v1/hosts)
WAITED = {"vm", "volume", "attachment", "image", "instancetype"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apply",
        help="create or update resources in the spec store from files",
        description="Validate the documents (all of them, with the store's other resources) "
        "and write each resource atomically into the spec store; the controller converges. "
        "Nothing is written when any document is invalid.",
    )
    client.add_filename(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show what would change (and the plan, when the lab is reachable)",
    )
    p.add_argument("--wait", action="store_true", help="wait until the applied resources are Ready")
    p.add_argument(
        "--timeout",
        default="300s",
        help="how long --wait waits (e.g. 90, 90s, 5m; default 300s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler import durations

    timeout = durations.seconds(args.timeout, "--timeout")
    config = client.config_of(args)
    texts, problems = client.read_inputs(args.paths)
    if problems:
        client.print_diagnostics(problems, "applied")
        return 1
    api = Client(config)
    own = client.ownership(config, api)
    store = client.store_of(config)
    try:
        return _apply(args, texts, timeout, api=api, own=own, store=store)
    finally:
        store.close()


def _apply(
    args: argparse.Namespace,
    texts: list[tuple[str, str]],
    timeout: float,
    *,
    api: Client,
    own: Ownership,
    store: AnyStore,
) -> int:
    from reconciler.loading.diagnostics import SpecValidationError

    config = client.config_of(args)
    try:
        results = store.apply(
            texts,
            owned=own.owned,
            owner=own.owner or "git",
            context=own.context,
            dry_run=args.dry_run,
        )
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "applied")
        return 1
    suffix = " (dry run)" if args.dry_run else ""
    for key, result in results:
        print(f"{key} {result}{suffix}")
    if args.dry_run:
        return dry_run_plan(config, store, texts, own)
    if not args.wait:
        return 0
    return wait(api, store, [k for k, _ in results], timeout)


def dry_run_plan(config: Any, store: AnyStore, texts: list[tuple[str, str]], own: Ownership) -> int:
    """Print the actions the documents would cause, planned against the live world with the
    controller's own observe + plan (nothing is executed)."""
    from reconciler.cli.plan_cmd import render_text
    from reconciler.controller.oneshot import connections_for, plan_only
    from reconciler.controller.wiring import plan_settings
    from reconciler.loading.diagnostics import SpecValidationError

    try:
        desired = store.desired_after(texts, context=own.context)
        result = plan_only(desired, lambda: connections_for(config), plan_settings(config))
    except SpecValidationError as exc:
        client.print_diagnostics(exc.diagnostics, "planned")
        return 1
    except Exception as exc:  # noqa: BLE001 - any backend failure: the preview is optional
        print(f"(cannot plan against the live world: {exc})", file=sys.stderr)
        return 0
    from reconciler.controller.knowledge import CannotPlan, unknowns

    missing = unknowns(result.observed)
    if missing:  # a preview on partial knowledge would understate it: none at all
        print(f"({CannotPlan(missing)}; no plan against the live world)", file=sys.stderr)
        return 0
    print("\nplan against the live world (nothing was executed):")
    sys.stdout.write(render_text(result.plan))
    return 0


def _phase_line(item: dict[str, Any]) -> str:
    key = item["key"]
    phase = item.get("phase", "?")
    extra = ""
    for cond in item.get("conditions", []):
        if cond["type"] == "Ready" and cond.get("message"):
            extra = f" ({cond['message']})"
    if item.get("lastError") and phase not in READY:
        extra = f" ({item['lastError']})"
    host = f" on {item['host']}" if item.get("host") and item["kind"] == "VirtualMachine" else ""
    return f"{key} {phase}{host}{extra}"


def _expected_revision(store: AnyStore) -> str:
    from reconciler.errors import SpecError

    try:
        return store.revision_of(store.texts())
    except SpecError:
        return ""


def wait(api: Client, store: AnyStore, keys: list[str], timeout: float) -> int:
    """Follow /api/v1/snapshot until every waited key is Ready; print phase changes.  Each
    request after the first is a long poll that the controller answers when its next pass
    publishes status, so a change is seen as soon as the pass that made it ends."""
    want = [k for k in keys if k.split("/", 1)[0] in WAITED]
    revision = _expected_revision(store)
    deadline = time.monotonic() + timeout
    shown: dict[str, str] = {}
    start_gen: int | None = None
    gen: int | None = None
    while True:
        try:
            snap = client.next_snapshot(api, "/api/v1/snapshot", gen, deadline - time.monotonic())
        except Unreachable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        gen = int(snap.get("generation", 0))
        if start_gen is None:
            start_gen = gen
        src = snap.get("source") or {}
        applied = str(src.get("lastAppliedRevision") or "")
        fresh = (revision and revision in applied) or (not src and gen >= start_gen + 2)
        if src.get("error") and revision and revision in str(src.get("lastAttemptedRevision")):
            print(f"error: the controller rejected the store:\n{src['error']}", file=sys.stderr)
            return 1
        items = _index(snap)
        done = fresh
        failed = []
        if not fresh and not shown:
            print(f"waiting for the controller to read the store (revision {revision})", flush=True)
            shown[""] = "waiting"
        for key in want:
            item = items.get(key)
            line = _phase_line(item) if item else f"{key} not reported by the controller yet"
            if fresh and shown.get(key) != line:
                print(line, flush=True)
                shown[key] = line
            if not fresh or item is None or item.get("phase") not in READY:
                done = False
            if fresh and item is not None and item.get("phase") in FAILED:
                failed.append(key)
        if failed:
            print(f"error: {', '.join(failed)} failed", file=sys.stderr)
            return 1
        if done:
            print(f"all {len(want)} resources Ready (generation {gen})")
            return 0
        if time.monotonic() >= deadline:
            pending = [k for k in want if items.get(k, {}).get("phase") not in READY]
            print(
                f"error: timed out after {timeout:.0f}s; not Ready: {', '.join(pending)}",
                file=sys.stderr,
            )
            return 1


def _index(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The snapshot's resources by the store's keys ("vm/NAME"), the keys `apply` printed."""
    from reconciler.source.documents import short_key

    out: dict[str, dict[str, Any]] = {}
    for coll in ("vms", "volumes", "attachments", "images", "types"):
        for item in snap.get(coll, []):
            key = short_key(item["kind"], item["name"])
            item["key"] = key
            out[key] = item
    return out
