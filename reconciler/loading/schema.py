"""JSON Schema validation of single documents, with errors rewritten in plain words.

The schemas in `schemas/` are the single definition of the document shapes: editors use
them through the yaml-language-server modeline and the loader uses the very same files
here.  We dispatch on `kind` ourselves (one validator per kind) so an unknown kind gives
one clear message instead of a wall of `if/then` failures, then translate each
jsonschema error into a `Diagnostic` with the line of the offending field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from reconciler.loading.diagnostics import Diagnostic, described, dotted, show
from reconciler.loading.yamldoc import Document
from reconciler.model import API_VERSION, Kind

SCHEMA_FILES: Mapping[Kind, str] = {
    Kind.HOST: "host.schema.json",
    Kind.IMAGE: "image.schema.json",
    Kind.INSTANCE_TYPE: "instancetype.schema.json",
    Kind.VIRTUAL_MACHINE: "virtualmachine.schema.json",
    Kind.VOLUME: "volume.schema.json",
    Kind.VOLUME_ATTACHMENT: "volumeattachment.schema.json",
}
TOP_SCHEMA = "volctl.schema.json"
COMMON_SCHEMA = "common.schema.json"
CONFIG_SCHEMA = "config.schema.json"  # the volctl config file (reconciler/config.py)
KINDS = ", ".join(k.value for k in Kind)

_TYPE_WORDS = {
    "integer": "an integer",
    "string": "a string",
    "object": "a mapping",
    "boolean": "true or false",
    "array": "a list",
    "number": "a number",
}
_PATTERN_WORDS = {
    "uri": "a libvirt URI such as qemu+ssh://root@10.1.33.121/system or qemu:///system",
    "path": "an absolute file path made of letters, digits and . _ / + @ : = , ~ - "
    "without . or .. segments",
    "rbd": "an RBD snapshot reference pool/image@snap",
    # config.schema.json
    "api": "an http:// or https:// URL",
    "listen": "host:port",
    "interval": "a duration such as 30, 30s, 5m or 1h",
    "monitors": "host:port",
    "installation": "1-128 letters, digits, '_', '.', ':', '/' or '-', starting and ending "
    "with a letter or digit",
}
# Image spec.source.ssh's fields (keyed apart: `host` elsewhere is a Host's name)
_SSH_WORDS = {
    "host": "user@host or host as ssh takes it, like root@10.1.33.121 (letters, digits, "
    ". _ - only)",
    "path": _PATTERN_WORDS["path"],
    "identityFile": _PATTERN_WORDS["path"],
    "knownHostsFile": _PATTERN_WORDS["path"],
}
_NAME_RULE = "1-63 letters, digits, '_', '.' or '-', starting and ending with a letter or digit"


def schema_dir() -> Path:
    """Where the schemas are: $VOLCTL_SCHEMA_DIR, else `reconciler/schemas/` of an installed
    wheel (setup.py copies the top-level `schemas/` there at build time), else `schemas/` of
    the source tree (a checkout or an editable install)."""
    override = os.environ.get("VOLCTL_SCHEMA_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]
    installed = package / "schemas"
    if (installed / TOP_SCHEMA).is_file():
        return installed
    return package.parent / "schemas"


@cache
def _registry(directory: Path) -> Registry[Any]:
    resources = []
    for path in sorted(directory.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append(
            (path.name, Resource.from_contents(contents, default_specification=DRAFT202012))
        )
    return Registry().with_resources(resources)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # ECMA-262 `$` is the end of input; Python's also matches before a final newline,
    # which would let "vm1\n" pass as a name.  Our patterns end in `$`: make it `\Z`.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    _validator: Any, pattern: str, instance: Any, _schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _pattern}
)


@cache
def validator(name: str, directory: Path | None = None) -> Any:
    """A validator for one schema file, its `$ref`s to sibling files inlined.

    Inlining once (our schemas are small and not recursive) spares jsonschema a registry
    lookup per reference per document, which is most of its time on large spec sets.
    """
    directory = directory or schema_dir()
    registry = _registry(directory)
    return _Validator(_inline(registry.contents(name), name, registry), registry=registry)


def _inline(node: Any, base: str, registry: Registry[Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, base, registry) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _inline(value, base, registry) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        file, _, pointer = ref.partition("#")
        target_file = file or base
        target: Any = registry.contents(target_file)
        for part in filter(None, pointer.split("/")):
            target = target[part]
        # the referenced keywords apply alongside the siblings (only annotations here)
        out = {**_inline(target, target_file, registry), **out}
    return out


def kind_of(document: Document) -> tuple[Kind | None, list[Diagnostic]]:
    """The document's kind, or diagnostics saying why it has none we know."""
    data = document.data
    if not isinstance(data, dict):
        return None, [
            Diagnostic(
                document.file,
                document.line,
                "",
                "a document must be a mapping with apiVersion, kind, metadata and spec "
                f"(got {described(data)})",
            )
        ]
    kind = data.get("kind")
    if "kind" not in data:
        message = f"required field is missing (one of {KINDS})"
    elif isinstance(kind, str) and kind in Kind.__members__.values():
        return Kind(kind), []
    elif isinstance(kind, str):
        message = f"unknown kind {show(kind)} (expected one of {KINDS})"
    else:
        message = f"must be one of {KINDS} (got {described(kind)})"
    problems = [Diagnostic(document.file, document.line_of(("kind",)), "kind", message)]
    version = data.get("apiVersion")
    if "apiVersion" in data and version != API_VERSION:
        problems.append(
            Diagnostic(
                document.file,
                document.line_of(("apiVersion",)),
                "apiVersion",
                f"must be {show(API_VERSION)} (got {show(version)})",
            )
        )
    return None, problems


def subject_of(kind: Kind, data: Mapping[str, Any]) -> str:
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(name, str) and name:
        shown = name if name.isprintable() and len(name) <= 80 else show(name)
        return f"{kind.value}/{shown}"
    return kind.value


# Spec fields whose schema is exactly the name schema: their values can vary between
# documents of one shape without changing validity (test_schemas checks this table).
NAME_FIELDS: Mapping[Kind, tuple[str, ...]] = {
    Kind.VIRTUAL_MACHINE: ("instanceType", "image", "host", "antiAffinityGroup"),
    Kind.VOLUME_ATTACHMENT: ("volume", "vm"),
}


class Validation:
    """Validates documents, remembering shapes already found valid.

    Large spec sets repeat one shape under many names (30k VMs of three flavours, an
    attachment per volume), so a document equal to an already valid one except for its
    name and the name-typed reference fields, all of which pass the name pattern, is
    valid without running jsonschema again.  The memo lives as long as one load.
    """

    def __init__(self) -> None:
        self._valid: set[tuple[Kind, str]] = set()
        common = json.loads((schema_dir() / COMMON_SCHEMA).read_text(encoding="utf-8"))
        self._name = _compiled(common["$defs"]["name"]["pattern"])

    def __call__(self, document: Document, kind: Kind) -> list[Diagnostic]:
        key = self._key(kind, document.data)
        if key is not None and key in self._valid:
            return []
        problems = validate(document, kind)
        if not problems and key is not None:
            self._valid.add(key)
        return problems

    def _key(self, kind: Kind, data: dict[str, Any]) -> tuple[Kind, str] | None:
        metadata, spec = data.get("metadata"), data.get("spec")
        if not isinstance(metadata, dict) or not isinstance(spec, dict):
            return None
        if not self._is_name(metadata.get("name")):
            return None
        spec = dict(spec)
        for field in NAME_FIELDS.get(kind, ()):
            if field in spec:
                if not self._is_name(spec[field]):
                    return None
                spec[field] = ""
        # repr of plain YAML data tells 1, 1.0, True and "1" apart, and is cheap
        return kind, repr({**data, "metadata": {**metadata, "name": ""}, "spec": spec})

    def _is_name(self, value: Any) -> bool:
        return isinstance(value, str) and self._name.search(value) is not None


def validate(document: Document, kind: Kind) -> list[Diagnostic]:
    """Schema diagnostics for one document of a known kind, in line order."""
    subject = subject_of(kind, document.data)
    problems: list[Diagnostic] = []
    for error in validator(SCHEMA_FILES[kind]).iter_errors(document.data):
        for path, message in explain(error):
            problems.append(
                Diagnostic(document.file, document.line_of(path), dotted(path), message, subject)
            )
    unique = list(dict.fromkeys(problems))  # jsonschema repeats `required` per field
    unique.sort(key=lambda d: (d.line, d.path))
    return unique


def explain(error: jsonschema.ValidationError) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(field path, plain-words message) for one jsonschema error; may be several."""
    path: tuple[str | int, ...] = tuple(error.absolute_path)
    keyword = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    schema: Any = error.schema
    in_property_names = "propertyNames" in error.relative_schema_path
    if keyword == "required":
        for field in expected:
            if isinstance(value, dict) and field not in value:
                yield (*path, field), "required field is missing"
    elif keyword == "additionalProperties" and expected is False:
        known = list(schema.get("properties", {}))
        allowed = ", ".join(known)
        for extra in sorted(set(value) - set(known), key=str):
            yield (
                (*path, extra),
                f"unknown field{did_you_mean(extra, known)} (allowed here: {allowed})",
            )
    elif keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
        yield path, f"must be {wanted} (got {described(value)})"
    elif keyword == "minLength":
        yield path, "must not be empty" if expected == 1 else f"is too short (at least {expected})"
    elif keyword == "minimum":
        yield path, f"must be ≥ {expected} (got {show(value)})"
    elif keyword == "maximum":
        yield path, f"must be ≤ {expected} (got {show(value)})"
    elif keyword == "const":
        yield path, f"must be {show(expected)} (got {show(value)})"
    elif keyword == "enum":
        yield path, f"must be one of {', '.join(map(str, expected))} (got {show(value)})"
    elif keyword == "minProperties" and {"path", "rbd"} <= set(schema.get("properties", {})):
        yield path, "must set exactly one of 'path' or 'rbd' (got neither)"
    elif keyword == "maxProperties" and {"path", "rbd"} <= set(schema.get("properties", {})):
        yield path, "must set exactly one of 'path' or 'rbd' (got both)"
    elif keyword == "maxProperties":
        yield path, f"has too many entries (at most {expected})"
    elif keyword == "maxLength":
        what = "label key" if in_property_names else "value"
        yield (
            _key_path(path, value, in_property_names),
            (f"{what} is too long (at most {expected} characters, got {len(value)})"),
        )
    elif keyword == "pattern":
        yield (
            _key_path(path, value, in_property_names),
            _pattern_message(path, value, in_property_names),
        )
    else:  # pragma: no cover - keywords our schemas do not use
        yield path, error.message


def did_you_mean(word: str, choices: list[str]) -> str:
    """ "; did you mean 'size'?" for a near miss among `choices`, else "".

    Case is ignored when comparing (`secretUuid` is meant as `secretUUID`).
    """
    folded = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(folded), n=1, cutoff=0.7)
    return f"; did you mean {show(folded[close[0]])}?" if close else ""


def _key_path(
    path: tuple[str | int, ...], value: Any, in_property_names: bool
) -> tuple[str | int, ...]:
    return (*path, value) if in_property_names else path


def _pattern_message(path: tuple[str | int, ...], value: str, in_property_names: bool) -> str:
    if in_property_names:
        return (
            f"label key {show(value)} is not valid: an optional DNS prefix ending in '/', "
            f"then {_NAME_RULE}"
        )
    if len(path) >= 2 and path[-2] == "labels":
        return f"label value {show(value)} is not valid: empty, or {_NAME_RULE}"
    last = path[-1] if path else ""
    if isinstance(last, int) and len(path) >= 2:
        last = path[-2]  # an item of a list: the list's words
    if len(path) >= 2 and path[-2] == "ssh" and isinstance(last, str) and last in _SSH_WORDS:
        return f"must be {_SSH_WORDS[last]} (got {show(value)})"
    if isinstance(last, str) and last in _PATTERN_WORDS:
        return f"must be {_PATTERN_WORDS[last]} (got {show(value)})"
    return f"{show(value)} is not a valid name: {_NAME_RULE}{_culprit(value)}"


def _culprit(name: str) -> str:
    if not name:
        return " (got an empty string)"
    if len(name) > 63:
        return f" (got {len(name)} characters)"
    for char in name:
        if not (char.isascii() and (char.isalnum() or char in "_.-")):
            return f"; {char!r} is not allowed"
    return "; it must start and end with a letter or digit"
