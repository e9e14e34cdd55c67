"""`volctl get leader`: which HA replica leads, at which epoch, until when, and who is seen.

Why through the REST view: any replica answers `/api/v1/leader` (followers from the lease
record and the heartbeats in RADOS), so the command works wherever `api:` points, like every
other `get`.  A replica that cannot reach Ceph says so here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from reconciler.cli.client import ApiError, Client


def _when(ts: Any, now: float) -> str:
    if not ts:
        return "-"
    delta = float(ts) - now
    stamp = time.strftime("%H:%M:%S", time.localtime(float(ts)))
    return f"{stamp} (in {delta:.1f}s)" if delta >= 0 else f"{stamp} ({-delta:.1f}s ago)"


def show(api: Client, output: str) -> int:
    try:
        body = api.get("/api/v1/leader")
    except ApiError as exc:
        if exc.status == 404:
            print("error: this controller is not an HA replica (its store is not rados://)")
            return 1
        raise
    if output == "json":
        print(json.dumps(body, indent=2))
        return 0
    if output == "yaml":
        import yaml  # only for this output

        print(yaml.safe_dump(body, sort_keys=False), end="")
        return 0
    now = time.time()
    snap = body.get("snapshot") or {}
    age = snap.get("ageSeconds")
    print(f"LEADER:         {body.get('leader') or '-'}")
    print(f"EPOCH:          {body['epoch']}")
    print(
        f"LEASE:          {body['leaseSeconds']:g}s, expires {_when(body.get('leaseExpires'), now)}"
    )
    print(f"ANSWERED BY:    {body['replica']} ({body['role']}: {body['reason']})")
    print(f"STORE:          {body['store']}")
    print(
        f"SNAPSHOT:       generation {snap.get('generation')}, "
        f"{'-' if age is None else f'{age:.1f}s old'}, from {snap.get('publishedBy') or '-'}"
    )
    print("REPLICAS SEEN:")
    for r in body.get("replicas", []):
        seen = now - float(r["lastSeen"])
        print(f"  {r['replica']:<24} {r['role']:<12} epoch {r['epoch']:<4} seen {seen:.1f}s ago")
    return 0
