"""B7 "datacenter": one steady-state pass at 1k, 5k and 10k VMs, broken down by part.

    .venv/bin/python -m bench.b7_datacenter
    .venv/bin/python -m bench.b7_datacenter --smoke

The Ceph side is real: a pool of its own in the lab's Ceph (memstore holds empty images)
with N managed root images (`vm-vmNNNNNN-root`, volctl's marks), observed by volctl's
`RbdStorage` as the controller's `Observer` drives it.  The libvirt side is N/10 libvirt
`test:///` hosts with 10 running volctl-marked domains each (B3's node files), each domain
holding its root image, so the observer tells the pool which images running domains hold.
For each size the benchmark times, in steady state (every image and domain seen before):

- `libvirt`: the Observer over the hosts alone (one `getAllDomainStats` per host);
- `ceph`: `RbdStorage.observe` alone, with the holdings the Observer derives, its calls by
  kind, and the RADOS ops the OSD served in that window (`perf dump`, admin socket command);
- `observe`: the Observer over both at once, as a pass does;
- `plan` and `status`: the pure planner and the status computation on B3's synthesized
  converged fleet of N VMs (N VMs, N volumes, N attachments);
- `pass` = observe + plan + status.  Goal: ≤ 1 s at 10k images and 10k domains.

Beside it, the baseline: the same pool observed with every image in doubt (`held=None`),
which opens every image on every pass as the observe did before (`--baseline-sizes`).
`exponent` is the least-squares slope of log(time) over log(size) (1 = linear, 0 = flat).
The OSD's op rate with no pass running is recorded too: the header watches' pings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from bench.b3_scale import slope
from bench.common.lab import add_lab_args, open_lab
from bench.common.report import Report, ratio

SIZES = (1000, 5000, 10000)
BASELINE_SIZES = (1000,)
PER_HOST = 10
REPEAT = 3
GOAL_S = 1.0


def _mem_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Ceph:
    """The benchmark's pool (created and deleted here) and the OSD's op counter."""

    def __init__(self, conf: str, admin: str, user: str, prefix: str) -> None:
        import rados

        from reconciler.lab.ceph import create_pool, wait_writable

        self.conf, self.user = conf, user
        self.pool = f"{prefix}-b7-{uuid.uuid4().hex[:8]}"
        self.cluster = rados.Rados(conffile=conf, rados_id=admin)
        self.cluster.connect(timeout=30)
        create_pool(self.cluster, self.pool)
        wait_writable(self.cluster, self.pool, timeout=60)
        self.io = self.cluster.open_ioctx(self.pool)
        self.created = 0

    def osd_ops(self) -> int:
        ret, out, err = self.cluster.osd_command(
            0, json.dumps({"prefix": "perf dump"}), b"", timeout=30
        )
        if ret != 0:
            raise RuntimeError(f"osd perf dump: {err}")
        return int(json.loads(out)["osd"]["op"])

    def grow(self, n: int, threads: int = 16) -> float:
        """Create managed root images until there are N; returns the seconds it took."""
        import rados
        import rbd

        from reconciler.identity import (
            MANAGED_BY,
            META_KIND,
            META_MANAGED_BY,
            META_NAME,
            root_disk_name,
        )

        def make(vmid: int) -> None:
            # librbd's create, then the marks straight into the header's omap, where
            # cls_rbd keeps image-meta (`metadata_<key>`, raw value): one write instead of a
            # read-write open (exclusive lock) and a `metadata_set` per key - setup only
            vm = f"vm{vmid:06d}"
            name = root_disk_name(vm)
            rbd.RBD().create(self.io, name, 1 << 30, old_format=False)
            with rbd.Image(self.io, name, read_only=True) as im:
                header = f"rbd_header.{im.id()}"
            marks = {META_MANAGED_BY: MANAGED_BY, META_KIND: "root", META_NAME: vm}
            with rados.WriteOpCtx() as op:
                self.io.set_omap(
                    op,
                    tuple(f"metadata_{k}" for k in marks),
                    tuple(v.encode() for v in marks.values()),
                )
                self.io.operate_write_op(op, header)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(make, range(self.created + 1, n + 1)))
        self.created = max(self.created, n)
        return time.perf_counter() - t0

    def close(self) -> None:
        from reconciler.lab.ceph import delete_pool

        self.io.close()
        delete_pool(self.cluster, self.pool)
        self.cluster.shutdown()


class _NoStorage:
    """For timing the hosts alone."""

    def observe(
        self, external_snapshots: tuple[str, ...] = (), held: Mapping[str, str] | None = None
    ) -> Any:
        from reconciler.observe.types import ObservedStorage

        del external_snapshots, held
        return ObservedStorage(reachable=True)


def _median_time(fn: Callable[[], object], repeat: int = REPEAT) -> tuple[float, object]:
    wall, _cpu, last = _median_times(fn, repeat)
    return wall, last


def _median_times(fn: Callable[[], object], repeat: int = REPEAT) -> tuple[float, float, object]:
    """Median wall time, median CPU time of this thread (what a pure-Python part costs
    whatever the machine's load), and the last result."""
    walls, cpus, last = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        last = fn()
        cpus.append(time.thread_time() - c0)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), statistics.median(cpus), last


@contextmanager
def _hosts(directory: Path, n_hosts: int, pool: str) -> Iterator[dict[str, Any]]:
    from bench.common.synth import write_test_hosts
    from reconciler.backends.libvirt_backend import LibvirtHypervisor

    uris = write_test_hosts(directory, n_hosts, PER_HOST, pool=pool)
    hvs = {n: LibvirtHypervisor(n, u) for n, u in uris.items()}
    try:
        yield hvs
    finally:
        for hv in hvs.values():
            hv.close()


def _plan_and_status(n_vms: int) -> dict[str, float]:
    """Plan and status of a steady pass as the engine runs them: its `IncrementalPlanner`
    and `IncrementalStatus`, warmed by one pass, then given an equal world made of fresh
    objects (each pass observes anew); beside them `plan()` and `compute()` from scratch."""
    import copy

    from bench.common.synth import SETTINGS, converged_world, desired_state, empty_world
    from reconciler.plan.incremental import IncrementalPlanner
    from reconciler.plan.planner import plan
    from reconciler.status.compute import PassInput, compute
    from reconciler.status.incremental import IncrementalStatus
    from reconciler.status.types import Snapshot

    desired = desired_state(3 * n_vms)
    world = converged_world(empty_world(desired), plan(desired, empty_world(desired), SETTINGS))
    scratch_s, scratch_cpu_s, p = _median_times(lambda: plan(desired, world, SETTINGS))
    the_plan = cast(Any, p)

    def pass_input(w: Any, pl: Any) -> PassInput:
        return PassInput("b7", time.time(), 0.1, desired=desired, observed=w, plan=pl)

    first = compute(Snapshot(), pass_input(world, the_plan))
    st_scratch_s, st_scratch_cpu_s, _ = _median_times(
        lambda: compute(first, pass_input(world, the_plan))
    )
    planner, status = IncrementalPlanner(), IncrementalStatus()
    snap = status(Snapshot(), pass_input(world, planner(desired, world, SETTINGS)))
    worlds = [copy.deepcopy(world) for _ in range(REPEAT)]  # untimed: a pass's fresh observation
    plans: list[Any] = []

    def steady_plan() -> object:
        plans.append(planner(desired, worlds[len(plans)], SETTINGS))
        return plans[-1]

    plan_s, plan_cpu_s, _ = _median_times(steady_plan)
    done: list[Snapshot] = [snap]

    def steady_status() -> object:
        k = len(done) - 1
        done.append(status(done[-1], pass_input(worlds[k], plans[k])))
        return done[-1]

    status_s, status_cpu_s, last = _median_times(steady_status)
    return {
        "plan_s": plan_s,
        "plan_cpu_s": plan_cpu_s,
        "plan_scratch_s": scratch_s,
        "plan_scratch_cpu_s": scratch_cpu_s,
        "plan_actions": float(len(the_plan.actions)),
        "plan_memo_hits": float(planner.hits),
        "status_s": status_s,
        "status_cpu_s": status_cpu_s,
        "status_scratch_s": st_scratch_s,
        "status_scratch_cpu_s": st_scratch_cpu_s,
        "status_memo_hits": float(status.hits),
        "converged": float(cast(Snapshot, last).converged),
    }


def plan_status_only(sizes: list[int]) -> int:
    """`--plan-status-only`: the plan and status parts alone (no lab), one row per size."""
    report = Report("b7_datacenter", params={"sizes": sizes, "parts": "plan+status only"})
    rows = []
    for n in sizes:
        row: dict[str, Any] = {"what": f"plan + status, {n:,} VMs ({3 * n:,} resources)"}
        row.update(_plan_and_status(n))
        row["ok"] = bool(row["converged"]) and row["plan_memo_hits"] == REPEAT
        rows.append(row)
        print(f"bench: {row}", flush=True)
    report.rows = rows
    report.finish(
        [
            ("what", "measurement"),
            ("plan_cpu_s", "plan CPU s (steady)"),
            ("plan_scratch_cpu_s", "plan() CPU s"),
            ("status_cpu_s", "status CPU s (steady)"),
            ("status_scratch_cpu_s", "compute() CPU s"),
            ("plan_s", "plan s"),
            ("status_s", "status s"),
            ("ok", "ok"),
        ]
    )
    return 0 if all(r["ok"] for r in rows) else 1


def measure(ceph: _Ceph, storage: Any, n: int, tmp: Path) -> dict[str, Any]:
    from reconciler.observe.observer import Observer, held_images

    row: dict[str, Any] = {"what": f"{n:,} images, {n:,} domains", "size": n}
    row["setup_create_s"] = ceph.grow(n)
    with _hosts(tmp / f"hosts-{n}", n // PER_HOST, ceph.pool) as hvs:
        observer = Observer(hvs, storage, timeout=1800)
        t0 = time.perf_counter()
        for _ in range(3):  # first sight, then under the holdings (watches set), then steady
            world = observer.observe()
        row["warmup_s"] = time.perf_counter() - t0
        hosts_only = Observer(hvs, cast(Any, _NoStorage()), timeout=600)
        hosts_only.observe()
        row["libvirt_s"], _ = _median_time(hosts_only.observe)
        rpc0 = sum(hv.rpc_count() for hv in hvs.values())
        hosts_only.observe()
        row["libvirt_rpcs"] = sum(hv.rpc_count() for hv in hvs.values()) - rpc0
        held = {k.split("/", 1)[1]: v for k, v in held_images(world.hosts).items()}
        row["held"] = len(held)
        ops0 = ceph.osd_ops()
        row["ceph_s"], obs = _median_time(lambda: storage.observe(held=held))
        row["osd_ops"] = (ceph.osd_ops() - ops0 - 1) / REPEAT  # minus the perf dump itself
        obs_any = cast(Any, obs)
        row["ceph_calls"] = sum(obs_any.calls.values())
        row["ceph_calls_by_kind"] = dict(obs_any.calls)
        row["observe_s"], w = _median_time(observer.observe)
        world_any = cast(Any, w)
        ok = (
            len(world_any.storage.images) == n
            and all(h.reachable and len(h.domains) == PER_HOST for h in world_any.hosts.values())
            and len(held) == n
        )
    row.update(_plan_and_status(n))
    row["pass_s"] = row["observe_s"] + row["plan_s"] + row["status_s"]
    row["goal_s"] = GOAL_S
    row["ok"] = bool(ok and row["converged"])
    row["peak_rss_mib"] = _mem_mib("VmHWM")
    return row


def baseline(ceph: _Ceph, conf: str, user: str, n: int) -> dict[str, Any]:
    """Every image in doubt: opened on every pass, as before (a storage of its own)."""
    from reconciler.backends.rbd_backend import RbdStorage

    ceph.grow(n)
    st = RbdStorage(conf, ceph.pool, user, timeout=1800, threads=16)
    try:
        st.observe()
        ops0 = ceph.osd_ops()
        secs, obs = _median_time(st.observe, repeat=1)
        osd_ops = ceph.osd_ops() - ops0 - 1
    finally:
        st.close()
    obs_any = cast(Any, obs)
    return {
        "what": f"baseline: every image opened, {n:,} images",
        "size": n,
        "ceph_s": secs,
        "ceph_calls": sum(obs_any.calls.values()),
        "ceph_calls_by_kind": dict(obs_any.calls),
        "osd_ops": osd_ops,
        "ok": len(obs_any.images) >= n,
    }


def idle_ops(ceph: _Ceph, seconds: float = 10.0) -> float:
    """The OSD's ops per second while no pass runs (the watches' pings)."""
    ops0 = ceph.osd_ops()
    time.sleep(seconds)
    return (ceph.osd_ops() - ops0 - 1) / seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b7_datacenter", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--baseline-sizes", default=",".join(map(str, BASELINE_SIZES)))
    p.add_argument("--prefix", default="bench")
    p.add_argument("--threads", type=int, default=16, help="RbdStorage worker threads")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (20, 60; baseline 20)")
    p.add_argument(
        "--plan-status-only",
        action="store_true",
        help="only the plan and status parts of a steady pass, in-process (no lab)",
    )
    add_lab_args(p, default_hosts=1)
    args = p.parse_args(argv)
    if args.plan_status_only:
        return plan_status_only(sorted(int(s) for s in args.sizes.split(",") if s))
    if args.smoke:
        args.sizes, args.baseline_sizes = "20,60", "20"
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    base_sizes = sorted(int(s) for s in args.baseline_sizes.split(",") if s)
    report = Report(
        "b7_datacenter",
        params={"sizes": sizes, "baseline_sizes": base_sizes, "per_host": PER_HOST},
    )
    lab = open_lab(args)
    ceph = _Ceph(lab.info.ceph_conf, lab.info.admin_user, lab.info.ceph_user, args.prefix)
    from reconciler.backends.rbd_backend import RbdStorage

    storage = RbdStorage(
        lab.info.ceph_conf, ceph.pool, lab.info.ceph_user, timeout=1800, threads=args.threads
    )
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="volctl-bench-b7-") as tmp:
            for n in base_sizes:
                print(f"bench: baseline, {n} images", flush=True)
                rows.append(baseline(ceph, lab.info.ceph_conf, lab.info.ceph_user, n))
            for n in sizes:
                print(f"bench: {n} images and {n} domains", flush=True)
                rows.append(measure(ceph, storage, n, Path(tmp)))
                print(f"bench: {rows[-1]}", flush=True)
                _finish(report, rows, partial=True)  # a run cut short keeps what it measured
            report.extra["idle_osd_ops_per_s"] = idle_ops(ceph)
            report.extra["idle_watches"] = sizes[-1]
    finally:
        storage.close()
        ceph.close()
        lab.close()
    _finish(report, rows)
    return 0 if all(r.get("ok") for r in rows) else 1


COLUMNS = [
    ("what", "measurement"),
    ("libvirt_s", "libvirt s"),
    ("ceph_s", "ceph s"),
    ("observe_s", "observe s"),
    ("plan_s", "plan s"),
    ("status_s", "status s"),
    ("pass_s", "pass s"),
    ("ceph_calls", "ceph calls"),
    ("osd_ops", "OSD ops"),
    ("libvirt_rpcs", "libvirt RPCs"),
    ("vs_baseline", "ceph ÷ baseline"),
    ("ok", "ok"),
]


def _finish(report: Report, rows: list[dict[str, Any]], *, partial: bool = False) -> None:
    _summarize(report, rows)
    report.summary["complete"] = not partial
    report.finish(COLUMNS)


def _summarize(report: Report, rows: list[dict[str, Any]]) -> None:
    main_rows = [r for r in rows if not r["what"].startswith("baseline")]
    base = {r["size"]: r for r in rows if r["what"].startswith("baseline")}
    for r in main_rows:
        b = base.get(r["size"])
        if b is not None:
            r["vs_baseline"] = ratio(r["ceph_s"], b["ceph_s"])
    exponents = {}
    for part in ("libvirt_s", "ceph_s", "observe_s", "plan_s", "status_s", "pass_s", "ceph_calls"):
        xs = [float(r["size"]) for r in main_rows if r.get(part)]
        exponents[part] = slope(xs, [float(r[part]) for r in main_rows if r.get(part)])
    b_rows = sorted(base.values(), key=lambda r: r["size"])
    exponents["baseline ceph_s"] = slope(
        [float(r["size"]) for r in b_rows], [float(r["ceph_s"]) for r in b_rows]
    )
    report.rows = rows
    report.extra["exponents"] = exponents
    last = main_rows[-1] if main_rows else {}
    report.summary = {
        "largest size": last.get("size"),
        "pass s at largest": last.get("pass_s"),
        "goal s": GOAL_S,
        "goal met": bool(last) and last.get("pass_s", 99) <= GOAL_S,
        **{f"exponent {k}": v for k, v in exponents.items()},
    }
    print("growth exponents: " + json.dumps(exponents), flush=True)
    report.note(
        "ceph: RbdStorage on a pool of its own in the lab's Ceph (memstore, 1 OSD); calls = "
        "librados/librbd calls (an image open is one); OSD ops = the OSD's `op` perf counter"
    )
    report.note(
        "libvirt: N/10 test:/// hosts x 10 running marked domains, each holding its root image"
    )
    report.note("plan/status: B3's synthesized converged fleet of N VMs (N volumes attached)")
    report.note("pass = observe (hosts and pool at once) + plan + status; goal <= 1 s at 10k")


if __name__ == "__main__":
    raise SystemExit(main())
