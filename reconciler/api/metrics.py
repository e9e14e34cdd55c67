"""`/metrics`: the snapshot's counters in the Prometheus text exposition format (0.0.4).

Why a collector and not prometheus_client's Counter/Gauge objects: the controller already
accumulates every number in `Snapshot.metrics` (one immutable snapshot per pass), so a second
set of live metric objects would only be a chance for the two to disagree.  `SnapshotCollector`
turns one snapshot into metric families and prometheus_client writes the exposition (escaping,
number format, histogram layout).  Nothing is registered globally: every scrape renders the
snapshot it is given, so two servers in one process (as in the tests) never share state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from reconciler.status.types import PASS_BUCKETS, HostStatus, Phase, Snapshot

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def render(snap: Snapshot) -> str:
    """The exposition text of one snapshot."""
    return generate_latest(SnapshotCollector(lambda: snap)).decode()


class SnapshotCollector(Collector):
    """Metric families read from the current snapshot each time they are collected."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from _passes(snap)
        yield from _resources(snap)
        yield from _hosts(sorted(snap.hosts.values(), key=lambda h: h.name))
        yield from _source(snap)
        yield from _loop(snap)


def _passes(snap: Snapshot) -> Iterator[Metric]:
    m = snap.metrics
    buckets = [(str(b), float(c)) for b, c in zip(PASS_BUCKETS, m.pass_buckets, strict=False)]
    yield HistogramMetricFamily(
        "volctl_reconcile_duration_seconds",
        "Duration of reconcile passes.",
        buckets=[*buckets, ("+Inf", float(m.passes_total))],
        sum_value=m.pass_seconds_sum,
    )
    actions = CounterMetricFamily(
        "volctl_actions_total",
        "Actions executed, by action kind and result.",
        labels=("kind", "result"),
    )
    for (kind, result), n in sorted(m.actions_total.items()):
        actions.add_metric((kind, result), n)
    yield actions
    yield CounterMetricFamily(
        "volctl_drift_corrections_total",
        "Actions that repaired changes made outside volctl.",
        value=m.drift_corrections_total,
    )
    yield CounterMetricFamily(
        "volctl_libvirt_events_total",
        "libvirt events that triggered a reconcile pass.",
        value=m.events_received_total,
    )


def _resources(snap: Snapshot) -> Iterator[Metric]:
    """Every phase of every kind present, zeros included, so a phase that empties drops to 0."""
    phases = Counter((r.kind, r.phase) for r in snap.resources.values())
    family = GaugeMetricFamily(
        "volctl_resources", "Managed resources by kind and phase.", labels=("kind", "phase")
    )
    for kind in sorted({r.kind for r in snap.resources.values()}):
        for phase in Phase:
            family.add_metric((kind, phase.value), phases[(kind, phase)])
    yield family


def _hosts(hosts: list[HostStatus]) -> Iterator[Metric]:
    reachable = GaugeMetricFamily(
        "volctl_host_reachable",
        "1 when the host's libvirt could be observed in the last pass.",
        labels=("host", "pmid"),
    )
    for h in hosts:
        reachable.add_metric((h.name, str(h.pmid)), float(h.reachable))
    yield reachable
    for name, attr, text in (
        ("volctl_host_cpus", "cpus", "CPUs of the host."),
        ("volctl_host_memory_mib", "memory_mib", "Memory of the host in MiB."),
    ):
        family = GaugeMetricFamily(name, text, labels=("host",))
        for h in hosts:
            family.add_metric((h.name,), getattr(h, attr))
        yield family
    for name, ours, foreign, text in (
        ("volctl_host_cpu_used", "cpu_used_ours", "cpu_used_foreign", "vCPUs allocated."),
        ("volctl_host_ram_used_mib", "ram_used_ours_mib", "ram_used_foreign_mib", "RAM allocated."),
    ):
        help_text = f"{text} owner=volctl for ours, foreign for everything else."
        family = GaugeMetricFamily(name, help_text, labels=("host", "owner"))
        for h in hosts:
            family.add_metric((h.name, "volctl"), getattr(h, ours))
            family.add_metric((h.name, "foreign"), getattr(h, foreign))
        yield family


def _source(snap: Snapshot) -> Iterator[Metric]:
    src = snap.source
    info = GaugeMetricFamily(
        "volctl_source_info",
        "The desired-state source and its last applied revision (git commit or store digest).",
        labels=("kind", "url", "branch", "path", "revision"),
    )
    if src is not None:
        revision = src.last_applied_revision or ""
        info.add_metric((src.kind, src.url, src.branch or "", src.path, revision), 1)
    yield info
    yield GaugeMetricFamily(
        "volctl_source_error",
        "1 when the last attempted revision was rejected.",
        value=float(src is not None and bool(src.error)),
    )


def _loop(snap: Snapshot) -> Iterator[Metric]:
    for name, value, text in (
        ("volctl_converged", float(snap.converged), "1 when the last pass found nothing to do."),
        ("volctl_generation", snap.generation, "Reconcile passes published."),
        ("volctl_pending_actions", snap.pending_actions, "Actions planned but not done."),
    ):
        yield GaugeMetricFamily(name, text, value=value)
