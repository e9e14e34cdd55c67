"""Which ready action starts first: pool work, then the critical path (clone -> define ->
start) before the work only a chain's last step needs, whatever order the plan lists them in.

The executor runs with one slot here, so the order in which the fake world changes is the
order of the executor's choices; the world still has to end converged.
"""

from __future__ import annotations

from structlog.testing import capture_logs

from reconciler.execute.executor import Limits
from reconciler.execute.priority import COST, POOL_KINDS, by_priority, ranks
from reconciler.identity import BASE_SNAPSHOT
from reconciler.payload import DiskSpec
from reconciler.plan.actions import Action, ActionKind, AttachVolume, CreateVolume, Plan

from .fakeworld import Injector
from .test_executor import CEPH, GIB, IMPORT, World, dom, mark, vm_actions


def fleet(names_hosts: list[tuple[str, str]], *, image: bool = True) -> list[Action]:
    """VMs with a root chain and one attached volume each, listed in the planner's kind order
    (the image import, volume creates, clones, defines, starts, attaches)."""
    chains = [vm_actions(n, h) for n, h in names_hosts]
    creates = [
        CreateVolume(
            resource=f"volume/{n}",
            image_name=f"vol-{n}",
            size_bytes=GIB,
            meta=mark("volume", n),
        )
        for n, _ in names_hosts
    ]
    attaches = [
        AttachVolume(
            resource=f"attachment/{n}",
            host=h,
            domain=dom(n),
            disk=DiskSpec(f"rbd/vol-{n}", "vdb", f"vol-{n}", CEPH),
            depends_on=(f"create-volume:volume/{n}", f"start-domain:vm/{n}"),
        )
        for n, h in names_hosts
    ]
    by_step = [[c[i] for c in chains] for i in range(3)]
    imports = [IMPORT] if image else []  # without it the clones' parent already exists
    return [*imports, *creates, *by_step[0], *by_step[1], *by_step[2], *attaches]


def started_order(w: World, actions: list[Action]) -> list[str]:
    with capture_logs() as logs:
        report = w.executor.run(Plan(actions=tuple(actions)))
    assert report.all_ok, {k: (o.result, o.message) for k, o in report.outcomes.items()}
    return [str(e["action"]) for e in logs if e["event"] == "action"]


def test_pool_work_first_then_the_longest_chain_first() -> None:
    w = World(hosts=2)
    w.executor.limits = Limits(per_host=1, overall=1)  # one at a time: order is visible
    order = started_order(w, fleet([("a", "h1"), ("b", "h2")]))
    kinds = [a.split(":", 1)[0] for a in order]
    pool = {"import-image", "clone-root", "create-volume"}
    last_pool = max(i for i, k in enumerate(kinds) if k in pool)
    assert last_pool == 4, order  # the import, 2 clones, 2 creates: before any domain work
    # the plan listed the creates before the clones; the clones have more work behind them
    assert kinds[:5] == [
        "import-image",
        "clone-root",
        "clone-root",
        "create-volume",
        "create-volume",
    ]
    assert kinds[5:] == ["define-domain"] * 2 + ["start-domain"] * 2 + ["attach-volume"] * 2
    # and the world converged all the same
    assert w.running("h1") == {"a"}
    assert w.running("h2") == {"b"}
    assert w.hvs["h1"].domains["a"].disks == {"vol-a": "vdb"}
    assert w.hvs["h2"].domains["b"].disks == {"vol-b": "vdb"}


def test_a_start_with_work_behind_it_goes_before_a_define_with_none() -> None:
    w = World(hosts=1)
    w.storage.add_base("img-base", BASE_SNAPSHOT)
    w.executor.limits = Limits(per_host=1, overall=1)
    clone_a, define_a, start_a = vm_actions("a", "h1")
    clone_b, define_b, _ = vm_actions("b", "h1")  # b stays defined, not running
    # plan (kind) order: both defines before the start
    order = started_order(w, [clone_a, clone_b, define_a, define_b, start_a])
    assert order.index(start_a.id) < order.index(define_b.id), order
    assert w.running("h1") == {"a"}
    assert set(w.hvs["h1"].domains) == {"a", "b"}


def test_when_done_fires_once_its_actions_ended_while_the_rest_still_runs() -> None:
    w = World(hosts=2)
    w.storage.add_base("img-base", BASE_SNAPSHOT)
    for hv in w.hvs.values():
        hv.inject = Injector()
        hv.inject.delay = 0.05  # domain work is slow, pool work is not
    actions = fleet([("a", "h1"), ("b", "h2"), ("c", "h1")], image=False)
    pool = {a.id for a in actions if a.kind in POOL_KINDS}
    seen: list[tuple[set[str], set[str]]] = []

    def at_milestone() -> None:
        running = {n for h in w.hvs for n in w.running(h)}
        seen.append((set(w.storage.images), running))

    report = w.executor.run(Plan(actions=tuple(actions)), when_done=(pool, at_milestone))
    assert report.all_ok
    assert len(seen) == 1  # exactly once
    images, running = seen[0]
    assert {"vm-a-root", "vm-b-root", "vm-c-root", "vol-a", "vol-b", "vol-c"} <= images
    assert running != {"a", "b", "c"}  # domain work was still going on
    assert {n for h in w.hvs for n in w.running(h)} == {"a", "b", "c"}


def test_rank_is_the_costliest_chain_behind_an_action() -> None:
    actions = fleet([("a", "h1")])
    r = ranks(actions)
    attach = COST[ActionKind.ATTACH_VOLUME]
    start = COST[ActionKind.START_DOMAIN] + attach
    assert r["attach-volume:attachment/a"] == attach
    assert r["start-domain:vm/a"] == start
    assert r["define-domain:vm/a"] == COST[ActionKind.DEFINE_DOMAIN] + start
    assert r["create-volume:volume/a"] == COST[ActionKind.CREATE_VOLUME] + attach
    # the import feeds the clone, so it outranks everything
    assert max(r, key=lambda k: r[k]) == IMPORT.id


def test_equal_ranks_keep_plan_order_and_every_action_is_kept() -> None:
    actions = fleet([("b", "h2"), ("a", "h1"), ("c", "h1")])
    ordered = by_priority(actions)
    assert sorted(a.id for a in ordered) == sorted(a.id for a in actions)
    clones = [a.resource for a in ordered if a.kind is ActionKind.CLONE_ROOT]
    assert clones == ["vm/b", "vm/a", "vm/c"]  # as listed: deterministic, no re-sorting
    assert by_priority(actions) == ordered


def test_every_kind_has_a_cost() -> None:
    assert set(COST) == set(ActionKind)
