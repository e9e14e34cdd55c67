"""The lab's single-node Ceph cluster: mon + slim mgr + one memstore OSD, cephx, on loopback.

Why these choices (measured, see docs/lab.md): memstore starts in about a second and needs no
block device; `paxos propose interval = 0.02` makes every map change (pool create, snapshot)
take milliseconds instead of a second; `osd fast shutdown = false` keeps memstore's data over
an OSD restart; client settings live only in [client] so daemons keep their own keyrings and
logs.  All keys are generated offline with ceph-authtool and imported at mon mkfs, so no auth
round trips are needed.  The controller does not use client.admin: `client.volctl` gets the
least privilege it needs (`mon 'profile rbd'`, which includes the `osd blocklist` fencing
needs, and `osd 'profile rbd'`), with no pool restriction because the tests make a fresh pool
per test; a real site restricts it to its pool (docs/deploy.md).  Daemons are stopped by
their pid files (mgr and OSD first, then the mon, so the OSD gets its "mark me down" ack at
once).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rados
import rbd

from reconciler.lab.proc import LabError, alive, cmdline, read_pid, run, stop_pids, tail

Log = Callable[[str], None]
DAEMONS = ("mon.a", "osd.0", "mgr.x")
MGR_DISABLED = (
    "alerts influx insights iostat localpool mirroring nfs osd_perf_query osd_support "
    "prometheus restful selftest snap_schedule stats telegraf test_orchestrator zabbix "
    "diskprediction_local"
)
CONTROLLER_USER = "volctl"
# the caps of client.volctl in the lab, in ceph-authtool --cap order (docs/deploy.md gives a
# real site's line, restricted to its pool)
CONTROLLER_CAPS = (("mon", "profile rbd"), ("osd", "profile rbd"))


@dataclass(frozen=True)
class CephCluster:
    root: Path  # everything lives here: conf, keyrings, data, logs, pid files
    mon_port: int = 6789  # msgr v1 (what guests and the config use)
    mon_v2_port: int = 3300
    pool: str = "rbd"
    user: str = "admin"  # the lab's own administration (pools, users, the base image)
    controller_user: str = CONTROLLER_USER  # what volctl and the guests use

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def keyring(self) -> Path:
        return self.keyring_of(self.user)

    def keyring_of(self, user: str) -> Path:
        """Where the conf's `[client] keyring = ROOT/$cluster.$name.keyring` finds USER's key."""
        return self.root / f"ceph.client.{user}.keyring"

    @property
    def monitors(self) -> tuple[tuple[str, int], ...]:
        return (("127.0.0.1", self.mon_port),)

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def pids(self) -> dict[str, int | None]:
        """daemon -> PID of our live daemon (None if not running or not ours)."""
        out: dict[str, int | None] = {}
        for d in DAEMONS:
            pid = read_pid(self.pid_file(d))
            out[d] = pid if pid and alive(pid) and str(self.conf) in cmdline(pid) else None
        return out

    # ---- bring-up -------------------------------------------------------------------

    def write_conf(self, fsid: str) -> None:
        r = self.root
        mon_addr = f"[v2:127.0.0.1:{self.mon_v2_port},v1:127.0.0.1:{self.mon_port}]"
        daemon_common = f"log file = {r}/log/$cluster-$name.log\npid file = {r}/run/$name.pid\n"
        self.conf.write_text(
            "# written by `volctl lab up`: a throwaway single-node cluster on loopback\n"
            "[global]\n"
            f"fsid = {fsid}\n"
            f"mon host = {mon_addr}\n"
            "public network = 127.0.0.0/8\ncluster network = 127.0.0.0/8\n"
            "public addr = 127.0.0.1\ncluster addr = 127.0.0.1\n"
            "ms bind ipv4 = true\nms bind ipv6 = false\n"
            "auth cluster required = cephx\nauth service required = cephx\n"
            "auth client required = cephx\nauth allow insecure global id reclaim = false\n"
            f"run dir = {r}/run\ncrash dir = {r}/crash\n"
            "osd pool default size = 1\nosd pool default min size = 1\n"
            "osd pool default pg num = 8\nosd pool default pgp num = 8\n"
            "osd pool default pg autoscale mode = off\nosd crush chooseleaf type = 0\n"
            "mon allow pool size one = true\nmon allow pool delete = true\n"
            "mon warn on pool no redundancy = false\nmon max pg per osd = 1000\n"
            "mon data avail warn = 2\nmon data avail crit = 1\n"
            "paxos propose interval = 0.02\n"
            "\n[mon]\n"
            f"mon data = {r}/mon/$cluster-$id\nmon cluster log file = {r}/log/$cluster.log\n"
            + daemon_common
            + "\n[mgr]\n"
            f"mgr data = {r}/mgr/$cluster-$id\n"
            + daemon_common
            + f"mgr initial modules = iostat\nmgr disabled modules = {MGR_DISABLED}\n"
            "\n[osd]\n"
            f"osd data = {r}/osd/$cluster-$id\n"
            + daemon_common
            + "osd objectstore = memstore\nmemstore device bytes = 10G\n"
            "osd memory target = 1073741824\nosd fast shutdown = false\n"
            "\n[client]\n"
            f"keyring = {r}/$cluster.$name.keyring\nclient mount timeout = 30\n"
        )

    def _make_keys(self) -> None:
        r = self.root
        mkfs = r / "mon" / "keyring.mkfs"
        keys = {
            "mon.": (mkfs, ["--cap", "mon", "allow *"]),
            f"client.{self.user}": (
                self.keyring,
                ["--cap", "mon", "allow *", "--cap", "osd", "allow *",
                 "--cap", "mgr", "allow *", "--cap", "mds", "allow *"],
            ),
            f"client.{self.controller_user}": (
                self.keyring_of(self.controller_user),
                [arg for daemon, cap in CONTROLLER_CAPS for arg in ("--cap", daemon, cap)],
            ),
            "osd.0": (
                r / "osd" / "ceph-0" / "keyring",
                ["--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd",
                 "--cap", "osd", "allow *"],
            ),
            "mgr.x": (
                r / "mgr" / "ceph-x" / "keyring",
                ["--cap", "mon", "allow profile mgr", "--cap", "osd", "allow *",
                 "--cap", "mds", "allow *"],
            ),
        }  # fmt: skip
        for name, (path, caps) in keys.items():
            run(["ceph-authtool", "--create-keyring", str(path), "--gen-key", "-n", name, *caps])
            path.chmod(0o600)
        for name, (path, _caps) in keys.items():
            if name != "mon.":
                run(["ceph-authtool", str(mkfs), "--import-keyring", str(path)])

    def _daemon(self, name: str, args: list[str], timeout: float = 60) -> None:
        """Run a ceph daemon command that forks into the background (or an mkfs)."""
        log = self.root / "log" / f"{name}.stderr"
        with log.open("ab") as err:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                raise LabError(f"{' '.join(args)}: timed out") from exc
        if code != 0:
            raise LabError(f"{' '.join(args)}: exit {code}\n" + "\n".join(tail(log)))

    def start(self, log: Log) -> None:
        """Create and start the cluster in an empty ROOT; returns once a write succeeds."""
        r = self.root
        for sub in ("mon", "osd/ceph-0", "mgr/ceph-x", "log", "run", "crash"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.write_conf(fsid)
        self._make_keys()
        conf = str(self.conf)
        mon_addr = f"[v2:127.0.0.1:{self.mon_v2_port},v1:127.0.0.1:{self.mon_port}]"
        monmap = r / "mon" / "monmap"
        run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_addr, str(monmap)])
        self._daemon(
            "mon.a",
            ["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(monmap),
             "--keyring", str(r / "mon" / "keyring.mkfs")],
        )  # fmt: skip
        self._daemon("mon.a", ["ceph-mon", "-c", conf, "-i", "a"])
        log(f"ceph mon up on 127.0.0.1:{self.mon_v2_port} (v2) and :{self.mon_port} (v1)")
        with self.connect(timeout=30) as cluster:
            osd_uuid = str(uuid.uuid4())
            out = _mon_command(cluster, {"prefix": "osd new", "uuid": osd_uuid})
            if out.strip() != "0":
                raise LabError(f"osd new returned id {out!r}, expected 0")
            self._daemon(
                "osd.0", ["ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid]
            )
            self._daemon("osd.0", ["ceph-osd", "-c", conf, "-i", "0"])
            self._daemon("mgr.x", ["ceph-mgr", "-c", conf, "-i", "x"])
            log("ceph osd (memstore) and mgr started")
            create_pool(cluster, self.pool)
            wait_writable(cluster, self.pool, timeout=60)
        log(f"ceph pool '{self.pool}' is writable")

    def connect(self, timeout: float = 10) -> _Connection:
        return _Connection(self.conf, self.user, timeout)

    def key_of(self, user: str) -> bytes:
        """USER's raw cephx key (for the libvirt secret).  Never print or log it."""
        import base64  # noqa: PLC0415 - kept next to the only place the key is decoded

        keyring = self.keyring_of(user)
        for line in keyring.read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "key":
                return base64.b64decode(value.strip())
        raise LabError(f"{keyring}: no key")

    def create_user(self, user: str, caps: dict[str, str]) -> Path:
        """`ceph auth get-or-create client.USER` with CAPS ({daemon: cap}); writes its keyring
        where the conf finds it (mode 0600) and returns the path."""
        with self.connect(timeout=30) as cluster:
            cmd = {"prefix": "auth get-or-create", "entity": f"client.{user}",
                   "caps": [x for daemon, cap in caps.items() for x in (daemon, cap)]}  # fmt: skip
            keyring_text = _mon_command(cluster, cmd)
        path = self.keyring_of(user)
        path.touch(mode=0o600)
        path.write_text(keyring_text if keyring_text.endswith("\n") else keyring_text + "\n")
        return path

    def delete_user(self, user: str) -> None:
        """`ceph auth del client.USER` and remove its keyring (idempotent)."""
        with self.connect(timeout=30) as cluster:
            ret, _out, err = cluster.mon_command(
                json.dumps({"prefix": "auth del", "entity": f"client.{user}"}), b"", timeout=30
            )
        if ret not in (0, -2):  # -ENOENT: already gone
            raise LabError(f"ceph auth del client.{user}: {err} (ret {ret})")
        self.keyring_of(user).unlink(missing_ok=True)

    # ---- status and teardown ----------------------------------------------------------

    def health(self, timeout: float = 5) -> str:
        """HEALTH_OK / HEALTH_WARN ... or 'unreachable: ...'."""
        try:
            with self.connect(timeout=timeout) as cluster:
                raw = _mon_command(cluster, {"prefix": "health", "format": "json"})
        except (LabError, rados.Error) as exc:
            return f"unreachable: {exc}"
        status: str = json.loads(raw).get("status", "?")
        return status

    def stop(self) -> None:
        """Stop mgr and OSD, then the mon, by pid file; each SIGTERM then SIGKILL."""
        pids = self.pids()
        stop_pids([p for d, p in pids.items() if d != "mon.a" and p], grace=8)
        mon = pids["mon.a"]
        if mon:
            stop_pids([mon], grace=5)

    def log_tails(self) -> list[str]:
        out: list[str] = []
        for path in sorted((self.root / "log").glob("*")):
            lines = tail(path, 10)
            if lines:
                out += [f"== {path}", *lines]
        return out


class _Connection:
    """`with cluster.connect() as c:` - a connected rados.Rados that always shuts down."""

    def __init__(self, conf: Path, user: str, timeout: float) -> None:
        self._rados = rados.Rados(
            conffile=str(conf),
            rados_id=user,
            conf={
                "rados_osd_op_timeout": str(int(timeout)),
                "rados_mon_op_timeout": str(int(timeout)),
            },
        )
        self._timeout = timeout

    def __enter__(self) -> Any:
        try:
            self._rados.connect(timeout=int(max(1, self._timeout)))
        except rados.Error as exc:
            self._rados.shutdown()
            raise LabError(f"cannot connect to ceph: {exc}") from exc
        return self._rados

    def __exit__(self, *exc: object) -> None:
        self._rados.shutdown()


def _mon_command(cluster: Any, cmd: dict[str, Any], timeout: int = 30) -> str:
    ret, out, err = cluster.mon_command(json.dumps(cmd), b"", timeout=timeout)
    if ret != 0:
        raise LabError(f"ceph {cmd['prefix']}: {err} (ret {ret})")
    return bytes(out).decode()


def create_pool(cluster: Any, pool: str) -> None:
    """Create POOL (8 PGs), tag it for rbd and `rbd pool init` it."""
    _mon_command(cluster, {"prefix": "osd pool create", "pool": pool, "pg_num": 8, "pgp_num": 8})
    _mon_command(
        cluster,
        {"prefix": "osd pool application enable", "pool": pool, "app": "rbd",
         "yes_i_really_mean_it": True},
    )  # fmt: skip
    with cluster.open_ioctx(pool) as ioctx:
        rbd.RBD().pool_init(ioctx, True)


def delete_pool(cluster: Any, pool: str) -> None:
    _mon_command(
        cluster,
        {"prefix": "osd pool delete", "pool": pool, "pool2": pool,
         "yes_i_really_really_mean_it": True},
    )  # fmt: skip


def wait_writable(cluster: Any, pool: str, timeout: float) -> None:
    """Loop until a small write to POOL goes through (its PGs are active)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with cluster.open_ioctx(pool) as ioctx:
        while time.monotonic() < deadline:
            try:
                ioctx.write_full(".volctl-lab-probe", b"ok")
                ioctx.remove_object(".volctl-lab-probe")
            except rados.Error as exc:
                last = exc
                time.sleep(0.1)
            else:
                return
    raise LabError(f"pool {pool} never became writable: {last}")


def import_image(cluster: Any, pool: str, name: str, raw: Path, snap: str) -> None:
    """Import the raw file RAW as POOL/NAME (only non-zero 4 MiB chunks are written), then
    create and protect snapshot SNAP, so it can be the parent of copy-on-write clones."""
    chunk = 4 * 1024 * 1024
    size = raw.stat().st_size
    with cluster.open_ioctx(pool) as ioctx:
        rbd.RBD().create(ioctx, name, size, old_format=False, features=rbd.RBD_FEATURE_LAYERING)
        with rbd.Image(ioctx, name) as image, raw.open("rb") as src:
            offset = 0
            zero = bytes(chunk)
            while data := src.read(chunk):
                if data != zero[: len(data)]:
                    image.write(data, offset)
                offset += len(data)
            image.flush()
            image.create_snap(snap)
            image.protect_snap(snap)
