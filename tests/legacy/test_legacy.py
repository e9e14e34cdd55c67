"""`volctl import-legacy`: the seed's files become a valid desired state; bad lines are
reported with their file:line and nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.legacy import ORIGIN_HOST_LABEL, ORIGIN_USER_LABEL, safe_name
from reconciler.loading import load_paths, load_texts
from reconciler.model import SshSource

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[2]


def _args(machines: Path, images: Path, types: Path, *extra: str) -> list[str]:
    return [
        "import-legacy",
        "--machines",
        str(machines),
        "--images",
        str(images),
        "--types",
        str(types),
        *extra,
    ]


SEED = _args(DATA / "machines", DATA / "images", DATA / "types.json")


def test_seed_files_to_stdout_load_as_the_seed_described(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(SEED) == 0
    out = capsys.readouterr().out
    state = load_texts([("converted.yaml", out)])
    assert {h.meta.name: (h.uri, h.pmid) for h in state.hosts.values()} == {
        "10.1.33.121": ("qemu+ssh://root@10.1.33.121/system", 1),
        "10.1.33.122": ("qemu+ssh://root@10.1.33.122/system", 2),
        "10.1.33.123": ("qemu+ssh://root@10.1.33.123/system", 3),
    }
    ubuntu = state.images["ubuntu"]
    # where the seed's image lives, streamed over SSH on first use (as the seed used scp)
    assert (ubuntu.id, ubuntu.source.path) == (1, None)
    assert ubuntu.source.ssh == SshSource("root@10.1.33.121", "/var/lib/images/ubuntu.img")
    assert state.images["cirros"].source.ssh == SshSource(
        "root@10.1.33.122", "/var/lib/images/cirros.img"
    )
    assert ubuntu.meta.labels == {ORIGIN_HOST_LABEL: "10.1.33.121", ORIGIN_USER_LABEL: "root"}
    assert state.images["cirros"].id == 2
    # the seed's naming: only `_64` images needed a 64-bit machine
    assert (ubuntu.arch, state.images["cirros"].arch) == ("i686", "i686")
    assert {n: (t.tid, t.cpu, t.ram, t.disk) for n, t in state.instance_types.items()} == {
        "t1": (1, 1, 512, 1),
        "t2": (2, 2, 1024, 2),
        "t3": (3, 4, 2048, 3),
    }


def test_output_directory_has_one_file_per_kind_and_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "converted"
    assert main([*SEED, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "hosts.yaml",
        "images.yaml",
        "instancetypes.yaml",
    ]
    assert main(["validate", "-f", str(out)]) == 0
    assert "8 documents valid (3 Host, 2 Image, 3 InstanceType)" in capsys.readouterr().out
    modeline = (out / "hosts.yaml").read_text().splitlines()[0]
    assert modeline.startswith("# yaml-language-server: $schema=")
    schema = (out / modeline.split("$schema=", 1)[1]).resolve()
    assert schema == (REPO / "schemas" / "volctl.schema.json").resolve()
    assert len(load_paths([out]).hosts) == 3


def test_shipped_copies_in_specs_match_the_test_data() -> None:
    for name in ("machines", "images", "types.json"):
        assert (REPO / "specs" / "legacy" / name).read_text() == (DATA / name).read_text()


def test_comments_blank_lines_and_whitespace_are_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machines = tmp_path / "machines"
    machines.write_bytes(
        b"\xef\xbb\xbf# the lab\r\n\r\n  root@10.0.0.1  \r\nroot@10.0.0.2 # rack 2\r\n"
    )
    images = tmp_path / "images"
    images.write_text(
        "# images\n\nroot@10.0.0.1:/img/deb.img\nroot@10.0.0.2:/other/deb.img\n"
        "root@10.0.0.2:/img/deb_64.img\n"
    )
    types = tmp_path / "types.json"
    types.write_text('{"types": [{"tid": 7, "cpu": 2, "ram": 4096, "disk": 20}]}')
    assert main(_args(machines, images, types)) == 0
    state = load_texts([("out.yaml", capsys.readouterr().out)])
    assert [h.pmid for h in state.hosts.values()] == [1, 2]
    # two images with the same file name get distinct names, ids stay the line order
    assert {n: i.id for n, i in state.images.items()} == {"deb": 1, "deb-2": 2, "deb_64": 3}
    assert {n: i.arch for n, i in state.images.items()} == {
        "deb": "i686",
        "deb-2": "i686",
        "deb_64": "x86_64",
    }
    assert state.instance_types["t7"].ram == 4096


# (file to break, content, expected stderr lines before "nothing written")
MALFORMED = [
    (
        "machines",
        "root@10.1.33.121\n\nroot 10.1.33.122\nroot@\n",
        [
            "{f}:3: expected user@host (like root@10.1.33.121), got 'root 10.1.33.122'",
            "{f}:4: expected user@host (like root@10.1.33.121), got 'root@'",
        ],
    ),
    (
        "machines",
        "root@a\nroot@b;reboot\nadmin@a\n",
        [
            "{f}:2: expected user@host (like root@10.1.33.121), got 'root@b;reboot'",
            "{f}:3: host 'a' is listed twice (first on line 1)",
        ],
    ),
    (
        "images",
        "# one bad line\nroot@h:relative/path.img\nroot@h:/ok.img\nroot@h:/a/../b.img\n",
        [
            "{f}:2: expected user@host:/path/name.img (like "
            "root@10.1.33.121:/var/lib/images/ubuntu.img), got 'root@h:relative/path.img'",
            "{f}:4: spec.source.ssh.path: must be an absolute file path made of letters, digits and"
            " . _ / + @ : = , ~ - without . or .. segments (got '/a/../b.img')",
        ],
    ),
    (
        "types.json",
        '{"types": [\n  {"tid": 1, "cpu": 1, "ram": 512, "disk": 1},\n'
        '  {"tid": 1, "cpu": 2, "ram": 1024, "disk": 2},\n'
        '  {"tid": 3, "cpu": 0, "ram": 2048, "disk": 3},\n'
        '  {"tid": 4, "cpu": 1, "ram": 512},\n'
        '  "big"\n]}\n',
        [
            "{f}:3: types[1].tid: tid 1 is used twice (first on line 2)",
            "{f}:4: spec.cpu: must be ≥ 1 (got 0)",
            "{f}:5: types[3]: needs exactly tid, cpu, ram, disk (missing disk)",
            "{f}:6: types[4]: must be an object with tid, cpu, ram, disk",
        ],
    ),
    (
        "types.json",
        '{"types": [\n  {"tid": 1,}\n]}\n',
        ["{f}:2: invalid JSON: Expecting property name enclosed in double quotes"],
    ),
    (
        "types.json",
        '[{"tid": 1}]\n',
        ['{f}:1: expected {{"types": [{{"tid": 1, "cpu": 1, "ram": 512, "disk": 1}}, ...]}}'],
    ),
]


@pytest.mark.parametrize(("broken", "content", "expected"), MALFORMED)
def test_malformed_lines_are_reported_and_nothing_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    broken: str,
    content: str,
    expected: list[str],
) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(DATA, inputs)
    (inputs / broken).write_text(content)
    out = tmp_path / "out"
    code = main(
        _args(inputs / "machines", inputs / "images", inputs / "types.json", "-o", str(out))
    )
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.splitlines() == [
        *(line.format(f=inputs / broken) for line in expected),
        "import-legacy: nothing written",
    ]
    assert not out.exists()


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_args(tmp_path / "nope", DATA / "images", DATA / "types.json"))
    assert code == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'nope'}: cannot read:")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ubuntu", "ubuntu"),
        ("Ubuntu 22.04 (LTS)", "Ubuntu-22.04-LTS"),
        ("-rf", "rf"),
        ("<>", "fallback"),
        ("é", "fallback"),
        ("a" * 80, "a" * 63),
    ],
)
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw, "fallback") == expected
