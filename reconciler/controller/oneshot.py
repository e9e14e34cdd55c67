"""What the one-shot commands share: choosing the source, and a plan without executing it.

`volctl plan` and `volctl reconcile --once` read desired state either from files given with
`-f` (through the loader, like `kubectl diff -f`) or from the configured source (the apply
store directory, or git), exactly as `volctl run` would (`source.files.FileSource` makes files
look like any other source, so the engine code path is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.config import Config
from reconciler.controller.factory import storage_for
from reconciler.controller.passes import Planner
from reconciler.controller.stores import open_store
from reconciler.controller.wiring import BackendConnections, HostOpener
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.planner import plan as default_planner
from reconciler.plan.settings import PlanSettings
from reconciler.source.factory import build_source
from reconciler.source.files import FileSource
from reconciler.source.protocol import Source


def source_for(
    config: Config,
    files: Sequence[str] | None,
    *,
    git_url: str | None = None,
    branch: str = "main",
    path: str = ".",
    interval: float = 60.0,
) -> Source:
    if files:
        return FileSource(files)
    return build_source(
        config,
        git_url=git_url,
        branch=branch,
        path=path,
        interval=interval,
        store=open_store(config),
    )


@dataclass(frozen=True)
class PlanResult:
    desired: DesiredState
    observed: ObservedWorld
    plan: Plan


def plan_only(
    desired: DesiredState,
    storage_factory: Callable[[], BackendConnections],
    settings: PlanSettings,
    *,
    planner: Planner | None = None,
) -> PlanResult:
    """Observe the world for `desired` and plan, executing nothing."""
    conns = storage_factory()
    try:
        conns.sync(desired)
        observed = conns.observe(desired)
        plan = (planner or default_planner)(desired, observed, settings)
    finally:
        conns.close()
    return PlanResult(desired, observed, plan)


def connections_for(config: Config, open_host: HostOpener | None = None) -> BackendConnections:
    storage = storage_for(config.ceph, installation=config.installation)
    return BackendConnections(storage, open_host=open_host)
