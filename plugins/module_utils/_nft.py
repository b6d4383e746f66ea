# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The nat module: one nftables table, validated, rendered, compared and applied in one transaction.

The pure part (``validate``, ``build_model``, ``render_table``, ``model_from_json``) needs no nft and
is unit tested; ``NftRunner`` is the only code that runs ``nft``; ``main`` plans, then acts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._tool import ToolError

FAMILY = "inet"
TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
NETNS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
# Interface names: what the kernel allows minus everything that could end or escape an nft string.
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.+@-]{1,15}\Z")
NETNS_DIR = "/var/run/netns"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

# Chains in the order they are written: name, type, hook, priority, policy.
CHAINS = (
    ("prerouting", "nat", "prerouting", -100, "accept"),
    ("output", "nat", "output", -100, "accept"),
    ("postrouting", "nat", "postrouting", 100, "accept"),
    ("forward", "filter", "forward", 0, "accept"),
)

ARGUMENT_SPEC = dict(
    table=dict(type="str", default="lxcfleet"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    netns=dict(type="str"),
    masquerade=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            source=dict(type="str", required=True),
            out_interface=dict(type="str"),
        ),
    ),
    forward_bridges=dict(type="list", elements="str", default=[]),
    port_forwards=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            proto=dict(type="str", default="tcp", choices=["tcp", "udp"]),
            port=dict(type="raw", required=True),
            host_address=dict(type="str"),
            dest=dict(type="str", required=True),
            dest_port=dict(type="int"),
        ),
    ),
    ip_forward=dict(type="bool"),
)


class NatError(Exception):
    """Bad input; the message starts with the option's name."""


class NftError(ToolError):
    """nft (or sysctl) failed."""


# ------------------------------------------------------------------ validation


def _ifname(value, option: str) -> str:
    if not isinstance(value, str) or not IFNAME_RE.match(value) or value in (".", ".."):
        raise NatError("%s: %r is not an interface name nft can match: 1-15 characters of letters, digits, "
                       "'_', '.', '-', '+', '@'" % (option, value))
    return value


def _port(value, option: str) -> tuple:
    """A port or a range: returns (low, high)."""
    if isinstance(value, bool):
        raise NatError("%s: %r is not a port" % (option, value))
    if isinstance(value, int):
        parts = [value]
    else:
        text = str(value).strip()
        pieces = text.split("-")
        if len(pieces) not in (1, 2) or not all(p.strip().isdigit() for p in pieces):
            raise NatError("%s: %r is neither a port (1-65535) nor a range like 8000-8010" % (option, value))
        parts = [int(p) for p in pieces]
    for number in parts:
        if not 1 <= number <= 65535:
            raise NatError("%s: port %d is out of range 1-65535" % (option, number))
    low, high = parts[0], parts[-1]
    if low > high:
        raise NatError("%s: range %d-%d is empty: the first port must not be above the last" % (option, low, high))
    return (low, high)


def _address(value, option: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise NatError("%s: %r is not an IPv4 address" % (option, value)) from None


def _network(value, option: str) -> ipaddress.IPv4Network:
    text = str(value).strip()
    try:
        return ipaddress.IPv4Network(text)
    except ValueError:
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            raise NatError("%s: %r is not an IPv4 network in CIDR form like 10.0.3.0/24" % (option, value)) from None
        raise NatError("%s: %s has host bits set; the network is %s" % (option, text, net)) from None


def _port_text(ports: tuple) -> str:
    return str(ports[0]) if ports[0] == ports[1] else "%d-%d" % ports


def validate(params: dict) -> dict:
    """Check every option and return the normalised, sorted spec. Raises NatError naming the option."""
    table = params.get("table")
    if not isinstance(table, str) or not TABLE_RE.match(table):
        raise NatError("table: %r is not a table name: a letter, then up to 63 letters, digits or '_'" % (table,))
    netns = params.get("netns")
    if netns is not None and (not NETNS_RE.match(netns) or netns in (".", "..")):
        raise NatError("netns: %r is not a network namespace name (no '/', no spaces)" % (netns,))

    masquerade = []
    seen_nets = {}
    for i, entry in enumerate(params.get("masquerade") or []):
        opt = "masquerade[%d]" % i
        net = _network(entry.get("source"), opt + ".source")
        if net in seen_nets:
            raise NatError("%s.source: %s is already given in masquerade[%d]" % (opt, net, seen_nets[net]))
        seen_nets[net] = i
        out = entry.get("out_interface")
        if out is not None:
            out = _ifname(out, opt + ".out_interface")
        masquerade.append({"source": net, "out_interface": out})

    bridges = []
    for i, name in enumerate(params.get("forward_bridges") or []):
        name = _ifname(name, "forward_bridges[%d]" % i)
        if name in bridges:
            raise NatError("forward_bridges[%d]: %s is listed twice" % (i, name))
        bridges.append(name)

    forwards = []
    for i, entry in enumerate(params.get("port_forwards") or []):
        opt = "port_forwards[%d]" % i
        proto = entry.get("proto") or "tcp"
        if proto not in ("tcp", "udp"):
            raise NatError("%s.proto: %r is not tcp or udp" % (opt, proto))
        ports = _port(entry.get("port"), opt + ".port")
        host = entry.get("host_address")
        if host is not None:
            host = _address(host, opt + ".host_address")
            if host in LOOPBACK:
                raise NatError("%s.host_address: %s is a loopback address; the kernel does not route 127.0.0.0/8 "
                               "to a container, leave host_address out to forward every local address" % (opt, host))
        dest = _address(entry.get("dest"), opt + ".dest")
        if not any(dest in m["source"] for m in masquerade):
            raise NatError("%s.dest: %s is not inside a managed network (masquerade sources: %s)"
                           % (opt, dest, ", ".join(str(m["source"]) for m in masquerade) or "none"))
        dest_port = entry.get("dest_port")
        if dest_port is not None:
            if ports[0] != ports[1]:
                raise NatError("%s.dest_port: not allowed with the port range %s; a range is forwarded to the same "
                               "ports on the destination" % (opt, _port_text(ports)))
            _port(dest_port, opt + ".dest_port")
        for j, other in enumerate(forwards):
            same_host = host is None or other["host_address"] is None or host == other["host_address"]
            if other["proto"] == proto and same_host and ports[0] <= other["ports"][1] and other["ports"][0] <= ports[1]:
                raise NatError("%s.port: %s %s%s overlaps port_forwards[%d] (%s %s%s)" % (
                    opt, proto, _port_text(ports), " on %s" % host if host else "", other["index"], other["proto"],
                    _port_text(other["ports"]), " on %s" % other["host_address"] if other["host_address"] else ""))
        forwards.append({"index": i, "proto": proto, "ports": ports, "host_address": host, "dest": dest,
                         "dest_port": dest_port})

    masquerade.sort(key=lambda m: (int(m["source"].network_address), m["source"].prefixlen))
    forwards.sort(key=lambda f: (f["proto"], f["ports"], int(f["host_address"] or 0)))
    return {"table": table, "netns": netns, "masquerade": masquerade, "forward_bridges": sorted(bridges),
            "port_forwards": forwards}


# ------------------------------------------------------------------ the model: chains of canonical rule texts


def _dnat_rule(fwd: dict, chain: str) -> str:
    words = []
    if fwd["host_address"] is not None:
        words.append("ip daddr %s" % fwd["host_address"])
    else:
        if chain == "output":
            words.append("ip daddr != 127.0.0.0/8")
        words.append("fib daddr type local")
    words.append("%s dport %s" % (fwd["proto"], _port_text(fwd["ports"])))
    target = str(fwd["dest"])
    if fwd["dest_port"] is not None:
        target += ":%d" % fwd["dest_port"]
    words.append("dnat ip to %s" % target)
    return " ".join(words)


def build_model(spec: dict) -> dict:
    """The desired table: {chain name: {"type", "hook", "prio", "policy", "rules": [canonical rule text]}}."""
    model = {name: {"type": ctype, "hook": hook, "prio": prio, "policy": policy, "rules": []}
             for name, ctype, hook, prio, policy in CHAINS}
    for fwd in spec["port_forwards"]:
        model["prerouting"]["rules"].append(_dnat_rule(fwd, "prerouting"))
        model["output"]["rules"].append(_dnat_rule(fwd, "output"))
    for masq in spec["masquerade"]:
        net = masq["source"]
        rule = "ip saddr %s ip daddr != %s" % (net, net)
        if masq["out_interface"]:
            rule += ' oifname "%s"' % masq["out_interface"]
        model["postrouting"]["rules"].append(rule + " masquerade")
    for masq in spec["masquerade"]:
        net = masq["source"]
        if any(f["dest"] in net for f in spec["port_forwards"]):
            # Hairpin: a container reaching a forward of its own network gets the reply through the host.
            model["postrouting"]["rules"].append("ip saddr %s ip daddr %s ct status dnat masquerade" % (net, net))
    for bridge in spec["forward_bridges"]:
        model["forward"]["rules"].append('iifname "%s" accept' % bridge)
        model["forward"]["rules"].append('oifname "%s" ct state established,related accept' % bridge)
    if spec["port_forwards"]:
        model["forward"]["rules"].append("ct status dnat accept")
    return model


def summary(spec: dict) -> dict:
    """The ``rules`` return value: the normalised entries, in table order."""
    return {
        "masquerade": [{"source": str(m["source"]), "out_interface": m["out_interface"]} for m in spec["masquerade"]],
        "forward_bridges": list(spec["forward_bridges"]),
        "port_forwards": [{
            "proto": f["proto"], "port": _port_text(f["ports"]),
            "host_address": str(f["host_address"]) if f["host_address"] is not None else None,
            "dest": str(f["dest"]), "dest_port": f["dest_port"],
        } for f in spec["port_forwards"]],
    }


def render_table(table: str, model: dict | None) -> str:
    """nft text of the table in a fixed order; '' when there is no table."""
    if model is None:
        return ""
    lines = ["table %s %s {" % (FAMILY, table)]
    first = True
    for name, chain in model.items():
        if name == "":
            continue
        if not first:
            lines.append("")
        first = False
        lines.append("\tchain %s {" % name)
        if chain.get("hook") is not None:
            lines.append("\t\ttype %s hook %s priority %d; policy %s;"
                         % (chain["type"], chain["hook"], chain["prio"], chain["policy"]))
        for rule in chain["rules"]:
            lines.append("\t\t" + rule)
        lines.append("\t}")
    for extra in model.get("", {}).get("rules", []):
        lines.append("\t# " + extra)
    lines.append("}")
    return "\n".join(lines) + "\n"


def transaction(table: str, model: dict) -> str:
    """One nft -f file: create-if-missing, delete, recreate. nft applies it as one transaction."""
    return "table %s %s {}\ndelete table %s %s\n%s" % (FAMILY, table, FAMILY, table, render_table(table, model))


# ------------------------------------------------------------------ reading nft -j into the same model


def _value(value) -> str:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, str)):
        text = str(value)
        if isinstance(value, str) and not re.match(r"^[A-Za-z0-9_.:/-]+$", text):
            raise ValueError(value)
        return text
    if isinstance(value, list):
        return ",".join(_value(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "range" and isinstance(inner, list) and len(inner) == 2:
            return "%s-%s" % (_value(inner[0]), _value(inner[1]))
        if key == "prefix" and isinstance(inner, dict):
            return "%s/%s" % (_value(inner["addr"]), _value(inner["len"]))
        if key == "set" and isinstance(inner, list):
            return ",".join(_value(v) for v in inner)
    raise ValueError(value)


def _left(expr) -> tuple:
    """(text, quote) of the left side of a match; quote is True for string-valued keys."""
    (key, inner), = expr.items()
    if key == "payload" and set(inner) == {"protocol", "field"}:
        return "%s %s" % (inner["protocol"], inner["field"]), False
    if key == "meta" and set(inner) == {"key"} and inner["key"] in ("iifname", "oifname"):
        return inner["key"], True
    if key == "meta" and set(inner) == {"key"}:
        return "meta %s" % inner["key"], False
    if key == "ct" and set(inner) == {"key"}:
        return "ct %s" % inner["key"], False
    if key == "fib" and set(inner) == {"result", "flags"}:
        flags = inner["flags"] if isinstance(inner["flags"], list) else [inner["flags"]]
        return "fib %s %s" % (" . ".join(flags), inner["result"]), False
    raise ValueError(expr)


def _statement(expr: dict) -> str:
    if not isinstance(expr, dict) or len(expr) != 1:
        raise ValueError(expr)
    (key, inner), = expr.items()
    if key == "match":
        left, quote = _left(inner["left"])
        right = _value(inner["right"])
        if quote:
            right = '"%s"' % right
        op = inner.get("op", "==")
        if op in ("==", "in"):
            return "%s %s" % (left, right)
        if op == "!=":
            return "%s != %s" % (left, right)
        raise ValueError(expr)
    if key in ("accept", "drop", "masquerade") and inner is None:
        return key
    if key == "dnat" and isinstance(inner, dict) and set(inner) <= {"family", "addr", "port"} and "addr" in inner:
        text = "dnat %s to %s" % (inner.get("family", "ip"), _value(inner["addr"]))
        if "port" in inner:
            text += ":%s" % _value(inner["port"])
        return text
    raise ValueError(expr)


def rule_text(exprs: list) -> str:
    """Canonical text of one rule from its nft -j expressions; unknown expressions give a marker that never
    equals a rule this module writes, so a hand-edited table is rewritten rather than misread."""
    try:
        return " ".join(_statement(e) for e in exprs)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "# not written by this module: %s" % json.dumps(exprs, sort_keys=True)


def model_from_json(data: dict, table: str) -> dict | None:
    """The live table from ``nft -j list table`` output, or None when the table is not in it."""
    model = None
    foreign = []
    for obj in data.get("nftables", []):
        if not isinstance(obj, dict) or len(obj) != 1:
            continue
        (kind, body), = obj.items()
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        if body.get("family") != FAMILY or body.get("table", body.get("name")) != table:
            continue
        if kind == "table":
            model = {} if model is None else model
        elif kind == "chain":
            model = {} if model is None else model
            model[body["name"]] = {"type": body.get("type"), "hook": body.get("hook"), "prio": body.get("prio"),
                                   "policy": body.get("policy"), "rules": []}
        elif kind == "rule":
            model = {} if model is None else model
            chain = model.setdefault(body["chain"], {"type": None, "hook": None, "prio": None, "policy": None,
                                                     "rules": []})
            chain["rules"].append(rule_text(body.get("expr", [])))
        else:
            foreign.append("%s %s" % (kind, body.get("name", "")))
    if model is not None and foreign:
        # Sets, maps, counters ... the module never writes: the table differs and is rewritten.
        model[""] = {"type": None, "hook": None, "prio": None, "policy": None,
                     "rules": ["not written by this module: %s" % f for f in foreign]}
    return model


def same(live: dict | None, desired: dict | None) -> bool:
    """Tables are equal when the same chains with the same headers hold the same rules in the same order."""
    if live is None or desired is None:
        return live is desired
    return live == desired


def rule_list(model: dict | None) -> list:
    """Flat "chain: rule" list, for the summary of what differs."""
    if not model:
        return []
    return ["%s: %s" % (name or "table", rule) for name, chain in model.items() for rule in chain["rules"]]


# ------------------------------------------------------------------ nft and ip_forward on the host or in a netns


class NftRunner:
    def __init__(self, module: AnsibleModule, netns: str | None):
        self.module = module
        self.netns = netns
        nft = module.get_bin_path("nft", required=True)
        self.prefix = [nft]
        if netns is not None:
            ip = module.get_bin_path("ip", required=True)
            self.prefix = [ip, "netns", "exec", netns, nft]

    def _run(self, args: list, data=None, what="nft"):
        cmd = self.prefix + args
        rc, out, err = self.module.run_command(cmd, data=data, binary_data=True,
                                               environ_update={"LANG": "C", "LC_ALL": "C"})
        if rc != 0:
            raise NftError("%s failed (rc=%d): %s" % (what, rc, err.strip() or out.strip()), cmd, rc, out, err)
        return out

    def read(self, table: str) -> dict | None:
        tables = json.loads(self._run(["-j", "list", "tables"], what="nft list tables") or "{}")
        present = any(o.get("table", {}).get("family") == FAMILY and o.get("table", {}).get("name") == table
                      for o in tables.get("nftables", []) if isinstance(o, dict))
        if not present:
            return None
        data = json.loads(self._run(["-j", "list", "table", FAMILY, table], what="nft list table"))
        return model_from_json(data, table)

    def apply(self, text: str) -> None:
        self._run(["-f", "/dev/stdin"], data=text.encode("utf-8"), what="nft -f")

    def delete(self, table: str) -> None:
        self._run(["delete", "table", FAMILY, table], what="nft delete table")

    def _sysctl(self, args: list) -> str:
        ip = self.module.get_bin_path("ip", required=True)
        sysctl = self.module.get_bin_path("sysctl", required=True)
        cmd = [ip, "netns", "exec", self.netns, sysctl] + args
        rc, out, err = self.module.run_command(cmd, environ_update={"LANG": "C", "LC_ALL": "C"})
        if rc != 0:
            raise NftError("sysctl failed (rc=%d): %s" % (rc, err.strip()), cmd, rc, out, err)
        return out

    def ip_forward(self) -> bool:
        if self.netns is not None:
            return self._sysctl(["-n", "net.ipv4.ip_forward"]).strip() == "1"
        with open(IP_FORWARD) as f:
            return f.read().strip() == "1"

    def set_ip_forward(self, value: bool) -> None:
        if self.netns is not None:
            self._sysctl(["-q", "-w", "net.ipv4.ip_forward=%d" % int(value)])
            return
        with open(IP_FORWARD, "w") as f:
            f.write("1\n" if value else "0\n")


# ------------------------------------------------------------------ the module


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        spec = validate(p)
    except NatError as exc:
        module.fail_json(msg=str(exc))
    if p["netns"] is not None and not os.path.exists(os.path.join(NETNS_DIR, p["netns"])):
        module.fail_json(msg="netns: no network namespace named %s in %s" % (p["netns"], NETNS_DIR))
    table = spec["table"]
    runner = NftRunner(module, p["netns"])
    result = dict(changed=False, table="", rules=summary(spec) if p["state"] == "present" else {},
                  ip_forward=None, actions=[])
    try:
        # Plan.
        live = runner.read(table)
        desired = build_model(spec) if p["state"] == "present" else None
        forward_now = runner.ip_forward()
        want_forward = forward_now
        actions = []
        if not same(live, desired):
            actions.append("delete table" if desired is None else ("replace table" if live is not None else "create table"))
        if p["state"] == "present" and p["ip_forward"] is not None and p["ip_forward"] != forward_now:
            want_forward = p["ip_forward"]
            actions.append("set ip_forward=%d" % int(want_forward))
        before, after = render_table(table, live), render_table(table, desired)
        result.update(changed=bool(actions), actions=actions, table=after, ip_forward=want_forward)
        if module._diff:
            diff = [dict(before=before, after=after, before_header="table %s %s" % (FAMILY, table),
                         after_header="table %s %s" % (FAMILY, table))]
            if want_forward != forward_now:
                diff.append(dict(before="net.ipv4.ip_forward = %d\n" % forward_now,
                                 after="net.ipv4.ip_forward = %d\n" % want_forward))
            result["diff"] = diff
        if module.check_mode or not actions:
            module.exit_json(**result)
        # Act.
        if desired is None:
            if live is not None:
                runner.delete(table)
        elif not same(live, desired):
            runner.apply(transaction(table, desired))
        if want_forward != forward_now:
            runner.set_ip_forward(want_forward)
        # Re-read: the result is what the kernel holds now.
        now = runner.read(table)
        if not same(now, desired):
            module.fail_json(msg="table %s %s differs from the one written after nft -f; live rules: %s"
                             % (FAMILY, table, "; ".join(rule_list(now))), **result)
        result["ip_forward"] = runner.ip_forward()
    except NftError as exc:
        result.update(exc.to_result())
        module.fail_json(msg=exc.msg, **result)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="nat: %s" % exc, **result)
    module.exit_json(**result)
