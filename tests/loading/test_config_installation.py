"""`installation:` in the config: the name this installation's ownership marks carry."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import config
from reconciler.errors import SpecError
from reconciler.loading import config_file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "volctl.yaml"
    path.write_text(text)
    return path


def test_installation_is_optional_and_read_when_given(tmp_path: Path) -> None:
    assert (
        config_file.load_config(str(write(tmp_path, "listen: 127.0.0.1:1\n"))).installation is None
    )
    path = write(tmp_path, "installation: site-b.prod\n")
    assert config_file.load_config(str(path)).installation == "site-b.prod"
    path = write(tmp_path, "installation: 0b6e1c2a-5f0d-4e67-9a1b-2c3d4e5f6a7b/vms\n")
    assert config_file.load_config(str(path)).installation.endswith("/vms")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value", ["'bad name'", "'-lead'", "''", "42", "[a]", "'x" + "y" * 140 + "'"]
)
def test_a_bad_installation_is_refused_with_file_line_and_field(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"listen: 127.0.0.1:1\ninstallation: {value}\n")
    with pytest.raises(SpecError) as err:
        config_file.load_config(str(path))
    want = "must be 1-128 letters" if value.startswith("'") else "must be a string"
    assert f"{path}:2: installation: {want}" in str(err.value)
    with pytest.raises(SpecError, match=r"installation: .* is not a valid installation name"):
        config.load_config(str(path))  # the unchecked reader refuses it too
