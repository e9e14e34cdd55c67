"""Deterministic placement: which host a new VM goes to, and whether a resize still fits.

Policy (documented in docs/planning.md): hosts are tried in (pmid, name) order and the
first one with enough free vCPUs and RAM wins ("first fit", like the seed).  Free means the
host's capacity (the Host spec's override, else what libvirt reports) minus what every
domain that counts already uses: all of ours (a stopped VM keeps its reservation, so
starting it never overcommits) and every *running* foreign domain.  The ledger is updated
by every placement and resize of the same plan, so the plan's own earlier decisions count.
Anti-affinity: no two VMs of one group on one host.  Architecture: a host runs an image only
if its libvirt capabilities list the image's arch (a host whose capabilities could not be
read is not filtered).  Unreachable hosts are never chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.plan.world import World, active

_MAX_REASONS = 8  # per-host reasons shown in an Unschedulable message


@dataclass
class HostRoom:
    name: str
    cpu: int  # capacity
    ram: int  # MiB
    used_cpu: int = 0
    used_ram: int = 0
    groups: set[str] = field(default_factory=set)
    arches: tuple[str, ...] = ()  # guest architectures libvirt offers; () = unknown

    @property
    def free_cpu(self) -> int:
        return self.cpu - self.used_cpu

    @property
    def free_ram(self) -> int:
        return self.ram - self.used_ram

    def runs(self, arch: str | None) -> bool:
        return arch is None or not self.arches or arch in self.arches

    def why_not(self, cpu: int, ram: int, group: str | None, arch: str | None = None) -> str | None:
        """None if (cpu, ram, group, arch) fits here, else the reason it does not."""
        parts = []
        if not self.runs(arch):
            parts.append(f"cannot run {arch} guests (offers {', '.join(self.arches)})")
        if cpu > self.free_cpu:
            parts.append(f"needs {cpu} CPU, {max(self.free_cpu, 0)} free")
        if ram > self.free_ram:
            parts.append(f"needs {ram} MiB RAM, {max(self.free_ram, 0)} free")
        if group is not None and group in self.groups:
            parts.append(f"anti-affinity group {group}")
        return " and ".join(parts) or None


@dataclass
class Ledger:
    """Free capacity per reachable host, updated as the plan places and resizes VMs."""

    world: World
    rooms: dict[str, HostRoom] = field(default_factory=dict)  # reachable hosts, host order
    candidates: list[HostRoom] = field(default_factory=list)  # reachable hosts of the spec

    @classmethod
    def build(cls, world: World) -> Ledger:
        ledger = cls(world)
        for name in world.reachable:
            obs = world.observed.hosts[name]
            spec = world.desired.hosts.get(name)
            cpu = spec.cpu_capacity if spec and spec.cpu_capacity is not None else obs.cpus
            ram = spec.ram_capacity_mib if spec and spec.ram_capacity_mib is not None else None
            room = HostRoom(name, cpu, ram if ram is not None else obs.memory_mib)
            room.arches = obs.arches
            for dom in obs.domains:
                if dom.mark is not None or active(dom):
                    room.used_cpu += dom.vcpus
                    room.used_ram += dom.memory_mib
                if dom.mark is not None:
                    vm = world.desired.vms.get(dom.mark.name)
                    if vm is not None and vm.anti_affinity_group:
                        room.groups.add(vm.anti_affinity_group)
            ledger.rooms[name] = room
            if name in world.desired.hosts:
                ledger.candidates.append(room)
        return ledger

    def place(
        self,
        vm: str,
        cpu: int,
        ram: int,
        group: str | None,
        pin: str | None,
        *,
        arch: str | None = None,
    ) -> tuple[str | None, str]:
        """(host, "") on success, else (None, why): the per-host reasons, in host order."""
        domain = vm
        if pin is not None:
            room = self.rooms.get(pin)
            if room is None:
                return None, f"pinned host {pin} is not a reachable host of the spec"
            why = self._why(room, domain, cpu, ram, group, arch=arch)
            if why is not None:
                return None, f"{pin}: {why}"
            self._take(room, cpu, ram, group)
            return pin, ""
        candidates = self.candidates
        for room in candidates:  # fast numeric pass; reasons are only built on failure
            if (
                cpu <= room.free_cpu
                and ram <= room.free_ram
                and (group is None or group not in room.groups)
                and room.runs(arch)
                and not self.world.name_taken(room.name, domain)
            ):
                self._take(room, cpu, ram, group)
                return room.name, ""
        reasons = [
            f"{r.name}: {self._why(r, domain, cpu, ram, group, arch=arch)}" for r in candidates
        ]
        reasons.extend(f"{h}: unreachable" for h in self.world.unknown)
        if not reasons:
            return None, "no hosts in the spec"
        more = len(reasons) - _MAX_REASONS
        text = "; ".join(reasons[:_MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")
        return None, text

    def resize(self, host: str, d_cpu: int, d_ram: int) -> str | None:
        """Grow (or shrink) a VM in place by the deltas; None if it fits, else why not."""
        room = self.rooms.get(host)
        if room is None:
            return f"{host}: unreachable"
        need_cpu, need_ram = max(d_cpu, 0), max(d_ram, 0)
        why = room.why_not(need_cpu, need_ram, None)
        if why is not None:
            return f"{host}: {why}"
        room.used_cpu += d_cpu
        room.used_ram += d_ram
        return None

    def _why(
        self,
        room: HostRoom,
        domain: str,
        cpu: int,
        ram: int,
        group: str | None,
        *,
        arch: str | None = None,
    ) -> str | None:
        if self.world.name_taken(room.name, domain):
            return f"a domain named {domain} already exists there"
        return room.why_not(cpu, ram, group, arch)

    @staticmethod
    def _take(room: HostRoom, cpu: int, ram: int, group: str | None) -> None:
        room.used_cpu += cpu
        room.used_ram += ram
        if group is not None:
            room.groups.add(group)
