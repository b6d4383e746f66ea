#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Create, configure and run a classic LXC container
version_added: 0.1.0
description:
  - Manages the lifecycle and the configuration of one LXC container through LXC's command-line tools
    and its config file. No python3-lxc bindings are needed.
  - The config file is edited as data. A change replaces values in place and never appends a
    duplicate of a single-valued key; comments, blank lines, C(lxc.include) lines and keys the task
    does not name are kept as they are.
  - Ownership rule. What a task names, it owns exactly; what it does not name stays as it is. So the
    keys a template or an image writes stay unless the task sets or removes them.
  - The module first plans (compares the wanted and the current state and config), then acts.
    Check mode stops after the plan. A second identical run reports no change.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - When the container does not exist yet, the config the template would write is unknown, so the
        diff in check mode shows only the keys the task sets.
  diff_mode:
    support: full
    details:
      - The diff is the container's config file before and after.
      - With O(hooks), the diff is a list of such entries, the config file (when it changes) first, then each
        installed hook file that is written or removed.
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the container. 1 to 64 letters, digits, V(.), V(_) and V(-), starting with a letter or digit.
    type: str
    required: true
  state:
    description:
      - V(present) creates the container if needed and applies the config; it does not start or stop it.
      - V(started) and V(stopped) bring it into that state. V(restarted) stops (if running) and starts it, and
        always reports a change. V(frozen) freezes it (starting it first if needed).
      - V(absent) stops and destroys it, with its root filesystem.
    type: str
    choices: [present, started, stopped, restarted, frozen, absent]
    default: started
  template:
    description:
      - Template to create the container with when it does not exist (C(lxc-create -t)), for example V(busybox),
        V(download), V(debian), or an absolute path to a template script.
      - Mutually exclusive with O(rootfs_archive).
    type: str
  template_options:
    description:
      - Arguments passed to the template after C(--), one list item per argument, for example
        V([--dist, debian, --release, bookworm, --arch, amd64]) for the V(download) template.
    type: list
    elements: str
    default: []
  rootfs_archive:
    description:
      - Create the container from a root filesystem tarball (C(rootfs.tar.xz) or any tarball C(tar) can read),
        through LXC's C(local) template.
      - Mutually exclusive with O(template).
      - Every member is checked before anything is unpacked. A name that escapes the rootfs, a member
        written through a symlink of the archive, a hard link to anything outside or not a file of the
        archive, a truncated or corrupt stream, a C(templates) entry outside the rootfs, or (unprivileged) a
        device node not in C(excludes-user) fails the task, naming the member.
    type: path
  rootfs_metadata:
    description:
      - The LXC image metadata tarball (C(meta.tar.xz), holding C(config) and optionally C(templates)) that goes
        with O(rootfs_archive).
    type: path
  image:
    description:
      - Create the container from an image of an LXC image server, through the image cache that
        M(lxcfleet.lxc.image) keeps in the download template's layout (C(/var/cache/lxc/download/...) for
        root, C(~/.cache/lxc/download/...) for users). A valid cached entry is used without any request to
        the server; a missing or expired one is downloaded and verified first (action C(fetch image)).
        The unprivileged flavour of the image (C(index-user), C(config-user), C(excludes-user)) is used
        for an unprivileged container.
      - Every member of the rootfs tarball and every entry of the image's C(templates) file is checked
        before anything is unpacked; see O(rootfs_archive). The check of a cached image is kept with the
        cache entry and reused while the archive's sha256 is unchanged.
      - The options are those of M(lxcfleet.lxc.image).
    type: dict
    suboptions:
      dist:
        description: Distribution, for example V(debian).
        type: str
      release:
        description: Release, for example V(bookworm).
        type: str
      arch:
        description: Architecture in LXC's naming; default the host's (V(amd64), V(arm64) ...).
        type: str
      variant:
        description: Image variant.
        type: str
        default: default
      server:
        description: Image server URL; V(https://) unless O(image.allow_http).
        type: str
        default: https://images.linuxcontainers.org
      keyring:
        description: GPG keyring that must have signed the build's C(SHA256SUMS) (checked with C(gpgv)).
        type: path
      fingerprint:
        description: Fingerprint of the key that must have signed C(SHA256SUMS).
        type: str
      allow_http:
        description: Allow an V(http://) server.
        type: bool
        default: false
      ca_path:
        description: CA certificate(s) for the server.
        type: path
      validate_certs:
        description: Validate the server's TLS certificate.
        type: bool
        default: true
      timeout:
        description: Timeout of each request in seconds.
        type: int
        default: 30
      retries:
        description: Retries of a failed request (network errors and 5xx), with backoff.
        type: int
        default: 3
      cache_dir:
        description: Base of the image cache instead of C(/var/cache/lxc) or C(~/.cache/lxc).
        type: path
      refresh:
        description: What to do with an expired cache entry, V(expired) refreshes it, V(never) uses it.
        type: str
        choices: [never, expired]
        default: expired
      use_expired_offline:
        description: Use an expired entry, with a warning, when the server cannot be reached.
        type: bool
        default: false
  backing_store:
    description:
      - Backing store of a new container's root filesystem (C(lxc-create -B)). See C(docs/backing-stores.md).
      - V(dir) a folder; V(btrfs) a subvolume (the O(lxc_path) must be on btrfs); V(loop) a filesystem in a file
        C(rootdev) next to the config; V(lvm) a logical volume (thin when O(backing_store_options.thinpool) or
        LXC's default thin pool exists); V(zfs) a ZFS dataset; V(overlayfs) an empty overlay upper layer on a
        folder with the template's rootfs; V(best) lets LXC pick the first that works of btrfs, zfs, lvm and dir.
      - Left out, LXC's default (V(dir)) for a new container.
      - The host is checked before anything changes, for example V(lvm) needs C(lvcreate), device-mapper in the
        kernel and the volume group, V(zfs) needs C(zfs), C(/dev/zfs) and the dataset, V(loop) needs
        C(/dev/loop-control) and C(mkfs.<fstype>), V(btrfs) an O(lxc_path) on btrfs. V(loop), V(lvm) and V(zfs)
        need root.
      - An existing container keeps its store. When the task names a different one (other than V(best)), the
        task fails; recreate or clone the container with the new store. C(container.backing_store) in the result
        says which store a container has.
    type: str
    choices: [dir, btrfs, loop, lvm, zfs, overlayfs, best]
  backing_store_options:
    description:
      - Options of the backing store, used when the container is created (ignored for an existing one).
      - An option that does not apply to O(backing_store) is an error. V(best) accepts the options of
        V(lvm) and V(zfs), for the store LXC picks.
    type: dict
    suboptions:
      fstype:
        description: Filesystem made on the device of V(loop) or V(lvm) (C(--fstype)); LXC's default is V(ext4).
        type: str
      fssize:
        description:
          - Size of the device of V(loop) or V(lvm) (C(--fssize)), a number and a unit, for example V(512M) or
            V(2G) (powers of 1024). LXC's default is V(1G). The loop file is sparse.
        type: str
      vgname:
        description: Volume group of V(lvm) (C(--vgname)); LXC's default is C(lxc.bdev.lvm.vg), V(lxc).
        type: str
      lvname:
        description: Logical volume name of V(lvm) (C(--lvname)); LXC's default is the container name.
        type: str
      thinpool:
        description:
          - Thin pool of V(lvm) (C(--thinpool)); it must exist in the volume group. Left out, LXC uses the thin
            pool C(lxc.bdev.lvm.thin_pool) (V(lxc)) if it exists, else a plain (thick) volume.
        type: str
      zfsroot:
        description: Parent dataset of V(zfs) (C(--zfsroot)), for example V(tank/lxc); LXC's default is C(lxc.bdev.zfs.root).
        type: str
      dir:
        description:
          - For V(dir), where the rootfs folder goes instead of C(<lxc_path>/<name>/rootfs) (C(--dir)). It must
            not exist or be empty. Destroying the container removes it.
        type: path
  config:
    description:
      - LXC config keys (see C(lxc.container.conf(5))) and their values.
      - A string, number or boolean (written as V(1)/V(0)) replaces the value of a single-valued key.
      - A list is the whole set of values of a multi-valued key (C(lxc.idmap), C(lxc.mount.entry),
        C(lxc.cap.drop), C(lxc.environment), C(lxc.hook.*), C(lxc.cgroup.devices.allow) ...).
      - Legacy key names (C(lxc.utsname), C(lxc.network.0.link), C(lxc.id_map) ...) are accepted and written
        in their current form. Unknown keys are rejected before anything changes.
      - A key must not also be set by a typed option (O(network), O(limits) ...).
    type: dict
    default: {}
  config_remove:
    description:
      - Keys to remove from the config file, every value of them.
    type: list
    elements: str
    default: []
  network:
    description:
      - The network interfaces of the container, in order (C(lxc.net.0), C(lxc.net.1) ...).
      - The list is the whole set of interfaces; interfaces beyond it are removed. Within an interface the
        options given are owned and others (for example the template's C(hwaddr)) are kept, unless the
        type changes, which starts the interface afresh.
    type: list
    elements: dict
    suboptions:
      type:
        description: Interface type.
        type: str
        choices: [veth, macvlan, ipvlan, phys, vlan, empty, none]
        default: veth
      link:
        description: Host interface to attach to (the bridge for V(veth); the parent for V(macvlan) and V(ipvlan); the device for V(phys)).
        type: str
      name:
        description: Interface name inside the container, for example V(eth0).
        type: str
      flags:
        description: Whether the interface is brought up. V(up) when left out, except for types V(empty) and V(none), which take no flags.
        type: str
        choices: [up, down]
      hwaddr:
        description: MAC address; V(x) digits are filled at random by LXC, for example V(00:16:3e:xx:xx:xx).
        type: str
      mtu:
        description: MTU of the interface.
        type: int
      ipv4:
        description: Static IPv4 addresses with prefix, for example V(10.0.3.5/24). An empty list removes them.
        type: list
        elements: str
      ipv4_gateway:
        description: IPv4 default gateway, V(auto) (the address of the bridge) or V(dev).
        type: str
      ipv6:
        description: Static IPv6 addresses with prefix. An empty list removes them.
        type: list
        elements: str
      ipv6_gateway:
        description: IPv6 default gateway, V(auto) or V(dev).
        type: str
      veth_mode:
        description: Mode of a veth interface.
        type: str
        choices: [bridge, router]
      veth_pair:
        description: Name of the host side of a veth pair.
        type: str
      macvlan_mode:
        description: Mode of a macvlan interface.
        type: str
        choices: [private, vepa, bridge, passthru]
  mounts:
    description:
      - Bind and other mounts (C(lxc.mount.entry)), identified by their target. A mount whose target is listed is
        owned exactly; entries with other targets (for example the template's) are kept.
    type: list
    elements: dict
    suboptions:
      source:
        description: What to mount, for example a host directory. Required unless O(mounts[].state=absent).
        type: str
      target:
        description: Where, relative to the container's root (a leading V(/) is ignored).
        type: str
        required: true
      type:
        description: Filesystem type.
        type: str
        default: none
      options:
        description: Mount options.
        type: str
        default: bind,create=dir
      dump:
        description: fstab dump field.
        type: int
        default: 0
      pass:
        description: fstab pass field.
        type: int
        default: 0
      state:
        description: Whether the mount entry for this target exists.
        type: str
        choices: [present, absent]
        default: present
  limits:
    description:
      - Resource limits, written as cgroup v1 keys (C(lxc.cgroup.*)) or cgroup2 keys (C(lxc.cgroup2.*)),
        whichever hierarchy holds the controller on this host. The key of the other version is removed.
      - An option left out is not managed.
    type: dict
    suboptions:
      memory:
        description: Memory limit in bytes or with a K, M, G or T suffix (V(512M)); V(max) for no limit.
        type: str
      cpus:
        description: CPUs the container may use, as a cpuset list, for example V(0-1) or V(0,2).
        type: str
      cpu_weight:
        description: Relative CPU weight, 1 to 10000 (cgroup2 scale, 100 is the default); written as
          C(cpu.shares) on cgroup v1 (weight x 1024 / 100).
        type: int
      pids:
        description: Maximum number of processes, or V(max).
        type: str
  autostart:
    description:
      - Start the container at boot (C(lxc-autostart)), with order, delay and groups. An option left out is not managed.
    type: dict
    suboptions:
      enabled:
        description: C(lxc.start.auto).
        type: bool
      delay:
        description: Seconds to wait after starting this container (C(lxc.start.delay)).
        type: int
      order:
        description:
          - Start order (C(lxc.start.order)). C(lxc-autostart) starts lower values first and stops higher values
            first; see M(lxcfleet.lxc.autostart).
        type: int
      groups:
        description: Autostart groups (C(lxc.group)), the whole set.
        type: list
        elements: str
  unprivileged:
    description:
      - Whether the container runs with an id map, so that root in the container is an unprivileged id
        on the host. Applies when the container is created; default V(true) there.
      - A new unprivileged container gets O(idmap) when given, else the C(lxc.idmap) lines of the default
        config of the user the module runs as (C(lxc-config lxc.default_config), for example
        C(~/.config/lxc/default.conf)), else a map made from that user's ranges in C(/etc/subuid) and
        C(/etc/subgid) (the first range of 65536 ids or more, else the largest, at most 65536 ids mapped
        from container id 0). See M(lxcfleet.lxc.subid).
      - Run the task as the user who owns the container (C(become_user)); LXC then runs as that user,
        with its lxc path (C(~/.local/share/lxc)) and default config. Run as root, an unprivileged
        container is owned by root (a root-owned unprivileged container); root needs a range in
        C(/etc/subuid) or an explicit O(idmap).
      - V(false) creates a privileged container; only root can. Unset leaves an existing container as it is.
      - An existing container is never converted between privileged and unprivileged (its rootfs is owned
        by the mapped ids), so a task asking for the other kind fails and says so.
      - A non-root user on a cgroup2 host whose cgroup is not delegated starts the container inside
        C(systemd-run --user --scope -p Delegate=yes); without a systemd user instance the task fails
        before starting and names what is missing (for example lingering).
    type: bool
  idmap:
    description:
      - The container's id map, the whole set of C(lxc.idmap) values, each V(u|g CONTAINER_ID HOST_ID COUNT).
        Setting it makes the container unprivileged.
      - Every host range must lie inside the subordinate ranges of the user the module runs as (root may
        map anything); a user may also map its own uid and gid one to one, as in the example that
        maps uid 1000 straight through.
      - Checked before anything changes. Used when the container is created; for an existing container
        it must equal the current map (maps are not changed in place).
    type: list
    elements: str
  apparmor_profile:
    description:
      - AppArmor profile (C(lxc.apparmor.profile)), for example V(generated), V(unconfined) or a profile name.
    type: str
  nesting:
    description:
      - Allow containers inside this container. V(true) includes LXC's C(nesting.conf) and sets
        C(lxc.apparmor.allow_nesting); V(false) removes that include and clears the setting.
    type: bool
  capabilities:
    description:
      - Capabilities to drop from, or to keep in, the container (names without C(CAP_), for example V(sys_time)).
    type: dict
    suboptions:
      drop:
        description: The whole set of C(lxc.cap.drop) in the container's file (includes such as C(common.conf) add theirs).
        type: list
        elements: str
      keep:
        description: C(lxc.cap.keep); every capability not listed is dropped. Mutually exclusive with O(capabilities.drop).
        type: list
        elements: str
  hooks:
    description:
      - LXC hooks (C(lxc.hook.<event>)), programs LXC runs at points of the container's life; see
        C(lxc.container.conf(5)), section CONTAINER HOOKS, for when each event runs and what it gets (with the
        default C(lxc.hook.version = 0), the arguments are the container's name, V(lxc) and the event, and
        C(LXC_NAME), C(LXC_ROOTFS_MOUNT), C(LXC_CONFIG_FILE) ... are set).
      - Each hook is either a script that the module installs (O(hooks[].content), with O(hooks[].name)) as
        C(<lxc_path>/<name>/hook-<hook name>), directly in the container's folder (so C(lxc-copy) and
        C(lxc-snapshot) copy it along), mode V(0750), owned by the user running LXC and by the group of the
        container's folder (so an unprivileged container's root can run the mount-namespace hooks), written
        atomically; or an existing program on the LXC host (O(hooks[].path)), wired as it is.
      - Ownership rule. A hook owns exactly its value in C(lxc.hook.<event>) (a multi-valued key); other values of
        that key, for example hooks that LXC's own config includes or a template wrote, stay. An installed
        script is referenced from its own event only. A key given both here and in O(config) or
        O(config_remove) is an error.
      - A changed script content is written without a restart (LXC reads the script when it runs it); a new or
        removed hook changes the config, handled as O(on_change) says.
    type: list
    elements: dict
    suboptions:
      event:
        description:
          - When LXC runs the hook. Required unless O(hooks[].state=absent).
          - V(start) runs inside the container, so it takes a O(hooks[].path) inside the container, not
            O(hooks[].content).
        type: str
        choices: [pre-start, pre-mount, mount, autodev, start-host, start, stop, post-stop, clone, destroy]
      name:
        description:
          - File name of an installed script (letters, digits, V(_), V(.), V(+), V(-); no V(/)), unique in the task.
            Required with O(hooks[].content).
          - With O(hooks[].state=absent) and no O(hooks[].path), the installed script of that name is removed with
            its value in every C(lxc.hook.*) key.
        type: str
      content:
        description:
          - The script, starting with an interpreter line such as C(#!/bin/sh). Mutually exclusive with
            O(hooks[].path).
        type: str
      path:
        description:
          - An absolute path of an existing executable on the LXC host (inside the container for V(start)),
            without blanks or shell characters (LXC runs hooks through C(/bin/sh -c)). Mutually exclusive with
            O(hooks[].content).
        type: str
      state:
        description:
          - V(absent) removes the hook's value (and an installed script's file).
        type: str
        choices: [present, absent]
        default: present
  on_change:
    description:
      - What to do when the config of a running container changes.
      - V(restart) stops it, writes the config and starts it again. V(none) writes the config only; it takes
        effect at the next start and the result has RV(restart_required). V(fail) fails the task before
        anything changes.
    type: str
    choices: [restart, none, fail]
    default: restart
  stop_timeout:
    description:
      - Seconds to wait for a clean shutdown before the container is killed. V(0) kills at once.
    type: int
    default: 30
  remove_snapshots:
    description:
      - With O(state=absent), also remove the container's snapshots (C(lxc-destroy -s)).
      - LXC refuses to destroy a container that has snapshots. Without this option such a task fails
        before any change and lists them; see M(lxcfleet.lxc.snapshot) to remove single snapshots.
    type: bool
    default: false
  wait:
    description:
      - Wait until the container has addresses. C(lxc-start) already returns only once the container is
        RUNNING; this waits further, polling with backoff and no fixed sleeps.
      - Only with O(state=started) or O(state=restarted).
    type: dict
    suboptions:
      timeout:
        description: Seconds to wait at most; the task fails after that.
        type: int
        default: 60
      ipv4:
        description: Wait for an IPv4 address.
        type: bool
        default: false
      ipv6:
        description: Wait for a global IPv6 address.
        type: bool
        default: false
      interfaces:
        description: The interfaces that must have the addresses (default every interface but V(lo)).
        type: list
        elements: str
  # -- clones, ephemeral containers, base containers (docs/clones.md) --
  clone_from:
    description:
      - Create the container as a copy of this existing container (C(lxc-copy)), when it does not exist.
        A creation source only, like O(template); an existing container is left as it is.
      - The copy gets its own name (C(lxc.uts.name), and C(/etc/hostname) when the rootfs has one) and new MAC
        addresses; then the task's O(config) and typed options are applied to the copy, never to the source.
      - It keeps the source's id map (privileged or unprivileged); an O(idmap) or O(unprivileged) that does not fit
        the source fails the task. Run as the user who owns the source to clone a user's unprivileged container.
      - A running source is never stopped unless O(clone_stop_source) says so. A full copy of a running source is
        made with C(lxc-copy --allowrunning) (with a warning); an overlay snapshot of a running source fails the
        task before any change.
      - Mutually exclusive with O(template), O(image), O(rootfs_archive) and O(base).
    type: str
  clone_from_path:
    description:
      - The lxc path of O(clone_from); default O(lxc_path).
    type: path
  clone_snapshot:
    description:
      - Make the copy a copy-on-write snapshot (C(lxc-copy -s)) instead of a full copy. LXC makes an overlay on
        the source's rootfs for a directory-backed source and a btrfs snapshot for a btrfs one.
      - An overlay snapshot reads the source's rootfs as its lower layer, so the source should stay stopped and
        unchanged while the clone exists; LXC will not destroy a source that has snapshots.
    type: bool
    default: false
  clone_stop_source:
    description:
      - When O(clone_from) is running or frozen, stop it, copy it and start it again (freezing it again if it was
        frozen). Without this option a running source is never stopped.
    type: bool
    default: false
  ephemeral:
    description:
      - An ephemeral container, cloned from O(clone_from) as an overlay snapshot with C(lxc.ephemeral = 1) and
        started; LXC destroys it when it stops.
      - With O(state=started) it is created (with the task's config) and started when missing. With
        O(state=stopped) or O(state=absent) it is stopped, which removes it. Other states fail the task.
    type: bool
    default: false
  base:
    description:
      - Fleets in seconds. With a creation source (O(image), O(template) or O(rootfs_archive)), make a stopped
        base container from it once (under a lock in the lxc path, so parallel runs make it once), then create
        this container as a copy-on-write snapshot of the base (C(lxc-copy -s)) and apply the task's config to it.
        The base keeps the source's own config.
      - Only used when the container does not exist; an existing container skips all of this.
      - Containers made from a base depend on it; destroy them before the base.
    type: dict
    suboptions:
      name:
        description:
          - Name of the base container. Default derived from the source, V(lxcfleet-base-DIST-RELEASE-ARCH-SHA) for
            an image (the first 12 hex digits of its rootfs sha256, so a refreshed image gives a new base),
            from the template's name, options and script for a template, and from the archive's path, size and
            modification time for a rootfs archive; an unprivileged base also carries a hash of its id map.
        type: str
      snapshot:
        description:
          - Copy-on-write snapshots of the base (overlay for a directory base). V(false) makes full copies, which
            are still faster than unpacking.
        type: bool
        default: true
notes:
  - Addresses per interface are read from the container's C(/proc/PID/net) files, without entering it.
seealso:
  - module: lxcfleet.lxc.container_info
  - module: lxcfleet.lxc.container_exec
"""

EXAMPLES = r"""
# Unprivileged first: a user with subordinate ids and a veth allowance on the bridge creates and
# starts its own container; LXC runs as that user.
- name: Subordinate ids for alice
  lxcfleet.lxc.subid:
    name: alice

- name: Alice may add 10 veth interfaces to lxcbr0
  lxcfleet.lxc.usernet:
    name: alice
    bridge: lxcbr0
    count: 10

- name: Alice's container, unprivileged, in ~alice/.local/share/lxc
  lxcfleet.lxc.container:
    name: c1
    template: busybox
    network:
      - link: lxcbr0
    state: started
  become: true
  become_user: alice

- name: A desktop user's container that maps the user's own uid and gid 1000 straight through
  lxcfleet.lxc.container:
    name: dev1
    template: busybox
    idmap:
      - u 0 100000 1000
      - g 0 100000 1000
      - u 1000 1000 1
      - g 1000 1000 1
      - u 1001 101001 64535
      - g 1001 101001 64535
  become: true
  become_user: alice

- name: A privileged container (root only; unprivileged is the default)
  lxcfleet.lxc.container:
    name: router1
    template: busybox
    unprivileged: false

- name: A busybox container on lxcbr0 with a static address, started
  lxcfleet.lxc.container:
    name: web1
    template: busybox
    network:
      - link: lxcbr0
        ipv4: [10.0.3.10/24]
        ipv4_gateway: auto
    state: started

- name: A Debian container from the download template, waiting for its DHCP address
  lxcfleet.lxc.container:
    name: db1
    template: download
    template_options: [--dist, debian, --release, bookworm, --arch, amd64]
    network:
      - link: lxcbr0
        hwaddr: "00:16:3e:00:00:21"
    limits:
      memory: 1G
      cpus: "0-1"
      pids: 512
    autostart:
      enabled: true
      order: 10
      groups: [databases]
    wait:
      ipv4: true
      timeout: 60

- name: Change the memory limit of a running container; it is restarted (on_change defaults to restart)
  lxcfleet.lxc.container:
    name: db1
    limits:
      memory: 2G

- name: Raw config keys, a bind mount, and a key removed
  lxcfleet.lxc.container:
    name: web1
    config:
      lxc.environment: [TZ=UTC, APP_ENV=production]
      lxc.start.delay: 5
    config_remove:
      - lxc.cgroup.cpu.shares
    mounts:
      - source: /srv/www
        target: /var/www
        options: bind,ro,create=dir
    on_change: none

- name: A Debian container from a verified, cached image, waiting for its DHCP address
  lxcfleet.lxc.container:
    name: app1
    image:
      dist: debian
      release: bookworm
      fingerprint: "{{ image_server_fingerprint }}"  # pin the key that signs the server's SHA256SUMS
    network:
      - link: lxcbr0
    wait:
      ipv4: true

- name: From a rootfs tarball and its LXC metadata, stopped
  lxcfleet.lxc.container:
    name: base
    rootfs_archive: /srv/images/rootfs.tar.xz
    rootfs_metadata: /srv/images/meta.tar.xz
    state: stopped

- name: A full copy of web1 with its own address; a running web1 keeps running
  lxcfleet.lxc.container:
    name: web2
    clone_from: web1
    network:
      - link: lxcbr0
        ipv4: [10.0.3.11/24]

- name: An ephemeral overlay snapshot of a stopped container, destroyed by LXC when it stops
  lxcfleet.lxc.container:
    name: scratch1
    clone_from: base-bookworm
    ephemeral: true

- name: Fleets in seconds - many containers from one image, each an overlay snapshot of one base
  lxcfleet.lxc.container:
    name: "web{{ item }}"
    image:
      dist: debian
      release: bookworm
    base: {}
    network:
      - link: lxcbr0
  loop: "{{ range(1, 21) | list }}"

- name: A container on a 2G ext4 filesystem in a loop file
  lxcfleet.lxc.container:
    name: quota1
    template: busybox
    backing_store: loop
    backing_store_options:
      fstype: ext4
      fssize: 2G

- name: A container as a btrfs subvolume (the lxc_path is on btrfs)
  lxcfleet.lxc.container:
    name: fast1
    lxc_path: /srv/btrfs/lxc
    template: busybox
    backing_store: btrfs

- name: A container on a thin logical volume
  lxcfleet.lxc.container:
    name: db2
    template: download
    template_options: [--dist, debian, --release, bookworm, --arch, amd64]
    backing_store: lvm
    backing_store_options:
      vgname: vg0
      thinpool: lxcpool
      fstype: xfs
      fssize: 20G

- name: A container on a ZFS dataset below tank/lxc
  lxcfleet.lxc.container:
    name: zed1
    template: busybox
    backing_store: zfs
    backing_store_options:
      zfsroot: tank/lxc

- name: A pre-start hook script installed with the container, and an existing program run after it stops
  lxcfleet.lxc.container:
    name: web1
    hooks:
      - event: pre-start
        name: prepare-share
        content: |
          #!/bin/sh
          # $1 is the container's name; LXC_ROOTFS_PATH and friends are set
          mkdir -p "/srv/share/$1"
      - event: post-stop
        path: /usr/local/sbin/notify-stopped

- name: Remove an installed hook script (its file and its lxc.hook value)
  lxcfleet.lxc.container:
    name: web1
    hooks:
      - name: prepare-share
        state: absent

- name: Remove a container
  lxcfleet.lxc.container:
    name: web1
    state: absent

- name: Remove a container and its snapshots
  lxcfleet.lxc.container:
    name: web1
    state: absent
    remove_snapshots: true
"""

RETURN = r"""
container:
  description:
    - The container after the task (in check mode, as planned). Null after O(state=absent), and after an ephemeral
      container was stopped (LXC removed it).
  returned: success
  type: dict
  contains:
    name:
      description: Name.
      type: str
      sample: web1
    state:
      description: LXC state, V(RUNNING), V(STOPPED) or V(FROZEN).
      type: str
      sample: RUNNING
    pid:
      description: PID of the container's init on the host, null when stopped.
      type: int
      sample: 4242
    ips:
      description: Every global address of the container's interfaces (except V(lo)), without prefix length.
      type: list
      elements: str
      sample: [10.0.3.10]
    interfaces:
      description: Interfaces inside the container (except V(lo)) with their global addresses and prefixes.
      type: dict
      sample: {"eth0": {"ipv4": ["10.0.3.10/24"], "ipv6": []}}
    unprivileged:
      description: Whether the container has an id map (C(lxc.idmap)).
      type: bool
      sample: false
    lxc_path:
      description: The lxc_path the container lives in.
      type: str
      sample: /var/lib/lxc
    config_path:
      description: Path of the container's config file.
      type: str
      sample: /var/lib/lxc/web1/config
    backing_store:
      description:
        - Backing store of the container's root filesystem, from C(lxc.rootfs.path) (V(dir), V(btrfs), V(loop),
          V(lvm), V(zfs), V(overlayfs), V(rbd), V(nbd)); null when the config has no rootfs.
        - In check mode for a container not yet created, the store it would get.
      type: str
      sample: btrfs
    config:
      description: The container's own config file as a dict; multi-valued keys are lists.
      type: dict
      sample: {"lxc.uts.name": "web1", "lxc.net.0.type": "veth", "lxc.mount.entry": ["/srv/www var/www none bind,ro,create=dir 0 0"]}
actions:
  description: The actions taken (planned, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create, write config, start]
hooks:
  description: The hooks of the task, in the order given, with the value each has in C(lxc.hook.<event>).
  returned: when O(hooks) is given and the container is not absent
  type: list
  elements: dict
  contains:
    event:
      description: The event.
      type: str
      sample: pre-start
    name:
      description: The name of an installed script, else null.
      type: str
      sample: mark
    path:
      description: The value in C(lxc.hook.<event>) (the installed file for a script).
      type: str
      sample: /var/lib/lxc/web1/hook-mark
    state:
      description: V(present) or V(absent).
      type: str
      sample: present
    installed:
      description: Whether the module installs the file (O(hooks[].content)), rather than wiring O(hooks[].path).
      type: bool
      sample: true
    file_changed:
      description: Whether the installed file was (in check mode, would be) written or removed.
      type: bool
      sample: false
restart_required:
  description: True when the config of a running container changed and O(on_change=none) left it running.
  returned: when true
  type: bool
  sample: true
lxc_reason:
  description: On a failed LXC call, LXC's own reason from its log for that call.
  returned: failure
  type: str
  sample: Failed to attach "vethAUes7i" to bridge "nosuchbr0", bridge interface doesn't exist
causes:
  description:
    - On a failed start or creation of an unprivileged container, the causes the module detected, such as no
      subordinate range or a map outside it, C(newuidmap) without its setuid bit, no C(lxc-usernet) allowance
      for a bridge, a folder on the way to the rootfs that the container's root cannot search, a restrictive umask.
      They are also in the message.
  returned: failure
  type: list
  elements: str
  sample: ["/home/alice (mode 0700, owner 1001:1001) cannot be searched by the container's root (host uid 100000)"]
image:
  description: When the container was created from O(image), the cache entry used (as M(lxcfleet.lxc.image) returns it).
  returned: when a container was created from an image
  type: dict
  sample: {"dist": "debian", "release": "bookworm", "build_id": "20261123_05:24", "fetched": false,
           "path": "/var/cache/lxc/download/debian/bookworm/amd64/default"}
base:
  description: When the container was created from a base container (O(base)), that base.
  returned: when a container was created from a base container
  type: dict
  contains:
    name:
      description: Name of the base container (in the same lxc path).
      type: str
      sample: lxcfleet-base-debian-bookworm-amd64-3f2a9c0d1e4b
    created:
      description: Whether this run made the base container.
      type: bool
      sample: false
    snapshot:
      description: Whether the container is a copy-on-write snapshot of the base.
      type: bool
      sample: true
state_after_failure:
  description: On a failed LXC call, the state the container was left in.
  returned: failure
  type: str
  sample: STOPPED
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._container_manager import main


if __name__ == "__main__":
    main()
