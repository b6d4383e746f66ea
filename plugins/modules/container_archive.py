#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_archive
short_description: Export a stopped container to one archive file, or create a container from such a file
version_added: 0.1.0
description:
  - V(exported) writes a stopped container - its rootfs and its config - to the archive file O(path) on the LXC
    host, with a small manifest C(lxcfleet-archive.json) (container name, source lxc path, architecture,
    privileged or unprivileged with its id map, backing store, compression, creation time, format version).
  - V(imported) creates container O(name) in O(lxc_path) from such an archive, on the same or another host (the
    archive is a plain file, copied with M(ansible.builtin.copy) or M(ansible.builtin.fetch)).
  - GNU tar does the reading and writing (C(--numeric-owner --xattrs --xattrs-include=* --acls)), so owners,
    modes (setuid included), extended attributes (file capabilities, C(user.*)) and POSIX ACLs are kept.
  - The ids in the archive are the container's own. An unprivileged container is read inside its user namespace
    (C(lxc-usernsexec) with its C(lxc.idmap)), so a file of the container's uid 1000 is stored as 1000 whatever
    the host's subordinate range was; an import into an unprivileged container unpacks inside the new
    container's map, so the host ids follow the new range. A privileged container stores host ids, which are
    its own.
  - Before anything is unpacked, the whole archive is read and checked - the manifest is first and of a known
    version, every member is C(config), C(rootfs) or below it, no absolute name, no C(..), no member written
    through a symlink of the archive, no hard link outside the rootfs, no device node when the new container
    is unprivileged, and every owner is mapped by the new container's map. See the collection's
    C(docs/archive.md).
  - The config is rewritten for the new place - C(lxc.rootfs.path) (a plain folder in the new container folder),
    C(lxc.uts.name), every path below the old container folder (hooks, mount entries, fstab), C(lxc.idmap), and
    new MAC addresses unless O(keep_mac). C(/etc/hostname) of the rootfs gets the new name when it held the old
    one.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Export - nothing is stopped or written; the result shows the manifest the archive would get.
      - Import - the archive is read and checked as in a real run and the config is planned; nothing is
        unpacked.
  diff_mode:
    support: full
    details:
      - Export - the manifest of the archive before (when it exists) and after, as JSON.
      - Import - the config of the new container (before is empty).
  idempotent:
    support: full
    details:
      - Export - an archive of the same container at O(path) is kept (no change) unless O(force); an archive of
        another container, or a file that is no archive, fails unless O(force).
      - Import - a container O(name) that exists is left as it is (no change), whatever its content.
options:
  name:
    description:
      - The container to export, or the container to create on import (not the name in the archive).
    type: str
    required: true
  state:
    description:
      - V(exported) writes the archive, V(imported) creates the container from it.
    type: str
    required: true
    choices: [exported, imported]
  path:
    description:
      - The archive file on the LXC host. On export its folder must exist; the archive is written to a temporary
        file in that folder and renamed, with mode V(0600) (it holds the whole rootfs, C(/etc/shadow) included).
    type: path
    required: true
  lxc_path:
    description:
      - The lxc path of the container (C(lxc-* -P)). Defaults to C(lxc-config lxc.lxcpath) of the user the module
        runs as.
    type: path
  compression:
    description:
      - Compression of a new archive. V(gzip) (the default) is fast and everywhere; V(xz) gives the smallest
        files and is slow; V(zstd) is fast and small but needs the C(zstd) program on both hosts; V(none) writes
        a plain tar.
      - On import the compression is recognised from the file.
    type: str
    default: gzip
    choices: [gzip, xz, zstd, none]
  force:
    description:
      - Export only. Write the archive even when O(path) exists (an older archive of the same container, an
        archive of another container, or another file).
    type: bool
    default: false
  stop_running:
    description:
      - Export only. A running (or frozen) container is refused unless this is true; then it is stopped, exported
        and started again (frozen again when it was frozen), also when the export fails.
    type: bool
    default: false
  stop_timeout:
    description:
      - Export with O(stop_running) - seconds to wait for a clean shutdown; V(0) kills the container at once.
    type: int
    default: 30
  unprivileged:
    description:
      - Import only. Whether the new container is unprivileged. Defaults to what the archive's container was;
        a user other than root always gets an unprivileged container.
      - A privileged archive can be imported as unprivileged (its ids are shifted into the new map; device
        nodes and ids outside the map are refused before anything is unpacked) and an unprivileged one as
        privileged (its container ids become host ids).
    type: bool
  idmap:
    description:
      - Import only. The C(lxc.idmap) lines of the new container. Defaults to the map a new container of this user
        gets from the M(lxcfleet.lxc.container) module - the user's default config, else its subordinate ranges.
    type: list
    elements: str
  keep_mac:
    description:
      - Import only. Keep the C(lxc.net.N.hwaddr) values of the archive; by default each gets a new random address
        (V(00:16:3e:xx:xx:xx)) so that an import next to the original does not clash.
    type: bool
    default: false
notes:
  - Only files of the rootfs and the config are archived. Other files in the container folder (an fstab, hook
    scripts, logs) are not; config keys that point there are moved to the new folder, so copy those files too.
  - An imported container always has a plain folder rootfs (backing store V(dir)). Export reads folder rootfs only
    (V(dir) and V(btrfs)).
  - Symlinks with absolute targets are normal in a rootfs and are kept; they resolve inside the container. They
    are never followed while unpacking.
seealso:
  - module: lxcfleet.lxc.container
  - module: lxcfleet.lxc.snapshot
"""

EXAMPLES = r"""
- name: Export web1 (it must be stopped)
  lxcfleet.lxc.container_archive:
    name: web1
    state: exported
    path: /var/backups/web1.tar.gz

- name: Export a running container - stop it, export it, start it again
  lxcfleet.lxc.container_archive:
    name: web1
    state: exported
    path: /var/backups/web1.tar.xz
    compression: xz
    stop_running: true
    force: true

- name: Bring the archive to the controller
  ansible.builtin.fetch:
    src: /var/backups/web1.tar.gz
    dest: archives/
    flat: true

- name: Copy it to another host
  ansible.builtin.copy:
    src: archives/web1.tar.gz
    dest: /var/tmp/web1.tar.gz
    mode: "0600"

- name: Create web2 there from it
  lxcfleet.lxc.container_archive:
    name: web2
    state: imported
    path: /var/tmp/web1.tar.gz

- name: Start it
  lxcfleet.lxc.container:
    name: web2
    state: started
"""

RETURN = r"""
actions:
  description: What the task did (in check mode, would do), in order - C(stop), C(export), C(start), C(unpack),
    C(write config).
  returned: always
  type: list
  elements: str
  sample: ["unpack", "write config"]
archive:
  description: The archive file.
  returned: always
  type: dict
  contains:
    path:
      description: O(path).
      type: str
    size:
      description: Its size in bytes (null in check mode when it does not exist yet).
      type: int
    sha256:
      description: Its sha256 (null in check mode when it does not exist yet).
      type: str
    manifest:
      description: The content of C(lxcfleet-archive.json) (null when an existing file on import has none).
      type: dict
      sample:
        format: lxcfleet.lxc/container-archive
        version: 1
        name: web1
        lxc_path: /var/lib/lxc
        container_dir: /var/lib/lxc/web1
        arch: x86_64
        unprivileged: true
        idmap: ["u 0 100000 65536", "g 0 100000 65536"]
        backing_store: dir
        compression: gzip
        created: "2026-01-01T12:00:00Z"
container:
  description: The imported container as M(lxcfleet.lxc.container) returns it (name, state, pid, ips, interfaces,
    unprivileged, lxc_path, config_path, config); in check mode, as it would be.
  returned: state=imported
  type: dict
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._archive import main


if __name__ == "__main__":
    main()
