#!/bin/bash
# The HA variant of the demo (`bash scripts/demo.sh ha`; `make demo` is unchanged):
#   1. `volctl lab up --store rados`: the lab, with a config whose spec store is
#      rados://rbd/volctl (desired state, lease and status in RADOS; docs/ha.md);
#   2. start 3 replicas of `volctl run` (r1..r3, REST on ports 8471..8473);
#   3. `volctl apply --wait` the inventory and examples/demo/ (through any replica);
#   4. `volctl get leader`, then SIGKILL the leader and show another replica take over
#      (epoch + 1, after waiting out the lease) and the fleet stay converged.
# `bash scripts/demo.sh ha down` stops the replicas and the lab.
#   VOLCTL_LAB_DIR   lab directory (default /var/tmp/volctl-lab-ha)
#   DEMO_HOSTS       number of lab hosts (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
volctl="$here/.venv/bin/volctl"
dir=${VOLCTL_LAB_DIR:-/var/tmp/volctl-lab-ha}
hosts=${DEMO_HOSTS:-2}
ports=(8471 8472 8473)

[ -x "$volctl" ] || { echo "demo: $volctl missing; run 'make bootstrap' first" >&2; exit 1; }

stop_replicas() {
  for i in 1 2 3; do
    pidf="$dir/replica-r$i.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
      kill "$(cat "$pidf")"
      for _ in $(seq 1 100); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
      echo "demo: stopped replica r$i (pid $(cat "$pidf"))"
    fi
    rm -f "$pidf"
  done
}

if [ "${1:-}" = down ]; then
  stop_replicas
  "$volctl" lab down --dir "$dir"
  exit 0
fi

step() { printf '\n== %s\n' "$*"; }
leader_of() {  # the leader's name, as any live replica reports it
  for p in "${ports[@]}"; do
    l=$(curl -fs "http://127.0.0.1:$p/api/v1/leader" 2>/dev/null |
        "$here/.venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(d["leader"] if d["role"]=="leader" or d["leader"] else "")' 2>/dev/null) || continue
    [ -n "$l" ] && { echo "$l"; return 0; }
  done
  return 1
}

step "volctl lab up --store rados --hosts $hosts --dir $dir"
"$volctl" lab up --store rados --hosts "$hosts" --dir "$dir"
eval "$("$volctl" lab env --dir "$dir")"

step "3 replicas: volctl run --replica-id r1|r2|r3 (REST on ${ports[*]})"
for i in 1 2 3; do
  pidf="$dir/replica-r$i.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "r$i already running (pid $(cat "$pidf"))"; continue
  fi
  nohup "$volctl" run --replica-id "r$i" --listen "127.0.0.1:${ports[$((i-1))]}" \
    >>"$dir/replica-r$i.log" 2>&1 &
  echo $! >"$pidf"
  echo "r$i started (pid $!), log: $dir/replica-r$i.log"
done
for _ in $(seq 1 150); do leader_of >/dev/null && break; sleep 0.2; done
export VOLCTL_API="http://127.0.0.1:${ports[0]}"

step "volctl apply -f inventory.yaml -f examples/demo/ --wait (desired state goes to RADOS)"
"$volctl" apply -f "$dir/inventory.yaml" -f "$here/examples/demo" --wait --timeout 900s

step "volctl get leader"
"$volctl" get leader

old=$(leader_of)
oldpid=$(cat "$dir/replica-$old.pid")
step "kill -9 the leader $old (pid $oldpid)"
t0=$(date +%s.%N)
kill -9 "$oldpid"
rm -f "$dir/replica-$old.pid"
for i in 1 2 3; do [ "r$i" = "$old" ] || VOLCTL_API="http://127.0.0.1:${ports[$((i-1))]}"; done
export VOLCTL_API
new=""
for _ in $(seq 1 300); do
  new=$(curl -fs "$VOLCTL_API/api/v1/leader" | "$here/.venv/bin/python" -c \
    'import json,sys; d=json.load(sys.stdin); print(d["leader"] or "")' 2>/dev/null || true)
  if [ -n "$new" ] && [ "$new" != "$old" ]; then
    role=$(curl -fs "http://127.0.0.1:${ports[$((${new#r}-1))]}/api/v1/leader" |
      "$here/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["role"])')
    [ "$role" = leader ] && break
  fi
  sleep 0.1
done
t1=$(date +%s.%N)
printf 'new leader %s acting %.1f s after the kill\n' "$new" \
  "$("$here/.venv/bin/python" -c "print($t1 - $t0)")"
"$volctl" get leader

step "the fleet as the new leader sees it"
"$volctl" get vms -o wide
"$volctl" get volumes

cat <<EOF2

The HA demo is up: replicas on ports ${ports[*]} (one was killed), desired state and status
in RADOS (rados://rbd/volctl).  Try: kill -STOP the leader, watch \`volctl get leader\`.
Stop with: bash scripts/demo.sh ha down
EOF2
