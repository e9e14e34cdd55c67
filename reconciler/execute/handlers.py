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
from typing import assert_never

from reconciler.backends.protocols import Hypervisor, Storage
from reconciler.errors import Conflict, NotFound, Terminal, Transient
from reconciler.identity import META_NAME
from reconciler.observe.types import ObservedHost
from reconciler.plan.actions import (
    Action,
    AttachNic,
    AttachVolume,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    DeleteRoot,
    DeleteVolume,
    DestroyDomain,
    DetachNic,
    DetachVolume,
    ImportImage,
    Meta,
    ResizeVolume,
    SetVolumeMeta,
    StartDomain,
    StopDomain,
)


class DetachPending(Transient):
    """The detach was requested but the device is still in the live domain.

    `still_present` looks again (one observe of the host); the executor parks the action
    and calls it on device events, without holding a slot (`detach_watch.py`)."""

    def __init__(self, message: str, still_present: Callable[[], bool]) -> None:
        super().__init__(message)
        self.still_present = still_present


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
    detach_wait: float = 15.0  # longest a run watches a requested detach (slot-free)
    detach_poll: float = 0.5  # re-observe period while watching (device events cut it short)
    detach_linger: float = 2.0  # longest a run waits for a detach once nothing else runs
    detach_reask: float = 10.0  # a requested detach is asked again only after this
    clock: Callable[[], float] = time.monotonic
    pool: str = "rbd"  # for image names given without their pool


def run_action(action: Action, b: Backends) -> None:
    """Make `action` true in the world, or raise a typed error."""
    st = b.storage
    match action:
        case ImportImage(image_name=name, source=source, meta=meta):
            _ensure_image(name, meta, st, lambda: st.import_image(name, source, dict(meta)))
        case CloneRoot(image_name=name, parent=parent, size_bytes=size, meta=meta):
            _ensure_image(name, meta, st, lambda: st.clone(parent, name, size, dict(meta)))
        case CreateVolume(image_name=name, size_bytes=size, meta=meta):
            _ensure_image(name, meta, st, lambda: st.create(name, size, dict(meta)))
        case ResizeVolume(image_name=name, size_bytes=size):
            st.resize(name, size)
            if action.host is not None and action.domain is not None:  # tell the running guest
                hv = _hv(action.host, b)
                hv.resize_disk(action.domain.name, _qualified(name, b), size)
        case SetVolumeMeta(image_name=name, meta=meta):
            st.set_meta(name, dict(meta))
        case DeleteRoot(image_name=name) | DeleteVolume(image_name=name):
            _gone_is_done(lambda: st.remove(name))
        case DefineDomain(host=host, domain=domain):
            _hv(host, b).define(domain)
        case StartDomain(host=host, domain=domain):
            with contextlib.suppress(Conflict):  # already running
                _hv(host, b).start(domain.name)
        case StopDomain(host=host, domain=domain):
            with contextlib.suppress(Conflict, NotFound):  # already off, or gone
                _hv(host, b).shutdown(domain.name)
        case DestroyDomain(host=host, domain=domain):
            _gone_is_done(lambda: _hv(host, b).destroy(domain.name))
        case AttachVolume(host=host, domain=domain, disk=disk):
            _hv(host, b).attach_disk(domain.name, disk)
        case DetachVolume():
            _detach(action, b)
        case AttachNic(host=host, domain=domain, nic=nic):
            _hv(host, b).attach_nic(domain.name, nic)
        case DetachNic():
            _detach_nic(action, b)
        case _:
            assert_never(action)


def _detach(action: DetachVolume, b: Backends) -> None:
    hv = _hv(action.host, b)
    domain = action.domain.name
    rbd = action.disk.rbd_image
    try:
        hv.detach_disk(domain, rbd)
    except NotFound:
        return  # the domain or the disk is already gone
    _gone_or_pending(hv, f"detach of {rbd} from {domain}", lambda h: disk_present(h, domain, rbd))


def _detach_nic(action: DetachNic, b: Backends) -> None:
    hv = _hv(action.host, b)
    domain, mac = action.domain.name, action.mac
    try:
        hv.detach_nic(domain, mac)
    except NotFound:
        return  # the domain or the NIC is already gone
    _gone_or_pending(
        hv, f"unplug of NIC {mac} from {domain}", lambda h: nic_present(h, domain, mac)
    )


def _gone_or_pending(hv: Hypervisor, what: str, present: Callable[[ObservedHost], bool]) -> None:
    """Done if the device already left the live domain; else `DetachPending`, which the
    executor watches without a slot (`detach_watch.py`).  Waiting here held a slot."""
    if not present(hv.observe()):
        return
    raise DetachPending(
        f"{what} requested; the device is still present", lambda: present(hv.observe())
    )


def nic_present(host: ObservedHost, domain: str, mac: str) -> bool:
    if not host.reachable:
        raise Transient(f"host {host.name} unreachable: {host.reason}")
    dom = host.domain(domain)
    return dom is not None and any(n.mac == mac for n in dom.nics)


def disk_present(host: ObservedHost, domain: str, rbd_image: str) -> bool:
    if not host.reachable:
        raise Transient(f"host {host.name} unreachable: {host.reason}")
    dom = host.domain(domain)
    if dom is None:
        return False
    return any(d.rbd_image == rbd_image for d in dom.disks)


def _ensure_image(name: str, meta: Meta, storage: Storage, create: Callable[[], None]) -> None:
    """Create an RBD image; an existing image carrying our mark for this resource is done."""
    try:
        create()
    except Conflict as exc:
        img = storage.observe().images.get(name)
        want = dict(meta).get(META_NAME)
        if img is not None and img.ours and (want is None or img.meta.get(META_NAME) == want):
            return
        raise Terminal(f"image {name} exists and is not ours: {exc}") from exc


def _gone_is_done(call: Callable[[], None]) -> None:
    try:
        call()
    except NotFound:
        return


def _hv(host: str, b: Backends) -> Hypervisor:
    hv = b.hypervisors.get(host)
    if hv is None:
        raise Transient(f"no connection to host {host}")
    return hv


def _qualified(name: str, b: Backends) -> str:
    """ "pool/image" of an image given by name in the managed pool."""
    return name if "/" in name else f"{b.pool}/{name}"
