"""Publish "this host is Unknown" the moment the controller learns it, not at the pass's end.

Why: a snapshot is computed once per pass, and a pass that meets a cut host may still run
actions on the other hosts (or the pool) for a long time after its observation found the
host gone; until then REST said the host was fine.  R2 measured Unknown 18-19 s after a cut
whose observation had failed 12 s earlier.  So when an observation finds a host unreachable,
or libvirt reports its connection lost, the host and the VMs placed on it turn Unknown in the
published snapshot at once (Kubernetes' node controller does the same for NodeReady): the
previous snapshot with only those facts changed.  Not a pass: generation, time, metrics and
events stay those of the last pass, whose full computation (`compute.py`) replaces this at
the end of the pass that is running.  Only the pessimistic direction is taken early; a host
seen again only turns Ready through a complete pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reconciler.model import Kind
from reconciler.status.types import Phase, ResourceStatus, Snapshot


def hosts_unknown(snap: Snapshot, reasons: Mapping[str, str]) -> Snapshot:
    """SNAP with each host of REASONS (name -> why) unreachable and its VMs Unknown.

    Returns SNAP itself when nothing changes (every such host already said so)."""
    todo = {
        h: why
        for h, why in reasons.items()
        if h in snap.hosts and (snap.hosts[h].reachable or snap.hosts[h].reason != why)
    }
    if not todo:
        return snap
    hosts = dict(snap.hosts)
    for h, why in todo.items():
        hosts[h] = replace(hosts[h], reachable=False, reason=why)
    resources = dict(snap.resources)
    for key, r in snap.resources.items():
        if r.host not in todo or r.phase in (Phase.UNKNOWN, Phase.DELETING):
            continue
        if r.kind in (Kind.HOST, Kind.VIRTUAL_MACHINE):
            resources[key] = _unknown(r, todo[r.host])
    return replace(snap, hosts=hosts, resources=resources, converged=False)


def _unknown(r: ResourceStatus, why: str) -> ResourceStatus:
    what = "host unreachable" if r.kind == Kind.HOST else f"host {r.host} is unknown"
    return replace(r, phase=Phase.UNKNOWN, last_error=f"{what}: {why}")
