"""What one doctor check found: pass, fail (with the fix) or skipped (with why)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a check result, not a password
    FAIL = "fail"
    SKIP = "skip"  # could not be checked because an earlier check failed


@dataclass(frozen=True)
class CheckResult:
    check: str  # stable id for scripts: "host.secret", "ceph.caps.create", ...
    target: str  # what was checked: "host h1 (qemu+tcp://...)", "pool rbd", "this node"
    status: Status
    detail: str  # what was seen (never a key)
    fix: str = ""  # for FAIL: what to do about it

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}


def passed(check: str, target: str, detail: str) -> CheckResult:
    return CheckResult(check, target, Status.PASS, detail)


def failed(check: str, target: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, target, Status.FAIL, detail, fix)


def skipped(check: str, target: str, why: str) -> CheckResult:
    return CheckResult(check, target, Status.SKIP, why)


def all_passed(results: Sequence[CheckResult]) -> bool:
    """Exit status 0 needs every check to pass; a skip means something upstream failed."""
    return bool(results) and all(r.status is Status.PASS for r in results)
