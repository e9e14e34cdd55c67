"""`volctl describe KIND NAME`: one resource in full, the way `kubectl describe` shows it.

The spec comes from where it is defined (the apply store, or the git cache for git-owned
resources), the status, conditions and recent events from the controller's REST view.  Both
halves are shown side by side because "what I asked for" next to "what happened" is what a
person debugging a resource needs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from reconciler.cli import client
from reconciler.cli.client import ApiError, Client
from reconciler.cli.get_cmd import COLLECTION, table


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "describe",
        help="show a resource's spec, status, conditions and events",
        description="KIND: vm, volume, attachment, host, image, type.",
    )
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace, api: Client, kind: str, name: str) -> tuple[str, Any]:
    from reconciler.source.store import documents_of

    config = client.config_of(args)
    store = client.store_of(config)
    text = store.read(kind, name)
    if text is not None:
        docs, _ = documents_of([(str(store.path_for(kind, name)), text)])
        if docs:
            return f"apply store ({docs[0].file})", docs[0].data.get("spec")
    own = client.ownership(config, api)
    docs, _ = documents_of(own.context)
    for d in docs:
        if d.kind == kind and d.name == name:
            return f"{own.owner}: {d.file}:{d.line}", d.data.get("spec")
    return "not found in the apply store or git cache", None


def _block(title: str, value: Any) -> list[str]:
    import yaml

    if value in (None, {}, []):
        return [f"{title}:  <none>"]
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()
    return [f"{title}:", *("  " + line for line in text.splitlines())]


def _events(events: list[dict[str, Any]], now: float) -> list[str]:
    if not events:
        return ["Events:  <none>"]
    rows = [[client.age(e["time"], now), e["type"], e["reason"], e["message"]] for e in events]
    return [
        "Events:",
        *("  " + line for line in table(["AGE", "TYPE", "REASON", "MESSAGE"], rows).splitlines()),
    ]


def run(args: argparse.Namespace) -> int:
    from reconciler.source.documents import short_key

    kind = client.kind_of(args.kind)
    api = Client(client.config_of(args))
    coll = COLLECTION[kind]
    key = short_key(kind, args.name)
    try:
        item = api.get(f"/api/v1/{coll}/{args.name}")
        now = float(api.get("/api/v1/status").get("time") or time.time())
        events = api.get("/api/v1/events", resource=key, limit="20")["items"]
    except ApiError as exc:
        if exc.status != 404:
            raise
        print(f'error: {args.kind} "{args.name}" not found by the controller', file=sys.stderr)
        return 1
    where, spec = _spec(args, api, kind, args.name)
    lines = [f"Name:         {args.name}", f"Kind:         {kind}"]
    if kind == "Host":
        lines += [
            f"Status:       {'Ready' if item['reachable'] else 'Unknown'}",
            f"PMID:         {item['pmid']}",
            f"Reason:       {item.get('reason') or '<none>'}",
            f"CPUs:         {item['cpus']} (ours {item['cpuUsedOurs']}, "
            f"foreign {item['cpuUsedForeign']})",
            f"Memory MiB:   {item['memoryMiB']} (ours {item['ramUsedOursMiB']}, "
            f"foreign {item['ramUsedForeignMiB']})",
            f"Domains:      ours {item['domainsOurs']}, foreign {item['domainsForeign']}",
            f"Virt type:    {item.get('virtType') or '<unknown>'}"
            + (" (forced by spec.virtType)" if item.get("virtTypeForced") else ""),
            f"Arches:       {', '.join(item.get('arches') or []) or '<unknown>'}",
        ]
    else:
        ids = ", ".join(f"{k}={v}" for k, v in sorted(item.get("ids", {}).items())) or "<none>"
        lines += [
            f"Phase:        {item['phase']}",
            f"Host:         {item.get('host') or '<none>'}",
            f"IDs:          {ids}",
            f"Spec hash:    observed {item.get('observedSpecHash') or '-'}, "
            f"desired {item.get('desiredSpecHash') or '-'}",
            f"Last error:   {item.get('lastError') or '<none>'}",
            f"Age:          {client.age(item.get('created'), now)}",
        ]
    lines.append(f"Defined in:   {where}")
    lines += _block("Spec", spec)
    if kind != "Host":
        lines += _block("Details", item.get("details"))
        conds = item.get("conditions") or []
        if conds:
            rows = [[c["type"], c["status"], c["reason"], c.get("message") or ""] for c in conds]
            lines.append("Conditions:")
            lines += [
                "  " + ln
                for ln in table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows).splitlines()
            ]
        else:
            lines.append("Conditions:  <none>")
        events = events or item.get("events") or []
    lines += _events(events, now)
    print("\n".join(lines))
    return 0
