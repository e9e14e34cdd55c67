"""The terraform-like rendering of plans: symbols, before -> after, blocked, summary."""

from __future__ import annotations

from reconciler.model import ReclaimPolicy
from reconciler.plan.actions import Plan
from reconciler.plan.render import NO_CHANGES, render, summary

from .builders import attach, converge, desired, host, image, ohost, run, vm, volume, world

HOSTS = [host("h1", 1, cpu=4)]


def test_empty_plan_says_no_changes() -> None:
    text = render(Plan())
    assert text.strip() == NO_CHANGES
    d = desired(HOSTS, [vm("a")])
    w = converge(d, world(ohost("h1")))
    assert summary(run(d, w)) == NO_CHANGES


def test_create_update_destroy_replace_and_summary() -> None:
    imgs = [image("deb"), image("alp", 2)]
    start = desired(
        HOSTS,
        [vm("a"), vm("b"), vm("c")],
        [volume("v", 5, ReclaimPolicy.DELETE), volume("keep")],
        images=imgs,
    )
    w = converge(start, world(ohost("h1")))
    d = desired(
        HOSTS,
        [vm("a", image_="alp"), vm("b", running=False), vm("new")],
        [volume("keep", 6), volume("big", 1)],
        [attach("x", "big", "b")],
        images=imgs,
    )
    p = run(d, w)
    text = render(p)
    assert "-/+ vm/a" in text
    assert "# vm/a must be replaced" in text
    assert "  ~ vm/b" in text
    assert "  - vm/c" in text
    assert "  + vm/new" in text
    assert "  ~ volume/keep" in text
    assert "5 GiB -> 6 GiB" in text
    assert "  - volume/v" in text
    # a, new, image/alp, volume/big, attachment/x added; b, keep changed; a, c, v destroyed
    assert text.rstrip().endswith("Plan: 5 to add, 2 to change, 3 to destroy.")
    assert summary(p) == "Plan: 5 to add, 2 to change, 3 to destroy."


def test_blocked_and_released_are_listed_with_reasons() -> None:
    w = converge(desired(HOSTS, [vm("a")], [volume("old"), volume("v", 5)]), world(ohost("h1")))
    p = run(desired(HOSTS, [vm("a"), vm("huge", "big", host_="h1")], [volume("v", 2)]), w)
    text = render(p)
    assert "! vm/huge: Unschedulable: no host fits 4 CPU" in text
    assert "! volume/v: ShrinkRefused" in text
    assert "= volume/old" in text
