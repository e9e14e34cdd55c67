"""One converge (and optionally re-run) cycle per tool, identical for every tool.

For each tool: clean the fleet's names out of the lab, let the tool prepare (untimed: write
its playbook, start its daemon), time its converge, check the end state by observing libvirt
and Ceph, then (B2) time its re-run on the converged state while counting the libvirt RPCs
on the daemon side, check again, and clean up.  A time is only reported next to the
verdict of the check.
"""

from __future__ import annotations

import argparse
import time
import traceback
from typing import Any

from bench.common import world
from bench.common.fleet import Fleet
from bench.common.rpcs import DaemonRpcCounter
from bench.common.verify import verify_fleet
from bench.tools.base import Tool, ToolRun, ToolUnavailable


def make_tools(names: list[str], args: argparse.Namespace) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        if name == "baseline":
            from bench.tools.baseline import Baseline

            tools.append(Baseline())
        elif name == "volctl":
            from bench.tools.volctl_tool import Volctl

            tools.append(Volctl(listen=args.volctl_listen, resync=args.volctl_resync))
        elif name == "ansible":
            from bench.tools.ansible_tool import Ansible

            tools.append(Ansible(forks=args.ansible_forks))
        elif name == "kcli":
            from bench.tools.kcli_tool import Kcli

            tools.append(Kcli())
        else:
            raise SystemExit(f"unknown tool {name!r}")
    return tools


def clean(fleet: Fleet) -> dict[str, int]:
    return world.cleanup(
        fleet.lab, fleet.prefix + "-", (f"vm-{fleet.prefix}-", f"vol-{fleet.prefix}-")
    )


def run_cycle(tool: Tool, fleet: Fleet, *, rerun: bool) -> list[dict[str, Any]]:
    """The tool's row, plus any extra rows the tool measures on the converged state (B2)."""
    row: dict[str, Any] = {"tool": tool.name, "ok": False}
    rows = [row]
    try:
        clean(fleet)
        tool.prepare(fleet)
    except ToolUnavailable as exc:
        row.update(error=f"could not run: {exc}", unavailable=True)
        return rows
    try:
        print(
            f"bench: {tool.name}: converging {len(fleet.vms)} VMs on {len(fleet.hosts)} hosts",
            flush=True,
        )
        t0 = time.monotonic()
        run = tool.converge(fleet)
        row["converge_s"] = run.seconds if run.seconds is not None else time.monotonic() - t0
        verdict = verify_fleet(fleet, rbd_backed=tool.rbd_backed)
        row["converge_verified"] = verdict.as_dict()
        row["converge_run"] = _run_dict(run)
        row["ok"] = run.ok and verdict.ok
        print(
            f"bench: {tool.name}: converge {row['converge_s']:.2f}s, tool ok={run.ok}, "
            f"end state ok={verdict.ok} {verdict.problems[:3]}",
            flush=True,
        )
        if rerun and row["ok"]:
            with DaemonRpcCounter(fleet.lab, fleet.hosts) as counter:
                t0 = time.monotonic()
                run2 = tool.rerun(fleet)
                row["rerun_s"] = time.monotonic() - t0
            rpcs = counter.result()
            row["rerun_rpcs"] = rpcs.total
            row["rerun_xml_desc"] = rpcs.xml_desc
            row["rerun_rpc_detail"] = rpcs.as_dict()
            verdict2 = verify_fleet(fleet, rbd_backed=tool.rbd_backed)
            row["rerun_verified"] = verdict2.as_dict()
            row["rerun_run"] = _run_dict(run2)
            row["ok"] = run2.ok and verdict2.ok
            print(
                f"bench: {tool.name}: re-run {row['rerun_s']:.2f}s, {rpcs.total} RPCs "
                f"({rpcs.xml_desc} XML fetches), end state ok={verdict2.ok}",
                flush=True,
            )
            extra = getattr(tool, "extra_rerun_rows", None)
            if extra is not None and row["ok"]:
                for r in extra(fleet):
                    print(
                        f"bench: {r['tool']}: {r.get('rerun_s')}s, {r.get('rerun_rpcs')} RPCs "
                        f"({r.get('rerun_xml_desc')} XML fetches) {r.get('error', '')}",
                        flush=True,
                    )
                    rows.append(r)
    except Exception as exc:  # noqa: BLE001 - one tool's crash must not hide the others
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
        print(f"bench: {tool.name}: FAILED {row['error']}", flush=True)
    finally:
        try:
            tool.cleanup(fleet)
        finally:
            clean(fleet)
    return rows


def _run_dict(run: ToolRun) -> dict[str, Any]:
    return {"ok": run.ok, "error": run.error, **run.extra}


def add_fleet_args(p: argparse.ArgumentParser, *, n: int, hosts: int) -> None:
    p.add_argument("--n", type=int, default=n, help="number of VMs (default %(default)s)")
    p.add_argument("--hosts", type=int, default=hosts, help="hosts to spread them over")
    p.add_argument(
        "--tools",
        default="baseline,volctl,ansible,kcli",
        help="comma-separated tools, in run order (default %(default)s)",
    )
    p.add_argument("--ram", type=int, default=256, help="VM RAM in MiB (default %(default)s)")
    p.add_argument("--prefix", default="bench", help="name prefix of everything created")
    p.add_argument(
        "--volctl-listen",
        default="127.0.0.1:18470",
        help="where the benchmark's own `volctl run` serves REST",
    )
    p.add_argument(
        "--volctl-resync",
        type=float,
        default=5.0,
        help="resync interval of the benchmark's controller (default %(default)s s)",
    )
    p.add_argument(
        "--ansible-forks", type=int, default=0, help="ansible forks (default: one per host)"
    )
    p.add_argument("--smoke", action="store_true", help="tiny run: N=2 on 1 host")
