"""The `volctl apply` spec store in RADOS: `store: rados://POOL/NAMESPACE`.

Why: the directory store lives on one machine's disk, so `volctl apply` must run there and the
controller dies with it.  In RADOS the desired state is as available as the VM disks, any
machine with a Ceph client config can apply, and several controller replicas read the same
store.  The rules mirror the directory store's, with RADOS doing the locking:

* one object per resource, `spec/<kind>/<name>.yaml` (kind in lower case), holding exactly
  the text the directory store would hold in `<kind>/<name>.yaml`;
* every write is compare-and-swap on the object's RADOS version: `apply` reads each object
  (and its version), validates the whole desired state, then writes with `assert_version`
  (or an exclusive create for a new resource).  Two applies of different resources both land;
  two applies of one resource give one winner and one `StoreConflict` (kubectl's "the object
  has been modified"), never a lost write;
* the revision is a digest of the objects' names and versions, so every reader (CLI or any
  replica) computes the same one without reading a separate counter;
* every write ends with a notify on one well-known object, `volctl.specs`; controllers watch
  it and run a pass within milliseconds, with no polling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import Conflict, SpecError, VolctlError
from reconciler.loading.diagnostics import Diagnostic, SpecValidationError
from reconciler.model import DesiredState
from reconciler.source.documents import (
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

PREFIX = "spec/"
INDEX = "volctl.specs"  # watched by controllers, notified by writers


class Stored(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def version(self) -> int: ...


class Objects(Protocol):
    """What the store needs from RADOS (backends.rados_objects.RadosNamespace)."""

    @property
    def url(self) -> str: ...
    def names(self, prefix: str = "") -> list[str]: ...
    def read(self, name: str) -> Stored | None: ...
    def read_many(self, names: list[str]) -> Sequence[Stored]: ...
    def write(self, name: str, data: bytes, *, expect: int | None) -> int: ...
    def remove(self, name: str, *, expect: int) -> None: ...
    def watch(self, name: str, on_notify: Callable[[bytes], None]) -> None: ...
    def notify(self, name: str, message: str = "", timeout_ms: int = 1000) -> None: ...
    def close(self) -> None: ...


class StoreConflict(VolctlError):
    """Another writer changed a resource between our read and our write (exit 1)."""

    retryable = False


@dataclass(frozen=True)
class PendingApply:
    """What `apply` will write: per document the text and the version it was based on."""

    writes: tuple[tuple[str, str, str, int | None, str], ...]  # key, object, text, base, verb


def parse_url(url: str) -> tuple[str, str]:
    """'rados://POOL/NAMESPACE' -> (pool, namespace); SpecError when malformed."""
    rest = url.removeprefix("rados://")
    pool, _, ns = rest.partition("/")
    if not url.startswith("rados://") or not pool or not ns or "/" in ns:
        raise SpecError(f"store {url!r}: expected rados://POOL/NAMESPACE, e.g. rados://rbd/volctl")
    return pool, ns


def object_name(kind: str, name: str) -> str:
    for part in (kind, name):
        if not part or part.startswith(".") or "/" in part or "\0" in part:
            raise SpecError(f"{part!r} cannot be used as an object name in the spec store")
    return f"{PREFIX}{kind.lower()}/{name}.yaml"


class RadosSpecStore:
    """Per-resource RADOS objects; implements `Source` and the CLI's store API."""

    kind = "store"

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.url = objects.url
        self._versions: dict[str, int] = {}
        self._attempts = Attempts("store", self.url)

    # ---- reading -------------------------------------------------------------------------

    def label(self, obj: str) -> str:
        """The display name of an object in diagnostics: rados://pool/ns/<kind>/<name>.yaml."""
        return f"{self.url}/{obj.removeprefix(PREFIX)}"

    def path_for(self, kind: str, name: str) -> str:
        """The resource's display name (what `volctl diff`/`describe` show as its file)."""
        return self.label(object_name(kind, name))

    def _stored(self) -> dict[str, Stored]:
        found = self.objects.read_many(self.objects.names(PREFIX))
        return {s.name: s for s in found}

    def texts(self) -> list[tuple[str, str]]:
        """(label, text) of every spec object, remembering the versions they were read at."""
        stored = self._stored()
        out: list[tuple[str, str]] = []
        versions: dict[str, int] = {}
        for obj, s in sorted(stored.items()):
            label = self.label(obj)
            try:
                out.append((label, s.data.decode("utf-8")))
            except UnicodeDecodeError as exc:
                diag = Diagnostic(label, 1, "", f"not UTF-8 text: {exc}")
                raise SpecValidationError([diag]) from exc
            versions[label] = s.version
        self._versions = versions
        return out

    def revision_of(self, texts: list[tuple[str, str]]) -> str:
        """Digest of the objects' names and RADOS versions (as read by `texts()`)."""
        return digest([(n, str(self._versions.get(n, t))) for n, t in texts])

    def fetch(self) -> Revision:
        return fetch_texts(self.texts, self.revision_of, self._attempts)

    def status(self) -> SourceStatus:
        return self._attempts.status()

    def refresh(self) -> None:
        """Nothing to do: every fetch reads the objects afresh."""

    def documents(self) -> list[StoredDocument]:
        docs, problems = documents_of(self.texts())
        if problems:
            raise SpecValidationError(problems)
        return docs

    def read(self, kind: str, name: str) -> str | None:
        s = self.objects.read(object_name(kind, name))
        return None if s is None else s.data.decode("utf-8", errors="replace")

    # ---- watching ------------------------------------------------------------------------

    def watch(self, on_change: Callable[[], None]) -> None:
        self.objects.watch(INDEX, lambda _msg: on_change())

    def close(self) -> None:
        self.objects.close()

    # ---- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """No lock: every write is compare-and-swap on its object's version instead."""
        yield

    def prepare(
        self,
        texts: list[tuple[str, str]],
        *,
        owned: Mapping[str, str] | None = None,
        owner: str = "git",
        context: list[tuple[str, str]] | None = None,
    ) -> PendingApply:
        """Read, validate, and decide what to write (nothing is written yet)."""
        docs = writable_documents(texts, owned, owner)
        stored = self._stored()
        mine = {object_name(d.kind, d.name) for d in docs}
        others = [
            (self.label(o), s.data.decode("utf-8", "replace"))
            for o, s in sorted(stored.items())
            if o not in mine
        ]
        load_texts(list(texts) + others + list(context or []))
        writes = []
        for d in docs:
            obj = object_name(d.kind, d.name)
            text = render(d.data)
            old = stored.get(obj)
            if old is None:
                verb = "created"
            elif old.data == text.encode():
                verb = "unchanged"
            else:
                verb = "configured"
            base = None if old is None else old.version
            writes.append((short_key(d.kind, d.name), obj, text, base, verb))
        return PendingApply(tuple(writes))

    def commit(self, pending: PendingApply) -> list[tuple[str, str]]:
        """Write what `prepare` decided, each object only if nobody changed it since."""
        results: list[tuple[str, str]] = []
        try:
            for key, obj, text, base, verb in pending.writes:
                if verb != "unchanged":
                    try:
                        self.objects.write(obj, text.encode(), expect=base)
                    except Conflict as exc:
                        raise conflict(key, results) from exc
                results.append((key, verb))
        finally:
            if any(v != "unchanged" for _, v in results):
                self._notify()
        return results

    def apply(
        self,
        texts: list[tuple[str, str]],
        *,
        owned: Mapping[str, str] | None = None,
        owner: str = "git",
        context: list[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> list[tuple[str, str]]:
        """Same contract as `SpecStore.apply`; a concurrent change raises StoreConflict."""
        pending = self.prepare(texts, owned=owned, owner=owner, context=context)
        if dry_run:
            return [(key, verb) for key, _o, _t, _b, verb in pending.writes]
        return self.commit(pending)

    def desired_after(
        self,
        texts: list[tuple[str, str]],
        *,
        context: list[tuple[str, str]] | None = None,
        docs: list[StoredDocument] | None = None,
    ) -> DesiredState:
        if docs is None:
            docs, problems = documents_of(texts)
            if problems:
                raise SpecValidationError(problems)
        replaced = {self.label(object_name(d.kind, d.name)) for d in docs}
        others = [(n, t) for n, t in self.texts() if n not in replaced]
        return load_texts(list(texts) + others + list(context or []))

    def delete(
        self,
        keys: list[tuple[str, str]],
        *,
        context: list[tuple[str, str]] | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        stored = self._stored()
        objs = {object_name(k, n) for k, n in keys}
        remaining = [
            (self.label(o), s.data.decode("utf-8", "replace"))
            for o, s in sorted(stored.items())
            if o not in objs
        ]
        load_texts(remaining + list(context or []))
        gone: list[str] = []
        try:
            for kind, name in keys:
                obj = object_name(kind, name)
                old = stored.get(obj)
                if old is None:
                    continue
                if not dry_run:
                    try:
                        self.objects.remove(obj, expect=old.version)
                    except Conflict as exc:
                        raise conflict(short_key(kind, name), []) from exc
                gone.append(short_key(kind, name))
        finally:
            if gone and not dry_run:
                self._notify()
        return gone

    def write(self, kind: str, name: str, text: str) -> str:
        """Write one resource's text as is (for `store migrate`): created/configured/unchanged."""
        obj = object_name(kind, name)
        old = self.objects.read(obj)
        if old is not None and old.data == text.encode():
            return "unchanged"
        self.objects.write(obj, text.encode(), expect=None if old is None else old.version)
        return "created" if old is None else "configured"

    def remove(self, kind: str, name: str) -> bool:
        obj = object_name(kind, name)
        old = self.objects.read(obj)
        if old is None:
            return False
        self.objects.remove(obj, expect=old.version)
        return True

    def entries(self) -> dict[tuple[str, str], str]:
        """(kind in lower case, name) -> text of every resource (for `store migrate`)."""
        out: dict[tuple[str, str], str] = {}
        for obj, s in self._stored().items():
            kind, _, file = obj.removeprefix(PREFIX).partition("/")
            out[(kind, file.removesuffix(".yaml"))] = s.data.decode("utf-8")
        return out

    def notify(self) -> None:
        self._notify()

    def _notify(self) -> None:
        with contextlib.suppress(VolctlError):  # the write landed; resync catches a lost notify
            self.objects.notify(INDEX, "specs")


def conflict(key: str, landed: list[tuple[str, str]]) -> StoreConflict:
    kind, _, name = key.partition("/")
    msg = (
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    if landed:
        msg += f" (already written: {', '.join(k for k, _ in landed)})"
    return StoreConflict(msg)
