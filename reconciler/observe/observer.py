"""Observe every host and the storage pool at once, each under one deadline.

Why: a pass must see the whole world, quickly, and one slow or dead host must neither slow
the others down nor make the pass hang.  Every host and the storage are observed on their
own thread in parallel; whatever has not answered by the deadline is recorded as unknown
(`reachable=False` with the reason), never as empty, so the planner will neither duplicate
its VMs nor delete anything on its account.

A host whose previous observation is still stuck is not observed again (that would pile up
threads on a dead host); it stays unknown until the stuck call ends.  Threads are daemons,
so a hung library call can never keep the controller from exiting.

This module knows only the Protocols: no libvirt, rados or rbd import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reconciler.backends.protocols import Hypervisor, Storage
from reconciler.observe.types import ObservedHost, ObservedStorage, ObservedWorld

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
        storage_task = self._launch_storage(external_snapshots)
        hosts = self._hosts(self._launch_hosts(), deadline)
        return ObservedWorld(hosts=hosts, storage=self._storage_result(storage_task, deadline))

    def observe_hosts(self) -> dict[str, ObservedHost]:
        """Every host, without the pool (a pass's verification, whose pool is observed as
        soon as the pass stopped changing it: `observe_storage`)."""
        deadline = time.monotonic() + self.timeout
        return self._hosts(self._launch_hosts(), deadline)

    def observe_storage(self, external_snapshots: tuple[str, ...] = ()) -> ObservedStorage:
        """The pool alone, under the same deadline and the same no-pile-up rule."""
        deadline = time.monotonic() + self.timeout
        return self._storage_result(self._launch_storage(external_snapshots), deadline)

    def _launch_storage(self, external_snapshots: tuple[str, ...]) -> _Task[object] | None:
        return self._launch(_STORAGE, lambda: self._storage.observe(external_snapshots))

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
