"""The schema files editors use are the ones the loader uses, and they agree.

`volctl.schema.json` (the editor entry point, dispatching on kind) must accept every
document the loader accepts and reject the schema-level mistakes the loader rejects.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler.loading import check_texts, schema
from reconciler.model import Kind

from .docs import BASE, doc, host, volume

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"


def _documents(text: str) -> list[object]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_every_schema_is_valid_draft_2020_12() -> None:
    names = sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert names == sorted(
        [
            *schema.SCHEMA_FILES.values(),
            schema.TOP_SCHEMA,
            schema.COMMON_SCHEMA,
            schema.CONFIG_SCHEMA,
        ]
    )
    for path in SCHEMAS.glob("*.json"):
        contents = json.loads(path.read_text())
        assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(contents)


def test_top_level_schema_dispatches_every_kind() -> None:
    top = json.loads((SCHEMAS / schema.TOP_SCHEMA).read_text())
    assert top["properties"]["kind"]["enum"] == [k.value for k in Kind]
    refs = {branch["then"]["$ref"] for branch in top["allOf"]}
    assert refs == set(schema.SCHEMA_FILES.values())


def test_top_level_schema_accepts_the_examples() -> None:
    top = schema.validator(schema.TOP_SCHEMA)
    for path in sorted((REPO / "specs").glob("*.yaml")):
        for document in _documents(path.read_text()):
            assert list(top.iter_errors(document)) == [], (path, document)


@pytest.mark.parametrize(
    "text",
    [
        volume("v", "-5"),
        volume("v", "1", "  extra: 1\n"),
        host("h").replace("test:///h", "'not a uri'"),
        doc("Image", "i", "  id: 1\n  source: {}\n"),
        doc("Thing", "t", "  a: 1\n"),
        BASE.replace("apiVersion: volctl.io/v1", "apiVersion: v1", 1),
        volume("'a<b'"),
    ],
)
def test_top_level_schema_rejects_what_the_loader_rejects(text: str) -> None:
    assert not check_texts([("x.yaml", text)]).ok
    top = schema.validator(schema.TOP_SCHEMA)
    assert any(list(top.iter_errors(d)) for d in _documents(text))


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("test_vm", True),
        ("a", True),
        ("0", True),
        ("web-1.prod", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("vm1\n", False),  # Python's `$` would accept this; ECMA's must not
        ("-a", False),
        ("a_", False),
        ("a/b", False),
        ("a@b", False),
        ("<a>", False),
        ("a b", False),
        ("é", False),
    ],
)
def test_name_pattern(value: str, ok: bool) -> None:
    result = check_texts([("n.yaml", volume(json.dumps(value)))])
    assert result.ok is ok, result.diagnostics


def test_name_fields_table_matches_the_schemas() -> None:
    # the validation memo treats these fields like names; they must be exactly names
    name_schema = schema.validator(schema.COMMON_SCHEMA).schema["$defs"]["name"]
    for kind, fields in schema.NAME_FIELDS.items():
        spec = schema.validator(schema.SCHEMA_FILES[kind]).schema["properties"]["spec"]
        for field in fields:
            got = {k: v for k, v in spec["properties"][field].items() if k != "description"}
            want = {k: v for k, v in name_schema.items() if k != "description"}
            assert got == want, (kind, field)


def test_memo_never_lets_an_invalid_document_through() -> None:
    # same shape as a valid document except one non-name field: must still be checked
    text = "---\n".join(
        [
            volume("a", "1", "  reclaimPolicy: Retain\n"),
            volume("b", "1", "  reclaimPolicy: Keep\n"),
            volume("c", "1"),
            volume("d", "true"),
            volume("e", "1.5"),
        ]
    )
    problems = check_texts([("m.yaml", text)]).diagnostics
    assert [(d.subject, d.path) for d in problems] == [
        ("Volume/b", "spec.reclaimPolicy"),
        ("Volume/d", "spec.size"),
        ("Volume/e", "spec.size"),
    ]
