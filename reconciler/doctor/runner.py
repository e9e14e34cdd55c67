"""Order of the doctor's checks: this node, then Ceph (which leaves a scratch image for the
hosts to open), then every host in parallel, then the scratch image is removed.

Why this order: the host RBD probe needs a scratch image that only a Ceph user with write
caps can make, and the image must outlive the host probes; removing it last is itself the
`remove` cap check.  `--fix-secrets` reads the controller's key once, before the hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.backends.probe_ceph import ProbeError, controller_key
from reconciler.config import Config
from reconciler.controller.factory import ceph_access
from reconciler.doctor.ceph import CephChecks
from reconciler.doctor.hosts import HostSettings, check_hosts
from reconciler.doctor.local import local_checks
from reconciler.doctor.result import CheckResult, failed
from reconciler.model import Host


@dataclass(frozen=True)
class DoctorSettings:
    fix_secrets: bool = False
    max_clock_skew: float = 2.0  # seconds between this node's clock and each host's
    timeout: float = 10.0  # per probe call (a QEMU start gets at least 30 s)


def run_doctor(
    config: Config, hosts: Sequence[Host], settings: DoctorSettings | None = None
) -> list[CheckResult]:
    s = settings or DoctorSettings()
    results = local_checks(config)
    if not hosts:
        results.append(
            failed(
                "spec.hosts",
                "desired state",
                "no Host documents",
                "apply your Host specs first (volctl apply -f hosts.yaml), or pass them with -f",
            )
        )
    key: bytes | None = None
    if s.fix_secrets:
        try:
            key = controller_key(config.ceph.conf, config.ceph.user)
        except ProbeError as exc:
            results.append(
                failed(
                    "host.secret.key",
                    f"client.{config.ceph.user}",
                    str(exc),
                    "--fix-secrets needs the controller's keyring: make it "
                    f"readable and named in {config.ceph.conf}",
                )
            )
    host_settings = HostSettings(
        ceph=config.ceph,
        monitors=ceph_access(config.ceph).monitors,
        max_clock_skew=s.max_clock_skew,
        timeout=s.timeout,
        fix_secrets=s.fix_secrets,
        key=key,
    )
    ceph = CephChecks(config.ceph, s.timeout)
    with ceph.scratch_image() as scratch:
        host_rows = check_hosts(list(hosts), scratch, host_settings)
    return results + ceph.results + host_rows
