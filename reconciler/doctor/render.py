"""The doctor report as a table for people and as JSON for scripts."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from reconciler.doctor.result import CheckResult, Status, all_passed

_MARK = {Status.PASS: "ok", Status.FAIL: "FAIL", Status.SKIP: "skip"}


def table(results: Sequence[CheckResult]) -> str:
    """CHECK / TARGET / RESULT / DETAIL columns; each failure's fix indented under it."""
    rows = [("CHECK", "TARGET", "RESULT", "DETAIL")]
    rows += [(r.check, r.target, _MARK[r.status], r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row, result in zip(rows, [None, *results], strict=True):
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
        if result is not None and result.status is Status.FAIL and result.fix:
            fix = textwrap.fill(
                result.fix,
                width=96,
                initial_indent="    fix: ",
                subsequent_indent="         ",
                break_on_hyphens=False,
                break_long_words=False,
            )
            lines.append(fix)
    failed = sum(1 for r in results if r.status is Status.FAIL)
    skipped = sum(1 for r in results if r.status is Status.SKIP)
    if all_passed(results):
        lines.append(f"\nall {len(results)} checks passed")
    else:
        lines.append(f"\n{failed} failed, {skipped} skipped, {len(results)} checks")
    return "\n".join(lines) + "\n"


def as_json(results: Sequence[CheckResult]) -> str:
    doc = {"ok": all_passed(results), "checks": [r.as_json() for r in results]}
    return json.dumps(doc, indent=2) + "\n"
