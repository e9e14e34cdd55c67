"""volctl as a user runs it: a `volctl run` controller, and `volctl apply -f --wait`.

The controller is started (untimed) with a config of the benchmark's own, derived from the
lab's: its own spec store, state dir and REST port, so it never meets the test suite's
controller.  The lab's hosts, the base image and the instance type are applied first and
settle (a running controller already knows its hosts); the timed step is
`volctl apply -f fleet.yaml --wait`, exactly what a user types.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.common.ctllog import ControllerLog, breakdown
from bench.common.fleet import Fleet
from bench.common.rpcs import DaemonRpcCounter
from bench.tools.base import ToolRun, ToolUnavailable, run_logged, tail

VOLCTL = [sys.executable, "-m", "reconciler.cli.main"]
PR_SET_PDEATHSIG = 1  # prctl(2)
INFRA_KINDS = {"Host", "Image", "InstanceType"}


def executor_limits() -> dict[str, int]:
    """`volctl run`'s concurrency limits (per host, overall): its own defaults, read from it."""
    from reconciler.cli.main import build_parser

    args = build_parser().parse_args(["run"])
    return {"per_host": int(args.per_host), "total": int(args.parallel)}


def volctl_commands() -> set[str]:
    from reconciler.cli.main import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        choices = getattr(action, "choices", None)
        if choices:
            return set(choices)
    return set()


def _die_with_parent() -> None:
    """SIGTERM the controller when the benchmark dies, even by SIGKILL (a timeout): left behind,
    it would go on reconciling the shared lab against the benchmark's fleet."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Volctl:
    name = "volctl"
    rbd_backed = True

    def __init__(
        self,
        listen: str = "127.0.0.1:18470",
        resync: float = 5.0,
        run_args: tuple[str, ...] = (),
        apply_infra: bool = True,
    ) -> None:
        self.listen = listen
        self.resync = resync
        self.run_args = run_args  # extra `volctl run` arguments (B4: --git ...)
        self.apply_infra = apply_infra
        self.notes = [
            "volctl: `volctl run` controller (started untimed, hosts/image/type applied and "
            "settled first), timed step `volctl apply -f fleet.yaml --wait`; executor limits "
            f"{executor_limits()}"
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.work: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self, fleet: Fleet) -> None:
        missing = {"run", "apply"} - volctl_commands()
        if missing:
            raise ToolUnavailable(f"volctl has no {sorted(missing)} command yet")
        self.work = Path(tempfile.mkdtemp(prefix="volctl-bench-volctl-", dir="/var/tmp"))
        cfg = yaml.safe_load(Path(fleet.lab.info.config_path).read_text())
        cfg.update(
            api=f"http://{self.listen}",
            listen=self.listen,
            store=str(self.work / "store"),
            stateDir=str(self.work / "state"),
        )
        cfg.pop("git", None)
        (self.work / "store").mkdir()
        self.config = self.work / "volctl.yaml"
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        docs = fleet.volctl_documents()
        self.infra = self.work / "infra.yaml"
        self.infra.write_text(
            yaml.safe_dump_all([d for d in docs if d["kind"] in INFRA_KINDS], sort_keys=False)
        )
        self.spec = self.work / "fleet.yaml"
        self.spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.log = str(self.work / "run.log")
        self.cli_log = str(self.work / "cli.log")
        self.start_controller()
        if not self.apply_infra:
            return
        rc, _ = run_logged(
            [
                *VOLCTL,
                "--config",
                str(self.config),
                "apply",
                "-f",
                str(self.infra),
                "--wait",
                "--timeout",
                "120",
            ],
            self.cli_log,
            env=self.env(),
        )
        if rc != 0:
            raise RuntimeError(f"volctl apply of the infrastructure failed:\n{tail(self.cli_log)}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["VOLCTL_CONFIG"] = str(self.config)
        env.pop("VOLCTL_API", None)
        env.pop("VOLCTL_STORE", None)
        return env

    def start_controller(self) -> None:
        assert self.work is not None
        fh = Path(self.log).open("ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.ctl_log = ControllerLog(self.log)
        self.proc = subprocess.Popen(
            [
                *VOLCTL,
                "--config",
                str(self.config),
                "run",
                "--resync",
                str(self.resync),
                *self.run_args,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"volctl run exited {self.proc.returncode}:\n{tail(self.log)}")
            if self.get("/healthz") is not None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"volctl run did not serve /healthz in 60 s:\n{tail(self.log)}")

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"http://{self.listen}{path}", timeout=5) as resp:
                body = resp.read()
        except OSError:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body.decode(errors="replace")

    def converge(self, fleet: Fleet) -> ToolRun:
        self.ctl_log.mark()
        t0 = time.time()
        rc, secs = run_logged(
            [
                *VOLCTL,
                "--config",
                str(self.config),
                "apply",
                "-f",
                str(self.spec),
                "--wait",
                "--timeout",
                "1200",
            ],
            self.cli_log,
            env=self.env(),
        )
        run = ToolRun(ok=rc == 0, error="" if rc == 0 else tail(self.cli_log), seconds=secs)
        time.sleep(0.2)  # untimed: the controller logs pass.end after publishing the status
        run.extra["breakdown"] = breakdown(self.ctl_log.new(), t0)
        run.extra["breakdown"]["apply_returned_s"] = round(secs, 3)
        return run

    def rerun(self, fleet: Fleet) -> ToolRun:
        rc, _ = run_logged(
            [
                *VOLCTL,
                "--config",
                str(self.config),
                "apply",
                "-f",
                str(self.spec),
                "--wait",
                "--timeout",
                "600",
            ],
            self.cli_log,
            env=self.env(),
        )
        return ToolRun(ok=rc == 0, error="" if rc == 0 else tail(self.cli_log))

    def extra_rerun_rows(self, fleet: Fleet) -> list[dict[str, Any]]:
        """B2 beyond `apply` again: one warm resync pass of the running controller, volctl's
        own observe with its backend's rpc_count(), and a cold `volctl reconcile --once`."""
        rows = [self._resync_row(fleet), self._observe_row(fleet), self._storage_row(fleet)]
        self.stop_controller()
        with DaemonRpcCounter(fleet.lab, fleet.hosts) as counter:
            rc, secs = run_logged(
                [*VOLCTL, "--config", str(self.config), "reconcile", "--once"],
                self.cli_log,
                env=self.env(),
            )
        rpcs = counter.result()
        rows.append(
            {
                "tool": "volctl reconcile --once (cold process)",
                "ok": rc == 0,
                "rerun_s": secs,
                "rerun_rpcs": rpcs.total,
                "rerun_xml_desc": rpcs.xml_desc,
                "rerun_rpc_detail": rpcs.as_dict(),
                "error": "" if rc == 0 else tail(self.cli_log),
            }
        )
        return rows

    def _resync_row(self, fleet: Fleet) -> dict[str, Any]:
        """The first whole pass of the warm controller that starts after the mark and finds
        nothing to do.  Every pass observes everything (level-based), and any pass re-arms the
        resync timer, so a libvirt or RBD event that wakes the loop first stands in for the
        resync; its triggers are recorded."""
        row: dict[str, Any] = {"tool": "volctl resync pass (warm controller)", "ok": False}
        deadline = time.monotonic() + self.resync * 3 + 10
        seen: list[str] = []
        found: tuple[dict[str, Any], dict[str, Any]] | None = None
        with DaemonRpcCounter(fleet.lab, fleet.hosts) as counter:
            self.ctl_log.mark()
            while found is None:
                left = deadline - time.monotonic()
                start = self.ctl_log.wait_for(lambda e: e.get("event") == "pass.start", left)
                if start is None:
                    break
                rid = start.get("reconcile_id")
                end = self.ctl_log.wait_for(
                    lambda e, rid=rid: (
                        e.get("event") == "pass.end" and e.get("reconcile_id") == rid
                    ),
                    timeout=60,
                )
                if end is None:
                    break
                seen.append(f"{','.join(start.get('triggers', []))}: {end.get('actions')} actions")
                if end.get("actions", 0) == 0 and end.get("converged"):
                    found = (start, end)
        if found is None:
            row["error"] = f"no steady pass (converged, 0 actions) in the controller log: {seen}"
            return row
        start, end = found
        # the daemons' logs are read when the counter's block ends
        rpcs = counter.result(window=(start["_t"] - 0.005, end["_t"] + 0.005))
        row.update(
            ok=True,
            triggers=start.get("triggers", []),
            rerun_s=float(end["duration_ms"]) / 1000,
            rerun_rpcs=rpcs.total,
            rerun_xml_desc=rpcs.xml_desc,
            rerun_rpc_detail=rpcs.as_dict(),
            pass_actions=0,
        )
        return row

    @staticmethod
    def _storage_row(fleet: Fleet) -> dict[str, Any]:
        """volctl's RBD observe of the pool (every image: meta, parent, watchers), warm."""
        from reconciler.backends.rbd_backend import RbdStorage

        info = fleet.lab.info
        st = RbdStorage(info.ceph_conf, info.pool, info.ceph_user)
        try:
            st.observe((fleet.parent,))
            t0 = time.perf_counter()
            obs = st.observe((fleet.parent,))
            secs = time.perf_counter() - t0
        finally:
            st.close()
        return {
            "tool": "volctl storage observe, warm (RBD, no libvirt)",
            "ok": obs.reachable,
            "rerun_s": secs,
            "rerun_rpcs": 0,
            "rerun_xml_desc": 0,
            "images": len(obs.images),
        }

    @staticmethod
    def _observe_row(fleet: Fleet) -> dict[str, Any]:
        """volctl's Hypervisor.observe() in this process, counted by its rpc_count()."""
        from reconciler.backends.libvirt_backend import LibvirtHypervisor

        hvs = [LibvirtHypervisor(h, fleet.lab.host(h).uri) for h in fleet.hosts]
        try:
            cold = warm = 0
            stats: dict[str, int] = {}
            t0 = time.perf_counter()
            for hv in hvs:
                before = hv.rpc_count()
                hv.observe()
                cold += hv.rpc_count() - before
            t1 = time.perf_counter()
            for hv in hvs:
                before_stats = hv.rpc_stats()
                before = hv.rpc_count()
                hv.observe()
                warm += hv.rpc_count() - before
                for k, v in hv.rpc_stats().items():
                    if v - before_stats.get(k, 0):
                        stats[k] = stats.get(k, 0) + v - before_stats.get(k, 0)
            t2 = time.perf_counter()
        finally:
            for hv in hvs:
                hv.close()
        return {
            "tool": "volctl observe, warm (backend rpc_count())",
            "ok": True,
            "rerun_s": t2 - t1,
            "rerun_rpcs": warm,
            "rerun_xml_desc": stats.get("XMLDesc", 0),
            "observe_cold_rpcs": cold,
            "observe_cold_s": t1 - t0,
            "warm_by_api": stats,
        }

    def stop_controller(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self, fleet: Fleet) -> None:
        # stop the controller before the benchmark deletes the fleet behind its back
        self.stop_controller()

    def close(self) -> None:
        self.stop_controller()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
