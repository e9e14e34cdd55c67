"""Tables on the terminal and JSON on disk, in one shape for every benchmark.

Each benchmark builds a `Report`: its parameters, one row per measured thing (a tool, a
size, a trial set), and free-form notes that say what a tool did instead where it could not
do the same work.  `finish()` prints the table and writes `bench/results/<name>-<utc>.json`
plus `<name>-latest.json`, with the environment attached, so a figure is never separated
from the setup it came from.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.env import REPO, environment

# VOLCTL_BENCH_RESULTS redirects the JSON (the smoke tests write into their tmp dir)
RESULTS_DIR = Path(os.environ.get("VOLCTL_BENCH_RESULTS", str(REPO / "bench" / "results")))


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Plain fixed-width table; columns are (key, header)."""
    cells = [[h for _, h in columns]] + [[fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Report:
    name: str  # "b1_converge"
    params: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = environment()  # versions, machine, date and load when the run starts

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def finish(self, columns: list[tuple[str, str]], results_dir: Path | None = None) -> Path:
        out_dir = results_dir or RESULTS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        ok = all(r.get("ok", True) for r in self.rows) and bool(self.rows)
        doc = {
            "benchmark": self.name,
            "command": " ".join(
                shlex.quote(a)
                for a in [Path(sys.executable).name, "-m", f"bench.{self.name}", *sys.argv[1:]]
            ),
            "params": self.params,
            "environment": {**self.env, "load_avg_at_end": list(os.getloadavg())},
            "ok": ok,
            "rows": self.rows,
            "summary": self.summary,
            "notes": self.notes,
            **self.extra,
        }
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"{self.name}-{stamp}.json"
        text = json.dumps(doc, indent=2, default=str)
        path.write_text(text)
        (out_dir / f"{self.name}-latest.json").write_text(text)
        print()
        print(f"== {self.name} ==  {doc['command']}")
        print(table(self.rows, columns))
        for k, v in self.summary.items():
            print(f"  {k}: {fmt(v)}")
        for n in self.notes:
            print(f"  * {n}")
        print(f"  results: {path}")
        return path
