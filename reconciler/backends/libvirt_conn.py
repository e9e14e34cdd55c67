"""One libvirt connection: bounded calls, keepalive, events, reconnect, RPC counting.

Why this is separate from the Hypervisor: connection care is the part that goes wrong in
production (hung sockets, daemons restarted under us, missed events) and it is the same for
every operation.  Rules kept here:

- every libvirt call runs on this host's worker threads with a deadline (`calls.Worker`);
- a call that times out, or fails with a connection-level error, or a close callback from
  libvirt (keepalive notices a dead link within interval x (count + 1) s), marks the
  connection broken, and a background loop reconnects (and re-registers events), probing the
  host first (`reach.py`) so it notices the heal within about a second;
- while broken, every call fails at once (the host is Unknown in this pass) instead of
  waiting a connect deadline: a pass never stalls on a host it already knows to be lost
  (over SSH with the daemon dead, each inline attempt cost a whole handshake: 12 s at load
  48 in R2).  Only the first connect is made by the caller;
- every reconnect after a loss is reported (`on_restored`): events were lost meanwhile, so
  the controller looks again at once instead of at the next resync (R2);
- the default libvirt event loop is registered once per process and run on a daemon thread,
  because keepalive, close callbacks and domain events all need it;
- every RPC is counted by API name, for the O(hosts) steady-state check and the benchmarks.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt

from reconciler.backends import reach
from reconciler.backends.calls import Worker, libvirt_connection_lost, translate_libvirt
from reconciler.backends.protocols import EventKind
from reconciler.errors import BackendError, CallTimeout, Transient

T = TypeVar("T")

_loop_lock = threading.Lock()
_loop_started = False


def _ignore_error(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; we raise typed errors instead."""


def _run_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def ensure_event_loop() -> None:
    """Register libvirt's default event loop once per process and run it on a daemon thread.

    Must happen before the first connection is opened, so every connection can use
    keepalive and events.
    """
    global _loop_started  # noqa: PLW0603 - process-wide singleton by nature
    with _loop_lock:
        if _loop_started:
            return
        libvirt.registerErrorHandler(_ignore_error, None)
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_loop, name="libvirt-events", daemon=True).start()
        _loop_started = True


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn.unregisterCloseCallback()
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


_DEAD = threading.Event()  # the "lost" flag of a connection replaced since it was taken
_DEAD.set()

EventSink = Callable[[str, str, str], None]  # (kind, domain name, domain uuid)
LostSink = Callable[[str], None]  # (reason)
RestoredSink = Callable[[], None]


class LibvirtConnection:
    """A lazily (re)opened connection to one libvirt URI."""

    def __init__(
        self,
        host: str,
        uri: str,
        *,
        timeout: float,
        connect_timeout: float,
        keepalive: tuple[int, int] = (2, 3),
        on_event: EventSink | None = None,
        on_lost: LostSink | None = None,
        on_restored: RestoredSink | None = None,
        reconnect: tuple[float, float] = (0.5, 1.0),
        probe_timeout: float = 1.0,
    ) -> None:
        self.host = host
        self.uri = uri
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._on_event = on_event
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._reconnect = reconnect  # (first, longest) wait between background attempts
        self._probe = reach.probe_address(uri)
        self._probe_timeout = probe_timeout
        self._reconnecting = False  # the background loop runs (the connection is broken)
        self._closed_for_good = threading.Event()
        self._lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._conn: Any = None
        self._lost = threading.Event()  # set when this connection (generation) is found dead
        self.generation = 0  # bumped on every (re)connect; caches compare against it
        self.broken_reason: str | None = None
        self._counts: collections.Counter[str] = collections.Counter()
        self._count_lock = threading.Lock()
        self._worker = Worker(f"libvirt-{host}", on_timeout=self._timed_out)
        ensure_event_loop()

    # -- counting ---------------------------------------------------------------------------

    def _count(self, api: str) -> None:
        with self._count_lock:
            self._counts[api] += 1

    def rpc_count(self) -> int:
        with self._count_lock:
            return sum(self._counts.values())

    def rpc_stats(self) -> dict[str, int]:
        with self._count_lock:
            return dict(self._counts)

    # -- connection state -------------------------------------------------------------------

    def _timed_out(self, what: str) -> None:
        self.mark_broken(f"{what} timed out")

    def mark_broken(self, reason: str) -> None:
        """Forget the connection; the next call reconnects.  Listeners hear about it."""
        with self._lock:
            had = self._conn is not None
            self._conn = None  # the stuck thread (if any) still holds a reference
            self._lost.set()  # calls still waiting on it give up now
            self.broken_reason = reason
        self._start_reconnecting()
        if had and self._on_lost is not None:
            self._on_lost(reason)

    def _start_reconnecting(self) -> None:
        with self._lock:
            if self._reconnecting or self._closed_for_good.is_set():
                return
            self._reconnecting = True
        threading.Thread(
            target=self._reconnect_loop, name=f"libvirt-reconnect-{self.host}", daemon=True
        ).start()

    def _reconnect_loop(self) -> None:
        """Until the connection is back (or closed): wait, probe, and open if it answers."""
        wait, longest = self._reconnect
        try:
            while not self._closed_for_good.wait(wait):
                wait = min(longest, wait * 2)
                if self._current() is not None:
                    return  # connected meanwhile
                if not reach.answers(self._probe, self._probe_timeout):
                    continue
                with contextlib.suppress(BackendError):
                    self._connect(wait_for_lock=False)
                if self._current() is not None:
                    return
        finally:
            with self._lock:
                self._reconnecting = False
            if self._current() is None and not self._closed_for_good.is_set():
                self._start_reconnecting()  # broken again between the last check and here

    def _open(self) -> Any:
        # An open that outlives its deadline may still succeed later on the abandoned thread;
        # that connection (over SSH: an ssh process and a daemon client) must be closed, not
        # leaked.  Only that thread ever closes it, once its setup is done (closing it from the
        # caller while the setup still uses it is a use-after-free; a first version did, and
        # R2 saw the controller segfault in libvirt.so right after a link healed), and its
        # close callback goes first, so closing it never marks the live connection broken.
        handover = threading.Lock()
        late = {"abandoned": False}

        def open_and_setup() -> Any:
            conn = setup(libvirt.open(self.uri))
            with handover:
                if late["abandoned"]:
                    _close_quietly(conn)
                    raise Transient(f"connect {self.uri}: finished after its deadline; closed")
            return conn

        def setup(conn: Any) -> Any:
            self._count("open")
            try:
                self._count("setKeepAlive")
                conn.setKeepAlive(*self._keepalive)
            except libvirt.libvirtError:
                pass  # local drivers (test:///) have no keepalive; nothing to watch there
            try:
                self._count("registerCloseCallback")
                conn.registerCloseCallback(self._closed, None)
            except libvirt.libvirtError:
                pass
            self._register_events(conn)
            return conn

        try:
            conn = self._worker.run(
                open_and_setup, timeout=self.connect_timeout, what=f"connect {self.uri}"
            )
        except BackendError as exc:
            if isinstance(exc, CallTimeout):
                with handover:
                    late["abandoned"] = True
            self.broken_reason = str(exc)
            raise
        except libvirt.libvirtError as exc:
            err = translate_libvirt(exc, f"connect {self.uri}")
            self.broken_reason = str(err)
            raise Transient(str(err), code=err.code) from exc
        self.generation += 1
        self.broken_reason = None
        return conn

    def _current(self) -> Any:
        with self._lock:
            return self._conn

    def connection(self) -> Any:
        """The open virConnect, opening it if needed (bounded by connect_timeout).

        Connect attempts are serialized by their own lock, so `close()` and `mark_broken()`
        never wait behind a hanging connect.
        """
        current = self._current()
        if current is not None:
            return current
        if self._reconnecting:
            raise Transient(
                f"{self.host}: unreachable (lost: {self.broken_reason}); "
                "reconnecting in the background"
            )
        return self._connect(wait_for_lock=True)

    def _connect(self, *, wait_for_lock: bool) -> Any:
        """Open and install the connection (one attempt at a time); a reconnect after a loss
        is reported to `on_restored`, a failure starts the background loop."""
        got = self._connect_lock.acquire(timeout=self.connect_timeout if wait_for_lock else 0)
        if not got:
            raise Transient(f"{self.host}: another connect attempt is still running")
        try:
            current = self._current()  # another thread connected while we waited
            if current is not None:
                return current
            again = self.generation > 0 or self.broken_reason is not None
            try:
                conn = self._open()
            except BackendError:
                self._start_reconnecting()
                raise
            with self._lock:
                self._conn = conn
                self._lost = threading.Event()
        finally:
            self._connect_lock.release()
        if again and self._on_restored is not None:
            self._on_restored()
        return conn

    def _closed(self, _conn: Any, reason: int, _opaque: object) -> None:
        names = {0: "error", 1: "end of file", 2: "keepalive timeout", 3: "client closed"}
        self.mark_broken(f"connection closed: {names.get(reason, reason)}")

    # -- events -----------------------------------------------------------------------------

    def _emit(self, kind: str, dom: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, dom.name(), dom.UUIDString())
        except Exception:  # noqa: BLE001 - an event handler must never kill the event loop
            return

    def _register_events(self, conn: Any) -> None:
        def lifecycle(_c: Any, dom: Any, _event: int, _detail: int, _o: object) -> None:
            self._emit(EventKind.LIFECYCLE, dom)

        def removed(_c: Any, dom: Any, _alias: str, _o: object) -> None:
            self._emit(EventKind.DEVICE_REMOVED, dom)

        def added(_c: Any, dom: Any, _alias: str, _o: object) -> None:
            self._emit(EventKind.DEVICE_ADDED, dom)

        def removal_failed(_c: Any, dom: Any, _alias: str, _o: object) -> None:
            self._emit(EventKind.LIFECYCLE, dom)

        def metadata(_c: Any, dom: Any, _type: int, _ns: str, _o: object) -> None:
            self._emit(EventKind.LIFECYCLE, dom)

        for event_id, cb in (
            (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle),
            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, removed),
            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, added),
            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, removal_failed),
            (libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, metadata),
        ):
            try:
                self._count("domainEventRegisterAny")
                conn.domainEventRegisterAny(None, event_id, cb, None)
            except libvirt.libvirtError:
                continue  # an old daemon without this event: resyncs still cover it

    # -- calls ------------------------------------------------------------------------------

    def call(self, api: str, fn: Callable[[Any], T], *, timeout: float | None = None) -> T:
        """Run `fn(conn)` (one libvirt RPC named `api`) with a deadline; translate errors."""
        conn = self.connection()
        with self._lock:
            lost = self._lost if self._conn is conn else _DEAD
        self._count(api)
        try:
            return self._worker.run(
                lambda: fn(conn),
                timeout=timeout or self.timeout,
                what=f"{self.host}: {api}",
                abort=lost,
            )
        except BackendError:
            raise
        except Exception as exc:
            if libvirt_connection_lost(exc):
                self.mark_broken(f"{api}: {exc}")
            raise translate_libvirt(exc, f"{self.host}: {api}") from exc

    def close(self) -> None:
        self._closed_for_good.set()  # ends the reconnect loop
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                self._worker.run(conn.close, timeout=self.connect_timeout, what="close")
        self._worker.close()
