#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nat
short_description: Masquerade, forward accepts and port forwards for LXC networks in one nftables table
version_added: 0.1.0
description:
  - Owns one nftables table of family C(inet), named by O(table), and writes it as a whole. Tables the
    module does not own are never read for changes nor touched.
  - The table holds masquerade for the container networks (O(masquerade)), forward accepts for bridges
    (O(forward_bridges)) and port forwards (O(port_forwards)) that work from outside (DNAT in the
    C(prerouting) chain) and from the host itself (DNAT in the C(output) chain), plus the masquerade that
    a container needs to reach a forward of its own network (hairpin).
  - The live table is read with C(nft -j list table) and turned into the same canonical rules the module
    renders; when they differ, the whole table is replaced in one C(nft -f) transaction
    (C(table inet NAME {}), C(delete table inet NAME), the new table). If nft rejects any part, the kernel
    keeps the previous table as it was.
  - Rules of the table that the module did not write (added by hand) make the table differ, so the next
    run replaces them.
  - See C(docs/nat.md) of the collection for the rules it writes and how they map to LXC's C(lxc-net).
author:
  - lxcfleet developers (@lxcfleet)
requirements:
  - nftables 0.9.3 or later (C(nft)), and a kernel with C(inet) family NAT (Linux 5.2 or later).
  - C(ip) from iproute2 and C(sysctl) when O(netns) is used.
extends_documentation_fragment:
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the table in its canonical nft text before and after, and C(net.ipv4.ip_forward)
        when it changes.
  idempotent:
    support: full
options:
  table:
    description:
      - Name of the nftables table, in family C(inet). The module owns it completely.
      - A letter, then up to 63 letters, digits or underscores.
    type: str
    default: lxcfleet
  state:
    description:
      - V(present) writes the table; V(absent) deletes the table, and nothing else.
      - With V(absent), O(masquerade), O(forward_bridges), O(port_forwards) and O(ip_forward) are ignored.
    type: str
    choices: [present, absent]
    default: present
  netns:
    description:
      - Name of a network namespace in C(/var/run/netns) to work in instead of the host's. nft and sysctl
        then run as C(ip netns exec NAME nft ...) (an argv list, never a shell).
    type: str
  masquerade:
    description:
      - Networks whose traffic is masqueraded when it leaves them (C(ip saddr NET ip daddr != NET masquerade)),
        like C(lxc-net) does for C(LXC_NETWORK).
      - These are also the managed networks every O(port_forwards[].dest) must be inside.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: IPv4 network in CIDR form, for example V(10.0.3.0/24). Host bits must be zero.
        type: str
        required: true
      out_interface:
        description: Masquerade only traffic that leaves through this interface.
        type: str
  forward_bridges:
    description:
      - Bridges whose traffic is accepted in the forward hook (C(iifname BR accept)), and traffic
        back to them when it belongs to an established or related connection.
      - The forward chain has policy accept; these rules matter where another table or a policy
        drops forwarded traffic by default, as a firewall does.
    type: list
    elements: str
    default: []
  port_forwards:
    description:
      - Ports of the host forwarded to a container (DNAT).
      - Without O(port_forwards[].host_address) a forward applies to every local address of the host
        (C(fib daddr type local)); connections from the host to C(127.0.0.0/8) are not forwarded.
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: Protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      port:
        description: Host port, V(8080), or a range, V(8000-8010).
        type: raw
        required: true
      host_address:
        description: Forward only connections to this IPv4 address of the host (not a loopback address).
        type: str
      dest:
        description: IPv4 address of the container. It must be inside one of the O(masquerade) sources.
        type: str
        required: true
      dest_port:
        description:
          - Port on the container. Default is the host port.
          - Not allowed with a port range; a range goes to the same ports.
        type: int
  ip_forward:
    description:
      - Set C(net.ipv4.ip_forward) (through C(/proc/sys), or C(sysctl) in O(netns)) to this value.
      - Default V(null) leaves it as it is; it is reported in RV(ip_forward) either way.
    type: bool
notes:
  - Family C(inet) is used so that one table can later hold IPv6 rules too; DNAT in it is written as
    C(dnat ip to ADDR), which needs nftables 0.9.3 or later (Debian 12 has 1.0.6).
  - Two runs against the same table at once are serialised by the kernel; the last one wins.
"""

EXAMPLES = r"""
- name: NAT for lxcbr0 like lxc-net, with two port forwards
  lxcfleet.lxc.nat:
    masquerade:
      - source: 10.0.3.0/24
    forward_bridges: [lxcbr0]
    port_forwards:
      - {proto: tcp, port: 8080, dest: 10.0.3.100, dest_port: 80}
      - {proto: udp, port: "5000-5010", dest: 10.0.3.101}
    ip_forward: true

- name: Only traffic leaving through eth0, a forward on one host address
  lxcfleet.lxc.nat:
    table: web
    masquerade:
      - {source: 10.0.4.0/24, out_interface: eth0}
    port_forwards:
      - {port: 443, host_address: 192.0.2.10, dest: 10.0.4.5}

- name: Remove the table
  lxcfleet.lxc.nat:
    table: web
    state: absent
"""

RETURN = r"""
table:
  description: The table as canonical nft text after the run (what check mode would write); empty when absent.
  returned: always
  type: str
  sample: "table inet lxcfleet {\n\tchain prerouting {\n ...\n}\n"
rules:
  description: The normalised entries the table holds, in table order (empty with O(state=absent)).
  returned: always
  type: dict
  contains:
    masquerade:
      description: Masqueraded networks.
      type: list
      elements: dict
      sample: [{source: 10.0.3.0/24, out_interface: null}]
    forward_bridges:
      description: Bridges with forward accepts.
      type: list
      elements: str
      sample: [lxcbr0]
    port_forwards:
      description: Port forwards, ports as text.
      type: list
      elements: dict
      sample: [{proto: tcp, port: "8080", host_address: null, dest: 10.0.3.100, dest_port: 80}]
ip_forward:
  description: Value of C(net.ipv4.ip_forward) after the run (what it would be, in check mode).
  returned: always
  type: bool
  sample: true
actions:
  description: What the module did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: [replace table, set ip_forward=1]
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._nft import main


if __name__ == "__main__":
    main()
