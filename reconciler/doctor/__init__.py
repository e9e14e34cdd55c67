"""`volctl doctor`: preflight checks for a site, each failure with the fix that clears it.

Why: the first apply on a new site should not be where an operator learns that one hypervisor
lacks the ceph secret, QEMU there cannot open RBD, or the cephx user may read but not write.
Doctor checks what the controller will need, through the same paths the controller uses (the
Host URIs, the configured Ceph conf and user), and proves capabilities by doing them on
scratch objects it removes, instead of trusting version strings or caps text.

One module per check family: `local` (this node: store, state, REST address), `ceph`
(monitors, pool, caps), `hosts` (libvirt, QEMU, secret, RBD open, clock); `runner` orders
them; `result` and `render` are the report.  Library calls live in
`reconciler.backends.probe_ceph` and `probe_libvirt`, the only modules that import the
bindings.
"""

from reconciler.doctor.result import CheckResult, Status
from reconciler.doctor.runner import DoctorSettings, run_doctor

__all__ = ["CheckResult", "DoctorSettings", "Status", "run_doctor"]
