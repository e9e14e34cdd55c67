"""Which installation owns a domain: the mark names it, and legacy marks are judged by pool.

Two volctl installations that share libvirt hosts must never touch each other's domains.
These tests write the other installation's domain (and a pre-installation "legacy" one)
straight into a test:/// host, then check what our backend reports and that every
mutation is refused with the domain left byte for byte as it was.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.backends import domxml, rbd_owner
from reconciler.errors import Conflict, Transient
from reconciler.identity import Installation, default_installation
from reconciler.observe.types import ObservedDisk, OwnerMark
from reconciler.payload import CephAccess, DiskSpec

from .conftest import CEPH, INSTALLATION, HostFactory, spec

OTHER = "other-installation"


def _define_raw(hv: object, xml: str) -> None:
    hv.libvirt_connection().defineXML(xml)  # type: ignore[attr-defined]


def _xml(hv: object, name: str) -> str:
    return str(hv.libvirt_connection().lookupByName(name).XMLDesc(0))  # type: ignore[attr-defined]


# -- the mark ------------------------------------------------------------------------------


def test_the_mark_round_trips_with_its_installation() -> None:
    xml = domxml.render_domain(replace(spec("a"), epoch=3), installation="fsid-1/rbd")
    assert domxml.parse_domain(xml).mark == OwnerMark("a", 1, "h1", 3, "fsid-1/rbd")
    mark = xml.split("<metadata>")[1].split("</metadata>")[0]
    assert domxml.parse_mark(mark) == OwnerMark("a", 1, "h1", 3, "fsid-1/rbd")
    legacy = domxml.render_domain(spec("a"))  # what volctl wrote before installations
    assert "installation=" not in legacy
    assert domxml.parse_domain(legacy).mark == OwnerMark("a", 1, "h1")


def test_default_installation_is_fsid_and_pool() -> None:
    assert default_installation("2d4f-fsid", "vms") == "2d4f-fsid/vms"


@pytest.mark.parametrize(
    ("marked_by", "disks", "ours"),
    [
        ("test-installation", ("elsewhere/x",), True),  # the name decides, not the disks
        ("someone-else", ("rbd/vm-a-root",), False),
        (None, ("rbd/vm-a-root", "rbd/vol-v"), True),  # legacy, every disk in our pool
        (None, ("rbd/vm-a-root", "other/vol-v"), False),  # legacy, a disk elsewhere
        (None, ("rbd/ns/vm-a-root",), False),  # another namespace is not our pool
        (None, (), False),  # legacy without any RBD disk: not provably ours
    ],
)
def test_ownership_rule(marked_by: str | None, disks: tuple[str, ...], ours: bool) -> None:
    mark = OwnerMark("a", 1, "h", installation=marked_by)
    observed = tuple(ObservedDisk(f"vd{chr(97 + i)}", d) for i, d in enumerate(disks))
    assert (domxml.owned_mark(mark, observed, INSTALLATION) is not None) is ours


# -- the backend on a test:/// host ---------------------------------------------------------


def test_another_installations_domain_is_foreign_and_never_modified(
    make_host: HostFactory,
) -> None:
    hv = make_host()
    theirs = replace(spec("web", vmid=1), root_image="rbd/vm-web-root")
    _define_raw(hv, domxml.render_domain(theirs, installation=OTHER, domain_type="test"))
    hv.libvirt_connection().lookupByName("web").create()
    before = _xml(hv, "web")
    d = hv.observe().domain("web")
    assert d is not None
    assert d.mark is None  # foreign to us, though volctl marked it
    assert d.vcpus == 2  # and still counted against the host
    disk = DiskSpec("rbd/vol-v", "vdb", "s-v", CEPH)
    for action in (
        lambda: hv.define(spec("web", vmid=1)),  # same name, same vmid: same uuid
        lambda: hv.define(spec("web", vmid=1, spec_hash="changed")),
        lambda: hv.shutdown("web"),
        lambda: hv.destroy("web"),
        lambda: hv.attach_disk("web", disk),
        lambda: hv.detach_disk("web", "rbd/vm-web-root"),
    ):
        with pytest.raises(Conflict, match="installation 'other-installation'"):
            action()
    assert _xml(hv, "web") == before
    assert hv.libvirt_connection().lookupByName("web").isActive()


def test_legacy_mark_in_our_pool_is_ours_and_the_next_define_names_us(
    make_host: HostFactory,
) -> None:
    hv = make_host()
    _define_raw(hv, domxml.render_domain(spec("old", vmid=4), domain_type="test"))
    d = hv.observe().domain("old")
    assert d is not None
    assert d.mark == OwnerMark("old", 4, "h1")  # ours, still without a name
    hv.start("old")  # mutations accept it
    uuid = hv.libvirt_connection().lookupByName("old").UUIDString()
    hv.define(spec("old", vmid=4, spec_hash="h2"))
    after = hv.observe().domain("old")
    assert after is not None
    assert after.mark == OwnerMark("old", 4, "h2", installation=INSTALLATION.name)
    assert after.uuid == uuid


def test_legacy_mark_outside_our_pool_is_foreign(make_host: HostFactory) -> None:
    hv = make_host()
    elsewhere = CephAccess(CEPH.monitors, CEPH.auth_user, CEPH.secret_uuid, pool="pool-a")
    theirs = replace(spec("old"), root_image="pool-a/vm-old-root", ceph=elsewhere)
    _define_raw(hv, domxml.render_domain(theirs, domain_type="test"))
    before = _xml(hv, "old")
    d = hv.observe().domain("old")
    assert d is not None
    assert d.mark is None
    for action in (lambda: hv.define(spec("old")), lambda: hv.start("old")):
        with pytest.raises(Conflict, match="not all in pool rbd"):
            action()
    assert _xml(hv, "old") == before
    assert not hv.libvirt_connection().lookupByName("old").isActive()


def test_an_unknown_installation_makes_the_host_unknown(make_host: HostFactory) -> None:
    """While the installation cannot be named (default name, Ceph never reached), the host
    is unknown rather than guessed, and nothing is changed."""

    def unknown() -> Installation:
        raise Transient("rbd connect: timed out")

    hv = make_host(installation=unknown)
    h = hv.observe()
    assert not h.reachable
    assert "timed out" in (h.reason or "")
    with pytest.raises(Exception, match="timed out"):
        hv.define(spec("a"))


# -- the RBD side's name --------------------------------------------------------------------


def test_the_default_name_waits_for_one_connection_and_fails_fast_meanwhile() -> None:
    attempts: list[int] = []

    def down() -> None:
        attempts.append(1)
        raise Transient("rbd connect: timed out")

    owner = rbd_owner.Owner("vms", None, down)
    for _ in range(3):  # every host's observe asks; only the first one waits for Ceph
        with pytest.raises(Transient, match=r"installation name unknown .*timed out"):
            owner.get()
    assert len(attempts) == 1
    owner.learn("fsid-1")  # a later connection (the pool's own observe) read it
    assert owner.get() == Installation("fsid-1/vms", "vms")
    owner.learn("fsid-2")  # the first fsid stays
    assert owner.name() == "fsid-1/vms"
    assert owner.other({"volctl.installation": "fsid-1/vms"}) is None
    assert owner.other({}) is None  # an image from before installations: ours
    assert owner.other({"volctl.installation": "site-a"}) == "site-a"


def test_an_explicit_name_needs_no_ceph() -> None:
    def never() -> None:
        raise AssertionError("connected")

    assert rbd_owner.Owner("vms", "site-b", never).get() == Installation("site-b", "vms")
