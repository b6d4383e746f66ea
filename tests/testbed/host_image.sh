#!/usr/bin/env bash
# Build (once per machine) the rootfs of a "host container": a Debian bookworm that boots systemd
# and runs LXC itself, for tests that need systemd, cgroup2 delegation or several LXC hosts (see
# the test bed notes). The image is cached outside the repository, keyed by its package list:
#
#   /var/cache/lxcfleet-testbed/host-<key>/rootfs.tar.xz    the rootfs, for lxcfleet.lxc.container's rootfs_archive
#   /var/cache/lxcfleet-testbed/host-<key>/meta.tar.xz      LXC metadata (config for the local template)
#
# Prints the folder on stdout. Idempotent: an existing image is reused at once. Concurrent builds wait
# on a lock. Needs debootstrap and Debian's archive (deb.debian.org, or LXCFLEET_DEBIAN_MIRROR).
set -euo pipefail

CACHE="${LXCFLEET_TESTBED_CACHE:-/var/cache/lxcfleet-testbed}"
MIRROR="${LXCFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
RECIPE=5  # bump when the steps after debootstrap change (part of the cache key, like the packages)
PACKAGES=(
  systemd-sysv dbus libpam-systemd python3 lxc uidmap busybox-static iproute2 nftables dnsmasq-base
  openssh-server acl
  # What the roles and modules need on an LXC host, preinstalled: host containers have no route out,
  # so nothing can be downloaded in them (python3-apt lets ansible.builtin.apt see what is there).
  python3-apt python3-pyroute2 openssl ca-certificates gpgv xz-utils rsync bridge-utils procps kmod
  apparmor sudo
)

log() { printf '[host_image] %s\n' "$*" >&2; }

key="$(printf '%s\n' "$SUITE" "recipe $RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)"
dest="$CACHE/host-$key"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

if [[ -f "$dest/rootfs.tar.xz" && -f "$dest/meta.tar.xz" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi

work="$(mktemp -d "$CACHE/.build-XXXXXX")"
trap 'umount -R "$work/rootfs" 2>/dev/null || true; rm -rf "$work"' EXIT
include="$(IFS=,; printf '%s' "${PACKAGES[*]}")"
log "debootstrap $SUITE with $include (a few minutes, once)"
started=$SECONDS
debootstrap --variant=minbase --include="$include" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
root="$work/rootfs"
# No getty on consoles that do not exist; no network units wait for links that will not come.
rm -f "$root/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
# Like the images of LXC's image servers, a container of this image asks for its address by DHCP on
# eth0 (systemd-networkd). Host containers name their uplink otherwise (playbooks/tasks/host_container.yml
# gives them a static address on "uplink"), so this never touches them.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/80-lxcfleet-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
systemctl --root="$root" enable systemd-networkd.service >/dev/null 2>&1
# In a container with a writable /sys and no udev, networkd waits for udev to announce each link and
# never configures it; with /sys read-only in its own mount namespace it takes links as they are.
mkdir -p "$root/etc/systemd/system/systemd-networkd.service.d"
printf '[Service]\nReadOnlyPaths=/sys\n' >"$root/etc/systemd/system/systemd-networkd.service.d/lxcfleet-readonly-sys.conf"
# The container's own name, as in the images of LXC's image servers: LXC_NAME is replaced when a
# container is made from the image (the metadata's templates file below, and the test image server's
# Debian image, list these two files), and systemd sets the host name from /etc/hostname at boot.
printf 'LXC_NAME\n' >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tLXC_NAME\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
# Every host container makes its own SSH host keys at its first boot (none shared through the image).
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/lxcfleet-host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
: >"$root/etc/machine-id"
# The bridge LXC's default config names does not exist in a test host; nested containers name theirs.
printf 'lxc.net.0.type = empty\n' >"$root/etc/lxc/default.conf"
apt-get -o RootDir="$root" clean >/dev/null 2>&1 || rm -rf "$root/var/cache/apt/archives/"*.deb

XZ_OPT='-T0 -3' tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -cJf "$work/rootfs.tar.xz" .
mkdir -p "$work/meta"
cat >"$work/meta/config" <<'EOF'
lxc.include = LXC_TEMPLATE_CONFIG/common.conf
lxc.arch = linux64
EOF
printf '/etc/hostname\n/etc/hosts\n' >"$work/meta/templates"
tar -C "$work/meta" -cJf "$work/meta.tar.xz" config templates
mkdir -p "$dest.tmp"
mv "$work/rootfs.tar.xz" "$work/meta.tar.xz" "$dest.tmp/"
printf '%s\n' "${PACKAGES[@]}" >"$dest.tmp/packages"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "built $dest in $((SECONDS - started)) s"
printf '%s\n' "$dest"
