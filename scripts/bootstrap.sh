#!/usr/bin/env bash
# Prepare this machine for lxcfleet.lxc development, tests and the demo.
# Idempotent; takes seconds when everything is already in place.
#   - Debian packages (LXC, busybox, uidmap, bridge tools, dnsmasq, nftables, debootstrap, ...)
#   - a Python venv at ${LXCFLEET_VENV:-/opt/lxcfleet-venv} from requirements-dev.txt
#   - the collection link .build/collections/ansible_collections/lxcfleet/lxc -> repo
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${LXCFLEET_VENV:-/opt/lxcfleet-venv}"
REQ="$REPO/requirements-dev.txt"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- apt packages
APT_PACKAGES=(
  lxc busybox-static uidmap bridge-utils dnsmasq-base nftables debootstrap
  python3-pyroute2 python3-lxc rsync xz-utils git shellcheck
  gnupg gpgv openssl  # test image server: signing key, signature checks, test CA
  attr  # getfattr: the container_archive target compares xattrs
  acl  # setfacl: Ansible shares its temporary files with a become_user (unprivileged containers)
  openssh-server  # test sshd on 127.0.0.1 for the attach connection over SSH (tests/testbed/sshd.py)
  btrfs-progs  # backing stores: btrfs on a loop file as an lxc_path (tests/integration/shared/btrfs_path.yml)
  lvm2  # backing stores: lvcreate/vgs, so the lvm preflight meets the real tools (the kernel has no device-mapper)
)
# Packages whose maintainer scripts would start (and enable) a system service we do not want: they
# are installed with services blocked, and the service is marked "not to be run".
NO_SERVICE_PACKAGES=(openssh-server lvm2)

missing_packages() {
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || printf '%s\n' "$pkg"
  done
}

mapfile -t MISSING < <(missing_packages)
if ((${#MISSING[@]})); then
  if [[ $EUID -ne 0 ]]; then
    log "missing packages ${MISSING[*]} and not root: install them first"; exit 1
  fi
  log "installing: ${MISSING[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  PLAIN=() QUIET=()
  for pkg in "${MISSING[@]}"; do
    if [[ " ${NO_SERVICE_PACKAGES[*]} " == *" $pkg "* ]]; then QUIET+=("$pkg"); else PLAIN+=("$pkg"); fi
  done
  if ((${#PLAIN[@]})); then
    apt-get install -y -qq --no-install-recommends "${PLAIN[@]}" >/dev/null
  fi
  if ((${#QUIET[@]})); then
    # The tests start their own sshd (private config, 127.0.0.1, a free port); the system's sshd on
    # port 22 must not run. Debian's postinst would start it through invoke-rc.d: a policy-rc.d that
    # exits 101 forbids that (ours only if the machine has none; removed again whatever happens), and
    # /etc/ssh/sshd_not_to_be_run keeps both the init script and ssh.service from ever starting it.
    # Only on a fresh install: a machine that already runs its own sshd keeps it.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\n# lxcfleet bootstrap: no service starts during apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if [[ " ${QUIET[*]} " == *" openssh-server "* ]]; then
      mkdir -p /etc/ssh
      : >/etc/ssh/sshd_not_to_be_run
    fi
    apt-get install -y -qq --no-install-recommends "${QUIET[@]}" >/dev/null
    if [[ "$(trap -p EXIT)" == *policy-rc.d* ]]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  fi
  mapfile -t STILL < <(missing_packages)
  if ((${#STILL[@]})); then log "still missing after apt-get: ${STILL[*]}"; exit 1; fi
else
  log "apt packages: all present"
fi

# The system's sshd must not listen (tests start their own on 127.0.0.1); say so if one does.
if command -v ss >/dev/null 2>&1 && [[ -n "$(ss -Hltn 'sport = :22' 2>/dev/null)" ]]; then
  log "warning: something listens on port 22 (the tests do not need the system's sshd)"
fi

# ---------------------------------------------------------------- venv
pick_python() {
  local c
  for c in "${LXCFLEET_PYTHON:-}" python3.11 python3; do
    [[ -n "$c" ]] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

REQ_SUM="$(sha256sum "$REQ" | cut -d' ' -f1)"
STAMP="$VENV/.lxcfleet-requirements.sha256"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$REQ_SUM" ]]; then
  log "venv $VENV: up to date"
else
  if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(pick_python)" || { log "no Python >= 3.11 with venv found"; exit 1; }
    log "creating venv $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
  PIP_LOG="$VENV/.lxcfleet-pip.log"
  log "installing $REQ into $VENV (log: $PIP_LOG)"
  if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
         "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQ"; } >"$PIP_LOG" 2>&1; then
    tail -n 40 "$PIP_LOG" >&2
    log "pip install failed (full log: $PIP_LOG)"
    exit 1
  fi
  printf '%s\n' "$REQ_SUM" >"$STAMP"
fi

# ---------------------------------------------------------------- collection link
COLL_PARENT="$REPO/.build/collections/ansible_collections/lxcfleet"
mkdir -p "$COLL_PARENT"
if [[ "$(readlink "$COLL_PARENT/lxc" 2>/dev/null || true)" != "$REPO" ]]; then
  rm -rf "$COLL_PARENT/lxc"
  ln -s "$REPO" "$COLL_PARENT/lxc"
  log "linked $COLL_PARENT/lxc -> $REPO"
fi

# ---------------------------------------------------------------- default LXC bridge
# /etc/lxc/default.conf names lxcbr0, which nothing creates on a host without lxc-net
# (no systemd PID 1). We deliberately do not create it: integration targets and the demo
# create their own, prefixed bridges and name them in each container's config.
if ! ip link show lxcbr0 >/dev/null 2>&1; then
  log "note: lxcbr0 (from /etc/lxc/default.conf) does not exist; containers must name their own bridge"
fi

log "ready (repo $REPO, venv $VENV)"
