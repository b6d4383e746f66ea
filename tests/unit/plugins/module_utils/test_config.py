# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import glob
import os

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import (
    ConfigError,
    ConfigLine,
    LxcConfig,
    format_value,
    parse_value,
)
from ansible_collections.lxcfleet.lxc.plugins.module_utils._keys import (
    canonical_key,
    is_multi_valued,
    validate_key,
)

SHIPPED_DIR = "/usr/share/lxc/config"
SHIPPED = sorted(p for p in glob.glob(os.path.join(SHIPPED_DIR, "**", "*"), recursive=True)
                 if os.path.isfile(p))
SHIPPED_CONF = [p for p in SHIPPED if p.endswith(".conf")]
needs_lxc = pytest.mark.skipif(not SHIPPED_CONF, reason="LXC config files not installed")


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------ round trip

SAMPLES = {
    "empty": "",
    "only-newline": "\n",
    "no-trailing-newline": "lxc.uts.name = c1",
    "odd-spacing": "  lxc.uts.name=c1\n\tlxc.tty.max\t=\t4  \nlxc.pty.max   =1024\n",
    "comments-blank": "# Template used\n\n   # indented comment\n\t\nlxc.arch = amd64\n\n\n",
    "quotes": "lxc.init.cmd = \"/sbin/init --x\"\nlxc.environment = 'A=b c'\nlxc.uts.name = \"x'\n",
    "crlf": "lxc.uts.name = a\r\n# c\r\nlxc.tty.max = 4\r\n",
    "crlf-no-end": "lxc.uts.name = a\r\nlxc.tty.max = 4",
    "invalid-lines": "garbage line\nfoo = bar\nlxc.uts.name = a\nlxc.tty.max\n",
    "include-order": "lxc.include = /b.conf\nlxc.include = /a.conf\nlxc.include = /c.d/\n",
    "legacy": "lxc.network.type = veth\nlxc.network.link = br0\nlxc.utsname = old\n",
    "empty-value": "lxc.cap.drop =\nlxc.cap.drop = sys_module\n",
    "trailing-blank-lines": "lxc.uts.name = a\n\n\n\n",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_roundtrip_samples(name: str) -> None:
    text = SAMPLES[name]
    assert LxcConfig.parse(text).render() == text


@needs_lxc
@pytest.mark.parametrize("path", SHIPPED, ids=[os.path.relpath(p, SHIPPED_DIR) for p in SHIPPED])
def test_roundtrip_shipped(path: str) -> None:
    text = _read(path)
    cfg = LxcConfig.parse(text)
    assert cfg.render() == text
    assert cfg.copy().render() == text


@needs_lxc
@pytest.mark.parametrize("path", SHIPPED_CONF, ids=[os.path.relpath(p, SHIPPED_DIR) for p in SHIPPED_CONF])
def test_shipped_keys_valid(path: str) -> None:
    cfg = LxcConfig.parse(_read(path))
    for line in cfg.lines:
        if line.kind == "entry":
            assert validate_key(line.raw_key) == line.key
    assert cfg.errors() == []
    assert not cfg.has_legacy()


def test_shipped_common_conf_model() -> None:
    text = (
        "# Default pseudo-fs\n"
        "lxc.mount.auto = cgroup:mixed proc:mixed sys:mixed\n"
        "lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio\n"
        "lxc.cgroup.devices.deny = a\n"
        "lxc.cgroup.devices.allow = c *:* m\n"
        "lxc.cgroup.devices.allow = b *:* m\n"
        "lxc.include = /usr/share/lxc/config/common.conf.d/\n"
    )
    cfg = LxcConfig.parse(text)
    assert cfg.keys() == ["lxc.mount.auto", "lxc.cap.drop", "lxc.cgroup.devices.deny",
                          "lxc.cgroup.devices.allow", "lxc.include"]
    assert cfg.get("lxc.cgroup.devices.allow") == ["c *:* m", "b *:* m"]
    assert cfg.as_dict()["lxc.cgroup.devices.deny"] == ["a"]


# --------------------------------------------------------------- line parsing

@pytest.mark.parametrize("raw,kind,key,value", [
    ("", "blank", None, None),
    (" \t ", "blank", None, None),
    ("# x = y", "comment", None, None),
    ("   #lxc.uts.name = a", "comment", None, None),
    ("lxc.uts.name = a", "entry", "lxc.uts.name", "a"),
    ("lxc.uts.name=a", "entry", "lxc.uts.name", "a"),
    ("\t lxc.uts.name \t= \t a b \t", "entry", "lxc.uts.name", "a b"),
    ("lxc.init.cmd = \"/sbin/init x\"", "entry", "lxc.init.cmd", "/sbin/init x"),
    ("lxc.init.cmd = '/sbin/init x'", "entry", "lxc.init.cmd", "/sbin/init x"),
    ("lxc.init.cmd = \"a'", "entry", "lxc.init.cmd", "\"a'"),
    ("lxc.init.cmd = \"\"x\"\"", "entry", "lxc.init.cmd", "\"x\""),
    ("lxc.init.cmd = \"", "entry", "lxc.init.cmd", "\""),
    ("lxc.environment = A=b=c", "entry", "lxc.environment", "A=b=c"),
    ("lxc.uts.name =", "entry", "lxc.uts.name", ""),
    ("lxc.uts.name = a # not a comment", "entry", "lxc.uts.name", "a # not a comment"),
    ("lxc.utsname = a", "entry", "lxc.uts.name", "a"),
    ("no equals sign", "invalid", None, None),
    ("lxc.uts.name", "invalid", None, None),
    ("hostname = x", "invalid", None, None),
])
def test_line_kinds(raw: str, kind: str, key, value) -> None:
    line = ConfigLine(raw)
    assert (line.kind, line.key, line.value) == (kind, key, value)


@pytest.mark.parametrize("value", [
    "", "a", "a b", " lead", "trail ", "\tx", "\"", "'", "\"a\"", "'a'", "\"a'", "''", "a\"b\"",
    " \"a\" ", "x=y", "#x",
])
def test_format_value_roundtrip(value: str) -> None:
    assert parse_value(format_value(value)) == value
    cfg = LxcConfig()
    cfg.set("lxc.init.cmd", value)
    assert LxcConfig.parse(cfg.render()).get("lxc.init.cmd") == [value]


def test_format_value_bare_when_possible() -> None:
    assert format_value("/sbin/init --x") == "/sbin/init --x"
    assert format_value(" x") == "\" x\""
    assert format_value("\"x\"") == "\"\"x\"\""


def test_errors_lists_invalid_unknown_and_legacy() -> None:
    cfg = LxcConfig.parse("junk\nlxc.foo.bar = 1\nlxc.utsname = a\nlxc.uts.name = b\n")
    errs = cfg.errors()
    assert [e.lineno for e in errs] == [1, 2, 3]
    assert "lxc.foo.bar" in str(errs[1])
    assert errs[2].key == "lxc.utsname"


# ------------------------------------------------------------------- key table

@pytest.mark.parametrize("old,new", [
    ("lxc.utsname", "lxc.uts.name"),
    ("lxc.network.0.ipv4", "lxc.net.0.ipv4.address"),
    ("lxc.network.1.ipv6", "lxc.net.1.ipv6.address"),
    ("lxc.network.0.ipv4.gateway", "lxc.net.0.ipv4.gateway"),
    ("lxc.network.2.veth.pair", "lxc.net.2.veth.pair"),
    ("lxc.network.type", "lxc.net.0.type"),
    ("lxc.network", "lxc.net"),
    ("lxc.id_map", "lxc.idmap"),
    ("lxc.aa_profile", "lxc.apparmor.profile"),
    ("lxc.aa_allow_incomplete", "lxc.apparmor.allow_incomplete"),
    ("lxc.rootfs", "lxc.rootfs.path"),
    ("lxc.tty", "lxc.tty.max"),
    ("lxc.pts", "lxc.pty.max"),
    ("lxc.loglevel", "lxc.log.level"),
    ("lxc.logfile", "lxc.log.file"),
    ("lxc.syslog", "lxc.log.syslog"),
    ("lxc.limit.nofile", "lxc.prlimit.nofile"),
    ("lxc.haltsignal", "lxc.signal.halt"),
    ("lxc.rebootsignal", "lxc.signal.reboot"),
    ("lxc.stopsignal", "lxc.signal.stop"),
    ("lxc.mount", "lxc.mount.fstab"),
    ("lxc.init_cmd", "lxc.init.cmd"),
    ("lxc.init_uid", "lxc.init.uid"),
    ("lxc.init_gid", "lxc.init.gid"),
    ("lxc.console", "lxc.console.path"),
    ("lxc.seccomp", "lxc.seccomp.profile"),
    ("lxc.se_context", "lxc.selinux.context"),
    ("lxc.devttydir", "lxc.tty.dir"),
    ("lxc.net.01.type", "lxc.net.1.type"),
    # current names are unchanged
    ("lxc.mount.entry", "lxc.mount.entry"),
    ("lxc.console.logfile", "lxc.console.logfile"),
    ("lxc.rootfs.options", "lxc.rootfs.options"),
    ("lxc.seccomp.profile", "lxc.seccomp.profile"),
    ("lxc.tty.dir", "lxc.tty.dir"),
])
def test_canonical_key(old: str, new: str) -> None:
    assert canonical_key(old) == new
    assert validate_key(old) == new


@pytest.mark.parametrize("key", [
    "lxc.arch", "lxc.uts.name", "lxc.rootfs.path", "lxc.idmap", "lxc.include",
    "lxc.net.0.type", "lxc.net.12.veth.vlan.tagged.id", "lxc.net.0.ipvlan.isolation",
    "lxc.net.0.veth.n_rxqueues", "lxc.net",
    "lxc.cgroup.memory.limit_in_bytes", "lxc.cgroup.devices.allow", "lxc.cgroup.hugetlb.2MB.limit_in_bytes",
    "lxc.cgroup.dir", "lxc.cgroup.dir.container", "lxc.cgroup.dir.monitor", "lxc.cgroup.dir.monitor.pivot",
    "lxc.cgroup.dir.container.inner", "lxc.cgroup.relative",
    "lxc.cgroup2.memory.max", "lxc.cgroup2.devices.deny", "lxc.cgroup2.cpuset.cpus.partition",
    "lxc.hook.pre-start", "lxc.hook.start-host", "lxc.hook.post-stop", "lxc.hook.version", "lxc.hook",
    "lxc.sysctl.net.ipv4.ip_forward", "lxc.proc.oom_score_adj",
    "lxc.prlimit.nofile", "lxc.prlimit.as", "lxc.prlimit.7",
    "lxc.namespace.share.net", "lxc.environment", "lxc.environment.runtime", "lxc.environment.hooks",
    "lxc.sched.core", "lxc.time.offset.boot", "lxc.init.groups", "lxc.keyring.session",
])
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key,fragment", [
    ("lxc.foo.bar", "unknown LXC config key 'lxc.foo.bar'"),
    ("", "empty"),
    ("foo.bar", "'foo.bar' is not an LXC config key"),
    ("lxc", "not an LXC config key"),
    ("lxc.", "malformed"),
    ("lxc.cgroup.", "malformed"),
    ("lxc.cgroup", "unknown"),
    ("lxc.cgroup.memory", "bad cgroup key"),
    ("lxc.cgroup.dir.foo", "bad cgroup key"),
    ("lxc.cgroup2.", "malformed"),
    ("lxc.net.x.type", "bad network key"),
    ("lxc.net.0", "bad network key"),
    ("lxc.net.-1.type", "bad network key"),
    ("lxc.net.99999999999.type", "out of range"),
    ("lxc.net.0.foo", "unknown LXC network config key"),
    ("lxc.network.0.foo", "legacy"),
    ("lxc.network.foo", "unknown"),
    ("lxc.hook.bogus", "hook"),
    ("lxc.prlimit.bogus", "resource"),
    ("lxc.namespace.share.bogus", "namespace"),
    ("lxc.sysctl.", "malformed"),
    ("lxc.uts.name ", "whitespace"),
    (" lxc.uts.name", "whitespace"),
    ("lxc.uts .name", "whitespace"),
    ("lxc.uts.name=x", "malformed"),
    ("lxc..uts", "malformed"),
    ("lxc.pivotdir", "removed"),
    ("lxc.rootfs.backend", "removed"),
    ("LXC.uts.name", "not an LXC config key"),
])
def test_validate_key_rejects(key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_key(key)
    assert fragment in str(exc.value)
    assert exc.value.key == key


def test_validate_key_non_string() -> None:
    with pytest.raises(ConfigError):
        validate_key(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("key,multi", [
    ("lxc.idmap", True), ("lxc.id_map", True), ("lxc.mount.entry", True), ("lxc.cap.drop", True),
    ("lxc.cap.keep", True), ("lxc.environment", True), ("lxc.hook.pre-start", True),
    ("lxc.hook.stop", True), ("lxc.hook.version", False), ("lxc.include", True), ("lxc.group", True),
    ("lxc.apparmor.raw", True), ("lxc.mount.auto", True), ("lxc.cgroup.devices.allow", True),
    ("lxc.cgroup.devices.deny", True), ("lxc.cgroup2.devices.allow", True),
    ("lxc.cgroup2.devices.deny", True), ("lxc.net.0.ipv4.address", True),
    ("lxc.net.3.ipv6.address", True), ("lxc.network.0.ipv4", True), ("lxc.net.0.veth.ipv4.route", True),
    ("lxc.net.0.veth.ipv6.route", True), ("lxc.net.0.veth.vlan.tagged.id", True),
    ("lxc.net.0.ipv4.gateway", False), ("lxc.net.0.link", False),
    ("lxc.sysctl.net.ipv4.ip_forward", False), ("lxc.seccomp.profile", False),
    ("lxc.cgroup.memory.limit_in_bytes", False), ("lxc.cgroup2.memory.max", False),
    ("lxc.prlimit.nofile", False), ("lxc.uts.name", False), ("lxc.rootfs.path", False),
])
def test_is_multi_valued(key: str, multi: bool) -> None:
    assert is_multi_valued(key) is multi


# ------------------------------------------------------------- legacy configs

LEGACY_UNINDEXED = """\
lxc.utsname = old
lxc.rootfs = /var/lib/lxc/old/rootfs
lxc.aa_profile = unconfined
lxc.id_map = u 0 100000 65536
lxc.id_map = g 0 100000 65536
# first nic
lxc.network.type = veth
lxc.network.link = br0
lxc.network.ipv4 = 10.0.0.2/24
lxc.network.ipv4 = 10.0.0.3/24
lxc.network.ipv4.gateway = 10.0.0.1
# second nic
lxc.network.type = macvlan
lxc.network.link = eth0
lxc.network.macvlan.mode = bridge
lxc.pivotdir = lxc_putold
"""


def test_legacy_unindexed_read() -> None:
    cfg = LxcConfig.parse(LEGACY_UNINDEXED)
    assert cfg.has_legacy()
    assert cfg.get_one("lxc.uts.name") == "old"
    assert cfg.get_one("lxc.utsname") == "old"
    assert cfg.get("lxc.idmap") == ["u 0 100000 65536", "g 0 100000 65536"]
    assert cfg.get_one("lxc.apparmor.profile") == "unconfined"
    assert cfg.get_one("lxc.rootfs.path") == "/var/lib/lxc/old/rootfs"
    assert cfg.net_indices() == [0, 1]
    assert cfg.get("lxc.net.0.ipv4.address") == ["10.0.0.2/24", "10.0.0.3/24"]
    assert cfg.get_one("lxc.net.0.ipv4.gateway") == "10.0.0.1"
    assert cfg.get_one("lxc.net.1.type") == "macvlan"
    assert cfg.get_one("lxc.net.1.link") == "eth0"
    assert cfg.get_one("lxc.net.1.macvlan.mode") == "bridge"
    assert cfg.render() == LEGACY_UNINDEXED


def test_legacy_modernize() -> None:
    cfg = LxcConfig.parse(LEGACY_UNINDEXED)
    before = cfg.as_dict()
    assert before.pop("lxc.pivotdir") == "lxc_putold"  # removed in LXC 3.0: dropped
    assert cfg.modernize() is True
    assert not cfg.has_legacy()
    assert cfg.render() == (
        "lxc.uts.name = old\n"
        "lxc.rootfs.path = /var/lib/lxc/old/rootfs\n"
        "lxc.apparmor.profile = unconfined\n"
        "lxc.idmap = u 0 100000 65536\n"
        "lxc.idmap = g 0 100000 65536\n"
        "# first nic\n"
        "lxc.net.0.type = veth\n"
        "lxc.net.0.link = br0\n"
        "lxc.net.0.ipv4.address = 10.0.0.2/24\n"
        "lxc.net.0.ipv4.address = 10.0.0.3/24\n"
        "lxc.net.0.ipv4.gateway = 10.0.0.1\n"
        "# second nic\n"
        "lxc.net.1.type = macvlan\n"
        "lxc.net.1.link = eth0\n"
        "lxc.net.1.macvlan.mode = bridge\n"
    )
    assert cfg.as_dict() == before
    assert cfg.errors() == []
    assert cfg.modernize() is False


def test_legacy_indexed_and_rootfs_backend() -> None:
    text = ("lxc.rootfs.backend = lvm\nlxc.rootfs = /dev/vg/c1\nlxc.network.0.type = veth\n"
            "lxc.network.0.ipv6 = fd00::2/64\nlxc.network.1.type = empty\nlxc.tty = 4\n"
            "lxc.pts = 1024\nlxc.limit.nofile = 1024\nlxc.kmsg = 0\n")
    cfg = LxcConfig.parse(text)
    assert cfg.get("lxc.net.0.ipv6.address") == ["fd00::2/64"]
    assert cfg.net_indices() == [0, 1]
    assert cfg.modernize()
    assert cfg.render() == ("lxc.rootfs.path = lvm:/dev/vg/c1\nlxc.net.0.type = veth\n"
                            "lxc.net.0.ipv6.address = fd00::2/64\nlxc.net.1.type = empty\n"
                            "lxc.tty.max = 4\nlxc.pty.max = 1024\nlxc.prlimit.nofile = 1024\n")


def test_legacy_empty_network_type_clears() -> None:
    text = ("lxc.network.type = veth\nlxc.network.link = br0\nlxc.network.type =\n"
            "lxc.network.type = veth\nlxc.network.link = br1\n")
    cfg = LxcConfig.parse(text)
    assert cfg.keys() == ["lxc.net.0.type", "lxc.net.0.link", "lxc.net"]
    assert cfg.get("lxc.net.0.link") == ["br0", "br1"]


def test_legacy_rewritten_by_set() -> None:
    cfg = LxcConfig.parse("# c\nlxc.utsname = old\nlxc.id_map = u 0 1 1\nlxc.tty = 4\n")
    assert cfg.set("lxc.uts.name", "new") is True
    assert cfg.set("lxc.idmap", ["u 0 100000 65536", "g 0 100000 65536"]) is True
    assert cfg.set("lxc.tty", "4") is False  # same value: nothing to do
    assert cfg.render() == ("# c\nlxc.uts.name = new\nlxc.idmap = u 0 100000 65536\n"
                            "lxc.idmap = g 0 100000 65536\nlxc.tty = 4\n")


def test_legacy_key_accepted_by_set() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\n")
    assert cfg.set("lxc.utsname", "b")
    assert cfg.render() == "lxc.uts.name = b\n"
    assert cfg.remove("lxc.utsname")
    assert cfg.render() == ""


# ------------------------------------------------------------- single-valued

def test_set_single_replace_in_place_and_dedupe() -> None:
    text = ("lxc.cgroup.memory.limit_in_bytes = 1G\n# between\n"
            "lxc.cgroup.memory.limit_in_bytes = 2G\nlxc.uts.name = c\n")
    cfg = LxcConfig.parse(text)
    assert cfg.get_one("lxc.cgroup.memory.limit_in_bytes") == "2G"
    assert cfg.set("lxc.cgroup.memory.limit_in_bytes", "512M") is True
    assert cfg.render() == "lxc.cgroup.memory.limit_in_bytes = 512M\n# between\nlxc.uts.name = c\n"
    assert cfg.set("lxc.cgroup.memory.limit_in_bytes", "512M") is False


def test_set_single_duplicate_same_value_is_change() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\nlxc.uts.name = a\n")
    assert cfg.set("lxc.uts.name", "a") is True
    assert cfg.render() == "lxc.uts.name = a\n"
    assert cfg.set("lxc.uts.name", "a") is False


def test_set_unchanged_keeps_formatting() -> None:
    text = "  lxc.uts.name='c1'   \n"
    cfg = LxcConfig.parse(text)
    assert cfg.set("lxc.uts.name", "c1") is False
    assert cfg.render() == text


def test_set_single_append_and_value_types() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = c")  # no trailing newline
    assert cfg.set("lxc.start.auto", 1) is True
    assert cfg.set("lxc.ephemeral", False) is True
    assert cfg.render() == "lxc.uts.name = c\nlxc.start.auto = 1\nlxc.ephemeral = 0\n"
    assert cfg.set("lxc.start.auto", True) is False


def test_set_keeps_crlf() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\r\nlxc.tty.max = 4\r\n")
    cfg.set("lxc.uts.name", "b")
    cfg.set("lxc.pty.max", "10")
    assert cfg.render() == "lxc.uts.name = b\r\nlxc.tty.max = 4\r\nlxc.pty.max = 10\r\n"


def test_set_net_key_appended_to_its_group() -> None:
    text = ("lxc.net.0.type = veth\nlxc.net.0.link = br0\n\nlxc.net.1.type = veth\n"
            "lxc.net.1.link = br1\n\nlxc.uts.name = c\n")
    cfg = LxcConfig.parse(text)
    assert cfg.set("lxc.net.0.hwaddr", "00:16:3e:00:00:01")
    assert cfg.set("lxc.net.1.ipv4.address", ["10.0.1.2/24"])
    assert cfg.set("lxc.net.2.type", "empty")
    assert cfg.render() == (
        "lxc.net.0.type = veth\nlxc.net.0.link = br0\nlxc.net.0.hwaddr = 00:16:3e:00:00:01\n\n"
        "lxc.net.1.type = veth\nlxc.net.1.link = br1\nlxc.net.1.ipv4.address = 10.0.1.2/24\n\n"
        "lxc.uts.name = c\nlxc.net.2.type = empty\n")
    assert cfg.net_indices() == [0, 1, 2]


def test_new_net_type_opens_its_group() -> None:
    # A default config that names only the link (the type comes from an included file): LXC
    # resets the link when it reads a type after it, so a new type line goes first.
    cfg = LxcConfig.parse("lxc.include = /etc/lxc/default.conf\nlxc.net.0.link = br7\nlxc.idmap = u 0 1 2\n")
    assert cfg.set("lxc.net.0.type", "veth")
    assert cfg.set("lxc.net.0.flags", "up")
    assert cfg.render() == ("lxc.include = /etc/lxc/default.conf\nlxc.net.0.type = veth\nlxc.net.0.link = br7\n"
                            "lxc.net.0.flags = up\nlxc.idmap = u 0 1 2\n")


def test_set_value_needing_quotes() -> None:
    cfg = LxcConfig()
    cfg.set("lxc.init.cmd", " /sbin/init")
    assert cfg.render() == "lxc.init.cmd = \" /sbin/init\"\n"
    cfg.set("lxc.uts.name", "")
    assert cfg.render().endswith("lxc.uts.name =\n")


# --------------------------------------------------------------- multi-valued

def test_set_multi_whole_set() -> None:
    text = ("lxc.mount.entry = /a a none bind 0 0\nlxc.uts.name = c\n"
            "lxc.mount.entry = /b b none bind 0 0\n")
    cfg = LxcConfig.parse(text)
    assert cfg.set("lxc.mount.entry", ["/a a none bind 0 0", "/b b none bind 0 0"]) is False
    assert cfg.render() == text
    assert cfg.set("lxc.mount.entry", ["/b b none bind 0 0", "/c c none bind 0 0"]) is True
    assert cfg.render() == ("lxc.mount.entry = /b b none bind 0 0\nlxc.mount.entry = /c c none bind 0 0\n"
                            "lxc.uts.name = c\n")
    assert cfg.set("lxc.mount.entry", []) is True
    assert cfg.render() == "lxc.uts.name = c\n"
    assert cfg.set("lxc.mount.entry", []) is False


def test_set_multi_string_is_one_item_list() -> None:
    cfg = LxcConfig.parse("lxc.cap.drop = sys_module\nlxc.cap.drop = mac_admin\n")
    assert cfg.set("lxc.cap.drop", "sys_time") is True
    assert cfg.get("lxc.cap.drop") == ["sys_time"]
    assert cfg.set("lxc.cap.drop", ["sys_time"]) is False


def test_set_multi_order_matters() -> None:
    cfg = LxcConfig.parse("lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n")
    assert cfg.set("lxc.idmap", ("g 0 100000 65536", "u 0 100000 65536")) is True
    assert cfg.get("lxc.idmap") == ["g 0 100000 65536", "u 0 100000 65536"]


def test_add_and_remove_value() -> None:
    cfg = LxcConfig.parse("lxc.environment = A=1\nlxc.uts.name = c\n")
    assert cfg.add_value("lxc.environment", "A=1") is False
    assert cfg.add_value("lxc.environment", "B=2") is True
    assert cfg.render() == "lxc.environment = A=1\nlxc.environment = B=2\nlxc.uts.name = c\n"
    assert cfg.add_value("lxc.hook.pre-start", "/bin/true") is True
    assert cfg.render().endswith("lxc.hook.pre-start = /bin/true\n")
    assert cfg.remove_value("lxc.environment", "A=1") is True
    assert cfg.remove_value("lxc.environment", "A=1") is False
    assert cfg.get("lxc.environment") == ["B=2"]


def test_add_value_to_net_group() -> None:
    cfg = LxcConfig.parse("lxc.net.0.type = veth\nlxc.net.0.link = br0\nlxc.uts.name = c\n")
    assert cfg.add_value("lxc.net.0.ipv4.address", "10.0.0.2/24")
    assert cfg.render() == ("lxc.net.0.type = veth\nlxc.net.0.link = br0\n"
                            "lxc.net.0.ipv4.address = 10.0.0.2/24\nlxc.uts.name = c\n")


def test_get_effective_honours_clear() -> None:
    cfg = LxcConfig.parse("lxc.cap.drop = a\nlxc.cap.drop =\nlxc.cap.drop = b\n")
    assert cfg.get("lxc.cap.drop") == ["a", "", "b"]
    assert cfg.get_effective("lxc.cap.drop") == ["b"]


# ------------------------------------------------------------------ removal

def test_remove_and_remove_prefix() -> None:
    text = ("lxc.uts.name = c\nlxc.net.0.type = veth\nlxc.net.0.link = br0\n"
            "lxc.net.1.type = veth\nlxc.net.1.link = br1\nlxc.net.10.type = empty\n")
    cfg = LxcConfig.parse(text)
    assert cfg.remove_prefix("lxc.net.1.") is True
    assert cfg.net_indices() == [0, 10]
    assert cfg.remove_prefix("lxc.net.1.") is False
    assert cfg.remove("lxc.uts.name") is True
    assert cfg.remove("lxc.uts.name") is False
    assert cfg.render() == "lxc.net.0.type = veth\nlxc.net.0.link = br0\nlxc.net.10.type = empty\n"


def test_remove_prefix_legacy_network() -> None:
    cfg = LxcConfig.parse("lxc.network.type = veth\nlxc.network.link = br0\nlxc.uts.name = c\n")
    assert cfg.remove_prefix("lxc.network.0.") is True
    assert cfg.render() == "lxc.uts.name = c\n"


def test_remove_unknown_key_present_in_file() -> None:
    cfg = LxcConfig.parse("lxc.foo.bar = 1\nlxc.uts.name = c\n")
    assert "lxc.foo.bar" in cfg.keys()
    assert cfg.remove("lxc.foo.bar") is True
    assert cfg.render() == "lxc.uts.name = c\n"
    with pytest.raises(ConfigError, match="lxc.foo.bar"):
        cfg.remove("lxc.foo.bar")


def test_copy_is_independent() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\n")
    other = cfg.copy()
    other.set("lxc.uts.name", "b")
    assert cfg.get_one("lxc.uts.name") == "a"
    assert other.get_one("lxc.uts.name") == "b"


def test_as_dict_and_keys() -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\nlxc.cap.drop = x\nlxc.uts.name = b\nlxc.network.type = veth\n")
    assert cfg.keys() == ["lxc.uts.name", "lxc.cap.drop", "lxc.net.0.type"]
    assert cfg.as_dict() == {"lxc.uts.name": "b", "lxc.cap.drop": ["x"], "lxc.net.0.type": "veth"}
    assert cfg.get_one("lxc.arch") is None
    assert cfg.get("lxc.arch") == []


# -------------------------------------------------------------- error paths

@pytest.mark.parametrize("call", [
    lambda c: c.set("lxc.foo.bar", "1"),
    lambda c: c.set("", "1"),
    lambda c: c.set("foo", "1"),
    lambda c: c.set("lxc.net.x.type", "veth"),
    lambda c: c.set("lxc.net.0.bogus", "veth"),
    lambda c: c.add_value("lxc.foo.bar", "1"),
    lambda c: c.remove_value("lxc.foo.bar", "1"),
    lambda c: c.remove("lxc.foo.bar"),
    lambda c: c.remove(""),
    lambda c: c.remove_prefix("net."),
    lambda c: c.remove_prefix(""),
], ids=["set-unknown", "set-empty", "set-non-lxc", "set-bad-index", "set-bad-net-sub", "add-unknown",
        "remove-value-unknown", "remove-unknown", "remove-empty", "prefix-non-lxc", "prefix-empty"])
def test_key_errors(call) -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\n")
    with pytest.raises(ConfigError):
        call(cfg)
    assert cfg.render() == "lxc.uts.name = a\n"


@pytest.mark.parametrize("key,value,fragment", [
    ("lxc.uts.name", ["a", "b"], "single-valued"),
    ("lxc.cgroup.memory.limit_in_bytes", ["1G"], "single-valued"),
    ("lxc.uts.name", None, "null"),
    ("lxc.uts.name", {"a": 1}, "must be a string"),
    ("lxc.uts.name", "a\nlxc.idmap = u 0 0 1", "one line"),
    ("lxc.mount.entry", [["nested"]], "nested"),
    ("lxc.mount.entry", {"a"}, "order matters"),
    ("lxc.mount.entry", ["ok", None], "null"),
])
def test_value_errors(key: str, value, fragment: str) -> None:
    cfg = LxcConfig.parse("lxc.uts.name = a\n")
    with pytest.raises(ConfigError) as exc:
        cfg.set(key, value)
    assert fragment in str(exc.value)
    assert key in str(exc.value)
    assert exc.value.key == key
    assert cfg.render() == "lxc.uts.name = a\n"


def test_add_value_single_valued_key_rejected() -> None:
    with pytest.raises(ConfigError, match="lxc.uts.name"):
        LxcConfig().add_value("lxc.uts.name", "a")


def test_config_error_lineno_in_message() -> None:
    err = ConfigError("bad", key="lxc.x", lineno=3)
    assert str(err) == "line 3: bad"
    assert (err.key, err.lineno, err.msg) == ("lxc.x", 3, "bad")
