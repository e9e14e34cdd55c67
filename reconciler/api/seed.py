"""The seed's REST API, answered from the snapshot with the seed's exact shapes.

Why keep the seed's URLs and bodies: scripts written against the old service must keep
working unchanged.  Only the query endpoints answer; the seed's mutating endpoints now answer
405 with the declarative way to do the same thing, because in volctl changes go through the
desired state (`volctl apply -f` or a commit) and never through imperative calls.

Status values come from `ResourceStatus.ids` (vmid, volumeid, id, tid) and `.details`
(instanceType, size, attachedTo, cpu, ram, disk); each is read defensively so a resource whose
ids are not known yet is skipped rather than shown with made-up values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model import Kind
from reconciler.status.types import Phase, ResourceStatus, Snapshot

VM, VOLUME, IMAGE, TYPE, ATTACHMENT = (
    Kind.VIRTUAL_MACHINE,
    Kind.VOLUME,
    Kind.IMAGE,
    Kind.INSTANCE_TYPE,
    Kind.VOLUME_ATTACHMENT,
)

MUTATING = {
    "/vm/create": "add a VirtualMachine document",
    "/vm/destroy": "remove the VirtualMachine document (or `volctl delete vm NAME`)",
    "/volume/create": "add a Volume document",
    "/volume/destroy": "remove the Volume document (reclaimPolicy: Delete also deletes the data)",
    "/volume/attach": "add a VolumeAttachment document (spec.volume, spec.vm)",
    "/volume/detach": "remove the VolumeAttachment document (or `volctl delete attachment NAME`)",
}
DOCS = "docs/usage.md and docs/rest.md"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


def mutating(path: str) -> Reply:
    what = MUTATING[path]
    return Reply(
        405,
        {
            "error": f"{path} is not supported: volctl is declarative. To do this, {what} "
            f"and run `volctl apply -f FILE`, or commit it to the GitOps repository; "
            f"see {DOCS}",
        },
        (("Allow", ""),),
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _int_param(query: Mapping[str, list[str]], name: str) -> int | Reply:
    values = query.get(name)
    if not values or values[0] == "":
        return Reply(400, {"error": f"missing query parameter: {name}"})
    if len(values) > 1:
        return Reply(400, {"error": f"query parameter {name} given more than once"})
    raw = values[0].strip()
    # ASCII only: str.isdigit() is also true for '²' and '٣', which int() refuses or reads
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return Reply(400, {"error": f"{name} : {values[0]!r} is not a non-negative integer"})
    return int(raw)


def size_gib(vol: ResourceStatus) -> int | None:
    """The volume's size in GiB, the seed's unit (status details say "2Gi").

    A released volume (no longer in the spec) has no desired size: report what RBD holds."""
    raw = vol.details.get("size", "")
    size = _int(raw.removesuffix("Gi")) if isinstance(raw, str) else _int(raw)
    if size is None:
        size_bytes = _int(vol.details.get("sizeBytes"))
        size = size_bytes >> 30 if size_bytes is not None else None
    return size


def tid_of(snap: Snapshot, vm: ResourceStatus) -> int | None:
    tid = _int(vm.ids.get("tid"))
    if tid is not None:
        return tid
    itype = snap.resources.get(f"instancetype/{vm.details.get('instanceType', '')}")
    if itype is None:
        itype = _by_name(snap, TYPE, vm.details.get("instanceType"))
    return _int(itype.ids.get("tid")) if itype is not None else None


class _Index:
    """Lookups by name and by integer id, built once per published snapshot.

    Without it every `/vm/query` scanned all resources (about 5 ms at 10k resources, bench B5).
    """

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.names: dict[tuple[str, str], ResourceStatus] = {}
        self.ids: dict[tuple[str, str, int], ResourceStatus] = {}
        for res in snap.resources.values():
            self.names.setdefault((res.kind, res.name), res)
            for key, raw in res.ids.items():
                value = _int(raw)
                if value is not None:
                    self.ids.setdefault((res.kind, key, value), res)


_last_index: _Index | None = None


def _index(snap: Snapshot) -> _Index:
    global _last_index  # noqa: PLW0603 - a one-slot cache; snapshots are immutable
    idx = _last_index
    if idx is None or idx.snap is not snap:
        idx = _Index(snap)
        _last_index = idx
    return idx


def _by_name(snap: Snapshot, kind: str, name: str | None) -> ResourceStatus | None:
    if not name:
        return None
    return _index(snap).names.get((kind, name))


def _by_id(snap: Snapshot, kind: str, key: str, value: int) -> ResourceStatus | None:
    return _index(snap).ids.get((kind, key, value))


def attached_vm(snap: Snapshot, volume: ResourceStatus) -> ResourceStatus | None:
    """The VM a volume is attached to now (from the volume's status, else its attachment)."""
    name = (volume.details.get("attachedTo") or "").split(",")[0]
    if not name:
        for att in snap.resources.values():
            if (
                att.kind == ATTACHMENT
                and att.details.get("volume") == volume.name
                and att.phase is Phase.READY
            ):
                name = att.details.get("vm", "")
                break
    return _by_name(snap, VM, name)


def vm_query(snap: Snapshot, query: Mapping[str, list[str]]) -> Reply:
    vmid = _int_param(query, "vmid")
    if isinstance(vmid, Reply):
        return vmid
    vm = _by_id(snap, VM, "vmid", vmid)
    if vm is None:
        return Reply(404, {"error": f"vmid : {vmid} does not exist"})
    pmid = vm.pmid if vm.pmid is not None else _int(vm.ids.get("pmid"))
    return Reply(
        200, {"vmid": vmid, "name": vm.name, "instance_type": tid_of(snap, vm), "pmid": pmid}
    )


def vm_types(snap: Snapshot) -> Reply:
    types = []
    for res in snap.of_kind(TYPE):
        tid = _int(res.ids.get("tid"))
        if tid is None:
            continue
        types.append(
            {
                "tid": tid,
                "cpu": _int(res.details.get("cpu")),
                "ram": _int(res.details.get("ram")),
                "disk": _int(res.details.get("disk")),
            }
        )
    types.sort(key=lambda t: t["tid"] or 0)
    return Reply(200, {"types": types})


def image_list(snap: Snapshot) -> Reply:
    found = sorted(
        (iid, res.name)
        for res in snap.of_kind(IMAGE)
        if (iid := _int(res.ids.get("id"))) is not None
    )
    images = [{"id": iid, "name": name} for iid, name in found]
    return Reply(200, {"images": images})


def volume_query(snap: Snapshot, query: Mapping[str, list[str]]) -> Reply:
    volumeid = _int_param(query, "volumeid")
    if isinstance(volumeid, Reply):
        return volumeid
    vol = _by_id(snap, VOLUME, "volumeid", volumeid)
    if vol is None:
        gone = snap.deleted_volumes.get(volumeid)  # the seed's "deleted", from the id ledger
        if gone is not None:
            gib = gone.size_bytes >> 30
            return Reply(
                200, {"volumeid": volumeid, "name": gone.name, "size": gib, "status": "deleted"}
            )
        return Reply(404, {"error": f"volumeid : {volumeid} does not exist"})
    size = size_gib(vol)
    body: dict[str, Any] = {"volumeid": volumeid, "name": vol.name, "size": size}
    vm = attached_vm(snap, vol)
    vmid = _int(vm.ids.get("vmid")) if vm is not None else None
    if vmid is not None:
        body.update(status="attached", vmid=vmid)
    else:
        body["status"] = "available"
    return Reply(200, body)


def route(snap: Snapshot, path: str, query: Mapping[str, list[str]]) -> Reply | None:
    """The seed endpoint at `path`, or None when `path` is not one."""
    if path in MUTATING:
        return mutating(path)
    if path == "/vm/query":
        return vm_query(snap, query)
    if path == "/vm/types":
        return vm_types(snap)
    if path == "/image/list":
        return image_list(snap)
    if path == "/volume/query":
        return volume_query(snap, query)
    return None
