"""The optional network-namespace mode: hosts on qemu+tcp over a private bridge, Ceph through
the relay, a host's link cut and healed, and nothing left behind by `down`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import libvirt
import pytest

from reconciler.lab import netns as netmod
from reconciler.lab.lab import Lab
from reconciler.lab.libvirt_host import with_timeout
from reconciler.lab.proc import LabError, alive, free_ports
from reconciler.lab.testing import clone_base, guest_xml, session_lab_dir, watchers

pytestmark = pytest.mark.lab


def _open_hostname(uri: str, timeout: float) -> str:
    def probe() -> str:
        conn = libvirt.open(uri)
        try:
            return str(conn.getHostname())
        finally:
            conn.close()

    return with_timeout(probe, timeout, uri)


def test_netns_lab_reaches_hosts_over_tcp_and_can_cut_one() -> None:
    lab = Lab(session_lab_dir(Path("/var/tmp"), "volctl-netns-lab"))
    lab.down(quiet=True)
    netns_dir_existed = netmod.NETNS_DIR.exists()
    v1, v2 = free_ports(2)
    info = lab.up(2, mon_port=v1, mon_v2_port=v2, netns=True)
    try:
        net = lab.net()
        assert net is not None
        assert info.netns
        assert [h.uri for h in info.hosts] == [net.uri("h1"), net.uri("h2")]
        for host in info.hosts:
            assert host.uri.startswith("qemu+tcp://10.231.")
            route = json.loads(
                subprocess.run(
                    ["ip", "-j", "route", "get", net.host_ip(host.name)],
                    capture_output=True, text=True, check=True,
                ).stdout
            )  # fmt: skip
            assert route[0]["dev"] == net.bridge  # never a real network
            assert _open_hostname(host.uri, 10) == host.name

        # each host sees only its own domains; qemu in h1's netns opens RBD via the relay
        root = clone_base(info, info.pool, "netns-root")
        conn = libvirt.open(info.hosts[0].uri)
        dom = conn.defineXML(
            guest_xml(info, "in-netns", root, Path(info.dir) / "consoles" / "n.log")
        )
        dom.create()
        assert watchers(info, root)
        other = libvirt.open(info.hosts[1].uri)
        assert [d.name() for d in other.listAllDomains()] == []
        other.close()
        conn.close()

        lab.cut_host("h2")
        with pytest.raises(LabError, match="no answer"):
            _open_hostname(info.hosts[1].uri, 3)
        assert _open_hostname(info.hosts[0].uri, 10) == "h1"  # the others are unaffected
        lab.heal_host("h2")
        assert _open_hostname(info.hosts[1].uri, 15) == "h2"
        relay = netmod.relay_pid(Path(info.dir))
        assert relay
        assert alive(relay)
    finally:
        lab.down()

    assert not alive(relay)
    assert netmod.links(net) == []
    existing = {p.name for p in netmod.NETNS_DIR.iterdir()} if netmod.NETNS_DIR.exists() else set()
    assert not {net.netns("h1"), net.netns("h2")} & existing
    if not netns_dir_existed:
        assert not netmod.NETNS_DIR.exists()
    assert not Path(info.dir).exists()
