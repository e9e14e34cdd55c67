"""Status values shared by the controller (writer) and REST, CLI and dashboard (readers).

Modelled on Flux/Kubernetes status: a phase for humans, conditions for machines
(Ready, Progressing, Degraded), the observed spec hash (like observedGeneration), the last
error and a short event history.  Snapshots are immutable so readers never lock and never
see a half-written pass.  Nothing in here may ever hold a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from reconciler.source.protocol import SourceStatus

if TYPE_CHECKING:  # the CLI loads these types at start-up; observe.types is not needed for that
    from reconciler.observe.types import DeletedVolume


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"  # converged
    STOPPED = "Stopped"  # VM with running: false, converged
    UNSCHEDULABLE = "Unschedulable"
    BLOCKED = "Blocked"  # e.g. shrink refused, delete guard, foreign name clash
    DETACHING = "Detaching"
    RELEASED = "Released"  # volume kept after removal from the spec (Retain)
    UNKNOWN = "Unknown"  # its host cannot be observed
    FAILED = "Failed"  # terminal error, waits for a spec change
    DELETING = "Deleting"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str = ""
    last_transition: float = 0.0  # unix time


@dataclass(frozen=True)
class Event:
    time: float
    type: str  # "Normal" | "Warning"
    reason: str  # e.g. "Created", "Attached", "RetryScheduled"
    message: str
    resource: str = ""  # "vm/NAME"


@dataclass(frozen=True)
class ResourceStatus:
    kind: str  # model.Kind value
    name: str
    phase: Phase
    conditions: tuple[Condition, ...] = ()
    observed_spec_hash: str | None = None
    desired_spec_hash: str | None = None
    last_error: str | None = None
    events: tuple[Event, ...] = ()  # newest last, bounded
    ids: Mapping[str, int] = field(default_factory=dict)  # vmid / volumeid / id / tid / pmid
    host: str | None = None  # Host resource name the VM runs on (or the attached VM's host)
    pmid: int | None = None
    details: Mapping[str, str] = field(default_factory=dict)  # kind-specific, e.g. "attachedTo"
    created: float | None = None  # first seen by this controller (for AGE)
    labels: Mapping[str, str] = field(default_factory=dict)  # metadata.labels (for get -l)


@dataclass(frozen=True)
class HostStatus:
    name: str
    uri: str
    pmid: int
    reachable: bool
    reason: str | None = None
    cpus: int = 0
    memory_mib: int = 0
    cpu_used_ours: int = 0
    cpu_used_foreign: int = 0
    ram_used_ours_mib: int = 0
    ram_used_foreign_mib: int = 0
    domains_ours: int = 0
    domains_foreign: int = 0
    # the domain type volctl gives x86_64 VMs here ("kvm"/"qemu"; "" while unreachable),
    # whether the Host spec forces it, and the guest architectures libvirt offers
    virt_type: str = ""
    virt_type_forced: bool = False
    arches: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageStatus:
    """The Ceph pool as the last pass saw it.  Without it a pass with Ceph away said only
    `converged: false` (R3: resources that need no Ceph call stay Ready), so the summary
    carries the pool's reachability and, when unreachable, a reason that names Ceph."""

    pool: str
    reachable: bool
    reason: str | None = None


# Histogram bucket upper bounds (seconds) for reconcile pass durations.
PASS_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Metrics:
    """Counters the controller accumulates; /metrics renders them in Prometheus format."""

    passes_total: int = 0
    pass_seconds_sum: float = 0.0
    pass_buckets: tuple[int, ...] = (0,) * len(PASS_BUCKETS)  # cumulative counts per bound
    actions_total: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (kind, result)
    drift_corrections_total: int = 0  # actions that repaired out-of-band changes
    events_received_total: int = 0  # libvirt events that triggered a pass


@dataclass(frozen=True)
class Snapshot:
    generation: int = 0  # increments every pass
    time: float = 0.0
    converged: bool = False
    reconcile_id: str | None = None
    last_pass_seconds: float | None = None
    last_error: str | None = None
    resources: Mapping[str, ResourceStatus] = field(default_factory=dict)  # key "vm/NAME"
    hosts: Mapping[str, HostStatus] = field(default_factory=dict)
    source: SourceStatus | None = None
    events: tuple[Event, ...] = ()  # recent events across all resources, newest last
    pending_actions: int = 0
    metrics: Metrics = field(default_factory=Metrics)
    # volumes volctl deleted (reclaimPolicy Delete), by volumeid, from the pool's id ledger
    deleted_volumes: Mapping[int, DeletedVolume] = field(default_factory=dict)
    storage: StorageStatus | None = None  # None until a pass has observed the pool

    def of_kind(self, kind: str) -> list[ResourceStatus]:
        return [r for r in self.resources.values() if r.kind == kind]
