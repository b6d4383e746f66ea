# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Key table of lxc.container.conf(5) for LXC 4.0 to 6.x.

Knows every key liblxc accepts (exact keys and key families), the legacy
(pre-3.0) spellings and their current names, and which keys are
multi-valued, i.e. where every line adds one more value instead of
replacing the previous one.
"""
from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional, Tuple


class ConfigError(Exception):
    """Invalid LXC configuration key, value or file line."""

    def __init__(self, msg: str, key: Optional[str] = None, lineno: Optional[int] = None) -> None:
        self.msg = msg
        self.key = key
        self.lineno = lineno
        text = msg
        if lineno is not None:
            text = "line %d: %s" % (lineno, msg)
        super().__init__(text)


# Exact keys of the config jump table (src/lxc/confile.c), union of LXC 4.0 .. 6.x.
EXACT_KEYS: FrozenSet[str] = frozenset((
    "lxc.arch",
    "lxc.apparmor.profile",
    "lxc.apparmor.allow_incomplete",
    "lxc.apparmor.allow_nesting",
    "lxc.apparmor.raw",
    "lxc.autodev",
    "lxc.autodev.tmpfs.size",
    "lxc.cap.drop",
    "lxc.cap.keep",
    "lxc.cgroup.dir",
    "lxc.cgroup.dir.container",
    "lxc.cgroup.dir.container.inner",
    "lxc.cgroup.dir.monitor",
    "lxc.cgroup.dir.monitor.pivot",
    "lxc.cgroup.relative",
    "lxc.console.buffer.size",
    "lxc.console.logfile",
    "lxc.console.path",
    "lxc.console.rotate",
    "lxc.console.size",
    "lxc.environment",
    "lxc.environment.hooks",
    "lxc.environment.runtime",
    "lxc.ephemeral",
    "lxc.execute.cmd",
    "lxc.group",
    "lxc.hook",  # value must be empty: clears all hooks
    "lxc.idmap",
    "lxc.include",
    "lxc.init.cmd",
    "lxc.init.cwd",
    "lxc.init.gid",
    "lxc.init.groups",
    "lxc.init.uid",
    "lxc.keyring.session",
    "lxc.log.file",
    "lxc.log.level",
    "lxc.log.syslog",
    "lxc.monitor.signal.pdeath",
    "lxc.monitor.unshare",
    "lxc.mount.auto",
    "lxc.mount.entry",
    "lxc.mount.fstab",
    "lxc.namespace.clone",
    "lxc.namespace.keep",
    "lxc.net",  # value must be empty: clears all network devices
    "lxc.no_new_privs",
    "lxc.pty.max",
    "lxc.rootfs.managed",
    "lxc.rootfs.mount",
    "lxc.rootfs.options",
    "lxc.rootfs.path",
    "lxc.sched.core",
    "lxc.seccomp.allow_nesting",
    "lxc.seccomp.notify.cookie",
    "lxc.seccomp.notify.proxy",
    "lxc.seccomp.profile",
    "lxc.selinux.context",
    "lxc.selinux.context.keyring",
    "lxc.signal.halt",
    "lxc.signal.reboot",
    "lxc.signal.stop",
    "lxc.start.auto",
    "lxc.start.delay",
    "lxc.start.order",
    "lxc.time.offset.boot",
    "lxc.time.offset.monotonic",
    "lxc.tty.dir",
    "lxc.tty.max",
    "lxc.uts.name",
))

HOOK_TYPES: FrozenSet[str] = frozenset((
    "autodev", "clone", "destroy", "mount", "post-stop", "pre-mount",
    "pre-start", "start", "start-host", "stop",
))
# lxc.hook.version is an exact key (single-valued), not a hook type.

# Sub-keys of lxc.net.<N>. (config_jump_table_net in confile.c)
NET_SUBKEYS: FrozenSet[str] = frozenset((
    "flags", "hwaddr", "ipv4.address", "ipv4.gateway", "ipv6.address",
    "ipv6.gateway", "link", "l2proxy", "macvlan.mode", "ipvlan.mode",
    "ipvlan.isolation", "mtu", "name", "script.down", "script.up", "type",
    "vlan.id", "veth.mode", "veth.n_rxqueues", "veth.n_txqueues", "veth.pair",
    "veth.ipv4.route", "veth.ipv6.route", "veth.vlan.id", "veth.vlan.tagged.id",
))
NET_MULTI_SUBKEYS: FrozenSet[str] = frozenset((
    "ipv4.address", "ipv6.address", "veth.ipv4.route", "veth.ipv6.route",
    "veth.vlan.tagged.id",
))

PRLIMIT_RESOURCES: FrozenSet[str] = frozenset((
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
    "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
))
NAMESPACES: FrozenSet[str] = frozenset((
    "cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts",
))

# Exact keys where every line adds a value (the setter appends or ORs).
MULTI_EXACT: FrozenSet[str] = frozenset((
    "lxc.apparmor.raw",
    "lxc.cap.drop",
    "lxc.cap.keep",
    "lxc.environment",
    "lxc.environment.hooks",
    "lxc.environment.runtime",
    "lxc.group",
    "lxc.idmap",
    "lxc.include",
    "lxc.init.groups",
    "lxc.mount.auto",
    "lxc.mount.entry",
    "lxc.namespace.clone",
    "lxc.namespace.keep",
    "lxc.cgroup.devices.allow",
    "lxc.cgroup.devices.deny",
    "lxc.cgroup2.devices.allow",
    "lxc.cgroup2.devices.deny",
))

# Legacy (LXC < 3.0) exact names -> current names (confile_legacy.c, lxc-update-config).
LEGACY_EXACT: Dict[str, str] = {
    "lxc.aa_allow_incomplete": "lxc.apparmor.allow_incomplete",
    "lxc.aa_profile": "lxc.apparmor.profile",
    "lxc.console": "lxc.console.path",
    "lxc.devttydir": "lxc.tty.dir",
    "lxc.haltsignal": "lxc.signal.halt",
    "lxc.id_map": "lxc.idmap",
    "lxc.init_cmd": "lxc.init.cmd",
    "lxc.init_gid": "lxc.init.gid",
    "lxc.init_uid": "lxc.init.uid",
    "lxc.logfile": "lxc.log.file",
    "lxc.loglevel": "lxc.log.level",
    "lxc.mount": "lxc.mount.fstab",
    "lxc.network": "lxc.net",
    "lxc.pts": "lxc.pty.max",
    "lxc.rebootsignal": "lxc.signal.reboot",
    "lxc.rootfs": "lxc.rootfs.path",
    "lxc.se_context": "lxc.selinux.context",
    "lxc.seccomp": "lxc.seccomp.profile",
    "lxc.stopsignal": "lxc.signal.stop",
    "lxc.syslog": "lxc.log.syslog",
    "lxc.tty": "lxc.tty.max",
    "lxc.utsname": "lxc.uts.name",
}
LEGACY_PREFIXES: Tuple[Tuple[str, str], ...] = (
    ("lxc.limit.", "lxc.prlimit."),
)
# Legacy network sub-keys whose name changed (others kept their name).
LEGACY_NET_SUBKEYS: Dict[str, str] = {
    "ipv4": "ipv4.address",
    "ipv6": "ipv6.address",
}
# Keys removed in LXC 3.0 without a successor; modernize() drops their lines.
OBSOLETE_KEYS: FrozenSet[str] = frozenset((
    "lxc.kmsg", "lxc.pivotdir", "lxc.rootfs.backend",
))

_KEY_CHARS = re.compile(r"^lxc(\.[A-Za-z0-9_@:+/\-]+)+\Z")
_NET_RE = re.compile(r"^lxc\.net\.([0-9]+)\.(.+)\Z")
_LEGACY_NET_RE = re.compile(r"^lxc\.network\.(?:([0-9]+)\.)?(.+)\Z")
_CGROUP_RE = re.compile(r"^lxc\.(cgroup2?)\.([a-z_][a-z0-9_]*)\.([A-Za-z0-9_][A-Za-z0-9_.\-]*)\Z")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:+/\-]*\Z")
_MAX_NET_INDEX = 2 ** 31 - 2


def is_legacy_key(key: str) -> bool:
    """True for a pre-3.0 spelling (including removed keys such as lxc.pivotdir)."""
    if key in LEGACY_EXACT or key in OBSOLETE_KEYS:
        return True
    if key.startswith("lxc.network."):
        return True
    return any(key.startswith(old) for old, _new in LEGACY_PREFIXES)


def legacy_net_unindexed(key: str) -> bool:
    """True for ``lxc.network.<sub>`` without an index (applies to the last lxc.network.type)."""
    m = _LEGACY_NET_RE.match(key)
    return bool(m) and m.group(1) is None


def canonical_key(key: str, net_index: int = 0) -> str:
    """Current name of ``key``; keys that are not legacy are returned unchanged.

    Never raises.  ``net_index`` is the interface index used for an unindexed
    legacy ``lxc.network.<sub>`` key (the parser passes the index implied by
    the preceding ``lxc.network.type`` lines; callers default to 0).
    """
    key = key.strip()
    new = LEGACY_EXACT.get(key)
    if new is not None:
        return new
    m = _LEGACY_NET_RE.match(key)
    if m:
        idx = int(m.group(1)) if m.group(1) is not None else net_index
        sub = LEGACY_NET_SUBKEYS.get(m.group(2), m.group(2))
        return "lxc.net.%d.%s" % (idx, sub)
    for old, new_prefix in LEGACY_PREFIXES:
        if key.startswith(old):
            return new_prefix + key[len(old):]
    m = _NET_RE.match(key)
    if m and m.group(1) != str(int(m.group(1))):
        # lxc.net.01.type is read by LXC as index 1
        return "lxc.net.%d.%s" % (int(m.group(1)), m.group(2))
    return key


def _unknown(key: str) -> ConfigError:
    return ConfigError("unknown LXC config key '%s'" % key, key=key)


def _check_canonical(key: str) -> Optional[str]:
    """Reason why the canonical ``key`` is invalid, or None when valid."""
    if key in EXACT_KEYS:
        return None
    if key.startswith("lxc.net."):
        m = _NET_RE.match(key)
        if not m:
            return "bad network key '%s' (expected lxc.net.<index>.<subkey>)" % key
        if int(m.group(1)) > _MAX_NET_INDEX:
            return "network index out of range in '%s'" % key
        if m.group(2) not in NET_SUBKEYS:
            return "unknown LXC network config key '%s'" % key
        return None
    if key.startswith("lxc.hook."):
        if key[len("lxc.hook."):] in HOOK_TYPES or key == "lxc.hook.version":
            return None
        return "unknown LXC hook type in '%s'" % key
    if key.startswith(("lxc.cgroup.", "lxc.cgroup2.")):
        m = _CGROUP_RE.match(key)
        if not m or (m.group(1) == "cgroup" and m.group(2) in ("dir", "relative")):
            return "bad cgroup key '%s' (expected lxc.%s.<controller>.<file>)" % (
                key, "cgroup2" if key.startswith("lxc.cgroup2.") else "cgroup")
        return None
    if key.startswith("lxc.prlimit."):
        res = key[len("lxc.prlimit."):]
        if res in PRLIMIT_RESOURCES or res.isdigit():
            return None
        return "unknown resource limit in '%s'" % key
    if key.startswith("lxc.namespace.share."):
        if key[len("lxc.namespace.share."):] in NAMESPACES:
            return None
        return "unknown namespace in '%s'" % key
    for family in ("lxc.sysctl.", "lxc.proc."):
        if key.startswith(family):
            name = key[len(family):]
            if _NAME_RE.match(name) and ".." not in name and not name.endswith("."):
                return None
            return "bad key '%s'" % key
    return "unknown LXC config key '%s'" % key


def validate_key(key: str) -> str:
    """Return the canonical form of ``key`` or raise ConfigError naming it."""
    if not isinstance(key, str):
        raise ConfigError("LXC config key must be a string, got %r" % (key,), key=str(key))
    if key == "":
        raise ConfigError("empty LXC config key", key=key)
    if key != key.strip() or any(c.isspace() for c in key):
        raise ConfigError("LXC config key '%s' contains whitespace" % key, key=key)
    if not key.startswith("lxc."):
        raise ConfigError("'%s' is not an LXC config key (must start with 'lxc.')" % key, key=key)
    if "=" in key or not _KEY_CHARS.match(key):
        raise ConfigError("malformed LXC config key '%s'" % key, key=key)
    if key in OBSOLETE_KEYS:
        raise ConfigError("LXC config key '%s' was removed in LXC 3.0 and has no successor" % key, key=key)
    m = _LEGACY_NET_RE.match(key)
    if m and m.group(1) is None and m.group(2) not in NET_SUBKEYS and m.group(2) not in LEGACY_NET_SUBKEYS:
        raise _unknown(key)
    canon = canonical_key(key)
    reason = _check_canonical(canon)
    if reason is not None:
        if canon != key:
            reason = "%s (from legacy key '%s')" % (reason, key)
        raise ConfigError(reason, key=key)
    return canon


def is_valid_key(key: str) -> bool:
    """validate_key() without the exception."""
    try:
        validate_key(key)
    except ConfigError:
        return False
    return True


def is_multi_valued(key: str) -> bool:
    """True when every line of ``key`` adds a value (legacy names are canonicalised first)."""
    key = canonical_key(key)
    if key in MULTI_EXACT:
        return True
    if key.startswith("lxc.hook."):
        return key != "lxc.hook.version"
    m = _NET_RE.match(key)
    if m:
        return m.group(2) in NET_MULTI_SUBKEYS
    return False


def net_index(key: str) -> Optional[int]:
    """Interface index of a canonical ``lxc.net.<N>.<sub>`` key, else None."""
    m = _NET_RE.match(key)
    if m:
        return int(m.group(1))
    return None
