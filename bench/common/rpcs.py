"""Counting libvirt RPCs the same way for every tool: on the daemon side.

volctl counts its own calls (`Hypervisor.rpc_count()`), but Ansible forks a process per
task and kcli and the baseline use their own connections, so a client-side count would be
different code per tool.  Instead, for the duration of a measurement, each host's libvirtd
is told through its admin socket (`virt-admin daemon-log-filters/-outputs`) to log the
`RPC_SERVER_CLIENT_MSG_RX` probe of its RPC server to a file of ours; every remote-program
call a client sends produces exactly one such line, whoever the client is.  Afterwards the
daemon's filters and outputs are restored.  Keepalive and admin-program messages are not
counted.  Procedure numbers are from libvirt's remote_protocol.x.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.ctllog import parse_time
from bench.common.lab import Lab

REMOTE_PROGRAM = 0x20008086
# The procedures that matter for the O(hosts) and "no per-domain XML" claims; others are
# reported by number.
PROC_NAMES = {  # each checked against libvirt 9.0 by calling the API and reading the probe
    1: "CONNECT_OPEN",
    2: "CONNECT_CLOSE",
    9: "DOMAIN_CREATE",
    11: "DOMAIN_DEFINE_XML",
    12: "DOMAIN_DESTROY",
    14: "DOMAIN_GET_XML_DESC",
    16: "DOMAIN_GET_INFO",
    23: "DOMAIN_LOOKUP_BY_NAME",
    24: "DOMAIN_LOOKUP_BY_UUID",
    35: "DOMAIN_UNDEFINE",
    60: "CONNECT_SUPPORTS_FEATURE",
    66: "AUTH_LIST",
    150: "DOMAIN_IS_ACTIVE",
    212: "DOMAIN_GET_STATE",
    265: "DOMAIN_GET_METADATA",
    273: "CONNECT_LIST_ALL_DOMAINS",
    344: "CONNECT_GET_ALL_DOMAIN_STATS",  # matches volctl's own rpc_count() of getAllDomainStats
}
_RX = re.compile(
    r"^(\S+ \S+): .*RPC_SERVER_CLIENT_MSG_RX: .*?prog=(\d+) vers=\d+ proc=(\d+) type=(\d+)"
)


def _virt_admin(uri: str, *args: str) -> str:
    out = subprocess.run(
        ["virt-admin", "-c", uri, *args], capture_output=True, text=True, timeout=20, check=True
    )
    return out.stdout


def _current(uri: str, what: str) -> str:
    text = _virt_admin(uri, f"daemon-log-{what}")
    m = re.search(r":\s*(.*)$", text.strip())
    return m.group(1).strip() if m else ""


@dataclass
class RpcCount:
    total: int
    per_host: dict[str, int]
    by_proc: dict[str, int]
    available: bool = True
    reason: str = ""
    xml_desc: int = field(default=0)

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "per_host": self.per_host,
            "by_proc": self.by_proc,
            "domain_get_xml_desc": self.xml_desc,
            "available": self.available,
            "reason": self.reason,
        }


class DaemonRpcCounter:
    """`with DaemonRpcCounter(lab) as c: ...; c.result()` counts the RPCs in the block."""

    def __init__(self, lab: Lab, hosts: tuple[str, ...] | None = None) -> None:
        self.lab = lab
        self.hosts = [h for h in lab.info.hosts if hosts is None or h.name in hosts]
        self.dir = Path(tempfile.mkdtemp(prefix="volctl-bench-rpc-", dir="/var/tmp"))
        self._saved: dict[str, tuple[str, str, str]] = {}
        self._reason = ""
        self._calls: list[tuple[float, str, str]] = []

    def __enter__(self) -> DaemonRpcCounter:
        for h in self.hosts:
            uri = self.lab.admin_uri(h)
            if uri is None:
                self._reason = f"no admin socket for host {h.name}"
                continue
            filters, outputs = _current(uri, "filters"), _current(uri, "outputs")
            log = self.dir / f"{h.name}.log"
            self._saved[h.name] = (uri, filters, outputs)
            _virt_admin(uri, "daemon-log-filters", "2:rpc.netserverclient 4:*")
            new_outputs = f"2:file:{log}" + (f" {outputs}" if outputs else "")
            _virt_admin(uri, "daemon-log-outputs", new_outputs)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)  # let the daemons flush the last lines
        for uri, filters, outputs in self._saved.values():
            _virt_admin(uri, "daemon-log-filters", filters or "")
            _virt_admin(uri, "daemon-log-outputs", outputs or "3:stderr")
        self._calls = self._parse()
        shutil.rmtree(self.dir, ignore_errors=True)

    def calls(self) -> list[tuple[float, str, str]]:
        """Every counted call as (epoch time, host, procedure name), once the block is done."""
        return self._calls

    def _parse(self) -> list[tuple[float, str, str]]:
        out = []
        for name in self._saved:
            log = self.dir / f"{name}.log"
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                m = _RX.search(line)
                if not m or int(m.group(2)) != REMOTE_PROGRAM or m.group(4) != "0":
                    continue
                proc = int(m.group(3))
                out.append((parse_time(m.group(1)), name, PROC_NAMES.get(proc, f"proc{proc}")))
        return out

    def result(self, window: tuple[float, float] | None = None) -> RpcCount:
        """Counts, optionally only of calls received within `window` (epoch seconds)."""
        per_host: dict[str, int] = dict.fromkeys(self._saved, 0)
        procs: Counter[str] = Counter()
        for t, host, proc in self.calls():
            if window is not None and not window[0] <= t <= window[1]:
                continue
            per_host[host] += 1
            procs[proc] += 1
        return RpcCount(
            total=sum(per_host.values()),
            per_host=per_host,
            by_proc=dict(procs.most_common()),
            available=len(self._saved) == len(self.hosts),
            reason=self._reason,
            xml_desc=procs.get("DOMAIN_GET_XML_DESC", 0),
        )
