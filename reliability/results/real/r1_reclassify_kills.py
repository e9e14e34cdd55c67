"""Reclassify an R1 JSON's kills with the corrected rule (apply_span <= kill_at)."""
import json, sys
d = json.load(open(sys.argv[1]))
before = mid = after = 0
for r in d["rows"]:
    span, k, acts = r.get("apply_span_s"), r.get("kill_at_s"), r.get("actions_before_kill")
    if not acts: before += 1
    elif span is not None and span <= k: after += 1
    else: mid += 1
print(f"trials {len(d['rows'])}: before any action {before}, mid-apply {mid}, after converged {after}")
