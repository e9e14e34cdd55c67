"""Device changes on one libvirt host: disks and NICs, plugged and unplugged the same way.

Why a module of its own: attach and detach follow one rule for every device kind, so it is
written once (`_plug`, `_unplug`) and each kind only says how to find its device in a domain
XML (an RBD image name, a MAC) and how to add or remove it there:

- **plug** adds only what is missing: `AFFECT_LIVE` while the domain runs and the live XML
  lacks the device, `AFFECT_CONFIG` while the persistent config lacks it;
- **unplug** removes the device from the persistent config and *requests* the live unplug by
  device alias (asynchronous; a virtio device leaves once the guest acknowledges, which the
  DEVICE_REMOVED event and the next `observe()` tell);
- on libvirt's test driver, which has no hot-plug, both redefine the persistent XML.

`LibvirtDevices` is a mixin of `LibvirtHypervisor`, which provides the connection and the
lookups declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import libvirt

from reconciler.backends import domxml
from reconciler.backends.libvirt_conn import LibvirtConnection
from reconciler.errors import Conflict, NotFound
from reconciler.payload import DiskSpec, NicSpec

_INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


class LibvirtDevices:
    name: str
    _conn: LibvirtConnection

    # provided by LibvirtHypervisor
    def _lookup_ours(self, name: str) -> Any:
        raise NotImplementedError

    def _xml(self, dom: Any, flags: int) -> str:
        raise NotImplementedError

    def _is_active(self, dom: Any) -> bool:
        raise NotImplementedError

    def _emulated(self) -> bool:
        raise NotImplementedError

    def _define_xml(self, xml: str) -> Any:
        raise NotImplementedError

    def _changed(self, dom: Any) -> None:
        raise NotImplementedError

    def _plug(
        self,
        dom: Any,
        device_xml: str,
        find: Callable[[str], str | None],
        add: Callable[[str, str], str],
        check: Callable[[str], None] | None = None,
        *,
        defs: tuple[str, str, bool] | None = None,
    ) -> None:
        """Ensure the device `find` locates is in the persistent config and, while the domain
        runs, in the live one: attach with only the flags still missing.  `check` vets each
        definition first (e.g. a disk target held by another image).  `defs`: the domain's
        definitions as `_definitions` read them, when the caller already did."""
        cfg, live, active = defs or self._definitions(dom)
        emulated = self._emulated()
        if check is not None:
            check(cfg)
            check(live)
        in_cfg, in_live = find(cfg) is not None, find(live) is not None
        if emulated:  # the test driver has no hot-plug: redefine with the device
            if not in_cfg:
                self._define_xml(add(cfg, device_xml))
            return
        flags = (_LIVE if active and not in_live else 0) | (0 if in_cfg else _CONFIG)
        if flags:
            self._conn.call(
                "attachDeviceFlags", lambda _c: dom.attachDeviceFlags(device_xml, flags)
            )
            self._changed(dom)

    def _definitions(self, dom: Any) -> tuple[str, str, bool]:
        """(persistent XML, live XML, running): the live XML is the persistent one while the
        domain is off, and on the test driver, which has no live devices."""
        cfg = self._xml(dom, _INACTIVE)
        active = not self._emulated() and self._is_active(dom)
        return cfg, (self._xml(dom, 0) if active else cfg), active

    def _unplug(
        self, dom: Any, find: Callable[[str], str | None], remove: Callable[[str], str]
    ) -> None:
        """Remove the device from the persistent config and *request* its live unplug (by
        alias, asynchronous: the guest acknowledges, DEVICE_REMOVED tells completion)."""
        cfg = self._xml(dom, _INACTIVE)
        cfg_dev = find(cfg)
        if self._emulated():
            if cfg_dev is not None:
                self._define_xml(remove(cfg))
            return
        live_dev = find(self._xml(dom, 0)) if self._is_active(dom) else None
        if cfg_dev is not None:
            self._conn.call("detachDeviceFlags", lambda _c: dom.detachDeviceFlags(cfg_dev, _CONFIG))
        if live_dev is not None:
            alias = domxml.disk_alias(live_dev)
            if alias:
                self._conn.call("detachDeviceAlias", lambda _c: dom.detachDeviceAlias(alias, _LIVE))
            else:
                self._conn.call(
                    "detachDeviceFlags", lambda _c: dom.detachDeviceFlags(live_dev, _LIVE)
                )
        self._changed(dom)

    def attach_disk(self, domain: str, disk: DiskSpec) -> None:
        dom = self._lookup_ours(domain)
        defs = self._definitions(dom)
        disk = aligned(disk, defs[0], defs[1])

        def target_free(xml: str) -> None:
            for d in domxml.parse_domain(xml).disks:
                if d.target == disk.target and d.rbd_image != disk.rbd_image:
                    raise Conflict(
                        f"{self.name}: {domain}: target {disk.target} holds {d.rbd_image}"
                    )

        self._plug(
            dom,
            domxml.render_disk(disk),
            lambda xml: domxml.find_disk(xml, disk.rbd_image),
            domxml.with_disk,
            target_free,
            defs=defs,
        )

    def detach_disk(self, domain: str, rbd_image: str) -> None:
        self._unplug(
            self._lookup_ours(domain),
            lambda xml: domxml.find_disk(xml, rbd_image),
            lambda xml: domxml.without_disk(xml, rbd_image),
        )

    def attach_nic(self, domain: str, nic: NicSpec) -> None:
        self._plug(
            self._lookup_ours(domain),
            domxml.render_nic(nic),
            lambda xml: domxml.find_nic(xml, nic.mac),
            domxml.with_nic,
        )

    def detach_nic(self, domain: str, mac: str) -> None:
        self._unplug(
            self._lookup_ours(domain),
            lambda xml: domxml.find_nic(xml, mac),
            lambda xml: domxml.without_nic(xml, mac),
        )

    def resize_disk(self, domain: str, rbd_image: str, size_bytes: int) -> None:
        dom = self._lookup_ours(domain)
        if self._emulated() or not self._is_active(dom):
            return  # nothing live to tell; the guest sees the size at its next boot
        disk = domxml.find_disk(self._xml(dom, 0), rbd_image)
        if disk is None:
            raise NotFound(f"{self.name}: {domain}: {rbd_image} is not attached")
        target = domxml.disk_target(disk)
        # qemu's block_resize would also *shrink* the RBD image: grow only, and only once.
        capacity = int(self._conn.call("blockInfo", lambda _c: dom.blockInfo(target))[0])
        if size_bytes <= capacity:
            return
        flags = libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES
        self._conn.call("blockResize", lambda _c: dom.blockResize(target, size_bytes, flags))


def aligned(disk: DiskSpec, cfg_xml: str, live_xml: str) -> DiskSpec:
    """The disk with the target its image already has in one definition (live or
    persistent) when only that one holds it and the target is free in the other: the half
    that is added then matches the half that is there.  Else the planner's target.

    Why: a controller killed between a detach and the next attach (R1, defect 6) left an
    image in the persistent definition at vdd and out of the live domain; the next attach
    plugged it live at the planner's free target, vdb, and from then on vdd looked free in
    the live domain and was taken in the persistent one: every later attach there chose vdd
    and was refused."""
    cfg = domxml.parse_domain(cfg_xml)
    live = cfg if live_xml == cfg_xml else domxml.parse_domain(live_xml)

    def target_of(parsed: domxml.ParsedDomain) -> str | None:
        return next((d.target for d in parsed.disks if d.rbd_image == disk.rbd_image), None)

    in_cfg, in_live = target_of(cfg), target_of(live)
    if (in_cfg is None) == (in_live is None):
        return disk  # in both (nothing to add) or in neither (the planner's target)
    have, other = (in_cfg, live) if in_cfg is not None else (str(in_live), cfg)
    if have == disk.target or have[:2] != disk.target[:2]:  # same, or another bus's
        return disk
    if any(d.target == have for d in other.disks):
        return disk  # taken there: the planner's target, which is free in both
    return replace(disk, target=have)
