"""volctl as a user runs it: a `volctl run` controller, and `volctl apply -f --wait`.

The controller is started (untimed) with a config of the benchmark's own, derived from the
lab's: its own spec store, state dir and REST port, so it never meets the test suite's
controller.  The lab's hosts, the base image and the instance type are applied first and
settle (a running controller already knows its hosts); the timed step is
`volctl apply -f fleet.yaml --wait`, exactly what a user types.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.common.fleet import Fleet
from bench.tools.base import ToolRun, ToolUnavailable, run_logged, tail

VOLCTL = [sys.executable, "-m", "reconciler.cli.main"]
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


class Volctl:
    name = "volctl"
    rbd_backed = True

    def __init__(self, listen: str = "127.0.0.1:18470") -> None:
        self.listen = listen
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
        self.proc = subprocess.Popen(
            [*VOLCTL, "--config", str(self.config), "run"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
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
                "1200",
            ],
            self.cli_log,
            env=self.env(),
        )
        return ToolRun(ok=rc == 0, error="" if rc == 0 else tail(self.cli_log))

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
