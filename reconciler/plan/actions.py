"""The closed set of things volctl ever does, as data.

Like terraform's `plans.Action`, every change the executor can make is one of these frozen
values.  An action carries the resource it changes, its before/after for display, the host
it runs on (for per-host concurrency limits) and the ids of actions that must finish first.
`reason` is for humans only; the executor never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.payload import DiskSpec, DomainSpec


class ActionKind(StrEnum):
    IMPORT_IMAGE = "import-image"  # local file -> RBD image + protected snapshot
    CLONE_ROOT = "clone-root"  # COW clone of an image snapshot as a VM's root disk
    DEFINE_DOMAIN = "define-domain"  # define (or redefine) a managed domain
    START_DOMAIN = "start-domain"
    STOP_DOMAIN = "stop-domain"
    DESTROY_DOMAIN = "destroy-domain"  # stop + undefine
    DELETE_ROOT = "delete-root"
    CREATE_VOLUME = "create-volume"
    RESIZE_VOLUME = "resize-volume"  # grow RBD, then tell the guest if attached
    SET_VOLUME_META = "set-volume-meta"  # e.g. a changed reclaimPolicy
    DELETE_VOLUME = "delete-volume"
    ATTACH_VOLUME = "attach-volume"
    DETACH_VOLUME = "detach-volume"


@dataclass(frozen=True)
class Action:
    id: str  # unique in a plan, deterministic: f"{kind}:{resource}"
    kind: ActionKind
    resource: str  # "vm/NAME", "volume/NAME", "attachment/NAME", "image/NAME"
    host: str | None = None  # Host resource name for libvirt actions
    depends_on: tuple[str, ...] = ()
    before: str | None = None  # display only
    after: str | None = None  # display only
    reason: str = ""  # display only
    # payloads, set depending on kind.  `domain` is set on every action that runs against a
    # libvirt domain (define, start, stop, destroy, attach, detach, and a resize that tells a
    # running guest); its `name` is the domain to act on.
    domain: DomainSpec | None = None
    disk: DiskSpec | None = None
    image_name: str | None = None  # RBD image this action creates/changes/removes
    parent: str | None = None  # "pool/image@snap" for clones
    source_path: str | None = None  # for IMPORT_IMAGE
    size_bytes: int | None = None
    meta: tuple[tuple[str, str], ...] = ()  # RBD image-meta to write


@dataclass(frozen=True)
class Blocked:
    """A resource the plan deliberately does not act on, with the reason (shown in status)."""

    resource: str
    reason: str  # e.g. "Unschedulable", "ShrinkRefused", "HostUnknown", "DeleteGuard"
    message: str


class ChangeOp(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"


@dataclass(frozen=True)
class Change:
    """One resource's planned change as a whole, for display (`volctl plan`, status)."""

    resource: str
    op: ChangeOp
    before: str | None = None
    after: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    # resource -> assigned host / ids, so status can show placement even before execution
    placements: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    # one entry per resource with actions, in resource order (display only)
    changes: tuple[Change, ...] = ()
    # managed volumes no longer in the spec that are kept (reclaimPolicy Retain): "volume/NAME"
    released: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions
