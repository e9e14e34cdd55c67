"""Hypothesis strategies for random desired states and random, realistic observed worlds.

Observed worlds are grown the way real ones are: a random *earlier* spec is planned and
applied to a datacenter that already holds foreign domains and images, then random drift
is applied (domains destroyed, stopped or resized behind volctl's back, disks detached or
stuck detaching, duplicate domains after a crash), and finally some hosts or Ceph may be
unreachable.  The new desired state is drawn independently over the same name pools, so
the planner sees creations, updates, moves and deletions all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import strategies as st

from reconciler.model import DesiredState, Host, ReclaimPolicy
from reconciler.observe.types import (
    DomainState,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    ObservedStorage,
    ObservedWorld,
)
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings

from .builders import CEPH, GIB, attach, desired, foreign, host, image, itype, vm, volume
from .sim import apply

VM_NAMES = ["a", "b", "c", "d", "e", "f", "g"]
VOL_NAMES = ["v1", "v2", "v3", "v4", "v5"]
IMAGES = [image("deb", 1), image("alp", 2), image("gold", 3, rbd="rbd/golden@v1")]
TYPES = [
    itype("small", 1, 1024, 10, 1),
    itype("mid", 2, 2048, 15, 2),
    itype("big", 4, 4096, 20, 3),
]
MASS = PlanSettings(CEPH, allow_mass_delete=True)


@dataclass(frozen=True)
class Scenario:
    desired: DesiredState
    observed: ObservedWorld
    settings: PlanSettings


@st.composite
def specs(draw: st.DrawFn, hosts: list[Host]) -> DesiredState:
    names = [h.meta.name for h in hosts]
    vms = []
    for name in draw(st.lists(st.sampled_from(VM_NAMES), unique=True, max_size=6)):
        vms.append(
            vm(
                name,
                draw(st.sampled_from([t.meta.name for t in TYPES])),
                draw(st.sampled_from([i.meta.name for i in IMAGES])),
                draw(st.none() | st.sampled_from(names)) if draw(st.booleans()) else None,
                draw(st.none() | st.sampled_from(["g1", "g2"])),
                draw(st.booleans()) or draw(st.booleans()),
            )
        )
    vols = [
        volume(
            name,
            draw(st.integers(1, 6)),
            draw(st.sampled_from([ReclaimPolicy.RETAIN, ReclaimPolicy.DELETE])),
        )
        for name in draw(st.lists(st.sampled_from(VOL_NAMES), unique=True, max_size=4))
    ]
    atts = []
    if vms:
        for v in vols:
            if draw(st.booleans()):
                atts.append(
                    attach(f"x-{v.meta.name}", v.meta.name, draw(st.sampled_from(vms)).meta.name)
                )
    return desired(hosts, vms, vols, atts, IMAGES, TYPES)


def _map_domains(w: ObservedWorld, fn: object) -> ObservedWorld:
    hosts = {}
    for n, h in w.hosts.items():
        doms = []
        for d in h.domains:
            out = fn(n, d)  # type: ignore[operator]
            if out is not None:
                doms.append(out)
        hosts[n] = replace(h, domains=tuple(doms))
    return replace(w, hosts=hosts)


@st.composite
def drift(draw: st.DrawFn, w: ObservedWorld) -> ObservedWorld:
    ours = sorted((n, d.name) for n, h in w.hosts.items() for d in h.domains if d.mark)
    for _ in range(draw(st.integers(0, 3))):
        if not ours:
            break
        target = draw(st.sampled_from(ours))
        kind = draw(st.sampled_from(["drop", "stop", "cpu", "detach", "pending", "dup"]))

        def edit(
            host_name: str, d: ObservedDomain, target=target, kind=kind
        ) -> ObservedDomain | None:
            if (host_name, d.name) != target:
                return d
            vols = tuple(k for k in d.disks if k.target != "vda")
            match kind:
                case "drop":
                    return None
                case "stop":
                    return replace(d, state=DomainState.SHUTOFF)
                case "cpu":
                    return replace(d, vcpus=d.vcpus + 1)
                case "detach" if vols:
                    return replace(d, disks=tuple(k for k in d.disks if k != vols[0]))
                case "pending" if vols:
                    stuck = replace(vols[0], persistent=False)
                    return replace(d, disks=tuple(stuck if k == vols[0] else k for k in d.disks))
            return d

        w = _map_domains(w, edit)
        if kind == "dup":
            src = w.hosts[target[0]].domain(target[1])
            others = [n for n in sorted(w.hosts) if n != target[0]]
            if src is not None and others:
                dest = draw(st.sampled_from(others))
                h = w.hosts[dest]
                if h.domain(src.name) is None:
                    copy = replace(src, uuid=f"dup-{dest}", disks=src.disks[:1])
                    w = replace(w, hosts={**w.hosts, dest: replace(h, domains=(*h.domains, copy))})
    return w


@st.composite
def scenarios(draw: st.DrawFn, *, unknown: bool = True) -> Scenario:
    n = draw(st.integers(1, 4))
    pmids = draw(st.permutations(list(range(1, n + 1))))
    hosts = []
    observed_hosts = {}
    for i in range(n):
        name = f"h{i}"
        cpu_override = draw(st.none() | st.integers(2, 12))
        hosts.append(host(name, pmids[i], cpu=cpu_override))
        fdoms = [
            foreign(
                f"f{i}{j}",
                draw(st.integers(1, 3)),
                1024,
                draw(st.sampled_from([DomainState.RUNNING, DomainState.SHUTOFF])),
            )
            for j in range(draw(st.integers(0, 2)))
        ]
        observed_hosts[name] = ObservedHost(
            name, True, None, draw(st.integers(4, 24)), draw(st.integers(4096, 65536)), tuple(fdoms)
        )
    fimgs = {f"f-img{k}": ObservedImage(f"f-img{k}", GIB) for k in range(draw(st.integers(0, 2)))}
    fimgs["golden"] = ObservedImage("golden", 3 * GIB, snapshots=("v1",))
    external = {"rbd/golden@v1": draw(st.booleans()) or draw(st.booleans())}
    w = ObservedWorld(observed_hosts, ObservedStorage(True, None, "rbd", fimgs, external))
    before = draw(specs(hosts))
    for _ in range(draw(st.integers(0, 2))):
        p = plan(before, w, MASS)
        w = apply(w, p)
    w = draw(drift(w))
    if unknown and draw(st.integers(0, 4)) == 0:
        gone = draw(st.sampled_from(sorted(w.hosts)))
        w = replace(w, hosts={**w.hosts, gone: ObservedHost(gone, False, "connection refused")})
    if unknown and draw(st.integers(0, 9)) == 0:
        w = replace(w, storage=ObservedStorage(False, "timed out"))
    settings = MASS if draw(st.booleans()) else PlanSettings(CEPH)
    return Scenario(draw(specs(hosts)), w, settings)
