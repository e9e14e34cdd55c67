"""Optional network-namespace mode: each lab host in its own netns, reached by qemu+tcp.

Why: with unix sockets a test cannot cut one host's link.  Here every host gets a network
namespace with one veth into a private bridge that exists only in the lab (10.231.N.0/24 on
the bridge and inside the namespaces, N chosen so it overlaps nothing on the machine), and
its libvirtd listens on qemu+tcp at its namespace address.  `cut(host)`/`heal(host)` take the
host's veth down and up again.  Before any use, the route to every host address is checked to
go through the lab's bridge, so no traffic can leave for a real network.  Ceph stays on the
machine's loopback and reaches the namespaces through `reconciler.lab.relay`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.lab.proc import LabError, alive, cmdline, read_pid, run, stop_pids

NETNS_DIR = Path("/run/netns")
TCP_PORT = 16509


@dataclass(frozen=True)
class LabNet:
    lab_id: str  # 4 hex digits from the lab dir; keeps interface names unique and short
    subnet: int  # N in 10.231.N.0/24

    @staticmethod
    def for_dir(lab_dir: Path, subnet: int) -> LabNet:
        return LabNet(hashlib.sha256(str(lab_dir).encode()).hexdigest()[:4], subnet)

    @property
    def bridge(self) -> str:
        return f"vlb{self.lab_id}"

    @property
    def bridge_ip(self) -> str:
        return f"10.231.{self.subnet}.1"

    def netns(self, host: str) -> str:
        return f"vl{self.lab_id}-{host}"

    def veth(self, host: str) -> str:
        return f"vl{self.lab_id}{host}"[:15]

    def host_ip(self, host: str) -> str:
        index = int(host.lstrip("h"))
        return f"10.231.{self.subnet}.{10 + index}"

    def uri(self, host: str) -> str:
        return f"qemu+tcp://{self.host_ip(host)}/system"


SUBNET_LOCK = Path("/run/lock/volctl-lab-netns.lock")


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    """Machine-wide: choosing a free subnet and claiming it (the bridge address) is one step,
    so two labs coming up at once never pick the same 10.231.N.0/24 (R2 ran into this)."""
    SUBNET_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with SUBNET_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_subnet() -> int:
    """A third octet N such that nothing on the machine uses 10.231.N.0/24."""
    used = run(["ip", "-4", "-o", "addr", "show"], timeout=10) + run(
        ["ip", "-4", "route", "show", "table", "all"], timeout=10
    )
    for n in range(10, 250):
        if f"10.231.{n}." not in used:
            return n
    raise LabError("no free 10.231.N.0/24 subnet for the lab bridge")


def _ip(*args: str) -> str:
    return run(["ip", *args], timeout=15)


def setup(net: LabNet, hosts: list[str]) -> None:
    """Bridge + one netns with a veth per host; asserts the routes stay on the bridge."""
    _ip("link", "add", net.bridge, "type", "bridge")
    _ip("addr", "add", f"{net.bridge_ip}/24", "dev", net.bridge)
    _ip("link", "set", net.bridge, "up")
    for host in hosts:
        ns = net.netns(host)
        _ip("netns", "add", ns)
        _ip("link", "add", net.veth(host), "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", net.veth(host), "master", net.bridge, "up")
        _ip("-n", ns, "addr", "add", f"{net.host_ip(host)}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        route = json.loads(_ip("-j", "route", "get", net.host_ip(host)))
        if not route or route[0].get("dev") != net.bridge:
            raise LabError(f"route to {net.host_ip(host)} does not use {net.bridge}: {route}")


def teardown(net: LabNet, hosts: list[str]) -> None:
    """Delete the namespaces (their veth ends go with them) and the bridge; idempotent."""
    existing = {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()
    for host in hosts:
        with contextlib.suppress(LabError):
            _ip("link", "del", net.veth(host))
        if net.netns(host) in existing:
            _ip("netns", "del", net.netns(host))
    with contextlib.suppress(LabError):
        _ip("link", "del", net.bridge)


def remove_netns_dir() -> None:
    """Remove /run/netns (a mount on itself, made by `ip netns add`) if no netns is left."""
    if not NETNS_DIR.is_dir() or any(NETNS_DIR.iterdir()):
        return
    with contextlib.suppress(LabError):
        run(["umount", str(NETNS_DIR)], timeout=10)
    with contextlib.suppress(OSError):
        NETNS_DIR.rmdir()


def links(net: LabNet) -> list[str]:
    """The lab's interfaces that exist in the root namespace (bridge and veths)."""
    out = json.loads(_ip("-j", "link", "show"))
    return [str(i["ifname"]) for i in out if str(i["ifname"]).startswith(f"vl{net.lab_id}")
            or i["ifname"] == net.bridge]  # fmt: skip


def cut(net: LabNet, host: str) -> None:
    """Take HOST's link down: its libvirtd becomes unreachable, nothing else changes."""
    _ip("link", "set", net.veth(host), "down")


def heal(net: LabNet, host: str) -> None:
    _ip("link", "set", net.veth(host), "up")


def ceph_ports(cluster: Any, mon_ports: tuple[int, ...]) -> list[int]:
    """The mon ports plus every address port of every OSD, from the OSD map."""
    ret, out, err = cluster.mon_command(json.dumps({"prefix": "osd dump", "format": "json"}), b"")
    if ret != 0:
        raise LabError(f"osd dump: {err}")
    ports = set(mon_ports)
    for osd in json.loads(out)["osds"]:
        for key in ("public_addrs", "cluster_addrs"):
            for addr in osd[key]["addrvec"]:
                ports.add(int(addr["addr"].rsplit(":", 1)[1]))
    return sorted(ports)


def start_relay(lab_dir: Path, net: LabNet, hosts: list[str], ports: list[int]) -> int:
    """Start the Ceph relay for HOSTS' namespaces; returns its PID (also in DIR/relay.pid)."""
    log = (lab_dir / "relay.log").open("ab")
    cmd = [
        sys.executable, "-m", "reconciler.lab.relay", "--ports", ",".join(map(str, ports)),
        *[net.netns(h) for h in hosts],
    ]  # fmt: skip
    with log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    (lab_dir / "relay.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def relay_pid(lab_dir: Path) -> int | None:
    pid = read_pid(lab_dir / "relay.pid")
    return pid if pid and alive(pid) and "reconciler.lab.relay" in cmdline(pid) else None


def stop_relay(lab_dir: Path) -> None:
    pid = relay_pid(lab_dir)
    if pid:
        stop_pids([pid], grace=3)
