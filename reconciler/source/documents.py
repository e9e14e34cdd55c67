"""Spec documents as the sources handle them: who defines what, where, and in which form.

Why apart from the store: the store, the git source, the composite and the CLI all need to
know which resource (kind, name) a document defines and at which file:line, the canonical text
a resource is stored as, and a digest of a set of texts; none of that depends on where the
texts live.  Validation itself is the loader's; `load_texts` is the single door to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler import loading
from reconciler.errors import SpecError
from reconciler.loading.diagnostics import Diagnostic, SpecValidationError
from reconciler.loading.yamldoc import parse
from reconciler.model import DesiredState
from reconciler.source.protocol import Attempts, Revision

# The short names the CLI and the status keys use ("vm/test_vm").
SHORT_KINDS: dict[str, str] = {
    "Host": "host",
    "Image": "image",
    "InstanceType": "instancetype",
    "VirtualMachine": "vm",
    "Volume": "volume",
    "VolumeAttachment": "attachment",
}


def short_key(kind: str, name: str) -> str:
    """ "vm/test_vm" for ("VirtualMachine", "test_vm")."""
    return f"{SHORT_KINDS.get(kind, kind.lower())}/{name}"


@dataclass(frozen=True)
class StoredDocument:
    """One resource document found in the store (or in a user's file)."""

    kind: str
    name: str
    file: str  # display name of the file it is in
    line: int
    data: Any  # the plain document


def documents_of(texts: list[tuple[str, str]]) -> tuple[list[StoredDocument], list[Diagnostic]]:
    """Every document with a kind and a name, for ownership and per-resource files.

    Documents that lack them are left to the loader to complain about; YAML that does not
    parse comes back as diagnostics.
    """
    out: list[StoredDocument] = []
    problems: list[Diagnostic] = []
    for name, text in texts:
        docs, diags = parse(name, text)
        problems.extend(diags)
        for doc in docs:
            data = doc.data
            if not isinstance(data, dict):
                continue
            kind = data.get("kind")
            meta = data.get("metadata")
            res = meta.get("name") if isinstance(meta, dict) else None
            if isinstance(kind, str) and isinstance(res, str):
                out.append(StoredDocument(kind, res, name, doc.line, data))
    return out, problems


def writable_documents(
    texts: list[tuple[str, str]], owned: Mapping[str, str] | None, owner: str
) -> list[StoredDocument]:
    """The documents of `texts` that a store may take: every one parses, and none is a
    resource another source (`owner`, e.g. git) defines; SpecValidationError otherwise."""
    docs, problems = documents_of(texts)
    if problems:
        raise SpecValidationError(problems)
    refused = [
        Diagnostic(
            d.file,
            d.line,
            "",
            f"{short_key(d.kind, d.name)} is managed by {owner} ({where}); change it there",
            f"{d.kind}/{d.name}",
        )
        for d in docs
        if (where := (owned or {}).get(short_key(d.kind, d.name))) is not None
    ]
    if refused:
        raise SpecValidationError(refused)
    return docs


def fetch_texts(
    read: Callable[[], list[tuple[str, str]]],
    revision_of: Callable[[list[tuple[str, str]]], str],
    attempts: Attempts,
) -> Revision:
    """One fetch of a spec store (directory or RADOS): read every text, name the revision,
    load it whole.  Never raises for bad specs: a bad revision is recorded with its errors and
    the last good one stays in force.  The revision is a digest of every text, so texts with
    the last revision get the last verdict without loading them again (a pass woken by
    anything but a spec change does not re-validate the whole store)."""
    try:
        texts = read()
    except SpecValidationError as exc:
        return attempts.reject("unreadable", exc.diagnostics)
    rev = revision_of(texts)
    if attempts.last is not None and attempts.last.revision == rev:
        return attempts.record(attempts.last)
    try:
        state = load_texts(texts, revision=rev)
    except SpecValidationError as exc:
        return attempts.reject(rev, exc.diagnostics)
    except SpecError as exc:
        return attempts.reject(rev, (exc,))
    return attempts.record(Revision(rev, state))


def digest(texts: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, text in sorted(texts):
        h.update(name.encode())
        h.update(b"\0")
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_texts(
    texts: list[tuple[str, str]],
    *,
    revision: str | None = None,
    origins: Mapping[str, str] | None = None,
) -> DesiredState:
    """The loader's verdict on a set of texts: a DesiredState or a SpecValidationError.
    `origins` names the source of each text when several are merged (see `loading`)."""
    return loading.load_texts(texts, revision=revision, origins=origins)


def render(data: Any) -> str:
    """The stored form of one document: plain YAML, keys in the user's order."""
    # the C emitter (libyaml) writes the same text ~6x faster than the pure-Python one
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "---\n" + yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=False, width=100
    )
