"""The closed set of things volctl ever does, as data: one frozen class per kind.

Like terraform's `plans.Action`, every change the executor can make is one of these values.
Each class carries exactly the payload its handler needs, as required typed fields, so mypy
proves that a handler never meets an action without, say, its domain or its size; the
executor and the handlers dispatch with an exhaustive `match` over `Action`.

What every action shares lives in `ActionBase`: the resource it changes, the host it runs
on (for per-host concurrency limits), the ids of actions that must finish first, and a
before/after/reason for display only (the executor never reads them).  The id is derived,
never given: `kind:resource`, plus `@qualifier` when one resource has several actions of a
kind (a duplicate domain per host, a detach per domain), so plans stay deterministic and
status, logs and retries can key on it.

`ActionKind` names the kinds for logs, metrics, status and benches; every class knows its
own as the class variable `kind`.  Why a payload is shaped as it is:

- `domain` is the whole `DomainSpec` (not only its name) because status reads the spec
  hash a plan drives a VM towards from it;
- `ResizeVolume.host`/`domain` are set together, only when a running guest must be told
  that its disk grew.

Adding a kind: its `ActionKind`, a class here and a member of `Action`; mypy then points at
every exhaustive `match` (execute/handlers, plan/render, status/kinds), and
tests/plan/test_actions.py at the lookup tables (draft order, render symbol, status event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeAlias

from reconciler.payload import DiskSpec, DomainSpec, ImageFile, NicSpec
from reconciler.plan.reasons import BlockReason

Meta = tuple[tuple[str, str], ...]  # RBD image-meta to write, in order


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
    ATTACH_NIC = "attach-nic"  # interface hot-plug (live if running) and persistent config
    DETACH_NIC = "detach-nic"  # unplug request; done once the NIC left the live domain


def action_id(kind: ActionKind, resource: str, qualifier: str | None = None) -> str:
    """The deterministic id f"{kind}:{resource}", plus "@qualifier" when given."""
    base = f"{kind}:{resource}"  # a StrEnum formats as its value
    return base if qualifier is None else f"{base}@{qualifier}"


@dataclass(frozen=True, kw_only=True)
class ActionBase:
    """The fields every action has; `id` is computed from kind, resource and qualifier."""

    kind: ClassVar[ActionKind]

    resource: str  # "vm/NAME", "volume/NAME", "attachment/NAME", "image/NAME"
    qualifier: str | None = None  # tells apart several actions of one kind on one resource
    host: str | None = None  # Host resource name, for libvirt actions
    depends_on: tuple[str, ...] = ()
    before: str | None = None  # display only
    after: str | None = None  # display only
    reason: str = ""  # display only
    id: str = field(init=False)  # unique in a plan

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", action_id(self.kind, self.resource, self.qualifier))


# --- RBD images ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImportImage(ActionBase):
    """Import a local file, or a file streamed over SSH, as RBD image `image_name` with its
    protected base snapshot."""

    kind: ClassVar[ActionKind] = ActionKind.IMPORT_IMAGE
    image_name: str
    source: ImageFile
    meta: Meta


@dataclass(frozen=True, kw_only=True)
class CloneRoot(ActionBase):
    """Clone `parent` ("pool/image@snap") as a VM's root disk of at least `size_bytes`."""

    kind: ClassVar[ActionKind] = ActionKind.CLONE_ROOT
    image_name: str
    parent: str
    size_bytes: int
    meta: Meta


@dataclass(frozen=True, kw_only=True)
class DeleteRoot(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DELETE_ROOT
    image_name: str


@dataclass(frozen=True, kw_only=True)
class CreateVolume(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.CREATE_VOLUME
    image_name: str
    size_bytes: int
    meta: Meta


@dataclass(frozen=True, kw_only=True)
class ResizeVolume(ActionBase):
    """Grow an RBD image (a volume or a root disk); with host and domain, tell the guest."""

    kind: ClassVar[ActionKind] = ActionKind.RESIZE_VOLUME
    image_name: str
    size_bytes: int
    domain: DomainSpec | None = None  # the running domain to tell; set with `host`

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.host is None) != (self.domain is None):
            msg = f"{self.id}: host and domain are given together or not at all"
            raise ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class SetVolumeMeta(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.SET_VOLUME_META
    image_name: str
    meta: Meta


@dataclass(frozen=True, kw_only=True)
class DeleteVolume(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DELETE_VOLUME
    image_name: str


# --- libvirt domains (`domain.name` is the domain acted on) ---------------------------------


@dataclass(frozen=True, kw_only=True)
class DefineDomain(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DEFINE_DOMAIN
    host: str
    domain: DomainSpec


@dataclass(frozen=True, kw_only=True)
class StartDomain(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.START_DOMAIN
    host: str
    domain: DomainSpec


@dataclass(frozen=True, kw_only=True)
class StopDomain(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.STOP_DOMAIN
    host: str
    domain: DomainSpec


@dataclass(frozen=True, kw_only=True)
class DestroyDomain(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DESTROY_DOMAIN
    host: str
    domain: DomainSpec


@dataclass(frozen=True, kw_only=True)
class AttachVolume(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.ATTACH_VOLUME
    host: str
    domain: DomainSpec
    disk: DiskSpec


@dataclass(frozen=True, kw_only=True)
class DetachVolume(ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DETACH_VOLUME
    host: str
    domain: DomainSpec
    disk: DiskSpec


@dataclass(frozen=True, kw_only=True)
class AttachNic(ActionBase):
    """Plug `nic` into the domain: live when it runs, and into its persistent config."""

    kind: ClassVar[ActionKind] = ActionKind.ATTACH_NIC
    host: str
    domain: DomainSpec
    nic: NicSpec


@dataclass(frozen=True, kw_only=True)
class DetachNic(ActionBase):
    """Unplug the NIC with MAC `mac` (live and persistent); the guest acknowledges it."""

    kind: ClassVar[ActionKind] = ActionKind.DETACH_NIC
    host: str
    domain: DomainSpec
    mac: str


Action: TypeAlias = (
    ImportImage
    | CloneRoot
    | DeleteRoot
    | CreateVolume
    | ResizeVolume
    | SetVolumeMeta
    | DeleteVolume
    | DefineDomain
    | StartDomain
    | StopDomain
    | DestroyDomain
    | AttachVolume
    | DetachVolume
    | AttachNic
    | DetachNic
)


@dataclass(frozen=True)
class Blocked:
    """A resource the plan deliberately does not act on, with the reason (shown in status)."""

    resource: str
    reason: BlockReason
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
