"""`volctl lab` orchestration: bring the whole lab up in order, and tear it down in reverse.

Why one module: the order matters and is the lab's main knowledge.  Up: base image (cached)
-> Ceph -> libvirt hosts (first one alone if the qemu capabilities cache is cold) -> the ceph
secret on every host -> base image into RBD -> inventory, config and lab.json.  Down: guests
first (a dead Ceph wedges qemu that has RBD attached), then the libvirtds, then Ceph (mgr and
OSD, then the mon), then the mount points and files the lab created.  Every step is by PID
from a pid file; nothing is ever matched by process name.

`lab-state.json` is written before anything starts, so `down` can clean up after a failed or
interrupted `up`.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.lab import mounts
from reconciler.lab import netns as netmod
from reconciler.lab.ceph import CephCluster, import_image
from reconciler.lab.guest_image import ensure_base_image
from reconciler.lab.info import LabHost, LabInfo
from reconciler.lab.inventory import config_doc, write_config, write_inventory
from reconciler.lab.libvirt_host import LibvirtHost
from reconciler.lab.netns import LabNet
from reconciler.lab.proc import (
    LabError,
    alive,
    cmdline,
    free_ports,
    port_free,
    remove_tree,
    stop_pids,
)
from reconciler.lab.sshd import HostSshd, LabSsh
from reconciler.lab.state import DEFAULT_DIR, LabState, default_cache_dir

BASE_IMAGE = "volctl-lab-base"
TRANSPORTS = ("unix", "tcp", "ssh")  # unix without --netns; tcp (default) or ssh with it
BASE_SNAP = "base"
MAX_SOCKET_PATH = 107

Log = Callable[[str], None]


class Lab:
    """One lab directory.  All methods are safe to call in any state (idempotent)."""

    def __init__(self, lab_dir: Path | str = DEFAULT_DIR, log: Log | None = None) -> None:
        self.dir = Path(lab_dir).absolute()
        self._t0 = time.monotonic()
        self._log_fn = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def log(self, msg: str) -> None:
        self._log_fn(f"[{time.monotonic() - self._t0:6.2f}s] {msg}")

    # ---- components ---------------------------------------------------------------

    def state(self) -> LabState | None:
        return LabState.load(self.dir)

    def ceph(self, state: LabState) -> CephCluster:
        return CephCluster(
            self.dir / "ceph", mon_port=state.mon_port, mon_v2_port=state.mon_v2_port,
            pool=state.pool,
        )  # fmt: skip

    def net(self, state: LabState | None = None) -> LabNet | None:
        st = state or self.state() or LabState()
        return LabNet.for_dir(self.dir, st.netns_subnet) if st.netns_subnet is not None else None

    def host(self, name: str, state: LabState | None = None) -> LibvirtHost:
        st = state or self.state() or LabState()
        return LibvirtHost(self.dir, name, Path(st.cache_dir) / "qemu-caps", self.net(st))

    def sshd(self, name: str, state: LabState | None = None) -> HostSshd | None:
        """Host NAME's sshd in ssh-transport mode, else None."""
        st = state or self.state() or LabState()
        net = self.net(st)
        if st.transport != "ssh" or net is None:
            return None
        binds = tuple(self.host(name, st).nss_binds())
        return HostSshd(self.dir, name, net.host_ip(name), net.netns(name), binds)

    def public_uri(self, host: LibvirtHost, state: LabState | None = None) -> str:
        """The URI the lab hands to volctl: qemu+ssh in ssh mode, else the host's own."""
        st = state or self.state() or LabState()
        if st.transport == "ssh" and host.net is not None:
            return LabSsh(self.dir).uri(host.net.host_ip(host.name))
        return host.uri

    def host_names(self, state: LabState | None) -> list[str]:
        names = set(state.hosts if state else [])
        hosts_dir = self.dir / "hosts"
        if hosts_dir.is_dir():
            names |= {p.name for p in hosts_dir.iterdir() if p.is_dir()}
        return sorted(names, key=lambda n: (len(n), n))

    def info(self) -> LabInfo:
        return LabInfo.load(self.dir)

    def running(self) -> bool:
        """True if lab.json exists and every daemon it lists is alive."""
        state = self.state()
        if state is None or not (self.dir / "lab.json").exists():
            return False
        if not all(self.ceph(state).pids().values()):
            return False
        return all(self.host(h, state).reaper_pid() for h in state.hosts)

    # ---- up -----------------------------------------------------------------------

    def up(
        self,
        hosts: int = 3,
        *,
        mon_port: int | None = None,
        mon_v2_port: int | None = None,
        cache_dir: Path | None = None,
        netns: bool = False,
        transport: str | None = None,
    ) -> LabInfo:
        """Bring the lab up (or return the running one if it already has HOSTS hosts).

        TRANSPORT is how volctl reaches the hosts: `unix` (the default without netns),
        `tcp` (the default with it) or `ssh` (netns only: an sshd per host, docs/lab.md)."""
        transport = transport or ("tcp" if netns else "unix")
        if transport not in TRANSPORTS:
            raise LabError(f"unknown transport {transport!r}; one of {', '.join(TRANSPORTS)}")
        if (transport == "unix") == netns:
            raise LabError(
                "--transport tcp and ssh need --netns (each host in its own network namespace); "
                "without --netns hosts are reached by unix socket"
            )
        self._t0 = time.monotonic()
        if os.geteuid() != 0:
            raise LabError("volctl lab must run as root (it starts libvirtd and Ceph daemons)")
        if hosts < 1:
            raise LabError("--hosts must be at least 1")
        if self.running():
            info = self.info()
            running_transport = (self.state() or LabState()).transport
            if len(info.hosts) == hosts and info.netns == netns and running_transport == transport:
                self.log(f"lab already up in {self.dir} ({hosts} hosts)")
                return info
            raise LabError(
                f"a different lab ({len(info.hosts)} hosts) runs in {self.dir}; "
                "run `volctl lab down` first"
            )
        if self.dir.is_dir() and not any(self.dir.iterdir()):
            self.dir.rmdir()  # an empty dir the user made for the lab
        if self.dir.exists():
            self.log(f"cleaning up a stale lab in {self.dir}")
            self.down(quiet=True)
        sock = LibvirtHost(self.dir, f"h{hosts}").socket
        if len(str(sock)) > MAX_SOCKET_PATH:
            raise LabError(f"lab dir too long for a unix socket path: {sock}")
        v1, v2 = self._pick_ports(mon_port, mon_v2_port)
        state = LabState(
            hosts=[f"h{i}" for i in range(1, hosts + 1)],
            mon_port=v1,
            mon_v2_port=v2,
            cache_dir=str((cache_dir or default_cache_dir()).absolute()),
            netns_subnet=netmod.free_subnet() if netns else None,
            netns_dir_created=netns and not netmod.NETNS_DIR.exists(),
            transport=transport,
        )
        self.dir.mkdir(parents=True)
        state.save(self.dir)
        try:
            info = self._up(state)
        except BaseException:
            self._print_tails(state)
            self.log("lab up failed; cleaning up")
            self.down(quiet=True)
            raise
        self.log(f"lab up: {hosts} hosts, Ceph {self._wait_healthy(self.ceph(state))}")
        return info

    def _wait_healthy(self, ceph: CephCluster, timeout: float = 15) -> str:
        """Ceph's health, after waiting briefly for HEALTH_OK (the mgr reports late)."""
        deadline = time.monotonic() + timeout
        health = ceph.health()
        while health != "HEALTH_OK" and time.monotonic() < deadline:
            time.sleep(0.25)
            health = ceph.health()
        return health

    def _pick_ports(self, v1: int | None, v2: int | None) -> tuple[int, int]:
        for port in (v1, v2):
            if port is not None and not port_free(port):
                raise LabError(f"port {port} is already in use")
        if v1 is None and v2 is None and port_free(6789) and port_free(3300):
            return 6789, 3300
        picked = iter(p for p in free_ports(4) if p not in (v1, v2))
        return v1 or next(picked), v2 or next(picked)

    def _up(self, state: LabState) -> LabInfo:
        cache = Path(state.cache_dir)
        image_file = ensure_base_image(cache, self.log)
        self.log(f"base image {image_file}")
        ceph = self.ceph(state)
        ceph.start(self.log)

        state.created_mountpoints = mounts.ensure_mountpoints()
        state.save(self.dir)
        net = self.net(state)
        if net:
            with netmod.subnet_lock():  # pick again: another lab may have claimed ours by now
                state.netns_subnet = netmod.free_subnet()
                state.save(self.dir)
                net = self.net(state)
                assert net is not None
                netmod.setup(net, state.hosts)
            self._up_network(net, state, ceph)
        hosts = [self.host(n, state) for n in state.hosts]
        for h in hosts:
            h.write_conf()
        first, rest = hosts[0], hosts[1:]
        caps = Path(state.cache_dir) / "qemu-caps"
        if not any(caps.glob("*.xml")):  # cold cache: let one daemon probe qemu first
            first.spawn()
            first.wait_ready()
            started = rest
        else:
            started = hosts
        for h in started:
            h.spawn()
        for h in started:
            h.wait_ready()
        self.log(f"{len(hosts)} libvirtd hosts ready")
        if state.transport == "ssh":
            self._up_sshd(state)

        secret_uuid = str(uuid.uuid4())
        self._define_secrets(ceph, hosts, secret_uuid)
        self.log("ceph secret defined on every host")

        with ceph.connect(timeout=30) as cluster:
            import_image(cluster, ceph.pool, BASE_IMAGE, image_file, BASE_SNAP)
        base = f"{ceph.pool}/{BASE_IMAGE}@{BASE_SNAP}"
        self.log(f"base image imported as {base}")

        for sub in ("store", "state", "consoles"):
            (self.dir / sub).mkdir(exist_ok=True)
        inventory = self.dir / "inventory.yaml"
        write_inventory(inventory, [(h.name, self.public_uri(h, state)) for h in hosts], base)
        config = self.dir / "volctl.yaml"
        write_config(
            config,
            config_doc(
                lab_dir=self.dir, ceph_conf=ceph.conf, pool=ceph.pool, user=ceph.controller_user,
                secret_uuid=secret_uuid, monitors=ceph.monitors,
            ),
        )  # fmt: skip
        info = LabInfo(
            dir=str(self.dir),
            hosts=tuple(
                LabHost(h.name, self.public_uri(h, state), h.reaper_pid() or 0) for h in hosts
            ),
            ceph_conf=str(ceph.conf),
            pool=ceph.pool,
            ceph_user=ceph.controller_user,
            admin_user=ceph.user,
            secret_uuid=secret_uuid,
            monitors=ceph.monitors,
            base_image=base,
            base_image_file=str(image_file),
            config_path=str(config),
            inventory_path=str(inventory),
            netns=net is not None,
        )
        info.save()
        return info

    def _up_network(self, net: LabNet, state: LabState, ceph: CephCluster) -> None:
        with ceph.connect(timeout=30) as cluster:
            ports = netmod.ceph_ports(cluster, (state.mon_port, state.mon_v2_port))
        relay = netmod.start_relay(self.dir, net, state.hosts, ports)
        deadline = time.monotonic() + 15
        while "relaying" not in (self.dir / "relay.log").read_text():
            if time.monotonic() > deadline or not alive(relay):
                raise LabError("ceph relay did not start:\n" + (self.dir / "relay.log").read_text())
            time.sleep(0.05)
        self.log(f"network namespaces on {net.bridge} 10.231.{net.subnet}.0/24, ceph relayed")

    def _up_sshd(self, state: LabState) -> None:
        """The lab key, then an sshd per host with its host key pinned in known_hosts."""
        client = LabSsh(self.dir)
        pubkey = client.create()
        daemons = [d for d in (self.sshd(n, state) for n in state.hosts) if d is not None]
        for d in daemons:
            client.trust(d.addr, d.write_conf(pubkey))
            d.spawn()
        for d in daemons:
            d.wait_ready()
        self.log(f"sshd on every host (key and known_hosts in {client.dir})")

    def _define_secrets(self, ceph: CephCluster, hosts: list[LibvirtHost], uuid_: str) -> None:
        """client.volctl's cephx key goes from its keyring straight into each host's secret,
        nowhere else (guests open their RBD disks as client.volctl, like the controller)."""
        key = ceph.key_of(ceph.controller_user)
        usage = f"client.{ceph.controller_user} {self.dir}"
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(lambda h: h.define_secret(uuid_, usage, key), hosts))

    def _print_tails(self, state: LabState) -> None:
        lines = self.ceph(state).log_tails()
        for name in self.host_names(state):
            lines += self.host(name, state).log_tails()
            sshd = self.sshd(name, state)
            lines += sshd.log_tails() if sshd is not None else []
        for line in lines:
            self._log_fn(line)

    # ---- down ---------------------------------------------------------------------

    def down(self, *, keep: bool = False, quiet: bool = False) -> float:
        """Stop guests, libvirtds, Ceph; remove mount points, namespaces and files.

        Returns the seconds it took.  Safe to run repeatedly and on a half-started lab."""
        t0 = time.monotonic()
        if not self.dir.exists():
            if not quiet:
                self.log(f"no lab in {self.dir}")
            return 0.0
        state = self.state()
        if (
            state is None
            and not (self.dir / "lab.json").exists()
            and not (self.dir / "ceph").exists()
        ):
            raise LabError(f"{self.dir} does not look like a lab dir; not touching it")
        state = state or LabState()
        hosts = [self.host(n, state) for n in self.host_names(state)]
        stop_pids([p for h in hosts for p in h.qemu_pids()], grace=5)
        for name in self.host_names(state):
            sshd = self.sshd(name, state)
            if sshd is not None:
                sshd.stop()
        stop_pids([p for h in hosts for p in (h.reaper_pid(), h.libvirtd_pid()) if p], grace=8)
        netmod.stop_relay(self.dir)
        self.ceph(state).stop()
        net = self.net(state)
        if net:
            netmod.teardown(net, state.hosts)
            if state.netns_dir_created:
                netmod.remove_netns_dir()
        stragglers = self._stragglers()
        stop_pids(stragglers, grace=3)
        kept = mounts.remove_mountpoints()
        if kept and not quiet:  # another lab still uses them; it removes them when it goes
            self.log(f"mount points still in use elsewhere, kept: {' '.join(kept)}")
        if not keep:
            remove_tree(self.dir)
        took = time.monotonic() - t0
        if not quiet:
            self.log(f"lab down in {took:.2f} s")
        return took

    def _stragglers(self) -> list[int]:
        """Live processes started from this lab dir that no pid file accounted for."""
        marker = str(self.dir) + "/"
        out = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                pid = int(entry.name)
                if pid != os.getpid() and alive(pid) and marker in cmdline(pid):
                    out.append(pid)
        return out

    # ---- daemon restarts (tests) ----------------------------------------------------

    def stop_host_daemon(self, name: str) -> None:
        """Stop one host's libvirtd; its guests keep running."""
        self.host(name).stop_daemon()

    def start_host_daemon(self, name: str) -> LabHost:
        """Start one host's libvirtd again (it reconnects to running guests); updates lab.json."""
        h = self.host(name)
        h.spawn()
        h.wait_ready()
        info = self.info()
        new = LabHost(h.name, self.public_uri(h), h.reaper_pid() or 0)
        hosts = tuple(new if x.name == name else x for x in info.hosts)
        replace(info, hosts=hosts).save()
        return new

    def cut_host(self, name: str) -> None:
        """Netns mode: take the host's link down (its libvirtd becomes unreachable)."""
        netmod.cut(self._require_net(), name)

    def heal_host(self, name: str) -> None:
        netmod.heal(self._require_net(), name)

    def _require_net(self) -> LabNet:
        net = self.net()
        if net is None:
            raise LabError("this lab has no network namespaces (use `volctl lab up --netns`)")
        return net

    # ---- status / env ---------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Rows: component, pid, addr, health."""
        state = self.state()
        if state is None:
            return []
        ceph = self.ceph(state)
        pids = ceph.pids()
        health = ceph.health() if pids["mon.a"] else "down"
        rows: list[dict[str, Any]] = [
            {
                "component": "ceph mon.a",
                "pid": pids["mon.a"],
                "addr": f"127.0.0.1:{state.mon_v2_port} (v2) :{state.mon_port} (v1)",
                "health": health,
            }
        ]
        for d in ("osd.0", "mgr.x"):
            rows.append(
                {"component": f"ceph {d}", "pid": pids[d], "addr": "127.0.0.1",
                 "health": "running" if pids[d] else "down"}
            )  # fmt: skip
        if state.netns_subnet is not None:
            relay = netmod.relay_pid(self.dir)
            rows.append(
                {"component": "ceph relay", "pid": relay, "addr": "127.0.0.1 in each netns",
                 "health": "running" if relay else "down"}
            )  # fmt: skip
        for name in self.host_names(state):
            h = self.host(name, state)
            guests = len(h.qemu_pids())
            health = h.health()
            sshd = self.sshd(name, state)
            if sshd is not None:
                rows.append(
                    {"component": f"sshd {name}", "pid": sshd.pid(), "addr": f"{sshd.addr}:22",
                     "health": "running" if sshd.pid() else "down"}
                )  # fmt: skip
            rows.append(
                {"component": f"host {name}", "pid": h.reaper_pid(),
                 "addr": self.public_uri(h, state),
                 "health": f"{health}, {guests} guest(s)" if health == "ok" else health}
            )  # fmt: skip
        return rows

    def env(self) -> dict[str, str]:
        info = self.info()
        return {
            "VOLCTL_LAB_DIR": info.dir,
            "VOLCTL_CONFIG": info.config_path,
            "CEPH_CONF": info.ceph_conf,
            "LIBVIRT_DEFAULT_URI": info.hosts[0].uri,
        }
