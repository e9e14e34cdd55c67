"""Validated documents to the frozen `reconciler.model` types.

Runs only when every check passed, so it may trust shapes and types; it maps the YAML's
camelCase fields to the model's attributes, applies defaults, and records each
document's origin (file:line) for `describe` and later diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.loading.semantic import Entry, assign_pmids
from reconciler.model import (
    DesiredState,
    Host,
    Image,
    ImageSource,
    InstanceType,
    Kind,
    Meta,
    Network,
    NetworkKind,
    Origin,
    ReclaimPolicy,
    SshSource,
    VirtType,
    VirtualMachine,
    Volume,
    VolumeAttachment,
)


def _meta(entry: Entry) -> Meta:
    metadata = entry.document.data["metadata"]
    labels = dict(metadata.get("labels") or {})
    origin = Origin(entry.document.file, entry.document.line)
    return Meta(name=entry.name, labels=labels, origin=origin)


def _int(value: Any) -> int:
    return int(value)  # YAML 2.0 passes the schema as an integer; the model wants 2


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _ssh(value: Any) -> SshSource | None:
    """`{host, path, port?, identityFile?, knownHostsFile?}` (schema-checked) to an SshSource."""
    if value is None:
        return None
    return SshSource(
        host=str(value["host"]),
        path=str(value["path"]),
        port=_opt_int(value.get("port")),
        identity_file=value.get("identityFile"),
        known_hosts_file=value.get("knownHostsFile"),
    )


def networks(value: Any) -> tuple[Network, ...] | None:
    """`[{network: N} | {bridge: N} | {user: true}]` (schema-checked) to model Networks."""
    if value is None:
        return None
    out = []
    for item in value:
        ((key, name),) = item.items()
        kind = NetworkKind(key)
        out.append(Network(kind, None if kind == NetworkKind.USER else str(name)))
    return tuple(out)


def desired_state(
    by_kind: Mapping[Kind, Mapping[str, Entry]], revision: str | None = None
) -> DesiredState:
    hosts = by_kind[Kind.HOST]
    pmids = assign_pmids(hosts)
    host_objs = {}
    for name, entry in hosts.items():
        capacity = entry.spec.get("capacity") or {}
        host_objs[name] = Host(
            meta=_meta(entry),
            uri=entry.spec["uri"],
            pmid=pmids[name],
            cpu_capacity=_opt_int(capacity.get("cpu")),
            ram_capacity_mib=_opt_int(capacity.get("ramMiB")),
            virt_type=VirtType(entry.spec["virtType"]) if "virtType" in entry.spec else None,
            default_networks=networks(entry.spec.get("defaultNetworks")),
        )
    images = {}
    for name, entry in by_kind[Kind.IMAGE].items():
        source = entry.spec["source"]
        images[name] = Image(
            meta=_meta(entry),
            id=_int(entry.spec["id"]),
            source=ImageSource(
                path=source.get("path"), rbd=source.get("rbd"), ssh=_ssh(source.get("ssh"))
            ),
            arch=str(entry.spec.get("arch", "x86_64")),
        )
    types = {
        name: InstanceType(
            meta=_meta(entry),
            tid=_int(entry.spec["tid"]),
            cpu=_int(entry.spec["cpu"]),
            ram=_int(entry.spec["ram"]),
            disk=_int(entry.spec["disk"]),
        )
        for name, entry in by_kind[Kind.INSTANCE_TYPE].items()
    }
    vms = {
        name: VirtualMachine(
            meta=_meta(entry),
            instance_type=entry.spec["instanceType"],
            image=entry.spec["image"],
            host=entry.spec.get("host"),
            anti_affinity_group=entry.spec.get("antiAffinityGroup"),
            running=entry.spec.get("running", True),
            networks=networks(entry.spec.get("networks")),
            vnc=entry.spec.get("graphics") == "vnc",
        )
        for name, entry in by_kind[Kind.VIRTUAL_MACHINE].items()
    }
    volumes = {
        name: Volume(
            meta=_meta(entry),
            size=_int(entry.spec["size"]),
            reclaim_policy=ReclaimPolicy(entry.spec.get("reclaimPolicy", "Retain")),
            bus=str(entry.spec.get("bus", "virtio")),
        )
        for name, entry in by_kind[Kind.VOLUME].items()
    }
    attachments = {
        name: VolumeAttachment(meta=_meta(entry), volume=entry.spec["volume"], vm=entry.spec["vm"])
        for name, entry in by_kind[Kind.VOLUME_ATTACHMENT].items()
    }
    return DesiredState(
        hosts=host_objs,
        images=images,
        instance_types=types,
        vms=vms,
        volumes=volumes,
        attachments=attachments,
        revision=revision,
    )
