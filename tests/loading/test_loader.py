"""Table-driven tests of the loader: valid inputs become the right model, invalid ones
give exactly the right file:line diagnostics and never a model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.loading import (
    SpecValidationError,
    check_paths,
    check_texts,
    load_paths,
    load_texts,
    sources,
)
from reconciler.model import Kind, Origin, ReclaimPolicy

from .docs import BASE, SMALL, UBUNTU, attachment, doc, host, join, vm, volume

REPO = Path(__file__).resolve().parents[2]


def test_example_specs_load_completely() -> None:
    state = load_paths([REPO / "specs"])
    assert set(state.instance_types) == {"small", "medium", "large"}
    assert [(t.tid, t.cpu, t.ram, t.disk) for t in state.instance_types.values()] == [
        (1, 1, 512, 1),
        (2, 2, 1024, 2),
        (3, 4, 2048, 3),
    ]
    assert len(state.images) == 2
    assert len(state.hosts) == 2
    assert "test_vm" in state.vms
    assert state.vms["batch-1"].running is False
    assert state.vms["test_vm"].running is True
    assert state.vms["db-1"].host == "pm1"
    assert state.volumes["scratch"].reclaim_policy is ReclaimPolicy.RETAIN
    assert state.volumes["web-cache"].reclaim_policy is ReclaimPolicy.DELETE
    assert state.attachment_of_volume("db-data") is not None
    assert state.hosts["pm2"].cpu_capacity == 8
    assert state.hosts["pm2"].ram_capacity_mib == 16384


def test_every_example_file_carries_the_modeline() -> None:
    for path in sorted((REPO / "specs").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/volctl.schema.json", path


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        # no pmid anywhere: 1..n in name order, not file order
        ([("b", None), ("a", None), ("c", None)], {"a": 1, "b": 2, "c": 3}),
        # given ids are kept; the rest fill the lowest gaps in name order
        ([("a", 2), ("b", None), ("c", None), ("d", 4)], {"a": 2, "b": 1, "c": 3, "d": 4}),
        ([("z", 1), ("y", None)], {"z": 1, "y": 2}),
        ([("x", 100)], {"x": 100}),
    ],
)
def test_pmids_resolve_to_lowest_free_in_name_order(
    hosts: list[tuple[str, int | None]], expected: dict[str, int]
) -> None:
    text = join(*(host(n, f"  pmid: {p}\n" if p else "") for n, p in hosts))
    state = load_texts([("hosts.yaml", text)])
    assert {n: h.pmid for n, h in state.hosts.items()} == expected


def test_origins_point_at_each_document() -> None:
    text = "# comment\n" + join(SMALL, "\n" + UBUNTU)
    state = load_texts([("set.yaml", text)])
    assert state.instance_types["small"].meta.origin == Origin("set.yaml", 2)
    assert state.images["ubuntu"].meta.origin == Origin("set.yaml", 13)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(BASE.replace("\n", "\r\n"), id="crlf"),
        pytest.param("\ufeff" + BASE, id="bom"),
        pytest.param("---\n\n---\n" + BASE + "---\n...\n", id="empty-documents"),
        pytest.param(BASE.replace("cpu: 1", "cpu: 1.0"), id="integral-float"),
        pytest.param(BASE.replace("tid: 1", "tid: 0x1"), id="hex-int"),
        pytest.param(
            join(
                SMALL,
                UBUNTU,
                doc("InstanceType", "copy", "  <<: {cpu: 1, ram: 512, disk: 1}\n  tid: 9\n"),
            ),
            id="merge-key",
        ),
    ],
)
def test_yaml_variants_are_accepted(text: str) -> None:
    state = load_texts([("v.yaml", text)])
    assert state.instance_types["small"].cpu == 1
    assert isinstance(state.instance_types["small"].cpu, int)
    assert state.instance_types["small"].tid == 1


def test_anchors_and_aliases_are_values() -> None:
    text = join(
        SMALL,
        UBUNTU,
        doc(
            "VirtualMachine",
            "a",
            "  instanceType: *t\n  image: ubuntu\n",
            "  labels:\n    type: &t small\n",
        ),
    )
    state = load_texts([("a.yaml", text)])
    assert state.vms["a"].instance_type == "small"
    # anchors do not cross documents (YAML's rule), and the error says where
    (problem,) = check_texts(
        [("b.yaml", text + "---\n" + vm("b").replace("small", "*t"))]
    ).diagnostics
    assert (problem.line, problem.message) == (35, "invalid YAML: found undefined alias")


def test_labels_and_defaults() -> None:
    text = join(
        BASE,
        vm("v", "  antiAffinityGroup: web\n"),
        volume("d", "5", ""),
        doc("Volume", "e", "  size: 2\n", "  labels:\n    example.com/tier: gold\n    e: ''\n"),
    )
    state = load_texts([("x.yaml", text)])
    assert state.vms["v"].anti_affinity_group == "web"
    assert state.vms["v"].host is None
    assert state.volumes["d"].size == 5
    assert dict(state.volumes["e"].meta.labels) == {"example.com/tier": "gold", "e": ""}


def test_image_sources() -> None:
    text = join(
        SMALL, UBUNTU, doc("Image", "c", "  id: 2\n  source:\n    rbd: volctl/cirros@base\n")
    )
    state = load_texts([("i.yaml", text)])
    assert state.images["ubuntu"].source.path == "/var/lib/images/ubuntu.img"
    assert state.images["ubuntu"].source.rbd is None
    assert state.images["c"].source.rbd == "volctl/cirros@base"
    assert state.images["c"].id == 2


# (text, [(line, path, message substring)]) - every expected diagnostic, in order
INVALID: list[tuple[str, str, list[tuple[int, str, str]]]] = [
    ("negative-size", volume("v", "-5"), [(6, "spec.size", "must be ≥ 1 (got -5)")]),
    (
        "two-docs-two-errors",
        join(volume("v", "0"), volume("w", "99999")),
        [(6, "spec.size", "≥ 1"), (13, "spec.size", "≤ 65536")],
    ),
    ("missing-uri", doc("Host", "h", "  pmid: 1\n"), [(5, "spec.uri", "required field")]),
    (
        "unknown-field",
        volume("v", "1", "  sizeGb: 3\n"),
        [
            (
                7,
                "spec.sizeGb",
                "unknown field; did you mean 'size'? (allowed here: size, reclaimPolicy, bus)",
            )
        ],
    ),
    ("bad-name", volume("'a b'"), [(4, "metadata.name", "' ' is not allowed")]),
    (
        "dangling",
        join(BASE, vm("v").replace("image: ubuntu", "image: centos")),
        [(26, "spec.image", "refers to Image 'centos', which is not defined")],
    ),
    (
        "dup-name-across-kinds-is-fine-but-same-kind-is-not",
        join(volume("x"), BASE, vm("x"), volume("x")),
        [(38, "metadata.name", "duplicate name: Volume 'x' is already defined at t.yaml:1")],
    ),
    (
        "attached-twice",
        join(
            BASE,
            vm("a"),
            vm("b"),
            volume("d"),
            attachment("at1", "d", "a"),
            attachment("at2", "d", "b"),
        ),
        [(56, "spec.volume", "Volume 'd' is already attached by VolumeAttachment/at1 (t.yaml:43)")],
    ),
    (
        "duplicate-image-id",
        join(UBUNTU, doc("Image", "u2", "  id: 1\n  source:\n    rbd: a/b@c\n")),
        [(15, "spec.id", "image id 1 is already used by Image/ubuntu (t.yaml:1)")],
    ),
    (
        "schema-invalid-target-does-not-cascade",
        join(SMALL.replace("ram: 512", "ram: 1"), UBUNTU, vm("v")),
        [(8, "spec.ram", "must be ≥ 64 (got 1)")],
    ),
    (
        "yaml-error-stops-the-file-not-the-run",
        "a: [\n",
        [(2, "", "invalid YAML")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_inputs_give_exact_diagnostics(
    text: str, expected: list[tuple[int, str, str]]
) -> None:
    result = check_texts([("t.yaml", text)])
    assert result.state is None
    got = [(d.file, d.line, d.path) for d in result.diagnostics]
    assert got == [("t.yaml", line, path) for line, path, _ in expected]
    for diagnostic, (_, _, message) in zip(result.diagnostics, expected, strict=True):
        assert message in diagnostic.message
    with pytest.raises(SpecValidationError) as info:
        load_texts([("t.yaml", text)])
    assert info.value.diagnostics == result.diagnostics


def test_all_errors_across_files_in_one_run_and_no_partial_model() -> None:
    good = ("good.yaml", join(BASE, vm("ok")))
    bad1 = ("bad1.yaml", volume("v", "-1"))
    bad2 = ("bad2.yaml", "kind: Nope\n")
    result = check_texts([good, bad1, bad2])
    assert result.state is None
    assert [d.file for d in result.diagnostics] == ["bad1.yaml", "bad2.yaml"]
    assert result.counts[Kind.VIRTUAL_MACHINE] == 1


def test_diagnostic_text_format() -> None:
    (diagnostic,) = check_texts([("specs/v.yaml", volume("data", "-5"))]).diagnostics
    assert str(diagnostic) == "specs/v.yaml:6: Volume/data: spec.size: must be ≥ 1 (got -5)"
    assert diagnostic.to_dict()["text"] == str(diagnostic)


def test_directories_are_walked_recursively_sorted_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "vms.yml").write_text(vm("v"))
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / ".git" / "junk.yaml").write_text("not: [valid")
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("not yaml at all: [")
    result = check_paths([tmp_path])
    assert result.ok, result.diagnostics
    assert result.files == 2
    assert result.state is not None
    assert result.state.vms["v"].meta.origin == Origin(str(tmp_path / "b" / "vms.yml"), 1)


def test_stdin_is_read_for_dash() -> None:
    state = load_paths(["-"], stdin=io.BytesIO(join(BASE, vm("s")).encode()))
    assert state.vms["s"].meta.origin is not None
    assert state.vms["s"].meta.origin.file == "<stdin>"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file or directory"),
        ("emptydir", "no *.yaml or *.yml files in this directory"),
        ("emptyfile", "file is empty (no YAML documents)"),
        ("huge", "file is too large (the limit is 1000 bytes)"),
        ("unreadable-dir-entry", "cannot read"),
    ],
)
def test_unusable_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, message: str
) -> None:
    target = tmp_path / "x.yaml"
    if setup == "emptydir":
        target = tmp_path / "d"
        target.mkdir()
    elif setup == "emptyfile":
        target.write_text("")
    elif setup == "huge":
        monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1000)
        target.write_text(join(*(volume(f"v{i}") for i in range(30))))
    elif setup == "unreadable-dir-entry":
        target.symlink_to(tmp_path / "nowhere")  # a dangling link inside a directory walk
        target = tmp_path
    result = check_paths([target])
    assert result.state is None
    assert any(message in d.message for d in result.diagnostics), result.diagnostics


def test_bytes_and_revision_pass_through() -> None:
    state = load_texts([("r.yaml", BASE.encode())], revision="abc123")
    assert state.revision == "abc123"
    assert check_texts([("r.yaml", b"\xff\xfe\x00")]).state is None
