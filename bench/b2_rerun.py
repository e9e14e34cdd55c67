"""B2, re-run with nothing to do: each tool again on the state it just converged.

    .venv/bin/python -m bench.b2_rerun --n 40 --hosts 4

For every tool: converge (as in B1, checked), then run it again and time that, while every
host's libvirtd counts the RPCs it receives (daemon side, the same for every tool; see
bench/common/rpcs.py).  For volctl three more rows: one warm resync pass of the running
controller (window taken from its JSON log), volctl's own observe of all hosts counted by
its backend's `rpc_count()`, and a cold `volctl reconcile --once` in a fresh process.
The target for volctl's steady state is O(hosts) RPCs and no per-domain XML fetch.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.b1_converge import _console_dir
from bench.common.cycle import add_fleet_args, make_tools, run_cycle
from bench.common.fleet import make_fleet
from bench.common.lab import add_lab_args, open_lab
from bench.common.report import Report, ratio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.b2_rerun", description=__doc__.split("\n")[0])
    add_fleet_args(p, n=40, hosts=4)
    add_lab_args(p, default_hosts=4)
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.hosts = 2, 1
        args.lab_hosts = max(1, min(args.lab_hosts, 2))
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
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
            "b2_rerun",
            params={
                "n": args.n,
                "hosts": args.hosts,
                "tools": names,
                "ram_mib": args.ram,
                "lab_dir": lab.info.dir,
            },
        )
        rows: list[dict[str, Any]] = []
        for tool in make_tools(names, args):
            rows += run_cycle(tool, fleet, rerun=True)
            for n in tool.notes:
                report.note(n)
            tool.close()
        volctl = next((r for r in rows if r["tool"] == "volctl" and r.get("ok")), None)
        for r in rows:
            r["rpcs_per_host"] = (
                r["rerun_rpcs"] / len(fleet.hosts) if r.get("rerun_rpcs") is not None else None
            )
            if volctl and r.get("ok") and r.get("rerun_s"):
                r["volctl_over_tool"] = ratio(volctl["rerun_s"], r["rerun_s"])
                r["volctl_rpcs_over_tool"] = ratio(volctl["rerun_rpcs"], r.get("rerun_rpcs"))
        report.rows = rows
        report.note(
            "RPCs are counted by each host's libvirtd (RPC_SERVER_CLIENT_MSG_RX probe, "
            "remote program calls only; keepalives excluded), except the row marked "
            "rpc_count(), which is volctl's own backend counter"
        )
        report.summary = {"hosts": len(fleet.hosts), "vms": len(fleet.vms)}
        report.finish(
            [
                ("tool", "tool"),
                ("rerun_s", "re-run s"),
                ("rerun_rpcs", "libvirt RPCs"),
                ("rpcs_per_host", "RPCs/host"),
                ("rerun_xml_desc", "XML fetches"),
                ("ok", "end state ok"),
                ("volctl_over_tool", "volctl ÷ tool (time)"),
                ("volctl_rpcs_over_tool", "volctl ÷ tool (RPCs)"),
                ("error", "error"),
            ]
        )
        return 0 if rows and all(r.get("ok") or r.get("unavailable") for r in rows) else 1
    finally:
        lab.close()


if __name__ == "__main__":
    raise SystemExit(main())
