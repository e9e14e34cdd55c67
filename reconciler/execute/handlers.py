"""One function per action kind: the backend calls that make it true, written as "ensure".

Every handler is idempotent, so a crash between any two calls is repaired by the next pass:
removing what is already gone is done, creating what already exists *with our mark* is
done, and a detach is only done once the disk has left the live domain.  Handlers raise
`reconciler.errors` only; `executor.py` turns them into `Outcome`s.  Nothing here chooses
what to do: the plan did that.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, assert_never

from reconciler.backends.protocols import Hypervisor, Storage
from reconciler.errors import Conflict, NotFound, Terminal, Transient
from reconciler.identity import META_NAME
from reconciler.observe.types import ObservedHost
from reconciler.plan.actions import Action, ActionKind

_T = TypeVar("_T")


class DetachPending(Transient):
    """The detach was requested but the disk is still in the live domain."""


class DeviceEvents:
    """Wakes detach waits early when a host reports a device removal.

    The controller feeds it from `Hypervisor.watch_events`; without events the waits simply
    poll.  A sequence number avoids missing an event that arrives between check and wait.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0

    def notify(self, host: str, kind: str, domain: str) -> None:
        del host, kind, domain  # any event is a reason to look again
        with self._cond:
            self._seq += 1
            self._cond.notify_all()

    def seq(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen, timeout=max(timeout, 0.0))


@dataclass
class Backends:
    """What handlers act on: one Hypervisor per Host name, and the RBD pool."""

    hypervisors: Mapping[str, Hypervisor]
    storage: Storage
    events: DeviceEvents = field(default_factory=DeviceEvents)
    detach_wait: float = 15.0  # seconds to wait for a detach to complete
    detach_poll: float = 0.5  # re-observe period while waiting (events cut it short)
    clock: Callable[[], float] = time.monotonic
    pool: str = "rbd"  # for image names given without their pool


def run_action(action: Action, b: Backends) -> None:
    """Make `action` true in the world, or raise a typed error."""
    kind = action.kind
    match kind:
        case ActionKind.IMPORT_IMAGE:
            _ensure_image(
                action,
                b.storage,
                lambda: b.storage.import_image(
                    _image(action), _req(action.source_path), _meta(action)
                ),
            )
        case ActionKind.CLONE_ROOT:
            _ensure_image(
                action,
                b.storage,
                lambda: b.storage.clone(
                    _req(action.parent), _image(action), _req(action.size_bytes), _meta(action)
                ),
            )
        case ActionKind.CREATE_VOLUME:
            _ensure_image(
                action,
                b.storage,
                lambda: b.storage.create(_image(action), _req(action.size_bytes), _meta(action)),
            )
        case ActionKind.RESIZE_VOLUME:
            b.storage.resize(_image(action), _req(action.size_bytes))
            if action.host is not None and action.domain is not None:
                hv = _hv(action, b)
                hv.resize_disk(action.domain.name, _rbd(action, b), _req(action.size_bytes))
        case ActionKind.SET_VOLUME_META:
            b.storage.set_meta(_image(action), _meta(action))
        case ActionKind.DELETE_ROOT | ActionKind.DELETE_VOLUME:
            _gone_is_done(lambda: b.storage.remove(_image(action)))
        case ActionKind.DEFINE_DOMAIN:
            _hv(action, b).define(_req(action.domain))
        case ActionKind.START_DOMAIN:
            with contextlib.suppress(Conflict):  # already running
                _hv(action, b).start(_domain_name(action))
        case ActionKind.STOP_DOMAIN:
            with contextlib.suppress(Conflict, NotFound):  # already off, or gone
                _hv(action, b).shutdown(_domain_name(action))
        case ActionKind.DESTROY_DOMAIN:
            _gone_is_done(lambda: _hv(action, b).destroy(_domain_name(action)))
        case ActionKind.ATTACH_VOLUME:
            _hv(action, b).attach_disk(_domain_name(action), _req(action.disk))
        case ActionKind.DETACH_VOLUME:
            _detach(action, b)
        case _:
            assert_never(kind)


def _detach(action: Action, b: Backends) -> None:
    hv = _hv(action, b)
    domain = _domain_name(action)
    rbd = _rbd(action, b)
    try:
        hv.detach_disk(domain, rbd)
    except NotFound:
        return  # the domain or the disk is already gone
    deadline = b.clock() + b.detach_wait
    while True:
        seen = b.events.seq()
        if not disk_present(hv.observe(), domain, rbd):
            return
        remaining = deadline - b.clock()
        if remaining <= 0:
            raise DetachPending(f"detach of {rbd} from {domain} requested; disk still present")
        b.events.wait(seen, min(b.detach_poll, remaining))


def disk_present(host: ObservedHost, domain: str, rbd_image: str) -> bool:
    if not host.reachable:
        raise Transient(f"host {host.name} unreachable: {host.reason}")
    dom = host.domain(domain)
    if dom is None:
        return False
    return any(d.rbd_image == rbd_image for d in dom.disks)


def _ensure_image(action: Action, storage: Storage, create: Callable[[], None]) -> None:
    """Create an RBD image; an existing image carrying our mark for this resource is done."""
    try:
        create()
    except Conflict as exc:
        name = _image(action)
        img = storage.observe().images.get(name)
        want = dict(action.meta).get(META_NAME)
        if img is not None and img.ours and (want is None or img.meta.get(META_NAME) == want):
            return
        raise Terminal(f"image {name} exists and is not ours: {exc}") from exc


def _gone_is_done(call: Callable[[], None]) -> None:
    try:
        call()
    except NotFound:
        return


def _hv(action: Action, b: Backends) -> Hypervisor:
    if action.host is None:
        raise Terminal(f"{action.id}: no host in the action")
    hv = b.hypervisors.get(action.host)
    if hv is None:
        raise Transient(f"no connection to host {action.host}")
    return hv


def _domain_name(action: Action) -> str:
    if action.domain is not None:
        return action.domain.name
    raise Terminal(f"{action.id}: no domain in the action")


def _rbd(action: Action, b: Backends) -> str:
    """ "pool/image" of the disk an attach/detach/resize is about."""
    if action.disk is not None:
        return action.disk.rbd_image
    name = _image(action)
    return name if "/" in name else f"{b.pool}/{name}"


def _image(action: Action) -> str:
    return _req(action.image_name)


def _meta(action: Action) -> dict[str, str]:
    return dict(action.meta)


def _req(value: _T | None) -> _T:
    if value is None:
        raise Terminal("action is missing a required field")
    return value
