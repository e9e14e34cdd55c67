"""Bounded calls and error translation for the libvirt and Ceph backends.

Why this exists: libvirt and librados calls block, sometimes forever (a dead Ceph wedges
qemu and every libvirt call on that domain; a partitioned host hangs a TCP connect).  The
controller must never hang with them, so every library call runs on a worker thread and is
waited for with a deadline (`Worker`).  A call that misses its deadline raises `CallTimeout`
and tells the owner through `on_timeout`, which marks the connection broken so the next use
reconnects; the stuck thread is abandoned, never joined.

The second half turns library exceptions into `reconciler.errors`, so nothing above the
backend layer ever sees a libvirt, rados or rbd exception.  Unknown errors are `Transient`
(retried), as the style guide asks.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt
import rados
import rbd

from reconciler.errors import (
    BackendError,
    CallTimeout,
    Conflict,
    NotFound,
    Terminal,
    Transient,
)

T = TypeVar("T")


class _Pool:
    """Daemon threads fed from a queue, started on demand up to `size`.

    Not `ThreadPoolExecutor`: its threads are joined at interpreter exit, so one call stuck
    on a hung host would keep the controller from exiting.
    """

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._queue: queue.SimpleQueue[tuple[cf.Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable[[], T]) -> cf.Future[T]:
        fut: cf.Future[T] = cf.Future()
        with self._lock:
            if self._idle == 0 and self._threads < self._size:
                self._threads += 1
                threading.Thread(
                    target=self._loop, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            self._queue.put((fut, fn))
        return fut

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(exc)

    def shutdown(self) -> None:
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(None)


class Worker:
    """A few daemon threads whose calls are awaited with a deadline.

    `run()` raises `CallTimeout` when the deadline passes; the threads are then replaced by
    fresh ones (the stuck ones keep their references and end whenever the library lets them)
    and `on_timeout(what)` is called so the owner can drop its connection.
    """

    def __init__(
        self,
        name: str,
        *,
        threads: int = 4,
        on_timeout: Callable[[str], None] | None = None,
    ) -> None:
        self._name = name
        self._threads = threads
        self._on_timeout = on_timeout
        self._lock = threading.Lock()
        self._pool = _Pool(name, threads)

    def run(
        self,
        fn: Callable[[], T],
        *,
        timeout: float,
        what: str,
        abort: threading.Event | None = None,
    ) -> T:
        """`fn()` on a worker thread, waited for until `timeout` or until `abort` is set (the
        connection it uses was found dead: libvirt does not always wake a call waiting on a
        connection its keepalive closed, R2 saw one wait its full 15 s after the close)."""
        with self._lock:
            pool = self._pool
        fut = pool.submit(fn)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    return fut.result(timeout=max(0.0, left if abort is None else min(left, 0.1)))
                except cf.TimeoutError:
                    if abort is not None and abort.is_set() and not fut.done():
                        fut.cancel()
                        self._abandon(pool, what, notify=False)
                        raise Transient(
                            f"{self._name}: {what}: the connection was lost meanwhile"
                        ) from None
                    if time.monotonic() >= deadline:
                        raise
        except cf.TimeoutError:
            fut.cancel()
            self._abandon(pool, what)
            raise CallTimeout(f"{self._name}: {what} did not finish within {timeout:g}s") from None
        except cf.CancelledError as exc:
            raise Transient(f"{self._name}: {what}: cancelled (connection reset)") from exc

    def run_all(self, fns: list[Callable[[], T]], *, timeout: float, what: str) -> list[T]:
        """Run independent calls in parallel on the worker threads, one deadline for all.

        The first exception (in order) is raised once every call has ended.
        """
        with self._lock:
            pool = self._pool
        futs = [pool.submit(fn) for fn in fns]
        _, pending = cf.wait(futs, timeout=timeout)
        if pending:
            for fut in pending:
                fut.cancel()
            self._abandon(pool, what)
            raise CallTimeout(f"{self._name}: {what} did not finish within {timeout:g}s")
        return [f.result() for f in futs]

    def _abandon(self, pool: _Pool, what: str, *, notify: bool = True) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = _Pool(self._name, self._threads)
                pool.shutdown()
        if notify and self._on_timeout is not None:
            self._on_timeout(what)

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown()


# ---------------------------------------------------------------------------------------
# libvirt

_LV_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_DOMAIN_METADATA,
    libvirt.VIR_ERR_NO_SECRET,
    libvirt.VIR_ERR_DEVICE_MISSING,
}
_LV_CONFLICT = {libvirt.VIR_ERR_DOM_EXIST}
_LV_TERMINAL = {
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    libvirt.VIR_ERR_OPERATION_DENIED,
}
# Errors that mean the connection itself is gone: the owner must reconnect.
_LV_CONNECTION = {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
}


def libvirt_connection_lost(exc: BaseException) -> bool:
    """True when a libvirt error says the connection (not the object) is broken."""
    if not isinstance(exc, libvirt.libvirtError):
        return False
    code = exc.get_error_code()
    domain = exc.get_error_domain()
    return code in _LV_CONNECTION or domain in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE)


def translate_libvirt(exc: BaseException, what: str) -> BackendError:
    """Map a libvirt exception (or anything else) to a typed volctl error."""
    if isinstance(exc, BackendError):
        return exc
    if not isinstance(exc, libvirt.libvirtError):
        return Transient(f"{what}: {type(exc).__name__}: {exc}")
    code = exc.get_error_code()
    msg = f"{what}: {exc.get_error_message() or exc}"
    if code in _LV_NOT_FOUND:
        return NotFound(msg, code=code)
    if code in _LV_CONFLICT:
        return Conflict(msg, code=code)
    if code in _LV_TERMINAL:
        return Terminal(msg, code=code)
    if code == libvirt.VIR_ERR_OPERATION_TIMEOUT:
        return CallTimeout(msg, code=code)
    return Transient(msg, code=code)


# ---------------------------------------------------------------------------------------
# rados / rbd

_CEPH_NOT_FOUND = (rbd.ImageNotFound, rados.ObjectNotFound)
_CEPH_CONFLICT = (rbd.ImageExists, rados.ObjectExists, rbd.ImageHasSnapshots)
_CEPH_TERMINAL = (
    rbd.InvalidArgument,
    rados.InvalidArgumentError,
    rbd.PermissionError,
    rados.PermissionError,
    rbd.ReadOnlyImage,
    rbd.FunctionNotSupported,
    rbd.OperationNotSupported,
    rbd.ArgumentOutOfRange,
    rbd.NoSpace,
    rados.NoSpace,
    rbd.DiskQuotaExceeded,
)
_CEPH_TIMEOUT = (rados.TimedOut, rbd.Timeout)
_CEPH_CONNECTION = (rados.ConnectionShutdown, rbd.ConnectionShutdown, rados.NotConnected)


def ceph_connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, _CEPH_CONNECTION + _CEPH_TIMEOUT)


def translate_ceph(exc: BaseException, what: str) -> BackendError:
    """Map a rados/rbd exception (or anything else) to a typed volctl error."""
    if isinstance(exc, BackendError):
        return exc
    msg = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _CEPH_NOT_FOUND):
        return NotFound(msg)
    if isinstance(exc, _CEPH_CONFLICT):
        return Conflict(msg)
    if isinstance(exc, _CEPH_TERMINAL):
        return Terminal(msg)
    if isinstance(exc, _CEPH_TIMEOUT):
        return CallTimeout(msg)
    return Transient(msg)


def plain_addr(raw: str) -> str:
    """'[v2:127.0.0.1:0/123,v1:...]' or 'v2:127.0.0.1:0/123' -> '127.0.0.1:0/123' (the form
    `ceph osd blocklist add` takes)."""
    text = raw.strip().strip("[]").split(",")[0]
    for proto in ("v2:", "v1:", "any:"):
        text = text.removeprefix(proto)
    return text
