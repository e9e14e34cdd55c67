"""Checks on Ceph as the configured cephx user: monitors answer, the pool exists, and the
caps allow every RBD operation volctl and its guests make (create, image-meta, the
exclusive lock, snapshot/protect/clone, blocklisting dead clients, remove).

Why by doing and not by reading caps: see reconciler/backends/probe_ceph.py.  Each step is
its own row, so a read-only user shows exactly which cap is missing; steps that need the
scratch image are skipped (not failed) when it could not be made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.backends.probe_ceph import CephProbe, ProbeError
from reconciler.config import CephConfig
from reconciler.doctor.result import CheckResult, Status, failed, passed, skipped


def _caps_fix(ceph: CephConfig) -> str:
    return (
        f"grant the RBD profile: ceph auth caps client.{ceph.user} mon 'profile rbd' "
        f"osd 'profile rbd pool={ceph.pool}'"
    )


class CephChecks:
    """Runs the Ceph checks in order; `scratch` is a pool/image a host probe may open while
    the checks are in progress (None once it is gone or if it was never made)."""

    def __init__(self, ceph: CephConfig, timeout: float = 10.0) -> None:
        self.ceph = ceph
        self.results: list[CheckResult] = []
        self.probe = CephProbe(ceph.conf, ceph.user, ceph.pool, timeout)
        self.scratch: str | None = None
        self._target = f"client.{ceph.user}"

    def _step(self, check: str, target: str, fn: Callable[[], str], fix: str) -> bool:
        try:
            detail = fn()
        except ProbeError as exc:
            self.results.append(failed(check, target, str(exc), fix))
            return False
        self.results.append(passed(check, target, detail))
        return True

    def _skip(self, checks: tuple[str, ...], why: str) -> None:
        for check in checks:
            self.results.append(skipped(check, f"pool {self.ceph.pool}", why))

    @contextmanager
    def scratch_image(self) -> Iterator[str | None]:
        """Connect, check the pool, create the scratch image and prove the caps on it; yield
        'pool/image' (or None) for the host probes; remove it at the end (the `remove` row)."""
        c, p = self.ceph, self.probe
        pool = f"pool {c.pool}"
        caps = _caps_fix(c)
        blocklist_fix = f"missing mon cap 'profile rbd' (it allows osd blocklist add): {caps}"
        try:
            if not self._step(
                "ceph.monitors",
                self._target,
                lambda: f"cluster {p.connect()} answers",
                f"check `mon host` in {c.conf}, that the keyring for client.{c.user} is "
                "readable by this user, and that this node reaches the monitors",
            ):
                self._skip((*_POOL, *_CAPS), "the monitors did not answer")
                yield None
                return
            if not self._step(
                "ceph.pool",
                pool,
                lambda: _done(p.open_pool, "exists"),
                f"create it: ceph osd pool create {c.pool} && rbd pool init "
                f"{c.pool}; or set ceph.pool in the config",
            ):
                self._skip(_CAPS, "the pool is not usable")
                yield None
                return
            made = self._step(
                "ceph.caps.create",
                pool,
                lambda: _done(p.create, f"created scratch image {p.scratch}"),
                f"missing cap: osd 'profile rbd pool={c.pool}' (write to the pool); {caps}",
            )
            if made:
                self._step(
                    "ceph.caps.meta",
                    pool,
                    lambda: _done(p.meta, "image-meta set, read and removed"),
                    f"missing osd cap for image-meta: {caps}",
                )
                self._step(
                    "ceph.caps.lock",
                    pool,
                    lambda: _done(p.lock, "exclusive lock taken and released"),
                    f"missing osd class cap for locks: {caps}",
                )
                self._step(
                    "ceph.caps.clone",
                    pool,
                    lambda: _done(p.clone, "snapshot protected and cloned, then removed"),
                    f"missing cap to clone: {caps}",
                )
            else:
                self._skip(
                    ("ceph.caps.meta", "ceph.caps.lock", "ceph.caps.clone"),
                    "no scratch image (create failed)",
                )
            self._step(
                "ceph.caps.blocklist",
                self._target,
                lambda: _done(p.blocklist, "osd blocklist add allowed (fences a dead lock holder)"),
                blocklist_fix,
            )
            self.scratch = f"{c.pool}/{p.scratch}" if made else None
            yield self.scratch
            self.scratch = None
            if made:
                self._step(
                    "ceph.caps.remove",
                    pool,
                    lambda: _done(p.remove, "scratch image removed"),
                    f"missing osd cap to remove images: {caps}",
                )
            else:
                self._skip(("ceph.caps.remove",), "no scratch image (create failed)")
        finally:
            p.close()

    def failed(self) -> bool:
        return any(r.status is Status.FAIL for r in self.results)


_POOL = ("ceph.pool",)
_CAPS = (
    "ceph.caps.create",
    "ceph.caps.meta",
    "ceph.caps.lock",
    "ceph.caps.clone",
    "ceph.caps.blocklist",
    "ceph.caps.remove",
)


def _done(fn: Callable[[], object], detail: str) -> str:
    fn()
    return detail
