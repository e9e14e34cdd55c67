"""Config to plan settings: where guests find Ceph comes from the config or from ceph.conf.

The wiring builds its backends with `reconciler.controller.factory`, so the CLI and the
controller parse monitors and apply Host overrides exactly one way.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config import CephConfig, Config
from reconciler.controller.factory import monitors_from_conf
from reconciler.controller.wiring import libvirt_opener, plan_settings
from reconciler.model import Host, Meta
from tests.execute.fakeworld import FakeStorage


def test_monitors_prefer_v1_addresses_of_mon_host(tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text(
        "[global]\nfsid = x\n"
        "mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]\n"
    )
    assert monitors_from_conf(str(conf)) == (("127.0.0.1", 6789), ("10.0.0.2", 6789))


def test_plain_mon_host_and_missing_file(tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon_host = 192.168.1.5:6789, 192.168.1.6:6789\n")
    assert monitors_from_conf(str(conf)) == (("192.168.1.5", 6789), ("192.168.1.6", 6789))
    assert monitors_from_conf(str(tmp_path / "nope.conf")) == ()


def test_plan_settings_from_config_never_hold_a_key(tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon host = v1:127.0.0.1:22520\n[client]\nkeyring = /k\n")
    cfg = Config(
        console_dir="/var/log/c",
        ceph=CephConfig(conf=str(conf), pool="p1", user="vc", secret_uuid="u-1"),
    )
    s = plan_settings(cfg, allow_mass_delete=True)
    assert s.ceph.monitors == (("127.0.0.1", 22520),)
    assert s.ceph.pool == "p1"
    assert s.ceph.auth_user == "vc"
    assert s.ceph.secret_uuid == "u-1"
    assert s.console_log("web1") == "/var/log/c/web1+console.log"
    assert s.allow_mass_delete
    explicit = Config(ceph=CephConfig(conf=str(conf), monitors=(("10.1.1.1", 6789),)))
    assert plan_settings(explicit).ceph.monitors == (("10.1.1.1", 6789),)


def test_wiring_uses_the_factory_for_monitors_and_hosts(tmp_path: Path) -> None:
    from reconciler.controller import wiring

    assert not hasattr(wiring, "monitors_from_conf")  # one parser, in the factory
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon host = v1:127.0.0.1:1\n[client]\nmon host = 10.9.9.9:6790\n")
    assert plan_settings(Config(ceph=CephConfig(conf=str(conf)))).ceph.monitors == (
        ("10.9.9.9", 6790),
    )
    host = Host(meta=Meta(name="h7"), uri="test:///default", pmid=1, cpu_capacity=3)
    hv = libvirt_opener(FakeStorage())(host)
    try:
        obs = hv.observe()
        assert (obs.name, obs.reachable, obs.cpus) == ("h7", True, 3)
    finally:
        hv.close()
