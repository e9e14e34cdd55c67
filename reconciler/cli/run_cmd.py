"""`volctl run`: the controller - the reconcile loop plus the read-only REST view.

Desired state comes from the apply store directory (always) and, with `--git` or a `git:`
section in the config, from a git repository.  The loop runs until SIGINT/SIGTERM; status
is served by `reconciler.api.server` on `--listen`.  `--once` runs passes until the world
converges or a pass makes no progress, at most `--max-passes` (10), and exits 0 only if it
converged.  Only one controller may run on a store directory (`controller/store_lock.py`).

Under systemd (`Type=notify`, contrib/systemd/volctl.service) it sends READY=1 after the
first pass, a STATUS= line after every pass and STOPPING=1 on SIGTERM/SIGINT.  A signal lets
the pass in progress finish its running calls, start nothing new and write status; the
process then exits 0.  SIGUSR1 prints every thread's stack to stderr (a call stuck in a
library shows where); with `VOLCTL_TRACEMALLOC=N`, SIGUSR2 logs where the Python heap grew
(`controller/memtrace.py`).

With a `rados://` store the process is one replica of the HA control plane (docs/ha.md): it
acts only while it holds the leader lease and otherwise serves the leader's published status.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from reconciler.cli import client
from reconciler.cli.reconcile_cmd import summary

if TYPE_CHECKING:
    from reconciler.config import Config
    from reconciler.controller.loop import LoopSettings
    from reconciler.controller.passes import EngineSettings, PassResult
    from reconciler.source.protocol import Source


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the controller: reconcile loop and REST view",
        description="Run the reconcile loop against the apply store (and git with --git) "
        "and serve status over HTTP.",
    )
    p.add_argument("--git", dest="git_url", metavar="URL", help="git repository with specs")
    p.add_argument("--branch", default="main", help="git branch (default %(default)s)")
    p.add_argument(
        "--path", default=".", help="directory inside the repository (default %(default)s)"
    )
    p.add_argument(
        "--interval",
        type=duration,
        default=60.0,
        metavar="D",
        help="git poll interval: seconds or 30s, 5m, 1h (default %(default)ss)",
    )
    p.add_argument("--listen", help="REST address host:port (default: config 'listen')")
    p.add_argument(
        "--once",
        action="store_true",
        help="run passes until converged or no pass makes progress (at most --max-passes), "
        "then exit 0 if converged, 1 if not",
    )
    p.add_argument(
        "--max-passes",
        type=int,
        default=10,
        metavar="N",
        help="with --once: stop after N passes (default %(default)s)",
    )
    client.add_filename(
        p, required=False, help_text="spec file or directory to use instead of the store and git"
    )
    p.add_argument(
        "--resync",
        type=duration,
        default=30.0,
        metavar="D",
        help="full resync period: seconds or 30s, 5m (default %(default)ss)",
    )
    p.add_argument(
        "--per-host", type=int, default=4, help="parallel actions per host (default %(default)s)"
    )
    p.add_argument(
        "--parallel", type=int, default=16, help="parallel actions overall (default %(default)s)"
    )
    p.add_argument(
        "--detach-wait",
        type=duration,
        default=15.0,
        metavar="D",
        help="how long one pass waits for a guest to release a detached disk "
        "(default %(default)ss)",
    )
    p.add_argument("--allow-mass-delete", action="store_true")
    p.add_argument("--no-api", action="store_true", help="do not serve the REST view")
    p.add_argument("--log-level", default="info", help="log level (default %(default)s)")
    p.add_argument("--replica-id", help="HA replica name (rados:// store; default: hostname-pid)")
    p.add_argument(
        "--lease", type=duration, metavar="D", help="HA leader lease (default: config, 6s)"
    )
    p.set_defaults(func=run)


def duration(text: str) -> float:
    """argparse type for --interval and friends: 60, 60.5, 30s, 5m, 1h."""
    from reconciler.durations import seconds
    from reconciler.errors import SpecError

    try:
        return seconds(text, "")
    except SpecError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 60, 30s, 5m, 1h)"
        ) from None


def run(args: argparse.Namespace) -> int:
    import structlog

    from reconciler.loading.config_file import load_config
    from reconciler.logging import configure

    log = structlog.get_logger("volctl.run")
    configure(args.log_level)
    config = load_config(getattr(args, "config", None))
    if config.store.startswith("rados://"):
        from reconciler.source.stores import refuse_unfenced

        if args.once or args.paths:
            refuse_unfenced(config, "volctl run --once / -f")
        return run_replica(args, config, log)
    hook_token = None
    if config.webhook is not None and not args.no_api:
        from reconciler.api.hooks import token_of

        hook_token = token_of(config.webhook)  # a bad webhook config stops before any work
    if args.paths:  # files given with -f: no store to share
        return _run(args, config, hook_token, log)
    from reconciler.controller.store_lock import StoreLock

    with StoreLock(config.store):  # a second controller on this store is refused
        return _run(args, config, hook_token, log)


def _run(args: argparse.Namespace, config: Config, hook_token: str | None, log: Any) -> int:
    from reconciler.controller.wiring import build_runtime

    source = _source(args, config, args.paths)
    engine, loop = _settings(args)
    rt = build_runtime(
        config,
        source,
        allow_mass_delete=args.allow_mass_delete,
        engine_settings=engine,
        loop_settings=loop,
    )
    server = None
    if not args.no_api:
        from reconciler.api.hooks import GitHook
        from reconciler.api.server import serve

        hook = None if hook_token is None else GitHook(hook_token, rt.controller.refresh_source)
        server = serve(
            rt.store.snapshot,
            args.listen or config.listen,
            config.token,
            config.cors_origins,
            git_hook=hook,
            wait_fn=rt.store.wait_newer,
        )
    try:
        if args.once:
            result = rt.controller.run_until_converged(max_passes=args.max_passes)
            sys.stdout.write(summary(result.snapshot))
            return 0 if result.snapshot.converged else 1
        _stop_on_signals(rt.controller.stop, log)
        rt.controller.watch_source()
        log.info("controller.start", source=source.kind, url=source.url)
        rt.controller.run(after_pass=_Readiness(log))
        log.info("controller.stop")
        return 0
    finally:
        if server is not None:
            server.stop()
        rt.close()


def run_replica(args: argparse.Namespace, config: Config, log: Any) -> int:
    """One HA replica: leads while it holds the lease, follows otherwise."""
    from reconciler.controller.ha_wiring import build_replica

    def source() -> Source:
        return _source(args, config, None)

    engine, loop = _settings(args)
    replica = build_replica(
        config,
        source,
        replica_id=args.replica_id,
        lease=args.lease,
        allow_mass_delete=args.allow_mass_delete,
        engine_settings=engine,
        loop_settings=loop,
    )
    server = None
    if not args.no_api:
        from reconciler.api.server import serve

        server = serve(
            replica.snapshot,
            args.listen or config.listen,
            config.token,
            config.cors_origins,
            replica_fn=replica.info,
            wait_fn=replica.wait_newer,
        )
    _stop_on_signals(replica.stop, log)
    try:
        replica.run()
    finally:
        if server is not None:
            server.stop()
    log.info("controller.stop")
    return 0


def _stop_on_signals(stop: Any, log: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    from reconciler.controller.sdnotify import notify

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        notify("STOPPING=1", "STATUS=stopping: finishing the running calls")
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    # `kill -USR1 PID` prints every thread's stack to stderr and the controller goes on (a
    # call stuck in a library, as in Go's SIGQUIT dump, without stopping anything)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    # VOLCTL_TRACEMALLOC=N: `kill -USR2 PID` logs where the Python heap grew (memtrace.py)
    from reconciler.controller.memtrace import install

    install(log)


class _Readiness:
    """After each pass: STATUS= for `systemctl status`; READY=1 once, after the first."""

    def __init__(self, log: Any) -> None:
        self.ready = False
        self.log = log

    def __call__(self, result: PassResult) -> None:
        from reconciler.controller.sdnotify import notify

        snap = result.snapshot
        state = "converged" if snap.converged else f"{snap.pending_actions} action(s) pending"
        lines = [f"STATUS=pass {result.reconcile_id}: {state}"]
        if not self.ready:
            lines.insert(0, "READY=1")
            self.log.info("controller.ready", reconcile_id=result.reconcile_id)
        notify(*lines)
        self.ready = True


def _source(args: argparse.Namespace, config: Config, paths: list[str] | None) -> Source:
    """The source `run` reads: files given with -f, else the store and git of the config."""
    from reconciler.controller.oneshot import source_for

    return source_for(
        config,
        paths,
        git_url=args.git_url,
        branch=args.branch,
        path=args.path,
        interval=args.interval,
    )


def _settings(args: argparse.Namespace) -> tuple[EngineSettings, LoopSettings]:
    """Engine and loop settings from the flags, the same for a lone controller and a replica."""
    from reconciler.controller.loop import LoopSettings
    from reconciler.controller.passes import EngineSettings
    from reconciler.controller.triggers import Resync
    from reconciler.execute.executor import Limits

    engine = EngineSettings(
        limits=Limits(per_host=args.per_host, overall=args.parallel),
        detach_wait=args.detach_wait,
    )
    return engine, LoopSettings(resync=Resync(interval=args.resync))
