"""R3, Ceph down: the mon and the OSD stop answering for 60 s, in steady state and during an
apply.  qemu wedges on a dead Ceph; volctl must not.

Each trial, on a converged fleet (VMs booting from RBD clones, each with a volume attached):

1. *steady* trials (even K) freeze Ceph at a random moment of the resync cycle; *apply*
   trials (odd K) first change the desired state (new VMs with volumes, a volume grown, the
   previous apply trial's VMs deleted) with `volctl apply`/`volctl delete` and freeze Ceph a
   random 0-8 s later, while that apply is being carried out;
2. Ceph is unavailable for `--outage` seconds: the mon and the OSD are SIGSTOPped (why not
   a stop/start or a firewall: `reliability/common/ceph_outage.py`);
3. meanwhile REST is asked every second (`/healthz`, `/api/v1/status`, `/api/v1/snapshot`),
   every lab host is read every 2 s (a VM of ours that vanished, stopped or was restarted is a
   destroy), and the controller's JSON log records every pass;
4. Ceph is thawed, and the trial waits until status says converged *and* libvirt and RBD
   match the desired state (`Workload.check_world`).

Goals: no VM destroyed; every call ends within its documented deadline (docs/backends.md
"Timeouts": libvirt call 15 s, RBD call 30 s, RBD connect 10 s, observe 30 s), so every action
during the outage ends within two calls' deadlines, every pass within two observations and
a chain of three actions, and every timeout message names a documented deadline; no
librados client is leaked by the outage; REST answers every probe (max latency reported);
the status summary (`/api/v1/status` `storage.reason`) names Ceph by the end of the first
pass that starts after Ceph went away; convergence after Ceph returns, with the time.

    python -m reliability.r3_ceph [--trials 6] [--outage 60] [--seed S [--trial K]] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common.ctllog import ControllerLog
from bench.common.lab import add_lab_args, open_lab
from bench.common.world import cleanup
from reconciler.lab.proc import free_ports
from reliability.common.campaign import Campaign, Trial, add_campaign_args, median
from reliability.common.ceph_outage import CephOutage, lengthen_read_lease, settle_after_thaw
from reliability.common.controller import Controller
from reliability.common.probe import RestProbe, summarize
from reliability.common.workload import VMSpec, Workload, domain_ids

PREFIX = "r3"
# docs/backends.md "Timeouts": observe 30 s (Observer), RBD call 30 s, RBD connect 10 s,
# libvirt call 15 s, libvirt connect 5 s (controller.factory.Timeouts)
DOCUMENTED_S = {30.0, 10.0, 15.0, 5.0}
OBSERVE_S = 30.0
RBD_CALL_S = 30.0
LIBVIRT_CALL_S = 15.0
SLACK_S = 5.0  # scheduling on a loaded 2-core machine
# one action: at most two bounded calls of its backend (e.g. a lookup, then the change)
ACTION_BOUND_S = 2 * LIBVIRT_CALL_S + SLACK_S
# a pass during the outage: its observation and the verifying one after executing (each
# bounded by the observer), and the longest chain of dependent actions the planner can make
# (clone-root -> start-domain -> attach-volume), each action within its bound
PASS_BOUND_S = 2 * OBSERVE_S + 3 * max(ACTION_BOUND_S, RBD_CALL_S + SLACK_S)
WITHIN = re.compile(r"within ([0-9.]+)s|timed out \(([0-9.]+)s\)")


def ceph_named(body: Any) -> str | None:
    """The first message in a status body that names Ceph (or the RBD pool) as a cause."""
    for text in _messages(body):
        low = text.lower()
        if "ceph" in low or "storage unreachable" in low or "pool is unknown" in low:
            return text
    return None


def _messages(body: Any) -> list[str]:
    out: list[str] = []
    if isinstance(body, dict):
        for k, v in body.items():
            if k in ("message", "reason", "lastError", "error", "cause") and isinstance(v, str):
                out.append(v)
            else:
                out += _messages(v)
    elif isinstance(body, list):
        for v in body:
            out += _messages(v)
    return out


def keep(path: str, body: Any) -> dict[str, Any]:
    """From /api/v1/status: whether the summary names Ceph (`storage.reason`); from
    /api/v1/snapshot: whether any resource condition or event does."""
    if path == "/healthz" or not isinstance(body, dict):
        return {}
    rec: dict[str, Any] = {"converged": body.get("converged"), "gen": body.get("generation")}
    if path == "/api/v1/status":
        storage = body.get("storage") or {}
        named = ceph_named({"reason": storage.get("reason")}) if storage else None
        if named:
            rec["ceph"] = named[:200]
    else:
        named = ceph_named(body)
        if named:
            rec["ceph_any"] = named[:200]
    return rec


class Watcher:
    """Reads every lab host every 2 s; records each VM of ours that vanished, stopped or got
    another qemu (domain id) or definition (uuid) compared with the first read."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.first = domain_ids(wl.lab, wl.prefix + "-")
        self.events: list[str] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            try:
                now = domain_ids(self.wl.lab, self.wl.prefix + "-")
            except Exception as exc:  # noqa: BLE001 - recorded, the next read retries
                self.events.append(f"read failed: {exc}")
                continue
            self.reads += 1
            for name, (host, uuid, dom_id) in self.first.items():
                if name not in self.wl.vms or dom_id < 0:
                    continue  # deleted on purpose, or not running to begin with
                cur = now.get(name)
                if cur is None:
                    self._event(f"{name}: domain gone from {host}")
                elif cur[1] != uuid:
                    self._event(f"{name}: redefined (uuid {uuid} -> {cur[1]})")
                elif cur[2] != dom_id:
                    self._event(f"{name}: qemu restarted or stopped (id {dom_id} -> {cur[2]})")

    def _event(self, text: str) -> None:
        if text not in self.events:
            self.events.append(text)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=30)
        return [e for e in self.events if not e.startswith("read failed")]


def ctl_threads(pid: int) -> dict[str, int]:
    """The controller's threads, and how many librados clients they belong to (each client
    has exactly one `msgr-worker-0` thread)."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names.append((task / "comm").read_text().strip())
    return {"threads": len(names), "rados_handles": names.count("msgr-worker-0")}


def add_vm(wl: Workload, vol_gib: int = 1) -> str:
    name = wl.new_name("vm")
    wl.vms[name] = VMSpec(name)
    vol = f"{name}-data"
    wl.volumes[vol] = vol_gib
    wl.attachments[vol] = name
    return name


def drop_vm(wl: Workload, name: str) -> None:
    wl.vms.pop(name, None)
    for vol in [v for v, m in wl.attachments.items() if m == name]:
        wl.attachments.pop(vol)
        wl.volumes.pop(vol, None)


def change_for_apply(wl: Workload, t: Trial, extras: list[str], new: int) -> dict[str, Any]:
    """The apply an outage lands in: NEW VMs with volumes, one volume grown, the previous
    apply trial's VMs deleted."""
    for name in extras:
        drop_vm(wl, name)
    gone = list(extras)
    extras.clear()
    for _ in range(new):
        extras.append(add_vm(wl))
    grow = t.rng.choice(sorted(v for v in wl.volumes if wl.attachments.get(v) not in extras))
    wl.volumes[grow] += 1
    return {"created": list(extras), "deleted": gone, "grown": grow}


def pass_windows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = {e.get("reconcile_id"): e["_t"] for e in events if e.get("event") == "pass.start"}
    out = []
    for e in events:
        if e.get("event") == "pass.end" and e.get("reconcile_id") in starts:
            out.append(
                {
                    "start": starts[e["reconcile_id"]],
                    "end": e["_t"],
                    "seconds": float(e.get("duration_ms", 0)) / 1000,
                    "error": e.get("error"),
                    "converged": e.get("converged"),
                }
            )
    return out


def run_trial(
    t: Trial,
    mode: str,
    args: argparse.Namespace,
    wl: Workload,
    ctl: Controller,
    extras: list[str],
    outage: CephOutage,
) -> None:
    ok, _secs, problems = ctl.wait_converged(wl, timeout=args.recover_timeout)
    if not ok:
        t.fail(f"not converged before the outage: {problems[:3]}")
        return
    t.facts["mode"] = mode
    before = ctl_threads(ctl.pid)
    ctl.ctl_log = ControllerLog(ctl.log)
    ctl.ctl_log.mark()
    probe = RestProbe(
        f"http://{ctl.listen}",
        paths=("/healthz", "/api/v1/status", "/api/v1/snapshot"),
        keep=keep,
    ).start()
    watcher = Watcher(wl)
    if mode == "apply":
        t.facts["change"] = change_for_apply(wl, t, extras, args.new)
        delay = t.rng.uniform(0, 8)
        rc, _ = ctl.sync(wl)
        if rc != 0:
            t.fail(f"volctl apply/delete exited {rc}")
    else:
        delay = t.rng.uniform(0, args.resync)
    t.facts["freeze_after_s"] = round(delay, 2)
    time.sleep(delay)
    wall_freeze = time.time()
    t_freeze = outage.freeze()
    if not outage.stopped():
        t.fail("mon/OSD not stopped after SIGSTOP")
    try:
        time.sleep(args.outage)
    finally:
        t_thaw = outage.thaw() or time.monotonic()
    wall_thaw = time.time()
    t.facts.update(settle_after_thaw(wl.lab.info.dir))
    ok, _s, problems = ctl.wait_converged(wl, timeout=args.recover_timeout)
    recover_s = time.monotonic() - t_thaw
    t.facts["recover_s"] = round(recover_s, 1)
    if not ok:
        t.fail(f"not converged {args.recover_timeout:.0f}s after Ceph returned: {problems[:4]}")
    destroyed = watcher.stop()
    records = probe.stop()
    t.facts["vm_destroyed"] = len(destroyed)
    if destroyed:
        t.fail(f"VMs destroyed or restarted: {destroyed[:4]}")

    # REST during the outage
    rest = summarize(records, t_freeze, t_thaw)
    t.facts["rest_probes"] = rest["probes"]
    t.facts["rest_failed"] = rest["failed"]
    t.facts["rest_max_ms"] = rest["max_ms"]
    if rest["failed"] or not rest["probes"]:
        t.fail(f"REST failed during the outage: {rest['first_failure']}")

    # passes during the outage, and their deadlines
    events = ctl.ctl_log.new()
    passes = [
        p for p in pass_windows(events) if p["end"] >= wall_freeze and p["start"] <= wall_thaw
    ]
    t.facts["outage_passes"] = len(passes)
    t.facts["max_pass_s"] = round(max((p["seconds"] for p in passes), default=0.0), 1)
    if not passes:
        t.fail("no pass ended during the outage (the loop is stuck)")
    for p in passes:
        if p["seconds"] > PASS_BOUND_S:
            t.fail(f"a pass during the outage took {p['seconds']:.1f}s > {PASS_BOUND_S:.0f}s")
    # the last gap between passes: the loop kept going until Ceph returned
    ends = sorted(p["end"] for p in passes)
    gaps = [b - a for a, b in zip([wall_freeze, *ends], [*ends, wall_thaw], strict=True)]
    t.facts["max_gap_s"] = round(max(gaps), 1)
    if max(gaps) > PASS_BOUND_S + args.resync:
        t.fail(f"no pass ended for {max(gaps):.1f}s during the outage")
    slow = [
        e
        for e in events
        if e.get("event") == "action"
        and e["_t"] >= wall_freeze
        and float(e.get("duration_ms", 0)) / 1000 > ACTION_BOUND_S
    ]
    t.facts["max_action_s"] = round(
        max(
            (float(e.get("duration_ms", 0)) / 1000 for e in events if e.get("event") == "action"),
            default=0.0,
        ),
        1,
    )
    for e in slow[:3]:
        t.fail(f"action {e.get('action')} took {float(e['duration_ms']) / 1000:.1f}s")
    timeouts: dict[str, int] = {}
    for e in events:
        text = " ".join(str(e.get(k, "")) for k in ("error", "reason", "message"))
        for m in WITHIN.finditer(text):
            val = float(m.group(1) or m.group(2))
            timeouts[f"{val:g}s"] = timeouts.get(f"{val:g}s", 0) + 1
            if val not in DOCUMENTED_S:
                t.fail(f"a timeout of {val:g}s, not a documented deadline: {text[:160]}")
    t.facts["timeouts"] = timeouts

    # status names Ceph within one pass
    first_after = min(
        (p for p in passes if p["start"] >= wall_freeze), key=lambda p: p["start"], default=None
    )
    named = [r for r in records if r["t"] >= t_freeze and r.get("ceph")]
    if named:
        t.facts["ceph_named_after_s"] = round(named[0]["t"] - t_freeze, 1)
        t.facts["ceph_message"] = named[0]["ceph"]
    if first_after is not None and first_after["end"] > wall_thaw and not named:
        # Ceph came back before the first pass of the outage gave up on it (its observation
        # waits up to 30 s): that pass saw Ceph again, so there was nothing to name
        t.facts["ceph_named"] = "not due: the first pass of the outage ended after the thaw"
    elif not named:
        t.fail("the status summary (/api/v1/status) never named Ceph during the outage")
    elif first_after is not None:
        deadline = first_after["end"] - wall_freeze + 1.5  # + one probe interval
        t.facts["one_pass_s"] = round(first_after["end"] - wall_freeze, 1)
        if named[0]["t"] - t_freeze > deadline:
            t.fail(
                f"Ceph named {named[0]['t'] - t_freeze:.1f}s after the outage began, after the "
                f"first pass that started in it ended ({deadline - 1.5:.1f}s)"
            )
    t.facts["running_vms"] = wl.running_count()
    after = ctl_threads(ctl.pid)
    t.facts["threads_before"] = before["threads"]
    t.facts["threads_after"] = after["threads"]
    t.facts["rados_handles_after"] = after["rados_handles"]
    # one live handle, and at most one dropped one still shutting down
    if after["rados_handles"] > 2:
        t.fail(f"{after['rados_handles']} librados clients alive after recovery (leak)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reliability.r3_ceph", description=__doc__.split("\n")[0])
    add_campaign_args(p, trials=6)
    add_lab_args(p, default_hosts=2)
    p.add_argument("--outage", type=float, default=60.0, help="seconds Ceph is down")
    p.add_argument("--vms", type=int, default=4, help="VMs of the base fleet")
    p.add_argument("--new", type=int, default=2, help="VMs created by each apply trial")
    p.add_argument("--resync", type=float, default=5.0, help="the controller's resync")
    p.add_argument("--recover-timeout", type=float, default=600.0)
    p.add_argument("--listen", default=None, help="REST address (default: a free port)")
    args = p.parse_args(argv)
    if args.smoke:
        # 60 s as in the campaign: the pass in flight when Ceph froze may run 15-30 s (a wedged
        # attach), and the next one needs its 30 s observe deadline to name Ceph
        args.trials, args.outage, args.vms, args.new = 1, 60.0, 1, 1
        # within the suite's 560 s: a trial that cannot converge fails and says why
        args.recover_timeout = min(args.recover_timeout, 240.0)
        if args.trial is None:
            args.trial = 1  # an apply trial: the harder half
    listen = args.listen or f"127.0.0.1:{free_ports(1)[0]}"
    camp = Campaign.from_args(
        "r3_ceph",
        args,
        {"outage_s": args.outage, "vms": args.vms, "new_per_apply": args.new,
         "resync_s": args.resync, "ram_mib": 128, "fault": "SIGSTOP mon.a + osd.0"},
    )  # fmt: skip
    camp.goals = {
        "vm_destroyed": "0",
        "rest_failed": "0 (every probe answered during the outage)",
        "max_action_s": f"<= {ACTION_BOUND_S:.0f} s (two libvirt calls of 15 s, or one RBD "
        "call of 30 s, + slack)",
        "max_pass_s": f"<= {PASS_BOUND_S:.0f} s (two observations of 30 s + a chain of three "
        "actions)",
        "rados_handles_after": "<= 2 (no librados client leaked per outage)",
        "ceph_named": "by the end of the first pass that starts in the outage",
        "converged": "every trial, world checked",
    }
    lab = open_lab(args)
    wl = Workload(lab, PREFIX)
    ctl = Controller(listen, resync=args.resync)
    extras: list[str] = []
    try:
        cleanup(lab, PREFIX + "-", (f"vm-{PREFIX}-", f"vol-{PREFIX}-"))
        lease = args.outage * 2 + 60
        lengthen_read_lease(lab.info.dir, lease)
        camp.note(
            f"the lab's PG read leases lengthened to {lease:.0f}s before the campaign "
            "(reliability/common/ceph_outage.py: a single frozen OSD otherwise can leave a PG "
            "laggy for minutes); a PG still laggy 20 s after a thaw is re-peered and the "
            "trial's lab_repair says so"
        )
        outage = CephOutage(lab.info.dir)
        ctl.start_for(wl)
        for _ in range(args.vms):
            add_vm(wl)
        t0 = time.monotonic()
        rc, _ = ctl.sync(wl, wait=900)
        ok, _s, problems = ctl.wait_converged(wl, timeout=600)
        if rc != 0 or not ok:
            raise SystemExit(f"the base fleet did not converge (apply rc {rc}): {problems[:4]}")
        camp.note(f"base fleet of {args.vms} VMs converged in {time.monotonic() - t0:.0f}s")
        for t in camp.trials(args.trials, args.trial):
            mode = "apply" if t.k % 2 else "steady"
            try:
                run_trial(t, mode, args, wl, ctl, extras, outage)
            except Exception as exc:  # noqa: BLE001 - the trial fails, the campaign goes on
                outage.thaw()
                t.fail(f"trial crashed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            if t.failures:
                print("\n".join(ctl.log_digest()), flush=True)
    finally:
        ctl.close()
        cleanup(lab, PREFIX + "-", (f"vm-{PREFIX}-", f"vol-{PREFIX}-"))
        lab.close()
    rows = camp.rows
    camp.summary.update(
        vm_destroyed=sum(r.get("vm_destroyed", 0) for r in rows),
        rest_failed=sum(r.get("rest_failed", 0) for r in rows),
        rest_max_ms=max((r.get("rest_max_ms") or 0 for r in rows), default=0),
        max_pass_s=max((r.get("max_pass_s", 0) for r in rows), default=0),
        max_action_s=max((r.get("max_action_s", 0) for r in rows), default=0),
        rados_handles_after=max((r.get("rados_handles_after", 0) for r in rows), default=0),
        ceph_named=f"{sum(1 for r in rows if 'ceph_named_after_s' in r)}/{len(rows)}",
        ceph_named_max_s=max((r.get("ceph_named_after_s", 0) for r in rows), default=0),
        converged=f"{sum(1 for r in rows if r.get('ok'))}/{len(rows)}",
        recover_median_s=median([r["recover_s"] for r in rows if "recover_s" in r]),
        recover_max_s=max((r.get("recover_s", 0) for r in rows), default=0),
    )
    camp.note(
        "Ceph outage = SIGSTOP of the lab's mon.a and osd.0 (memstore keeps its data; "
        "connections hang without RST, as with a dead or partitioned node); mgr left running"
    )
    return camp.finish(
        [
            ("trial", "trial"), ("mode", "mode"), ("ok", "ok"),
            ("freeze_after_s", "freeze@"), ("ceph_named_after_s", "ceph named s"),
            ("one_pass_s", "1st pass s"), ("max_pass_s", "max pass s"),
            ("max_action_s", "max action s"), ("rados_handles_after", "rados clients"),
            ("rest_max_ms", "REST max ms"), ("rest_failed", "REST fail"),
            ("vm_destroyed", "destroyed"), ("recover_s", "recover s"),
            ("lab_repair", "lab repair"),
        ]
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
