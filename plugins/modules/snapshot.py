#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Snapshots of an LXC container - create, restore, remove, list
version_added: 0.1.0
description:
  - Manages the snapshots of one container through C(lxc-snapshot) (and C(lxc-copy) for a restore into
    another lxc path). No python3-lxc bindings are used.
  - LXC names snapshots V(snap0), V(snap1) ... itself (the lowest free number) and keeps each one as a
    container in C(<lxc_path>/<name>/snaps/snapN/), with the files C(ts) (creation time) and C(comment).
    This module gives a snapshot the user's name O(snapshot) and keeps it in the file C(lxcfleet-name)
    in that folder, so it lives and dies with the snapshot; LXC ignores the file. A snapshot made by hand
    (without that file) is listed and addressed by its LXC name V(snapN).
  - What a snapshot is depends on the container's backing store. C(dir) - a full copy (rsync) of the
    rootfs. C(overlayfs) (a container that is itself an overlay clone, made with C(lxc-copy -s)) - a copy of
    its upper (delta) layer over the same lower layer. C(btrfs) - a btrfs snapshot of the rootfs subvolume.
    C(loop) - a C(dir) copy of the image's content; restoring it makes a new loop image of LXC's default
    size (1 GiB, sparse), not the original size. C(lvm) (thin or not), C(rbd) and C(nbd) cannot be
    snapshotted (LXC's drivers refuse them); the task fails before any change. C(zfs) is left to LXC and
    is not proven. See the collection's C(docs/snapshot.md).
  - LXC snapshots and restores in place only stopped containers. With a running (or frozen) container
    the task fails before any change, unless O(stop_running=true). Removing a snapshot and restoring
    into a new container work while the container runs.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the container's snapshots (name, LXC name, comment) before and after.
  idempotent:
    support: partial
    details:
      - O(state=present), O(state=absent) and O(state=restored) with O(restore_to) are idempotent.
      - Without O(snapshot) the task only lists the snapshots and never changes anything.
      - O(state=restored) without O(restore_to) (restore in place) always acts and reports a change, like
        a restart; run it only when a restore is wanted (for example under C(when)).
options:
  name:
    description: The container whose snapshots are managed.
    type: str
    required: true
  snapshot:
    description:
      - The snapshot - the user's name given at creation (V(before-upgrade)) or LXC's name (V(snap0)).
        A name is looked up among the user's names first, then among LXC's names.
      - 1 to 128 characters of letters, digits, V(_), V(.), V(:), V(@), V(+) and V(-), starting with a
        letter or digit.
      - A new snapshot cannot be given a name of the form V(snapN) (LXC picks N itself, and the name
        would collide with LXC's names).
      - Required with O(state=absent) and O(state=restored). Omitted with O(state=present), the task
        is a read-only listing - nothing changes, and RV(snapshots) lists the container's snapshots.
    type: str
  state:
    description:
      - V(present) - a snapshot with the name O(snapshot) exists; it is created when missing (the
        container must be stopped, or see O(stop_running)). With O(comment), the comment of an existing
        snapshot is set to it.
      - V(absent) - the snapshot is removed (also when the container runs). A missing container or
        snapshot is no change.
      - V(restored) - the snapshot is restored. With O(restore_to), into a new container of that name
        (no change when that container exists). Without it, in place - the container is destroyed (its
        rootfs, config and every other file in its folder, except C(snaps/)) and re-created from the
        snapshot, config included; this always acts.
    type: str
    choices: [present, absent, restored]
    default: present
  comment:
    description:
      - The snapshot's comment (C(lxc-snapshot -c), printed by C(lxc-snapshot -L -C)); a missing final
        newline is added in the file. V("") removes the comment.
      - Used with O(state=present); not given, the comment of an existing snapshot is left as it is.
    type: str
  restore_to:
    description:
      - With O(state=restored), the name of a new container to restore the snapshot into, in O(lxc_path)
        or O(restore_path). The original container is not touched and may run.
      - The new container gets the snapshot's config and the original's backing store (an overlay
        snapshot gives an overlay container over the same lower layer).
      - The same name as O(name) means a restore in place.
    type: str
  restore_path:
    description:
      - The lxc path for the container O(restore_to); default O(lxc_path). Created when missing.
      - C(lxc-snapshot) of LXC 5.0 has no option for it, so the snapshot is cloned with C(lxc-copy)
        (as C(lxc-snapshot -r) does). For a btrfs snapshot it must be on btrfs (checked before any change).
    type: path
  stop_running:
    description:
      - V(true) - a running or frozen container is stopped for a snapshot or an in-place restore and
        started again afterwards (and frozen again, if it was). Also when the step fails, the container
        is started again where possible.
      - V(false) - such a task fails before any change, naming this option.
    type: bool
    default: false
  stop_timeout:
    description: Seconds a clean stop may take with O(stop_running) before the container is killed; V(0) kills at once.
    type: int
    default: 30
notes:
  - LXC refuses an in-place restore of a container whose rootfs other containers or snapshots use
    (overlay clones made with C(lxc-copy -s), listed in its C(lxc_snapshots) file); the module says so
    before any change. Restore into a new container with O(restore_to) instead.
  - A snapshot of an overlay container records itself as a dependent of the lower container, so that
    lower container cannot be restored in place while the snapshot exists.
seealso:
  - module: lxcfleet.lxc.container
"""

EXAMPLES = r"""
- name: Snapshot web1 before the upgrade (stops and restarts it if it runs)
  lxcfleet.lxc.snapshot:
    name: web1
    snapshot: before-upgrade
    comment: "before the upgrade to 2.4"
    stop_running: true

- name: Restore it in place (web1 is replaced by the snapshot)
  lxcfleet.lxc.snapshot:
    name: web1
    snapshot: before-upgrade
    state: restored
    stop_running: true
  when: upgrade_failed | default(false)

- name: Restore it into a new container web1-old, next to the running web1
  lxcfleet.lxc.snapshot:
    name: web1
    snapshot: before-upgrade
    state: restored
    restore_to: web1-old

- name: List the snapshots of web1 (no snapshot given - read-only)
  lxcfleet.lxc.snapshot:
    name: web1
  register: web1_snapshots

- name: Remove the snapshot
  lxcfleet.lxc.snapshot:
    name: web1
    snapshot: before-upgrade
    state: absent
"""

RETURN = r"""
snapshots:
  description:
    - The container's snapshots after the task (in check mode, as they would be), by LXC number.
  returned: always
  type: list
  elements: dict
  sample:
    - name: before-upgrade
      lxc_name: snap0
      named: true
      comment: before the upgrade to 2.4
      created: "2026-11-23T16:20:44"
      ts: "2026:11:23 16:20:44"
      path: /var/lib/lxc/web1/snaps/snap0
      rootfs: dir:/var/lib/lxc/web1/snaps/snap0/rootfs
      backing_store: dir
  contains:
    name:
      description: The user's name (from C(lxcfleet-name)), or the LXC name for a snapshot without one.
      type: str
    lxc_name:
      description: LXC's name of the snapshot, V(snapN); what C(lxc-snapshot -r) and C(-d) take.
      type: str
    named:
      description: Whether the snapshot carries a user's name.
      type: bool
    comment:
      description: The comment (without its final newline), or V(null).
      type: str
    created:
      description: When LXC made it, as V(YYYY-MM-DDTHH:MM:SS) in the host's local time (from the C(ts) file); V(null) in check mode.
      type: str
    ts:
      description: The C(ts) file as LXC wrote it.
      type: str
    path:
      description: The snapshot's folder.
      type: str
    rootfs:
      description: The snapshot's C(lxc.rootfs.path).
      type: str
    backing_store:
      description:
        - The snapshot's backing store, from that path, in the words of the container module's
          O(lxcfleet.lxc.container#module:backing_store) (V(dir), V(overlayfs), V(btrfs) ...).
      type: str
snapshot:
  description:
    - The snapshot the task acted on or named (same keys as an item of RV(snapshots)); V(null) when
      it does not exist (O(state=absent)) or O(snapshot) is not given.
  returned: always
  type: dict
restored:
  description: The container restored into, with O(restore_to).
  returned: when O(restore_to) is given and the snapshot exists
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    lxc_path:
      description: Its lxc path.
      type: str
actions:
  description: What the task did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["stop container web1", "create snapshot before-upgrade of container web1", "start container web1"]
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._snapshot import main


if __name__ == "__main__":
    main()
