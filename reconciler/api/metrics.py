"""`/metrics`: the snapshot's counters in the Prometheus text exposition format (0.0.4).

Why hand-written instead of prometheus_client: the numbers are already accumulated by the
controller in `Snapshot.metrics`; rendering them is a few lines, and a second registry with
its own locking would only be a chance for the two to disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from reconciler.status.types import PASS_BUCKETS, Phase, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(snap: Snapshot) -> str:
    m = snap.metrics
    lines: list[str] = []
    buckets = [
        f'volctl_reconcile_duration_seconds_bucket{{le="{b}"}} {c}'
        for b, c in zip(PASS_BUCKETS, m.pass_buckets, strict=False)
    ]
    buckets.append(f'volctl_reconcile_duration_seconds_bucket{{le="+Inf"}} {m.passes_total}')
    buckets.append(f"volctl_reconcile_duration_seconds_sum {_num(m.pass_seconds_sum)}")
    buckets.append(f"volctl_reconcile_duration_seconds_count {m.passes_total}")
    lines += _family(
        "volctl_reconcile_duration_seconds", "histogram", "Duration of reconcile passes.", buckets
    )
    lines += _family(
        "volctl_actions_total",
        "counter",
        "Actions executed, by action kind and result.",
        (
            f"volctl_actions_total{_labels(kind=k, result=r)} {n}"
            for (k, r), n in sorted(m.actions_total.items())
        ),
    )
    lines += _family(
        "volctl_drift_corrections_total",
        "counter",
        "Actions that repaired changes made outside volctl.",
        [f"volctl_drift_corrections_total {m.drift_corrections_total}"],
    )
    lines += _family(
        "volctl_libvirt_events_total",
        "counter",
        "libvirt events that triggered a reconcile pass.",
        [f"volctl_libvirt_events_total {m.events_received_total}"],
    )
    phases: Counter[tuple[str, str]] = Counter(
        (r.kind, r.phase.value) for r in snap.resources.values()
    )
    kinds = sorted({r.kind for r in snap.resources.values()})
    lines += _family(
        "volctl_resources",
        "gauge",
        "Managed resources by kind and phase.",
        (
            f"volctl_resources{_labels(kind=k, phase=p.value)} {phases.get((k, p.value), 0)}"
            for k in kinds
            for p in Phase
        ),
    )
    hosts = sorted(snap.hosts.values(), key=lambda h: h.name)
    lines += _family(
        "volctl_host_reachable",
        "gauge",
        "1 when the host's libvirt could be observed in the last pass.",
        (
            f"volctl_host_reachable{_labels(host=h.name, pmid=h.pmid)} {_num(h.reachable)}"
            for h in hosts
        ),
    )
    for metric, attr, text in (
        ("volctl_host_cpus", "cpus", "CPUs of the host."),
        ("volctl_host_memory_mib", "memory_mib", "Memory of the host in MiB."),
    ):
        lines += _family(
            metric,
            "gauge",
            text,
            (f"{metric}{_labels(host=h.name)} {getattr(h, attr)}" for h in hosts),
        )
    for metric, ours, foreign, text in (
        ("volctl_host_cpu_used", "cpu_used_ours", "cpu_used_foreign", "vCPUs allocated."),
        ("volctl_host_ram_used_mib", "ram_used_ours_mib", "ram_used_foreign_mib", "RAM allocated."),
    ):
        lines += _family(
            metric,
            "gauge",
            f"{text} owner=volctl for ours, foreign for everything else.",
            (
                f"{metric}{_labels(host=h.name, owner=o)} {getattr(h, a)}"
                for h in hosts
                for o, a in (("volctl", ours), ("foreign", foreign))
            ),
        )
    src = snap.source
    info = []
    if src is not None:
        info.append(
            "volctl_source_info"
            + _labels(
                kind=src.kind,
                url=src.url,
                branch=src.branch or "",
                path=src.path,
                revision=src.last_applied_revision or "",
            )
            + " 1"
        )
    lines += _family(
        "volctl_source_info",
        "gauge",
        "The desired-state source and its last applied revision (git commit or store digest).",
        info,
    )
    lines += _family(
        "volctl_source_error",
        "gauge",
        "1 when the last attempted revision was rejected.",
        [f"volctl_source_error {_num(bool(src is not None and src.error))}"],
    )
    for metric, value, text in (
        ("volctl_converged", _num(snap.converged), "1 when the last pass found nothing to do."),
        ("volctl_generation", str(snap.generation), "Reconcile passes published."),
        ("volctl_pending_actions", str(snap.pending_actions), "Actions planned but not done."),
    ):
        lines += _family(metric, "gauge", text, [f"{metric} {value}"])
    return "\n".join(lines) + "\n"
