"""Convert the seed's three input files into volctl spec documents.

The seed read `physicalmachine_file` (`user@host` per line), `image_file`
(`user@host:/path/name.img` per line) and a `vm_types` JSON file.  This module turns them
into Host, Image and InstanceType documents, with the seed's ids kept (pmid and image id
are the line order, tid is the JSON's).  Hosts keep the seed's transport
(`qemu+ssh://user@host/system`), and images keep where they live: `source.ssh` with the
seed's `user@host` and path, streamed into RBD over SSH on first use as the seed copied them
with scp (the origin labels stay, for selecting).  Every produced document is checked
against the same schemas as the loader so a malformed input line is reported against that line.
It is pure: text in, documents or diagnostics out; `cli/legacy_cmd.py` does the I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from reconciler.loading import schema, yamldoc
from reconciler.loading.diagnostics import Diagnostic, SpecValidationError, dotted, show
from reconciler.model import API_VERSION, Kind

ORIGIN_HOST_LABEL = "volctl.io/origin-host"
ORIGIN_USER_LABEL = "volctl.io/origin-user"

_USER = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?"
MACHINE_LINE = re.compile(rf"(?P<user>{_USER})@(?P<host>{_HOST})\Z")
IMAGE_LINE = re.compile(rf"(?P<user>{_USER})@(?P<host>{_HOST}):(?P<path>/\S*)\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
TYPE_FIELDS = ("tid", "cpu", "ram", "disk")


@dataclass(frozen=True)
class Converted:
    """One produced document and the input line it came from."""

    document: dict[str, Any]
    file: str
    line: int

    @property
    def kind(self) -> Kind:
        return Kind(self.document["kind"])

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])


def _doc(
    kind: Kind, name: str, spec: dict[str, Any], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind.value, "metadata": metadata, "spec": spec}


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of lines that are neither blank nor comments."""
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].strip()
        if content:
            yield number, content


def safe_name(raw: str, fallback: str) -> str:
    """A valid volctl name from free text: unsafe runs become '-', edges trimmed, 63 max."""
    name = _UNSAFE.sub("-", raw)[:63].strip("-_.")
    return name or fallback


def machines(file: str, text: str) -> tuple[list[Converted], list[Diagnostic]]:
    """Host documents, pmid = position in the file (1..n)."""
    out: list[Converted] = []
    problems: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for line, content in _lines(text):
        match = MACHINE_LINE.match(content)
        if match is None:
            problems.append(
                Diagnostic(
                    file,
                    line,
                    "",
                    f"expected user@host (like root@10.1.33.121), got {show(content)}",
                )
            )
            continue
        user, host = match["user"], match["host"]
        if host in seen:
            problems.append(
                Diagnostic(
                    file,
                    line,
                    "",
                    f"host {show(host)} is listed twice (first on line {seen[host]})",
                )
            )
            continue
        seen[host] = line
        spec = {"uri": f"qemu+ssh://{user}@{host}/system", "pmid": len(out) + 1}
        out.append(
            Converted(_doc(Kind.HOST, safe_name(host, f"pm{len(out) + 1}"), spec), file, line)
        )
    return out, problems


SEED_64BIT_SUFFIX = "_64"


def seed_arch(stem: str) -> str:
    """The seed's naming convention: `name_64.img` needs a 64-bit machine (x86_64); any
    other image ran on 32-bit machines too (i686, which 64-bit hosts also run)."""
    return "x86_64" if stem.endswith(SEED_64BIT_SUFFIX) else "i686"


def images(file: str, text: str) -> tuple[list[Converted], list[Diagnostic]]:
    """Image documents, id = position in the file, name = the file's stem, arch from `_64`."""
    out: list[Converted] = []
    problems: list[Diagnostic] = []
    names: set[str] = set()
    for line, content in _lines(text):
        match = IMAGE_LINE.match(content)
        if match is None:
            problems.append(
                Diagnostic(
                    file,
                    line,
                    "",
                    "expected user@host:/path/name.img (like "
                    f"root@10.1.33.121:/var/lib/images/ubuntu.img), got {show(content)}",
                )
            )
            continue
        image_id = len(out) + 1
        path = match["path"]
        name = safe_name(PurePosixPath(path).stem, f"image-{image_id}")
        if name in names:
            name = safe_name(f"{name[:50]}-{image_id}", f"image-{image_id}")
        names.add(name)
        labels = {ORIGIN_HOST_LABEL: match["host"], ORIGIN_USER_LABEL: match["user"]}
        arch = seed_arch(PurePosixPath(path).stem)
        source = {"ssh": {"host": f"{match['user']}@{match['host']}", "path": path}}
        spec = {"id": image_id, "arch": arch, "source": source}
        out.append(Converted(_doc(Kind.IMAGE, name, spec, labels), file, line))
    return out, problems


def types(file: str, text: str) -> tuple[list[Converted], list[Diagnostic]]:
    """InstanceType documents named t<tid> from `{"types": [{tid, cpu, ram, disk}, ...]}`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Diagnostic(file, exc.lineno, "", f"invalid JSON: {exc.msg}")]
    line_of = _json_lines(file, text)
    items = data.get("types") if isinstance(data, dict) else None
    if not isinstance(items, list):
        shape = '{"types": [{"tid": 1, "cpu": 1, "ram": 512, "disk": 1}, ...]}'
        return [], [Diagnostic(file, line_of(()), "", f"expected {shape}")]
    out: list[Converted] = []
    problems: list[Diagnostic] = []
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        where = line_of(("types", i))
        path = dotted(("types", i))
        if not isinstance(item, dict):
            problems.append(
                Diagnostic(file, where, path, "must be an object with tid, cpu, ram, disk")
            )
            continue
        missing = [f for f in TYPE_FIELDS if f not in item]
        extra = sorted(set(item) - set(TYPE_FIELDS))
        if missing or extra:
            detail = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
            problems.append(
                Diagnostic(file, where, path, f"needs exactly tid, cpu, ram, disk ({detail})")
            )
            continue
        tid = item["tid"]
        if tid in seen and isinstance(tid, int):
            problems.append(
                Diagnostic(
                    file,
                    where,
                    f"{path}.tid",
                    f"tid {tid} is used twice (first on line {seen[tid]})",
                )
            )
            continue
        seen[tid] = where
        spec = {field: item[field] for field in TYPE_FIELDS}
        name = f"t{tid}" if isinstance(tid, int) and not isinstance(tid, bool) else f"type-{i + 1}"
        out.append(Converted(_doc(Kind.INSTANCE_TYPE, name, spec), file, where))
    return out, problems


def _json_lines(file: str, text: str) -> Callable[[tuple[str | int, ...]], int]:
    """Line lookup for a JSON text (JSON is YAML), degrading to line 1."""
    documents, problems = yamldoc.parse(file, text)
    if problems or not documents:
        return lambda _path: 1
    return documents[0].line_of


def check(converted: list[Converted]) -> list[Diagnostic]:
    """Schema problems of produced documents, reported against their input lines."""
    problems: list[Diagnostic] = []
    for item in converted:
        for error in schema.validator(schema.SCHEMA_FILES[item.kind]).iter_errors(item.document):
            for path, message in schema.explain(error):
                problems.append(Diagnostic(item.file, item.line, dotted(path), message))
    return problems


def convert(
    machines_src: tuple[str, str], images_src: tuple[str, str], types_src: tuple[str, str]
) -> list[Converted]:
    """All documents, or `SpecValidationError` with every problem (file:line) at once."""
    converted: list[Converted] = []
    problems: list[Diagnostic] = []
    for parse, (file, text) in ((machines, machines_src), (images, images_src), (types, types_src)):
        docs, errors = parse(file, text)
        converted.extend(docs)
        problems.extend(errors)
    problems.extend(check(converted))
    if problems:
        order = {machines_src[0]: 0, images_src[0]: 1, types_src[0]: 2}
        problems.sort(key=lambda d: (order.get(d.file, 3), d.line))
        raise SpecValidationError(problems)
    return converted


def dump(documents: list[dict[str, Any]], header: str = "") -> str:
    """Multi-document YAML in the field order a person would write."""
    body = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, allow_unicode=False)
    return header + body
