"""`defaultNetworks` and `consoleDir` in the volctl config reach the plan settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.controller.wiring import plan_settings
from reconciler.errors import SpecError
from reconciler.model import Network, NetworkKind


def test_default_networks_reach_the_plan_settings(tmp_path: Path) -> None:
    path = tmp_path / "volctl.yaml"
    path.write_text("defaultNetworks:\n  - network: default\n  - user: true\n")
    cfg = load_config(str(path))
    assert cfg.default_networks == (
        Network(NetworkKind.NETWORK, "default"),
        Network(NetworkKind.USER),
    )
    settings = plan_settings(cfg)
    assert settings.default_networks == cfg.default_networks
    assert settings.console_log("web1") == "/var/log/libvirt/qemu/web1+console.log"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaultNetworks: lan\n", "defaultNetworks: must be a list"),
        ("defaultNetworks:\n  - wifi: x\n", "defaultNetworks[0]: must be one of"),
        ("defaultNetworks:\n  - bridge: ''\n", "defaultNetworks[0].bridge: must be a name"),
    ],
)
def test_bad_default_networks_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "volctl.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(str(path))
