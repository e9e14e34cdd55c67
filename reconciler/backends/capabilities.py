"""What a libvirt host can run: guest architectures and the domain types offered for each.

Why a module of its own: acceleration and placement both depend on it.  libvirt's host
capabilities (`virConnectGetCapabilities`) list every `<guest>` the driver can start: per
architecture, the domain types it offers ("kvm" only where /dev/kvm is usable for that
architecture, "qemu" for TCG wherever a qemu-system binary exists).  One call per host and
connection answers both "is KVM offered here" and "which images can run here"; the domain
capabilities API answers one (arch, type) pair per call, so it is not used for the survey.
Pure parsing, no libvirt import.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

# Domain types in the order volctl prefers them when a Host does not force one.
PREFERENCE = ("kvm", "qemu")


def parse_guests(caps_xml: str, extra_arch: str | None = None) -> dict[str, tuple[str, ...]]:
    """arch -> domain types offered for hvm guests, from a capabilities document.

    `extra_arch` is added with the types of any other arch: libvirt's test driver always
    reports i686 whatever its node file says, while it defines domains of any architecture.
    """
    try:
        root = ET.fromstring(caps_xml)  # noqa: S314 - from a libvirt daemon, not from users
    except ET.ParseError:
        return {}
    out: dict[str, set[str]] = {}
    for guest in root.findall("guest"):
        if (guest.findtext("os_type") or "").strip() != "hvm":
            continue
        for arch in guest.findall("arch"):
            name = arch.get("name")
            if not name:
                continue
            types = out.setdefault(name, set())
            types.update(d.get("type") or "" for d in arch.findall("domain"))
            types.discard("")
    if extra_arch and extra_arch not in out and out:
        out[extra_arch] = set().union(*out.values())
    return {arch: _ordered(types) for arch, types in sorted(out.items())}


def _ordered(types: set[str]) -> tuple[str, ...]:
    known = [t for t in PREFERENCE if t in types]
    return tuple(known + sorted(types - set(PREFERENCE)))
