"""A seeded random fleet of ~a thousand VMs with every kind of drift, and its recorded plans.

Why: the planner's speed work (indexes, cached specs, cheaper ordering) must not change a
single action.  The Hypothesis properties check invariants on small worlds; this checks the
exact output on a large one.  The world is grown the way real ones are (an earlier spec
planned and applied by the simulator over foreign domains and images), then drifted behind
volctl's back, and planned against a new spec that creates, updates, moves and deletes all
at once; the variants make a host or Ceph unreachable.  `random.Random(seed)` keeps it the
same on every machine and Python version.

The recorded plans live in `fixtures/fleet-<variant>.txt.gz`: one line per action (id and a
digest of its full value), per blocked resource, placement, id, change and released volume,
so a failure names what differs.  When a change of the planner's output is *intended*,
record them again and review the diff of the counts:

    .venv/bin/python -m tests.plan.fleet --write
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from reconciler import identity
from reconciler.model import (
    DesiredState,
    Host,
    Network,
    NetworkKind,
    ReclaimPolicy,
    VirtualMachine,
    Volume,
    VolumeAttachment,
)
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    ObservedNic,
    ObservedStorage,
    ObservedWorld,
)
from reconciler.plan.actions import Plan
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings

from .builders import CEPH, GIB, attach, desired, foreign, host, image, itype, vm, volume
from .sim import apply

SEED = 20261129
VMS = 1200
HOSTS = 40
FIXTURES = Path(__file__).parent / "fixtures"
VARIANTS = ("known", "host-down", "ceph-down")

IMAGES = [
    image("deb", 1),
    image("alp", 2),
    image("gold", 3, rbd="rbd/golden@v1"),
    image("gone", 4, rbd="rbd/missing@v1"),
]
TYPES = [
    itype("small", 1, 1024, 10, 1),
    itype("mid", 2, 2048, 15, 2),
    itype("big", 4, 4096, 20, 3),
    itype("huge", 48, 131072, 40, 4),
]
NETS = [
    None,
    (Network(NetworkKind.NETWORK, "default"),),
    (Network(NetworkKind.BRIDGE, "br0"), Network(NetworkKind.USER)),
]
SETTINGS = PlanSettings(CEPH, console_dir="/var/log/volctl")
MASS = PlanSettings(CEPH, console_dir="/var/log/volctl", allow_mass_delete=True)


def _vm(rng: random.Random, name: str, hosts: list[str]) -> VirtualMachine:
    t = rng.choices(["small", "mid", "big", "huge"], [60, 25, 14, 1])[0]
    img = rng.choices(["deb", "alp", "gold", "gone"], [50, 30, 18, 2])[0]
    v = vm(
        name,
        t,
        img,
        rng.choice(hosts) if rng.random() < 0.1 else None,
        rng.choice(["g1", "g2", "g3"]) if rng.random() < 0.1 else None,
        rng.random() < 0.9,
    )
    return replace(v, networks=rng.choice(NETS), vnc=rng.random() < 0.1)


def _before(rng: random.Random, hosts: list[str]) -> DesiredState:
    vms = [_vm(rng, f"vm{i:04d}", hosts) for i in range(VMS) if rng.random() < 0.85]
    policies = [ReclaimPolicy.RETAIN, ReclaimPolicy.DELETE]
    vols = [volume(f"vol{i:04d}", rng.randint(1, 8), rng.choice(policies)) for i in range(VMS)]
    atts = [
        attach(f"att-{v.meta.name}", v.meta.name, rng.choice(vms).meta.name)
        for v in vols
        if rng.random() < 0.7
    ]
    return desired(_hosts(rng), vms, vols, atts, IMAGES, TYPES)


def _hosts(rng: random.Random) -> list[Host]:
    state = rng.getstate()
    r = random.Random(SEED + 1)  # the same hosts in both specs
    pmids = list(range(1, HOSTS + 1))
    r.shuffle(pmids)
    out = [host(f"h{i:02d}", pmids[i], cpu=r.choice([None, 24, 64])) for i in range(HOSTS)]
    rng.setstate(state)
    return out


def _edit_vm(rng: random.Random, v: VirtualMachine) -> VirtualMachine | None:
    roll = rng.random()
    if roll < 0.08:
        return None  # left the spec
    if roll < 0.12:
        return replace(v, instance_type=rng.choice(["small", "mid", "big"]))
    if roll < 0.14:
        return replace(v, image=rng.choice(["deb", "alp", "gold"]))
    if roll < 0.17:
        return replace(v, running=not v.running)
    if roll < 0.20:
        return replace(v, networks=rng.choice(NETS))
    if roll < 0.21:
        return replace(v, vnc=not v.vnc)
    return v


def _edit_volume(rng: random.Random, vol: Volume) -> Volume | None:
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.14:
        return replace(vol, size=vol.size + rng.choice([-1, 1, 2]))
    if roll < 0.18:
        return replace(vol, reclaim_policy=ReclaimPolicy.DELETE)
    return vol


def _edit_attachment(
    rng: random.Random, a: VolumeAttachment, names: list[str]
) -> VolumeAttachment | None:
    roll = rng.random()
    if roll < 0.06:
        return None
    if roll < 0.12:
        return replace(a, vm=rng.choice(names))
    return a


def _after(rng: random.Random, before: DesiredState, hosts: list[str]) -> DesiredState:
    """The new spec: most resources kept, some edited, some removed, some added."""
    vms = [e for e in (_edit_vm(rng, v) for v in before.vms.values()) if e is not None]
    vms += [_vm(rng, f"new{i:04d}", hosts) for i in range(VMS // 10)]
    names = [v.meta.name for v in vms]
    vols = [e for e in (_edit_volume(rng, v) for v in before.volumes.values()) if e is not None]
    vols += [volume(f"nvol{i:04d}", rng.randint(1, 4)) for i in range(VMS // 10)]
    atts = [
        e
        for e in (_edit_attachment(rng, a, names) for a in before.attachments.values())
        if e is not None
    ]
    atts += [
        attach(f"natt{i:04d}", v.meta.name, rng.choice(names))
        for i, v in enumerate(vols)
        if rng.random() < 0.05
    ]
    atts.append(attach("zz-second", atts[0].volume, names[-1]))  # a volume attached twice
    atts.append(attach("zz-ghost", "no-such-volume", names[0]))
    return desired(_hosts(rng), vms, vols, atts, IMAGES, TYPES)


def _start(rng: random.Random) -> ObservedWorld:
    hosts = {}
    for i in range(HOSTS):
        name = f"h{i:02d}"
        doms = [
            foreign(
                f"f{i:02d}-{j}",
                rng.randint(1, 4),
                2048,
                rng.choice([DomainState.RUNNING, DomainState.SHUTOFF]),
                # a foreign domain using one of our volumes' names
                (ObservedDisk("vdb", f"rbd/vol-vol{rng.randrange(VMS):04d}"),)
                if rng.random() < 0.2
                else (),
            )
            for j in range(rng.randint(0, 2))
        ]
        hosts[name] = ObservedHost(
            name, True, None, rng.choice([32, 64, 96]), rng.choice([65536, 131072]), tuple(doms)
        )
    imgs = {
        "golden": ObservedImage("golden", 3 * GIB, snapshots=("v1",)),
        # foreign images at managed names: name conflicts
        **{
            n: ObservedImage(n, GIB)
            for n in (identity.root_disk_name(f"new{i:04d}") for i in range(0, 40, 7))
        },
        **{n: ObservedImage(n, GIB) for n in ("vol-nvol0003", "vol-nvol0011")},
    }
    storage = ObservedStorage(True, None, "rbd", imgs, {"rbd/golden@v1": True})
    return ObservedWorld(hosts, storage)


def _drift_domain(rng: random.Random, d: ObservedDomain) -> ObservedDomain | None:
    vols = [k for k in d.disks if k.target != "vda"]
    roll = rng.random()
    if roll < 0.02:
        return None
    if roll < 0.05:
        return replace(d, state=DomainState.SHUTOFF)
    if roll < 0.07:
        return replace(d, vcpus=d.vcpus + 1, memory_mib=d.memory_mib + 512)
    if roll < 0.09 and vols:
        return replace(d, disks=tuple(k for k in d.disks if k != vols[0]))
    if roll < 0.11 and vols:
        stuck = replace(vols[0], persistent=False)
        return replace(d, disks=tuple(stuck if k == vols[0] else k for k in d.disks))
    if roll < 0.13 and d.nics:
        return replace(d, nics=(ObservedNic(d.nics[0].mac, "network", "other"), *d.nics[1:]))
    if roll < 0.14 and d.mark is not None:
        return replace(d, mark=replace(d.mark, spec_hash="0" * 16))
    if roll < 0.15:
        return replace(d, state=DomainState.PAUSED)
    return d


def _drift(rng: random.Random, w: ObservedWorld) -> ObservedWorld:
    hosts = dict(w.hosts)
    names = sorted(hosts)
    for n in names:
        h = hosts[n]
        doms = []
        for d in h.domains:
            if d.mark is None:
                doms.append(d)
                continue
            out = _drift_domain(rng, d)
            if out is not None:
                doms.append(out)
            if rng.random() < 0.01:  # a duplicate after a crash, on another host
                other = rng.choice([m for m in names if m != n])
                copy = replace(d, uuid=f"dup-{other}", disks=d.disks[:1])
                o = hosts[other]
                hosts[other] = replace(o, domains=(*o.domains, copy))
        hosts[n] = replace(hosts[n], domains=tuple(doms))
    images = dict(w.storage.images)
    for name in sorted(images):
        img = images[name]
        if not img.ours:
            continue
        roll = rng.random()
        if roll < 0.02:
            del images[name]
        elif roll < 0.04:
            images[name] = replace(img, size_bytes=img.size_bytes + GIB)
        elif roll < 0.05:
            images[name] = replace(img, watchers=("10.0.0.9:0/1",))
        elif roll < 0.06:
            meta = dict(img.meta)
            meta.pop(identity.META_RECLAIM, None)
            images[name] = replace(img, meta=meta)
    return replace(w, hosts=hosts, storage=replace(w.storage, images=images))


def scenario(variant: str, seed: int = SEED) -> tuple[DesiredState, ObservedWorld, PlanSettings]:
    """(desired, observed, settings) of one variant of the fleet."""
    after, w = _grown(seed)
    host_names = [f"h{i:02d}" for i in range(HOSTS)]
    if variant == "host-down":
        down = host_names[7]
        w = replace(w, hosts={**w.hosts, down: ObservedHost(down, False, "connection refused")})
    elif variant == "ceph-down":
        w = replace(w, storage=ObservedStorage(False, "timed out"))
    return after, w, SETTINGS


@lru_cache(maxsize=2)
def _grown(seed: int) -> tuple[DesiredState, ObservedWorld]:
    """The new spec and the drifted world every variant starts from (frozen: shared)."""
    rng = random.Random(seed)
    host_names = [f"h{i:02d}" for i in range(HOSTS)]
    before = _before(rng, host_names)
    w = _start(rng)
    for _ in range(2):
        p = plan(before, w, MASS)
        if p.empty:
            break
        w = apply(w, p)
    w = _drift(rng, w)
    return _after(rng, before, host_names), w


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def lines(p: Plan) -> list[str]:
    """The plan as comparable lines: readable keys, digests of the full values."""
    out = [f"A {a.id} {_digest(a)}" for a in p.actions]
    out += [f"B {b.resource} {b.reason} {_digest(b.message)}" for b in p.blocked]
    out += [f"P {r} {h}" for r, h in p.placements.items()]
    out += [f"I {r} {i}" for r, i in p.ids.items()]
    out += [f"C {c.resource} {c.op} {_digest(c)}" for c in p.changes]
    out += [f"R {r}" for r in p.released]
    return out


def fixture(variant: str) -> Path:
    return FIXTURES / f"fleet-{variant}.txt.gz"


def recorded(variant: str) -> list[str]:
    return gzip.decompress(fixture(variant).read_bytes()).decode().splitlines()


def main() -> None:
    ap = argparse.ArgumentParser(description="record the fleet's plans (see module docstring)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    FIXTURES.mkdir(exist_ok=True)
    for variant in VARIANTS:
        got = lines(plan(*scenario(variant)))
        counts: dict[str, int] = {}
        for line in got:
            counts[line[0]] = counts.get(line[0], 0) + 1
        print(variant, counts)
        if args.write:
            data = ("\n".join(got) + "\n").encode()
            fixture(variant).write_bytes(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    main()
