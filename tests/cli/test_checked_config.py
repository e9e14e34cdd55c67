"""The CLI's config reader: the full schema check once per content, then libyaml only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import checked_config
from reconciler.loading import config_file
from reconciler.loading.diagnostics import SpecValidationError
from reconciler.loading.schema import CONFIG_SCHEMA, schema_dir


@pytest.fixture
def checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full check made (the reader imports read_checked when it needs it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made: list[Path] = []
    real = config_file.read_checked

    def counting(path: Path) -> dict[str, object]:
        made.append(path)
        return real(path)

    monkeypatch.setattr(config_file, "read_checked", counting)
    return made


def test_the_schema_is_the_one_the_loader_uses() -> None:
    assert checked_config.schema_file() == schema_dir() / CONFIG_SCHEMA


def test_a_config_is_checked_once_per_content(tmp_path: Path, checks: list[Path]) -> None:
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text("api: http://127.0.0.1:9\ntoken: s3cret\n")
    first = checked_config.read(cfg)
    assert checked_config.read(cfg) == first == {"api": "http://127.0.0.1:9", "token": "s3cret"}
    assert len(checks) == 1  # the second start skipped the schema check
    marks = list(checked_config.marks_dir().iterdir())
    assert len(marks) == 1
    assert marks[0].read_bytes() == b""  # a name, never the content (the token)
    cfg.write_text("api: http://127.0.0.1:10\n")
    assert checked_config.read(cfg) == {"api": "http://127.0.0.1:10"}
    assert len(checks) == 2  # changed bytes: checked again


def test_a_bad_config_is_refused_every_time(tmp_path: Path, checks: list[Path]) -> None:
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text("apii: http://127.0.0.1:9\n")
    for _ in range(2):
        with pytest.raises(SpecValidationError, match=r"volctl.yaml:1: apii: .*did you mean"):
            checked_config.read(cfg)
    assert len(checks) == 2
    assert not checked_config.marks_dir().exists()


PROBE = """
import contextlib, io, json, sys
from reconciler.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def test_get_with_a_config_checked_before_loads_neither_jsonschema_nor_the_loader(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text("api: http://127.0.0.1:1\n")  # nothing listens: get fails after loading
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [
        set(
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", PROBE, "--config", str(cfg), "get", "vms"],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                ).stdout
            )
        )
        for _ in range(2)
    ]
    assert "jsonschema" in runs[0]  # the first start checks
    assert not {"jsonschema", "reconciler.loading"} & runs[1], sorted(
        {"jsonschema", "reconciler.loading"} & runs[1]
    )
