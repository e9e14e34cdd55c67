"""`volctl plan` and `volctl reconcile` on input that never reaches a backend: invalid specs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from reconciler.cli.main import main

BAD = """apiVersion: volctl.io/v1
kind: VirtualMachine
metadata: {name: web1}
spec: {instanceType: small}
"""


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """The commands configure structlog for the process; give other tests theirs back."""
    yield
    structlog.reset_defaults()


def config(tmp_path: Path) -> str:
    path = tmp_path / "volctl.yaml"
    path.write_text(f"store: {tmp_path / 'store'}\nstateDir: {tmp_path / 'state'}\n")
    return str(path)


def test_plan_of_an_invalid_spec_exits_1_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text(BAD)
    code = main(["--config", config(tmp_path), "plan", "-f", str(spec)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{spec}:4" in err
    assert "image" in err
    assert "nothing planned" in err


def test_plan_and_reconcile_are_registered_with_their_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["reconcile", "--help"])
    assert "--once" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    out = capsys.readouterr().out
    assert "--allow-mass-delete" in out
    assert "2 when there are changes" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--git", "--branch", "--path", "--interval", "--listen", "--once"):
        assert flag in out
