"""B1, converge from empty: volctl, the seed-style baseline, Ansible and kcli side by side.

    .venv/bin/python -m bench.b1_converge --n 40 --hosts 4

Every tool creates the same fleet (N VMs, each with a root clone of the lab's base image and
one attached volume, pinned round-robin to the same hosts) from nothing; the end state is
checked by observing libvirt and Ceph before a time counts.  Prints wall time per tool, the
ratio volctl ÷ each, and volctl ÷ the critical-path bound computed from the baseline's own
per-call timings in the same run.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common.critpath import critical_path
from bench.common.cycle import add_fleet_args, make_tools, run_cycle
from bench.common.fleet import make_fleet
from bench.common.lab import add_lab_args, open_lab
from bench.common.report import Report, ratio
from bench.tools.base import Call


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b1_converge", description=__doc__.split("\n")[0])
    add_fleet_args(p, n=40, hosts=4)
    add_lab_args(p, default_hosts=4)
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.hosts = 2, 1
        args.lab_hosts = max(1, min(args.lab_hosts, 2))
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    if "baseline" not in names:
        names.insert(0, "baseline")  # the bound and the ratios need it
    lab = open_lab(args)
    try:
        fleet = make_fleet(
            lab,
            args.n,
            args.hosts,
            prefix=args.prefix,
            ram_mib=args.ram,
            console_dir=_console_dir(lab.info.config_path),
        )
        report = Report(
            "b1_converge",
            params={
                "n": args.n,
                "hosts": args.hosts,
                "tools": names,
                "ram_mib": args.ram,
                "cpu": fleet.cpu,
                "disk_gib": fleet.disk_gib,
                "volume_gib": fleet.volume_gib,
                "lab_dir": lab.info.dir,
            },
        )
        tools = make_tools(names, args)
        rows = []
        calls: list[Call] = []
        for tool in tools:
            rows += run_cycle(tool, fleet, rerun=False)
            if tool.name == "baseline":
                calls = getattr(tool, "last_calls", [])
            for n in tool.notes:
                report.note(n)
            tool.close()
        par = _volctl_parallelism()
        bound = critical_path(calls, per_host=par["per_host"], total=par["total"])
        report.extra["critical_path"] = bound
        report.extra["baseline_calls"] = [
            {"host": c.host, "vm": c.vm, "op": c.op, "s": round(c.seconds, 5)} for c in calls
        ]
        _ratios(rows, bound.get("bound_s"), bound.get("floor_bound_s"))
        report.rows = rows
        report.summary = {
            "critical_path_bound_s": bound.get("bound_s"),
            "floor_bound_s (fastest call of each kind)": bound.get("floor_bound_s"),
            "volctl_parallelism": f"{par['per_host']} per host, {par['total']} total",
        }
        report.finish(
            [
                ("tool", "tool"),
                ("converge_s", "wall s"),
                ("ok", "end state ok"),
                ("volctl_over_tool", "volctl ÷ tool"),
                ("tool_over_bound", "tool ÷ bound"),
                ("tool_over_floor", "tool ÷ floor bound"),
                ("error", "error"),
            ]
        )
        return 0 if report.rows and all(r.get("ok") or r.get("unavailable") for r in rows) else 1
    finally:
        lab.close()


def _ratios(rows: list[dict[str, Any]], bound: float | None, floor: float | None) -> None:
    volctl = next((r for r in rows if r["tool"] == "volctl" and r.get("ok")), None)
    for r in rows:
        t = r.get("converge_s") if r.get("ok") else None
        r["volctl_over_tool"] = ratio(volctl["converge_s"], t) if volctl and t else None
        r["tool_over_bound"] = ratio(t, bound)
        r["tool_over_floor"] = ratio(t, floor)


def _console_dir(config_path: str) -> str:
    from reconciler.config import load_config

    return load_config(config_path).console_dir


def _volctl_parallelism() -> dict[str, int]:
    """The executor's concurrency limits, read from volctl itself (not restated here)."""
    from bench.tools.volctl_tool import executor_limits

    return executor_limits()


if __name__ == "__main__":
    raise SystemExit(main())
