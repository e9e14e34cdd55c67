"""Who may act, decided on this replica's own monotonic clock: the fencing rules of docs/ha.md.

Why pure: the safety argument ("never two actors") must hold whatever the network and the
scheduler do, so the decisions live here, free of I/O, with an injected clock, and are unit
tested with a fake one.  `controller/replica.py` feeds in what RADOS answered.

The rules, with `sent` the monotonic time just *before* a lock or renew request left:

* a granted lock or renewal makes us safe until `sent + lease - margin`: the OSD's expiry is
  at least `sent + lease` (it starts counting when the request arrives, later than `sent`),
  so we stop acting strictly before anyone else can get the lock, even if every later
  renewal is lost or we are paused;
* a new leader acts only from `sent + lease` of its takeover on: whoever held the lock before
  had stopped by then by its own clock, and its Ceph client has been blocklisted;
* a failed renewal (lock taken, expired) ends leadership at once; a renewal that cannot reach
  Ceph changes nothing, the deadline above ends it on time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from reconciler.errors import Transient


class Role(StrEnum):
    FOLLOWER = "follower"
    TAKING_OVER = "taking-over"  # holds the lock, waiting out the previous lease
    LEADER = "leader"
    UNAVAILABLE = "unavailable"  # Ceph cannot be reached: neither leads nor knows who does


class Fenced(Transient):
    """This replica may not act now (not the leader, or its lease may have lapsed)."""


@dataclass(frozen=True)
class LeaseSettings:
    lease: float = 6.0  # seconds a grant or renewal is valid at the OSD
    margin: float | None = None  # safety margin on our side; default lease / 6

    @property
    def safety(self) -> float:
        return self.lease / 6 if self.margin is None else self.margin

    @property
    def renew_every(self) -> float:
        return self.lease / 3

    @property
    def retry_every(self) -> float:
        """How often a follower tries the lock (a cheap 0.3 ms call)."""
        return min(1.0, self.lease / 6)

    def __post_init__(self) -> None:
        if self.lease <= 0 or not 0 <= self.safety < self.lease / 3:
            raise ValueError("lease must be > 0 and margin in [0, lease/3)")


@dataclass(frozen=True)
class View:
    """What the replica shows (REST, metrics, `volctl get leader`)."""

    role: Role
    epoch: int
    may_act: bool
    valid_for: float  # seconds our lease is still safe (0 when not leader)
    reason: str  # why this role, in words


class Leadership:
    """The fencing state of one replica; thread safe."""

    def __init__(self, settings: LeaseSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self.role = Role.FOLLOWER
        self.epoch = 0
        self._safe_until = 0.0
        self._act_from = 0.0
        self._last_sent = 0.0
        self.reason = "starting"
        self.takeovers = 0

    # ---- what RADOS answered ---------------------------------------------------------------

    def acquired(self, sent: float, epoch: int) -> None:
        """We took the lock with a request sent at `sent` and published `epoch`."""
        s = self.settings
        with self._lock:
            self.role = Role.TAKING_OVER
            self.epoch = epoch
            self._last_sent = sent
            self._safe_until = sent + s.lease - s.safety
            self._act_from = sent + s.lease
            self.takeovers += 1
            self.reason = f"took the lease at epoch {epoch}; waiting out the previous lease"

    def renewed(self, sent: float) -> None:
        s = self.settings
        with self._lock:
            if self.role not in (Role.TAKING_OVER, Role.LEADER):
                return
            self._last_sent = sent
            self._safe_until = sent + s.lease - s.safety

    def lost(self, reason: str) -> None:
        with self._lock:
            self.role = Role.FOLLOWER
            self._safe_until = 0.0
            self.reason = reason

    def follower(self, reason: str) -> None:
        with self._lock:
            if self.role in (Role.FOLLOWER, Role.UNAVAILABLE):
                self.role = Role.FOLLOWER
                self.reason = reason

    def unavailable(self, reason: str) -> None:
        """Ceph cannot be reached.  A leader keeps its role until its deadline passes."""
        with self._lock:
            if self.role in (Role.FOLLOWER, Role.UNAVAILABLE):
                self.role = Role.UNAVAILABLE
            self.reason = reason

    # ---- decisions -------------------------------------------------------------------------

    def tick(self) -> Role:
        """Advance time-based transitions; returns the role now."""
        now = self.clock()
        with self._lock:
            if self.role in (Role.TAKING_OVER, Role.LEADER) and now >= self._safe_until:
                self.role = Role.FOLLOWER
                self.reason = "lease may have lapsed (no renewal in time); stopped acting"
            elif self.role is Role.TAKING_OVER and now >= self._act_from:
                self.role = Role.LEADER
                self.reason = f"leader at epoch {self.epoch}"
            return self.role

    def may_act(self) -> bool:
        now = self.clock()
        with self._lock:
            return self.role is Role.LEADER and self._act_from <= now < self._safe_until

    def check(self, what: str = "act") -> None:
        """Raise Fenced unless this replica may act right now (called before every action)."""
        self.tick()
        if not self.may_act():
            raise Fenced(f"not acting ({what}): {self.view().reason}")

    def renew_due(self) -> float:
        """Monotonic time of the next renewal."""
        with self._lock:
            return self._last_sent + self.settings.renew_every

    def is_holder(self) -> bool:
        with self._lock:
            return self.role in (Role.TAKING_OVER, Role.LEADER)

    def view(self) -> View:
        now = self.clock()
        with self._lock:
            holder = self.role in (Role.TAKING_OVER, Role.LEADER)
            return View(
                role=self.role,
                epoch=self.epoch,
                may_act=self.role is Role.LEADER and self._act_from <= now < self._safe_until,
                valid_for=max(0.0, self._safe_until - now) if holder else 0.0,
                reason=self.reason,
            )
