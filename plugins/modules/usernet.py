#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: usernet
short_description: Entries of /etc/lxc/lxc-usernet, the nic quota of unprivileged users
version_added: 0.1.0
description:
  - Manages the lines of one user or group in C(/etc/lxc/lxc-usernet) (lxc-usernet(5)). The setuid
    helper C(lxc-user-nic) reads that file when an unprivileged container starts - a line
    C(USER TYPE BRIDGE COUNT) or C(@GROUP TYPE BRIDGE COUNT) lets the user, or every member of the
    group, attach up to COUNT nics of TYPE to BRIDGE. Without a line the start fails with
    C(Quota reached).
  - How C(lxc-user-nic) evaluates the file (read from its source, C(src/lxc/cmd/lxc_user_nic.c), and
    checked with LXC 5.0.2) - a line counts for a caller when it has four fields, its first field is
    the caller's user name or V(@) and one of the caller's groups, and type and bridge are the
    requested ones; a line that starts with a blank is never read. The counts of all such lines are
    summed, and a sum of 0 or less is C(Quota reached). Else a nic is given when one matching line,
    in file order, has a count above the number of nics its name (user or V(@group)) already holds
    in C(/run/lxc/nics), and the nic is recorded under that name. So a user line and a group line
    add up, several lines of the same name do not (the largest counts), and a name's nics are
    counted over all bridges and, for a group, over all its members. See the collection's
    C(docs/usernet.md).
  - Every other line and every comment is kept byte for byte. Lines are identified the way
    C(lxc-user-nic) reads them, so a line of O(name) in an unusual shape (tabs, a trailing comment)
    is recognised and, where it must change, rewritten in the plain form C(NAME TYPE BRIDGE COUNT).
  - The file is read, planned and written under an exclusive lock on the sidecar file
    C(.lxc-usernet.lock) in the same folder (the file itself is replaced by a rename, so it cannot
    carry the lock), so two runs at once lose nothing. The new file is written to a temporary file
    in the same folder and renamed; its mode and owner are kept, a new file gets mode V(0644).
  - The user or group need not exist on the host. C(lxc-user-nic) compares names at the time a
    container starts, so entries can be written before the account is created, and for accounts
    that come from a directory service (LDAP, SSSD) which the host may not resolve while the task
    runs.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the file without taking the lock and creates nothing, not even the lock file.
  diff_mode:
    support: full
    details:
      - The diff shows the whole file before and after, with O(path) as headers.
  idempotent:
    support: full
options:
  name:
    description:
      - The user (V(alice)) or, with a leading V(@), the group (V(@lxcusers)) the lines are for.
      - A name as C(useradd) and C(groupadd) accept it - letters, digits, V(_), V(.) and V(-), not
        starting with V(-), not only digits, at most 32 characters, optionally ending in V($).
    type: str
    required: true
  state:
    description:
      - V(present) - the given entries are there, each key (O(name), type, bridge) exactly once with
        the given count.
      - V(absent) - the lines of the given keys are removed (O(count) is then not needed). Without
        O(bridge) and O(entries) all lines of O(name) are removed.
    type: str
    choices: [present, absent]
    default: present
  bridge:
    description:
      - The bridge (the C(link) field) of a single entry; 1 to 15 characters, no whitespace, V(/),
        V(:) or V(#). V(none) is what C(lxc-user-nic) uses for a nic that is attached to no bridge.
      - Mutually exclusive with O(entries). With O(state=present) one of O(bridge) and O(entries) is required.
    type: str
  count:
    description:
      - How many nics the single entry allows, from V(0) to V(2147483647). V(0) keeps a line that
        allows nothing (C(Quota reached)).
      - Required with O(bridge) and O(state=present). Mutually exclusive with O(entries).
    type: int
  type:
    description:
      - The nic type of the single entry. C(lxc-user-nic) compares it with the type liblxc asks for,
        and liblxc runs C(lxc-user-nic) only for V(veth) nics of unprivileged containers, so V(veth)
        is the only type accepted; lines of other types could never match.
      - Mutually exclusive with O(entries).
    type: str
    choices: [veth]
    default: veth
  entries:
    description:
      - Several entries of O(name) at once. A (type, bridge) key may appear once.
      - With O(exclusive=true) and O(state=present), V([]) removes every line of O(name).
      - Mutually exclusive with O(bridge), O(count) and O(type).
    type: list
    elements: dict
    suboptions:
      bridge:
        description: The bridge, as O(bridge).
        type: str
        required: true
      count:
        description: How many nics, as O(count); required with O(state=present).
        type: int
      type:
        description: The nic type, as O(type).
        type: str
        choices: [veth]
        default: veth
  exclusive:
    description:
      - V(true) - the lines of O(name) are exactly the given entries; its lines for other keys are removed.
      - V(false) - additive; lines of O(name) for other keys are kept.
      - In both modes each given key ends with exactly one line with the given count; further lines of
        the same key are removed (duplicates are collapsed), since C(lxc-user-nic) would otherwise
        read them as well.
      - Used with O(state=present) only.
    type: bool
    default: false
  path:
    description:
      - The lxc-usernet file. It and its folder are created when missing (mode V(0644) and V(0755)).
      - C(lxc-user-nic) reads only the path it was built with (C(/etc/lxc/lxc-usernet) on Debian and
        Ubuntu); another path is useful for tests and images.
    type: path
    default: /etc/lxc/lxc-usernet
  lock_timeout:
    description: Seconds to wait for the lock on the file before failing.
    type: float
    default: 15
seealso:
  - module: lxcfleet.lxc.container
  - module: lxcfleet.lxc.bridge
"""

EXAMPLES = r"""
- name: Let alice attach up to 10 nics to lxcbr0
  lxcfleet.lxc.usernet:
    name: alice
    bridge: lxcbr0
    count: 10

- name: Two nics on each of two bridges for every member of lxcusers, and nothing else for that group
  lxcfleet.lxc.usernet:
    name: "@lxcusers"
    entries:
      - {bridge: lxcbr0, count: 2}
      - {bridge: br-dmz, count: 2, type: veth}
    exclusive: true

- name: Take away bob's line for lxcbr0 (other lines of bob stay)
  lxcfleet.lxc.usernet:
    name: bob
    bridge: lxcbr0
    state: absent

- name: Remove every line of bob
  lxcfleet.lxc.usernet:
    name: bob
    state: absent
"""

RETURN = r"""
entries:
  description:
    - The lines of O(name) after the task (in check mode, as they would be), in file order, as
      C(lxc-user-nic) reads them.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "alice", "type": "veth", "bridge": "lxcbr0", "count": 10}]
  contains:
    name:
      description: The user or V(@group).
      type: str
    type:
      description: The nic type.
      type: str
    bridge:
      description: The bridge.
      type: str
    count:
      description: How many nics the line allows.
      type: int
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._usernet import main


if __name__ == "__main__":
    main()
