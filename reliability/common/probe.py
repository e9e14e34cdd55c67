"""Ask the controller's REST view once a second and record how long each answer took.

"REST keeps answering" is a figure, not an impression: every probe is kept (time, path,
HTTP status, latency, and what the caller's `keep` picked out of the body), so a campaign
reports the worst latency and any probe that failed, and can tell from the recorded bodies
when status first named the cause of an outage.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Keep = Callable[[str, Any], dict[str, Any]]


@dataclass
class RestProbe:
    base: str  # "http://127.0.0.1:PORT"
    paths: tuple[str, ...] = ("/healthz", "/api/v1/status")
    every: float = 1.0
    timeout: float = 10.0
    keep: Keep | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rest-probe", daemon=True)

    def start(self) -> RestProbe:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        return self.records

    def _loop(self) -> None:
        while not self._stop.is_set():
            t_next = time.monotonic() + self.every
            for path in self.paths:
                self.records.append(self.once(path))
            self._stop.wait(max(0.0, t_next - time.monotonic()))

    def once(self, path: str) -> dict[str, Any]:
        t0 = time.monotonic()
        rec: dict[str, Any] = {"t": t0, "path": path}
        try:
            with urllib.request.urlopen(self.base + path, timeout=self.timeout) as resp:
                body = resp.read()
                rec["code"] = resp.status
        except urllib.error.HTTPError as exc:
            rec["code"] = exc.code
            body = b""
        except OSError as exc:
            rec["code"] = 0
            rec["error"] = f"{type(exc).__name__}: {exc}"
            body = b""
        rec["latency_ms"] = round((time.monotonic() - t0) * 1000, 1)
        if self.keep is not None and body:
            with contextlib.suppress(ValueError):
                rec.update(self.keep(path, json.loads(body)))
        return rec


def summarize(records: list[dict[str, Any]], t0: float, t1: float) -> dict[str, Any]:
    """Probes sent in [t0, t1]: count, failures, max and p50 latency (ms)."""
    win = [r for r in records if t0 <= r["t"] <= t1]
    lat = sorted(r["latency_ms"] for r in win)
    bad = [r for r in win if r.get("code") != 200]
    return {
        "probes": len(win),
        "failed": len(bad),
        "max_ms": lat[-1] if lat else None,
        "p50_ms": lat[len(lat) // 2] if lat else None,
        "first_failure": bad[0] if bad else None,
    }
