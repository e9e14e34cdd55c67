"""B5, REST under load: wrk against the real server with a 10k-resource status snapshot.

    .venv/bin/python -m bench.b5_rest

The server is volctl's own (`reconciler.api.server.serve`), fed a snapshot computed by the
real status code (`reconciler.status.compute`) from a synthesized converged fleet of
10,000 resources (VMs + volumes + attachments).  For each endpoint wrk (Debian's, 2
threads) runs twice: closed-loop saturation (as fast as the connections go), then paced at
a fixed offered rate of half that throughput.  wrk has no open-loop rate mode (that is
wrk2), so "fixed offered rate" here is a Lua `delay()` pacing each connection: C
connections, each waiting C/R s between requests, offer R requests/s while latency stays
well below the pause; wrk measures latency without the pause and, being closed-loop, does
not count requests it never sent when the server stalls (coordinated omission), so p99
under saturation is a lower bound.  `/healthz` is measured the same way as the server's
own floor: the ratio endpoint ÷ /healthz shows what the endpoint's work costs.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common.report import Report, ratio

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def snapshot(resources: int) -> Any:
    """A converged fleet's status snapshot, computed by volctl's status code."""
    from bench.common.synth import SETTINGS, converged_world, desired_state, empty_world
    from reconciler.plan.planner import plan
    from reconciler.status.compute import PassInput, compute
    from reconciler.status.types import Snapshot

    desired = desired_state(resources)
    world = converged_world(empty_world(desired), plan(desired, empty_world(desired), SETTINGS))
    left = plan(desired, world, SETTINGS)
    return compute(Snapshot(), PassInput("bench", time.time(), 0.1, desired, world, left))


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = sock + (int(m.group(1)) if m else 0)
    return res


def lua(path_expr: str, delay_ms: float | None) -> str:
    parts = [
        "math.randomseed(42)",
        "request = function()",
        f'  return wrk.format("GET", {path_expr})',
        "end",
    ]
    if delay_ms is not None:
        parts += ["delay = function()", f"  return {delay_ms:.3f}", "end"]
    return "\n".join(parts) + "\n"


def run_wrk(url: str, script: Path, conns: int, secs: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t2",
        f"-c{conns}",
        f"-d{secs}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60, check=False)
    res = parse_wrk(out.stdout)
    res["cmd"] = " ".join(cmd)
    if out.returncode != 0:
        res["error"] = out.stderr[-500:]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b5_rest", description=__doc__.split("\n")[0])
    p.add_argument("--resources", type=int, default=10000)
    p.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--listen", default="127.0.0.1:18471")
    p.add_argument("--smoke", action="store_true", help="300 resources, 2 s runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.resources, args.duration = 300, 2
    from reconciler.api.server import serve

    t0 = time.perf_counter()
    snap = snapshot(args.resources)
    build_s = time.perf_counter() - t0
    vms = [r for r in snap.resources.values() if r.kind == "VirtualMachine"]
    vmids = sorted(int(r.ids["vmid"]) for r in vms if "vmid" in r.ids)
    server = serve(lambda: snap, args.listen, None)
    base = f"http://{args.listen}"
    report = Report(
        "b5_rest",
        params={
            "resources": len(snap.resources),
            "vms": len(vmids),
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": 2,
        },
    )
    rows: list[dict[str, Any]] = []
    try:
        probe = urllib.request.urlopen(f"{base}/vm/query?vmid={vmids[0]}", timeout=10)
        assert probe.status == 200, probe.status
        vms_body = urllib.request.urlopen(f"{base}/api/v1/vms", timeout=60).read()
        random.seed(1)
        lo, hi = vmids[0], vmids[-1]
        endpoints = [
            ("/healthz", '"/healthz"'),
            ("/vm/query?vmid=N", f'"/vm/query?vmid=" .. math.random({lo}, {hi})'),
            ("/api/v1/vms", '"/api/v1/vms"'),
        ]
        with tempfile.TemporaryDirectory(prefix="volctl-bench-b5-") as tmp:
            for label, expr in endpoints:
                script = Path(tmp) / "sat.lua"
                script.write_text(lua(expr, None))
                print(f"bench: {label}: saturation", flush=True)
                sat = run_wrk(base + "/", script, args.connections, args.duration)
                rows.append(
                    {
                        "endpoint": label,
                        "mode": "saturation (closed loop)",
                        "offered_rps": None,
                        **sat,
                        "ok": not sat.get("error")
                        and sat.get("rps") is not None
                        and sat.get("errors") == 0,
                    }
                )
                target = max(1.0, round((sat.get("rps") or 2.0) / 2, 1))
                conns = min(args.connections, max(1, int(target)))
                delay = conns * 1000.0 / target
                script.write_text(lua(expr, delay))
                print(f"bench: {label}: paced at {target} req/s", flush=True)
                paced = run_wrk(base + "/", script, conns, args.duration)
                rows.append(
                    {
                        "endpoint": label,
                        "mode": f"fixed rate, {conns} conns paced",
                        "offered_rps": target,
                        **paced,
                        "ok": not paced.get("error") and paced.get("errors") == 0,
                    }
                )
    finally:
        server.stop()
    floor = {r["mode"][:5]: r for r in rows if r["endpoint"] == "/healthz"}
    for r in rows:
        f = floor.get(r["mode"][:5])
        if f and r is not f:
            r["rps_vs_healthz"] = ratio(r.get("rps"), f.get("rps"))
            r["p50_vs_healthz"] = ratio(r.get("p50_ms"), f.get("p50_ms"))
    report.rows = rows
    report.summary = {"snapshot_build_s": build_s, "api_v1_vms_bytes": len(vms_body)}
    report.note(
        "wrk is closed-loop: the fixed rate is per-connection pacing via Lua delay(); "
        "latency excludes the pause, and saturation p99 ignores coordinated omission"
    )
    report.finish(
        [
            ("endpoint", "endpoint"),
            ("mode", "mode"),
            ("offered_rps", "offered/s"),
            ("rps", "req/s"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
            ("errors", "errors"),
            ("rps_vs_healthz", "req/s ÷ /healthz"),
            ("ok", "ok"),
        ]
    )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
