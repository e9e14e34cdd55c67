"""Observe every host and the storage pool at once, each under one deadline.

Why: a pass must see the whole world, quickly, and one slow or dead host must neither slow
the others down nor make the pass hang.  Every host and the storage are observed on their
own thread in parallel; whatever has not answered by the deadline is recorded as unknown
(`reachable=False` with the reason), never as empty, so the planner will neither duplicate
its VMs nor delete anything on its account.

A host whose previous observation is still stuck is not observed again (that would pile up
threads on a dead host); it stays unknown until the stuck call ends.  Threads are daemons,
so a hung library call can never keep the controller from exiting.

The storage is told which images running domains hold (`held`: image -> the domains), so it
may serve those from its last read and read only the images whose attachment is in doubt.
Hosts and storage run at once, so the storage gets the holdings of the previous observation;
when this one shows other holders for an image the storage took from its cache (a domain
gone, stopped or on a host now unknown), the storage is asked again with the holdings just
seen, before the deadline: no full observation reports watchers the storage did not read
for an image no running domain holds.  `observe_storage` alone (a pass's verification) uses
the latest holdings `observe`/`observe_hosts` saw; a domain that went away since then may
show its old watcher until the next pass, which only blocks, never acts.

This module knows only the Protocols: no libvirt, rados or rbd import.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from reconciler.backends.protocols import Hypervisor, Storage
from reconciler.observe.types import DomainState, ObservedHost, ObservedStorage, ObservedWorld

T = TypeVar("T")
_STORAGE = "\0storage"


@dataclass
class _Task(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


def _start(fn: Callable[[], T], name: str) -> _Task[T]:
    task: _Task[T] = _Task()

    def body() -> None:
        try:
            task.result = fn()
        except BaseException as exc:  # noqa: BLE001 - reported as "unknown" with the reason
            task.error = exc
        finally:
            task.done.set()

    threading.Thread(target=body, name=f"observe-{name}", daemon=True).start()
    return task


class Observer:
    """Observes a set of hypervisors and one storage backend in parallel."""

    def __init__(
        self,
        hypervisors: Mapping[str, Hypervisor],
        storage: Storage,
        *,
        timeout: float = 30.0,
    ) -> None:
        self._hypervisors = dict(hypervisors)
        self._storage = storage
        self.timeout = timeout
        self._lock = threading.Lock()
        self._inflight: dict[str, _Task[object]] = {}
        self._held: dict[str, str] | None = None  # "pool/image" -> holders, last observation
        self._pool: str | None = None

    @property
    def hypervisors(self) -> Mapping[str, Hypervisor]:
        return dict(self._hypervisors)

    def set_hypervisors(self, hypervisors: Mapping[str, Hypervisor]) -> None:
        """Replace the host set (the spec's Host documents changed)."""
        with self._lock:
            self._hypervisors = dict(hypervisors)

    def _launch(self, key: str, fn: Callable[[], object]) -> _Task[object] | None:
        """Start a task unless the previous one for `key` is still running (then None)."""
        with self._lock:
            prev = self._inflight.get(key)
            if prev is not None and not prev.done.is_set():
                return None
            task = _start(fn, key.strip("\0"))
            self._inflight[key] = task
            return task

    def observe(self, external_snapshots: tuple[str, ...] = ()) -> ObservedWorld:
        deadline = time.monotonic() + self.timeout
        held_before = _in_pool(self._held, self._pool)
        storage_task = self._launch_storage(external_snapshots, held_before)
        hosts = self._hosts(self._launch_hosts(), deadline)
        storage = self._storage_result(storage_task, deadline)
        held = held_images(hosts)
        if storage.reachable and held_before is not None:
            now = _in_pool(held, storage.pool) or {}
            if any(n in storage.images and now.get(n) != t for n, t in held_before.items()):
                again = self._launch_storage(external_snapshots, now)
                first, storage = storage, self._storage_result(again, deadline)
                calls = Counter(first.calls)
                calls.update(storage.calls)
                storage = replace(storage, calls=dict(calls))
        if storage.reachable:
            self._held, self._pool = held, storage.pool
        return ObservedWorld(hosts=hosts, storage=storage)

    def observe_hosts(self) -> dict[str, ObservedHost]:
        """Every host, without the pool (a pass's verification, whose pool is observed as
        soon as the pass stopped changing it: `observe_storage`)."""
        deadline = time.monotonic() + self.timeout
        hosts = self._hosts(self._launch_hosts(), deadline)
        self._held = held_images(hosts)
        return hosts

    def observe_storage(self, external_snapshots: tuple[str, ...] = ()) -> ObservedStorage:
        """The pool alone, under the same deadline and the same no-pile-up rule."""
        deadline = time.monotonic() + self.timeout
        held = _in_pool(self._held, self._pool)
        return self._storage_result(self._launch_storage(external_snapshots, held), deadline)

    def _launch_storage(
        self, external_snapshots: tuple[str, ...], held: Mapping[str, str] | None
    ) -> _Task[object] | None:
        return self._launch(_STORAGE, lambda: self._storage.observe(external_snapshots, held))

    def _launch_hosts(self) -> dict[str, _Task[object] | None]:
        with self._lock:
            hypervisors = dict(self._hypervisors)
        return {name: self._launch(name, hv.observe) for name, hv in hypervisors.items()}

    def _hosts(
        self, host_tasks: Mapping[str, _Task[object] | None], deadline: float
    ) -> dict[str, ObservedHost]:
        hosts: dict[str, ObservedHost] = {}
        for name, task in host_tasks.items():
            reason = self._wait(task, deadline)
            result = task.result if task is not None else None
            if reason is None and isinstance(result, ObservedHost):
                hosts[name] = result
            else:
                hosts[name] = ObservedHost(name=name, reachable=False, reason=reason)
        return hosts

    def _storage_result(self, task: _Task[object] | None, deadline: float) -> ObservedStorage:
        reason = self._wait(task, deadline)
        result = task.result if task is not None else None
        if reason is None and isinstance(result, ObservedStorage):
            return result
        return ObservedStorage(reachable=False, reason=f"storage: {reason}")

    def _wait(self, task: _Task[object] | None, deadline: float) -> str | None:
        """None when the task produced a result, else why it did not."""
        if task is None:
            return "the previous observation is still running (host hung?)"
        if not task.done.wait(max(0.0, deadline - time.monotonic())):
            return f"observe did not finish within {self.timeout:g}s"
        if task.error is not None:
            return f"observe failed: {type(task.error).__name__}: {task.error}"
        if task.result is None:
            return "observe returned nothing"
        return None


_RUNNING = (DomainState.RUNNING, DomainState.PAUSED)  # a qemu process has the disks open


def held_images(hosts: Mapping[str, ObservedHost]) -> dict[str, str]:
    """ "pool/image" -> "host/uuid,..." for every RBD disk of a running domain on a reachable
    host (ours or foreign: either explains the image's qemu watcher)."""
    holders: dict[str, list[str]] = {}
    for name, host in hosts.items():
        if not host.reachable:
            continue
        for dom in host.domains:
            if dom.state not in _RUNNING:
                continue
            for disk in dom.disks:
                if disk.rbd_image is not None:
                    holders.setdefault(disk.rbd_image, []).append(f"{name}/{dom.uuid}")
    return {image: ",".join(sorted(who)) for image, who in holders.items()}


def _in_pool(held: Mapping[str, str] | None, pool: str | None) -> dict[str, str] | None:
    """The holdings of images in POOL, by image name (what `Storage.observe` takes)."""
    if held is None or pool is None:
        return None
    prefix = f"{pool}/"
    return {k.removeprefix(prefix): v for k, v in held.items() if k.startswith(prefix)}
