"""Make the lab's Ceph unavailable without losing its data: SIGSTOP the mon and the OSD.

Why SIGSTOP and not a stop/start or a firewall rule:

- The lab's OSD is memstore: its objects live in the daemon's memory.  A stopped OSD keeps
  them only through a clean umount (`osd fast shutdown = false`), and a restart must then
  find the mon up again in the right order; any slip and the cluster comes back empty, with
  every client hanging on "queued for pg" (docs: /work/shared/notes/lab-ceph.md, pitfall 11).
  A frozen process keeps everything it holds, so a thaw always brings the same cluster back.
- A frozen daemon is also the harder fault for a client: its TCP connections stay open and
  the kernel still accepts new ones into the listen backlog, but no byte ever comes back, as
  with a powered-off or partitioned Ceph node (packets dropped, no RST).  librados then waits
  for its own timeouts, which is exactly what volctl's call deadlines must bound.
- nft/iptables rules are machine-wide on a machine shared by several labs, and the OSD's
  ports are chosen at start (6800-7300); a signal to two PIDs read from this lab's own pid
  files (and checked against its ceph.conf in /proc/PID/cmdline) touches nothing else.

The mgr keeps running (the issue names the mon and the OSD).  `thaw()` is idempotent and is
also registered with `atexit` and for SIGTERM/SIGINT, so a campaign that dies mid-outage
does not leave the lab's Ceph frozen; `thaw_lab(dir)` is the same for a test's cleanup.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from types import FrameType

import rados

from reconciler.lab.proc import cmdline, read_pid

FROZEN_DAEMONS = ("mon.a", "osd.0")


def ceph_pids(lab_dir: str | Path) -> dict[str, int]:
    """The live mon and OSD of the lab in LAB_DIR (pid files checked against its conf)."""
    root = Path(lab_dir) / "ceph"
    conf = str(root / "ceph.conf")
    out: dict[str, int] = {}
    for d in FROZEN_DAEMONS:
        pid = read_pid(root / "run" / f"{d}.pid")
        if pid and conf in cmdline(pid):
            out[d] = pid
    return out


def thaw_lab(lab_dir: str | Path) -> None:
    """SIGCONT the lab's mon and OSD (harmless when they are not stopped)."""
    for pid in ceph_pids(lab_dir).values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


class CephOutage:
    """freeze() / thaw() the mon and OSD of one lab, recording when each happened."""

    def __init__(self, lab_dir: str | Path) -> None:
        self.lab_dir = Path(lab_dir)
        self.pids = ceph_pids(lab_dir)
        missing = set(FROZEN_DAEMONS) - set(self.pids)
        if missing:
            raise RuntimeError(f"lab {lab_dir}: no live {sorted(missing)}")
        self.frozen_at: float | None = None
        self.thawed_at: float | None = None
        atexit.register(self.thaw)
        for sig in (signal.SIGTERM, signal.SIGINT):
            prev = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, prev: object = prev) -> None:
                self.thaw()
                if callable(prev):
                    prev(signum, frame)
                else:
                    raise SystemExit(128 + signum)

            signal.signal(sig, handler)

    def freeze(self) -> float:
        # the OSD first: a mon frozen alone would briefly see the OSD still talking
        for d in ("osd.0", "mon.a"):
            os.kill(self.pids[d], signal.SIGSTOP)
        self.frozen_at = time.monotonic()
        self.thawed_at = None
        return self.frozen_at

    def thaw(self) -> float | None:
        if self.frozen_at is None or self.thawed_at is not None:
            return self.thawed_at
        for d in ("mon.a", "osd.0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pids[d], signal.SIGCONT)
        self.thawed_at = time.monotonic()
        return self.thawed_at

    def stopped(self, wait: float = 5.0) -> bool:
        """True once both daemons are in state T (stopped) per /proc/PID/stat; a signal to a
        busy multi-threaded daemon takes effect a moment after kill() returns."""
        deadline = time.monotonic() + wait
        while True:
            if all(_state(p) == "T" for p in self.pids.values()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


# ---- the lab's one OSD and its read leases --------------------------------------------------
#
# Since Octopus a PG's primary serves reads only within a read lease (by default 0.8 x
# osd_heartbeat_grace = 16 s) that it renews on its own clock.  A frozen OSD wakes up with
# every lease expired; with replicas the lease is renewed through their acks, but on the lab's
# single OSD a PG that had ops in flight was seen to stay `active+clean+laggy` for minutes
# after the thaw (slow ops piling up, every client read of its objects hanging): an artifact
# of one OSD being paused, which no volctl behaviour can fix.  The campaign therefore gives
# the lab's PGs a lease longer than the outage before it starts (`lengthen_read_lease`), and
# still checks after every thaw; a PG left laggy is re-peered (`ceph osd down 0`: the OSD
# asserts itself up again at once) and the trial records it as a lab repair.


def _ceph(lab_dir: str | Path, *args: str, timeout: float = 20, mgr: bool = False) -> str:
    """One mon command as the lab's admin, through librados (the `ceph` CLI takes seconds to
    start on a loaded machine).  ARGS: "pg", "dump", "pgs_brief" style words plus key=value."""
    words = [a for a in args if "=" not in a]
    cmd: dict[str, object] = {"prefix": " ".join(words), "format": "json"}
    for a in args:
        if "=" in a:
            k, _, v = a.partition("=")
            cmd[k] = [v] if k == "ids" else v
    secs = str(int(timeout))
    cluster = rados.Rados(
        conffile=str(Path(lab_dir) / "ceph" / "ceph.conf"),
        rados_id="admin",
        conf={"rados_osd_op_timeout": secs, "rados_mon_op_timeout": secs},
    )
    try:
        cluster.connect(timeout=int(timeout))
    except rados.Error:
        cluster.shutdown()
        raise
    try:
        send = cluster.mgr_command if mgr else cluster.mon_command
        ret, out, err = send(json.dumps(cmd), b"", timeout=int(timeout))
    finally:
        cluster.shutdown()
    if ret != 0:
        raise RuntimeError(f"ceph {cmd}: {err} (ret {ret})")
    return bytes(out).decode()


def laggy_pgs(lab_dir: str | Path) -> list[str]:
    """PGs of the lab that are not active+clean (laggy, peering, ...)."""
    doc = json.loads(_ceph(lab_dir, "pg", "ls", mgr=True))
    stats = doc.get("pg_stats", doc) if isinstance(doc, dict) else doc
    return [f"{p['pgid']} {p['state']}" for p in stats if p["state"] != "active+clean"]


def repeer(lab_dir: str | Path, timeout: float = 60) -> float:
    """`ceph osd down 0` and wait until every PG is active+clean again; returns seconds."""
    t0 = time.monotonic()
    _ceph(lab_dir, "osd", "down", "ids=0")
    while time.monotonic() - t0 < timeout:
        time.sleep(1)
        with contextlib.suppress(RuntimeError, rados.Error, ValueError):
            if not laggy_pgs(lab_dir):
                return time.monotonic() - t0
    raise RuntimeError(f"lab PGs not active+clean {timeout:.0f}s after a re-peer")


def lengthen_read_lease(lab_dir: str | Path, seconds: float) -> None:
    """PG read leases of SECONDS (taking effect at the re-peer this forces)."""
    ratio = seconds / 20.0  # osd_heartbeat_grace defaults to 20 s
    now = _ceph(lab_dir, "config", "get", "who=osd.0", "key=osd_pool_default_read_lease_ratio")
    if float(json.loads(now)) == ratio:
        return  # set by an earlier campaign on this lab (and the PGs re-peered then)
    _ceph(
        lab_dir,
        "config",
        "set",
        "who=global",
        "name=osd_pool_default_read_lease_ratio",
        f"value={ratio:g}",
    )
    repeer(lab_dir)


def settle_after_thaw(lab_dir: str | Path, grace: float = 20) -> dict[str, object]:
    """Wait up to GRACE s for every PG to be active+clean; re-peer what stays laggy."""
    t0 = time.monotonic()
    left: list[str] = []
    while time.monotonic() - t0 < grace:
        try:
            left = laggy_pgs(lab_dir)
        except (RuntimeError, rados.Error, ValueError) as exc:
            left = [f"unreadable: {exc}"]
        if not left:
            return {"lab_repair": None}
        time.sleep(1)
    secs = repeer(lab_dir)
    return {"lab_repair": f"re-peered after {grace:.0f}s ({secs:.1f}s): {left[:3]}"}
