"""The live backends of a controller: one Hypervisor per desired Host, and the RBD pool.

Which hosts exist is part of the desired state, so connections follow it: `sync(desired)`
opens hosts that appeared (and registers the event callback on them) and closes hosts that
left the spec.  `observe(desired)` gives one `ObservedWorld`, every host in parallel with a
bound on the whole, so a hung host is reported as unknown instead of stalling the pass.
`StaticConnections` serves tests and simulations with a fixed set of backends;
`reconciler/controller/wiring.py` builds the real one from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from reconciler.backends.protocols import DomainEventCallback, Hypervisor, Storage
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedHost, ObservedStorage, ObservedWorld


class Connections(Protocol):
    def sync(self, desired: DesiredState) -> None:
        """Open new hosts, close removed ones."""
        ...

    def hypervisors(self) -> Mapping[str, Hypervisor]: ...

    def storage(self) -> Storage: ...

    def observe(self, desired: DesiredState) -> ObservedWorld: ...

    def observe_hosts(self, desired: DesiredState) -> dict[str, ObservedHost]:
        """`observe(desired).hosts` without observing the pool."""
        ...

    def observe_storage(self, desired: DesiredState) -> ObservedStorage:
        """`observe(desired).storage` without observing the hosts."""
        ...

    def close(self) -> None: ...


def external_snapshots(desired: DesiredState) -> tuple[str, ...]:
    """Snapshots that Image sources name (pool/image@snap), for the storage observation."""
    return tuple(sorted({i.source.rbd for i in desired.images.values() if i.source.rbd}))


def observe_parallel(
    hypervisors: Mapping[str, Hypervisor],
    storage: Storage | None,
    desired: DesiredState,
    *,
    timeout: float = 30.0,
) -> ObservedWorld:
    """Observe every desired host and the pool at once; a host that fails is unknown.
    Without `storage` only the hosts are observed (the pool reads "not observed")."""
    names = sorted(desired.hosts)
    pool = ThreadPoolExecutor(max_workers=max(1, min(32, len(names) + 1)))
    try:
        futs = {n: pool.submit(hypervisors[n].observe) for n in names if n in hypervisors}
        sfut = pool.submit(storage.observe, external_snapshots(desired)) if storage else None
        everything: list[Future[Any]] = [*futs.values(), *([sfut] if sfut else [])]
        wait(everything, timeout=timeout)
        hosts: dict[str, ObservedHost] = {}
        for n in names:
            fut = futs.get(n)
            if fut is None:
                hosts[n] = ObservedHost(n, reachable=False, reason="no connection")
            elif not fut.done():
                hosts[n] = ObservedHost(
                    n, reachable=False, reason=f"observe timed out ({timeout}s)"
                )
            elif fut.exception() is not None:
                hosts[n] = ObservedHost(n, reachable=False, reason=str(fut.exception()))
            else:
                hosts[n] = fut.result()
        if sfut is None:
            st = ObservedStorage(reachable=False, reason="not observed")
        elif not sfut.done():
            st = ObservedStorage(reachable=False, reason=f"observe timed out ({timeout}s)")
        elif sfut.exception() is not None:
            st = ObservedStorage(reachable=False, reason=str(sfut.exception()))
        else:
            st = sfut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung call must not stall the pass
    return ObservedWorld(hosts=hosts, storage=st)


class StaticConnections:
    """A fixed set of backends (tests, simulations, benchmarks)."""

    def __init__(
        self,
        hypervisors: Mapping[str, Hypervisor],
        storage: Storage,
        *,
        on_event: DomainEventCallback | None = None,
        observe: Callable[[DesiredState], ObservedWorld] | None = None,
    ) -> None:
        self._hv = dict(hypervisors)
        self._storage = storage
        self._observe = observe
        if on_event is not None:
            for hv in self._hv.values():
                hv.watch_events(on_event)

    def sync(self, desired: DesiredState) -> None:
        del desired

    def hypervisors(self) -> Mapping[str, Hypervisor]:
        return self._hv

    def storage(self) -> Storage:
        return self._storage

    def observe(self, desired: DesiredState) -> ObservedWorld:
        if self._observe is not None:
            return self._observe(desired)
        return observe_parallel(self._hv, self._storage, desired)

    def observe_hosts(self, desired: DesiredState) -> dict[str, ObservedHost]:
        if self._observe is not None:
            return dict(self._observe(desired).hosts)
        return dict(observe_parallel(self._hv, None, desired).hosts)

    def observe_storage(self, desired: DesiredState) -> ObservedStorage:
        if self._observe is not None:
            return self._observe(desired).storage
        return observe_parallel({}, self._storage, desired).storage

    def close(self) -> None:
        for hv in self._hv.values():
            hv.close()
        self._storage.close()
