# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Option model of the container module: typed helpers compiled to LXC config edits.

Everything here is pure: it validates options and turns them into edits of an
:class:`LxcConfig`. It never runs a command.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import ConfigError, LxcConfig
from ansible_collections.lxcfleet.lxc.plugins.module_utils._keys import is_multi_valued, validate_key

NESTING_INCLUDE = "/usr/share/lxc/config/nesting.conf"

NET_TYPES = ("veth", "macvlan", "ipvlan", "phys", "vlan", "empty", "none")
# Patterns as strings: re compiles (and caches) each on first use, so a run that does not need one
# does not pay for it (every module run starts a fresh interpreter).
_HWADDR_RE = r"^([0-9a-fA-Fx]{2}:){5}[0-9a-fA-Fx]{2}\Z"
_IFNAME_RE = r"^[^\s/:]{1,15}\Z"
_SIZE_RE = r"(?i)^\s*(\d+)\s*([KMGT]?)(i?B?)?\s*$"
_CPUSET_RE = r"^\d+(-\d+)?(,\d+(-\d+)?)*\Z"
_CAP_RE = r"^[a-z_]+\Z"


class OptionError(Exception):
    """Bad input; the message starts with the option's name."""


# --------------------------------------------------------------------------------------------
# Edits: each helper yields Edit objects. An edit knows the keys it owns (for the "given both
# ways" check) and how to apply itself to a config.
# --------------------------------------------------------------------------------------------


class Edit:
    def __init__(self, option: str, keys=(), prefixes=()):
        self.option = option
        self.keys = set(keys)
        self.prefixes = tuple(prefixes)

    def owns(self, key: str) -> bool:
        return key in self.keys or any(key.startswith(p) for p in self.prefixes)

    def apply(self, cfg: LxcConfig) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SetKey(Edit):
    def __init__(self, option, key, value):
        super().__init__(option, keys=[key])
        self.key = key
        self.value = value

    def apply(self, cfg):
        cfg.set(self.key, self.value)


class RemoveKey(Edit):
    def __init__(self, option, key, owned=True):
        super().__init__(option, keys=[key] if owned else [])
        self.key = key

    def apply(self, cfg):
        cfg.remove(self.key)


class ValuePresence(Edit):
    """One value of a multi-valued key present or absent; the key's other values are left alone."""

    def __init__(self, option, key, value, present):
        super().__init__(option)
        self.key = key
        self.value = value
        self.present = present

    def apply(self, cfg):
        if self.present:
            cfg.add_value(self.key, self.value)
        else:
            cfg.remove_value(self.key, self.value)


class CapabilityList(Edit):
    """lxc.cap.drop / lxc.cap.keep as a whole set; several names on one line count as separate values."""

    def __init__(self, option, key, names):
        super().__init__(option, keys=[key])
        self.key = key
        self.names = names

    def apply(self, cfg):
        current = []
        for value in cfg.get(self.key):
            current.extend(value.split())
        if current == self.names and len(cfg.get(self.key)) > 0:
            return
        if not self.names:
            cfg.remove(self.key)
        else:
            cfg.set(self.key, [" ".join(self.names)])


class MountEntries(Edit):
    """lxc.mount.entry lines keyed by their target: a named target is owned exactly, others stay."""

    def __init__(self, option, mounts):
        super().__init__(option, keys=["lxc.mount.entry"])
        self.mounts = mounts  # list of (target, line or None for absent)

    def apply(self, cfg):
        entries = list(cfg.get("lxc.mount.entry"))
        for target, line in self.mounts:
            positions = [i for i, e in enumerate(entries) if mount_target(e) == target]
            if line is None:
                entries = [e for i, e in enumerate(entries) if i not in positions]
                continue
            if positions:
                first = positions[0]
                entries = [line if i == first else e for i, e in enumerate(entries) if i == first or i not in positions]
            else:
                entries.append(line)
        if entries != cfg.get("lxc.mount.entry"):
            cfg.set("lxc.mount.entry", entries)


class NetworkInterfaces(Edit):
    """lxc.net.N.*: the listed interfaces, and no others. Within an interface the fields the task
    names are owned; other fields (for example a template's hwaddr) stay unless the type changes."""

    def __init__(self, option, nics):
        super().__init__(option, prefixes=["lxc.net."])
        self.nics = nics  # list of dicts: key suffix -> value (str or list)

    def apply(self, cfg):
        for index, fields in enumerate(self.nics):
            prefix = "lxc.net.%d." % index
            current_type = cfg.get_one(prefix + "type")
            if current_type is not None and current_type != fields["type"]:
                cfg.remove_prefix(prefix)
            for suffix, value in fields.items():
                key = prefix + suffix
                if isinstance(value, list) and not value:
                    cfg.remove(key)
                else:
                    cfg.set(key, value)
        for index in cfg.net_indices():
            if index >= len(self.nics):
                cfg.remove_prefix("lxc.net.%d." % index)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def mount_target(entry: str) -> str:
    fields = entry.split()
    if len(fields) < 2:
        return ""
    return fields[1].strip("/")


def _config_value(option_key: str, key: str, value):
    if value is None:
        raise OptionError("config: the value of %s is null; list the key in config_remove to remove it" % option_key)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        if not is_multi_valued(key):
            raise OptionError(
                "config: %s takes a single value, not a list (only multi-valued keys such as lxc.idmap, "
                "lxc.mount.entry, lxc.cap.drop take lists)" % option_key
            )
        out = []
        for item in value:
            if isinstance(item, (dict, list, tuple)) or item is None:
                raise OptionError("config: the list of %s must hold strings" % option_key)
            out.append(_scalar(item))
        return out
    if isinstance(value, dict):
        raise OptionError("config: the value of %s must be a string, a number or a list" % option_key)
    text = _scalar(value)
    if "\n" in text:
        raise OptionError("config: the value of %s must not contain a newline" % option_key)
    return text


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_size(option: str, value) -> int:
    if isinstance(value, bool):
        raise OptionError("%s: %r is not a size" % (option, value))
    if isinstance(value, int):
        if value <= 0:
            raise OptionError("%s: the size must be positive" % option)
        return value
    match = re.match(_SIZE_RE, str(value))
    if not match:
        raise OptionError("%s: %r is not a size (use bytes or a number with K, M, G or T)" % (option, value))
    number = int(match.group(1))
    unit = match.group(2).upper()
    factor = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}[unit]
    if number <= 0:
        raise OptionError("%s: the size must be positive" % option)
    return number * factor


class CgroupLayout:
    """Which cgroup version holds each controller on this host: LXC writes lxc.cgroup.* for a
    controller mounted as a v1 hierarchy and lxc.cgroup2.* for one on the unified hierarchy."""

    def __init__(self, root: str = "/sys/fs/cgroup"):
        self.root = root

    def _read(self, path):
        try:
            with open(path, encoding="ascii") as handle:
                return handle.read().split()
        except OSError:
            return None

    def version(self, controller: str):
        unified = self._read(os.path.join(self.root, "cgroup.controllers"))
        if unified is not None:
            return 2 if controller in unified else None
        if os.path.isdir(os.path.join(self.root, controller)):
            return 1
        hybrid = self._read(os.path.join(self.root, "unified", "cgroup.controllers"))
        if hybrid is not None and controller in hybrid:
            return 2
        return None


_LIMITS = {
    # option: (controller, v1 file, v2 file)
    "memory": ("memory", "memory.limit_in_bytes", "memory.max"),
    "cpus": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "cpu_weight": ("cpu", "cpu.shares", "cpu.weight"),
    "pids": ("pids", "pids.max", "pids.max"),
}


def compile_limits(limits: dict, layout: CgroupLayout) -> list:
    edits = []
    for option in ("memory", "cpus", "cpu_weight", "pids"):
        value = limits.get(option)
        if value is None:
            continue
        controller, v1, v2 = _LIMITS[option]
        name = "limits.%s" % option
        version = layout.version(controller)
        if version is None:
            raise OptionError("%s: this host has no %s cgroup controller, so the limit cannot be set" % (name, controller))
        if option == "memory":
            if str(value).strip().lower() in ("max", "unlimited", "-1"):
                text = "-1" if version == 1 else "max"
            else:
                text = str(parse_size(name, value))
        elif option == "cpus":
            text = str(value).replace(" ", "")
            if not re.match(_CPUSET_RE, text):
                raise OptionError("%s: %r is not a CPU list such as '0', '0-1' or '0,2-3'" % (name, value))
        elif option == "cpu_weight":
            weight = _int(name, value, 1, 10000)
            text = str(max(2, round(weight * 1024 / 100))) if version == 1 else str(weight)
        else:  # pids
            if str(value).strip().lower() in ("max", "unlimited"):
                text = "max"
            else:
                text = str(_int(name, value, 1, 4194304))
        chosen = ("lxc.cgroup." + v1) if version == 1 else ("lxc.cgroup2." + v2)
        other = ("lxc.cgroup2." + v2) if version == 1 else ("lxc.cgroup." + v1)
        edits.append(SetKey(name, chosen, text))
        edits.append(RemoveKey(name, other))
    return edits


def _int(option, value, low, high) -> int:
    if isinstance(value, bool):
        raise OptionError("%s: %r is not an integer" % (option, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise OptionError("%s: %r is not an integer" % (option, value))
    if number < low or number > high:
        raise OptionError("%s: %d is out of range %d-%d" % (option, number, low, high))
    return number


def compile_network(network: list) -> Edit:
    nics = []
    names = set()
    for index, nic in enumerate(network):
        where = "network[%d]" % index
        nic = dict((k, v) for k, v in (nic or {}).items() if v is not None)
        nic_type = nic.get("type", "veth")
        if nic_type not in NET_TYPES:
            raise OptionError("%s.type: %r is not one of %s" % (where, nic_type, ", ".join(NET_TYPES)))
        fields = {"type": nic_type}
        if nic_type in ("empty", "none"):
            extra = sorted(set(nic) - {"type"})
            if extra:
                raise OptionError("%s: type %s takes no further options (got %s)" % (where, nic_type, ", ".join(extra)))
            nics.append(fields)
            continue
        if nic_type in ("veth", "macvlan", "ipvlan", "phys", "vlan") and "link" not in nic and nic_type != "veth":
            raise OptionError("%s.link is required for type %s" % (where, nic_type))
        for opt in ("link", "name"):
            if opt in nic:
                if not re.match(_IFNAME_RE, str(nic[opt])):
                    raise OptionError("%s.%s: %r is not an interface name (1-15 characters, no space, '/' or ':')" % (where, opt, nic[opt]))
                fields[opt] = str(nic[opt])
        if "name" in fields:
            if fields["name"] in names:
                raise OptionError("%s.name: %s is used by two interfaces" % (where, fields["name"]))
            names.add(fields["name"])
        fields["flags"] = nic.get("flags", "up")
        if "hwaddr" in nic:
            if not re.match(_HWADDR_RE, str(nic["hwaddr"])):
                raise OptionError("%s.hwaddr: %r is not a MAC address (xx may stand for random hex digits)" % (where, nic["hwaddr"]))
            fields["hwaddr"] = str(nic["hwaddr"]).lower()
        if "mtu" in nic:
            fields["mtu"] = str(_int(where + ".mtu", nic["mtu"], 68, 65535))
        for family, version in (("ipv4", 4), ("ipv6", 6)):
            if family in nic:
                addresses = []
                for item in nic[family]:
                    try:
                        iface = ipaddress.ip_interface(str(item))
                    except ValueError:
                        raise OptionError("%s.%s: %r is not an IPv%d address with prefix" % (where, family, item, version))
                    if iface.version != version or "/" not in str(item):
                        raise OptionError("%s.%s: %r is not an IPv%d address with prefix (like %s)" % (
                            where, family, item, version, "10.0.3.5/24" if version == 4 else "fd00::5/64"))
                    addresses.append(str(iface))
                fields[family + ".address"] = addresses
            gateway = nic.get(family + "_gateway")
            if gateway is not None:
                if gateway not in ("auto", "dev"):
                    try:
                        address = ipaddress.ip_address(str(gateway))
                    except ValueError:
                        raise OptionError("%s.%s_gateway: %r is not an address, 'auto' or 'dev'" % (where, family, gateway))
                    if address.version != version:
                        raise OptionError("%s.%s_gateway: %r is not an IPv%d address" % (where, family, gateway, version))
                    gateway = str(address)
                fields[family + ".gateway"] = gateway
        if "veth_mode" in nic:
            if nic_type != "veth":
                raise OptionError("%s.veth_mode needs type veth" % where)
            fields["veth.mode"] = nic["veth_mode"]
        if "veth_pair" in nic:
            if nic_type != "veth":
                raise OptionError("%s.veth_pair needs type veth" % where)
            if not re.match(_IFNAME_RE, str(nic["veth_pair"])):
                raise OptionError("%s.veth_pair: %r is not an interface name" % (where, nic["veth_pair"]))
            fields["veth.pair"] = nic["veth_pair"]
        if "macvlan_mode" in nic:
            if nic_type != "macvlan":
                raise OptionError("%s.macvlan_mode needs type macvlan" % where)
            fields["macvlan.mode"] = nic["macvlan_mode"]
        if nic_type == "veth" and fields.get("veth.mode") != "router" and "link" not in fields:
            # A bridged veth without a link is a dangling interface on the host.
            pass
        nics.append(fields)
    return NetworkInterfaces("network", nics)


def compile_mounts(mounts: list) -> Edit:
    items = []
    seen = set()
    for index, mount in enumerate(mounts):
        where = "mounts[%d]" % index
        target = mount.get("target")
        if not target or not str(target).strip("/"):
            raise OptionError("%s.target is required and must not be '/'" % where)
        target = str(target).strip("/")
        if any(ch.isspace() for ch in target) or ".." in target.split("/"):
            raise OptionError("%s.target: %r must be a path inside the container without spaces or '..'" % (where, mount["target"]))
        if target in seen:
            raise OptionError("%s.target: %s is named twice" % (where, target))
        seen.add(target)
        if mount.get("state", "present") == "absent":
            items.append((target, None))
            continue
        source = mount.get("source")
        if not source:
            raise OptionError("%s.source is required unless state is absent" % where)
        if any(ch.isspace() for ch in str(source)):
            raise OptionError("%s.source: %r must not contain whitespace" % (where, source))
        fstype = mount.get("type") or "none"
        options = mount.get("options") or "bind,create=dir"
        if any(ch.isspace() for ch in fstype + options):
            raise OptionError("%s: type and options must not contain whitespace" % where)
        line = "%s %s %s %s %d %d" % (source, target, fstype, options, mount.get("dump") or 0, mount.get("pass") or 0)
        items.append((target, line))
    return MountEntries("mounts", items)


def compile_autostart(autostart: dict) -> list:
    edits = []
    if autostart.get("enabled") is not None:
        edits.append(SetKey("autostart.enabled", "lxc.start.auto", "1" if autostart["enabled"] else "0"))
    if autostart.get("delay") is not None:
        edits.append(SetKey("autostart.delay", "lxc.start.delay", str(_int("autostart.delay", autostart["delay"], 0, 86400))))
    if autostart.get("order") is not None:
        edits.append(SetKey("autostart.order", "lxc.start.order", str(_int("autostart.order", autostart["order"], -1000000, 1000000))))
    if autostart.get("groups") is not None:
        groups = []
        for group in autostart["groups"]:
            group = str(group)
            if not group or any(ch.isspace() or ch == "," for ch in group):
                raise OptionError("autostart.groups: %r is not a group name (no spaces or commas)" % group)
            groups.append(group)
        if groups:
            edits.append(SetKey("autostart.groups", "lxc.group", groups))
        else:
            edits.append(RemoveKey("autostart.groups", "lxc.group"))
    return edits


# --------------------------------------------------------------------------------------------
# hooks (lxc.hook.<event>): the values a task names are owned; other hook lines stay.
# --------------------------------------------------------------------------------------------

#: LXC 5.0's hook events (lxc.container.conf(5), "CONTAINER HOOKS").
HOOK_EVENTS = ("pre-start", "pre-mount", "mount", "autodev", "start-host", "start", "stop", "post-stop", "clone",
               "destroy")
#: A hook's ``content`` is installed as <container folder>/hook-<name>, directly in the container's
#: folder: lxc-copy and lxc-snapshot copy hook scripts of the container's folder by their base name
#: into the new folder and rewrite the old folder's path in the config, so only a file directly in
#: the folder survives a copy (LXC 5.0.2: a script in a subfolder is copied flat while the config
#: keeps the subfolder, and the copy fails to start).
HOOK_PREFIX = "hook-"
_HOOK_NAME_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$"
# LXC runs a hook through /bin/sh -c "exec VALUE ARGS": a value must be one word the shell leaves alone.
_HOOK_PATH_RE = r"^/[A-Za-z0-9_.,:@%+=/-]*$"


class HookSpec:
    """One validated entry of ``hooks``."""

    def __init__(self, index, event, name, content, path, present):
        self.index = index
        self.event = event
        self.name = name
        self.content = content
        self.path = path
        self.present = present

    @property
    def installed(self) -> bool:
        """The hook is a file this module installs (content, or an absent hook named by name)."""
        return self.path is None

    @property
    def key(self):
        return "lxc.hook." + self.event if self.event else None

    def value(self, container_dir: str) -> str:
        """The value in lxc.hook.<event>: the given path, or the installed file."""
        if self.path is not None:
            return self.path
        return hook_file_path(container_dir, self.name)


def hook_file_path(container_dir: str, name: str) -> str:
    return os.path.join(container_dir, HOOK_PREFIX + name)


def check_hook_dir(container_dir: str) -> None:
    """The installed hooks' paths must be shell-safe words (LXC runs hooks through /bin/sh)."""
    if not re.match(_HOOK_PATH_RE, container_dir):
        raise OptionError("hooks: the container's folder %s holds characters that LXC's hook runner (/bin/sh -c) would "
                          "split or expand; hooks with content cannot be installed there" % container_dir)


def validate_hooks(hooks: list) -> list:
    """``hooks`` as HookSpec objects, or OptionError naming the entry. Pure: existence of ``path`` on the
    host is checked by the manager."""
    specs = []
    names = {}
    paths = {}
    for index, hook in enumerate(hooks):
        where = "hooks[%d]" % index
        hook = dict((k, v) for k, v in (hook or {}).items() if v is not None)
        state = hook.get("state", "present")
        if state not in ("present", "absent"):
            raise OptionError("%s.state: %r is not present or absent" % (where, state))
        present = state == "present"
        event = hook.get("event")
        if event is not None and event not in HOOK_EVENTS:
            raise OptionError("%s.event: %r is not one of %s" % (where, event, ", ".join(HOOK_EVENTS)))
        content = hook.get("content")
        path = hook.get("path")
        name = hook.get("name")
        if present and event is None:
            raise OptionError("%s.event is required (one of %s)" % (where, ", ".join(HOOK_EVENTS)))
        if content is not None and path is not None:
            raise OptionError("%s: content and path are mutually exclusive (content installs a script, path wires an "
                              "existing program)" % where)
        if present and content is None and path is None:
            raise OptionError("%s: give content (a script to install) or path (an existing program)" % where)
        if not present and path is None and name is None:
            raise OptionError("%s: an absent hook needs name (an installed hook) or path" % where)
        if name is not None:
            name = str(name)
            if not re.match(_HOOK_NAME_RE, name):
                raise OptionError("%s.name: %r is not a file name (letters, digits, '_', '.', '+', '-'; no '/'; not "
                                  "starting with '.' or '-')" % (where, name))
            if name in names:
                raise OptionError("%s.name: %s is also the name of hooks[%d]; names are unique in a task"
                                  % (where, name, names[name]))
            names[name] = index
        if path is not None:
            path = str(path)
            if not path.startswith("/"):
                raise OptionError("%s.path: %r is not an absolute path" % (where, path))
            if not re.match(_HOOK_PATH_RE, path) or "/../" in path + "/":
                raise OptionError("%s.path: %r must be one absolute path without blanks, '..' or shell characters "
                                  "(LXC runs hooks through /bin/sh -c)" % (where, path))
            seen = paths.get((event, path))
            if seen is not None:
                raise OptionError("%s.path: %s is also given for event %s by hooks[%d]" % (where, path, event, seen))
            paths[(event, path)] = index
        if content is not None:
            if present and name is None:
                raise OptionError("%s.name is required with content: it names the installed file" % where)
            if present and event == "start":
                raise OptionError("%s: a start hook runs inside the container, after its root is set up, so a script "
                                  "installed on the host cannot run there; give path (a program inside the container)"
                                  % where)
            content = str(content)
            if present and not content.startswith("#!"):
                raise OptionError("%s.content must start with an interpreter line such as #!/bin/sh (LXC executes "
                                  "the file)" % where)
            if "\x00" in content:
                raise OptionError("%s.content must not contain NUL bytes" % where)
        specs.append(HookSpec(index, event, name, content if path is None else None, path, present))
    return specs


class HookEntries(Edit):
    """lxc.hook.<event>: each value a hook names is present or absent; other hook lines stay. An
    installed hook's file is referenced from its event only (a stale reference from another event,
    left by a change of ``event``, is removed). ``container_dir`` is bound by the manager once the
    lxc path is known."""

    def __init__(self, option, specs):
        keys = set(s.key for s in specs if s.key)
        keys.add("lxc.hook")  # clearing every hook at once (lxc.hook =) touches them all
        super().__init__(option, keys=keys)
        self.specs = specs
        self.container_dir = None

    def apply(self, cfg):
        if self.container_dir is None:
            raise OptionError("hooks: the container's folder is not known")  # a bug of the caller
        hook_keys = [k for k in cfg.keys() if k.startswith("lxc.hook.") and k != "lxc.hook.version"]
        for spec in self.specs:
            value = spec.value(self.container_dir)
            if spec.installed:
                # The installed file belongs to this task: referenced from its own event only.
                for key in hook_keys:
                    if key != spec.key or not spec.present:
                        if value in cfg.get(key):
                            cfg.remove_value(key, value)
            elif not spec.present:
                keys = [spec.key] if spec.key else hook_keys
                for key in keys:
                    if value in cfg.get(key):
                        cfg.remove_value(key, value)
            if spec.present:
                cfg.add_value(spec.key, value)


def compile_hooks(hooks: list) -> Edit:
    return HookEntries("hooks", validate_hooks(hooks))


def compile_capabilities(caps: dict) -> list:
    edits = []
    drop = caps.get("drop")
    keep = caps.get("keep")
    if drop is not None and keep is not None:
        raise OptionError("capabilities: drop and keep are mutually exclusive in LXC")
    for which, names in (("drop", drop), ("keep", keep)):
        if names is None:
            continue
        clean = []
        for name in names:
            name = str(name).strip().lower()
            if name.startswith("cap_"):
                name = name[4:]
            if not re.match(_CAP_RE, name):
                raise OptionError("capabilities.%s: %r is not a capability name" % (which, name))
            clean.append(name)
        edits.append(CapabilityList("capabilities." + which, "lxc.cap." + which, clean))
    return edits


def compile_config(config: dict, config_remove: list) -> list:
    edits = []
    for raw_key, value in (config or {}).items():
        try:
            key = validate_key(str(raw_key))
        except ConfigError as exc:
            raise OptionError("config: %s" % exc)
        if key == "lxc.rootfs.path":
            raise OptionError("config: lxc.rootfs.path is chosen at creation (backing_store) and cannot be set here")
        edits.append(SetKey("config", key, _config_value(str(raw_key), key, value)))
    for raw_key in config_remove or []:
        try:
            key = validate_key(str(raw_key))
        except ConfigError as exc:
            raise OptionError("config_remove: %s" % exc)
        if key == "lxc.rootfs.path":
            raise OptionError("config_remove: lxc.rootfs.path cannot be removed")
        if any(e.owns(key) for e in edits):
            raise OptionError("config_remove: %s is also set in config" % raw_key)
        edits.append(RemoveKey("config_remove", key))
    return edits


def compile_all(params: dict, layout: CgroupLayout) -> list:
    """All edits of a task, or OptionError. Keys given both in config/config_remove and by a typed
    helper are an error."""
    raw_edits = compile_config(params.get("config"), params.get("config_remove"))
    helper_edits = []
    if params.get("network") is not None:
        helper_edits.append(compile_network(params["network"]))
    if params.get("mounts") is not None:
        helper_edits.append(compile_mounts(params["mounts"]))
    if params.get("limits") is not None:
        helper_edits.extend(compile_limits(params["limits"], layout))
    if params.get("autostart") is not None:
        helper_edits.extend(compile_autostart(params["autostart"]))
    if params.get("apparmor_profile") is not None:
        profile = params["apparmor_profile"]
        if not profile or any(ch.isspace() for ch in profile):
            raise OptionError("apparmor_profile: %r is not a profile name" % profile)
        helper_edits.append(SetKey("apparmor_profile", "lxc.apparmor.profile", profile))
    if params.get("nesting") is not None:
        nesting = params["nesting"]
        helper_edits.append(ValuePresence("nesting", "lxc.include", NESTING_INCLUDE, nesting))
        helper_edits.append(SetKey("nesting", "lxc.apparmor.allow_nesting", "1" if nesting else "0"))
    if params.get("capabilities") is not None:
        helper_edits.extend(compile_capabilities(params["capabilities"]))
    if params.get("hooks") is not None:
        helper_edits.append(compile_hooks(params["hooks"]))
    for raw in raw_edits:
        for key in raw.keys:
            for helper in helper_edits:
                if helper.owns(key):
                    raise OptionError(
                        "%s: %s is also set by the %s option; give each key one way only" % (raw.option, key, helper.option)
                    )
    return raw_edits + helper_edits


def plan_config(text: str, edits: list):
    """Apply edits to a config text. Returns (new_text, changed_keys)."""
    cfg = LxcConfig.parse(text)
    before = cfg.as_dict()
    work = cfg.copy()
    for edit in edits:
        edit.apply(work)
    # LXC 3.0 and later refuse legacy key names: a file that holds any is rewritten in the current form.
    work.modernize()
    new_text = work.render()
    if new_text == text:
        return text, []
    after = work.as_dict()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return new_text, changed
