# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the container module's option model: compilation of the typed helpers."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._container import (
    CgroupLayout,
    OptionError,
    compile_all,
    parse_size,
    plan_config,
)

BUSYBOX = """# Template used to create this container: /usr/share/lxc/templates/lxc-busybox

lxc.net.0.type = veth
lxc.net.0.link = lxcbr0
lxc.net.0.flags = up
lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc
lxc.rootfs.path = dir:/var/lib/lxc/t1/rootfs
lxc.uts.name = "t1"
lxc.cap.drop = sys_module mac_admin mac_override sys_time
lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0
lxc.mount.entry = /lib lib none ro,bind 0 0
"""


class FakeLayout(CgroupLayout):
    def __init__(self, versions):
        self.versions = versions

    def version(self, controller):
        return self.versions.get(controller)


V1 = FakeLayout({"memory": 1, "cpuset": 1, "cpu": 1, "pids": 1})
V2 = FakeLayout({"memory": 2, "cpuset": 2, "cpu": 2, "pids": 2})


def plan(params, text=BUSYBOX, layout=V1):
    return plan_config(text, compile_all(params, layout))


def test_no_options_no_change():
    new, changed = plan({})
    assert new == BUSYBOX
    assert changed == []


@pytest.mark.parametrize(
    "layout, key, value",
    [
        (V1, "lxc.cgroup.memory.limit_in_bytes", "536870912"),
        (V2, "lxc.cgroup2.memory.max", "536870912"),
    ],
)
def test_memory_limit_follows_cgroup_version(layout, key, value):
    new, changed = plan({"limits": {"memory": "512M"}}, layout=layout)
    assert "%s = %s\n" % (key, value) in new
    assert changed == [key]


def test_limit_of_other_version_is_removed():
    text = BUSYBOX + "lxc.cgroup2.memory.max = 1G\n"
    new, changed = plan({"limits": {"memory": "1G"}}, text=text, layout=V1)
    assert "lxc.cgroup2.memory.max" not in new
    assert "lxc.cgroup.memory.limit_in_bytes = 1073741824" in new


def test_cpu_weight_v1_shares():
    new = plan({"limits": {"cpu_weight": 200}}, layout=V1)[0]
    assert "lxc.cgroup.cpu.shares = 2048" in new
    new = plan({"limits": {"cpu_weight": 200}}, layout=V2)[0]
    assert "lxc.cgroup2.cpu.weight = 200" in new


def test_duplicate_single_key_collapses_to_one_line():
    text = BUSYBOX + "lxc.cgroup.memory.limit_in_bytes = 1G\nlxc.cgroup.memory.limit_in_bytes = 2G\n"
    new = plan({"limits": {"memory": "128M"}}, text=text)[0]
    lines = [l for l in new.splitlines() if l.startswith("lxc.cgroup.memory.limit_in_bytes")]
    assert lines == ["lxc.cgroup.memory.limit_in_bytes = 134217728"]


def test_network_keeps_unnamed_fields_and_drops_extra_interfaces():
    text = BUSYBOX + "lxc.net.1.type = veth\nlxc.net.1.link = br1\n"
    new, changed = plan({"network": [{"type": "veth", "link": "br9"}]}, text=text)
    assert "lxc.net.0.link = br9" in new
    assert "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc" in new
    assert "lxc.net.1" not in new
    assert "lxc.net.1.type" in changed


def test_network_type_change_starts_interface_afresh():
    new = plan({"network": [{"type": "empty"}]})[0]
    assert "lxc.net.0.type = empty" in new
    assert "lxc.net.0.hwaddr" not in new
    assert "lxc.net.0.flags" not in new


def test_mounts_owned_by_target():
    new = plan({"mounts": [{"source": "/srv", "target": "/lib", "options": "bind,ro"}]})[0]
    entries = [l for l in new.splitlines() if l.startswith("lxc.mount.entry")]
    assert entries == [
        "lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0",
        "lxc.mount.entry = /srv lib none bind,ro 0 0",
    ]
    new = plan({"mounts": [{"target": "dev/shm", "state": "absent"}]})[0]
    assert "dev/shm" not in new
    assert "/lib lib none ro,bind 0 0" in new


def test_capabilities_compare_split_names():
    new, changed = plan({"capabilities": {"drop": ["sys_module", "mac_admin", "mac_override", "sys_time"]}})
    assert changed == []
    new, changed = plan({"capabilities": {"drop": ["CAP_SYS_TIME"]}})
    assert "lxc.cap.drop = sys_time\n" in new


def test_legacy_keys_modernized_when_written():
    text = "lxc.utsname = old\nlxc.network.type = veth\nlxc.network.link = br0\n"
    new = plan({"config": {"lxc.uts.name": "new"}}, text=text)[0]
    assert new == "lxc.uts.name = new\nlxc.net.0.type = veth\nlxc.net.0.link = br0\n"


def test_nesting_and_autostart():
    new = plan({"nesting": True, "autostart": {"enabled": True, "order": 5, "groups": ["web", "prod"]}})[0]
    assert "lxc.include = /usr/share/lxc/config/nesting.conf" in new
    assert "lxc.apparmor.allow_nesting = 1" in new
    assert "lxc.start.auto = 1" in new
    assert "lxc.start.order = 5" in new
    assert "lxc.group = web\nlxc.group = prod" in new
    again, changed = plan({"nesting": True, "autostart": {"enabled": True, "order": 5, "groups": ["web", "prod"]}}, text=new)
    assert again == new and changed == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"config": {"lxc.foo.bar": 1}}, "lxc.foo.bar"),
        ({"config": {"lxc.uts.name": ["a", "b"]}}, "takes a single value"),
        ({"config": {"lxc.uts.name": None}}, "config_remove"),
        ({"config": {"lxc.uts.name": "a\nb"}}, "newline"),
        ({"config": {"lxc.rootfs.path": "/x"}}, "lxc.rootfs.path"),
        ({"config_remove": ["lxc.nope"]}, "config_remove"),
        ({"config": {"lxc.net.0.link": "x"}, "network": [{"link": "y"}]}, "also set by the network option"),
        ({"config": {"lxc.start.auto": 1}, "autostart": {"enabled": True}}, "autostart.enabled"),
        ({"config_remove": ["lxc.apparmor.profile"], "apparmor_profile": "unconfined"}, "apparmor_profile"),
        ({"network": [{"type": "bogus"}]}, "network[0].type"),
        ({"network": [{"type": "macvlan"}]}, "network[0].link is required"),
        ({"network": [{"link": "a-name-that-is-too-long"}]}, "network[0].link"),
        ({"network": [{"link": "br0", "ipv4": ["10.0.0.1"]}]}, "network[0].ipv4"),
        ({"network": [{"link": "br0", "ipv4": ["fd00::1/64"]}]}, "network[0].ipv4"),
        ({"network": [{"link": "br0", "ipv6": ["10.0.0.1/24"]}]}, "network[0].ipv6"),
        ({"network": [{"link": "br0", "ipv4_gateway": "nope"}]}, "network[0].ipv4_gateway"),
        ({"network": [{"link": "br0", "hwaddr": "zz:00:00:00:00:00"}]}, "network[0].hwaddr"),
        ({"network": [{"link": "br0", "mtu": 10}]}, "network[0].mtu"),
        ({"network": [{"link": "br0", "name": "eth0"}, {"link": "br0", "name": "eth0"}]}, "network[1].name"),
        ({"network": [{"type": "empty", "link": "br0"}]}, "network[0]: type empty"),
        ({"network": [{"link": "br0", "macvlan_mode": "bridge"}]}, "network[0].macvlan_mode"),
        ({"mounts": [{"source": "/a", "target": "/"}]}, "mounts[0].target"),
        ({"mounts": [{"source": "/a", "target": "../etc"}]}, "mounts[0].target"),
        ({"mounts": [{"target": "srv"}]}, "mounts[0].source"),
        ({"mounts": [{"source": "/a b", "target": "srv"}]}, "mounts[0].source"),
        ({"mounts": [{"source": "/a", "target": "srv"}, {"source": "/b", "target": "/srv/"}]}, "mounts[1].target"),
        ({"limits": {"memory": "lots"}}, "limits.memory"),
        ({"limits": {"cpus": "all"}}, "limits.cpus"),
        ({"limits": {"cpu_weight": 0}}, "limits.cpu_weight"),
        ({"limits": {"pids": "-5"}}, "limits.pids"),
        ({"autostart": {"groups": ["a b"]}}, "autostart.groups"),
        ({"autostart": {"delay": -1}}, "autostart.delay"),
        ({"capabilities": {"drop": ["sys admin"]}}, "capabilities.drop"),
        ({"capabilities": {"drop": ["a"], "keep": ["b"]}}, "mutually exclusive"),
        ({"apparmor_profile": "two words"}, "apparmor_profile"),
    ],
)
def test_bad_input_names_the_option(params, message):
    with pytest.raises(OptionError) as excinfo:
        compile_all(params, V1)
    assert message in str(excinfo.value)


def test_missing_controller_is_reported():
    with pytest.raises(OptionError, match="limits.pids: this host has no pids cgroup controller"):
        compile_all({"limits": {"pids": 10}}, FakeLayout({}))


@pytest.mark.parametrize("value, expected", [(1024, 1024), ("1K", 1024), ("512M", 536870912), ("2g", 2147483648), ("1 GiB", 1073741824)])
def test_parse_size(value, expected):
    assert parse_size("limits.memory", value) == expected


def test_cgroup_layout_reads_hybrid_and_unified(tmp_path):
    (tmp_path / "memory").mkdir()
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("pids\n")
    layout = CgroupLayout(str(tmp_path))
    assert layout.version("memory") == 1
    assert layout.version("pids") == 2
    assert layout.version("cpuset") is None
    (tmp_path / "cgroup.controllers").write_text("cpuset memory\n")
    assert layout.version("memory") == 2
    assert layout.version("pids") is None


def test_snapshot_folders(tmp_path):
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._container_manager import snapshot_folders

    assert snapshot_folders(str(tmp_path)) == []
    (tmp_path / "snaps").mkdir()
    assert snapshot_folders(str(tmp_path)) == []
    for name in ("snap1", "snap0"):
        (tmp_path / "snaps" / name).mkdir()
    (tmp_path / "snaps" / "stray-file").write_text("x")
    assert snapshot_folders(str(tmp_path)) == ["snap0", "snap1"]
