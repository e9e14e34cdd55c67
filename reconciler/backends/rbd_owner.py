"""Which installation an RBD pool backend belongs to, and whose images are whose.

Why a module of its own: the installation's default name, `<fsid>/<pool>`, needs the Ceph
cluster's fsid, which only a connection knows, while every host's observe needs the name
before it can tell our domains from another installation's (`identity.Installation`).  The
fsid is learnt from the backend's first connection (`Rados.get_fsid()` reads the monmap the
client already has: no extra round trip) and kept for the life of the process; the same
cluster gives every replica and every restart the same name.  Until then `get()` connects,
one caller at a time, and while Ceph cannot be reached it fails fast for `RETRY` seconds
instead of letting every host's observe wait out its own connect timeout.  An explicit
`installation:` needs none of this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from reconciler.errors import BackendError, Transient
from reconciler.identity import META_INSTALLATION, Installation, default_installation

RETRY = 5.0  # seconds a failed connect for the fsid is answered from memory


class Owner:
    """This pool backend's installation: explicit, or `<fsid>/<pool>` once the fsid is known."""

    def __init__(self, pool: str, explicit: str | None, connect: Callable[[], None]) -> None:
        self.pool = pool
        self._explicit = explicit
        self._connect = connect  # any call that connects (and so calls `learn`)
        self._fsid: str | None = None
        self._lock = threading.Lock()
        self._failed: tuple[float, str] | None = None  # (monotonic time, why)

    @property
    def known(self) -> bool:
        return self._explicit is not None or self._fsid is not None

    def learn(self, fsid: str) -> None:
        """The fsid of a fresh connection (the first one wins; it never changes)."""
        if self._fsid is None:
            self._fsid = fsid

    def get(self) -> Installation:
        """Our installation; connects first if the default name still lacks the fsid."""
        if not self.known:
            with self._lock:
                if not self.known:
                    self._connect_once()
        return Installation(self.name(), self.pool)

    def _connect_once(self) -> None:
        failed = self._failed
        if failed is not None and time.monotonic() - failed[0] < RETRY:
            raise Transient(failed[1])
        try:
            self._connect()
        except BackendError as exc:
            why = (
                f"installation name unknown until Ceph is reached (the default is "
                f"<fsid>/{self.pool}; `installation:` in the config needs no Ceph): {exc}"
            )
            self._failed = (time.monotonic(), why)
            raise Transient(why) from exc
        self._failed = None

    def name(self) -> str:
        """The name, once known (always inside a call that has connected)."""
        if self._explicit is not None:
            return self._explicit
        if self._fsid is None:
            raise Transient("installation name unknown until Ceph is reached")
        return default_installation(self._fsid, self.pool)

    def other(self, meta: Mapping[str, str]) -> str | None:
        """The other installation that image-meta names, if any (None: ours or legacy)."""
        marked_by = meta.get(META_INSTALLATION)
        return marked_by if marked_by is not None and marked_by != self.name() else None
