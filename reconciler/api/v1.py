"""`/api/v1`: the snapshot as JSON, one collection per kind, for the CLI and the dashboard.

Why a second API next to the seed's: the seed's bodies cannot carry phases, conditions,
events or hosts, and `volctl get/describe` and the dashboard need exactly those.  Shapes are
camelCase like Kubernetes status; every body comes from the immutable snapshot, so a request
costs a dict walk and never touches libvirt or Ceph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from reconciler.api.seed import Reply, attached_vm, tid_of
from reconciler.source.protocol import SourceStatus
from reconciler.status.types import (
    Event,
    HostStatus,
    Phase,
    ResourceStatus,
    Snapshot,
    StorageStatus,
)

# collection name -> ResourceStatus.kind
COLLECTIONS: dict[str, str] = {
    "vms": "VirtualMachine",
    "volumes": "Volume",
    "attachments": "VolumeAttachment",
    "images": "Image",
    "types": "InstanceType",
    "instancetypes": "InstanceType",
}
MAX_EVENTS = 500


def event_json(ev: Event) -> dict[str, Any]:
    return {
        "time": ev.time,
        "type": ev.type,
        "reason": ev.reason,
        "message": ev.message,
        "resource": ev.resource,
    }


def resource_json(snap: Snapshot, res: ResourceStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": res.kind,
        "name": res.name,
        "phase": res.phase.value,
        "host": res.host,
        "pmid": res.pmid,
        "ids": dict(res.ids),
        "details": dict(res.details),
        "conditions": [
            {
                "type": c.type.value,
                "status": "True" if c.status else "False",
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": c.last_transition,
            }
            for c in res.conditions
        ],
        "observedSpecHash": res.observed_spec_hash,
        "desiredSpecHash": res.desired_spec_hash,
        "lastError": res.last_error,
        "created": res.created,
        "labels": dict(res.labels),
        "events": [event_json(e) for e in res.events],
    }
    if res.kind == "VirtualMachine":
        out["instanceType"] = res.details.get("instanceType")
        out["tid"] = tid_of(snap, res)
    if res.kind == "Volume":
        vm = attached_vm(snap, res)
        out["attachedTo"] = vm.name if vm is not None else None
    return out


def host_json(h: HostStatus, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": h.name,
        "pmid": h.pmid,
        "reachable": h.reachable,
        "reason": h.reason,
        "cpus": h.cpus,
        "memoryMiB": h.memory_mib,
        "cpuUsedOurs": h.cpu_used_ours,
        "cpuUsedForeign": h.cpu_used_foreign,
        "ramUsedOursMiB": h.ram_used_ours_mib,
        "ramUsedForeignMiB": h.ram_used_foreign_mib,
        "domainsOurs": h.domains_ours,
        "domainsForeign": h.domains_foreign,
        "uri": h.uri,
        "virtType": h.virt_type,
        "virtTypeForced": h.virt_type_forced,
        "arches": list(h.arches),
        "phase": str(Phase.READY if h.reachable else Phase.UNKNOWN),
        "labels": dict(labels or {}),
    }


def _host_labels(snap: Snapshot, name: str) -> Mapping[str, str]:
    res = snap.resources.get(f"host/{name}")
    return res.labels if res is not None else {}


def source_json(src: SourceStatus | None) -> dict[str, Any] | None:
    if src is None:
        return None
    return {
        "kind": src.kind,
        "url": src.url,
        "path": src.path,
        "branch": src.branch,
        "lastAppliedRevision": src.last_applied_revision,
        "lastAttemptedRevision": src.last_attempted_revision,
        "error": src.error,
        "owned": dict(src.owned),
    }


def summary_json(snap: Snapshot) -> dict[str, Any]:
    phases: Counter[str] = Counter(r.phase.value for r in snap.resources.values())
    return {
        "generation": snap.generation,
        "time": snap.time,
        "converged": snap.converged,
        "reconcileId": snap.reconcile_id,
        "lastPassSeconds": snap.last_pass_seconds,
        "lastError": snap.last_error,
        "pendingActions": snap.pending_actions,
        "phases": dict(phases),
        "source": source_json(snap.source),
        "storage": storage_json(snap.storage),
    }


def storage_json(st: StorageStatus | None) -> dict[str, Any] | None:
    if st is None:
        return None
    return {"pool": st.pool, "reachable": st.reachable, "reason": st.reason}


def _items(snap: Snapshot, kind: str) -> list[dict[str, Any]]:
    return [resource_json(snap, r) for r in sorted(snap.of_kind(kind), key=lambda r: r.name)]


def snapshot_json(snap: Snapshot, events: int = 50) -> dict[str, Any]:
    """Everything the dashboard shows, in one body (one poll, one consistent pass)."""
    out = summary_json(snap)
    for coll in ("vms", "volumes", "attachments", "images", "types"):
        out[coll] = _items(snap, COLLECTIONS[coll])
    hosts = sorted(snap.hosts.values(), key=lambda h: h.name)
    out["hosts"] = [host_json(h, _host_labels(snap, h.name)) for h in hosts]
    out["events"] = [event_json(e) for e in snap.events[-events:]]
    return out


def _limit(query: Mapping[str, list[str]]) -> int | Reply:
    raw = (query.get("limit") or ["100"])[0]
    # ASCII digits, and few of them: isdigit() is true for '²', and int() refuses it and
    # anything over 4300 digits (both were 500s in R5)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 0 < int(raw) <= MAX_EVENTS:
        return Reply(400, {"error": f"limit must be an integer from 1 to {MAX_EVENTS}"})
    return int(raw)


def route(snap: Snapshot, path: str, query: Mapping[str, list[str]]) -> Reply | None:
    """The /api/v1 endpoint at `path`, or None when there is none."""
    if not path.startswith("/api/v1"):
        return None
    parts = [p for p in path[len("/api/v1") :].split("/") if p]
    if not parts:
        return Reply(200, {"collections": [*COLLECTIONS, "hosts", "events", "source", "status"]})
    head, rest = parts[0], parts[1:]
    if len(rest) > 1:
        return None
    name = rest[0] if rest else None
    if head in COLLECTIONS:
        kind = COLLECTIONS[head]
        if name is None:
            return Reply(
                200, {"kind": kind, "generation": snap.generation, "items": _items(snap, kind)}
            )
        for res in snap.of_kind(kind):
            if res.name == name:
                return Reply(200, resource_json(snap, res))
        return Reply(404, {"error": f"{head[:-1]} {name!r} not found"})
    if head == "hosts":
        if name is None:
            hosts = sorted(snap.hosts.values(), key=lambda h: h.name)
            return Reply(
                200,
                {
                    "generation": snap.generation,
                    "items": [host_json(h, _host_labels(snap, h.name)) for h in hosts],
                },
            )
        host = snap.hosts.get(name)
        if host is None:
            return Reply(404, {"error": f"host {name!r} not found"})
        return Reply(200, host_json(host, _host_labels(snap, name)))
    if name is not None:
        return None
    if head == "events":
        limit = _limit(query)
        if isinstance(limit, Reply):
            return limit
        wanted = (query.get("resource") or [""])[0]
        events = [e for e in snap.events if not wanted or e.resource == wanted]
        return Reply(200, {"items": [event_json(e) for e in events[-limit:]]})
    if head == "source":
        return Reply(200, source_json(snap.source) or {"kind": None})
    if head == "status":
        return Reply(200, summary_json(snap))
    if head == "snapshot":
        return Reply(200, snapshot_json(snap))
    return None
