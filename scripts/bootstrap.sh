#!/bin/bash
# Idempotent setup of everything volctl needs on a fresh Debian 12 machine, run as root:
# Debian packages (libvirt, qemu, ceph, the Ceph python bindings, chromium for UI tests),
# then .venv (Debian's python with --system-site-packages, because rados/rbd exist only as
# Debian builds for CPython 3.11) and the project installed editable with its dev extras.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "bootstrap: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages and runs libvirtd/ceph daemons)"
[ -r /etc/os-release ] && . /etc/os-release
[ "${ID:-}" = debian ] || die "this needs Debian 12 (bookworm); found '${PRETTY_NAME:-unknown OS}'"
[ "${VERSION_ID:-}" = 12 ] || echo "bootstrap: warning: tested on Debian 12, found ${PRETTY_NAME:-?}" >&2

PKGS=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libxml2-utils
  qemu-system-x86 qemu-utils qemu-block-extra
  ceph-mon ceph-osd ceph-mgr ceph-common python3-rados python3-rbd
  libvirt-dev pkg-config git gcc libc6-dev python3-venv python3-dev
  iproute2 util-linux procps
  openssh-server openssh-client  # `lab up --transport ssh` (an sshd per host), Image ssh sources
  systemd  # systemd-analyze verify of contrib/systemd/volctl.service
  syslinux syslinux-common mtools dosfstools
  chromium chromium-driver libjs-jquery wrk curl
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # never let package scripts start system-wide daemons (libvirtd, ceph): the lab runs its own.
  policy=/usr/sbin/policy-rc.d; made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made_policy=1; fi
  trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv with /usr/bin/python3 --system-site-packages"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp="$venv/.installed-$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing volctl (editable) with dev and bench extras"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$here[dev,bench]"
  rm -f "$venv"/.installed-*; touch "$stamp"
fi
"$venv/bin/python" -c "import rados, rbd, libvirt, yaml, jsonschema, structlog, watchdog" \
  || die "the venv cannot import a required module"
echo "bootstrap: ready ($venv)"
