# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""dnsmasq for one bridge: validation, rendering, planning and applying.

``validate_params()``, the ``render_*()`` functions and ``plan()`` are pure (unit-tested); only
``read_current()`` and ``apply()`` touch files, processes and systemctl.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic

IFNAMSIZ = 16
DEFAULT_CONFIG_DIR = "/etc/lxcfleet/dnsmasq"
DEFAULT_STATE_DIR = "/var/lib/lxcfleet/dnsmasq"
DEFAULT_UNIT_DIR = "/etc/systemd/system"
UNIT_PREFIX = "lxcfleet-dnsmasq@"
STOP_TIMEOUT = 10.0
HOSTSDIR_MODE = 0o755

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_LEASE_TIME_RE = re.compile(r"^([0-9]+[smhdw]?|infinite)\Z")


class DnsmasqError(Exception):
    """Bad input or a state that forbids the change. The message starts with the option's name."""


def validate_ifname(name, option="bridge"):
    if not name:
        raise DnsmasqError("%s must not be empty" % option)
    if len(name.encode("utf-8")) >= IFNAMSIZ:
        raise DnsmasqError("%s %r is too long: an interface name has at most %d characters" % (option, name, IFNAMSIZ - 1))
    if name in (".", "..") or any(ch in name for ch in "/:,") or any(ch.isspace() for ch in name):
        raise DnsmasqError("%s %r is not a valid interface name: no '/', ':', ',' or whitespace" % (option, name))


def normalize_mac(value, option) -> str:
    text = str(value).strip().lower().replace("-", ":")
    if not _MAC_RE.match(text):
        raise DnsmasqError("%s: %r is not a MAC address like 02:00:00:aa:bb:cc" % (option, value))
    if int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise DnsmasqError("%s: %r is not a unicast MAC address" % (option, value))
    return text


def validate_hostname(value, option) -> str:
    text = str(value or "")
    if not text or not _LABEL_RE.match(text):
        raise DnsmasqError("%s: %r is not a host name (letters, digits and '-', 1 to 63 characters)" % (option, value))
    return text.lower()


def validate_domain(value):
    if value is None:
        return None
    text = str(value).strip().strip(".").lower()
    if not text or len(text) > 253 or not all(_LABEL_RE.match(label) for label in text.split(".")):
        raise DnsmasqError("domain: %r is not a DNS domain like lxc or fleet.example" % (value,))
    return text


def _ip_in(value, network, option):
    try:
        ip = ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise DnsmasqError("%s: %r is not an IPv4 address" % (option, value))
    if ip not in network:
        raise DnsmasqError("%s: %s is not inside the network %s of address" % (option, ip, network))
    if network.prefixlen < 31 and ip in (network.network_address, network.broadcast_address):
        raise DnsmasqError("%s: %s is the network or broadcast address of %s" % (option, ip, network))
    return ip


def validate_params(params: dict) -> dict:
    """Check every option; return the desired state with canonical values. Raises DnsmasqError."""
    validate_ifname(params.get("bridge"))
    state = params.get("state") or "present"
    desired = {
        "bridge": params["bridge"], "state": state,
        "config_dir": params.get("config_dir") or DEFAULT_CONFIG_DIR,
        "state_dir": params.get("state_dir") or DEFAULT_STATE_DIR,
        "unit_dir": params.get("unit_dir") or DEFAULT_UNIT_DIR,
        "service": params.get("service"),
        "hostsdir": bool(params.get("hostsdir")),
    }
    for option in ("config_dir", "state_dir", "unit_dir"):
        if not os.path.isabs(desired[option]) or any(ch in desired[option] for ch in "\n\r"):
            raise DnsmasqError("%s: %r must be an absolute path" % (option, desired[option]))
    if state == "absent":
        return desired
    address = params.get("address")
    if not address:
        raise DnsmasqError("address: required with state=present (the bridge's IPv4 address in CIDR form, like 10.0.3.1/24)")
    text = str(address).strip()
    if "/" not in text:
        raise DnsmasqError("address: %r needs a prefix length, for example %s/24" % (address, text))
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError as exc:
        raise DnsmasqError("address: %r is not an IPv4 address in CIDR form: %s" % (address, exc))
    network = iface.network
    if network.prefixlen > 30:
        raise DnsmasqError("address: %s leaves no room for DHCP clients (a /30 or larger network is needed)" % (address,))
    _ip_in(iface.ip, network, "address")
    desired["address"] = iface.with_prefixlen
    desired["listen"] = str(iface.ip)
    desired["network"] = str(network)
    dhcp_range = params.get("dhcp_range")
    if dhcp_range is not None:
        start = _ip_in(dhcp_range.get("start"), network, "dhcp_range.start")
        end = _ip_in(dhcp_range.get("end"), network, "dhcp_range.end")
        if start > end:
            raise DnsmasqError("dhcp_range: start %s is after end %s" % (start, end))
        if start <= iface.ip <= end:
            raise DnsmasqError("dhcp_range: %s-%s contains the bridge's own address %s" % (start, end, iface.ip))
        lease_time = str(dhcp_range.get("lease_time") or "1h").strip()
        if not _LEASE_TIME_RE.match(lease_time):
            raise DnsmasqError("dhcp_range.lease_time: %r is not a lease time like 3600, 45m, 12h or infinite" % (lease_time,))
        dhcp_range = {"start": str(start), "end": str(end), "lease_time": lease_time}
    desired["dhcp_range"] = dhcp_range
    leases = []
    seen = {"ip": {}, "mac": {}, "name": {}}
    for index, item in enumerate(params.get("static_leases") or []):
        option = "static_leases[%d]" % index
        if not isinstance(item, dict):
            raise DnsmasqError("%s: must be a dict with name, ip and optionally mac" % option)
        unknown = set(item) - {"name", "mac", "ip"}
        if unknown:
            raise DnsmasqError("%s: unknown keys %s (use name, mac, ip)" % (option, ", ".join(sorted(unknown))))
        name = validate_hostname(item.get("name"), option + ".name")
        ip = _ip_in(item.get("ip"), network, option + ".ip")
        if ip == iface.ip:
            raise DnsmasqError("%s.ip: %s is the bridge's own address" % (option, ip))
        mac = None if item.get("mac") in (None, "") else normalize_mac(item["mac"], option + ".mac")
        lease = {"name": name, "mac": mac, "ip": str(ip)}
        for key in ("ip", "mac", "name"):
            if lease[key] is None:
                continue
            if lease[key] in seen[key]:
                raise DnsmasqError("%s.%s: %s is already used by static_leases[%d]" % (option, key, lease[key], seen[key][lease[key]]))
            seen[key][lease[key]] = index
        leases.append(lease)
    desired["static_leases"] = leases
    desired["domain"] = validate_domain(params.get("domain"))
    servers = []
    for server in params.get("upstream_servers") or []:
        text = str(server).strip()
        try:
            ipaddress.ip_address(text.split("#", 1)[0])
        except ValueError:
            raise DnsmasqError("upstream_servers: %r is not an IP address (optionally with #port)" % (server,))
        servers.append(text)
    desired["upstream_servers"] = servers
    desired["dhcp_authoritative"] = True if params.get("dhcp_authoritative") is None else bool(params["dhcp_authoritative"])
    return desired


def paths(desired: dict) -> dict:
    bridge = desired["bridge"]
    return {
        "config": os.path.join(desired["config_dir"], bridge + ".conf"),
        "dhcp_hosts": os.path.join(desired["config_dir"], bridge + ".dhcp-hosts"),
        "hosts": os.path.join(desired["config_dir"], bridge + ".hosts"),
        "leases": os.path.join(desired["state_dir"], bridge + ".leases"),
        "pid": os.path.join(desired["state_dir"], bridge + ".pid"),
        "unit": os.path.join(desired["unit_dir"], unit_name(bridge)),
        "hostsdir": os.path.join(desired["config_dir"], bridge + ".hosts.d"),
    }


def unit_name(bridge: str) -> str:
    return "%s%s.service" % (UNIT_PREFIX, bridge)


def render_config(desired: dict) -> str:
    """The dnsmasq config file of the bridge."""
    p = paths(desired)
    lines = [
        "# Managed by lxcfleet.lxc.dnsmasq: DHCP and DNS for bridge %s. Local changes are overwritten." % desired["bridge"],
        "interface=%s" % desired["bridge"],
        "bind-interfaces",
        "except-interface=lo",
        "listen-address=%s" % desired["listen"],
        "no-hosts",
        "domain-needed",
        "bogus-priv",
        "addn-hosts=%s" % p["hosts"],
        "dhcp-hostsfile=%s" % p["dhcp_hosts"],
    ]
    if desired.get("hostsdir"):
        lines.append("dhcp-hostsdir=%s" % p["hostsdir"])
    lines.append("dhcp-leasefile=%s" % p["leases"])
    rng = desired.get("dhcp_range")
    if rng:
        lines.append("dhcp-range=%s,%s,%s" % (rng["start"], rng["end"], rng["lease_time"]))
    elif desired["static_leases"]:
        network = ipaddress.IPv4Network(desired["network"])
        lines.append("dhcp-range=%s,static,%s" % (network.network_address, network.netmask))
    if desired["dhcp_authoritative"] and (rng or desired["static_leases"]):
        lines.append("dhcp-authoritative")
    if desired["domain"]:
        lines += ["domain=%s" % desired["domain"], "local=/%s/" % desired["domain"], "expand-hosts"]
    if desired["upstream_servers"]:
        lines += ["strict-order", "no-resolv"] + ["server=%s" % server for server in desired["upstream_servers"]]
    else:
        lines.append("no-resolv")
    return "\n".join(lines) + "\n"


def render_dhcp_hosts(desired: dict) -> str:
    """dhcp-hostsfile: one dhcp-host per line (MAC,IP,NAME or NAME,IP), re-read on SIGHUP."""
    lines = []
    for lease in desired["static_leases"]:
        if lease["mac"]:
            lines.append("%s,%s,%s" % (lease["mac"], lease["ip"], lease["name"]))
        else:
            lines.append("%s,%s" % (lease["name"], lease["ip"]))
    return "".join(line + "\n" for line in lines)


def render_hosts(desired: dict) -> str:
    """addn-hosts: the static leases in DNS before any DHCP exchange, re-read on SIGHUP."""
    return "".join("%s %s\n" % (lease["ip"], lease["name"]) for lease in desired["static_leases"])


def render_unit(desired: dict, dnsmasq_bin: str) -> str:
    p = paths(desired)
    return "\n".join([
        "# Managed by lxcfleet.lxc.dnsmasq.",
        "[Unit]",
        "Description=lxcfleet dnsmasq (DHCP and DNS) for bridge %s" % desired["bridge"],
        "After=network.target systemd-networkd.service",
        # At boot the bridge's address may come a moment after this unit starts (bind-interfaces
        # needs it): retry every RestartSec for as long as it takes, never give up.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=forking",
        "PIDFile=%s" % p["pid"],
        "ExecStartPre=%s --test --conf-file=%s" % (dnsmasq_bin, p["config"]),
        "ExecStart=%s --conf-file=%s --pid-file=%s" % (dnsmasq_bin, p["config"], p["pid"]),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def plan(desired: dict, current: dict, dnsmasq_bin: str = "/usr/sbin/dnsmasq") -> dict:
    """Compare the desired files and process with the current ones.

    ``current``: ``{"files": {key: text or None}, "running": bool, "pid": int or None,
    "enabled": bool (systemd only), "hostsdir": None | "notdir" | mode (int)}`` for the keys
    config, dhcp_hosts, hosts (and unit for systemd); ``hostsdir`` is the folder BRIDGE.hosts.d.
    Returns ``{"actions": [{"op", "text", ...}], "files": {key: wanted text or None}}``.
    """
    service = desired["service"]
    p = paths(desired)
    files = current["files"]
    actions = []
    hostsdir = current.get("hostsdir")
    if desired["state"] == "absent":
        if current["running"] or current.get("enabled"):
            actions.append({"op": "stop", "text": "stop dnsmasq for %s" % desired["bridge"]})
        wanted = {key: None for key in files}
        for key in ("config", "dhcp_hosts", "hosts", "unit", "leases", "pid"):
            if files.get(key) is not None:
                actions.append({"op": "remove", "key": key, "text": "remove %s" % p[key]})
        if hostsdir is not None:
            actions.append({"op": "rmtree", "key": "hostsdir", "text": "remove %s and the files in it" % p["hostsdir"]})
        if service == "systemd" and files.get("unit") is not None:
            actions.append({"op": "daemon-reload", "text": "systemctl daemon-reload"})
        return {"actions": actions, "files": wanted}
    wanted = {"config": render_config(desired), "dhcp_hosts": render_dhcp_hosts(desired), "hosts": render_hosts(desired)}
    if service == "systemd":
        wanted["unit"] = render_unit(desired, dnsmasq_bin)
    changed = [key for key in wanted if files.get(key) != wanted[key]]
    if desired["hostsdir"]:
        if hostsdir == "notdir":
            raise DnsmasqError("hostsdir: %s exists and is not a folder" % p["hostsdir"])
        if hostsdir is None:
            actions.append({"op": "mkdir", "key": "hostsdir", "text": "create folder %s (0755)" % p["hostsdir"]})
        elif hostsdir != HOSTSDIR_MODE:
            actions.append({"op": "chmod", "key": "hostsdir", "text": "chmod 0755 %s (was %04o)" % (p["hostsdir"], hostsdir)})
    for key in ("dhcp_hosts", "hosts", "config", "unit"):
        if key in changed:
            actions.append({"op": "write", "key": key, "text": "write %s" % p[key]})
    if "unit" in changed:
        actions.append({"op": "daemon-reload", "text": "systemctl daemon-reload"})
    if service == "systemd" and not current.get("enabled"):
        actions.append({"op": "enable", "text": "systemctl enable %s" % unit_name(desired["bridge"])})
    if service == "none":
        return {"actions": actions, "files": wanted}
    if not current["running"]:
        actions.append({"op": "start", "text": "start dnsmasq for %s" % desired["bridge"]})
    elif "config" in changed or "unit" in changed:
        actions.append({"op": "restart", "text": "restart dnsmasq for %s (config changed)" % desired["bridge"]})
    elif "dhcp_hosts" in changed or "hosts" in changed:
        actions.append({"op": "reload", "text": "reload dnsmasq for %s (SIGHUP: hosts changed)" % desired["bridge"]})
    return {"actions": actions, "files": wanted}


def diff_of(desired: dict, current: dict, wanted: dict) -> list:
    p = paths(desired)
    out = []
    for key in ("config", "dhcp_hosts", "hosts", "unit"):
        if key not in current["files"] and key not in wanted:
            continue
        before = current["files"].get(key)
        after = wanted.get(key)
        if before is None and after is None:
            continue
        out.append({"before_header": p[key], "after_header": p[key], "before": before or "", "after": after or ""})
    hostsdir = current.get("hostsdir")
    if desired["state"] == "present" and desired["hostsdir"] or hostsdir is not None:
        after = "folder, mode %04o\n" % HOSTSDIR_MODE if desired["state"] == "present" and desired["hostsdir"] else ""
        if desired["state"] == "present" and not desired["hostsdir"]:
            after = describe_hostsdir(hostsdir)  # hostsdir=false leaves the folder as it is
        out.append({"before_header": p["hostsdir"], "after_header": p["hostsdir"],
                    "before": describe_hostsdir(hostsdir), "after": after})
    return out


def describe_hostsdir(state) -> str:
    if state is None:
        return ""
    if state == "notdir":
        return "not a folder\n"
    return "folder, mode %04o\n" % state


# ---- what talks to the system -------------------------------------------------------------------

def _read(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _exists(path):
    return "" if os.path.lexists(path) else None


def _is_our_dnsmasq(pid: int, config: str) -> bool:
    """Whether pid is a live (not zombie) dnsmasq started with this config file."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().decode("utf-8", "replace").split("\0")
        with open("/proc/%d/stat" % pid, "r", encoding="utf-8") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return bool(argv) and os.path.basename(argv[0]) == "dnsmasq" and "--conf-file=%s" % config in argv


def process_pid(pid_file: str, config: str):
    """The pid of our dnsmasq: from the pid file, if /proc/PID/cmdline is dnsmasq with this config."""
    text = _read(pid_file)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    return pid if _is_our_dnsmasq(pid, config) else None


def read_hostsdir(path: str):
    """None when missing, "notdir" when something else is there, else the folder's permission bits."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return "notdir"
    return stat.S_IMODE(info.st_mode)


def read_current(module, desired: dict) -> dict:
    p = paths(desired)
    files = {key: _read(p[key]) for key in ("config", "dhcp_hosts", "hosts")}
    current = {"files": files, "running": False, "pid": None, "enabled": False, "hostsdir": read_hostsdir(p["hostsdir"])}
    if desired["state"] == "absent":
        files["leases"] = _exists(p["leases"])
        files["pid"] = _exists(p["pid"])
    if desired["service"] == "systemd" or (desired["state"] == "absent" and os.path.exists(p["unit"])):
        files["unit"] = _read(p["unit"])
        if desired["service"] == "systemd":
            systemctl = module.get_bin_path("systemctl", required=True)
            unit = unit_name(desired["bridge"])
            rc = module.run_command([systemctl, "is-active", "--quiet", unit])[0]
            current["running"] = rc == 0
            rc = module.run_command([systemctl, "is-enabled", "--quiet", unit])[0]
            current["enabled"] = rc == 0
            current["pid"] = process_pid(p["pid"], p["config"])
            return current
    current["pid"] = process_pid(p["pid"], p["config"])
    current["running"] = current["pid"] is not None
    return current


def _write(module, path: str, text: str, mode: int = 0o644):
    write_atomic(module, path, text, mode=mode, make_dirs=True)


def _stop_process(pid: int, config: str):
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _is_our_dnsmasq(pid, config):
            return
        time.sleep(0.05)
    raise DnsmasqError("service: dnsmasq (pid %d) did not exit within %d s of SIGTERM" % (pid, STOP_TIMEOUT))


def _start_process(module, desired, dnsmasq_bin):
    p = paths(desired)
    os.makedirs(desired["state_dir"], mode=0o755, exist_ok=True)
    rc, out, err = module.run_command([dnsmasq_bin, "--conf-file=%s" % p["config"], "--pid-file=%s" % p["pid"]])
    if rc != 0:
        raise DnsmasqError("service: dnsmasq did not start (rc %d): %s" % (rc, (err or out).strip()))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = process_pid(p["pid"], p["config"])
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise DnsmasqError("service: dnsmasq started but no process with pid file %s is running" % p["pid"])


def apply(module, desired: dict, current: dict, result: dict, dnsmasq_bin) -> dict:
    """Carry out the actions; returns flags started/restarted/reloaded/stopped."""
    p = paths(desired)
    service = desired["service"]
    systemctl = module.get_bin_path("systemctl", required=True) if service == "systemd" else None
    unit = unit_name(desired["bridge"])
    flags = {"started": False, "restarted": False, "reloaded": False, "stopped": False}

    def systemctl_run(*args):
        rc, out, err = module.run_command([systemctl] + list(args))
        if rc != 0:
            raise DnsmasqError("service: systemctl %s failed (rc %d): %s" % (" ".join(args), rc, (err or out).strip()))

    for action in result["actions"]:
        op = action["op"]
        if op == "write":
            if action["key"] == "config" and dnsmasq_bin:
                _check_config(module, desired, result["files"]["config"], dnsmasq_bin)
            _write(module, p[action["key"]], result["files"][action["key"]])
        elif op == "remove":
            if os.path.lexists(p[action["key"]]):
                os.unlink(p[action["key"]])
        elif op == "mkdir":
            os.makedirs(p["hostsdir"], mode=HOSTSDIR_MODE, exist_ok=True)
            os.chmod(p["hostsdir"], HOSTSDIR_MODE)
        elif op == "chmod":
            os.chmod(p["hostsdir"], HOSTSDIR_MODE)
        elif op == "rmtree":
            if os.path.isdir(p["hostsdir"]) and not os.path.islink(p["hostsdir"]):
                shutil.rmtree(p["hostsdir"])
            elif os.path.lexists(p["hostsdir"]):
                os.unlink(p["hostsdir"])
        elif op == "daemon-reload":
            systemctl_run("daemon-reload")
        elif op == "enable":
            systemctl_run("enable", unit)
        elif op == "stop":
            if service == "systemd":
                systemctl_run("disable", "--now", unit)
            elif current["pid"]:
                _stop_process(current["pid"], p["config"])
            flags["stopped"] = True
        elif op == "start":
            if service == "systemd":
                os.makedirs(desired["state_dir"], mode=0o755, exist_ok=True)  # lease and pid files
                systemctl_run("start", unit)
            else:
                _start_process(module, desired, dnsmasq_bin)
            flags["started"] = True
        elif op == "restart":
            if service == "systemd":
                os.makedirs(desired["state_dir"], mode=0o755, exist_ok=True)
                systemctl_run("restart", unit)
            else:
                _stop_process(current["pid"], p["config"])
                _start_process(module, desired, dnsmasq_bin)
            flags["restarted"] = True
        elif op == "reload":
            if service == "systemd":
                systemctl_run("reload", unit)
            else:
                os.kill(current["pid"], signal.SIGHUP)
            flags["reloaded"] = True
    return flags


def _check_config(module, desired, text, dnsmasq_bin):
    """dnsmasq --test on the new config before it replaces the old one."""
    folder = desired["config_dir"]
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".check.", suffix=".conf", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        rc, out, err = module.run_command([dnsmasq_bin, "--test", "--conf-file=%s" % tmp])
        if rc != 0:
            raise DnsmasqError("config: dnsmasq --test refused the rendered config: %s" % (err or out).strip())
    finally:
        os.unlink(tmp)


def argument_spec() -> dict:
    return dict(
        bridge=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        address=dict(type="str"),
        dhcp_range=dict(type="dict", options=dict(
            start=dict(type="str", required=True),
            end=dict(type="str", required=True),
            lease_time=dict(type="str", default="1h"),
        )),
        static_leases=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            mac=dict(type="str"),
            ip=dict(type="str", required=True),
        )),
        domain=dict(type="str"),
        upstream_servers=dict(type="list", elements="str", default=[]),
        dhcp_authoritative=dict(type="bool", default=True),
        config_dir=dict(type="path", default=DEFAULT_CONFIG_DIR),
        state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
        unit_dir=dict(type="path", default=DEFAULT_UNIT_DIR),
        service=dict(type="str", choices=["process", "systemd", "none"]),
        hostsdir=dict(type="bool", default=False),
    )


def find_dnsmasq(module) -> str:
    """The dnsmasq binary, or DnsmasqError before any change."""
    found = module.get_bin_path("dnsmasq")
    if not found:
        raise DnsmasqError("service: the dnsmasq binary is not installed (Debian and Ubuntu package dnsmasq-base)")
    return found


def default_service() -> str:
    return "systemd" if os.path.isdir("/run/systemd/system") else "process"


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "present", ("address",))])
    params = dict(module.params)
    params["service"] = params["service"] or default_service()
    try:
        desired = validate_params(params)
        dnsmasq_bin = None
        if desired["state"] == "present":
            dnsmasq_bin = find_dnsmasq(module)
        current = read_current(module, desired)
        result = plan(desired, current, dnsmasq_bin or "/usr/sbin/dnsmasq")
    except DnsmasqError as exc:
        module.fail_json(msg=str(exc))
        return
    actions = result["actions"]
    p = paths(desired)
    output = {
        "changed": bool(actions), "actions": [action["text"] for action in actions], "service": desired["service"],
        "config": result["files"].get("config"), "dhcp_hosts": result["files"].get("dhcp_hosts"),
        "hosts": result["files"].get("hosts"), "unit": result["files"].get("unit"),
        "paths": {key: p[key] for key in ("config", "dhcp_hosts", "hosts", "leases", "pid")},
        "pid": current["pid"], "started": False, "restarted": False, "reloaded": False, "stopped": False,
    }
    if desired["state"] == "present" and desired["service"] == "systemd":
        output["paths"]["unit"] = p["unit"]
    output["hostsdir"] = p["hostsdir"] if desired["state"] == "present" and desired["hostsdir"] else None
    if output["hostsdir"]:
        output["paths"]["hostsdir"] = p["hostsdir"]
    if module._diff:
        output["diff"] = diff_of(desired, current, result["files"])
    if not actions or module.check_mode:
        for action in actions:
            if action["op"] in ("start", "restart", "reload", "stop"):
                output[{"start": "started", "restart": "restarted", "reload": "reloaded", "stop": "stopped"}[action["op"]]] = True
        if actions and any(action["op"] in ("start", "restart", "stop") for action in actions):
            output["pid"] = None
        module.exit_json(**output)
    try:
        output.update(apply(module, desired, current, result, dnsmasq_bin))
    except (DnsmasqError, OSError) as exc:
        module.fail_json(msg=str(exc), **output)
    output["pid"] = process_pid(p["pid"], p["config"]) if desired["state"] == "present" else None
    module.exit_json(**output)
