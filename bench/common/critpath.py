"""The physical limit for B1: how fast *any* tool could converge with the parallelism used.

Inputs are the per-call times the baseline measured in the same run (it makes exactly the
unavoidable calls, one at a time, uncontended by itself): per VM an RBD clone and resize, a
define, a start, an RBD create and a live attach.  With `per_host` concurrent libvirt calls
per host and `total` concurrent actions overall, no schedule can finish sooner than the
largest of:

* the busiest host's serial libvirt time divided by `per_host`;
* all work (libvirt on every host plus every RBD call) divided by `total`;
* the RBD work alone divided by `total` (one cluster serves every host);
* the longest single VM chain (clone -> define -> start -> attach), which cannot overlap.

That maximum is the bound; volctl ÷ bound says how much of the wall time is overhead.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.tools.base import Call

CHAIN = ("rbd.clone", "rbd.resize", "define", "start", "attach")


def _parts(calls: list[Call], per_host: int, total: int, cost: dict[int, float]) -> dict[str, Any]:
    host_time: dict[str, float] = defaultdict(float)
    rbd_time = 0.0
    chains: dict[str, float] = defaultdict(float)
    for i, c in enumerate(calls):
        secs = cost[i]
        if c.host == "ceph":
            rbd_time += secs
        else:
            host_time[c.host] += secs
        if c.op in CHAIN:
            chains[c.vm] += secs
    busiest = max(host_time.values(), default=0.0)
    all_work = sum(host_time.values()) + rbd_time
    parts: dict[str, Any] = {
        "busiest_host_serial_s": busiest,
        "busiest_host_over_per_host_s": busiest / per_host,
        "all_work_s": all_work,
        "all_work_over_total_s": all_work / total,
        "rbd_work_s": rbd_time,
        "rbd_over_total_s": rbd_time / total,
        "longest_vm_chain_s": max(chains.values(), default=0.0),
        "per_host_serial_s": dict(host_time),
    }
    parts["bound_s"] = max(
        parts["busiest_host_over_per_host_s"],
        parts["all_work_over_total_s"],
        parts["rbd_over_total_s"],
        parts["longest_vm_chain_s"],
    )
    return parts


def critical_path(calls: list[Call], per_host: int, total: int) -> dict[str, Any]:
    """The bound from the calls as measured, and a floor from each kind's fastest call.

    The measured calls of a sequential script are slowed by the guests it already started
    (their boot burns the same 2 cores), so the `floor_bound_s` variant prices every call at
    the fastest one of its kind seen in the run: what the calls cost on an idle machine.
    """
    if not calls:
        return {"bound_s": None, "reason": "no baseline call timings"}
    by_op: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        by_op[c.op].append(c.seconds)
    measured = _parts(calls, per_host, total, {i: c.seconds for i, c in enumerate(calls)})
    floor = _parts(calls, per_host, total, {i: min(by_op[c.op]) for i, c in enumerate(calls)})
    return {
        **measured,
        "per_host_parallelism": per_host,
        "total_parallelism": total,
        "floor_bound_s": floor["bound_s"],
        "floor": floor,
        "median_call_s": {op: sorted(v)[len(v) // 2] for op, v in by_op.items()},
        "min_call_s": {op: min(v) for op, v in by_op.items()},
        "calls": len(calls),
    }
