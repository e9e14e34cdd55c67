"""A VM's serial console and its log, through libvirt only, from any machine.

Why through libvirt: the console and its log live on the hypervisor host, and volctl talks to
hosts only through their libvirt URI (often `qemu+ssh://` or `qemu+tcp://`).  So:

- **console**: `virDomainOpenConsole` on the domain's pty serial port hands back a
  `virStream`; bytes from the guest arrive through the stream's readable callback (on
  libvirt's event loop), keystrokes go out with `virStreamSend`.
- **log**: qemu appends everything the guest prints to `<log file>` of the serial port, under
  libvirt's own log dir by default (`/var/log/libvirt/qemu`, which the qemu driver owns on
  every host).  libvirt reads files for remote clients only as storage volumes, so the log's
  directory is opened as a *transient* `dir` storage pool (gone with the daemon, no
  definition left behind) and the file is downloaded with `virStorageVolDownload` from an
  offset: `-f` polls the size and fetches only what was appended.

Errors are the project's typed errors; nothing here changes a domain.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from xml.sax.saxutils import quoteattr

import libvirt

from reconciler.backends.calls import translate_libvirt
from reconciler.backends.libvirt_conn import ensure_event_loop
from reconciler.errors import NotFound, Terminal

ESCAPE = b"\x1d"  # Ctrl-], as virsh console
Write = Callable[[bytes], None]


def _open(uri: str) -> Any:
    ensure_event_loop()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise translate_libvirt(exc, f"connect {uri}") from exc


@contextlib.contextmanager
def _connection(uri: str) -> Iterator[Any]:
    conn = _open(uri)
    try:
        yield conn
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _domain(conn: Any, name: str) -> Any:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        raise translate_libvirt(exc, f"domain {name}") from exc


class ConsoleSession:
    """One attached console: guest output goes to `write`, `send` types into the guest."""

    def __init__(self, uri: str, domain: str, write: Write, *, force: bool = False) -> None:
        self._conn = _open(uri)
        self._write = write
        self.closed = threading.Event()
        self.reason = ""
        dom = _domain(self._conn, domain)
        if not dom.isActive():
            self._conn.close()
            raise Terminal(f"domain {domain} is not running: no console to attach to")
        self._stream = self._conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        flags = libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else libvirt.VIR_DOMAIN_CONSOLE_SAFE
        try:
            dom.openConsole(None, self._stream, flags)
        except libvirt.libvirtError as exc:
            self._conn.close()
            raise translate_libvirt(exc, f"console of {domain}") from exc
        events = (
            libvirt.VIR_STREAM_EVENT_READABLE
            | libvirt.VIR_STREAM_EVENT_ERROR
            | libvirt.VIR_STREAM_EVENT_HANGUP
        )
        self._stream.eventAddCallback(events, self._on_event, None)

    def _on_event(self, stream: Any, events: int, _opaque: object) -> None:
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            try:
                data = stream.recv(65536)
            except libvirt.libvirtError as exc:
                self._end(f"console stream failed: {exc}")
                return
            if isinstance(data, bytes) and data:
                self._write(data)
            elif data in {b"", 0}:
                self._end("the guest's console closed (domain stopped?)")
                return
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self._end("the console stream was closed by the host")

    def _end(self, reason: str) -> None:
        if not self.closed.is_set():
            self.reason = reason
            self.closed.set()

    def send(self, data: bytes) -> None:
        """Type `data` into the guest's serial port (retries while the stream is full)."""
        while data and not self.closed.is_set():
            try:
                sent = self._stream.send(data)
            except libvirt.libvirtError as exc:
                self._end(f"console stream failed: {exc}")
                return
            if sent == -2:  # would block
                time.sleep(0.01)
                continue
            data = data[sent:]

    def close(self) -> None:
        self._end("detached")
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()


# --- the serial log --------------------------------------------------------------------------


def _pool_name(directory: str) -> str:
    return "volctl-logs-" + hashlib.sha256(directory.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _log_dir_pool(conn: Any, directory: str) -> Iterator[Any]:
    """The directory as an active, transient `dir` pool (created here, destroyed after)."""
    name = _pool_name(directory)
    created = False
    try:
        pool = conn.storagePoolLookupByName(name)
        if not pool.isActive():
            pool.create(0)
    except libvirt.libvirtError:
        xml = (
            f"<pool type='dir'><name>{name}</name>"
            f"<target><path>{quoteattr(directory)[1:-1]}</path></target></pool>"
        )
        try:
            pool = conn.storagePoolCreateXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise translate_libvirt(exc, f"open {directory} on the host") from exc
        created = True
    try:
        yield pool
    finally:
        if created:
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()


class LogReader:
    """Reads the serial log file `path` on the host behind `uri`, from any offset."""

    def __init__(self, conn: Any, pool: Any, path: str) -> None:
        self._conn = conn
        self._pool = pool
        self._name = posixpath.basename(path)
        self.path = path

    def size(self) -> int:
        try:
            self._pool.refresh(0)
            vol = self._pool.storageVolLookupByName(self._name)
            return int(vol.info()[1])
        except libvirt.libvirtError as exc:
            err = translate_libvirt(exc, self.path)
            if isinstance(err, NotFound) or "not found" in str(exc).lower():
                raise NotFound(f"{self.path}: no console log yet (has the VM run?)") from exc
            raise err from exc

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        chunks: list[bytes] = []

        def sink(_stream: Any, data: bytes, _opaque: object) -> int:
            chunks.append(bytes(data))
            return len(data)

        try:
            vol = self._pool.storageVolLookupByName(self._name)
            stream = self._conn.newStream(0)
            vol.download(stream, offset, length, 0)
            stream.recvAll(sink, None)
            stream.finish()
        except libvirt.libvirtError as exc:
            raise translate_libvirt(exc, f"read {self.path}") from exc
        return b"".join(chunks)


def follow_log(
    uri: str,
    path: str,
    write: Write,
    *,
    follow: bool = False,
    interval: float = 0.5,
    stop: threading.Event | None = None,
    tail_bytes: int | None = None,
) -> None:
    """Write the log at `path` on the host; with `follow`, keep writing what is appended."""
    stop = stop or threading.Event()
    with _connection(uri) as conn, _log_dir_pool(conn, posixpath.dirname(path)) as pool:
        reader = LogReader(conn, pool, path)
        size = reader.size()
        offset = max(0, size - tail_bytes) if tail_bytes is not None else 0
        while True:
            if size < offset:  # truncated or replaced: start over
                offset = 0
            while offset < size:
                data = reader.read(offset, min(size - offset, 1 << 20))
                if not data:
                    break
                write(data)
                offset += len(data)
            if not follow or stop.wait(interval):
                return
            size = reader.size()


def stdout_writer(fd: int | None = None) -> Write:
    """Write raw bytes to a file descriptor (stdout by default), all of them."""
    target = 1 if fd is None else fd

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(target, view)
            view = view[n:]

    return write
