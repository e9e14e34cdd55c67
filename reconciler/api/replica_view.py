"""The HA parts of the REST view: `/api/v1/leader`, the replica's metrics and readiness.

Why apart from the seed and v1 modules: those render a Snapshot, identical on every replica
(followers serve the leader's published snapshot byte for byte); what differs per replica,
its role, lease and the age of the snapshot it serves, is rendered here from `ReplicaInfo`.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.api.seed import Reply
from reconciler.status.replica import ReplicaInfo
from reconciler.status.types import Snapshot


def age(snap: Snapshot, now: float | None = None) -> float | None:
    """Seconds since the pass that produced `snap` (None before the first pass)."""
    if snap.generation < 1 or not snap.time:
        return None
    return max(0.0, (now or time.time()) - snap.time)


def leader_json(info: ReplicaInfo, snap: Snapshot) -> dict[str, Any]:
    snap_age = age(snap)
    return {
        "replica": info.replica,
        "role": info.role,
        "leader": info.leader,
        "epoch": info.epoch,
        "leaseSeconds": info.lease_seconds,
        "leaseExpires": info.lease_expires,
        "takeovers": info.takeovers,
        "reason": info.reason,
        "store": info.store,
        "snapshot": {
            "generation": snap.generation,
            "ageSeconds": None if snap_age is None else round(snap_age, 3),
            "publishedBy": info.snapshot_from,
            "epoch": info.snapshot_epoch,
            "published": info.snapshot_published,
        },
        "replicas": [
            {
                "replica": r.replica,
                "role": r.role,
                "epoch": r.epoch,
                "lastSeen": r.seen,
                "leaseExpires": r.lease_expires,
            }
            for r in info.replicas
        ],
    }


def readyz(info: ReplicaInfo, snap: Snapshot) -> Reply:
    """Ready once a snapshot is served; a replica that cannot reach Ceph says so."""
    if not info.ceph_ok:
        return Reply(503, {"status": f"not ready: {info.reason}", "role": info.role})
    if snap.generation < 1:
        return Reply(503, {"status": "not ready: no status snapshot yet", "role": info.role})
    return Reply(200, {"status": "ready", "generation": snap.generation, "role": info.role})


def metrics(info: ReplicaInfo) -> str:
    """Prometheus lines of the replica (appended to the controller's /metrics)."""
    return (
        "# HELP volctl_leader 1 if this replica is the leader (acts), else 0.\n"
        "# TYPE volctl_leader gauge\n"
        f"volctl_leader {1 if info.is_leader else 0}\n"
        "# HELP volctl_lease_epoch Highest lease epoch this replica knows of.\n"
        "# TYPE volctl_lease_epoch gauge\n"
        f"volctl_lease_epoch {info.epoch}\n"
        "# HELP volctl_leader_takeovers_total Times this replica took the lease.\n"
        "# TYPE volctl_leader_takeovers_total counter\n"
        f"volctl_leader_takeovers_total {info.takeovers}\n"
        "# HELP volctl_ceph_reachable 1 if this replica reached Ceph at its last lease call.\n"
        "# TYPE volctl_ceph_reachable gauge\n"
        f"volctl_ceph_reachable {1 if info.ceph_ok else 0}\n"
    )
