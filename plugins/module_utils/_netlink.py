# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Linux bridges through netlink (pyroute2): validation, reading, planning and applying.

The validation and the planner are pure functions over plain dicts (unit-tested without pyroute2);
only ``read_snapshot()`` and ``apply_actions()`` talk to the kernel.
"""

from __future__ import annotations

import ipaddress
import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from pyroute2 import IPRoute, NetNS
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    IPRoute = NetNS = None

    class NetlinkError(Exception):  # type: ignore[no-redef]
        """Stand-in so that ``except NetlinkError`` works without pyroute2."""
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None

NETNS_DIR = "/var/run/netns"
IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: 15 characters
IFF_UP = 0x1
# The kernel's limits for forward_delay while STP is on (BR_MIN/MAX_FORWARD_DELAY), in seconds.
STP_FORWARD_DELAY_MIN = 2
STP_FORWARD_DELAY_MAX = 30
# Netlink carries bridge timers as clock_t, in USER_HZ (100 per second on Linux): centiseconds.
USER_HZ = 100

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
# Properties in the order they are shown in the diff and returned.
PROPERTIES = ("addresses", "mtu", "hwaddr", "stp", "forward_delay", "up", "ports")


class BridgeError(Exception):
    """Bad input or a state that forbids the change. The message starts with the option's name."""


def validate_ifname(name, option="name") -> str | None:
    """The kernel's rules (dev_valid_name): 1-15 characters, not . or .., no '/', ':' or whitespace."""
    if name is None or name == "":
        return "%s must not be empty" % option
    if len(name.encode("utf-8")) >= IFNAMSIZ:
        return "%s %r is too long: an interface name has at most %d characters" % (option, name, IFNAMSIZ - 1)
    if name in (".", "..") or any(ch in name for ch in "/:") or any(ch.isspace() for ch in name):
        return "%s %r is not a valid interface name: no '/', ':' or whitespace, not '.' or '..'" % (option, name)
    return None


def validate_netns(name) -> str | None:
    if name is None:
        return None
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return "netns %r is not a valid network namespace name" % (name,)
    return None


def normalize_address(value) -> str:
    """``10.0.3.1/24`` or ``fd00::1/64`` in canonical form; a prefix length is required."""
    text = str(value).strip()
    if "/" not in text:
        raise BridgeError("addresses: %r needs a prefix length, for example %s/24" % (value, text))
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise BridgeError("addresses: %r is not a valid CIDR address: %s" % (value, exc))
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        raise BridgeError("addresses: %r is not a unicast host address" % (value,))
    if iface.version == 6 and iface.ip.is_link_local:
        raise BridgeError("addresses: %r is link-local; only global addresses are managed" % (value,))
    return iface.with_prefixlen


def _address_key(cidr: str):
    iface = ipaddress.ip_interface(cidr)
    return (iface.version, iface.ip, iface.network.prefixlen)


def sort_addresses(cidrs) -> list:
    return sorted(cidrs, key=_address_key)


def address_ip(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr).ip)


def normalize_hwaddr(value) -> str:
    text = str(value).strip().lower().replace("-", ":")
    if not _MAC_RE.match(text):
        raise BridgeError("hwaddr: %r is not a MAC address like 02:00:00:aa:bb:cc" % (value,))
    if int(text[:2], 16) & 1:
        raise BridgeError("hwaddr: %r is a multicast address; a bridge needs a unicast MAC" % (value,))
    if text == "00:00:00:00:00:00":
        raise BridgeError("hwaddr: %r is not a usable MAC address" % (value,))
    return text


def seconds_to_centiseconds(value) -> int:
    return int(round(float(value) * USER_HZ))


def centiseconds_to_seconds(value):
    if value is None:
        return None
    return value / float(USER_HZ)


def validate_params(params: dict) -> dict:
    """Check every option; return the desired state (canonical values). Raises BridgeError."""
    error = validate_ifname(params.get("name")) or validate_netns(params.get("netns"))
    if error:
        raise BridgeError(error)
    desired = {"name": params["name"], "state": params.get("state") or "present", "netns": params.get("netns"),
               "addresses_mode": params.get("addresses_mode") or "exact", "ports_mode": params.get("ports_mode") or "exact"}
    addresses = params.get("addresses")
    if addresses is not None:
        canonical = []
        seen = {}
        for item in addresses:
            cidr = normalize_address(item)
            ip = address_ip(cidr)
            if ip in seen:
                if seen[ip] != cidr:
                    raise BridgeError("addresses: %s is listed twice with different prefix lengths (%s, %s)" % (ip, seen[ip], cidr))
                continue
            seen[ip] = cidr
            canonical.append(cidr)
        addresses = sort_addresses(canonical)
    desired["addresses"] = addresses
    mtu = params.get("mtu")
    if mtu is not None and not 68 <= int(mtu) <= 65535:
        raise BridgeError("mtu: %s is out of range: use 68 to 65535" % (mtu,))
    desired["mtu"] = None if mtu is None else int(mtu)
    desired["hwaddr"] = None if params.get("hwaddr") is None else normalize_hwaddr(params["hwaddr"])
    desired["stp"] = params.get("stp")
    delay = params.get("forward_delay")
    if delay is not None:
        delay = float(delay)
        if delay < 0 or delay > 655:
            raise BridgeError("forward_delay: %s is out of range: use 0 to 655 seconds" % (params["forward_delay"],))
        if abs(delay * USER_HZ - round(delay * USER_HZ)) > 1e-6:
            raise BridgeError("forward_delay: %s has more than two decimals; the kernel counts in 1/100 s" % (params["forward_delay"],))
        if params.get("stp") and not STP_FORWARD_DELAY_MIN <= delay <= STP_FORWARD_DELAY_MAX:
            raise BridgeError("forward_delay: %s is out of range while stp is on: the kernel accepts %d to %d seconds"
                              % (params["forward_delay"], STP_FORWARD_DELAY_MIN, STP_FORWARD_DELAY_MAX))
        delay = centiseconds_to_seconds(seconds_to_centiseconds(delay))
    desired["forward_delay"] = delay
    desired["up"] = True if params.get("up") is None else bool(params["up"])
    ports = params.get("ports")
    if ports is not None:
        for port in ports:
            error = validate_ifname(port, option="ports")
            if error:
                raise BridgeError(error)
            if port == params["name"]:
                raise BridgeError("ports: %r is the bridge itself" % (port,))
        ports = sorted(set(ports))
    desired["ports"] = ports
    return desired


def plan(desired: dict, snapshot: dict) -> dict:
    """Compare the desired state with a snapshot of the namespace; return actions, before and after.

    ``snapshot``: ``{"links": {ifname: {"index", "kind", "master"}}, "addresses": [{"index", "cidr"}],
    "bridge": <properties of the bridge, as describe() returns> or None}``. Raises BridgeError for a
    state that forbids the change, before anything is done.
    """
    name = desired["name"]
    links = snapshot["links"]
    current = snapshot.get("bridge")
    link = links.get(name)
    if link is not None and link.get("kind") != "bridge":
        raise BridgeError("name: %s exists but is not a bridge (kind %s)" % (name, link.get("kind") or "none"))
    actions = []
    if desired["state"] == "absent":
        if current is None:
            return {"actions": [], "before": {"state": "absent"}, "after": {"state": "absent"}}
        before = dict(state="present", **{key: current[key] for key in PROPERTIES})
        return {"actions": [{"op": "delete", "text": "delete bridge %s (its ports are released, not deleted)" % name}],
                "before": before, "after": {"state": "absent"}}

    own_index = link["index"] if link else None
    # Addresses already on another link of this namespace.
    if desired["addresses"]:
        wanted_ips = {address_ip(cidr): cidr for cidr in desired["addresses"]}
        by_index = {info["index"]: ifname for ifname, info in links.items()}
        for entry in snapshot["addresses"]:
            ip = address_ip(entry["cidr"])
            if ip in wanted_ips and entry["index"] != own_index:
                raise BridgeError("addresses: %s is already on link %s" % (
                    wanted_ips[ip], by_index.get(entry["index"], "#%s" % entry["index"])))
    if desired["ports"]:
        missing = [port for port in desired["ports"] if port not in links]
        if missing:
            raise BridgeError("ports: %s does not exist%s" % (
                ", ".join(missing), " in netns %s" % desired["netns"] if desired["netns"] else ""))
        for port in desired["ports"]:
            if links[port].get("kind") == "bridge":
                raise BridgeError("ports: %s is a bridge; a bridge cannot be a port of another bridge" % port)

    if current is None:
        actions.append({"op": "create", "text": "create bridge %s" % name})
        cur = {"addresses": [], "mtu": None, "hwaddr": None, "stp": False, "forward_delay": None, "up": False, "ports": []}
    else:
        cur = current
    managed = [key for key in PROPERTIES if desired[key] is not None]
    before = {"state": "present" if current else "absent"}
    after = {"state": "present"}
    for key in managed:
        if current is not None:
            before[key] = current[key]
    after.update({key: cur[key] for key in managed})

    if desired["mtu"] is not None and desired["mtu"] != cur["mtu"]:
        actions.append({"op": "mtu", "value": desired["mtu"], "text": "set mtu %d" % desired["mtu"]})
        after["mtu"] = desired["mtu"]
    if desired["hwaddr"] is not None and desired["hwaddr"] != cur["hwaddr"]:
        actions.append({"op": "hwaddr", "value": desired["hwaddr"], "text": "set hwaddr %s" % desired["hwaddr"]})
        after["hwaddr"] = desired["hwaddr"]
    # The kernel checks forward_delay against the STP state it has at that moment: turn STP off
    # before a short delay is set, and set the delay before STP is turned on.
    stp_change = desired["stp"] is not None and desired["stp"] != cur["stp"]
    delay_change = desired["forward_delay"] is not None and desired["forward_delay"] != cur["forward_delay"]
    if delay_change and not stp_change and cur["stp"] and not (
            STP_FORWARD_DELAY_MIN <= desired["forward_delay"] <= STP_FORWARD_DELAY_MAX):
        raise BridgeError("forward_delay: %s is out of range while stp is on: the kernel accepts %d to %d seconds"
                          % (desired["forward_delay"], STP_FORWARD_DELAY_MIN, STP_FORWARD_DELAY_MAX))
    stp_action = {"op": "stp", "value": desired["stp"], "text": "set stp %s" % ("on" if desired["stp"] else "off")}
    delay_action = {"op": "forward_delay", "value": desired["forward_delay"],
                    "text": "set forward_delay %s s" % desired["forward_delay"]}
    if stp_change and desired["stp"] is False:
        actions.append(stp_action)
        after["stp"] = False
    if delay_change:
        actions.append(delay_action)
        after["forward_delay"] = desired["forward_delay"]
    if stp_change and desired["stp"]:
        if not delay_change and cur["forward_delay"] is not None and not (
                STP_FORWARD_DELAY_MIN <= cur["forward_delay"] <= STP_FORWARD_DELAY_MAX):
            raise BridgeError("stp: cannot turn STP on while forward_delay is %s s; set forward_delay to %d-%d seconds"
                              % (cur["forward_delay"], STP_FORWARD_DELAY_MIN, STP_FORWARD_DELAY_MAX))
        actions.append(stp_action)
        after["stp"] = True

    if desired["addresses"] is not None:
        have = list(cur["addresses"])
        wanted = desired["addresses"]
        wanted_ips = {address_ip(cidr) for cidr in wanted}
        remove = [cidr for cidr in have if cidr not in wanted and (
            desired["addresses_mode"] == "exact" or address_ip(cidr) in wanted_ips)]
        add = [cidr for cidr in wanted if cidr not in have]
        for cidr in remove:
            actions.append({"op": "addr_del", "value": cidr, "text": "remove address %s" % cidr})
        for cidr in add:
            actions.append({"op": "addr_add", "value": cidr, "text": "add address %s" % cidr})
        after["addresses"] = sort_addresses([cidr for cidr in have if cidr not in remove] + add)
    if desired["ports"] is not None:
        have = list(cur["ports"])
        remove = [port for port in have if port not in desired["ports"]] if desired["ports_mode"] == "exact" else []
        add = [port for port in desired["ports"] if port not in have]
        for port in remove:
            actions.append({"op": "port_del", "value": port, "text": "release port %s" % port})
        for port in add:
            actions.append({"op": "port_add", "value": port, "text": "add port %s" % port})
        after["ports"] = sorted(set(have) - set(remove) | set(add))
    if desired["up"] != cur["up"]:
        actions.append({"op": "up", "value": desired["up"], "text": "set %s" % ("up" if desired["up"] else "down")})
        after["up"] = desired["up"]
    if current is None:
        before = {"state": "absent"}
    return {"actions": actions, "before": before, "after": after}


# ---------------------------------------------------------------------------------------------
# The kernel side.

def _attr(msg, name, default=None):
    value = msg.get_attr(name)
    return default if value is None else value


def read_snapshot(ipr, name: str) -> dict:
    """Links, global addresses and the bridge ``name`` (or None) of the namespace ``ipr`` works in."""
    links = {}
    by_index = {}
    for msg in ipr.get_links():
        ifname = msg.get_attr("IFLA_IFNAME")
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        entry = {"index": msg["index"], "kind": kind, "master": msg.get_attr("IFLA_MASTER"), "msg": msg}
        links[ifname] = entry
        by_index[msg["index"]] = ifname
    addresses = []
    for msg in ipr.get_addr():
        if msg["scope"] != 0:  # global scope only: no link-local, no host (lo)
            continue
        local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if local is None:
            continue
        cidr = ipaddress.ip_interface("%s/%d" % (local, msg["prefixlen"])).with_prefixlen
        addresses.append({"index": msg["index"], "cidr": cidr})
    bridge = None
    link = links.get(name)
    if link is not None and link["kind"] == "bridge":
        msg = link["msg"]
        data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        bridge = {
            "addresses": sort_addresses([a["cidr"] for a in addresses if a["index"] == link["index"]]),
            "mtu": msg.get_attr("IFLA_MTU"),
            "hwaddr": (msg.get_attr("IFLA_ADDRESS") or "").lower() or None,
            "stp": bool(data.get_attr("IFLA_BR_STP_STATE")) if data is not None else False,
            "forward_delay": centiseconds_to_seconds(data.get_attr("IFLA_BR_FORWARD_DELAY")) if data is not None else None,
            "up": bool(msg["flags"] & IFF_UP),
            "operstate": msg.get_attr("IFLA_OPERSTATE"),
            "ports": sorted(ifname for ifname, info in links.items() if info["master"] == link["index"]),
        }
    for entry in links.values():
        entry.pop("msg", None)
    return {"links": links, "addresses": addresses, "bridge": bridge}


def describe(name: str, netns, snapshot: dict) -> dict:
    """The RV(bridge) return value."""
    bridge = snapshot.get("bridge")
    result = {"name": name, "netns": netns, "exists": bridge is not None}
    for key in PROPERTIES + ("operstate",):
        result[key] = bridge[key] if bridge else None
    if not bridge:
        result.update(addresses=[], ports=[], up=False)
    return result


def apply_actions(ipr, name: str, actions: list) -> None:
    for action in actions:
        op = action["op"]
        if op == "create":
            ipr.link("add", ifname=name, kind="bridge")
            continue
        index = ipr.link_lookup(ifname=name)[0]
        if op == "delete":
            ipr.link("del", index=index)
        elif op == "mtu":
            ipr.link("set", index=index, mtu=action["value"])
        elif op == "hwaddr":
            ipr.link("set", index=index, address=action["value"])
        elif op == "stp":
            ipr.link("set", index=index, kind="bridge", br_stp_state=1 if action["value"] else 0)
        elif op == "forward_delay":
            ipr.link("set", index=index, kind="bridge", br_forward_delay=seconds_to_centiseconds(action["value"]))
        elif op in ("addr_add", "addr_del"):
            iface = ipaddress.ip_interface(action["value"])
            ipr.addr("add" if op == "addr_add" else "del", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        elif op in ("port_add", "port_del"):
            port = ipr.link_lookup(ifname=action["value"])[0]
            ipr.link("set", index=port, master=index if op == "port_add" else 0)
        elif op == "up":
            ipr.link("set", index=index, state="up" if action["value"] else "down")


def argument_spec() -> dict:
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        addresses=dict(type="list", elements="str"),
        addresses_mode=dict(type="str", choices=["exact", "append"], default="exact"),
        mtu=dict(type="int"),
        hwaddr=dict(type="str"),
        stp=dict(type="bool"),
        forward_delay=dict(type="float"),
        up=dict(type="bool", default=True),
        ports=dict(type="list", elements="str"),
        ports_mode=dict(type="str", choices=["exact", "append"], default="exact"),
        netns=dict(type="str"),
    )


def _open(netns):
    if netns is None:
        return IPRoute()
    return NetNS(netns, flags=0)  # flags=0: never create a missing namespace


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2", reason="to manage bridges through netlink"),
                         exception=PYROUTE2_IMPORT_ERROR)
    try:
        desired = validate_params(module.params)
        netns = desired["netns"]
        if netns is not None and not os.path.isfile(os.path.join(NETNS_DIR, netns)):
            raise BridgeError("netns: network namespace %s does not exist (no %s/%s)" % (netns, NETNS_DIR, netns))
    except BridgeError as exc:
        module.fail_json(msg=str(exc))
    else:
        ipr = _open(netns)
        try:
            module.exit_json(**run(module, ipr, desired))
        finally:
            ipr.close()


def run(module, ipr, desired: dict) -> dict:
    """Plan, then (outside check mode) act; the result of the task."""
    name, netns = desired["name"], desired["netns"]
    snapshot = read_snapshot(ipr, name)
    try:
        result = plan(desired, snapshot)
    except BridgeError as exc:
        module.fail_json(msg=str(exc), bridge=describe(name, netns, snapshot))
        raise  # not reached: fail_json exits
    actions = result["actions"]
    output = {"changed": bool(actions), "actions": [action["text"] for action in actions]}
    if module._diff:
        output["diff"] = {"before": result["before"], "after": result["after"]}
    if not actions:
        output["bridge"] = describe(name, netns, snapshot)
        return output
    if module.check_mode:
        output["bridge"] = _predicted(desired, snapshot, result["after"])
        return output
    done = []
    for action in actions:
        try:
            apply_actions(ipr, name, [action])
        except NetlinkError as exc:
            module.fail_json(msg="%s failed: %s" % (action["text"], exc), changed=bool(done), actions=output["actions"],
                             done=done, bridge=describe(name, netns, read_snapshot(ipr, name)))
        done.append(action["text"])
    after = read_snapshot(ipr, name)
    output["bridge"] = describe(name, netns, after)
    if module._diff:
        output["diff"]["after"] = _managed_view(result["after"], after.get("bridge"))
    return output


def _managed_view(planned_after: dict, bridge) -> dict:
    """The re-read bridge restricted to the keys the plan shows."""
    if bridge is None:
        return {"state": "absent"}
    view = {"state": "present"}
    for key in planned_after:
        if key != "state":
            view[key] = bridge[key]
    return view


def _predicted(desired: dict, snapshot: dict, after: dict) -> dict:
    """RV(bridge) as check mode predicts it."""
    if after.get("state") == "absent":
        return describe(desired["name"], desired["netns"], {"bridge": None})
    result = describe(desired["name"], desired["netns"], snapshot)
    result["exists"] = True
    for key in PROPERTIES:
        if key in after:
            result[key] = after[key]
    return result
