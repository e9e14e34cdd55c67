"""`volctl validate`: exit codes, summary, JSON output, stdin, the example specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.cli.main import main

from .docs import BASE, vm, volume

REPO = Path(__file__).resolve().parents[2]
VOLCTL = Path(sys.executable).parent / "volctl"


def test_example_specs_are_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "-f", "specs/"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        "specs/: 17 documents valid (2 Host, 2 Image, 3 InstanceType, 5 VirtualMachine, "
        "3 Volume, 2 VolumeAttachment)\n"
    )


def test_example_specs_with_the_installed_command() -> None:
    done = subprocess.run(
        [str(VOLCTL), "validate", "-f", "specs/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "17 documents valid" in done.stdout


def test_json_output_is_an_empty_list_when_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "-o", "json", "-f", "specs"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_several_paths_and_repeated_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "vm.yaml").write_text(vm("x"))
    (tmp_path / "bad.yaml").write_text(volume("v", "-5"))
    base, one, bad = (str(tmp_path / n) for n in ("base.yaml", "vm.yaml", "bad.yaml"))
    assert main(["validate", "-f", base, one]) == 0
    assert main(["validate", "-f", base, "-f", one]) == 0
    capsys.readouterr()
    assert main(["validate", "-f", base, one, bad]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{bad}:6: Volume/v: spec.size: must be ≥ 1 (got -5)"
    assert err[-1].endswith("invalid, 1 problem")


def test_stdin(tmp_path: Path) -> None:
    def run(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VOLCTL), "validate", "-f", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    good = run(BASE + "---\n" + vm("from-stdin"))
    assert good.returncode == 0
    assert good.stdout.startswith("<stdin>: 3 documents valid")
    bad = run(vm("orphan"))
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[0] == (
        "<stdin>:6: VirtualMachine/orphan: spec.instanceType: refers to InstanceType "
        "'small', which is not defined (no InstanceType is defined at all)"
    )


def test_missing_path_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "/nonexistent/specs"]) == 1
    assert capsys.readouterr().err.startswith("/nonexistent/specs: no such file or directory")


def test_pre_commit_hook_definition() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "volctl-validate"
    assert hook["entry"] == "volctl validate -f"
    assert hook["language"] == "python"
    assert hook["files"] == r"\.(ya?ml)$"
    # what pre-commit would run with the default args must pass on this repository
    command = [str(VOLCTL), *hook["entry"].split()[1:], *hook["args"]]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
