"""Soak under churn: random spec changes every 2-5 s and random out-of-band faults for 20
minutes, ending converged, with the controller's RSS, fds and threads sampled every 10 s.

Spec changes go through the CLI a user types (`volctl apply -f`, `volctl delete`): create a
VM with a volume, delete a VM (its volumes deleted or left available), move an attachment to
another VM, grow a volume, attach a spare volume, flip `running`.  Faults go straight to a
lab host behind volctl's back: `virsh destroy` (a running VM of ours powered off),
`virsh undefine` (destroyed and undefined), a detach by hand (a volume's disk removed from
the live and persistent XML), and a libvirtd restart of one lab host (at most one every
`--restart-every` seconds: each costs the host's connection and event stream).  Guests have
128 MiB and at most `--max-running` (10) run at once.  `--smoke` (60 s, in the test suite)
leaves out the two changes that wait for a guest to acknowledge an unplug (a move, a detach
by hand): a TCG guest still booting on a loaded machine may take minutes to answer.

At the end the campaign waits until status says converged and libvirt and RBD match the
last desired state (`Workload.check_world`).  The samples of /proc/PID of the controller are
reported with a trend per figure (`reliability/common/procstat.py`: least-squares slope over
the second half, growth it predicts against the residual noise).

`--tracemalloc N` runs the controller with `VOLCTL_TRACEMALLOC=N`: SIGUSR2 takes the
baseline when the second half of the churn begins and reports after the churn and after
convergence; the reports (Python heap, the allocation sites that grew most) are kept in the
JSON as `memory_growth` (`reconciler/controller/memtrace.py`).

    python -m reliability.soak [--duration 1200] [--seed S] [--smoke] [--tracemalloc 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import libvirt

from bench.common.lab import Lab as BenchLab
from bench.common.lab import add_lab_args, open_lab
from bench.common.world import cleanup
from reconciler.lab.lab import Lab
from reconciler.lab.proc import free_ports
from reliability.common.campaign import Campaign, Trial, add_campaign_args, median
from reliability.common.controller import Controller
from reliability.common.procstat import Sampler, trend
from reliability.common.workload import VMSpec, Workload

PREFIX = "sk"
MAX_VMS = 12
MAX_VOL_GIB = 4
# absolute allowances next to 2 x noise: a leak of this size over the second half counts
ALLOWED = {"rss_kib": 8 * 1024.0, "fds": 4.0, "threads": 4.0}


class Applier:
    """Pushes the latest desired state with the CLI on its own thread.

    A `volctl apply` is a new Python process; on this shared 2-core machine it takes seconds,
    longer than the 2-5 s between changes.  So changes are made to the workload at their own
    pace and this thread applies whatever the workload is when it is free (several changes
    may land in one apply, as when several users apply at once)."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] | None = None
        self.wake = threading.Event()
        self.stopping = False
        self.applies = 0
        self.failures: list[str] = []
        self.seconds: list[float] = []
        self.thread = threading.Thread(target=self._loop, name="applier", daemon=True)
        self.thread.start()

    def push(self, docs: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pending = docs
        self.wake.set()

    def _loop(self) -> None:
        while True:
            self.wake.wait()
            with self.lock:
                docs, self.pending = self.pending, None
                self.wake.clear()
            if docs is None:
                if self.stopping:
                    return
                continue
            rc, secs = self.ctl.sync_docs(docs)
            self.applies += 1
            self.seconds.append(round(secs, 2))
            if rc != 0:
                self.failures.append(f"apply {self.applies} exited {rc}")

    def drain(self, timeout: float = 300) -> None:
        """Until everything pushed is applied; then the thread ends."""
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout)


class Churn:
    def __init__(self, t: Trial, wl: Workload, applier: Applier, args: argparse.Namespace) -> None:
        self.t = t
        self.rng = t.rng
        self.wl = wl
        self.applier = applier
        self.args = args
        self.lab = Lab(wl.lab.info.dir)
        self.ops: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.last_restart = time.monotonic()

    # -- spec changes -----------------------------------------------------------------------

    def create_vm(self) -> str | None:
        if len(self.wl.vms) >= MAX_VMS or self.wl.running_count() >= self.args.max_running:
            return None
        name = self.wl.new_name("vm")
        self.wl.vms[name] = VMSpec(name)
        vol = f"{name}-data"
        self.wl.volumes[vol] = 1
        self.wl.attachments[vol] = name
        return name

    def delete_vm(self) -> str | None:
        if len(self.wl.vms) <= 2:
            return None
        name = self.rng.choice(sorted(self.wl.vms))
        del self.wl.vms[name]
        for vol in [v for v, m in self.wl.attachments.items() if m == name]:
            del self.wl.attachments[vol]
            if self.rng.random() < 0.5:
                del self.wl.volumes[vol]
        return name

    def move_attachment(self) -> str | None:
        if not self.wl.attachments or len(self.wl.vms) < 2:
            return None
        vol = self.rng.choice(sorted(self.wl.attachments))
        src = self.wl.attachments[vol]
        dst = self.rng.choice(sorted(set(self.wl.vms) - {src}))
        self.wl.attachments[vol] = dst
        return f"{vol}: {src} -> {dst}"

    def attach_spare(self) -> str | None:
        spare = sorted(set(self.wl.volumes) - set(self.wl.attachments))
        if not spare or not self.wl.vms:
            return None
        vol = self.rng.choice(spare)
        vm = self.rng.choice(sorted(self.wl.vms))
        self.wl.attachments[vol] = vm
        return f"{vol} -> {vm}"

    def grow_volume(self) -> str | None:
        vols = sorted(v for v, s in self.wl.volumes.items() if s < MAX_VOL_GIB)
        if not vols:
            return None
        vol = self.rng.choice(vols)
        self.wl.volumes[vol] += 1
        return f"{vol} -> {self.wl.volumes[vol]} GiB"

    def flip_running(self) -> str | None:
        if not self.wl.vms:
            return None
        vm = self.wl.vms[self.rng.choice(sorted(self.wl.vms))]
        if not vm.running and self.wl.running_count() >= self.args.max_running:
            return None
        vm.running = not vm.running
        return f"{vm.name} running={vm.running}"

    # -- faults behind volctl's back ----------------------------------------------------------

    def _our_domains(self, *, active: bool | None = None) -> list[tuple[str, str]]:
        out = []
        for h in self.wl.lab.info.hosts:
            conn = libvirt.open(h.uri)
            try:
                for dom in conn.listAllDomains(0):
                    if dom.name().startswith(PREFIX + "-") and (
                        active is None or bool(dom.isActive()) == active
                    ):
                        out.append((h.uri, dom.name()))
            finally:
                conn.close()
        return sorted(out)

    def virsh_destroy(self) -> str | None:
        doms = self._our_domains(active=True)
        if not doms:
            return None
        uri, name = self.rng.choice(doms)
        conn = libvirt.open(uri)
        try:
            conn.lookupByName(name).destroy()
        finally:
            conn.close()
        return name

    def virsh_undefine(self) -> str | None:
        doms = self._our_domains()
        if not doms:
            return None
        uri, name = self.rng.choice(doms)
        conn = libvirt.open(uri)
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(0)
        finally:
            conn.close()
        return name

    def detach_by_hand(self) -> str | None:
        pool = self.wl.lab.info.pool
        candidates = []
        for uri, name in self._our_domains(active=True):
            conn = libvirt.open(uri)
            try:
                root = ET.fromstring(conn.lookupByName(name).XMLDesc(0))
            finally:
                conn.close()
            for d in root.findall("./devices/disk"):
                src, tgt = d.find("source"), d.find("target")
                if src is None or tgt is None or tgt.get("dev") == "vda":
                    continue
                if str(src.get("name", "")).startswith(f"{pool}/vol-{PREFIX}-"):
                    candidates.append((uri, name, ET.tostring(d, encoding="unicode")))
        if not candidates:
            return None
        uri, name, disk = self.rng.choice(candidates)
        conn = libvirt.open(uri)
        try:
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
            conn.lookupByName(name).detachDeviceFlags(disk, flags)
        finally:
            conn.close()
        return f"{name}: {ET.fromstring(disk).find('source').get('name')}"  # type: ignore[union-attr]

    def restart_libvirtd(self) -> str | None:
        if time.monotonic() - self.last_restart < self.args.restart_every:
            return None
        host = self.rng.choice([h.name for h in self.wl.lab.info.hosts])
        self.lab.stop_host_daemon(host)
        time.sleep(self.rng.uniform(0.5, 3))
        self.lab.start_host_daemon(host)
        self.last_restart = time.monotonic()
        return host

    # -- the loop ---------------------------------------------------------------------------

    SPEC = (
        ("create", 4),
        ("delete", 3),
        ("move", 3),
        ("attach_spare", 1),
        ("grow", 2),
        ("running", 2),
    )
    FAULTS = (("virsh_destroy", 3), ("virsh_undefine", 2), ("detach_by_hand", 3), ("restart", 1))

    # what waits for a guest to acknowledge an unplug: a booting TCG guest on a loaded machine
    # may take minutes, more than a smoke run in the test suite has
    NEEDS_GUEST = frozenset({"move", "detach_by_hand"})

    def step(self) -> None:
        fault = self.rng.random() < self.args.fault_share
        table: tuple[tuple[str, int], ...] = self.FAULTS if fault else self.SPEC
        if self.args.smoke:
            table = tuple(x for x in table if x[0] not in self.NEEDS_GUEST)
        kind = self.rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]
        fn = {
            "create": self.create_vm,
            "delete": self.delete_vm,
            "move": self.move_attachment,
            "attach_spare": self.attach_spare,
            "grow": self.grow_volume,
            "running": self.flip_running,
            "virsh_destroy": self.virsh_destroy,
            "virsh_undefine": self.virsh_undefine,
            "detach_by_hand": self.detach_by_hand,
            "restart": self.restart_libvirtd,
        }[kind]
        t0 = time.monotonic()
        try:
            what = fn()
        except libvirt.libvirtError as exc:  # raced with volctl: a fault that missed
            self.log.append({"t": round(t0, 1), "op": kind, "missed": str(exc)[:120]})
            return
        if what is None:
            return
        self.ops[kind] += 1
        self.log.append({"t": round(t0, 1), "op": kind, "what": what})
        if not fault:
            self.applier.push(self.wl.documents())
        print(f"soak: {kind}: {what}", flush=True)


def memory_reports(log: str, *, wait: float, want: int) -> list[dict[str, Any]]:
    """The controller's `memory.growth` events (memtrace.py), once `want` are logged."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        with Path(log).open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"memory.growth"' in line:
                    with contextlib.suppress(ValueError):
                        found.append(json.loads(line))
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reliability.soak", description=__doc__.split("\n")[0])
    add_campaign_args(p, trials=1)
    add_lab_args(p, default_hosts=2)
    p.add_argument("--duration", type=float, default=1200.0, help="seconds of churn")
    p.add_argument("--vms", type=int, default=4, help="VMs to start with")
    p.add_argument("--max-running", type=int, default=10)
    p.add_argument("--fault-share", type=float, default=0.25, help="share of steps that are faults")
    p.add_argument("--restart-every", type=float, default=180.0, help="min s between restarts")
    p.add_argument("--sample-every", type=float, default=10.0)
    p.add_argument("--resync", type=float, default=5.0)
    p.add_argument("--converge-timeout", type=float, default=900.0)
    p.add_argument("--listen", default=None)
    p.add_argument(
        "--tracemalloc", type=int, default=0, help="frames to trace (0: off; memtrace.py)"
    )
    args = p.parse_args(argv)
    if args.tracemalloc:
        os.environ["VOLCTL_TRACEMALLOC"] = str(args.tracemalloc)
    if args.smoke:
        args.duration, args.vms, args.sample_every, args.restart_every = 60.0, 2, 5.0, 30.0
        args.converge_timeout = 400.0
    args.trials = 1
    listen = args.listen or f"127.0.0.1:{free_ports(1)[0]}"
    camp = Campaign.from_args(
        "soak",
        args,
        {"duration_s": args.duration, "start_vms": args.vms, "max_running": args.max_running,
         "fault_share": args.fault_share, "restart_every_s": args.restart_every,
         "sample_every_s": args.sample_every, "ram_mib": 128, "resync_s": args.resync},
    )  # fmt: skip
    camp.goals = {
        "converged": "yes, world checked",
        "rss_grows": "no (growth over the second half <= max(2 x noise, 8 MiB))",
        "fds_grows": "no (<= max(2 x noise, 4))",
        "threads_grows": "no (<= max(2 x noise, 4))",
    }
    bench_lab: BenchLab = open_lab(args)
    wl = Workload(bench_lab, PREFIX)
    ctl = Controller(listen, resync=args.resync)
    samples: list[dict[str, float]] = []
    try:
        cleanup(bench_lab, PREFIX + "-", (f"vm-{PREFIX}-", f"vol-{PREFIX}-"))
        ctl.start_for(wl)
        for t in camp.trials(1, None):
            applier = Applier(ctl)
            churn = Churn(t, wl, applier, args)
            for _ in range(args.vms):
                churn.create_vm()
            rc, _ = ctl.sync(wl, wait=900)
            ok, _s, problems = ctl.wait_converged(wl, timeout=600)
            if rc != 0 or not ok:
                t.fail(f"the starting fleet did not converge: {problems[:3]}")
                continue
            sampler = Sampler(ctl.pid, every=args.sample_every).start()
            t_end = time.monotonic() + args.duration
            baseline_at = time.monotonic() + args.duration / 2 if args.tracemalloc else None
            while time.monotonic() < t_end:
                churn.step()
                time.sleep(t.rng.uniform(2, 5))
                if baseline_at is not None and time.monotonic() >= baseline_at:
                    os.kill(ctl.pid, signal.SIGUSR2)  # the second half's baseline
                    baseline_at = None
            applier.drain()
            if args.tracemalloc:
                os.kill(ctl.pid, signal.SIGUSR2)
            t.facts["ops"] = dict(churn.ops)
            t.facts["steps"] = sum(churn.ops.values())
            t.facts["applies"] = applier.applies
            t.facts["apply_s_median"] = median(applier.seconds)
            t.facts["apply_failures"] = len(applier.failures)
            # churn is over: the last desired state must be reached
            ok, secs, problems = ctl.wait_converged(wl, timeout=args.converge_timeout)
            samples = sampler.stop()
            if args.tracemalloc:
                os.kill(ctl.pid, signal.SIGUSR2)
                t.facts["memory_growth"] = memory_reports(ctl.log, wait=30.0, want=3)
            t.facts["converge_after_s"] = round(secs, 1)
            t.facts["converged"] = ok
            t.facts["final_vms"] = len(wl.vms)
            t.facts["final_volumes"] = len(wl.volumes)
            if not ok:
                t.fail(f"not converged {secs:.0f}s after the churn ended: {problems[:5]}")
            if applier.failures:
                t.fail(f"apply/delete commands failed: {applier.failures[:3]}")
            for key in ("rss_kib", "fds", "threads"):
                tr = trend(samples, key, allowed=ALLOWED[key])
                t.facts[f"{key.split('_')[0]}_trend"] = tr
                if tr.get("grows"):
                    t.fail(f"{key} grows: {tr}")
            t.facts["log"] = churn.log
    finally:
        ctl.close()
        with contextlib.suppress(Exception):
            cleanup(bench_lab, PREFIX + "-", (f"vm-{PREFIX}-", f"vol-{PREFIX}-"))
        bench_lab.close()
    row = camp.rows[0] if camp.rows else {}
    camp.summary.update(
        converged="yes" if row.get("converged") else "no",
        converge_after_s=row.get("converge_after_s"),
        steps=row.get("steps"),
        rss_grows=(row.get("rss_trend") or {}).get("grows"),
        fds_grows=(row.get("fds_trend") or {}).get("grows"),
        threads_grows=(row.get("threads_trend") or {}).get("grows"),
        samples=len(samples),
    )
    camp.params["samples"] = samples
    return camp.finish(
        [
            ("trial", "trial"), ("ok", "ok"), ("steps", "steps"),
            ("converge_after_s", "converge s"), ("final_vms", "VMs"),
            ("final_volumes", "volumes"), ("applies", "applies"),
            ("apply_s_median", "apply s p50"), ("apply_failures", "apply fail"),
        ]
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
