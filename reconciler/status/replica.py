"""What an HA replica says about itself and the others (REST `/api/v1/leader`, metrics).

Why a status type: the REST layer may not import the controller, yet it must show the role,
epoch and lease of the replica it runs in, how old the snapshot it serves is, and why a
replica does not act (for instance "Ceph unreachable: …").  The controller fills this in;
the API only renders it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaSeen:
    """A replica's last heartbeat in RADOS."""

    replica: str
    role: str
    epoch: int
    seen: float  # unix time of its last heartbeat
    lease_expires: float | None = None  # its own estimate, when it holds the lease


@dataclass(frozen=True)
class ReplicaInfo:
    replica: str  # this replica's id
    role: str  # leader | taking-over | follower | unavailable
    epoch: int  # the highest lease epoch this replica knows of
    leader: str | None  # the leader's replica id, as far as this replica knows
    lease_seconds: float
    lease_expires: float | None  # unix time (estimate) the leader's lease runs out
    takeovers: int  # times this replica took the lease
    reason: str  # why this role, in words (e.g. "Ceph unreachable: …")
    store: str  # where desired state lives
    snapshot_from: str | None = None  # replica id that published the snapshot served
    snapshot_epoch: int | None = None
    snapshot_published: float | None = None  # unix time
    replicas: tuple[ReplicaSeen, ...] = ()

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"

    @property
    def ceph_ok(self) -> bool:
        return self.role != "unavailable"
