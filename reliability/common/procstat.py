"""A process's resident memory, open fds and threads from /proc, and whether they grow.

A soak is only worth its minutes if a leak would show: a controller that keeps a reference
per pass, an fd per reconnect or a thread per timed-out call grows slowly and linearly.
`Sampler` reads /proc/PID every N seconds on a thread; `trend()` fits a least-squares line
to the second half of the samples (the first half includes warm-up: imports, caches,
connection pools filling) and compares the growth that line predicts over that half with
the noise (the residuals' standard deviation).  Growth within twice the noise, or an
absolute bound given by the caller, is "no growth beyond noise".
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def sample(pid: int) -> dict[str, float] | None:
    """{"t", "rss_kib", "fds", "threads"} for PID now, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = float(fields.get("VmRSS", "0 kB").split()[0])
    threads = float(fields.get("Threads", "0").strip())
    return {"t": time.monotonic(), "rss_kib": rss, "fds": float(fds), "threads": threads}


@dataclass
class Sampler:
    pid: int
    every: float = 10.0
    samples: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="procstat", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            s = sample(self.pid)
            if s is not None:
                s["t"] = round(s["t"] - self._t0, 1)
                self.samples.append(s)
            self._stop.wait(self.every)

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(slope, intercept, residual standard deviation) of the least-squares line."""
    n = len(xs)
    if n < 2:
        return 0.0, ys[0] if ys else 0.0, 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    icpt = my - slope * mx
    res = [y - (slope * x + icpt) for x, y in zip(xs, ys, strict=True)]
    sd = math.sqrt(sum(r * r for r in res) / max(1, n - 2))
    return slope, icpt, sd


def trend(samples: list[dict[str, float]], key: str, *, allowed: float = 0.0) -> dict[str, Any]:
    """The second half's slope of KEY, the growth it predicts over that half, the noise, and
    `grows`: predicted growth above max(2 x noise, ALLOWED)."""
    half = samples[len(samples) // 2 :]
    xs = [s["t"] for s in half]
    ys = [s[key] for s in half]
    if len(half) < 3:
        return {"samples": len(half), "grows": False, "note": "too few samples"}
    slope, _icpt, sd = linear_fit(xs, ys)
    span = xs[-1] - xs[0]
    growth = slope * span
    bound = max(2 * sd, allowed)
    return {
        "samples": len(half),
        "first": samples[0][key],
        "half_start": ys[0],
        "last": ys[-1],
        "min": min(s[key] for s in samples),
        "max": max(s[key] for s in samples),
        "slope_per_min": round(slope * 60, 3),
        "growth_over_half": round(growth, 2),
        "noise_sd": round(sd, 2),
        "bound": round(bound, 2),
        "grows": growth > bound,
    }
