"""Which spec store a command or a controller uses: a directory, or RADOS.

Why one place: `volctl apply/diff/delete/get/describe`, `volctl run` and `volctl store
migrate` must all agree on what `store:` in the config means.  A plain path is the embedded
directory store (one machine, `make demo`); `rados://POOL/NAMESPACE` is the shared store in
Ceph that any machine with the Ceph client config can use (docs/ha.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.config import CephConfig, Config
from reconciler.errors import SpecError
from reconciler.source.rados_store import RadosSpecStore, parse_url
from reconciler.source.store import SpecStore

if TYPE_CHECKING:
    from reconciler.backends.rados_objects import RadosNamespace

AnyStore = SpecStore | RadosSpecStore


def is_rados(url: str) -> bool:
    return url.startswith("rados://")


def refuse_unfenced(config: Config, what: str) -> None:
    """With a RADOS store only the lease holder may act: a one-shot pass next to running
    replicas would be a second actor, so it is refused (SpecError names the way out)."""
    if is_rados(config.store):
        raise SpecError(
            f"{what} would act without the leader lease of {config.store}; run "
            "`volctl run` replicas instead (docs/ha.md), or use `volctl plan` to preview"
        )


def open_store(config: Config, url: str | None = None) -> AnyStore:
    """The store at `url` (default: the config's `store`)."""
    where = url or config.store
    if not is_rados(where):
        return SpecStore(where)
    return RadosSpecStore(rados_namespace(config.ceph, where))


def rados_namespace(ceph: CephConfig, url: str) -> RadosNamespace:
    """A RadosNamespace for rados://POOL/NAMESPACE with the config's Ceph conf and user."""
    from reconciler.backends.rados_objects import RadosNamespace  # noqa: PLC0415 - librados

    pool, ns = parse_url(url)
    return RadosNamespace(ceph.conf, pool, ns, user=ceph.user)
