# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller-side planning for the lxc_fleet role: collect, merge, normalise and validate the
containers of one LXC host, and compute the port forwards of its nft table.

Pure functions (no I/O): the role passes what it knows (inventory, defaults, users of the host,
bridge networks) and gets back plain lists and dicts, or an AnsibleFilterError that names the
container and the field, before any task changes anything.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
BRIDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$")
STATES = ("started", "stopped", "present", "absent")
SOURCES = ("image", "template", "clone_from", "rootfs_archive")
# Keys of a container spec and the kinds of value they take.
SPEC_KEYS = {
    "name": str, "inventory_name": str, "state": str, "owner": str, "unprivileged": bool,
    "lxc_path": str, "image": dict, "template": str, "template_options": list, "clone_from": str,
    "clone_snapshot": bool, "rootfs_archive": str, "rootfs_metadata": str, "base": (dict, type(None)),
    "backing_store": str, "bridge": str, "mac": str, "ipv4": str, "port_forwards": list, "limits": dict,
    "autostart": (bool, dict), "config": dict, "mounts": list, "nesting": bool, "apparmor_profile": str,
    "python": bool, "wait_timeout": int, "stop_timeout": int, "groups": list,
}
FORWARD_KEYS = ("port", "dest_port", "proto", "host_address")


def _fail(where, field, reason):
    raise AnsibleFilterError("lxc_fleet: %s: %s: %s" % (where, field, reason))


def derive_mac(host, name):
    """A stable locally chosen MAC in LXC's OUI (00:16:3e) from md5(host + name)."""
    digest = hashlib.md5((str(host) + str(name)).encode("utf-8")).hexdigest()
    return "00:16:3e:%s:%s:%s" % (digest[0:2], digest[2:4], digest[4:6])


def _ports(where, i, value):
    """A port or a range as (first, last)."""
    text = str(value).strip()
    field = "port_forwards[%d].port" % i
    if isinstance(value, bool):
        _fail(where, field, "%r is not a port" % (value,))
    parts = text.split("-", 1)
    try:
        first, last = int(parts[0]), int(parts[-1])
    except ValueError:
        _fail(where, field, "%r is not a port or a range like 8000-8010" % (value,))
    if not (1 <= first <= last <= 65535):
        _fail(where, field, "%r is not a port (1-65535) or an ascending range" % (value,))
    return first, last


def _ipv4(where, field, value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        _fail(where, field, "%r is not an IPv4 address (write it without a prefix length, like 10.0.3.100)" % (value,))


def _network(text):
    return ipaddress.IPv4Interface(str(text)).network


def fleet_networks(host_bridges=None, overrides=None):
    """Bridge name -> network (CIDR text) from lxc_host_bridges-like entries, then overrides."""
    out = {}
    for entry in host_bridges or []:
        if isinstance(entry, Mapping) and entry.get("name") and entry.get("address"):
            try:
                out[str(entry["name"])] = str(_network(entry["address"]))
            except ValueError:
                continue
    for name, cidr in (overrides or {}).items():
        try:
            out[str(name)] = str(_network(cidr))
        except ValueError:
            raise AnsibleFilterError("lxc_fleet: lxc_fleet_bridge_networks.%s: %r is not an IPv4 network" % (name, cidr))
    return out


def _merge(defaults, spec):
    merged = dict(defaults)
    if any(k in spec for k in SOURCES):
        for key in SOURCES + ("template_options", "rootfs_metadata", "clone_snapshot"):
            merged.pop(key, None)
    merged.update(spec)
    return merged


def _check_types(where, spec):
    for key, value in spec.items():
        if key not in SPEC_KEYS:
            _fail(where, key, "unknown key (known: %s)" % ", ".join(sorted(SPEC_KEYS)))
        kind = SPEC_KEYS[key]
        if value is None and key != "base":
            continue
        if kind is int and isinstance(value, bool):
            _fail(where, key, "%r is not an integer" % (value,))
        if kind is int and isinstance(value, str) and value.isdigit():
            continue
        if kind is bool and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            continue
        if not isinstance(value, kind if isinstance(kind, tuple) else (kind,)):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            _fail(where, key, "%r is not a %s" % (value, names.replace("NoneType", "null")))


def _bool(value):
    if isinstance(value, str):
        return value.lower() in ("true", "yes")
    return bool(value)


def _normalise(where, spec, host, opts):
    _check_types(where, spec)
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        _fail(where, "name", "%r is not a container name (1 to 64 letters, digits, '.', '_' and '-', "
              "starting with a letter or digit)" % (name,))
    state = spec.get("state") or "started"
    if state not in STATES:
        _fail(where, "state", "%r is not one of %s" % (state, ", ".join(STATES)))
    owner = spec.get("owner") or "root"
    if opts["users"] is not None and owner not in opts["users"]:
        _fail(where, "owner", "user %r does not exist on %s (create it first, for example with lxc_host_users)" % (owner, host))
    unprivileged = _bool(spec["unprivileged"]) if spec.get("unprivileged") is not None else True
    if owner != "root" and not unprivileged:
        _fail(where, "unprivileged", "false needs owner root: only root can run privileged containers (owner is %r)" % owner)
    sources = [k for k in SOURCES if spec.get(k) is not None]
    if len(sources) > 1:
        _fail(where, sources[1], "only one of %s may be given (also %s)" % (", ".join(SOURCES), sources[0]))
    if not sources and state != "absent":
        _fail(where, "image", "no creation source: give one of %s (or set it in lxc_fleet_defaults)" % ", ".join(SOURCES))
    if spec.get("rootfs_metadata") is not None and spec.get("rootfs_archive") is None:
        _fail(where, "rootfs_metadata", "needs rootfs_archive")
    bridge = spec.get("bridge") or opts["bridge"]
    if not isinstance(bridge, str) or not BRIDGE_RE.match(bridge):
        _fail(where, "bridge", "%r is not an interface name (1 to 15 characters)" % (bridge,))
    mac = spec.get("mac")
    if mac is None:
        mac = derive_mac(host, name)
    else:
        mac = str(mac).lower().replace("-", ":")
        if not MAC_RE.match(mac):
            _fail(where, "mac", "%r is not a MAC address like 00:16:3e:12:34:56" % (spec.get("mac"),))
        if int(mac[0:2], 16) & 1:
            _fail(where, "mac", "%s is a multicast address (the first byte must be even)" % mac)
    ipv4 = None
    if spec.get("ipv4") is not None:
        ipv4 = _ipv4(where, "ipv4", spec["ipv4"])
        if not LABEL_RE.match(name):
            _fail(where, "name", "%r cannot be a DHCP host name for its static lease (ipv4): use letters, digits "
                  "and '-' only" % name)
        net = opts["networks"].get(bridge)
        if net is not None:
            net = ipaddress.IPv4Network(net)
            if ipv4 not in net:
                _fail(where, "ipv4", "%s is not inside %s, the network of bridge %s" % (ipv4, net, bridge))
            if net.prefixlen < 31 and ipv4 in (net.network_address, net.broadcast_address):
                _fail(where, "ipv4", "%s is the network or broadcast address of %s" % (ipv4, net))
    forwards = []
    for i, fwd in enumerate(spec.get("port_forwards") or []):
        if not isinstance(fwd, Mapping):
            _fail(where, "port_forwards[%d]" % i, "%r is not a dict" % (fwd,))
        for key in fwd:
            if key not in FORWARD_KEYS:
                _fail(where, "port_forwards[%d].%s" % (i, key), "unknown key (known: %s; dest is the container's ipv4)"
                      % ", ".join(FORWARD_KEYS))
        if ipv4 is None:
            _fail(where, "port_forwards[%d]" % i, "a port forward needs the container's ipv4 (a static lease)")
        if fwd.get("port") is None:
            _fail(where, "port_forwards[%d].port" % i, "required")
        first, last = _ports(where, i, fwd["port"])
        proto = str(fwd.get("proto") or "tcp")
        if proto not in ("tcp", "udp"):
            _fail(where, "port_forwards[%d].proto" % i, "%r is not tcp or udp" % proto)
        out = {"proto": proto, "port": str(first) if first == last else "%d-%d" % (first, last), "dest": str(ipv4)}
        if fwd.get("dest_port") is not None:
            if first != last:
                _fail(where, "port_forwards[%d].dest_port" % i, "not allowed with a port range")
            dport = fwd["dest_port"]
            if isinstance(dport, bool) or not str(dport).isdigit() or not 1 <= int(dport) <= 65535:
                _fail(where, "port_forwards[%d].dest_port" % i, "%r is not a port (1-65535)" % (dport,))
            out["dest_port"] = int(dport)
        if fwd.get("host_address") is not None:
            out["host_address"] = str(_ipv4(where, "port_forwards[%d].host_address" % i, fwd["host_address"]))
        out["range"] = (first, last)
        forwards.append(out)
    autostart = spec.get("autostart")
    if isinstance(autostart, bool) or isinstance(autostart, str):
        autostart = {"enabled": _bool(autostart)}
    for key in ("groups",):
        for i, group in enumerate(spec.get(key) or []):
            if not isinstance(group, str) or not group:
                _fail(where, "%s[%d]" % (key, i), "%r is not a group name" % (group,))
    network = [{"type": "veth", "link": bridge, "hwaddr": mac, "name": "eth0"}]
    wait_timeout = spec.get("wait_timeout")
    wait_timeout = opts["wait_timeout"] if wait_timeout is None else int(wait_timeout)
    stop_timeout = spec.get("stop_timeout")
    stop_timeout = opts["stop_timeout"] if stop_timeout is None else int(stop_timeout)
    base = spec["base"] if "base" in spec else opts["base"]
    if base is not None and not isinstance(base, Mapping):
        _fail(where, "base", "%r is not a dict or null" % (base,))
    if spec.get("clone_from") is not None:
        base = None
    python = spec.get("python")
    return {
        "name": name,
        "inventory_name": spec.get("inventory_name") or name,
        "state": state,
        "owner": owner,
        "become": owner != "root",
        "unprivileged": unprivileged,
        "lxc_path": spec.get("lxc_path"),
        "image": spec.get("image"),
        "template": spec.get("template"),
        "template_options": list(spec.get("template_options") or []),
        "clone_from": spec.get("clone_from"),
        "clone_snapshot": _bool(spec.get("clone_snapshot") or False),
        "rootfs_archive": spec.get("rootfs_archive"),
        "rootfs_metadata": spec.get("rootfs_metadata"),
        "base": None if base is None else dict(base),
        "backing_store": spec.get("backing_store"),
        "bridge": bridge,
        "mac": mac,
        "ipv4": str(ipv4) if ipv4 is not None else None,
        "network": network,
        "port_forwards": forwards,
        "limits": spec.get("limits"),
        "autostart": autostart,
        "config": dict(spec.get("config") or {}),
        "mounts": spec.get("mounts"),
        "nesting": None if spec.get("nesting") is None else _bool(spec["nesting"]),
        "apparmor_profile": spec.get("apparmor_profile"),
        "python": opts["python"] if python is None else _bool(python),
        "wait_timeout": wait_timeout,
        "stop_timeout": stop_timeout,
        "groups": list(spec.get("groups") or []),
    }


def fleet_plan(containers, host, defaults=None, inventory_hosts=None, hostvars=None, inventory_group="lxc_containers",
               bridge="lxcbr0", base=None, python=False, wait_timeout=60, stop_timeout=30, users=None, networks=None):
    """The containers of LXC host `host`, merged with `defaults`, normalised and validated.

    containers: the host's own list (lxc_fleet_containers). inventory_hosts: names of the hosts in
    the inventory group; those whose hostvars say lxc_fleet_host == host are added, with spec
    hostvars[h].lxc_fleet_container and name defaulting to h (their inventory name is h).
    """
    if containers is None:
        containers = []
    if not isinstance(containers, list):
        raise AnsibleFilterError("lxc_fleet: lxc_fleet_containers: %r is not a list" % (containers,))
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, Mapping):
        raise AnsibleFilterError("lxc_fleet: lxc_fleet_defaults: %r is not a dict" % (defaults,))
    _check_types("lxc_fleet_defaults", defaults)
    for key in ("name", "inventory_name", "ipv4", "mac"):
        if key in defaults:
            raise AnsibleFilterError("lxc_fleet: lxc_fleet_defaults: %s: must be set per container, not as a default" % key)
    opts = {
        "bridge": bridge, "base": base, "python": _bool(python), "wait_timeout": int(wait_timeout),
        "stop_timeout": int(stop_timeout),
        "users": None if users is None else set(users), "networks": dict(networks or {}),
    }
    entries = []
    for i, spec in enumerate(containers):
        where = "lxc_fleet_containers[%d]" % i
        if not isinstance(spec, Mapping):
            _fail(where, "(entry)", "%r is not a dict" % (spec,))
        if isinstance(spec.get("name"), str):
            where = "container %r (lxc_fleet_containers[%d])" % (spec["name"], i)
        entries.append((where, _merge(defaults, dict(spec))))
    for name in inventory_hosts or []:
        hv = hostvars[name] if hostvars is not None else {}
        if hv.get("lxc_fleet_host") != host:
            continue
        spec = hv.get("lxc_fleet_container")
        where = "inventory host %r (group %s)" % (name, inventory_group)
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            _fail(where, "lxc_fleet_container", "%r is not a dict" % (spec,))
        spec = dict(spec)
        if "inventory_name" in spec:
            _fail(where, "lxc_fleet_container.inventory_name", "not allowed: the inventory name is %r" % name)
        spec.setdefault("name", name)
        spec["inventory_name"] = name
        entries.append(("container %r from %s" % (spec["name"], where), _merge(defaults, spec)))
    plan = []
    seen = {"name": {}, "inventory_name": {}, "mac": {}, "ipv4": {}}
    for where, spec in entries:
        item = _normalise(where, spec, host, opts)
        for key in seen:
            value = item[key]
            if value is None or (key in ("mac", "ipv4") and item["state"] == "absent"):
                continue
            if value in seen[key]:
                _fail(where, key, "%s is also used by %s" % (value, seen[key][value]))
            seen[key][value] = where
        plan.append(item)
    _check_forwards(plan)
    for item in plan:
        for fwd in item["port_forwards"]:
            del fwd["range"]
    return plan


def _check_forwards(plan):
    taken = []
    for item in plan:
        if item["state"] == "absent":
            continue
        for i, fwd in enumerate(item["port_forwards"]):
            first, last = fwd["range"]
            for other_name, ofwd in taken:
                ofirst, olast = ofwd["range"]
                same_addr = (fwd.get("host_address") is None or ofwd.get("host_address") is None
                             or fwd.get("host_address") == ofwd.get("host_address"))
                if fwd["proto"] == ofwd["proto"] and same_addr and first <= olast and ofirst <= last:
                    _fail("container %r" % item["name"], "port_forwards[%d]" % i,
                          "%s port %s overlaps port %s of container %r" % (fwd["proto"], fwd["port"], ofwd["port"], other_name))
            taken.append((item["name"], fwd))


def fleet_nat(plan, networks=None):
    """Arguments of lxcfleet.lxc.nat for the forwards of a plan: masquerade (the networks of the
    bridges that carry forwards, as the nat module requires) and port_forwards."""
    networks = dict(networks or {})
    forwards = []
    sources = []
    for item in plan:
        if item["state"] == "absent" or not item["port_forwards"]:
            continue
        net = networks.get(item["bridge"])
        if net is None:
            raise AnsibleFilterError("lxc_fleet: container %r: bridge: the network of bridge %s is unknown (it has no IPv4 "
                                     "address and is not in lxc_host_bridges or lxc_fleet_bridge_networks)" % (item["name"], item["bridge"]))
        if ipaddress.IPv4Address(item["ipv4"]) not in ipaddress.IPv4Network(net):
            raise AnsibleFilterError("lxc_fleet: container %r: ipv4: %s is not inside %s, the network of bridge %s"
                                     % (item["name"], item["ipv4"], net, item["bridge"]))
        if net not in sources:
            sources.append(net)
        for fwd in item["port_forwards"]:
            forwards.append({k: v for k, v in fwd.items() if k != "range"})
    return {"masquerade": [{"source": s} for s in sorted(sources, key=ipaddress.IPv4Network)],
            "port_forwards": forwards}


def fleet_nft_file(table_text, table):
    """The persisted file of a table: safe to load twice (create empty, delete, then the table)."""
    return "# Managed by the lxcfleet.lxc.lxc_fleet role; loaded by nftables.service.\n" \
           "table inet %s {}\ndelete table inet %s\n%s" % (table, table, table_text if table_text.endswith("\n") else table_text + "\n")


def fleet_bridge_network(entry):
    """{name, network} of one interface of `ip -j -4 address show` output, or None without an IPv4 address."""
    for info in entry.get("addr_info") or []:
        if info.get("family") == "inet" and info.get("local") and info.get("prefixlen") is not None:
            return {"name": entry.get("ifname"), "network": str(_network("%s/%s" % (info["local"], info["prefixlen"])))}
    return None


def fleet_inventory(results, lxc_host, access, check_mode=False):
    """Inventory entries for the started containers of one LXC host, from the container task's
    loop results (item: the planned container, container: the module's result). In check mode a
    container that the run would only create or start is left out: there is nothing to reach yet."""
    out = []
    for res in results or []:
        item = res.get("item") or {}
        container = res.get("container")
        if item.get("state") != "started" or not container or res.get("failed") or res.get("skipped"):
            continue
        if check_mode and "start" in (res.get("actions") or []):
            continue
        out.append({
            "name": item["inventory_name"], "container": item["name"], "owner": item["owner"],
            "lxc_path": container.get("lxc_path"), "groups": list(item.get("groups") or []),
            "access": dict(access), "lxc_host": lxc_host,
            "ipv4": item.get("ipv4") or next(iter(container.get("ips") or []), None),
        })
    return out


class FilterModule:
    """Filters of the lxc_fleet role."""

    def filters(self):
        return {
            "fleet_plan": fleet_plan,
            "fleet_nat": fleet_nat,
            "fleet_networks": fleet_networks,
            "fleet_nft_file": fleet_nft_file,
            "fleet_mac": derive_mac,
            "fleet_bridge_network": fleet_bridge_network,
            "fleet_inventory": fleet_inventory,
        }
