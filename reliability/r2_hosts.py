"""R2, hosts unreachable: cut a host's link (or SIGKILL its libvirtd) while `volctl run` works.

The promise under test (ARCHITECTURE.md, "Safety first"): an unreachable host makes its VMs
Unknown, not missing.  So while a host is cut off, volctl must create none of its VMs again
elsewhere (0 duplicates) and destroy nothing it cannot see; its status must say Unknown
within one pass; and once the link heals it must converge within one resync.

Each trial runs on a 2-host lab in network-namespace mode (`--transport tcp` or `ssh`, the
seed's transport), against one long-running controller (`volctl run --resync R`):

- `link-steady`: converged world, then the chosen host's veth goes down for `--cut` s;
- `link-apply`: the desired state flips between two workloads (VMs created and deleted,
  a volume created and deleted) and the link goes down at a random moment of that apply;
- `daemon-steady` / `daemon-apply`: the host's libvirtd is SIGKILLed and restarted after
  `--daemon-down` s (its guests keep running, as on a real host).

The verdict comes from the world, never from volctl's status: every host's libvirt is read
through its unix socket (which stays reachable from the machine while the host's network is
cut) once a second, and the guests' qemu PIDs are read from the host's pid files while its
libvirtd is dead.  The guests are 64 MiB and boot nothing (a blank RBD image: SeaBIOS idles),
so a trial costs the shared machine almost nothing.

    python -m reliability.r2_hosts --transport ssh [--trials 10] [--daemon-trials 4] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import types
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import libvirt
import rbd

from bench.common.env import REPO
from reconciler.config import load_config
from reconciler.identity import XMLNS
from reconciler.lab.lab import Lab
from reconciler.lab.proc import free_ports
from reconciler.lab.testing import LabPool, admin_cluster, drop_pool, make_pool
from reliability.common.campaign import Campaign, Trial, add_campaign_args, median, percentile

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

BLANK = "r2-blank"  # a 16 MiB zero image: the guests' root disks are clones of it
GROUPS = {"w0": ["a1", "a2", "b1", "b2"], "w1": ["a1", "a2", "b1", "c1", "c2"]}
VOLUMES = {"w0": ["v1", "v2"], "w1": ["v1", "v2", "v3"]}
ATTACH = {"v1": "a1", "v2": "a2"}  # same in both workloads: a no-OS guest never acks a detach


def _doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "volctl.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def workload(which: str, pool: str) -> str:
    """The desired state W0 or W1 (besides the lab inventory), as multi-document YAML."""
    docs = [
        _doc("InstanceType", "r2tiny", {"tid": 90, "cpu": 1, "ram": 64, "disk": 1}),
        _doc("Image", "r2blank", {"id": 90, "source": {"rbd": f"{pool}/{BLANK}@s"}}),
    ]
    for vm in GROUPS[which]:
        spec = {"instanceType": "r2tiny", "image": "r2blank", "antiAffinityGroup": vm[0]}
        docs.append(_doc("VirtualMachine", vm, spec))
    for vol in VOLUMES[which]:
        docs.append(_doc("Volume", vol, {"size": 1, "reclaimPolicy": "Delete"}))
    for vol, vm in ATTACH.items():
        docs.append(_doc("VolumeAttachment", f"{vol}-{vm}", {"volume": vol, "vm": vm}))
    return "---\n".join(d + "\n" for d in docs)


@dataclass(frozen=True)
class Seen:
    """One managed domain as libvirt shows it."""

    uuid: str
    active: bool


def world(lab: Lab, hosts: list[str]) -> dict[str, dict[str, Seen] | None]:
    """host -> {domain name: Seen} of volctl's domains, via the unix socket (None: no daemon)."""
    out: dict[str, dict[str, Seen] | None] = {}
    for name in hosts:
        try:
            conn = libvirt.open(lab.host(name).unix_uri)
        except libvirt.libvirtError:
            out[name] = None
            continue
        try:
            doms: dict[str, Seen] = {}
            for d in conn.listAllDomains():
                if XMLNS in d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
                    doms[d.name()] = Seen(d.UUIDString(), bool(d.isActive()))
            out[name] = doms
        except libvirt.libvirtError:
            out[name] = None
        finally:
            conn.close()
    return out


class Controller:
    """`volctl run` as a subprocess for the whole campaign (restarted only if it dies)."""

    def __init__(self, pool: LabPool, resync: float, log: Path) -> None:
        self.pool, self.resync, self.log_path = pool, resync, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.starts += 1
        cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(self.pool.config_path),
               "run", "--resync", str(self.resync)]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def get(self, path: str) -> Any:
        url = f"http://{self.pool.config.listen}/api/v1/{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@dataclass
class Watch:
    """What the judge saw while the fault lasted and until convergence."""

    duplicates: set[str] = field(default_factory=set)
    unseen_destroys: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def judge(
    lab: Lab, hosts: list[str], victim: str, before: dict[str, Seen], w: Watch, *, cut: bool
) -> None:
    """One look at the world: no VM on two hosts; the victim's guests all still there."""
    view = world(lab, hosts)
    where: dict[str, list[str]] = {}
    for h, doms in view.items():
        for name in doms or {}:
            where.setdefault(name, []).append(h)
    w.duplicates |= {n for n, hs in where.items() if len(hs) > 1}
    if cut:
        seen = view.get(victim)
        if seen is None:  # libvirtd dead: the guests' qemu processes are the truth
            pids = set(lab.host(victim).qemu_pids())
            if len(pids) < len(before):
                w.unseen_destroys.add(f"{len(before) - len(pids)} qemu process(es) on {victim}")
            return
        for name, s in before.items():
            now = seen.get(name)
            if now is None or now.uuid != s.uuid or (s.active and not now.active):
                w.unseen_destroys.add(name)


def destroys_sent_before(log: Path, host: str, wall: float) -> set[str]:
    """VMs whose `destroy-domain` on HOST volctl started before WALL (unix time), from the
    controller's JSON log (each action is logged at its end, with its duration)."""
    out: set[str] = set()
    with log.open(errors="replace") as f:
        for line in f:
            if '"destroy-domain:vm/' not in line:
                continue
            try:
                ev = json.loads(line)
                end = datetime.fromisoformat(ev["timestamp"]).timestamp()
            except (ValueError, KeyError):
                continue
            start = end - ev.get("duration_ms", 0) / 1000
            if ev.get("host") == host and start < wall <= end + 1.0:  # in flight at the fault
                out.add(ev["action"].removeprefix("destroy-domain:vm/"))
    return out


def wait_converged(ctl: Controller, timeout: float) -> float:
    """Seconds until a converged snapshot (the controller is (re)started if it died)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ctl.ensure()
        try:
            if ctl.get("status")["converged"]:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"not converged after {timeout:.0f} s")


def run_trial(t: Trial, kind: str, env: dict[str, Any]) -> None:
    lab: Lab = env["lab"]
    ctl: Controller = env["ctl"]
    hosts: list[str] = env["hosts"]
    args: argparse.Namespace = env["args"]
    store = Path(ctl.pool.config.store)
    wait_converged(ctl, 600)
    victim = t.rng.choice(hosts)
    t.facts.update(kind=kind, host=victim)
    before_all = world(lab, hosts)
    before = before_all[victim] or {}
    if kind.endswith("apply"):
        env["w"] = "w1" if env["w"] == "w0" else "w0"
        (store / "app.yaml").write_text(workload(env["w"], ctl.pool.pool))
        delay = t.rng.uniform(0, 4)
        t.facts["fault_after_apply_s"] = round(delay, 2)
        time.sleep(delay)
    t.facts["workload"] = env["w"]
    gen0 = ctl.get("status")["generation"]
    # the victim's guests the instant before the fault (a destroy that completes between this
    # look and the fault would count as unseen: keep the two as close as possible)
    before = world(lab, hosts)[victim] or before
    w = Watch()
    start_wall, t0 = time.time(), time.monotonic()
    daemon = kind.startswith("daemon")
    if daemon:
        pid = lab.host(victim).libvirtd_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        fault_s = args.daemon_down
    else:
        lab.cut_host(victim)
        fault_s = args.cut
    t.facts["fault_at"] = _utc(start_wall)  # to find the fault in the controller's log
    noticed: float | None = None
    first_after: bool | None = None  # did the first pass that began during the fault say so?
    first_after_judged = True
    reconnected: float | None = None  # heal -> a pass that began after it saw the host
    recovered: float | None = None
    healed: float | None = None
    heal_wall = float("inf")
    next_look = 0.0
    try:
        while recovered is None:
            now = time.monotonic()
            if healed is None and now - t0 >= fault_s:
                # the heal begins now: `start_host_daemon` returns once libvirtd answers, and
                # a pass may begin (and see it) before it returns (ssh seed 909685155 trial 7)
                healing, healing_wall = time.monotonic(), time.time()
                if daemon:
                    lab.start_host_daemon(victim)
                else:
                    lab.heal_host(victim)
                healed, heal_wall = healing, healing_wall
                t.facts["heal_at"] = _utc(heal_wall)
                t.facts["heal_took_s"] = round(time.monotonic() - healing, 2)
            if healed is not None and now - healed > args.recover_timeout:
                break
            try:
                st = ctl.get("status")
                host = ctl.get(f"hosts/{victim}")
                vms = {v["name"]: v for v in ctl.get("vms")["items"]}
            except OSError:
                ctl.ensure()
                time.sleep(0.5)
                continue
            # the VMs the victim ran when the fault began and that are still wanted
            on_victim = [vms[n] for n in before if n in vms]
            unknown = not host["reachable"] and all(v["phase"] == "Unknown" for v in on_victim)
            started = st.get("time", 0) - (st.get("lastPassSeconds") or 0)
            # the first pass that began while the fault lasted (a pass that began after it
            # healed could not see it: then this stays None, "not judged")
            if first_after is None and st["generation"] > gen0 and started >= start_wall:
                first_after = unknown if started < heal_wall else None
                if started >= heal_wall:
                    first_after_judged = False
            if noticed is None and unknown and healed is None:
                noticed = now - t0
                t.facts["passes_to_notice"] = st["generation"] - gen0
            seen_again = host["reachable"] and st["generation"] > gen0
            if reconnected is None and healed is not None and started >= heal_wall and seen_again:
                reconnected = time.monotonic() - healed
            if healed is not None and st["converged"] and started >= heal_wall:
                recovered = time.monotonic() - healed
            if now >= next_look:
                judge(lab, hosts, victim, before, w, cut=healed is None)
                next_look = time.monotonic() + 1.0
            time.sleep(0.2)
    finally:
        if healed is None:
            if daemon:
                lab.start_host_daemon(victim)
            else:
                lab.heal_host(victim)
    t.facts["notice_s"] = round(noticed, 2) if noticed is not None else None
    t.facts["first_pass_after_fault_unknown"] = first_after if first_after_judged else None
    t.facts["reconnect_s"] = round(reconnected, 2) if reconnected is not None else None
    t.facts["recover_s"] = round(recovered, 2) if recovered is not None else None
    t.facts["recover_passes"] = ctl.get("status")["generation"] - gen0
    # the end state, from libvirt: every wanted VM on exactly one host, running; the
    # victim's guests that are still wanted kept their identity (never destroyed)
    final = world(lab, hosts)
    where: dict[str, list[tuple[str, Seen]]] = {}
    for h, doms in final.items():
        for name, s in (doms or {}).items():
            where.setdefault(name, []).append((h, s))
    wanted = set(GROUPS[env["w"]])
    for name, s in before.items():
        if name in wanted and (name not in where or where[name][0][1].uuid != s.uuid):
            w.unseen_destroys.add(name)
    w.duplicates |= {n for n, hs in where.items() if len(hs) > 1}
    # a domain the apply no longer wanted, whose destroy volctl sent while the host was still
    # reachable, may be gone only after the cut (the RPC reached the host, its answer did not):
    # not a destroy of a VM that could not be seen (tcp seed 1509685696, trial 6)
    sent = destroys_sent_before(ctl.log_path, victim, start_wall)
    excused = {n for n in w.unseen_destroys if n not in wanted and n in sent}
    if excused:
        t.facts["destroys_sent_before_fault"] = sorted(excused)
        w.unseen_destroys -= excused
    t.facts["duplicates"] = len(w.duplicates)
    t.facts["unseen_destroys"] = len(w.unseen_destroys)
    if w.duplicates:
        t.fail(f"duplicate domains: {sorted(w.duplicates)}")
    if w.unseen_destroys:
        t.fail(f"destroyed while unseen: {sorted(w.unseen_destroys)}")
    if set(where) != wanted or not all(where[n][0][1].active for n in wanted if n in where):
        t.fail(f"end state {sorted(where)} != wanted {sorted(wanted)} (or not running)")
    if noticed is None:
        t.fail(f"status never said Unknown during the {fault_s:.0f} s fault")
    if first_after is False:
        t.fail("the first pass that began after the fault did not report the host Unknown")
    if recovered is None:
        t.fail(f"not converged {args.recover_timeout:.0f} s after the fault ended")
    elif recovered > args.resync:
        t.fail(f"converged {recovered:.1f} s after the fault ended: more than one resync")


def _utc(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"


def kinds(args: argparse.Namespace) -> list[str]:
    if args.smoke:
        return ["link-apply"]
    links = ["link-steady", "link-apply"] * args.trials
    daemons = ["daemon-steady", "daemon-apply"] * (args.daemon_trials // 2)
    out: list[str] = []
    while links or daemons:  # a daemon trial after every 4 link trials: a cut-short run has some
        out += links[:4] + daemons[:1]
        links, daemons = links[4:], daemons[1:]
    return out


def reuse(args: argparse.Namespace, camp: Campaign) -> dict[str, Any]:
    """The lab, pool and store a `--keep-lab` run left behind (its controller is replaced)."""
    lab = Lab(args.lab_dir, log=lambda m: print(m, flush=True))
    info = lab.info()
    work = Path(args.lab_dir + "-work")
    config = load_config(str(work / "volctl.yaml"))
    pool = LabPool(info, config.ceph.pool, config, work / "volctl.yaml", work)
    camp.note(f"lab reused: 2 hosts, netns, transport {args.transport}: {info.hosts[0].uri}")
    ctl = Controller(pool, args.resync, work / "run.log")
    ctl.ensure()
    # which workload the store holds: only W1 has VM c1 (a bare "c1" may be in the pool name)
    w = "w1" if '"name": "c1"' in (Path(config.store) / "app.yaml").read_text() else "w0"
    return {"lab": lab, "ctl": ctl, "hosts": [h.name for h in info.hosts], "w": w,
            "args": args, "pool": pool}  # fmt: skip


def setup(args: argparse.Namespace, camp: Campaign) -> dict[str, Any]:
    if args.reuse_lab:
        return reuse(args, camp)
    lab = Lab(args.lab_dir, log=lambda m: print(m, flush=True))
    lab.down(quiet=True)
    v1, v2 = free_ports(2)
    info = lab.up(2, mon_port=v1, mon_v2_port=v2, netns=True, transport=args.transport)
    camp.note(f"lab: 2 hosts, netns, transport {args.transport}: {info.hosts[0].uri}")
    pool = make_pool(info, Path(args.lab_dir + "-work"), prefix="r2")
    with admin_cluster(info).connect(timeout=30) as cluster, cluster.open_ioctx(pool.pool) as io:
        rbd.RBD().create(io, BLANK, 16 << 20, old_format=False, features=1)
        with rbd.Image(io, BLANK) as img:
            img.create_snap("s")
            img.protect_snap("s")
    store = Path(pool.config.store)
    (store / "inventory.yaml").write_text(Path(info.inventory_path).read_text())
    (store / "app.yaml").write_text(workload("w0", pool.pool))
    ctl = Controller(pool, args.resync, Path(args.lab_dir + "-work") / "run.log")
    ctl.ensure()
    took = wait_converged(ctl, 1800)
    print(f"r2_hosts: first convergence in {took:.1f} s", flush=True)
    return {"lab": lab, "ctl": ctl, "hosts": [h.name for h in info.hosts], "w": "w0",
            "args": args, "pool": pool}  # fmt: skip


def summarize(camp: Campaign, resync: float) -> None:
    rows = camp.rows
    notice = [r["notice_s"] for r in rows if r.get("notice_s") is not None]
    recover = [r["recover_s"] for r in rows if r.get("recover_s") is not None]
    reconnect = [r["reconnect_s"] for r in rows if r.get("reconnect_s") is not None]
    camp.summary.update(
        duplicates=sum(r.get("duplicates", 0) for r in rows),
        unseen_destroys=sum(r.get("unseen_destroys", 0) for r in rows),
        # a trial in which no pass began while the fault lasted (one pass outlived it) is not
        # judged on this goal: it says None, and counts in neither number
        unknown_in_first_pass=f"{sum(1 for r in rows if r.get('first_pass_after_fault_unknown'))}"
        f"/{sum(1 for r in rows if r.get('first_pass_after_fault_unknown') is not None)}",
        notice_s_median=median(notice) if notice else None,
        notice_s_p95=percentile(notice, 95) if notice else None,
        notice_s_max=max(notice) if notice else None,
        reconnect_s_median=median(reconnect) if reconnect else None,
        reconnect_s_max=max(reconnect) if reconnect else None,
        recover_s_median=median(recover) if recover else None,
        recover_s_p95=percentile(recover, 95) if recover else None,
        recover_s_max=max(recover) if recover else None,
        recover_within_one_resync=f"{sum(1 for x in recover if x <= resync)}/{len(rows)}",
    )
    camp.goals.update(
        duplicates="0",
        unseen_destroys="0",
        unknown_in_first_pass="every trial in which a pass began during the fault",
        recover_within_one_resync=f"every trial (resync {resync:g} s)",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reliability.r2_hosts", description=__doc__)
    add_campaign_args(p, trials=10)
    p.add_argument("--transport", choices=("tcp", "ssh"), default="tcp")
    p.add_argument("--daemon-trials", type=int, default=4, help="libvirtd SIGKILL trials")
    p.add_argument("--cut", type=float, default=30.0, help="seconds a link stays down")
    p.add_argument("--daemon-down", type=float, default=15.0, help="seconds libvirtd stays dead")
    p.add_argument("--resync", type=float, default=10.0, help="the controller's --resync")
    p.add_argument("--recover-timeout", type=float, default=180.0)
    p.add_argument("--lab-dir", default=None, help="default /var/tmp/volctl-r2-<transport>")
    p.add_argument("--keep-lab", action="store_true")
    p.add_argument("--reuse-lab", action="store_true", help="the lab a --keep-lab run left")
    p.add_argument(
        "--budget-min", type=float, default=None, help="start no new trial after this many minutes"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.cut = min(args.cut, 20.0)
    args.lab_dir = args.lab_dir or f"/var/tmp/volctl-r2-{args.transport}"
    plan = kinds(args)
    params = {"transport": args.transport, "cut_s": args.cut, "daemon_down_s": args.daemon_down,
              "resync_s": args.resync, "hosts": 2, "guest_mib": 64, "kinds": plan}  # fmt: skip
    camp = Campaign.from_args("r2_hosts", args, params)
    camp.params["trials"] = len(plan)
    env = setup(args, camp)
    t_start = time.monotonic()
    trials = camp.trials(len(plan), args.trial)
    assert isinstance(trials, types.GeneratorType)  # closed below, so its last row is written
    try:
        for t in trials:
            if args.budget_min is not None and time.monotonic() - t_start > args.budget_min * 60:
                camp.note(f"time budget {args.budget_min:g} min spent: stopped before trial {t.k}")
                t.facts["skipped"] = True
                break
            try:
                run_trial(t, plan[t.k], env)
            except Exception as exc:  # noqa: BLE001 - a trial that breaks is a failed trial
                traceback.print_exc()
                t.fail(f"trial error: {type(exc).__name__}: {exc}")
    finally:
        trials.close()
        camp.rows = [r for r in camp.rows if not r.get("skipped")]
        env["ctl"].stop()
        if env["ctl"].starts > 1:
            camp.note(f"the controller had to be restarted {env['ctl'].starts - 1} time(s)")
        if not args.keep_lab:
            drop_pool(env["pool"])
            env["lab"].down(quiet=True)
            shutil.rmtree(args.lab_dir + "-work", ignore_errors=True)
    summarize(camp, args.resync)
    columns = [
        ("trial", "trial"), ("kind", "kind"), ("host", "host"), ("notice_s", "notice s"),
        ("passes_to_notice", "passes"), ("reconnect_s", "reconnect s"),
        ("recover_s", "recover s"), ("duplicates", "dup"),
        ("unseen_destroys", "unseen destroys"), ("ok", "ok"),
    ]  # fmt: skip
    return camp.finish(columns)


if __name__ == "__main__":
    sys.exit(main())
