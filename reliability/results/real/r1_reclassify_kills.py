"""Recount where R1's kills landed, from each row's own apply span (run E's JSON).

A kill came after the apply had converged exactly when the first life's log held a
converged pass after the last action, i.e. when the row's `apply_span_s` is not longer
than its `kill_at_s`.  Usage: python r1_reclassify_kills.py r1_crash-....json
"""

import json
import sys
from pathlib import Path


def main(path: str) -> str:
    rows = json.loads(Path(path).read_text())["rows"]
    before = mid = after = 0
    for r in rows:
        span, kill, acts = r.get("apply_span_s"), r.get("kill_at_s"), r.get("actions_before_kill")
        if not acts:
            before += 1
        elif span is not None and span <= kill:
            after += 1
        else:
            mid += 1
    return f"trials {len(rows)}: before any action {before}, mid-apply {mid}, after {after}"


if __name__ == "__main__":
    print(main(sys.argv[1]))
