#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dnsmasq
short_description: DHCP and DNS for one bridge, as a real dnsmasq
version_added: 0.1.0
description:
  - Writes a dnsmasq config for one bridge (and two hosts files it re-reads on C(SIGHUP)) and keeps
    a dnsmasq running for it, like Debian's C(lxc-net) does for C(lxcbr0), but for any bridge and
    without upstream DNS forwarding unless asked for.
  - dnsmasq binds to the bridge only (C(interface=), C(bind-interfaces), C(except-interface=lo),
    C(listen-address=)); each bridge has its own lease file and pid file under O(state_dir).
  - Compares the rendered files and the process with what is there, builds a list of actions, and
    only then acts. A change of the static leases only is applied with C(SIGHUP) (RV(reloaded)); any
    other change of the config restarts dnsmasq (RV(restarted)).
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
      - The diff shows the config file and the two hosts files (and with O(service=systemd) the unit
        file) before and after, and with O(hostsdir=true) the folder of lease files (missing or its mode).
  idempotent:
    support: full
requirements:
  - dnsmasq on the managed host (Debian and Ubuntu package C(dnsmasq-base)).
  - With O(service=systemd), systemd as PID 1.
options:
  bridge:
    description:
      - Name of the bridge to serve, 1 to 15 characters. It must exist with O(address) on it when
        dnsmasq starts; use M(lxcfleet.lxc.bridge) before this module.
    type: str
    required: true
  state:
    description:
      - V(present) writes the files and (unless O(service=none)) keeps dnsmasq running for the bridge.
      - V(absent) stops dnsmasq for the bridge and removes its config, hosts, lease, pid (and unit) files.
    type: str
    choices: [present, absent]
    default: present
  address:
    description:
      - The bridge's IPv4 address in CIDR form (V(10.0.3.1/24)); dnsmasq listens on it and the
        network it gives is the one O(dhcp_range) and O(static_leases) must lie in.
      - Required with O(state=present).
    type: str
  dhcp_range:
    description:
      - The dynamic range of DHCP addresses, inside the network of O(address).
      - Leave out for no dynamic leases; static leases are then still served (C(dhcp-range=NETWORK,static)).
    type: dict
    suboptions:
      start:
        description: First address of the range.
        type: str
        required: true
      end:
        description: Last address of the range, not before O(dhcp_range.start).
        type: str
        required: true
      lease_time:
        description: Lease time as dnsmasq takes it (V(3600), V(45m), V(12h), V(infinite)).
        type: str
        default: 1h
  static_leases:
    description:
      - Fixed addresses, written as C(dhcp-host) lines into a C(dhcp-hostsfile) (V(MAC,IP,NAME), or
        V(NAME,IP) without a MAC, so the client is matched by the host name it sends, as
        C(dhcp-host=lxcmail,10.0.3.100) in C(lxc-net)'s C(dnsmasq.conf)), and as C(IP NAME) lines
        into an C(addn-hosts) file, so the names resolve before any DHCP exchange.
      - Names, MAC addresses and IP addresses must each be unique; every IP must be inside the network
        of O(address).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Host name (one DNS label), usually the container's name.
        type: str
        required: true
      mac:
        description: MAC address of the client, for example the container's C(hwaddr).
        type: str
      ip:
        description: The IPv4 address it gets.
        type: str
        required: true
  domain:
    description:
      - Local DNS domain, for example V(lxc). dnsmasq gets C(domain=), C(local=/DOMAIN/) (answered
        here, never forwarded) and C(expand-hosts), so containers resolve each other as V(NAME) and
        V(NAME.DOMAIN).
      - Leave out for no domain.
    type: str
  upstream_servers:
    description:
      - DNS servers dnsmasq forwards other names to (C(server=) lines, with C(strict-order)); an IP
        address, optionally with V(#port).
      - Empty (the default) forwards nothing at all. C(/etc/resolv.conf) is never read (C(no-resolv)).
    type: list
    elements: str
    default: []
  dhcp_authoritative:
    description: Whether dnsmasq is the only DHCP server of the bridge (C(dhcp-authoritative)), as in C(lxc-net).
    type: bool
    default: true
  config_dir:
    description: Folder of the config file V(BRIDGE.conf) and the hosts files V(BRIDGE.dhcp-hosts) and V(BRIDGE.hosts).
    type: path
    default: /etc/lxcfleet/dnsmasq
  state_dir:
    description: Folder of the lease file V(BRIDGE.leases) and the pid file V(BRIDGE.pid).
    type: path
    default: /var/lib/lxcfleet/dnsmasq
  unit_dir:
    description: Folder of the systemd unit file C(lxcfleet-dnsmasq@BRIDGE.service) (with O(service=systemd)).
    type: path
    default: /etc/systemd/system
  service:
    description:
      - How dnsmasq is run.
      - V(process) - the module starts C(dnsmasq --conf-file=FILE --pid-file=FILE) itself (it
        daemonizes), restarts it (C(SIGTERM) to the pid of the pid file after checking that
        C(/proc/PID/cmdline) is that dnsmasq) when the config changed, and sends C(SIGHUP) when only
        the static leases changed. Nothing restarts it after a reboot.
      - V(systemd) - writes the unit C(lxcfleet-dnsmasq@BRIDGE.service), enables it and uses
        C(systemctl) (C(start), C(restart), C(reload) which sends C(SIGHUP), C(disable --now)).
      - V(none) - only writes the files.
      - Default V(systemd) when C(/run/systemd/system) exists, else V(process).
    type: str
    choices: [process, systemd, none]
  hostsdir:
    description:
      - Whether dnsmasq also reads static leases from the folder V(CONFIG_DIR/BRIDGE.hosts.d)
        (C(dhcp-hostsdir=)), one or more C(dhcp-host) lines per file (V(MAC,IP,NAME)).
      - With V(true) the module creates the folder (mode V(0755)) and returns its path as RV(hostsdir).
        Other tasks or roles drop one file per client into it; dnsmasq notices new and changed files
        through inotify and serves them without a restart or C(SIGHUP). A removed or changed file's old
        entry stays until dnsmasq is reloaded (C(SIGHUP), C(systemctl reload lxcfleet-dnsmasq@BRIDGE)).
      - The files in the folder are not managed by this module, and static leases given there are not
        checked against O(static_leases) or the network of O(address).
      - Turning it on or off changes the config, so dnsmasq restarts. V(false) leaves an existing folder
        as it is; O(state=absent) removes the folder with the files in it.
    type: bool
    default: false
seealso:
  - module: lxcfleet.lxc.bridge
  - module: lxcfleet.lxc.nat
"""

EXAMPLES = r"""
- name: The bridge
  lxcfleet.lxc.bridge:
    name: lxcbr0
    addresses: [10.0.3.1/24]

- name: DHCP and DNS for it, like lxc-net, with static leases and the domain lxc
  lxcfleet.lxc.dnsmasq:
    bridge: lxcbr0
    address: 10.0.3.1/24
    dhcp_range: {start: 10.0.3.2, end: 10.0.3.254, lease_time: 1h}
    domain: lxc
    static_leases:
      - {name: web1, mac: "00:16:3e:00:03:0a", ip: 10.0.3.10}
      - {name: lxcmail, ip: 10.0.3.100}

- name: Forward other names to a resolver
  lxcfleet.lxc.dnsmasq:
    bridge: lxcbr0
    address: 10.0.3.1/24
    dhcp_range: {start: 10.0.3.2, end: 10.0.3.254}
    upstream_servers: [192.0.2.53]

- name: DHCP with a folder of static leases that other tasks fill, one file per container
  lxcfleet.lxc.dnsmasq:
    bridge: lxcbr0
    address: 10.0.3.1/24
    dhcp_range: {start: 10.0.3.2, end: 10.0.3.254}
    hostsdir: true
  register: lxcbr0_dnsmasq

- name: A static lease picked up without a restart
  ansible.builtin.copy:
    dest: "{{ lxcbr0_dnsmasq.hostsdir }}/web2"
    content: "00:16:3e:00:03:0b,10.0.3.11,web2\n"
    mode: "0644"

- name: Stop it and remove its files
  lxcfleet.lxc.dnsmasq:
    bridge: lxcbr0
    state: absent
"""

RETURN = r"""
actions:
  description: What the module did, or in check mode would do, in order.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/lxcfleet/dnsmasq/lxcbr0.conf", "start dnsmasq for lxcbr0"]
service:
  description: How dnsmasq is run (O(service) or its default on this host).
  returned: always
  type: str
  sample: process
config:
  description: The rendered config file; null with O(state=absent).
  returned: always
  type: str
  sample: "interface=lxcbr0\nbind-interfaces\n..."
dhcp_hosts:
  description: The rendered C(dhcp-hostsfile); null with O(state=absent).
  returned: always
  type: str
  sample: "00:16:3e:00:03:0a,10.0.3.10,web1\n"
hosts:
  description: The rendered C(addn-hosts) file; null with O(state=absent).
  returned: always
  type: str
  sample: "10.0.3.10 web1\n"
unit:
  description: The rendered systemd unit with O(service=systemd), else null.
  returned: always
  type: str
hostsdir:
  description: The folder of static lease files with O(hostsdir=true) and O(state=present), else null.
  returned: always
  type: str
  sample: /etc/lxcfleet/dnsmasq/lxcbr0.hosts.d
paths:
  description: The files of this bridge (and V(hostsdir) with O(hostsdir=true)).
  returned: always
  type: dict
  sample: {"config": "/etc/lxcfleet/dnsmasq/lxcbr0.conf", "pid": "/var/lib/lxcfleet/dnsmasq/lxcbr0.pid"}
pid:
  description: The pid of the bridge's dnsmasq after the task; null when none runs (and in check mode
    when it would be started or restarted).
  returned: always
  type: int
  sample: 4242
started:
  description: Whether dnsmasq was (or in check mode would be) started.
  returned: always
  type: bool
restarted:
  description: Whether dnsmasq was (or would be) restarted because its config changed.
  returned: always
  type: bool
reloaded:
  description: Whether dnsmasq was (or would be) sent C(SIGHUP) because only its hosts files changed.
  returned: always
  type: bool
stopped:
  description: Whether dnsmasq was (or would be) stopped (O(state=absent)).
  returned: always
  type: bool
"""

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._dnsmasq import main


if __name__ == "__main__":
    main()
