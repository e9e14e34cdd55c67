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
    """Passes and actions logged since epoch `t0` (e.g. the start of an apply).

    Besides totals it keeps the timeline B1 needs to say where the wall time goes: every
    pass's start and end (and its phases, when the controller logs them), every action as
    `[kind, host, start, end]` (seconds after `t0`), how many actions were in flight on
    average while any ran, and the tail from the last action's end to its pass's end.
    """
    actions = [e for e in events if e.get("event") == "action" and e.get("_t", 0) >= t0]
    passes = [e for e in events if e.get("event") == "pass.end" and e.get("_t", 0) >= t0]
    by_kind: dict[str, float] = {}
    for a in actions:
        by_kind[a.get("kind", "?")] = by_kind.get(a.get("kind", "?"), 0.0) + float(
            a.get("duration_ms", 0.0)
        )
    starts = [action_start(a) for a in actions]
    out: dict[str, Any] = {
        "passes": len(passes),
        "pass_ms": [p.get("duration_ms") for p in passes],
        "actions": len(actions),
        "failed_actions": sum(1 for a in actions if a.get("result") != "ok"),
        "action_ms_by_kind": {k: round(v, 1) for k, v in by_kind.items()},
        "first_action_after_s": (min(starts) - t0) if starts else None,
        "last_action_end_s": (max(a["_t"] for a in actions) - t0) if actions else None,
    }
    out.update(_timeline(events, actions, passes, t0))
    return out


def _timeline(
    events: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    passes: list[dict[str, Any]],
    t0: float,
) -> dict[str, Any]:
    begun = {
        e.get("reconcile_id"): e for e in events if e.get("event") == "pass.start" and "_t" in e
    }
    pass_rows = []
    for p in passes:
        start = begun.get(p.get("reconcile_id"), {})
        row = {
            "start_s": round(start["_t"] - t0, 3) if "_t" in start else None,
            "end_s": round(p["_t"] - t0, 3),
            "actions": p.get("actions"),
            "triggers": start.get("triggers"),
        }
        if isinstance(p.get("phases_ms"), dict):
            row["phases_ms"] = p["phases_ms"]
        pass_rows.append(row)
    spans = sorted(
        (action_start(a) - t0, a["_t"] - t0, str(a.get("kind", "?")), a.get("host"))
        for a in actions
    )
    out: dict[str, Any] = {
        "pass_timeline": pass_rows,
        "action_timeline": [[k, h, round(s, 3), round(e, 3)] for s, e, k, h in spans],
    }
    if spans:
        first, last = spans[0][0], max(e for _, e, _, _ in spans)
        busy = sum(e - s for s, e, _, _ in spans)
        out["mean_in_flight"] = round(busy / (last - first), 2) if last > first else None
        ends_after = [p["_t"] - t0 for p in passes if p["_t"] - t0 >= last]
        if ends_after:
            out["pass_end_after_last_action_s"] = round(min(ends_after) - last, 3)
    return out
