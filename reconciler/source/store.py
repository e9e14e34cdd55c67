"""The `volctl apply` spec store: a directory of YAML files that is a desired-state source.

Why a directory and not a database: it is what `kubectl apply` users expect to be able to
inspect, back up and diff, and the controller can watch it with inotify.  The rules that keep
it trustworthy while several `volctl apply` run at once and the controller reads it:

* one file per resource, `<kind>/<name>.yaml` (kind in lower case), so applying one resource
  never rewrites another resource's file;
* every write is atomic: a hidden temp file in the same directory, fsync, `os.replace`, fsync
  of the directory; readers see the old or the new file, never half of one (the loader skips
  hidden files, so a temp file is never read as a spec);
* a lock file (`.volctl.lock`, flock) serialises writers, so validate-then-write is one step;
  the controller's fetch takes it shared, so a pass never reads one `apply` half written
  (it waits until the writer is done, at most `READ_LOCK_WAIT`, then reads anyway);
* the revision is a digest of the files' names and contents, so a pass knows whether the
  store changed since the last one.

How the controller learns of a change: inotify (watchdog).  A writer of ours ends every
change by closing the commit marker `.volctl.commit` while it still holds the lock; that
close starts a pass at once (its read waits for the lock, so it sees the whole change).  Any
other change to a spec file (an editor, `cp`, `rm`) starts a pass only after the files have
been quiet for `debounce` seconds: an editor that renames the old file away before writing
the new one must not look like a deleted resource.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.errors import SpecError, VolctlError
from reconciler.loading import sources as spec_sources
from reconciler.loading.diagnostics import Diagnostic, SpecValidationError
from reconciler.model import DesiredState
from reconciler.source.documents import (
    SHORT_KINDS,
    StoredDocument,
    digest,
    documents_of,
    fetch_texts,
    load_texts,
    render,
    short_key,
    writable_documents,
)
from reconciler.source.protocol import Attempts, Revision, SourceStatus

__all__ = [
    "SHORT_KINDS",
    "SpecStore",
    "StoreWriteError",
    "StoredDocument",
    "atomic_write",
    "digest",
    "documents_of",
    "load_texts",
    "render",
    "short_key",
]

LOCK_NAME = ".volctl.lock"
# the directory each kind's files live in (`path_for`): "virtualmachine" -> "VirtualMachine"
_STORE_KINDS = {kind.lower(): kind for kind in SHORT_KINDS}
DEBOUNCE_SECONDS = 0.3  # for changes by anything else (editors, cp, rm)
READ_LOCK_WAIT = 30.0  # a fetch waits this long for a writer, then reads what is there
COMMIT_NAME = ".volctl.commit"  # closed by a writer of ours at the end of each change


def _safe_component(value: str) -> str:
    """A kind or name as a single path component; the loader's name pattern already ensures
    this for valid specs, this is the last line of defence for the file system."""
    if (
        not value
        or value in {".", ".."}
        or value.startswith(".")
        or "/" in value
        or "\\" in value
        or "\0" in value
    ):
        raise SpecError(f"{value!r} cannot be used as a file name in the spec store")
    return value


class StoreWriteError(VolctlError):
    """The store could not be written (a full disk, permissions); nothing half-written."""

    retryable = False


class SpecStore:
    """A directory of per-resource YAML files; implements the `Source` protocol."""

    kind = "store"

    def __init__(self, directory: str | os.PathLike[str], *, debounce: float = DEBOUNCE_SECONDS):
        self.root = Path(directory).absolute()
        self.url = str(self.root)
        self._debounce = debounce
        self._observer: Any = None
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()
        self._attempts = Attempts("store", self.url)

    # ---- reading -------------------------------------------------------------------------

    def texts(self, *, excluding: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        """(file name, text) of every spec file but those named in `excluding` (the ones an
        apply or delete is about to replace); unreadable files, and files that no longer
        hold the resource their name says, raise a SpecValidationError so a broken store
        never looks empty or smaller than it is."""
        if not self.root.is_dir():
            return []
        files, problems = spec_sources.expand([str(self.root)])
        files = [f for f in files if f != str(self.root) and f not in excluding]
        problems = [p for p in problems if "no *.yaml" not in p.message]
        read, more = spec_sources.read(files)
        problems.extend(more)
        problems.extend(self._misplaced(read))
        if problems:
            raise SpecValidationError(problems)
        return read

    def _misplaced(self, texts: list[tuple[str, str]]) -> list[Diagnostic]:
        """Store files `<kind>/<name>.yaml` that do not define exactly that one resource.

        The store writes each resource alone into the file its kind and name give; a file
        that holds anything else was damaged on disk (a truncation to a comment, a flipped
        byte in `metadata.name`) or edited by hand.  Read as it is, the resource it held
        would vanish from the desired state, and the controller would delete it."""
        out = []
        for file, text in texts:
            rel = Path(os.path.relpath(file, self.root))
            kind = _STORE_KINDS.get(rel.parts[0]) if len(rel.parts) == 2 else None
            if kind is None or rel.suffix != ".yaml":
                continue  # not a file the store wrote: the loader judges it like any other
            if text and not text.endswith("\n"):  # render() always ends with one
                out.append(
                    Diagnostic(
                        file,
                        text.count("\n") + 1,
                        "",
                        "the file ends in the middle of a line (truncated on disk?): "
                        f"restore it, or `volctl apply` {kind}/{rel.stem} again",
                    )
                )
                continue
            docs, problems = documents_of([(file, text)])
            found = [(d.kind, d.name) for d in docs]
            if problems or found == [(kind, rel.stem)]:
                continue  # YAML errors are the loader's to report, with their line
            what = ", ".join(f"{k}/{n}" for k, n in found) or "no resource"
            out.append(
                Diagnostic(
                    file,
                    _name_line(text) or (docs[0].line if docs else 0),
                    "metadata.name" if len(found) == 1 and found[0][0] == kind else "",
                    f"this store file holds {kind}/{rel.stem} and nothing else, but it defines "
                    f"{what} (damaged on disk or edited by hand?): restore it, or "
                    f"`volctl apply` {kind}/{rel.stem} again",
                )
            )
        return out

    def fetch(self) -> Revision:
        return fetch_texts(self.texts_between_writes, self.revision_of, self._attempts)

    def texts_between_writes(self) -> list[tuple[str, str]]:
        """`texts()` under the lock file, shared: one `apply` writes its files one by one
        under the exclusive lock, and a fetch in between would take the first half for a
        revision (B1 saw a resync pass build 22 of 40 VMs and leave the rest for a pass
        that began 30 s later).  A store whose lock cannot be opened is read unlocked."""
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDONLY)
        except OSError:
            return self.texts()  # no writer ever ran here (or a read-only store)
        try:
            deadline = time.monotonic() + READ_LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break  # a stuck writer must not stop reconciliation
                    time.sleep(0.02)
            return self.texts()
        finally:
            os.close(fd)  # releases the lock

    def revision_of(self, texts: list[tuple[str, str]]) -> str:
        """Digest of the files' store-relative names and contents (independent of where the
        store is mounted, so the CLI and the controller compute the same one)."""
        return digest([(os.path.relpath(n, self.root), t) for n, t in texts])

    def status(self) -> SourceStatus:
        return self._attempts.status()

    def refresh(self) -> None:
        """Nothing to do: every fetch reads the files afresh."""

    def documents(self) -> list[StoredDocument]:
        docs, problems = documents_of(self.texts())
        if problems:
            raise SpecValidationError(problems)
        return docs

    # ---- watching ------------------------------------------------------------------------

    def watch(self, on_change: Callable[[], None]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        store = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in {"opened", "closed_no_write"}:
                    return  # a directory change alone changes no spec; its files' events do
                paths = [os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", ""))]
                if _committed(event.event_type, paths[-1] or paths[0]):
                    store._now(on_change)
                    return
                if all(_ignored(p) for p in paths if p):
                    return
                store._schedule(on_change)

        observer = Observer()
        observer.schedule(_Handler(), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _now(self, on_change: Callable[[], None]) -> None:
        """A writer of ours committed: change now; a pending debounce is covered by it."""
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        on_change()

    def _schedule(self, on_change: Callable[[], None]) -> None:
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
            timer = threading.Timer(self._debounce, on_change)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def close(self) -> None:
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    # ---- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for a read-validate-write cycle of `volctl apply`/`delete`."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def apply(
        self,
        texts: list[tuple[str, str]],
        *,
        owned: Mapping[str, str] | None = None,
        owner: str = "git",
        context: list[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> list[tuple[str, str]]:
        """Validate `texts` together with the rest of the store, then write one file per
        resource.  Returns ("vm/NAME", "created|configured|unchanged") in document order.

        Nothing is written unless everything is valid: the user's documents (with their own
        file:line), the store's other files, and no resource that another source owns.
        `context` holds the other source's texts (git), which references may point into.
        """
        docs = writable_documents(texts, owned, owner)
        with self.locked():
            self.desired_after(texts, context=context, docs=docs)
            results: list[tuple[str, str]] = []
            for d in docs:
                key = short_key(d.kind, d.name)
                if dry_run:
                    results.append((key, self._would(d.kind, d.name, render(d.data))))
                else:
                    results.append((key, self._write_one(d, results)))
            if any(r != "unchanged" for _, r in results) and not dry_run:
                self._commit()
            return results

    def _write_one(self, d: StoredDocument, done: list[tuple[str, str]]) -> str:
        """`write`, with an I/O failure (a full disk) turned into an error that says which
        file, why, and what was and was not applied; the file keeps its old content."""
        path = self.path_for(d.kind, d.name)
        try:
            return self.write(d.kind, d.name, render(d.data))
        except OSError as exc:
            before = ", ".join(f"{k} {r}" for k, r in done) or "nothing"
            raise StoreWriteError(
                f"cannot write {path}: {exc.strerror or exc}; it keeps its previous content "
                f"and {short_key(d.kind, d.name)} and the documents after it were not "
                f"applied (applied before it: {before})"
            ) from exc

    def desired_after(
        self,
        texts: list[tuple[str, str]],
        *,
        context: list[tuple[str, str]] | None = None,
        docs: list[StoredDocument] | None = None,
    ) -> DesiredState:
        """The whole desired state as it would be after applying `texts` (for validation and
        for `apply --dry-run`'s plan); raises SpecValidationError."""
        if docs is None:
            docs, problems = documents_of(texts)
            if problems:
                raise SpecValidationError(problems)
        replaced = frozenset(str(self.path_for(d.kind, d.name)) for d in docs)
        others = self.texts(excluding=replaced)
        return load_texts(list(texts) + others + list(context or []))

    def delete(
        self,
        keys: list[tuple[str, str]],
        *,
        context: list[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Remove resources (kind, name) from the store if what remains is still valid.
        Returns the keys that were present (and are now gone)."""
        with self.locked():
            paths = frozenset(str(self.path_for(k, n)) for k, n in keys)
            remaining = self.texts(excluding=paths)
            load_texts(remaining + list(context or []))
            gone = []
            for kind, name in keys:
                present = self.path_for(kind, name).is_file()
                if present and not dry_run:
                    self.remove(kind, name)
                if present:
                    gone.append(short_key(kind, name))
            if gone and not dry_run:
                self._commit()
            return gone

    def _commit(self) -> None:
        """Close the commit marker (under the writer's lock): a watching controller starts a
        pass at once, and its read waits for this writer's lock to be released."""
        fd = os.open(self.root / COMMIT_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def read(self, kind: str, name: str) -> str | None:
        try:
            return self.path_for(kind, name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _would(self, kind: str, name: str, text: str) -> str:
        old = self.read(kind, name)
        if old is None:
            return "created"
        return "unchanged" if old == text else "configured"

    def path_for(self, kind: str, name: str) -> Path:
        return self.root / _safe_component(kind.lower()) / f"{_safe_component(name)}.yaml"

    def write(self, kind: str, name: str, text: str) -> str:
        """Atomically write one resource's file: "created", "configured" or "unchanged"."""
        path = self.path_for(kind, name)
        old: str | None = None
        if path.is_file():
            old = path.read_text(encoding="utf-8")
            if old == text:
                return "unchanged"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        return "created" if old is None else "configured"

    def remove(self, kind: str, name: str) -> bool:
        path = self.path_for(kind, name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only succeeds when empty
        return True


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see either the old or the new content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # noqa: PTH101 - the fd is closed, chmod the name
        os.replace(tmp, path)  # noqa: PTH105 - the atomic rename is the point
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # noqa: PTH108
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _committed(event_type: str, path: str) -> bool:
    """The commit marker was closed after writing (or renamed into place)."""
    return event_type in {"closed", "moved"} and os.path.basename(path) == COMMIT_NAME  # noqa: PTH119


def _name_line(text: str) -> int:
    """The line of the first `name:` key (the document's metadata.name), 0 if none."""
    for i, line in enumerate(text.splitlines(), start=1):
        if re.match(r"\s*(metadata:\s*\{\s*)?name\s*:", line):
            return i
    return 0


def _ignored(path: str) -> bool:
    """Lock and temp files (hidden) and non-YAML files never trigger a pass; directories do."""
    base = os.path.basename(path)  # noqa: PTH119
    if base.startswith("."):
        return True
    return "." in base and not base.endswith(spec_sources.SUFFIXES)
