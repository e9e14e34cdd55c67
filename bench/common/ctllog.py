"""Reading the controller's structured JSON log, the source of volctl-internal timings.

`volctl run` logs one JSON object per line: `pass.start` / `pass.end` (with `duration_ms`
and a `reconcile_id`) and one `action` event per finished action with its `duration_ms`.
An action's start is its log time minus its duration.  B1 uses this for a breakdown of
volctl's wall time, B2 to find one warm resync pass, B4 for "first action started".
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any


def parse_time(text: str) -> float:
    """ISO-8601 (structlog, `...Z`) or libvirt's `YYYY-MM-DD HH:MM:SS.mmm+0000` to epoch."""
    t = text.strip().replace("Z", "+00:00")
    if len(t) > 5 and t[-5] in "+-" and t[-3] != ":":
        t = t[:-2] + ":" + t[-2:]
    return dt.datetime.fromisoformat(t).timestamp()


class ControllerLog:
    """Incremental reader of one controller log file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def mark(self) -> None:
        """Forget everything logged so far; `new()` returns only later events."""
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        cut = data.rfind(b"\n") + 1  # only complete lines
        self.offset += cut
        events = []
        for line in data[:cut].splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and "event" in ev:
                if "timestamp" in ev:
                    ev["_t"] = parse_time(str(ev["timestamp"]))
                events.append(ev)
        return events

    def wait_for(self, pred: Any, timeout: float, poll: float = 0.02) -> dict[str, Any] | None:
        """Wait for the first new event matching `pred`; events before it are consumed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.new():
                if pred(ev):
                    return ev
            time.sleep(poll)
        return None


def action_start(ev: dict[str, Any]) -> float:
    return float(ev["_t"]) - float(ev.get("duration_ms", 0.0)) / 1000.0


def breakdown(events: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    """Passes and actions logged since epoch `t0` (e.g. the start of an apply)."""
    actions = [e for e in events if e.get("event") == "action" and e.get("_t", 0) >= t0]
    passes = [e for e in events if e.get("event") == "pass.end" and e.get("_t", 0) >= t0]
    by_kind: dict[str, float] = {}
    for a in actions:
        by_kind[a.get("kind", "?")] = by_kind.get(a.get("kind", "?"), 0.0) + float(
            a.get("duration_ms", 0.0)
        )
    starts = [action_start(a) for a in actions]
    return {
        "passes": len(passes),
        "pass_ms": [p.get("duration_ms") for p in passes],
        "actions": len(actions),
        "failed_actions": sum(1 for a in actions if a.get("result") != "ok"),
        "action_ms_by_kind": {k: round(v, 1) for k, v in by_kind.items()},
        "first_action_after_s": (min(starts) - t0) if starts else None,
        "last_action_end_s": (max(a["_t"] for a in actions) - t0) if actions else None,
    }
