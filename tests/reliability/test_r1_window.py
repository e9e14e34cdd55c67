"""The R1 kill window is the apply's own duration, read from the controller's log.

Run C of the campaign drew its kills over a window that also counted the restarted
controller's convergence and the judge's polling, so 32 of 46 kills landed after the apply
had converged.  These checks feed `apply_span` / `restart_work` real-shaped log events.
"""

from __future__ import annotations

from typing import Any

from reliability.r1_crash import apply_span, before_kill, restart_work


def ev(t: float, event: str, **kw: Any) -> dict[str, Any]:
    return {"_t": t, "event": event, **kw}


def test_span_ends_at_first_converged_pass_after_the_last_action() -> None:
    log = [
        ev(99.0, "pass.end", converged=True, actions=0),  # a resync before the change
        ev(100.5, "pass.start"),
        ev(103.0, "action", kind="create_volume"),
        ev(104.0, "pass.end", converged=True, actions=1),  # the apply's half before delete
        ev(104.2, "pass.start"),
        ev(108.0, "action", kind="destroy_domain"),
        ev(109.0, "pass.end", converged=False, actions=1),
        ev(110.0, "pass.start"),
        ev(111.5, "pass.end", converged=True, actions=0),
        ev(140.0, "pass.end", converged=True, actions=0),  # later steady state
    ]
    assert apply_span(log, 100.0) == 11.5


def test_no_span_when_killed_mid_apply_or_nothing_acted() -> None:
    killed = [ev(101.0, "pass.start"), ev(102.0, "action"), ev(102.5, "pass.end", converged=False)]
    assert apply_span(killed, 100.0) is None
    assert apply_span([ev(101.0, "pass.end", converged=True)], 100.0) is None
    assert before_kill(killed) == {"actions_before_kill": 1, "kill_after_converged": False}


def test_restart_work_excludes_process_start_and_polling() -> None:
    log = [
        ev(200.0, "pass.start"),  # the process came up at 197
        ev(204.0, "action"),
        ev(206.0, "pass.end", converged=False),
        ev(206.1, "pass.start"),
        ev(207.0, "pass.end", converged=True),
        ev(260.0, "pass.end", converged=True),
    ]
    assert restart_work(log, 197.0) == 7.0
    assert restart_work(log[:3], 197.0) is None


def test_a_kill_after_convergence_is_told_apart() -> None:
    log = [ev(101.0, "action"), ev(102.0, "pass.end", converged=True, actions=0)]
    assert before_kill(log)["kill_after_converged"] is True


def test_a_converged_pass_before_the_apply_is_not_a_kill_after_convergence() -> None:
    """Run E trial 1: the last pass.end before the kill was a converged resync from before
    the apply; the apply's own pass was still running when the controller died."""
    log = [
        ev(99.0, "pass.end", converged=True, actions=0),
        ev(100.5, "pass.start"),
        ev(103.0, "action", kind="attach-volume"),
    ]
    assert before_kill(log) == {"actions_before_kill": 1, "kill_after_converged": False}
