"""B4, reaction latency of a running controller: median and p95 over N trials each.

    .venv/bin/python -m bench.b4_latency --trials 20

Three triggers, on the real lab, each measured to the start of the first action volctl takes
in response (an action's start = its `action` log event time minus its `duration_ms`, from
the controller's structured JSON log):

* spec saved: a new Volume is applied with `volctl apply -f` (no --wait); measured from the
  moment its file landed in the spec store (its mtime) and, separately, from the moment the
  user ran the command;
* drift: the fleet's VM is destroyed and undefined out of band (libvirt API, like `virsh
  destroy` + `undefine`); measured from the return of the undefine (the VM is gone) to the
  start of its recreation;
* git: a new Volume is committed to the git repository the controller follows with a short
  poll interval; measured from the end of `git commit`.

Then, on the same controller, CLI start-up: the wall (and CPU) time of `volctl --help` and of
`volctl get vms` against it.  Then a fleet of `--fleet` VMs (default 40, defined but not
started: `running: false`, so no guest boots on the shared machine; each with its root clone
and one attached volume, 3 N + 6 documents) is converged by its own controller, and timed:
`volctl apply -f fleet.yaml --wait` again on the unchanged fleet, and, with the controller
stopped, `volctl reconcile --once` in a fresh process (the cold start), split from its log
into start-up, the pass (fetch, the slowest host's observe, the storage observe, plan,
status) and exit.

Bytecode: the benchmark compiles volctl's modules first, as `pip install` does on a site;
with `PYTHONDONTWRITEBYTECODE=1` set (as in the lab's sessions) every CLI start would
otherwise compile them all from source again.

The peer tools have no counterpart: a script, a playbook or a kcli plan does nothing until
someone runs it again.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import libvirt
import yaml

from bench.b1_converge import _console_dir
from bench.common.ctllog import action_start, parse_time
from bench.common.cycle import clean
from bench.common.fleet import Fleet, make_fleet
from bench.common.lab import add_lab_args, open_lab
from bench.common.report import Report, median, percentile
from bench.tools.volctl_tool import VOLCTL, Volctl


def _volume_doc(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "volctl.io/v1",
            "kind": "Volume",
            "metadata": {"name": name},
            "spec": {"size": 1, "reclaimPolicy": "Delete"},
        }
    )


def _first_action(v: Volctl, resource: str, timeout: float = 60) -> dict[str, Any] | None:
    return v.ctl_log.wait_for(
        lambda e: e.get("event") == "action" and e.get("resource") == resource, timeout
    )


def _pass_of(v: Volctl, resource: str, timeout: float = 60) -> tuple[dict[str, Any], list[Any]]:
    """The first `action` on `resource`, and every log event read up to it."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in v.ctl_log.new():
            seen.append(ev)
            if ev.get("event") == "action" and ev.get("resource") == resource:
                return ev, seen
        time.sleep(0.02)
    raise RuntimeError(f"no action for {resource} within {timeout:g} s")


STEPS = ("fetch", "observe", "plan")  # the pass's phases before its first action


def _steps(action: dict[str, Any], seen: list[dict[str, Any]], t_saved: float) -> dict[str, Any]:
    """Where the time to the first action went: file saved -> pass started (the trigger),
    then the pass's steps before its first action (its `pass.planned` event)."""
    rid = action.get("reconcile_id")
    mine = {e.get("event"): e for e in seen if e.get("reconcile_id") == rid}
    out: dict[str, Any] = {}
    if "pass.start" in mine:
        out["trigger_ms"] = round((float(mine["pass.start"]["_t"]) - t_saved) * 1000, 1)
    phases = mine.get("pass.planned", {}).get("phases_ms", {})
    out.update({f"{k}_ms": phases[k] for k in STEPS if k in phases})
    return out


def spec_saved(v: Volctl, fleet: Fleet, trials: int, work: Path) -> dict[str, Any]:
    saved, cmd, steps = [], [], []
    for i in range(trials):
        name = f"{fleet.prefix}-b4s-{i}"
        doc = work / f"{name}.yaml"
        doc.write_text(_volume_doc(name))
        v.ctl_log.mark()
        t_cmd = time.time()
        subprocess.run(
            [*VOLCTL, "--config", str(v.config), "apply", "-f", str(doc)],
            env=v.env(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        stored = v.work / "store" / "volume" / f"{name}.yaml"  # type: ignore[operator]
        t_saved = stored.stat().st_mtime
        ev, seen = _pass_of(v, f"volume/{name}")
        start = action_start(ev)
        saved.append(start - t_saved)
        cmd.append(start - t_cmd)
        steps.append(_steps(ev, seen, t_saved))
        time.sleep(0.3)
    return {"saved": saved, "cmd": cmd, "steps": steps}


def drift(v: Volctl, fleet: Fleet, trials: int) -> tuple[list[float], str]:
    """Samples, and the error that stopped the trials early ("" if none)."""
    vm = fleet.vms[0]
    out: list[float] = []
    try:
        for _ in range(trials):
            _wait_converged(v, fleet)
            conn = libvirt.open(vm.uri)
            try:
                dom = conn.lookupByName(vm.name)
                v.ctl_log.mark()
                dom.destroy()
                dom.undefineFlags(0)
                t0 = time.time()  # the VM is gone now
            finally:
                conn.close()
            ev = _first_action(v, f"vm/{vm.name}")
            if ev is None:
                return out, "the destroyed VM was not recreated within 60 s"
            out.append(action_start(ev) - t0)
        _wait_converged(v, fleet)
    except RuntimeError as exc:
        return out, str(exc)
    return out, ""


def _wait_converged(v: Volctl, fleet: Fleet, timeout: float = 180) -> None:
    """Until the VM runs with its volume attached and volctl reports both Ready."""
    vm = fleet.vms[0]
    deadline = time.monotonic() + timeout
    seen: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        status = v.get(f"/api/v1/vms/{vm.name}")
        att = v.get(f"/api/v1/attachments/{vm.volume}")
        phases = tuple(x.get("phase") if isinstance(x, dict) else None for x in (status, att))
        running = attached = False
        conn = libvirt.open(vm.uri)
        try:
            dom = conn.lookupByName(vm.name)
            running = bool(dom.isActive())
            attached = vm.volume_image in dom.XMLDesc(0)
        except libvirt.libvirtError:
            pass
        finally:
            conn.close()
        seen = (*phases, running, attached)
        if phases == ("Ready", "Ready") and running and attached:
            return
        time.sleep(0.2)
    last = att.get("lastError") if isinstance(att, dict) else None
    raise RuntimeError(
        f"{vm.name} did not converge within {timeout} s (vm phase, attachment phase, "
        f"running, volume in live XML = {seen}; attachment lastError: {last})"
    )


def git_commit(v: Volctl, fleet: Fleet, trials: int, repo: Path) -> list[float]:
    out = []
    for i in range(trials):
        name = f"{fleet.prefix}-b4g-{i}"
        (repo / f"{name}.yaml").write_text(_volume_doc(name))
        v.ctl_log.mark()
        _git(repo, "add", f"{name}.yaml")
        _git(repo, "commit", "-q", "-m", f"add {name}")
        t0 = time.time()
        ev = _first_action(v, f"volume/{name}")
        if ev is None:
            raise RuntimeError(f"no action for volume/{name} within 60 s")
        out.append(action_start(ev) - t0)
        time.sleep(0.3)
    return out


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _timed(argv: list[str], env: dict[str, str], out: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one command that must succeed; output to `out` (or nowhere)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with out.open("w") if out else open(os.devnull, "w") as sink:  # noqa: PTH123
        done = subprocess.run(
            argv, check=False, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=600
        )
    wall = time.perf_counter() - t0
    if done.returncode != 0 and argv[-1] != "--once":  # --once reports on its own
        raise RuntimeError(f"{' '.join(argv[-4:])} exited {done.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def startup(v: Volctl, trials: int) -> list[dict[str, Any]]:
    """`volctl --help` and `volctl get vms` (against the running controller), wall and CPU."""
    rows = []
    for what, args in (("--help", ["--help"]), ("get vms", ["get", "vms"])):
        walls, cpus = [], []
        for _ in range(trials):
            wall, cpu = _timed([*VOLCTL, "--config", str(v.config), *args], v.env())
            walls.append(wall)
            cpus.append(cpu)
        rows.append(
            _row(
                f"`volctl {what}` start to exit (wall)",
                walls,
                cpu_median_ms=median([c * 1000 for c in cpus]),
            )
        )
    return rows


def fleet_rows(lab: Any, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """`apply --wait` of the unchanged fleet, and a cold `reconcile --once` on it."""
    hosts = len(lab.info.hosts)
    fleet = make_fleet(
        lab,
        args.fleet,
        hosts,
        prefix=f"{args.prefix}f",
        ram_mib=args.ram,
        console_dir=_console_dir(lab.info.config_path),
    )
    clean(fleet)
    v = Volctl(listen=args.volctl_listen, resync=30.0)
    rows: list[dict[str, Any]] = []
    try:
        v.prepare(fleet)
        docs = fleet.volctl_documents()
        for d in docs:
            if d["kind"] == "VirtualMachine":
                d["spec"]["running"] = False  # defined, not booted: no guests on a shared box
        v.spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        print(f"bench: B4 converging a fleet of {args.fleet} VMs ({len(docs)} documents)")
        run = v.converge(fleet)
        if not run.ok:
            raise RuntimeError(f"the fleet did not converge: {run.error}")
        apply = [*VOLCTL, "--config", str(v.config), "apply", "-f", str(v.spec), "--wait"]
        timings = [_timed(apply, v.env()) for _ in range(3)]
        rows.append(
            _row(
                f"`volctl apply -f --wait`, unchanged fleet ({len(docs)} documents)",
                [w for w, _ in timings],
                cpu_median_ms=median([c * 1000 for _, c in timings]),
            )
        )
        v.stop_controller()
        cold: list[dict[str, Any]] = []
        for i in range(3):
            out = work / f"once-{i}.log"
            t0 = time.time()
            once = [*VOLCTL, "--config", str(v.config), "reconcile", "--once"]
            wall, cpu = _timed(once, v.env(), out)
            cold.append(_cold_breakdown(out, t0, wall, cpu))
        ok = all(c.get("converged") for c in cold)
        rows.append(
            _row(
                f"`volctl reconcile --once`, cold process, {args.fleet} converged VMs",
                [c["wall_s"] for c in cold],
                runs=cold,
                ok=ok,
                **({} if ok else {"error": "a cold pass did not report converged"}),
            )
        )
    finally:
        v.close()
        clean(fleet)
    return rows


def _cold_breakdown(out: Path, t0: float, wall: float, cpu: float) -> dict[str, Any]:
    """Start-up, the pass's steps and exit of one `reconcile --once`, from its JSON log."""
    events = []
    for line in out.read_text().splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    start = next((e for e in events if e.get("event") == "pass.start"), None)
    end = next((e for e in events if e.get("event") == "pass.end"), None)
    res: dict[str, Any] = {"wall_s": wall, "cpu_s": round(cpu, 3)}
    if start is None or end is None:
        return res
    t_start, t_end = parse_time(start["timestamp"]), parse_time(end["timestamp"])
    res.update(
        startup_s=round(t_start - t0, 3),
        pass_s=round(float(end["duration_ms"]) / 1000, 3),
        exit_s=round(t0 + wall - t_end, 3),
        converged=bool(end.get("converged")),
        steps_ms=end.get("phases_ms", {}),
    )
    return res


def _row(what: str, secs: list[float], **extra: Any) -> dict[str, Any]:
    ms = [s * 1000 for s in secs]
    return {
        "trigger": what,
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
    p = argparse.ArgumentParser(prog="bench.b4_latency", description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--git-interval", type=float, default=1.0, help="git poll seconds")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--ram", type=int, default=256)
    p.add_argument("--volctl-listen", default="127.0.0.1:18472")
    p.add_argument(
        "--fleet", type=int, default=40, help="VMs for apply --wait / cold start (0: skip)"
    )
    p.add_argument("--smoke", action="store_true", help="2 trials each, a fleet of 2")
    add_lab_args(p, default_hosts=1)
    args = p.parse_args(argv)
    if args.smoke:
        args.trials = 2
        args.fleet = min(args.fleet, 2)
    # as a site's pip install does: otherwise (PYTHONDONTWRITEBYTECODE) every CLI start
    # compiles every module it imports from source
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "reconciler"), quiet=1)
    lab = open_lab(args)
    rows: list[dict[str, Any]] = []
    report = Report(
        "b4_latency",
        params={
            "trials": args.trials,
            "git_interval_s": args.git_interval,
            "resync_s": 30.0,
            "lab_dir": lab.info.dir,
            "fleet": args.fleet,
            "bytecode_precompiled": True,
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        },
    )
    work = Path(tempfile.mkdtemp(prefix="volctl-bench-b4-", dir="/var/tmp"))
    try:
        fleet = make_fleet(
            lab,
            1,
            1,
            prefix=args.prefix,
            ram_mib=args.ram,
            console_dir=_console_dir(lab.info.config_path),
        )
        clean(fleet)
        v = Volctl(listen=args.volctl_listen, resync=30.0)
        try:
            v.prepare(fleet)
            run = v.converge(fleet)
            if not run.ok:
                raise RuntimeError(f"the B4 fleet did not converge: {run.error}")
            print("bench: B4 spec saved -> first action", flush=True)
            s = spec_saved(v, fleet, args.trials, work)
            medians = {
                k: median([t[k] for t in s["steps"] if k in t])
                for k in ("trigger_ms", *(f"{p}_ms" for p in STEPS))
            }
            rows.append(
                _row(
                    "spec file saved in the store -> first action",
                    s["saved"],
                    steps_median_ms=medians,
                    steps_ms=s["steps"],
                )
            )
            rows.append(_row("`volctl apply -f` started -> first action", s["cmd"]))
            rows.extend(startup(v, max(5, args.trials)))
            print("bench: B4 VM destroyed out of band -> recreate", flush=True)
            samples, err = drift(v, fleet, args.trials)
            row = _row("VM destroyed out of band -> recreate started", samples)
            if err:
                row.update(ok=False, error=f"stopped after {len(samples)} trials: {err}")
            rows.append(row)
        finally:
            v.close()
            clean(fleet)
        repo = work / "repo"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        infra = [
            d for d in fleet.volctl_documents() if d["kind"] in ("Host", "Image", "InstanceType")
        ]
        (repo / "infra.yaml").write_text(yaml.safe_dump_all(infra, sort_keys=False))
        _git(repo, "add", "infra.yaml")
        _git(repo, "commit", "-q", "-m", "infra")
        g = Volctl(
            listen=args.volctl_listen,
            resync=30.0,
            apply_infra=False,
            run_args=(
                "--git",
                str(repo),
                "--branch",
                "main",
                "--path",
                ".",
                "--interval",
                str(args.git_interval),
            ),
        )
        try:
            g.prepare(fleet)
            if g.ctl_log.wait_for(lambda e: e.get("event") == "pass.end", 60) is None:
                raise RuntimeError("the git controller never finished a pass")
            print("bench: B4 git commit -> first action", flush=True)
            rows.append(
                _row(
                    f"git commit -> first action (interval {args.git_interval} s)",
                    git_commit(g, fleet, args.trials, repo),
                )
            )
        finally:
            g.close()
            clean(fleet)
        if args.fleet:
            rows.extend(fleet_rows(lab, args, work))
    except Exception as exc:  # noqa: BLE001 - report what was measured so far
        rows.append({"trigger": "ERROR", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        print(f"bench: B4 failed: {exc}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        lab.close()
    report.rows = rows
    report.note(
        "action start = `action` log event time - duration_ms (controller JSON log); "
        "controller resync 30 s, so reactions come from watchdog, libvirt events "
        "and the git poll, not from the periodic resync"
    )
    report.note("baseline/Ansible/kcli: no reaction at all; drift stays until they are re-run")
    report.finish(
        [
            ("trigger", "trigger"),
            ("trials", "trials"),
            ("median_ms", "median ms"),
            ("p95_ms", "p95 ms"),
            ("min_ms", "min ms"),
            ("max_ms", "max ms"),
            ("cpu_median_ms", "CPU ms"),
            ("ok", "ok"),
            ("error", "error"),
        ]
    )
    return 0 if rows and all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
