"""Where a long-running controller's memory grows: tracemalloc on demand, read by a signal.

Why: a soak showed the controller's RSS rising by a few hundred KiB per ten minutes while its
file descriptors and threads stayed flat (reliability/RESULTS.md).  RSS alone cannot tell a
leak from caches that fill up and stop (libvirt's, librados', the status history).  With
`VOLCTL_TRACEMALLOC=N` in its environment, `volctl run` traces Python allocations with N
frames; each SIGUSR2 then logs a `memory.growth` event: the Python heap now, and the
allocation sites that grew most since the first SIGUSR2 (the baseline).  Allocations made
by C libraries outside Python's allocator are not traced: growth in RSS that the traced heap
does not show lives there.  Tracing costs CPU and memory; it is a diagnostic, off by default.
"""

from __future__ import annotations

import os
import signal
import threading
import tracemalloc
from typing import Any

ENV = "VOLCTL_TRACEMALLOC"
TOP = 15


class MemTrace:
    """The baseline snapshot, and the report of growth since it (`report`)."""

    def __init__(self, frames: int) -> None:
        self._baseline: tracemalloc.Snapshot | None = None
        self._lock = threading.Lock()
        tracemalloc.start(frames)

    def report(self) -> dict[str, Any]:
        """The traced heap now and the sites that grew most since the baseline (the first
        report is the baseline and lists no growth)."""
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        current, peak = tracemalloc.get_traced_memory()
        with self._lock:
            base, first = self._baseline, self._baseline is None
            if first:
                self._baseline = snap
        out: dict[str, Any] = {
            "traced_kib": round(current / 1024, 1),
            "peak_kib": round(peak / 1024, 1),
            "baseline": first,
        }
        if base is not None:
            diffs = snap.compare_to(base, "traceback")
            diffs.sort(key=lambda d: d.size_diff, reverse=True)
            out["growth_kib"] = round(sum(d.size_diff for d in diffs) / 1024, 1)
            out["top"] = [
                {
                    "site": " <- ".join(f"{f.filename}:{f.lineno}" for f in d.traceback[:3]),
                    "kib": round(d.size_diff / 1024, 1),
                    "blocks": d.count_diff,
                }
                for d in diffs[:TOP]
                if d.size_diff > 0
            ]
        return out


def install(log: Any) -> MemTrace | None:
    """Start tracing if `VOLCTL_TRACEMALLOC` asks for it, and log a report on each SIGUSR2
    (from a thread: a snapshot of a large heap takes a while, the main thread keeps going)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw or raw == "0":
        return None
    try:
        frames = max(1, int(raw))
    except ValueError:
        log.warning("memory.trace_off", why=f"{ENV}={raw!r} is not a frame count")
        return None
    trace = MemTrace(frames)

    def emit() -> None:
        log.info("memory.growth", **trace.report())

    def on_signal(_signum: int, _frame: Any) -> None:
        threading.Thread(target=emit, name="memtrace", daemon=True).start()

    signal.signal(signal.SIGUSR2, on_signal)
    log.info("memory.trace_on", frames=frames)
    return trace
