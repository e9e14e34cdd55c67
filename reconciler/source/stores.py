"""Which spec store a command or a controller uses: a directory, or RADOS.

Why one place: `volctl apply/diff/delete/get/describe`, `volctl run` and `volctl store
migrate` must all agree on what `store:` in the config means.  A plain path is the embedded
directory store (one machine, `make demo`); `rados://POOL/NAMESPACE` is the shared store in
Ceph that any machine with the Ceph client config can use (docs/ha.md).  Opening a RADOS
store needs the backends, a layer above this one: `controller/stores.py` does that.
"""

from __future__ import annotations

from reconciler.config import Config
from reconciler.errors import SpecError
from reconciler.source.rados_store import RadosSpecStore
from reconciler.source.store import SpecStore

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


def local_store(config: Config, url: str | None = None) -> SpecStore:
    """The directory store at `url` (default: the config's `store`).  A `rados://` store needs
    the Ceph client, which this layer may not import: `controller.stores.open_store` opens
    either kind, and the controller and the CLI pass it in."""
    where = url or config.store
    if is_rados(where):
        raise SpecError(f"store {where}: open it with reconciler.controller.stores.open_store")
    return SpecStore(where)
