"""A `volctl run` that a scenario can SIGKILL and restart, and the CLI as a user runs it.

Why not bench's `Volctl` tool: a crash campaign needs to kill the controller without warning
(SIGKILL to its whole process group, so nothing it started lives on), restart it on the same
store and state, and tell from the REST view whether it has converged on the store's newest
revision.  The controller runs in its own session and dies with the campaign (PDEATHSIG), so
a campaign killed by a timeout never leaves a controller reconciling the shared lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.tools.volctl_tool import VOLCTL, _die_with_parent


class Controller:
    """One `volctl run` on `config`, logging JSON lines to `log`."""

    def __init__(self, config: Path, listen: str, log: Path, resync: float = 5.0) -> None:
        self.config = config
        self.listen = listen
        self.log = log
        self.resync = resync
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["VOLCTL_CONFIG"] = str(self.config)
        for key in ("VOLCTL_API", "VOLCTL_STORE", "VOLCTL_TOKEN"):
            env.pop(key, None)
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start it and wait until /healthz answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [*VOLCTL, "--config", str(self.config), "run", "--resync", str(self.resync)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"volctl run exited {self.proc.returncode}: {self.tail()}")
            if self.get("/healthz") is not None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"volctl run did not serve /healthz in {timeout:.0f} s: {self.tail()}")

    def kill(self) -> bool:
        """SIGKILL the whole process group now; True if it was still running."""
        if self.proc is None:
            return False
        alive = self.proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return alive

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 5.0) -> Any:
        """The JSON body of GET path, or None when the controller does not answer."""
        try:
            with urllib.request.urlopen(f"http://{self.listen}{path}", timeout=timeout) as r:
                return json.loads(r.read())
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def status(self) -> dict[str, Any]:
        body = self.get("/api/v1/status")
        return body if isinstance(body, dict) else {}

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def cli(self, *args: str, timeout: float = 300.0, stdin: str | None = None) -> tuple[int, str]:
        """Run `volctl ARGS` against this controller's config; (exit code, output)."""
        proc = subprocess.run(
            [*VOLCTL, "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr
