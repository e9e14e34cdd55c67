"""R1, crash anywhere: SIGKILL the controller at a random moment of an apply, restart, converge.

    .venv/bin/python -m reliability.r1_crash --trials 50 --lab-dir /var/tmp/volctl-r1-lab

A fleet of N VMs, N volumes and N attachments lives in a fresh pool of the lab. Each trial
changes the desired state from the previous trial's (random VMs and volumes deleted and new
ones created, volumes moved between VMs) with `volctl apply` and `volctl delete`, exactly as
a user would, and SIGKILLs the controller's process group at a moment drawn uniformly from
[0, D], D being the running estimate of such an apply's own duration: read from the
controller's log, from the moment the change is written to the end of the first converged
pass after the change's actions (`apply_span`), on the setup and on every trial; a trial
killed mid-apply adds the work its restarted controller still did. Then the controller is
restarted on the same store and must converge. The verdict is read from libvirt and RBD
(`reliability.common.audit`): duplicate domains, orphans (domains or images marked as ours
that no spec wants, scratch debris past its grace period), missing or misattached resources,
and the sha256 of a few Retain volumes that hold a known pattern written with `rbd import`
before the campaign.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.common.ctllog import ControllerLog
from bench.common.lab import Lab, add_lab_args, open_lab
from reconciler.lab.testing import LabPool, drop_pool, make_pool
from reliability.common import audit, pattern
from reliability.common.campaign import Campaign, Trial, add_campaign_args
from reliability.common.killable import Controller

GIB = 1024**3
PREFIX = "r1"
TYPE = f"{PREFIX}-type"
PER_VM = 3  # volumes attached to one VM at most
SCRATCH_GRACE = 10.0  # RbdStorage.tmp_grace, the backend's default


@dataclass
class Fleet:
    """The desired state the campaign keeps in the store (VMs, volumes, attachments)."""

    vms: list[str] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)  # name -> reclaimPolicy
    attachments: dict[str, str] = field(default_factory=dict)  # volume -> vm
    patterns: tuple[str, ...] = ()
    counter: int = 0

    def fresh(self, kind: str) -> str:
        self.counter += 1
        return f"{PREFIX}-{kind}{self.counter:04d}"

    def place(self, rng: random.Random, volume: str) -> None:
        load = dict.fromkeys(self.vms, 0)
        for vol, vm in self.attachments.items():
            if vol != volume and vm in load:
                load[vm] += 1
        free = [v for v in self.vms if load[v] < PER_VM]
        self.attachments[volume] = rng.choice(free)

    def desired(self, pool: str) -> audit.Desired:
        return audit.Desired(
            pool=pool,
            vms=frozenset(self.vms),
            volumes=dict(self.volumes),
            attachments=dict(self.attachments),
            volume_bytes=GIB,
            root_bytes=GIB,
        )


def infra_docs(lab: Lab, ram: int) -> list[dict[str, Any]]:
    docs = [
        d
        for d in yaml.safe_load_all(Path(lab.info.inventory_path).read_text())
        if d and d.get("kind") in {"Host", "Image"}
    ]
    docs.append(_doc("InstanceType", TYPE, {"tid": 901, "cpu": 1, "ram": ram, "disk": 1}))
    return docs


def fleet_docs(fleet: Fleet, image: str) -> list[dict[str, Any]]:
    docs = [_doc("VirtualMachine", v, {"instanceType": TYPE, "image": image}) for v in fleet.vms]
    docs += [_doc("Volume", n, {"size": 1, "reclaimPolicy": p}) for n, p in fleet.volumes.items()]
    docs += [
        _doc("VolumeAttachment", f"{vol}-at", {"volume": vol, "vm": vm})
        for vol, vm in fleet.attachments.items()
    ]
    return docs


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "volctl.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def mutate(rng: random.Random, old: Fleet, n: int) -> tuple[Fleet, list[str]]:
    """The next desired state, and the store keys (`vm/X`, ...) it no longer has."""
    new = Fleet(list(old.vms), dict(old.volumes), dict(old.attachments), old.patterns, old.counter)
    gone: list[str] = []
    most = max(1, n // 5)
    for vm in rng.sample(new.vms, rng.randint(1, most)):
        new.vms.remove(vm)
        gone.append(f"vm/{vm}")
    new.vms += [new.fresh("v") for _ in range(len(old.vms) - len(new.vms))]
    plain = [v for v in new.volumes if v not in new.patterns]
    for vol in rng.sample(plain, min(len(plain), rng.randint(1, most))):
        del new.volumes[vol]
        del new.attachments[vol]
        gone += [f"attachment/{vol}-at", f"volume/{vol}"]
    while len(new.volumes) < len(old.volumes):
        new.volumes[new.fresh("d")] = rng.choice(("Delete", "Delete", "Retain"))
    for vol in sorted(new.volumes):
        holder = new.attachments.get(vol)
        if holder is None or holder not in new.vms or rng.random() < 0.15:
            new.place(rng, vol)
    return new, gone


MIN_WINDOW = 5.0  # seconds: the shortest kill window, whatever the log says


def _converged_end(events: list[dict[str, Any]], after: float) -> float | None:
    """The time of the first pass.end at or after `after` that found nothing left to do."""
    for e in events:
        if e.get("event") == "pass.end" and e.get("_t", 0) >= after and e.get("converged"):
            return float(e["_t"])
    return None


def apply_span(events: list[dict[str, Any]], wall0: float) -> float | None:
    """An apply's own duration: from `wall0` (the change written) to the end of the first
    converged pass after its last action, or None when the log holds no such pass (the
    controller died first, or the change took no action).  After the last action, not the
    first: an apply followed by a delete can converge once in between."""
    acts = [
        float(e["_t"]) for e in events if e.get("event") == "action" and e.get("_t", 0) >= wall0
    ]
    if not acts:
        return None
    end = _converged_end(events, acts[-1])
    return None if end is None else end - wall0


def restart_work(events: list[dict[str, Any]], wall_restart: float) -> float | None:
    """What a restarted controller still had to do: its first pass.start to its first
    converged pass.end (its process start and the judge's polling are not counted)."""
    starts = [
        float(e["_t"])
        for e in events
        if e.get("event") == "pass.start" and e.get("_t", 0) >= wall_restart
    ]
    if not starts:
        return None
    end = _converged_end(events, starts[0])
    return None if end is None else end - starts[0]


def before_kill(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the controller had done of this apply when it died (from its own log): the
    kill came after convergence only if a converged pass ended after the last action (a
    converged pass that ended before the apply's first action says nothing about it)."""
    actions = [e for e in events if e.get("event") == "action"]
    done = apply_span(events, 0.0) is not None
    return {"actions_before_kill": len(actions), "kill_after_converged": done}


class R1:
    def __init__(self, args: argparse.Namespace, lab: Lab, campaign: Campaign) -> None:
        self.args = args
        self.lab = lab
        self.campaign = campaign
        self.work = Path(tempfile.mkdtemp(prefix="volctl-r1-", dir="/var/tmp"))
        self.pool: LabPool = make_pool(lab.info, self.work, prefix=PREFIX)
        cfg = self.pool.config
        self.ctl = Controller(
            self.pool.config_path, cfg.listen, self.work / "run.log", resync=args.resync
        )
        self.log = ControllerLog(self.work / "run.log")
        self.image = next(d["metadata"]["name"] for d in infra_docs(lab, 0) if d["kind"] == "Image")
        self.fleet = Fleet()
        self.sums: dict[str, str] = {}
        self.d_est = 0.0

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        rng = random.Random(self.campaign.seed)
        self.ctl.start()
        self.fleet.patterns = tuple(f"{PREFIX}-pat{i}" for i in range(a.patterns))
        self.fleet.volumes = dict.fromkeys(self.fleet.patterns, "Retain")
        self.apply(infra_docs(self.lab, a.ram) + fleet_docs(self.fleet, self.image), wait=True)
        for i, vol in enumerate(self.fleet.patterns):
            path = self.work / f"{vol}.pattern"
            self.sums[vol] = pattern.make_file(path, GIB, seed=self.campaign.seed + i)
            pattern.write_into(self.lab, self.pool.pool, f"vol-{vol}", path)
            path.unlink()
        self.check_data({})  # the pattern really is in the volumes before any fault
        self.fleet.vms = [self.fleet.fresh("v") for _ in range(a.vms)]
        while len(self.fleet.volumes) < a.vms:
            self.fleet.volumes[self.fleet.fresh("d")] = rng.choice(("Delete", "Retain"))
        for vol in sorted(self.fleet.volumes):
            self.fleet.place(rng, vol)
        t0 = time.monotonic()
        wall0 = time.time()
        self.log.mark()
        self.apply(fleet_docs(self.fleet, self.image))
        ok, why = self.converge(a.converge_timeout)
        if not ok:
            raise SystemExit(f"r1: the initial fleet did not converge: {why}")
        first = time.monotonic() - t0
        span = apply_span(self.log.new(), wall0) or first
        # a trial replaces about a fifth of the fleet: start from half the initial apply
        self.d_est = max(MIN_WINDOW, span / 2)
        self.campaign.summary["initial_apply_s"] = round(first, 1)
        self.campaign.summary["initial_apply_span_s"] = round(span, 1)
        print(f"r1: initial fleet converged in {first:.1f} s (apply span {span:.1f} s)", flush=True)

    # -- one trial -------------------------------------------------------------------------

    def trial(self, t: Trial) -> None:
        new, gone = mutate(t.rng, self.fleet, self.args.vms)
        delay = t.rng.uniform(0.0, self.d_est)
        t.facts.update(
            kill_at_s=round(delay, 2),
            window_s=round(self.d_est, 1),
            vms_replaced=sum(1 for g in gone if g.startswith("vm/")),
            volumes_replaced=sum(1 for g in gone if g.startswith("volume/")),
        )
        self.log.mark()
        killed = threading.Event()
        wall0 = time.time()

        def kill() -> None:
            t.facts["killed_running"] = self.ctl.kill()
            t.facts["kill_wall"] = time.time()
            killed.set()

        timer = threading.Timer(delay, kill)
        timer.start()
        try:
            self.apply(fleet_docs(new, self.image))
            if gone:
                rc, out = self.ctl.cli("delete", *gone)
                if rc != 0:
                    t.fail(f"volctl delete failed: {out.strip()[-300:]}")
        finally:
            killed.wait(timeout=delay + 600)
            timer.cancel()
        self.fleet = new
        wall_kill = float(t.facts.get("kill_wall", time.time()))
        first_life = [e for e in self.log.new() if wall0 <= e.get("_t", 0) <= wall_kill]
        t.facts.update(before_kill(first_life))
        t_restart = time.monotonic()
        wall_restart = time.time()
        self.ctl.start()
        ok, why = self.converge(self.args.converge_timeout)
        t_conv = time.monotonic()
        t.facts["converge_after_restart_s"] = round(t_conv - t_restart, 1)
        span = apply_span(first_life, wall0)
        if span is None:  # killed before the apply was done: what it did, plus what was left
            rest = restart_work(self.log.new(), wall_restart)
            span = None if rest is None else (wall_kill - wall0) + rest
        else:
            self.log.new()
        t.facts["apply_span_s"] = None if span is None else round(span, 1)
        verdict = self.final_verdict()
        t.facts.update(converged=ok, **verdict.as_dict())
        if not ok:
            t.fail(f"did not converge in {self.args.converge_timeout:.0f} s: {why}")
        if verdict.duplicates:
            t.fail(f"duplicates: {verdict.duplicates[:3]}")
        if verdict.orphans:
            t.fail(f"orphans: {verdict.orphans[:3]}")
        self.check_data(t.facts, t)
        # the next window: a running mean of the apply's own duration (never the time the
        # controller was down, its cold start or the judge's polling)
        if span is not None:
            self.d_est = max(MIN_WINDOW, 0.5 * self.d_est + 0.5 * span)

    # -- helpers ---------------------------------------------------------------------------

    def apply(self, docs: list[dict[str, Any]], *, wait: bool = False) -> None:
        path = self.work / "apply.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        extra = ["--wait", "--timeout", "600"] if wait else []
        rc, out = self.ctl.cli("apply", "-f", str(path), *extra, timeout=900)
        if rc != 0:
            raise RuntimeError(f"volctl apply failed ({rc}): {out[-2000:]}")

    def converge(self, timeout: float) -> tuple[bool, str]:
        """Wait until the controller says converged and the world agrees."""
        want = self.fleet.desired(self.pool.pool)
        deadline = time.monotonic() + timeout
        why = "no status yet"
        while time.monotonic() < deadline:
            st = self.ctl.status()
            if st.get("converged"):
                v = audit.judge(audit.observe(self.lab, self.pool.pool), want, scratch_grace=1e9)
                if v.converged:
                    return True, ""
                why = f"status converged but the world differs: {v.as_dict()['problems'][:4]}"
            else:
                why = f"status: converged={st.get('converged')} error={st.get('last_error')}"
            if not self.ctl.alive():
                return False, f"controller exited: {self.ctl.tail(500)}"
            time.sleep(2.0)
        return False, why

    def final_verdict(self) -> audit.Verdict:
        """The world once any scratch debris has outlived its grace period and a resync."""
        want = self.fleet.desired(self.pool.pool)
        limit = SCRATCH_GRACE + 2 * self.args.resync + 5
        world = audit.observe(self.lab, self.pool.pool)
        scratch = [i for i in world.images.values() if i.kind == "scratch"]
        if scratch:
            youngest = min(i.age_s for i in scratch)
            time.sleep(max(0.0, limit - youngest) + 1)
            world = audit.observe(self.lab, self.pool.pool)
        return audit.judge(world, want, scratch_grace=limit)

    def check_data(self, facts: dict[str, Any], t: Trial | None = None) -> None:
        bad = []
        for vol, want in self.sums.items():
            got = audit.export_sha256(self.lab, self.pool.pool, f"vol-{vol}")
            if got != want:
                bad.append(vol)
        facts["volumes_checked"] = len(self.sums)
        facts["volumes_corrupted"] = len(bad)
        if bad and t is not None:
            t.fail(f"pattern volumes changed: {bad}")
        if bad and t is None:
            raise SystemExit(f"r1: the pattern did not land in {bad}")

    def close(self) -> None:
        self.ctl.stop()
        self.ctl.kill()
        try:
            drop_pool(self.pool)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "converged": f"{sum(1 for r in rows if r.get('converged'))}/{len(rows)}",
        "duplicates": sum(int(r.get("duplicates", 0)) for r in rows),
        "orphans": sum(int(r.get("orphans", 0)) for r in rows),
        "volumes_corrupted": sum(int(r.get("volumes_corrupted", 0)) for r in rows),
        "kills_before_any_action": sum(1 for r in rows if not r.get("actions_before_kill")),
        "kills_mid_apply": sum(
            1 for r in rows if r.get("actions_before_kill") and not r.get("kill_after_converged")
        ),
        "kills_after_converged": sum(1 for r in rows if r.get("kill_after_converged")),
        "converge_after_restart_median_s": statistics.median(
            [r.get("converge_after_restart_s", 0) for r in rows] or [0]
        ),
        "trials": len(rows),
        "trials_ok": sum(1 for r in rows if r.get("ok")),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reliability.r1_crash", description=__doc__.split("\n")[0])
    add_campaign_args(p, trials=50)
    add_lab_args(p, default_hosts=2)
    p.add_argument("--vms", type=int, default=20, help="VMs = volumes = attachments (20)")
    p.add_argument("--ram", type=int, default=96, help="guest RAM in MiB (96)")
    p.add_argument("--patterns", type=int, default=3, help="Retain volumes with a pattern (3)")
    p.add_argument("--resync", type=float, default=5.0, help="controller resync interval")
    p.add_argument("--converge-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    if args.smoke:
        args.trials, args.vms, args.patterns = 1, 3, 1
    campaign = Campaign.from_args(
        "r1_crash",
        args,
        {
            "vms": args.vms,
            "volumes": args.vms,
            "attachments": args.vms,
            "pattern_volumes": args.patterns,
            "guest_ram_mib": args.ram,
            "resync_s": args.resync,
            "converge_timeout_s": args.converge_timeout,
            "hosts": args.lab_hosts,
        },
    )
    campaign.goals = {
        "converged": "all trials",
        "duplicates": "0",
        "orphans": "0",
        "volumes_corrupted": "0 (0 bytes lost)",
    }
    campaign.summarize = summarize
    lab = open_lab(args)
    r1: R1 | None = None
    try:
        r1 = R1(args, lab, campaign)
        r1.setup()
        for t in campaign.trials(args.trials, args.trial):
            try:
                r1.trial(t)
            except Exception as exc:  # noqa: BLE001 - a broken trial is a failed trial
                t.fail(f"{type(exc).__name__}: {exc}")
                r1.ctl.kill()
                r1.ctl.start()
        return campaign.finish(
            [
                ("trial", "trial"),
                ("kill_at_s", "kill s"),
                ("window_s", "window s"),
                ("actions_before_kill", "acts before"),
                ("converge_after_restart_s", "converge s"),
                ("duplicates", "dup"),
                ("orphans", "orph"),
                ("volumes_corrupted", "corrupt"),
                ("ok", "ok"),
            ]
        )
    finally:
        if r1 is not None:
            r1.close()
        lab.close()


if __name__ == "__main__":
    raise SystemExit(main())
