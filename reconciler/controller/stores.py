"""Opening the configured spec store, of either kind: a directory, or `rados://POOL/NS`.

Why in the controller layer: a RADOS store talks to Ceph through `backends.rados_objects`,
and the source layer sits below the backends; the controller and the CLI open the store here
and hand it to the source factory (`source.factory.build_source(store=...)`).  The RADOS
side is imported only for a `rados://` store: librados and libvirt's bindings cost a CLI
command against a directory store a third of its start-up (bench B4).
"""

from __future__ import annotations

from reconciler.config import Config
from reconciler.source.stores import AnyStore, is_rados, local_store


def open_store(config: Config, url: str | None = None) -> AnyStore:
    """The store at `url` (default: the config's `store`)."""
    where = url or config.store
    if not is_rados(where):
        return local_store(config, where)
    # lazy: librados and libvirt are not loaded for a directory store (module docstring)
    from reconciler.backends.rados_objects import RadosNamespace  # noqa: PLC0415
    from reconciler.source.rados_store import RadosSpecStore, parse_url  # noqa: PLC0415

    pool, ns = parse_url(where)
    return RadosSpecStore(RadosNamespace(config.ceph.conf, pool, ns, user=config.ceph.user))
