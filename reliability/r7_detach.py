"""R7, a detach the guest never acknowledges, and a volume moved 20 times in a row.

    .venv/bin/python -m reliability.r7_detach --trials 5 [--seed S [--trial K]]

Two VMs booting the lab's tiny Linux guest, on two lab hosts, under a running `volctl run`;
one volume moves between them.  Each trial:

1. **unacknowledged detach.**  The volume's current guest stops answering, chosen at random:
   - `paused`: the domain is suspended out of band (`virsh suspend`); the move is applied,
     the guest stays paused for a random 5-20 s, then is resumed;
   - `booting`: the domain is destroyed out of band, volctl starts it again, and the move
     is applied at once, while SeaBIOS and the kernel run (no OS yet to take the unplug:
     the request is lost and must be asked again).
   While it waits, the world is sampled every 0.25 s: the volume must stay in the old
   domain's live XML, in no other domain's live XML, and qemu's RBD watcher count must stay
   1.  After the guest answers, the move must complete (the image live and persistent in the
   new domain only, 1 watcher) within 60 s; the time is reported.
2. **moves in a row.**  `--moves` (20) moves applied back to back with random 0-2 s gaps,
   without waiting for any of them; then the world must show the volume attached exactly
   once, to the VM the last move named, with exactly one RBD watcher, and no sample taken
   during the burst may show it live in two domains.

Verdicts come from libvirt on every lab host and from RBD, never from volctl's status
(volctl's attachment phase during the pause is recorded next to them as a fact).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import libvirt
import rbd

from bench.b1_converge import _console_dir
from bench.b8_volume_move import (
    BOOT_TIMEOUT,
    _attachment_doc,
    _guest_ready,
    _wait,
    _where,
    forget_consoles,
)
from bench.common.cycle import clean
from bench.common.fleet import Fleet, VMWork, make_fleet
from bench.common.lab import add_lab_args, open_lab
from bench.common.world import ceph
from bench.tools.base import run_logged, tail
from bench.tools.volctl_tool import VOLCTL, Volctl
from reconciler.backends.calls import plain_addr
from reliability.common.campaign import Campaign, Trial, add_campaign_args, median, percentile


class Sampler:
    """Samples where the image is (every host's libvirt) in a thread; records violations."""

    def __init__(self, fleet: Fleet, image: str) -> None:
        self.fleet, self.image = fleet, image
        self.samples = 0
        self.double: list[str] = []  # "live in a and b" moments
        self.last: dict[str, tuple[bool, bool]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(libvirt.libvirtError):
                where = _where(self.fleet, self.image)
                self.last = where
                self.samples += 1
                live = sorted(d for d, (lv, _) in where.items() if lv)
                if len(live) > 1:
                    self.double.append(",".join(live))
            self._stop.wait(0.25)


def controller_clients(v: Volctl) -> set[str]:
    """The Ceph client addresses the controller connected with (its `ceph.connected` log
    lines): its own header watches on held images are not a second user of the volume."""
    addrs = set()
    for line in Path(v.log).read_text(errors="replace").splitlines():
        if '"ceph.connected"' in line:
            with contextlib.suppress(ValueError):
                addrs.add(plain_addr(str(json.loads(line).get("client_addr", ""))))
    return addrs


def watchers(fleet: Fleet, image: str, v: Volctl) -> int:
    """qemu's watchers of IMAGE: every RBD watcher except volctl's own header watch."""
    ours = controller_clients(v)
    with ceph(fleet.lab) as io, rbd.Image(io, image, read_only=True) as img:
        return sum(1 for w in img.watchers_list() if plain_addr(str(w["addr"])) not in ours)


def _dom(vm: VMWork) -> tuple[Any, Any]:
    conn = libvirt.open(vm.uri)
    return conn, conn.lookupByName(vm.name)


def _apply_move(v: Volctl, work: Path, volume: str, dst: VMWork, tag: str) -> None:
    doc = work / f"{tag}.yaml"
    doc.write_text(_attachment_doc(volume, dst.name))
    rc, _ = run_logged(
        [*VOLCTL, "--config", str(v.config), "apply", "-f", str(doc)], v.cli_log, env=v.env()
    )
    if rc != 0:
        raise RuntimeError(f"volctl apply failed:\n{tail(v.cli_log)}")


def _attached_only(fleet: Fleet, image: str, vm: VMWork) -> bool:
    return _where(fleet, image) == {vm.name: (True, True)}


def unacknowledged(t: Trial, v: Volctl, fleet: Fleet, work: Path, src: VMWork, dst: VMWork) -> None:
    image, volume = fleet.vms[0].volume_image, fleet.vms[0].volume
    mode = t.rng.choice(["paused", "booting"])
    hold = round(t.rng.uniform(5.0, 20.0), 2)
    t.facts.update(mode=mode, hold_s=hold if mode == "paused" else None)
    conn, dom = _dom(src)
    try:
        if mode == "paused":
            dom.suspend()
        else:
            # a fresh console log, so "ready" later means this boot (libvirt appends)
            (Path(fleet.console_dir) / f"{src.name}+console.log").unlink(missing_ok=True)
            dom.destroy()  # volctl starts it again; the move is applied as soon as it runs
            _wait(dom.isActive, 120, f"volctl to restart {src.name}", every=0.02)
        with Sampler(fleet, image) as s:
            _apply_move(v, work, volume, dst, f"t{t.k}-unacked")
            t_applied = time.monotonic()
            phases = set()
            if mode == "paused":
                while time.monotonic() - t_applied < hold:
                    att = v.get(f"/api/v1/attachments/{volume}")
                    if isinstance(att, dict):
                        phases.add(str(att.get("phase")))
                    where = s.last
                    if where and not where.get(src.name, (False, False))[0]:
                        t.fail(f"the paused guest let go of the disk: {where}")
                        break
                    if any(lv for d, (lv, _) in where.items() if d != src.name):
                        t.fail(f"attached elsewhere while still in the paused guest: {where}")
                        break
                    time.sleep(0.25)
                n = watchers(fleet, image, v)
                if n != 1:
                    t.fail(f"{n} RBD watchers while the paused guest holds the disk")
                t.facts["phases_while_paused"] = sorted(phases)
                dom.resume()
            t_answer = time.monotonic()
            try:
                _wait(lambda: _attached_only(fleet, image, dst), 60, "the move to complete")
            except RuntimeError:
                t.fail(f"move not complete 60 s after the guest answered: {_where(fleet, image)}")
            t.facts["complete_after_answer_s"] = round(time.monotonic() - t_answer, 2)
        t.facts["unacked_samples"] = s.samples
        if s.double:
            t.fail(f"live in two domains at once: {s.double[:3]}")
    finally:
        conn.close()


def burst(t: Trial, v: Volctl, fleet: Fleet, work: Path, moves: int, src: VMWork) -> VMWork:
    a, b = fleet.vms
    image, volume = a.volume_image, a.volume
    last = src
    with Sampler(fleet, image) as s:
        for i in range(moves):
            last = b if last is a else a
            _apply_move(v, work, volume, last, f"t{t.k}-burst{i}")
            time.sleep(round(t.rng.uniform(0.0, 2.0), 2))
        t0 = time.monotonic()
        try:
            _wait(lambda: _attached_only(fleet, image, last), 120, "the last move to settle")
        except RuntimeError:
            t.fail(f"not attached exactly once to {last.name}: {_where(fleet, image)}")
        t.facts["burst_settle_s"] = round(time.monotonic() - t0, 2)
    time.sleep(1.0)  # a late, wrong attach would show now
    where = _where(fleet, image)
    n = watchers(fleet, image, v)
    t.facts.update(burst_moves=moves, burst_samples=s.samples, final_watchers=n)
    if where != {last.name: (True, True)}:
        t.fail(f"after {moves} moves: {where}, want only {last.name}")
    if n != 1:
        t.fail(f"after {moves} moves: {n} RBD watchers, want 1")
    if s.double:
        t.fail(f"live in two domains at once during the burst: {s.double[:3]}")
    return last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="reliability.r7_detach", description=__doc__.split("\n")[0])
    add_campaign_args(p, trials=5)
    p.add_argument("--moves", type=int, default=20, help="moves in a row per trial")
    p.add_argument("--ram", type=int, default=256, help="MiB per guest (the Linux guest boots)")
    p.add_argument("--volctl-listen", default="127.0.0.1:18479")
    add_lab_args(p, default_hosts=2)
    args = p.parse_args(argv)
    if args.smoke:
        args.trials, args.moves = 1, 4
    c = Campaign.from_args("r7_detach", args, {"moves": args.moves, "ram_mib": args.ram})
    c.goals = {
        "double_attach_samples": "0",
        "trials_ok": f"{args.trials}/{args.trials}",
        "complete_after_answer_s_p95": "<= 60 s",
    }
    lab = open_lab(args)
    work = Path(tempfile.mkdtemp(prefix="volctl-r7-", dir="/var/tmp"))
    try:
        fleet = make_fleet(
            lab,
            2,
            min(2, len(lab.info.hosts)),
            prefix="r7",
            ram_mib=args.ram,
            console_dir=_console_dir(lab.info.config_path),
        )
        clean(fleet)
        forget_consoles(fleet)
        v = Volctl(listen=args.volctl_listen, resync=30.0)
        try:
            v.prepare(fleet)
            run = v.converge(fleet)
            if not run.ok:
                raise RuntimeError(f"the R7 fleet did not converge: {run.error}")
            cur = fleet.vms[0]
            for t in c.trials(args.trials, args.trial):
                try:
                    for vm in fleet.vms:
                        _wait(
                            lambda vm=vm: _guest_ready(fleet, vm),
                            BOOT_TIMEOUT,
                            f"{vm.name} to boot",
                        )
                    image = fleet.vms[0].volume_image
                    _wait(
                        lambda cur=cur, image=image: _attached_only(fleet, image, cur),
                        120,
                        "a settled start",
                    )
                    dst = fleet.vms[1] if cur is fleet.vms[0] else fleet.vms[0]
                    unacknowledged(t, v, fleet, work, cur, dst)
                    cur = dst
                    for vm in fleet.vms:  # the booting mode restarted a guest: let it boot
                        _wait(
                            lambda vm=vm: _guest_ready(fleet, vm),
                            BOOT_TIMEOUT,
                            f"{vm.name} to boot",
                        )
                    cur = burst(t, v, fleet, work, args.moves, cur)
                except Exception as exc:
                    t.fail(f"{type(exc).__name__}: {exc}")  # the row must not read ok
                    raise
        finally:
            v.close()
            clean(fleet)
    except Exception as exc:  # noqa: BLE001 - a broken lab is a failed campaign, recorded
        c.rows.append({"trial": "ERROR", "ok": False, "failures": [f"{type(exc).__name__}: {exc}"]})
        print(f"r7_detach: {exc}", file=sys.stderr, flush=True)
    finally:
        lab.close()
    done = [r for r in c.rows if "complete_after_answer_s" in r]
    after = [float(r["complete_after_answer_s"]) for r in done]
    c.summary.update(
        double_attach_samples=sum(
            1 for r in c.rows for f in r.get("failures", []) if "two domains" in f
        ),
        complete_after_answer_s_median=median(after),
        complete_after_answer_s_p95=percentile(after, 95),
        moves_total=sum(int(r.get("burst_moves", 0)) for r in c.rows),
    )
    c.note("world = libvirt live and persistent XML on every lab host + RBD watchers (rbd)")
    return c.finish(
        [
            ("trial", "trial"),
            ("mode", "mode"),
            ("hold_s", "paused s"),
            ("complete_after_answer_s", "done after answer s"),
            ("burst_moves", "moves"),
            ("burst_settle_s", "settle s"),
            ("final_watchers", "watchers"),
            ("ok", "ok"),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
