# shellcheck shell=sh
# Installs python3 with the package manager the container has (read by /bin/sh -s inside the
# container through lxcfleet.lxc.container_exec; the role runs it only where /usr/bin/python3 is missing).
set -e
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3
elif command -v dnf >/dev/null 2>&1; then
  dnf install -y python3
elif command -v yum >/dev/null 2>&1; then
  yum install -y python3
elif command -v apk >/dev/null 2>&1; then
  apk add --no-cache python3
elif command -v zypper >/dev/null 2>&1; then
  zypper --non-interactive install python3
elif command -v pacman >/dev/null 2>&1; then
  pacman -Sy --noconfirm python
else
  echo "no package manager found (apt-get, dnf, yum, apk, zypper, pacman) to install python3" >&2
  exit 1
fi
