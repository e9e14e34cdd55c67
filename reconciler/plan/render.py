"""A terraform-like text view of a Plan, for `volctl plan` and for logs.

One block per changed resource with its symbol ("+ create", "~ update", "- destroy",
"-/+ replace"), its before -> after, and the actions that make it so; then the blocked
resources with their reasons, the released volumes, and the summary line
"Plan: N to add, N to change, N to destroy." counted the way terraform counts (a replace is
one add and one destroy).  Pure string building: the CLI decides where it goes.
"""

from __future__ import annotations

from collections import Counter
from typing import assert_never

from reconciler.plan.actions import (
    Action,
    ActionKind,
    AttachNic,
    AttachVolume,
    Change,
    ChangeOp,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    DeleteRoot,
    DeleteVolume,
    DestroyDomain,
    DetachNic,
    DetachVolume,
    ImportImage,
    Plan,
    ResizeVolume,
    SetVolumeMeta,
    StartDomain,
    StopDomain,
)

NO_CHANGES = "No changes. The infrastructure matches the configuration."

SYMBOL = {
    ChangeOp.CREATE: "+",
    ChangeOp.UPDATE: "~",
    ChangeOp.DELETE: "-",
    ChangeOp.REPLACE: "-/+",
}
VERB = {
    ChangeOp.CREATE: "will be created",
    ChangeOp.UPDATE: "will be updated in place",
    ChangeOp.DELETE: "will be destroyed",
    ChangeOp.REPLACE: "must be replaced",
}
_ACTION_SYMBOL = {
    ActionKind.IMPORT_IMAGE: "+",
    ActionKind.CLONE_ROOT: "+",
    ActionKind.CREATE_VOLUME: "+",
    ActionKind.DEFINE_DOMAIN: "+",
    ActionKind.ATTACH_VOLUME: "+",
    ActionKind.START_DOMAIN: "~",
    ActionKind.STOP_DOMAIN: "~",
    ActionKind.RESIZE_VOLUME: "~",
    ActionKind.SET_VOLUME_META: "~",
    ActionKind.DETACH_VOLUME: "-",
    ActionKind.ATTACH_NIC: "+",
    ActionKind.DETACH_NIC: "-",
    ActionKind.DESTROY_DOMAIN: "-",
    ActionKind.DELETE_ROOT: "-",
    ActionKind.DELETE_VOLUME: "-",
}


def summary(plan: Plan) -> str:
    if plan.empty:
        return NO_CHANGES
    ops = Counter(c.op for c in plan.changes)
    add = ops[ChangeOp.CREATE] + ops[ChangeOp.REPLACE]
    change = ops[ChangeOp.UPDATE]
    destroy = ops[ChangeOp.DELETE] + ops[ChangeOp.REPLACE]
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def render(plan: Plan) -> str:
    lines: list[str] = []
    by_resource: dict[str, list[Action]] = {}
    for action in plan.actions:
        by_resource.setdefault(action.resource, []).append(action)
    if plan.actions:
        lines.append("volctl will perform the following actions:")
        lines.append("")
        for change in plan.changes:
            lines.extend(_change(change, by_resource.get(change.resource, [])))
            lines.append("")
    if plan.blocked:
        lines.append("Blocked (nothing is done for these):")
        lines.extend(f"  ! {b.resource}: {b.reason}: {b.message}" for b in plan.blocked)
        lines.append("")
    if plan.released:
        lines.append("Released (no longer in the spec, kept because reclaimPolicy is not Delete):")
        lines.extend(f"  = {r}" for r in plan.released)
        lines.append("")
    lines.append(summary(plan))
    return "\n".join(lines) + "\n"


def _change(change: Change, actions: list[Action]) -> list[str]:
    out = [f"  # {change.resource} {VERB[change.op]}"]
    if change.reason:
        out[0] += f" ({change.reason})"
    out.append(f"{SYMBOL[change.op]:>3} {change.resource}")
    if change.before is not None or change.after is not None:
        before = change.before if change.before is not None else "(none)"
        after = change.after if change.after is not None else "(none)"
        out.append(f"      {before} -> {after}")
    for action in actions:
        out.append(f"      {_ACTION_SYMBOL[action.kind]} {action.kind.value:<16}{_detail(action)}")
    return out


def _detail(action: Action) -> str:
    head = []
    if action.host:
        head.append(f"on {action.host}")
    image = image_of(action)
    if image:
        head.append(image)
    tail = action.reason
    if action.before is not None or action.after is not None:
        tail = f"{action.before or '(none)'} -> {action.after or '(none)'}"
    text = " ".join(head)
    return f"{text}: {tail}" if text and tail else text or tail


def image_of(action: Action) -> str | None:
    """The RBD image an action creates, changes or removes (None for domain actions)."""
    match action:
        case (
            ImportImage()
            | CloneRoot()
            | DeleteRoot()
            | CreateVolume()
            | ResizeVolume()
            | SetVolumeMeta()
            | DeleteVolume()
        ):
            return action.image_name
        case (
            DefineDomain()
            | StartDomain()
            | StopDomain()
            | DestroyDomain()
            | AttachVolume()
            | DetachVolume()
            | AttachNic()
            | DetachNic()
        ):
            return None
        case _:
            assert_never(action)
