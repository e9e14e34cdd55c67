"""Fuzzing: whatever the input, the loader answers with a model or its own SpecError.

Never a traceback from yaml, jsonschema, a codec or a recursion limit: raw bytes, random
text, random YAML structures shaped like our documents, and random edits of valid specs.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import SpecError
from reconciler.loading import check_texts, load_texts
from reconciler.model import DesiredState

from .docs import BASE, attachment, join, vm, volume

VALID = join(BASE, vm("v1"), volume("d"), attachment("a", "d", "v1"))
FUZZ = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(raw: str | bytes) -> None:
    try:
        state = load_texts([("fuzz.yaml", raw)])
    except SpecError as exc:
        message = str(exc)
    else:
        message = ""
        assert isinstance(state, DesiredState)
    assert message or state


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    _load(raw)


@FUZZ
@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    _load(text)


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=300))
def test_text_with_surrogates_and_controls(text: str) -> None:
    _load(text)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", "{", "- ", " ", "? "]))
def test_deep_nesting_never_crashes_the_process(depth: int, opener: str) -> None:
    # libyaml recurses in C; too deep would be a segfault, not an exception
    closer = {"[": "]", "{": "}"}.get(opener, "")
    if opener == " ":
        text = "".join(" " * i + "a:\n" for i in range(min(depth, 3000)))
    else:
        text = "x: " + opener * depth + "1" + closer * depth + "\n"
    _load(text)


@FUZZ
@given(st.text(alphabet=":-[]{}&*!|>'\"%@`#,?\n\t abc0123456789", max_size=400))
def test_yaml_punctuation_soup(text: str) -> None:
    _load(text)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["small", "ubuntu", "test_vm", "Retain", "Delete", "volctl.io/v1", "h"]),
)
_keys = st.one_of(
    st.sampled_from(
        [
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "name",
            "labels",
            "uri",
            "pmid",
            "id",
            "source",
            "path",
            "rbd",
            "tid",
            "cpu",
            "ram",
            "disk",
            "instanceType",
            "image",
            "host",
            "running",
            "size",
            "reclaimPolicy",
            "volume",
            "vm",
            "capacity",
        ]
    ),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=25,
)
_documents = st.fixed_dictionaries(
    {
        "apiVersion": st.one_of(st.just("volctl.io/v1"), _scalars),
        "kind": st.one_of(
            st.sampled_from(
                ["Host", "Image", "InstanceType", "VirtualMachine", "Volume", "VolumeAttachment"]
            ),
            _scalars,
        ),
        "metadata": st.one_of(st.fixed_dictionaries({"name": _scalars}), _values),
        "spec": _values,
    }
)


@FUZZ
@given(st.lists(_documents, min_size=1, max_size=6))
def test_structured_documents(documents: list[dict[str, Any]]) -> None:
    _load(yaml.safe_dump_all(documents))


@FUZZ
@given(st.data())
def test_random_edits_of_a_valid_spec(data: st.DataObject) -> None:
    text = VALID
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        cut = data.draw(st.integers(min_value=0, max_value=8))
        insert = data.draw(st.text(max_size=6))
        text = text[:at] + insert + text[at + cut :]
    _load(text)


def test_valid_spec_still_loads() -> None:
    # the edit test starts from a valid spec; make sure it is one
    assert load_texts([("ok.yaml", VALID)]).attachments["a"].vm == "v1"


_BAD_VALUES = {
    "instanceType": "'a b'",
    "image": "'<img>'",
    "running": "'maybe'",
    "antiAffinityGroup": "'-x'",
    "host": "42",
}


@FUZZ
@given(
    st.sampled_from(sorted(_BAD_VALUES)),
    st.lists(st.sampled_from(["", "# note", "   # indented note"]), min_size=5, max_size=5),
    st.integers(min_value=0, max_value=3),
)
def test_the_error_line_is_the_offending_fields_line(
    field: str, fillers: list[str], leading_docs: int
) -> None:
    values = {
        "instanceType": "small",
        "image": "ubuntu",
        "running": "true",
        "antiAffinityGroup": "g",
        "host": "h",
    }
    values[field] = _BAD_VALUES[field]
    lines = ["apiVersion: volctl.io/v1", "kind: VirtualMachine", "metadata:", "  name: v", "spec:"]
    for (key, value), filler in zip(values.items(), fillers, strict=True):
        lines += [filler, f"  {key}: {value}"] if filler else [f"  {key}: {value}"]
    prefix = "".join(f"{volume(f'p{i}')}---\n" for i in range(leading_docs))
    text = prefix + "\n".join(lines) + "\n"
    expected = text.splitlines().index(f"  {field}: {_BAD_VALUES[field]}") + 1
    body = join(
        BASE, "apiVersion: volctl.io/v1\nkind: Host\nmetadata: {name: h}\nspec: {uri: 'test:///'}\n"
    )
    problems = check_texts([("base.yaml", body), ("vm.yaml", text)]).diagnostics
    assert [(d.file, d.line, d.path) for d in problems] == [("vm.yaml", expected, f"spec.{field}")]
