#!/bin/bash
# The README's main job (`make demo` runs it after bootstrap): a local demo on the built-in lab.
#   1. `volctl lab up`: single-node Ceph (cephx, memstore) + 2 private libvirtd hosts, a bootable
#      base image in RBD, and an inventory + config pointing at them (see docs/lab.md);
#   2. validate the inventory, the demo workload and the example specs;
#   3. start the controller (`volctl run`) in the background, serving REST + dashboard;
#   4. `volctl apply --wait` the inventory and examples/demo/ (2 VMs on RBD clones, 2 volumes);
#   5. show the result: `volctl get`, the seed REST endpoints, the dashboard URL.
# Idempotent: a running lab and controller are reused.  `scripts/demo.sh down` stops both.
# `scripts/demo.sh ha` runs the HA variant instead (scripts/demo-ha.sh, docs/ha.md).
#   VOLCTL_LAB_DIR   lab directory (default /var/tmp/volctl-lab)
#   DEMO_HOSTS       number of lab hosts (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
volctl="$here/.venv/bin/volctl"
dir=${VOLCTL_LAB_DIR:-/var/tmp/volctl-lab}
hosts=${DEMO_HOSTS:-2}
runpid="$dir/volctl-run.pid"
runlog="$dir/volctl-run.log"

[ -x "$volctl" ] || { echo "demo: $volctl missing; run 'make bootstrap' first" >&2; exit 1; }

stop_controller() {
  if [ -f "$runpid" ] && kill -0 "$(cat "$runpid")" 2>/dev/null; then
    kill "$(cat "$runpid")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$runpid")" 2>/dev/null || break; sleep 0.1; done
    echo "demo: stopped volctl run (pid $(cat "$runpid"))"
  fi
  rm -f "$runpid"
}

if [ "${1:-}" = ha ]; then  # the HA variant: 3 replicas, kill the leader (docs/ha.md)
  shift
  exec bash "$here/scripts/demo-ha.sh" "$@"
fi

if [ "${1:-}" = down ]; then
  stop_controller            # first, so it does not recreate what the lab tears down
  "$volctl" lab down --dir "$dir"
  exit 0
fi

step() { printf '\n== %s\n' "$*"; }

step "volctl lab up --hosts $hosts --dir $dir"
"$volctl" lab up --hosts "$hosts" --dir "$dir"
eval "$("$volctl" lab env --dir "$dir")"
api=$("$here/.venv/bin/python" -c 'from reconciler.config import load_config; print(load_config().api)')

step "volctl validate (lab inventory + demo workload; example specs)"
"$volctl" validate -f "$dir/inventory.yaml" -f "$here/examples/demo"
"$volctl" validate -f "$here/specs"

step "volctl run (controller + REST view + dashboard at $api)"
if [ -f "$runpid" ] && kill -0 "$(cat "$runpid")" 2>/dev/null; then
  echo "already running (pid $(cat "$runpid")), log: $runlog"
else
  nohup "$volctl" run >>"$runlog" 2>&1 &
  echo $! >"$runpid"
  for _ in $(seq 1 100); do curl -fs "$api/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "$api/healthz" >/dev/null || { echo "demo: controller did not come up"; tail -20 "$runlog"; exit 1; }
  echo "started (pid $(cat "$runpid")), log: $runlog"
fi

step "volctl apply -f inventory.yaml -f examples/demo/ --wait"
"$volctl" apply -f "$dir/inventory.yaml" -f "$here/examples/demo" --wait --timeout 900s

step "volctl get hosts / vms / volumes / attachments"
"$volctl" get hosts
"$volctl" get vms -o wide
"$volctl" get volumes
"$volctl" get attachments

step "the seed's REST API, mirrored read-only"
for path in /vm/types /image/list "/vm/query?vmid=1" "/volume/query?volumeid=1" "/volume/query?volumeid=99"; do
  printf "GET %-28s " "$path"; curl -s "$api$path"
done
printf 'POST %-27s ' /vm/create; curl -s -X POST "$api/vm/create?name=x&instance_type=1&image_id=1"

step "what runs"
"$volctl" lab status --dir "$dir" || true
virsh -c "$LIBVIRT_DEFAULT_URI" list --all

cat <<EOF

The demo is up and converged.
  dashboard:   $api/
  your shell:  eval "\$($volctl lab env --dir $dir)"   (then: volctl get vms, volctl describe vm test_vm)
  try drift:   virsh -c "\$LIBVIRT_DEFAULT_URI" destroy test_vm   # volctl repairs it
  stop it all: bash scripts/demo.sh down
EOF
