#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: subid
short_description: Subordinate uid and gid ranges of a user, without overlap
version_added: 0.1.0
description:
  - Makes sure a user has a range of subordinate uids in C(/etc/subuid) and of subordinate gids in
    C(/etc/subgid) of at least O(count) ids, for unprivileged LXC containers (C(lxc.idmap)).
  - A range is either given (O(start)) or allocated as the first free range at or above O(base) that
    overlaps no entry of either file; when both files are managed, a start that is free in both is
    preferred, so that the uid and gid maps are the same.
  - Never allocates in the host's own id range (below 65536 and below C(UID_MAX)/C(GID_MAX) + 1 of
    C(/etc/login.defs)) nor above C(SUB_UID_MAX)/C(SUB_GID_MAX) of C(/etc/login.defs).
  - Every other line of the files (other users' ranges, comments, blank and malformed lines) is kept
    as it is.
  - Works under the locks of shadow's tools (C(usermod), C(useradd), C(newusers)) - glibc's
    C(lckpwdf) lock on C(/etc/.pwd.lock), then the C(<file>.lock) link lock of each file - so runs at
    the same time, or a C(usermod --add-subuids) at the same time, never produce overlapping or lost
    entries. The files are replaced atomically (temporary file and rename, keeping mode and owner) and
    the previous version is kept as C(<file>-), as shadow does.
  - Returns the user's ranges and the matching C(lxc.idmap) lines.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Check mode takes the same locks and reads the same state as a real run, so it predicts exactly
        the ranges a real run at that moment would allocate; it writes nothing.
      - A check run by a user who may not take the locks (not root) reads without them and warns.
  diff_mode:
    support: full
    details:
      - The diff shows each managed file before and after, with its path as header.
  idempotent:
    support: full
options:
  name:
    description:
      - The user whose ranges are managed, as a user name that exists in the passwd database
        (V(alice)) or as a numeric uid (V(1001)), which need not exist.
      - New entries are written with O(name) as given. Existing entries of the user count whether
        they are written with the name or with the uid.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the user has a range of at least O(count) ids (at O(start) when given) in
        each managed file, adding one where there is none.
      - V(absent) removes the user's ranges from the managed files; with O(start), only the ranges
        that begin at O(start). O(count), O(base) and O(exclusive) are not used then.
    type: str
    choices: [present, absent]
    default: present
  count:
    description:
      - Size of the range, in ids. 65536 covers a whole Linux distribution in a container.
      - A range of the user that is at least this large satisfies the task (it is kept as it is).
    type: int
    default: 65536
  start:
    description:
      - First id of the range, when it must be exactly there (for example to match another host).
      - It must not be below 65536 and C(UID_MAX)/C(GID_MAX) + 1 of C(/etc/login.defs), the range must
        end at or below C(SUB_UID_MAX)/C(SUB_GID_MAX), and it must not overlap an entry of another
        owner (the error names the conflicting line).
      - Entries of the same user that overlap the new range are replaced by it.
      - Leave out to allocate a free range (see O(base)).
    type: int
  base:
    description:
      - When O(start) is left out, the range is the first free one that starts at or above O(base).
      - A O(base) in the host's own id range is raised to its end (see O(start)).
    type: int
    default: 100000
  files:
    description:
      - Which files to manage. V(both) gives the user a uid and a gid range (what an unprivileged
        container needs); V(subuid) or V(subgid) manage only that file.
    type: str
    choices: [both, subuid, subgid]
    default: both
  exclusive:
    description:
      - With O(state=present), remove the user's other ranges from the managed files, so that the
        range of the task is the user's only one.
    type: bool
    default: false
  subuid_path:
    description:
      - The subordinate uid file.
      - Its link lock is C(<subuid_path>.lock), its backup C(<subuid_path>-).
    type: path
    default: /etc/subuid
  subgid_path:
    description:
      - The subordinate gid file.
      - Its link lock is C(<subgid_path>.lock), its backup C(<subgid_path>-).
    type: path
    default: /etc/subgid
  lock_timeout:
    description:
      - How long to wait, in seconds, for the locks (C(/etc/.pwd.lock) and the link locks) that another
        run or one of shadow's tools holds. The task fails naming this option when they stay taken.
      - A link lock whose process is gone is stale and removed at once.
    type: float
    default: 30
notes:
  - The uid and gid ranges of a user are chosen independently when no start is free in both files;
    the result shows what each is.
seealso:
  - module: lxcfleet.lxc.container
  - name: subuid(5)
    description: The format of /etc/subuid.
    link: https://man7.org/linux/man-pages/man5/subuid.5.html
"""

EXAMPLES = r"""
- name: Give the user lxcuser 65536 subordinate uids and gids (the first free range at or above 100000)
  lxcfleet.lxc.subid:
    name: lxcuser
  register: lxcuser_subid

- name: Use the ranges for the user's unprivileged containers
  ansible.builtin.copy:
    dest: /home/lxcuser/.config/lxc/default.conf
    content: |
      lxc.include = /etc/lxc/default.conf
      {% for line in lxcuser_subid.idmap %}
      lxc.idmap = {{ line }}
      {% endfor %}
    owner: lxcuser
    mode: "0644"

- name: A range at a fixed place, and no other range for this user
  lxcfleet.lxc.subid:
    name: builder
    start: 1000000
    count: 65536
    exclusive: true

- name: A large range for a nesting host, allocated above 10 million
  lxcfleet.lxc.subid:
    name: nester
    count: 1048576
    base: 10000000

- name: Only subordinate uids, for a numeric uid without a passwd entry
  lxcfleet.lxc.subid:
    name: "2001"
    files: subuid

- name: Remove all ranges of a user
  lxcfleet.lxc.subid:
    name: olduser
    state: absent
"""

RETURN = r"""
subuid:
  description: The user's ranges in the subordinate uid file after the task (in check mode, as predicted), in file order.
  returned: always
  type: list
  elements: dict
  sample: [{"start": 100000, "count": 65536}]
  contains:
    start:
      description: First id of the range.
      type: int
    count:
      description: Number of ids.
      type: int
subgid:
  description: The user's ranges in the subordinate gid file after the task, like RV(subuid).
  returned: always
  type: list
  elements: dict
  sample: [{"start": 100000, "count": 65536}]
  contains:
    start:
      description: First id of the range.
      type: int
    count:
      description: Number of ids.
      type: int
idmap:
  description:
    - The C(lxc.idmap) values that map container ids 0 to O(count) - 1 onto the first uid and the first
      gid range that satisfy the task (O(count) ids of it).
    - Empty when the user lacks a uid or a gid range that does.
  returned: always
  type: list
  elements: str
  sample: ["u 0 100000 65536", "g 0 100000 65536"]
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import main


if __name__ == "__main__":
    main()
