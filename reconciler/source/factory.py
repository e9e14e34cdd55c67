"""Which source a controller reads, decided in one place from the CLI flags and the config.

The `apply` store is always there (so `volctl apply` works with or without GitOps); a git
repository is added when `--git URL` is given or the config has a `git:` section, and then the
two are merged with the one-owner rule of `CompositeSource`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reconciler import durations
from reconciler.config import Config
from reconciler.errors import SpecError
from reconciler.source.composite import CompositeSource
from reconciler.source.git import GitSource
from reconciler.source.protocol import Source
from reconciler.source.stores import AnyStore, local_store


def build_source(
    config: Config,
    *,
    git_url: str | None = None,
    branch: str = "main",
    path: str = ".",
    interval: float = 60.0,
    store: AnyStore | None = None,
) -> Source:
    """`store`: the apply store, opened by the caller (`controller.stores.open_store`);
    default the config's directory store."""
    store = store or local_store(config)
    settings: dict[str, Any] = dict(config.git or {})
    if git_url is None:
        if not settings.get("url"):
            return store
        git_url = str(settings["url"])
        branch = str(settings.get("branch", branch))
        path = str(settings.get("path", path))
        interval = durations.seconds(settings.get("interval", interval), "git interval")
    git = GitSource(
        git_url, cache_root=config.state_dir, branch=branch, path=path, interval=interval
    )
    return CompositeSource(store, git)


def review_source(
    config: Config,
    *,
    rev: str,
    git_url: str | None = None,
    path: str | None = None,
    store: AnyStore | None = None,
) -> CompositeSource:
    """One revision of the repository merged with the store, as the controller would merge
    it, for reviewing a change before it lands (`volctl plan --rev`, `diff --rev`).

    The repository defaults to the config's `git:` section.  The clone goes to its own cache
    under the state directory (never the controller's, which may be fetching right now), or
    to a temporary directory when the state directory is not writable (a CI runner).
    """
    settings: dict[str, Any] = dict(config.git or {})
    url = git_url or settings.get("url")
    if not url:
        raise SpecError("no git repository to review: give --git URL or a git: url in the config")
    where = path if path is not None else str(settings.get("path", "."))
    return CompositeSource(
        store or local_store(config),
        GitSource(str(url), cache_root=_writable(config.state_dir), path=where, rev=rev),
    )


def _writable(state_dir: str) -> str | None:
    try:
        (Path(state_dir) / "git").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return state_dir if os.access(Path(state_dir) / "git", os.W_OK) else None
