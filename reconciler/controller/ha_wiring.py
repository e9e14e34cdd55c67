"""From a Config with a RADOS store to a running HA replica (`volctl run` with `rados://`).

Why apart from `wiring.py`: a replica builds a *new* runtime for every term as leader (fresh
Ceph and libvirt connections, fenced backends, a new source), and needs the control objects
(lease, status, heartbeats) in the store's own pool and namespace.  One Ceph connection
carries those control objects; its address is what a successor blocklists.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from reconciler.backends.rados_lease import RadosLease
from reconciler.backends.rados_objects import RadosNamespace
from reconciler.config import Config
from reconciler.controller.factory import storage_for
from reconciler.controller.fencing import Gate
from reconciler.controller.leadership import LeaseSettings
from reconciler.controller.replica import Replica, ReplicaSettings
from reconciler.controller.wiring import Runtime, build_runtime
from reconciler.source.protocol import Source
from reconciler.source.rados_store import parse_url
from reconciler.status.store import StatusStore


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def build_replica(
    config: Config,
    source_factory: Callable[[], Source],
    *,
    replica_id: str | None = None,
    lease: float | None = None,
    runtime: Callable[..., Runtime] = build_runtime,
    **runtime_kwargs: object,
) -> Replica:
    pool, ns = parse_url(config.store)
    settings = LeaseSettings(lease=lease or config.lease)
    op_timeout = max(1.0, settings.lease / 3)
    control = RadosNamespace(
        config.ceph.conf,
        pool,
        ns,
        user=config.ceph.user,
        timeout=op_timeout,
        connect_timeout=op_timeout,
    )

    def build(
        status: StatusStore, gate: Gate, epoch: Callable[[], int], on_connect: Callable[[str], None]
    ) -> Runtime:
        storage = storage_for(config.ceph, installation=config.installation)
        logged = storage.connect_hook

        def hook(addr: str) -> None:  # every connection is logged, recorded and gated (docs/ha.md)
            if logged is not None:
                logged(addr)
            on_connect(addr)

        storage.connect_hook = hook
        return runtime(
            config,
            source_factory(),
            status=status,
            fence=(gate, epoch),
            storage=storage,
            **runtime_kwargs,
        )

    return Replica(
        ReplicaSettings(replica_id or default_replica_id(), settings, store=config.store),
        RadosLease(control),
        control,
        build,
    )
