#!/usr/bin/env bash
# Install what CPN needs, idempotently: Debian packages for the labs (when root),
# a .venv with `pip install -e .[dev]`. Fast when everything is already there:
# each step is skipped when its stamp is newer than its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(
  iproute2 iputils-ping ethtool tcpdump bridge-utils
  gobgpd knot knot-dnsutils dnsperf
  netconfd netconfd-module-ietf-interfaces openssh-server openssh-client
  openvswitch-switch mininet
  etcd-server etcd-client
  slurm-wlm slurmctld slurmd munge slurmrestd
  chromium chromium-driver
  iperf3 nftables
  gcc libc6-dev
)
PY=${PYTHON:-python3}
stamp_dir=.venv/.cpn-stamps

log() { printf '[bootstrap] %s\n' "$*"; }

install_apt() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "not root or no apt-get: skipping Debian packages (lab tests will be skipped)"
    return 0
  fi
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # python3 -m venv needs ensurepip on Debian's own python
  if ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get install -y -q python3-venv >/dev/null
  fi
}

install_venv() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PY" -m venv .venv
  fi
  mkdir -p "$stamp_dir"
  if [ ! -f "$stamp_dir/pip" ] || [ pyproject.toml -nt "$stamp_dir/pip" ]; then
    log "pip install -e .[dev]"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp_dir/pip"
  fi
}

install_apt
install_venv
log "ready"
