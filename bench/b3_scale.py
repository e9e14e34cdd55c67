"""B3, scale of observe and plan: time, peak RSS and the growth exponent.

    .venv/bin/python -m bench.b3_scale

Observe: 10, 100 and 1000 libvirt `test:///` hosts (custom node files) with 10
volctl-marked domains each, observed by volctl's real backend (`LibvirtHypervisor`) through
the controller's `observe_parallel`, cold (first pass: connect and fetch every domain's XML)
and warm (second pass: served from the per-domain cache, one RPC per host).  Plan: the pure
planner on synthesized fleets of 1k, 10k and 50k resources (VMs + volumes + attachments),
from empty (everything to create) and converged (nothing to do).  Each measurement runs in
a fresh subprocess so its peak RSS (VmHWM) is its own.  The growth exponent is the slope of
log(time) over log(size): 1.0 is linear.  Beside volctl's observe, the baseline: a script
that walks the same hosts one after another (connect, list, read every domain's XML).

Each plan is timed `--repeat` times in its process: the table's time is the fastest wall
time (the least disturbed by other load on a shared machine), beside the median and the
fastest CPU time (`time.process_time`).  The issue's goals for the planner are printed
against the fastest wall time: 10k resources converged <= 0.1 s and from empty <= 0.2 s,
50k from empty <= 1 s.  The synthesized fleets are deterministic (no seed).

A converged fleet is measured twice: `plan()` from scratch (a first pass, or any pass after a
change), and the controller's steady pass through its `IncrementalPlanner`, which planned
the same fleet in the pass before and now receives the same desired state and an equal,
rebuilt observed world (fresh objects).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common.report import Report, fmt, ratio

OBSERVE_SIZES = (10, 100, 1000)
PLAN_SIZES = (1000, 10000, 50000)
DOMAINS_PER_HOST = 10
REPEAT = 5
# issue 10's planner goals: (converged?, resources) -> seconds
PLAN_GOALS = {(True, 10000): 0.1, (False, 10000): 0.2, (False, 50000): 1.0}


def _mem_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(kind: str, size: int, repeat: int = REPEAT) -> dict[str, Any]:
    if kind == "observe":
        return _observe(size)
    return _plan(size, converged=kind == "plan-converged", repeat=repeat)


def _observe(n_hosts: int) -> dict[str, Any]:
    from bench.common.synth import write_test_hosts
    from reconciler.backends.libvirt_backend import LibvirtHypervisor
    from reconciler.controller.connections import observe_parallel
    from reconciler.model import DesiredState, Host, Meta
    from reconciler.observe.types import ObservedStorage

    class HostsOnly:
        """B3 measures host observation; the RBD pool is not part of it."""

        def observe(self, external_snapshots: tuple[str, ...] = ()) -> ObservedStorage:
            return ObservedStorage(reachable=True)

    with tempfile.TemporaryDirectory(prefix="volctl-bench-b3-") as tmp:
        uris = write_test_hosts(Path(tmp), n_hosts, DOMAINS_PER_HOST)
        desired = DesiredState(
            hosts={
                n: Host(Meta(n), uri=u, pmid=i + 1) for i, (n, u) in enumerate(sorted(uris.items()))
            }
        )
        rss_in = _mem_kib("VmRSS")
        t0 = time.perf_counter()
        hvs = {n: LibvirtHypervisor(n, u) for n, u in uris.items()}
        t1 = time.perf_counter()
        cold = observe_parallel(hvs, HostsOnly(), desired, timeout=600)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        rpc_cold = sum(h.rpc_count() for h in hvs.values())
        warm = observe_parallel(hvs, HostsOnly(), desired, timeout=600)  # type: ignore[arg-type]
        t3 = time.perf_counter()
        rpc_warm = sum(h.rpc_count() for h in hvs.values()) - rpc_cold
        ok = all(
            h.reachable and len(h.domains) == DOMAINS_PER_HOST and all(d.ours for d in h.domains)
            for w in (cold, warm)
            for h in w.hosts.values()
        )
        for h in hvs.values():
            h.close()
        naive_s, naive_calls = _naive_observe(uris)
    return {
        "ok": ok and len(warm.hosts) == n_hosts,
        "naive_s": naive_s,
        "naive_calls": naive_calls,
        "hosts": n_hosts,
        "domains": n_hosts * DOMAINS_PER_HOST,
        "connect_s": t1 - t0,
        "cold_s": t2 - t1,
        "warm_s": t3 - t2,
        "rpcs_cold": rpc_cold,
        "rpcs_warm": rpc_warm,
        "rss_inputs_mib": rss_in / 1024,
        "peak_rss_mib": _mem_kib("VmHWM") / 1024,
    }


def _naive_observe(uris: dict[str, str]) -> tuple[float, int]:
    """The baseline: what a script does to look at every host (the seed's way): one host after
    another, connect, list the domains, read each domain's XML.  Returns (seconds, calls)."""
    import libvirt

    calls = 0
    t0 = time.perf_counter()
    for uri in uris.values():
        conn = libvirt.open(uri)
        doms = conn.listAllDomains(0)
        for dom in doms:
            dom.XMLDesc(0)
        conn.close()
        calls += 3 + len(doms)
    return time.perf_counter() - t0, calls


def _plan(resources: int, *, converged: bool, repeat: int = REPEAT) -> dict[str, Any]:
    from bench.common.synth import SETTINGS, converged_world, desired_state, empty_world
    from reconciler.plan.planner import plan

    desired = desired_state(resources)
    world = empty = empty_world(desired)
    created = None
    if converged:
        created = plan(desired, empty, SETTINGS)
        world = converged_world(empty, created)
    rss_in = _mem_kib("VmRSS")
    walls, cpus = [], []
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        p = plan(desired, world, SETTINGS)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    n_vm = len(desired.vms)
    # from empty: clone, define, start, create volume, attach per VM; converged: nothing
    expect = 0 if converged else 5 * n_vm
    steady = {}
    if created is not None:
        steady = _steady(desired, world, lambda: converged_world(empty, created), p, repeat)
    return {
        **steady,
        "ok": len(p.actions) == expect and not p.blocked and steady.get("steady_ok", True),
        "resources": resources,
        "vms": n_vm,
        "hosts": len(desired.hosts),
        "actions": len(p.actions),
        "plan_s": min(walls),
        "plan_median_s": sorted(walls)[len(walls) // 2],
        "plan_cpu_s": min(cpus),
        "plan_walls_s": walls,
        "repeat": len(walls),
        "rss_inputs_mib": rss_in / 1024,
        "peak_rss_mib": _mem_kib("VmHWM") / 1024,
    }


def _steady(
    desired: Any, world: Any, rebuild: Callable[[], Any], want: Any, repeat: int
) -> dict[str, Any]:
    """The controller's steady pass: its `IncrementalPlanner` planned this fleet last pass,
    and this pass brings the same desired state (the source's last good revision is the same
    object) and an observed world that is equal but rebuilt (`rebuild`: every domain, disk,
    NIC and image a fresh object, the worst case of an observe that re-reads everything)."""
    from bench.common.synth import SETTINGS
    from reconciler.plan.incremental import IncrementalPlanner

    planner = IncrementalPlanner()
    planner(desired, world, SETTINGS)
    walls, cpus, same = [], [], True
    for _ in range(max(1, repeat)):
        rebuilt = rebuild()
        t0, c0 = time.perf_counter(), time.process_time()
        p = planner(desired, rebuilt, SETTINGS)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        same = same and p == want
    return {
        "steady_ok": same and planner.hits == len(walls),
        "steady_s": min(walls),
        "steady_median_s": sorted(walls)[len(walls) // 2],
        "steady_cpu_s": min(cpus),
    }


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) over log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def _spawn(kind: str, size: int, repeat: int = REPEAT) -> dict[str, Any]:
    argv = ["--worker", kind, "--size", str(size), "--repeat", str(repeat)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.b3_scale", *argv],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        return {"ok": False, "error": (proc.stderr or proc.stdout)[-2000:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b3_scale", description=__doc__.split("\n")[0])
    p.add_argument("--observe-sizes", default=",".join(map(str, OBSERVE_SIZES)))
    p.add_argument("--plan-sizes", default=",".join(map(str, PLAN_SIZES)))
    p.add_argument("--smoke", action="store_true", help="tiny sizes (2,6 hosts; 300,900)")
    p.add_argument("--repeat", type=int, default=REPEAT, help="plans timed per measurement")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.repeat)))
        return 0
    if args.smoke:
        args.observe_sizes, args.plan_sizes = "2,6", "300,900"
    obs_sizes = [int(s) for s in args.observe_sizes.split(",") if s]
    plan_sizes = [int(s) for s in args.plan_sizes.split(",") if s]
    report = Report(
        "b3_scale",
        params={
            "observe_hosts": obs_sizes,
            "domains_per_host": DOMAINS_PER_HOST,
            "plan_resources": plan_sizes,
            "plan_repeat": args.repeat,
        },
    )
    rows: list[dict[str, Any]] = []
    for n in obs_sizes:
        print(f"bench: observe {n} test:/// hosts", flush=True)
        r = _spawn("observe", n)
        rows.append(
            {
                "what": f"observe cold, {n} hosts",
                "size": n,
                "time_s": r.get("cold_s"),
                "rpcs": r.get("rpcs_cold"),
                **_common(r),
            }
        )
        rows.append(
            {
                "what": f"observe warm, {n} hosts",
                "size": n,
                "time_s": r.get("warm_s"),
                "rpcs": r.get("rpcs_warm"),
                **_common(r),
            }
        )
        rows.append(
            {
                "what": f"baseline script observe, {n} hosts",
                "size": n,
                "time_s": r.get("naive_s"),
                "rpcs": r.get("naive_calls"),
                **_common(r),
            }
        )
        for row in rows[-3:-1]:
            row["vs_baseline"] = ratio(row["time_s"], r.get("naive_s"))
    done: dict[str, dict[int, dict[str, Any]]] = {}
    for kind in ("plan-empty", "plan-converged"):
        for n in plan_sizes:
            print(f"bench: {kind} {n} resources", flush=True)
            r = done.setdefault(kind, {})[n] = _spawn(kind, n, args.repeat)
            label = "from empty" if kind == "plan-empty" else "converged"
            rows.append(
                {
                    "what": f"plan {label}, {n} resources",
                    "size": n,
                    "time_s": r.get("plan_s"),
                    "median_s": r.get("plan_median_s"),
                    "cpu_s": r.get("plan_cpu_s"),
                    "goal_s": PLAN_GOALS.get((kind == "plan-converged", n)),
                    "actions": r.get("actions"),
                    **_common(r),
                }
            )
    for n in plan_sizes if "plan-converged" in done else ():
        r = done["plan-converged"][n]
        rows.append(
            {
                "what": f"plan steady pass (converged, incremental planner), {n} resources",
                "size": n,
                "time_s": r.get("steady_s"),
                "median_s": r.get("steady_median_s"),
                "cpu_s": r.get("steady_cpu_s"),
                "goal_s": PLAN_GOALS.get((True, n)),
                "actions": r.get("actions"),
                **_common(r),
            }
        )
    groups = {}
    for prefix in (
        "observe cold",
        "observe warm",
        "baseline script observe",
        "plan from empty",
        "plan converged",
        "plan steady pass",
    ):
        g = [r for r in rows if r["what"].startswith(prefix) and r.get("time_s")]
        groups[prefix] = {
            "time_exponent": slope([r["size"] for r in g], [r["time_s"] for r in g]),
            "rss_exponent": slope([r["size"] for r in g], [r["peak_rss_mib"] for r in g]),
        }
        for r in g:
            r["time_exponent"] = groups[prefix]["time_exponent"]
            r["per_unit_us"] = r["time_s"] / r["size"] * 1e6
    for r in rows:
        if r.get("goal_s") is not None and r.get("time_s") is not None:
            r["goal_met"] = r["time_s"] <= r["goal_s"]
    report.rows = rows
    report.summary = {f"{k} time exponent": v["time_exponent"] for k, v in groups.items()}
    for r in rows:
        if r.get("goal_s") is not None:
            verdict = "met" if r.get("goal_met") else "MISSED"
            report.summary[f"goal: {r['what']} <= {r['goal_s']} s"] = (
                f"{fmt(r.get('time_s'))} s fastest wall ({fmt(r.get('cpu_s'))} s CPU): {verdict}"
            )
    report.extra["exponents"] = groups
    report.note(
        "observe: volctl's LibvirtHypervisor on libvirt test:/// node files (10 marked "
        "domains each), via observe_parallel (at most 32 threads); RBD not included"
    )
    report.note(
        "plan: reconciler.plan.planner.plan on synthesized DesiredState/ObservedWorld; "
        "1 VM + 1 volume + 1 attachment = 3 resources, 20 VMs per host, no pins"
    )
    report.note("growth exponent: least-squares slope of log(time) over log(size); 1 = linear")
    report.note(
        f"plan time: fastest of {args.repeat} wall times in one process (median and fastest "
        "CPU time beside it); load average at start and end is in the JSON's environment"
    )
    report.finish(
        [
            ("what", "measurement"),
            ("time_s", "time s"),
            ("median_s", "median s"),
            ("cpu_s", "CPU s"),
            ("goal_s", "goal s"),
            ("goal_met", "goal met"),
            ("per_unit_us", "µs/unit"),
            ("rpcs", "RPCs"),
            ("actions", "actions"),
            ("peak_rss_mib", "peak RSS MiB"),
            ("time_exponent", "exponent"),
            ("vs_baseline", "÷ baseline"),
            ("ok", "ok"),
            ("error", "error"),
        ]
    )
    return 0 if all(r.get("ok") for r in rows) else 1


def _common(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": bool(r.get("ok")),
        "peak_rss_mib": r.get("peak_rss_mib"),
        "rss_inputs_mib": r.get("rss_inputs_mib"),
        "error": r.get("error"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
