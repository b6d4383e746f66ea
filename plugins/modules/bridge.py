#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: A Linux bridge, its addresses and its ports, through netlink
version_added: 0.1.0
description:
  - Creates, changes or deletes one Linux bridge on the host or in a named network namespace, for
    LXC containers to attach to (C(lxc.net.N.link)).
  - Reads the current state through netlink with pyroute2, compares it with the options given,
    builds a list of actions, and only then acts. No C(ip) or C(brctl) is run.
  - Options left out are not managed; their current values stay.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows V(state) and the managed properties (the options given) before and after.
  idempotent:
    support: full
requirements:
  - pyroute2 0.7 or later on the managed host (Debian and Ubuntu package C(python3-pyroute2)).
options:
  name:
    description:
      - Name of the bridge. 1 to 15 characters, no V(/), V(:) or whitespace.
      - If a link of this name exists but is not a bridge, the task fails without any change.
    type: str
    required: true
  state:
    description:
      - V(present) creates the bridge if needed and applies the options.
      - V(absent) deletes the bridge. Its ports are released by the kernel and stay as they are
        (they are not deleted); its addresses go with it.
    type: str
    choices: [present, absent]
    default: present
  addresses:
    description:
      - Addresses of the bridge in CIDR form (V(10.0.3.1/24), V(fd00:3::1/64)), IPv4 and IPv6.
      - Only global-scope addresses are managed; IPv6 link-local addresses are left to the kernel.
      - An address that is already on another link of the namespace fails the task.
      - Leave out to leave the addresses as they are.
    type: list
    elements: str
  addresses_mode:
    description:
      - V(exact) makes O(addresses) the whole set of global addresses of the bridge and removes
        the others (an empty list removes all).
      - V(append) adds the missing ones and removes nothing, except an address that is listed with
        another prefix length, which is replaced.
    type: str
    choices: [exact, append]
    default: exact
  mtu:
    description: MTU of the bridge, 68 to 65535.
    type: int
  hwaddr:
    description: MAC address of the bridge, for example V(02:00:00:aa:bb:cc).
    type: str
  stp:
    description: Whether the kernel's Spanning Tree Protocol is on.
    type: bool
  forward_delay:
    description:
      - STP forward delay in seconds, as C(brctl setfd) takes it, with a resolution of 1/100 s.
      - Netlink (and C(ip -d link show)) carries it in centiseconds, so V(15) is shown there as C(1500).
      - While STP is on the kernel accepts 2 to 30 seconds only.
    type: float
  up:
    description: Whether the bridge is administratively up.
    type: bool
    default: true
  ports:
    description:
      - Interfaces that are ports of the bridge (enslaved to it). Each must exist in the namespace;
        a port of another bridge is moved.
      - Leave out to leave the ports as they are.
    type: list
    elements: str
  ports_mode:
    description:
      - V(exact) makes O(ports) the whole set of ports and releases the others.
      - V(append) adds the missing ones and releases none.
    type: str
    choices: [exact, append]
    default: exact
  netns:
    description:
      - Name of a network namespace under C(/var/run/netns) (as C(ip netns add) makes it) to work in.
        It must exist; the module never creates one.
      - Leave out to work in the namespace of the module (the host).
    type: str
seealso:
  - module: lxcfleet.lxc.container
"""

EXAMPLES = r"""
- name: The bridge lxc-net would make (lxcbr0, 10.0.3.1/24, up)
  lxcfleet.lxc.bridge:
    name: lxcbr0
    addresses: [10.0.3.1/24]

- name: A dual-stack bridge with STP and two ports
  lxcfleet.lxc.bridge:
    name: br-fleet
    addresses: [10.20.0.1/24, "fd00:20::1/64"]
    mtu: 1450
    stp: true
    forward_delay: 4
    ports: [veth-a, veth-b]

- name: Add an address, keep the others
  lxcfleet.lxc.bridge:
    name: br-fleet
    addresses: [10.20.1.1/24]
    addresses_mode: append

- name: A bridge in a network namespace, down
  lxcfleet.lxc.bridge:
    name: br0
    netns: lab
    up: false

- name: Remove it
  lxcfleet.lxc.bridge:
    name: br-fleet
    state: absent
"""

RETURN = r"""
actions:
  description: What the module did, or in check mode would do, in order.
  returned: always
  type: list
  elements: str
  sample: ["create bridge lxcbr0", "add address 10.0.3.1/24", "set up"]
bridge:
  description: The bridge after the task (in check mode, as predicted).
  returned: always
  type: dict
  contains:
    name:
      description: Name.
      type: str
      sample: lxcbr0
    netns:
      description: The network namespace, null for the module's own.
      type: str
      sample: null
    exists:
      description: Whether the bridge exists.
      type: bool
      sample: true
    addresses:
      description: Global addresses in CIDR form, IPv4 first, sorted.
      type: list
      elements: str
      sample: [10.0.3.1/24]
    mtu:
      description: MTU.
      type: int
      sample: 1500
    hwaddr:
      description: MAC address, lower case.
      type: str
      sample: "02:00:00:aa:bb:cc"
    stp:
      description: Whether STP is on.
      type: bool
      sample: false
    forward_delay:
      description: Forward delay in seconds.
      type: float
      sample: 15.0
    up:
      description: Whether the bridge is administratively up.
      type: bool
      sample: true
    operstate:
      description: The kernel's operational state (V(UP), V(DOWN), V(UNKNOWN)); a bridge without
        a port that has a carrier is V(DOWN) even when it is up. Null in check mode for a new bridge.
      type: str
      sample: UP
    ports:
      description: Names of the ports, sorted.
      type: list
      elements: str
      sample: [vethA1b2]
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._netlink import main


if __name__ == "__main__":
    main()
