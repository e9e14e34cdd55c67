"""The fencing rules of controller/leadership.py on a fake clock (docs/ha.md, safety)."""

from __future__ import annotations

import pytest

from reconciler.controller.leadership import Fenced, Leadership, LeaseSettings, Role


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def leader(lease: float = 6.0) -> tuple[Leadership, Clock]:
    clock = Clock()
    ls = Leadership(LeaseSettings(lease=lease), clock)
    ls.acquired(clock.now, epoch=3)
    return ls, clock


def test_new_leader_waits_out_the_full_lease_before_acting() -> None:
    ls, clock = leader()
    assert ls.tick() is Role.TAKING_OVER
    clock.now += 5.9
    assert not ls.may_act()
    ls.renewed(clock.now)  # renewals while waiting keep the lease
    clock.now += 0.1
    assert ls.tick() is Role.LEADER
    assert ls.may_act()
    ls.check("define vm")


def test_leader_stops_before_the_osd_could_expire_the_lock() -> None:
    ls, clock = leader()
    clock.now += 6.0
    ls.renewed(clock.now)  # the last renewal that got through, sent at t
    assert ls.tick() is Role.LEADER
    sent = clock.now
    clock.now = sent + 6.0 - 1.0 - 0.001  # lease - margin (lease/6), just before
    assert ls.may_act()
    clock.now = sent + 5.0  # lease - margin: stop, although the OSD still counts 1 s more
    assert not ls.may_act()
    with pytest.raises(Fenced, match="lease may have lapsed"):
        ls.check("start vm")
    assert ls.tick() is Role.FOLLOWER


def test_a_paused_leader_resumes_as_a_non_actor() -> None:
    ls, clock = leader()
    clock.now += 4.0
    ls.renewed(clock.now)
    clock.now += 2.0
    assert ls.tick() is Role.LEADER
    clock.now += 12.0  # SIGSTOP for 2 x lease: the monotonic clock kept running
    assert not ls.may_act()
    assert ls.tick() is Role.FOLLOWER
    ls.renewed(clock.now)  # a late renewal answer cannot resurrect it
    assert not ls.may_act()


def test_lost_lease_ends_leadership_at_once() -> None:
    ls, clock = leader()
    clock.now += 4.0
    ls.renewed(clock.now)
    clock.now += 2.0
    assert ls.tick() is Role.LEADER
    ls.lost("lease lost")
    assert not ls.may_act()
    assert ls.view().role is Role.FOLLOWER


def test_unreachable_ceph_keeps_a_leader_only_until_its_deadline() -> None:
    ls, clock = leader()
    clock.now += 4.0
    ls.renewed(clock.now)
    clock.now += 2.0
    assert ls.tick() is Role.LEADER
    ls.unavailable("Ceph unreachable: timed out")
    assert ls.may_act()  # still inside the last grant (renewed at 104: safe until 109)
    clock.now += 3.0
    assert not ls.may_act()


def test_follower_never_acts_and_says_why() -> None:
    ls = Leadership(LeaseSettings(), Clock())
    ls.unavailable("Ceph unreachable: connection refused")
    view = ls.view()
    assert view.role is Role.UNAVAILABLE
    assert not view.may_act
    assert "Ceph unreachable" in view.reason
    with pytest.raises(Fenced, match="Ceph unreachable"):
        ls.check()


@pytest.mark.parametrize(("lease", "margin"), [(0.0, None), (6.0, 2.0), (6.0, -1.0)])
def test_bad_settings_are_refused(lease: float, margin: float | None) -> None:
    with pytest.raises(ValueError, match="lease"):
        LeaseSettings(lease=lease, margin=margin)


def test_renew_and_retry_periods() -> None:
    s = LeaseSettings(lease=6.0)
    assert s.renew_every == 2.0
    assert s.retry_every == 1.0
    assert s.safety == 1.0
