"""Hand-built snapshots: the REST view's real input, as the controller publishes it."""

from __future__ import annotations

from reconciler.source.protocol import SourceStatus
from reconciler.status.types import (
    Condition,
    ConditionType,
    Event,
    HostStatus,
    Metrics,
    Phase,
    ResourceStatus,
    Snapshot,
)


def ready(kind: str, name: str, **kw: object) -> ResourceStatus:
    return ResourceStatus(
        kind=kind,
        name=name,
        phase=kw.pop("phase", Phase.READY),  # type: ignore[arg-type]
        conditions=(Condition(ConditionType.READY, True, "Converged", "", 100.0),),
        **kw,  # type: ignore[arg-type]
    )


SHORT = {
    "VirtualMachine": "vm",
    "Volume": "volume",
    "VolumeAttachment": "attachment",
    "Image": "image",
    "InstanceType": "instancetype",
    "Host": "host",
}


def key(r: ResourceStatus) -> str:
    return f"{SHORT[r.kind]}/{r.name}"


def world() -> Snapshot:
    res = [
        ready(
            "InstanceType", "small", ids={"tid": 1}, details={"cpu": "1", "ram": "512", "disk": "1"}
        ),
        ready(
            "InstanceType",
            "large",
            ids={"tid": 3},
            details={"cpu": "4", "ram": "4096", "disk": "8"},
        ),
        ready("Image", "cirros", ids={"id": 7}),
        ready("Image", "debian", ids={"id": 2}),
        ready(
            "VirtualMachine",
            "test_vm",
            ids={"vmid": 100, "tid": 1},
            host="h1",
            pmid=1,
            details={"instanceType": "small", "image": "cirros"},
            events=(Event(90.0, "Normal", "Created", "domain defined", "vm/test_vm"),),
        ),
        ready(
            "VirtualMachine",
            "web",
            ids={"vmid": 101},
            host="h2",
            pmid=2,
            details={"instanceType": "large"},
        ),
        ready(
            "Volume",
            "data1",
            ids={"volumeid": 500},
            details={"size": "2Gi", "attachedTo": "test_vm"},
        ),
        ready("Volume", "spare", ids={"volumeid": 501}, details={"size": "5Gi"}),
        ready("VolumeAttachment", "data1-on-test_vm", details={"volume": "data1", "vm": "test_vm"}),
        ResourceStatus(
            "VirtualMachine",
            "pending_vm",
            Phase.UNSCHEDULABLE,
            last_error="no host has 64 free vCPUs",
        ),
    ]
    hosts = {
        "h1": HostStatus(
            "h1",
            "qemu+tcp://127.0.0.1/system",
            1,
            True,
            cpus=4,
            memory_mib=8192,
            cpu_used_ours=1,
            cpu_used_foreign=1,
            ram_used_ours_mib=512,
            ram_used_foreign_mib=256,
            domains_ours=1,
            domains_foreign=1,
        ),
        "h2": HostStatus(
            "h2", "qemu+tcp://127.0.0.2/system", 2, False, reason="connection refused"
        ),
    }
    return Snapshot(
        generation=3,
        time=100.0,
        converged=False,
        reconcile_id="r-3",
        last_pass_seconds=0.2,
        resources={key(r): r for r in res},
        hosts=hosts,
        source=SourceStatus(
            kind="git",
            url="file:///srv/repo",
            path="specs",
            branch="main",
            last_applied_revision="abc123",
            last_attempted_revision="def456",
            error="commit def456: specs/vm.yaml:3: bad",
            owned={"vm/web": "specs/web.yaml:1"},
        ),
        events=(Event(95.0, "Warning", "Unschedulable", "no host", "vm/pending_vm"),),
        metrics=Metrics(
            passes_total=3,
            pass_seconds_sum=0.6,
            pass_buckets=(0, 0, 3, 3, 3, 3, 3, 3, 3, 3),
            actions_total={("create_domain", "ok"): 2, ("attach", "transient"): 1},
            drift_corrections_total=1,
        ),
    )
