"""The new domain fields load into the model, and mistakes in them say file:line: field."""

from __future__ import annotations

import pytest

from reconciler.loading import check_texts, load_texts
from reconciler.model import Network, NetworkKind, VirtType

from .docs import BASE, doc, host, join, vm


def test_domain_fields_load() -> None:
    text = join(
        BASE,
        host("h1", "  virtType: kvm\n  defaultNetworks:\n    - bridge: br0\n"),
        host("h2"),
        doc("Image", "arm", "  id: 2\n  arch: aarch64\n  source: {path: /img/arm.raw}\n"),
        vm(
            "a",
            "  networks:\n    - network: default\n    - bridge: br1\n    - user: true\n"
            "  graphics: vnc\n",
        ),
        vm("b", "  networks: []\n"),
        vm("c"),
    )
    state = load_texts([("t.yaml", text)])
    assert state.hosts["h1"].virt_type == VirtType.KVM
    assert state.hosts["h1"].default_networks == (Network(NetworkKind.BRIDGE, "br0"),)
    assert (state.hosts["h2"].virt_type, state.hosts["h2"].default_networks) == (None, None)
    assert (state.images["arm"].arch, state.images["ubuntu"].arch) == ("aarch64", "x86_64")
    assert state.vms["a"].networks == (
        Network(NetworkKind.NETWORK, "default"),
        Network(NetworkKind.BRIDGE, "br1"),
        Network(NetworkKind.USER),
    )
    assert state.vms["a"].vnc
    assert state.vms["b"].networks == ()
    assert (state.vms["c"].networks, state.vms["c"].vnc) == (None, False)


@pytest.mark.parametrize(
    ("extra", "line", "path", "message"),
    [
        ("  virtType: xen\n", 7, "spec.virtType", "must be one of kvm, qemu (got 'xen')"),
        (
            "  defaultNetworks:\n    - wifi: x\n",
            8,
            "spec.defaultNetworks[0].wifi",
            "unknown field (allowed here: network, bridge, user)",
        ),
    ],
)
def test_host_field_errors(extra: str, line: int, path: str, message: str) -> None:
    result = check_texts([("t.yaml", host("h", extra))])
    (d,) = result.diagnostics
    assert (d.file, d.line, d.path) == ("t.yaml", line, path)
    assert message in d.message


@pytest.mark.parametrize(
    ("extra", "line", "path", "message"),
    [
        ("  networks:\n    - network: a\n      bridge: b\n", 28, "spec.networks[0]", "at most 1"),
        ("  networks:\n    - user: false\n", 28, "spec.networks[0].user", "must be true"),
        ("  networks:\n    - bridge: 'a b'\n", 28, "spec.networks[0].bridge", "not a valid name"),
        ("  graphics: spice\n", 27, "spec.graphics", "must be one of vnc (got 'spice')"),
    ],
)
def test_vm_field_errors(extra: str, line: int, path: str, message: str) -> None:
    result = check_texts([("t.yaml", join(BASE, vm("v", extra)))])
    assert result.state is None
    (d,) = result.diagnostics
    assert (d.file, d.line, d.path) == ("t.yaml", line, path), d
    assert message in d.message


def test_image_arch_error() -> None:
    text = doc("Image", "i", "  id: 1\n  arch: amd64\n  source: {path: /x.raw}\n")
    (d,) = check_texts([("t.yaml", text)]).diagnostics
    assert (d.line, d.path) == (7, "spec.arch")
    assert "(got 'amd64')" in d.message
