"""`VOLCTL_TRACEMALLOC=N` + SIGUSR2: the controller logs where its Python heap grew.

A real process, real signals: a child installs the tracer, takes a baseline on the first
SIGUSR2, grows a list from a known line, and the second SIGUSR2's report must name that line
with roughly the bytes it added.  Without the variable nothing is traced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, os, signal, sys, threading, time
from reconciler.controller.memtrace import install

events = []
done = threading.Event()

class Log:
    def info(self, event, **kw):
        events.append({"event": event, **kw})
        if event == "memory.growth":
            done.set()
    warning = info

trace = install(Log())
if trace is None:
    print(json.dumps(events)); sys.exit(0)
hoard = []
os.kill(os.getpid(), signal.SIGUSR2)
assert done.wait(10); done.clear()
for i in range(2000):
    hoard.append(bytearray(1024))  # GROW-HERE
os.kill(os.getpid(), signal.SIGUSR2)
assert done.wait(10)
print(json.dumps(events))
"""


def run_child(env_value: str | None) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "VOLCTL_TRACEMALLOC"}
    if env_value is not None:
        env["VOLCTL_TRACEMALLOC"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    events: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return events


def test_sigusr2_reports_the_site_that_grew() -> None:
    events = run_child("3")
    assert events[0] == {"event": "memory.trace_on", "frames": 3}
    base, grown = (e for e in events if e["event"] == "memory.growth")
    assert base["baseline"] is True
    assert "top" not in base
    assert grown["baseline"] is False
    top = grown["top"][0]
    grow_line = CHILD.splitlines().index("    hoard.append(bytearray(1024))  # GROW-HERE") + 1
    assert top["site"].startswith(f"<string>:{grow_line}")
    assert 2000 <= top["kib"] <= 2600, top  # 2000 x (1 KiB + object header)
    assert top["blocks"] >= 2000


def test_off_unless_asked() -> None:
    assert run_child(None) == []
    assert run_child("0") == []
    assert run_child("many")[0]["event"] == "memory.trace_off"
