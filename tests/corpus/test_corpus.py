"""Every bad document in the corpus gives exactly its expected file:line errors, exit 1.

`bad/` holds one self-contained spec file per mistake (bad YAML, encodings, unknown
kinds, missing or extra fields, wrong types, out-of-range numbers, dangling references,
duplicates, a volume attached twice, injection attempts in names...).  `expected.json`
maps each file name to the exact diagnostic lines `volctl validate` must print, run from
inside `bad/` so the texts carry the bare file name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main

BAD = Path(__file__).resolve().parent / "bad"
EXPECTED: dict[str, list[str]] = json.loads(
    (BAD.parent / "expected.json").read_text(encoding="utf-8")
)
FILES = sorted(p.name for p in BAD.iterdir())
VOLCTL = Path(sys.executable).parent / "volctl"


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 50
    assert sorted(EXPECTED) == FILES
    assert all(EXPECTED[name] for name in FILES)


@pytest.mark.parametrize("name", FILES)
def test_bad_file_gives_its_exact_errors(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BAD)
    code = main(["validate", "-f", name])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1
    assert out == ""
    assert lines[:-1] == EXPECTED[name]
    count = len(EXPECTED[name])
    assert lines[-1] == f"{name}: invalid, {count} problem{'s' if count != 1 else ''}"
    # every diagnostic names this file, and a line wherever one exists
    for line in lines[:-1]:
        assert line.startswith(f"{name}:")


@pytest.mark.parametrize(
    "name", ["065-name-xml-lt.yaml", "093-volume-attached-twice.yaml", "103-many-problems.yaml"]
)
def test_json_output_lists_the_same_diagnostics(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BAD)
    code = main(["validate", "-o", "json", "-f", name])
    diagnostics = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [d["text"] for d in diagnostics] == EXPECTED[name]
    assert all(d["file"] == name and d["line"] > 0 and d["message"] for d in diagnostics)


@pytest.mark.parametrize(
    "name",
    ["106-binary-garbage.yaml", "093-volume-attached-twice.yaml"],
)
def test_installed_volctl_command(name: str) -> None:
    done = subprocess.run(
        [str(VOLCTL), "validate", "-f", name],
        cwd=BAD,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[:-1] == EXPECTED[name]
    assert "Traceback" not in done.stderr


def test_whole_corpus_at_once_fails_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(BAD.parent)
    assert main(["validate", "-o", "json", "-f", "bad"]) == 1
    diagnostics = json.loads(capsys.readouterr().out)
    files = {Path(d["file"]).name for d in diagnostics}
    assert files == set(FILES)  # every file contributes at least one problem
