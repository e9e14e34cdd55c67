#!/bin/bash
# The README's main job (`make demo` runs it after bootstrap): bring up the local lab
# (single-node Ceph + 2 libvirtd hosts, see docs/lab.md), validate the lab's inventory and the
# example specs, and show what runs.  Idempotent: a running lab is reused as is.
#   VOLCTL_LAB_DIR   lab directory (default /var/tmp/volctl-lab)
#   DEMO_HOSTS       number of lab hosts (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
volctl="$here/.venv/bin/volctl"
dir=${VOLCTL_LAB_DIR:-/var/tmp/volctl-lab}
hosts=${DEMO_HOSTS:-2}

[ -x "$volctl" ] || { echo "demo: $volctl missing; run 'make bootstrap' first" >&2; exit 1; }

echo "== volctl lab up --hosts $hosts --dir $dir"
"$volctl" lab up --hosts "$hosts" --dir "$dir"
eval "$("$volctl" lab env --dir "$dir")"

if "$volctl" validate --help >/dev/null 2>&1; then
  echo
  echo "== volctl validate -f $dir/inventory.yaml (the lab's hosts, base image, instance types)"
  "$volctl" validate -f "$dir/inventory.yaml"
  if [ -d "$here/specs" ]; then
    echo "== volctl validate -f specs/ (the example desired state)"
    "$volctl" validate -f "$here/specs"
  fi
fi

echo
echo "== volctl lab status"
"$volctl" lab status --dir "$dir"

cat <<EOF

The lab is up.  Point your shell at it and look around:
  eval "\$($volctl lab env --dir $dir)"
  virsh -c "\$LIBVIRT_DEFAULT_URI" list --all
  ceph -s
Tear it down (stops every VM, libvirtd and Ceph daemon it started; keeps the image cache):
  $volctl lab down --dir $dir
EOF
