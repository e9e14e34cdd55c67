"""B6, the HA control plane on the real lab (docs/ha.md): takeover, reaction, bulk apply.

    .venv/bin/python -m bench.b6_ha --trials 10
    .venv/bin/python -m bench.b6_ha --smoke            # 2 trials, 50 resources

* takeover: 3 replicas (`volctl run --replica-id`, default 6 s lease) on a RADOS store; the
  leader is SIGKILLed at a random point of its renewal period; measured from the kill to the
  new leader's `ha.leading` log event (it may act from then on; goal <= 2 x lease), and to
  its `ha.takeover` (lock taken, epoch published);
* spec saved → first action: a Volume written through the store's own API in this process
  (the RADOS store: after the CAS write and the notify returned; the directory store: after
  the atomic rename), to the start of the controller's first action on it (its `action` log
  event minus `duration_ms`), for a single `volctl run` on each store;
* `volctl apply -f` of N Volume documents into an empty store of each kind, and again
  unchanged (wall time of the CLI process).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common.ctllog import ControllerLog, action_start
from bench.common.lab import add_lab_args, open_lab
from bench.common.report import Report, median, percentile
from bench.common.world import cleanup
from reconciler.config import load_config
from reconciler.controller.stores import open_store
from reconciler.lab.info import LabInfo

VOLCTL = [sys.executable, "-m", "reconciler.cli.main"]


def _volume(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "volctl.io/v1",
        "kind": "Volume",
        "metadata": {"name": name},
        "spec": {"size": 1, "reclaimPolicy": "Delete"},
    }


def _config(info: LabInfo, work: Path, store: str, lease: float) -> Path:
    doc = yaml.safe_load(Path(info.config_path).read_text())
    doc["store"] = store
    doc["lease"] = lease
    doc["stateDir"] = str(work / "state")
    path = work / f"volctl-{abs(hash(store)) % 10**6}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Proc:
    def __init__(self, config: Path, log: Path, *extra: str) -> None:
        self.log = ControllerLog(log)
        self.start = log.stat().st_size if log.exists() else 0  # this process's part of the log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*VOLCTL, "--config", str(config), "run", "--no-api", *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def takeover(
    info: LabInfo, work: Path, trials: int, lease: float, ns: str
) -> dict[str, list[float]]:
    config = _config(info, work, f"rados://{info.pool}/{ns}", lease)
    reps = {n: Proc(config, work / f"{n}.log", "--replica-id", n) for n in ("r1", "r2", "r3")}
    leading: list[float] = []
    locked: list[float] = []
    rng = random.Random(6)
    try:
        for _ in range(trials):
            for name, rep in list(reps.items()):
                if rep.proc.poll() is not None:
                    reps[name] = Proc(config, work / f"{name}.log", "--replica-id", name)
            leader = _wait_leader(reps, timeout=6 * lease)
            time.sleep(lease / 3 + rng.uniform(0, lease / 3))
            for rep in reps.values():
                rep.log.mark()
            reps[leader].proc.send_signal(signal.SIGKILL)
            t0 = time.time()
            reps[leader].proc.wait()
            ev_lock, ev_lead = _wait_events(reps, leader, timeout=6 * lease)
            locked.append(ev_lock - t0)
            leading.append(ev_lead - t0)
    finally:
        for rep in reps.values():
            rep.stop()
    return {"leading": leading, "locked": locked}


def _wait_leader(reps: dict[str, Proc], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, rep in reps.items():
            text = rep.log.path.read_bytes()[rep.start :].decode(errors="replace")
            last = [ln for ln in text.splitlines() if '"ha.leading"' in ln or '"ha.term_end"' in ln]
            if last and '"ha.leading"' in last[-1] and rep.proc.poll() is None:
                return name
        time.sleep(0.1)
    raise RuntimeError("no leader")


def _wait_events(reps: dict[str, Proc], dead: str, timeout: float) -> tuple[float, float]:
    deadline = time.monotonic() + timeout
    lock: float | None = None
    while time.monotonic() < deadline:
        for name, rep in reps.items():
            if name == dead:
                continue
            for ev in rep.log.new():
                if ev.get("event") == "ha.takeover":
                    lock = ev["_t"]
                if ev.get("event") == "ha.leading" and lock is not None:
                    return lock, ev["_t"]
        time.sleep(0.02)
    tails = {n: r.log.path.read_text(errors="replace").splitlines()[-6:] for n, r in reps.items()}
    raise RuntimeError(f"no takeover after killing {dead}: {json.dumps(tails, indent=1)}")


def first_action(info: LabInfo, work: Path, store: str, trials: int) -> list[float]:
    config = _config(info, work, store, 6.0)
    inv = Path(info.inventory_path).read_text()
    spec_store = open_store(load_config(str(config)))
    spec_store.apply([("inventory.yaml", inv)])
    log = work / f"first-{abs(hash(store)) % 10**6}.log"
    extra = ("--replica-id", "solo") if store.startswith("rados://") else ()
    ctl = Proc(config, log, *extra, "--resync", "300")
    out: list[float] = []
    try:
        ctl.log.wait_for(lambda e: e.get("event") == "pass.end", 60)
        for i in range(trials):
            name = f"b6v-{int(time.time())}-{i}"
            ctl.log.mark()
            spec_store.apply([(f"{name}.yaml", yaml.safe_dump(_volume(name)))])
            t_saved = time.time()
            ev = ctl.log.wait_for(
                lambda e, n=name: e.get("event") == "action" and e.get("resource") == f"volume/{n}",
                60,
            )
            if ev is None:
                raise RuntimeError(f"no action for volume/{name}")
            out.append(action_start(ev) - t_saved)
            time.sleep(0.5)
    finally:
        ctl.stop()
        spec_store.close()
    return out


def bulk_apply(info: LabInfo, work: Path, store: str, n: int) -> tuple[float, float]:
    config = _config(info, work, store, 6.0)
    docs = work / f"bulk-{n}.yaml"
    docs.write_text(
        Path(info.inventory_path).read_text()
        + "\n---\n"
        + yaml.safe_dump_all([_volume(f"bulk-{i:05d}") for i in range(n)], sort_keys=False)
    )
    times = []
    for _ in range(2):  # into the empty store, then unchanged
        t0 = time.monotonic()
        proc = subprocess.run(
            [*VOLCTL, "--config", str(config), "apply", "-f", str(docs)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        times.append(time.monotonic() - t0)
    return times[0], times[1]


def _row(what: str, secs: list[float], **extra: Any) -> dict[str, Any]:
    ms = [s * 1000 for s in secs]
    return {
        "measurement": what,
        "trials": len(ms),
        "median_ms": median(ms),
        "p95_ms": percentile(ms, 95),
        "min_ms": min(ms) if ms else None,
        "max_ms": max(ms) if ms else None,
        "samples_ms": [round(x, 1) for x in ms],
        "ok": bool(ms),
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b6_ha", description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--lease", type=float, default=6.0)
    p.add_argument("--bulk", type=int, default=1000)
    p.add_argument("--smoke", action="store_true", help="2 trials, 50 resources")
    p.add_argument("--prefix", default="b6", help="prefix of the RADOS namespaces used")
    add_lab_args(p, default_hosts=2)
    args = p.parse_args(argv)
    if args.smoke:
        args.trials, args.bulk = 2, 50
    lab = open_lab(args)
    report = Report("b6_ha", {"trials": args.trials, "lease": args.lease, "bulk": args.bulk})
    info = lab.info
    try:
        with tempfile.TemporaryDirectory(prefix="b6-") as tmp:
            work = Path(tmp)
            (work / "store").mkdir()
            stamp = f"{args.prefix}-{int(time.time())}"
            t = takeover(info, work, args.trials, args.lease, f"{stamp}-takeover")
            report.rows.append(_row("takeover: SIGKILL -> new leader acts", t["leading"]))
            report.rows.append(_row("takeover: SIGKILL -> lock taken", t["locked"]))
            rados_s = first_action(
                info, work, f"rados://{info.pool}/{stamp}-first", 2 * args.trials
            )
            dir_s = first_action(info, work, str(work / "store-first"), 2 * args.trials)
            report.rows.append(_row("spec saved -> first action, RADOS store", rados_s))
            report.rows.append(_row("spec saved -> first action, directory store", dir_s))
            r_new, r_same = bulk_apply(info, work, f"rados://{info.pool}/{stamp}-bulk", args.bulk)
            d_new, d_same = bulk_apply(info, work, str(work / "store-bulk"), args.bulk)
            report.rows.append(_row(f"apply {args.bulk} volumes, RADOS store (new)", [r_new]))
            report.rows.append(_row(f"apply {args.bulk} volumes, directory store (new)", [d_new]))
            report.rows.append(
                _row(f"apply {args.bulk} volumes, RADOS store (unchanged)", [r_same])
            )
            report.rows.append(
                _row(f"apply {args.bulk} volumes, directory store (unchanged)", [d_same])
            )
            report.summary = {
                "takeover goal (2 x lease) ms": 2000 * args.lease,
                "takeover median ms": median([x * 1000 for x in t["leading"]]),
            }
    finally:
        # the volumes the first-action trials created are managed images in the lab's pool:
        # left behind, every later controller on that pool would take them for its orphans
        # (a shared test lab's R3 smoke then never converged: its delete guard held them)
        cleanup(lab, "b6v-", ("vol-b6v-",))
        lab.close()
    report.finish(
        [
            ("measurement", "measurement"),
            ("trials", "n"),
            ("median_ms", "median ms"),
            ("p95_ms", "p95 ms"),
            ("min_ms", "min"),
            ("max_ms", "max"),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
