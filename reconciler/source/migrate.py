"""`volctl store migrate`: move a spec store between a directory and RADOS, byte for byte.

Why byte for byte: the stored text is what `volctl diff` compares against and what the
revision digests cover, so a migration must not re-render anything; each resource's text is
copied as is, under the same kind and name.  A non-empty target is refused unless forced
(then it is made equal to the source: resources only the target had are removed), so a
typo in `--to` never merges two fleets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import SpecError
from reconciler.source.documents import load_texts
from reconciler.source.rados_store import RadosSpecStore
from reconciler.source.store import SpecStore
from reconciler.source.stores import AnyStore

Entries = dict[tuple[str, str], str]


@dataclass(frozen=True)
class Migration:
    copied: int
    unchanged: int
    removed: int


def entries(store: AnyStore) -> Entries:
    """(kind in lower case, name) -> text of every resource in the store."""
    if isinstance(store, RadosSpecStore):
        return store.entries()
    out: Entries = {}
    for path, text in store.texts():
        rel = Path(os.path.relpath(path, store.root))
        if len(rel.parts) != 2 or rel.suffix != ".yaml":
            raise SpecError(f"{path}: not a <kind>/<name>.yaml file of a spec store")
        out[(rel.parts[0], rel.stem)] = text
    return out


def migrate(source: AnyStore, target: AnyStore, *, force: bool = False) -> Migration:
    """Copy every resource of `source` into `target`; SpecError when refused."""
    src = entries(source)
    dst = entries(target)
    if dst and not force:
        raise SpecError(
            f"target {target.url} is not empty ({len(dst)} resources); "
            "use --force to replace its content with the source's"
        )
    if not force:
        load_texts(sorted(source.texts()))  # an invalid source is refused (SpecValidationError)
    copied = unchanged = removed = 0
    for (kind, name), text in sorted(src.items()):
        if target.write(kind, name, text) == "unchanged":
            unchanged += 1
        else:
            copied += 1
    for kind, name in sorted(set(dst) - set(src)):
        removed += bool(target.remove(kind, name))
    if isinstance(target, RadosSpecStore):
        target.notify()
    return Migration(copied, unchanged, removed)


__all__ = ["Migration", "SpecStore", "entries", "migrate"]
