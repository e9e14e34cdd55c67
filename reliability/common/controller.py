"""The campaign's own `volctl run`, driven the way a user drives it: `volctl apply -f` and
`volctl delete KIND/NAME`.

It is bench's `Volctl` tool (its own config, store, state dir and REST port derived from
the lab's, a controller that dies with the campaign) with one more step: `sync(workload)`
writes what the campaign's `Workload` asks for into the store, deleting what left it first.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.tools.base import run_logged, tail
from bench.tools.volctl_tool import VOLCTL, Volctl
from reliability.common.workload import Workload

SHORT = {
    "VirtualMachine": "vm",
    "Volume": "volume",
    "VolumeAttachment": "attachment",
    "Host": "host",
    "Image": "image",
    "InstanceType": "type",
}


class Controller(Volctl):
    def __init__(self, listen: str, resync: float = 5.0) -> None:
        super().__init__(listen=listen, resync=resync)
        self.applied: set[tuple[str, str]] = set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start_for(self, wl: Workload) -> None:
        """Own work dir and config, the controller, and the lab's hosts/image/type settled."""
        self.work = Path(tempfile.mkdtemp(prefix=f"volctl-rel-{wl.prefix}-", dir="/var/tmp"))
        cfg = yaml.safe_load(Path(wl.lab.info.config_path).read_text())
        cfg.update(
            api=f"http://{self.listen}",
            listen=self.listen,
            store=str(self.work / "store"),
            stateDir=str(self.work / "state"),
            # an installation of its own: managed images other tests left in a shared lab's
            # pool are foreign to it, never its orphans (docs/backends.md, ownership marks)
            installation=self.work.name,
        )
        cfg.pop("git", None)
        (self.work / "store").mkdir()
        self.config = self.work / "volctl.yaml"
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.log = str(self.work / "run.log")
        self.cli_log = str(self.work / "cli.log")
        self.start_controller()
        infra = self.work / "infra.yaml"
        infra.write_text(yaml.safe_dump_all(wl.infra_documents(), sort_keys=False))
        rc, _ = self.cli("apply", "-f", str(infra), "--wait", "--timeout", "180")
        if rc != 0:
            raise RuntimeError(f"volctl apply of the infrastructure failed:\n{tail(self.cli_log)}")
        self.applied = {(d["kind"], d["metadata"]["name"]) for d in wl.infra_documents()}

    def cli(self, *args: str, timeout: float = 600) -> tuple[int, float]:
        return run_logged(
            [*VOLCTL, "--config", str(self.config), *args],
            self.cli_log,
            env=self.env(),
            timeout=timeout,
        )

    def sync(self, wl: Workload, *, wait: float | None = None) -> tuple[int, float]:
        """Make the store hold exactly WL: delete what left it, apply the rest (with
        `--wait --timeout WAIT` when WAIT is given).  Returns (exit code, seconds)."""
        return self.sync_docs(wl.documents(), wait=wait)

    def sync_docs(
        self, docs: list[dict[str, Any]], *, wait: float | None = None
    ) -> tuple[int, float]:
        """`sync` of documents rendered before (another thread may change the workload)."""
        assert self.work is not None
        t0 = time.monotonic()
        want = {(d["kind"], d["metadata"]["name"]) for d in docs}
        gone = sorted(self.applied - want, key=lambda k: list(SHORT).index(k[0]) * -1)
        # apply first, then delete: a change may move an attachment away from a VM it also
        # deletes, and `volctl delete` refuses a VM the store's attachment still names.  (The
        # first soak deleted first; one such refusal left every later sync failing.)
        path = self.work / "spec.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        args = ["apply", "-f", str(path)]
        if wait is not None and not gone:
            args += ["--wait", "--timeout", f"{int(wait)}"]
        rc, _ = self.cli(*args)
        if rc != 0:
            return rc, time.monotonic() - t0
        self.applied |= want
        if gone:
            # attachments first, then VMs and volumes
            rc, _ = self.cli("delete", *[f"{SHORT[k]}/{n}" for k, n in gone])
            if rc != 0:
                return rc, time.monotonic() - t0
        self.applied = want
        return rc, time.monotonic() - t0

    def status(self) -> dict[str, Any] | None:
        doc = self.get("/api/v1/status")
        return doc if isinstance(doc, dict) else None

    def wait_converged(self, wl: Workload, timeout: float) -> tuple[bool, float, list[str]]:
        """Until status says converged AND the world matches WL: (ok, seconds, problems)."""
        t0 = time.monotonic()
        problems: list[str] = ["not checked"]
        while time.monotonic() - t0 < timeout:
            st = self.status()
            if st and st.get("converged"):
                try:
                    problems = wl.check_world()
                except Exception as exc:  # noqa: BLE001 - a flaky read is retried
                    problems = [f"world check failed: {exc}"]
                if not problems:
                    return True, time.monotonic() - t0, []
            time.sleep(0.5)
        try:
            problems = wl.check_world()
        except Exception as exc:  # noqa: BLE001
            problems = [f"world check failed: {exc}"]
        return False, time.monotonic() - t0, problems

    def log_digest(self, n: int = 30) -> list[str]:
        """The controller log's last N warnings, errors and pass ends, one short line each
        (what a failed smoke prints, so CI's output says why)."""
        if not getattr(self, "log", None) or not Path(self.log).exists():
            return []
        out: list[str] = []
        for line in Path(self.log).read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if not isinstance(ev, dict):
                continue
            if ev.get("level") in ("warning", "error") or ev.get("event") == "pass.end":
                keys = ("event", "host", "action", "converged", "remaining", "error", "reason")
                out.append(" ".join(f"{k}={str(ev[k])[:160]}" for k in keys if k in ev))
        stamp = [f"{len(out)} lines of interest in {self.log}"]
        return stamp + out[-n:]

    def close(self) -> None:
        self.stop_controller()
        if self.work is not None:
            keep = Path(tempfile.gettempdir()) / f"{self.work.name}-run.log"
            if Path(self.log).exists():
                shutil.copy(self.log, keep)
            if Path(self.cli_log).exists():
                shutil.copy(self.cli_log, keep.with_name(f"{self.work.name}-cli.log"))
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
