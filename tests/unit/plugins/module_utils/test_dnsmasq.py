# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the dnsmasq module: validation, rendering, planning, and the systemd unit and argv."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _dnsmasq as dm


def params(**kwargs):
    base = dict(bridge="br0", state="present", address="10.0.3.1/24",
                dhcp_range=dict(start="10.0.3.50", end="10.0.3.99", lease_time="12h"),
                static_leases=[dict(name="web1", mac="00:16:3E:00:03:0A", ip="10.0.3.10"),
                               dict(name="lxcmail", mac=None, ip="10.0.3.100")],
                domain="lxc", upstream_servers=[], dhcp_authoritative=True,
                config_dir="/etc/lxcfleet/dnsmasq", state_dir="/var/lib/lxcfleet/dnsmasq",
                unit_dir="/etc/systemd/system", service="process")
    base.update(kwargs)
    return base


@pytest.mark.parametrize("change, message", [
    (dict(bridge="a-name-much-too-long"), "bridge 'a-name-much-too-long' is too long"),
    (dict(bridge="br:0"), "bridge 'br:0' is not a valid interface name"),
    (dict(address=None), "address: required"),
    (dict(address="10.0.3.1"), "address: '10.0.3.1' needs a prefix length"),
    (dict(address="fd00::1/64"), "address: 'fd00::1/64' is not an IPv4 address"),
    (dict(address="10.0.3.1/31"), "address: 10.0.3.1/31 leaves no room"),
    (dict(dhcp_range=dict(start="10.0.4.5", end="10.0.3.9", lease_time="1h")), "dhcp_range.start: 10.0.4.5 is not inside"),
    (dict(dhcp_range=dict(start="10.0.3.5", end="10.0.3.255", lease_time="1h")), "dhcp_range.end: 10.0.3.255 is the network or broadcast"),
    (dict(dhcp_range=dict(start="10.0.3.9", end="10.0.3.5", lease_time="1h")), "dhcp_range: start 10.0.3.9 is after end 10.0.3.5"),
    (dict(dhcp_range=dict(start="10.0.3.1", end="10.0.3.5", lease_time="1h")), "dhcp_range: 10.0.3.1-10.0.3.5 contains the bridge's own"),
    (dict(dhcp_range=dict(start="10.0.3.2", end="10.0.3.5", lease_time="1 hour")), "dhcp_range.lease_time"),
    (dict(static_leases=[dict(name="a", mac=None, ip="10.1.0.5")]), "static_leases[0].ip: 10.1.0.5 is not inside"),
    (dict(static_leases=[dict(name="a", mac=None, ip="10.0.3.1")]), "static_leases[0].ip: 10.0.3.1 is the bridge's own"),
    (dict(static_leases=[dict(name="a", mac=None, ip="10.0.3.5"), dict(name="b", mac=None, ip="10.0.3.5")]),
     "static_leases[1].ip: 10.0.3.5 is already used by static_leases[0]"),
    (dict(static_leases=[dict(name="a", mac="02:00:00:00:00:01", ip="10.0.3.5"), dict(name="b", mac="02-00-00-00-00-01", ip="10.0.3.6")]),
     "static_leases[1].mac: 02:00:00:00:00:01 is already used"),
    (dict(static_leases=[dict(name="a", mac=None, ip="10.0.3.5"), dict(name="A", mac=None, ip="10.0.3.6")]),
     "static_leases[1].name: a is already used"),
    (dict(static_leases=[dict(name="a", mac="02:00:00:00:01", ip="10.0.3.5")]), "static_leases[0].mac: '02:00:00:00:01' is not a MAC"),
    (dict(static_leases=[dict(name="a", mac="01:00:00:00:00:01", ip="10.0.3.5")]), "static_leases[0].mac: '01:00:00:00:00:01' is not a unicast"),
    (dict(static_leases=[dict(name="a b", mac=None, ip="10.0.3.5")]), "static_leases[0].name: 'a b' is not a host name"),
    (dict(domain="bad domain"), "domain: 'bad domain'"),
    (dict(upstream_servers=["dns.example"]), "upstream_servers: 'dns.example'"),
    (dict(config_dir="relative"), "config_dir: 'relative' must be an absolute path"),
])
def test_bad_input(change, message):
    with pytest.raises(dm.DnsmasqError) as info:
        dm.validate_params(params(**change))
    assert str(info.value).startswith(message), str(info.value)


def test_absent_needs_no_address():
    desired = dm.validate_params(params(state="absent", address=None))
    assert desired["state"] == "absent"


def test_render_config_binds_to_bridge_and_forwards_nothing():
    desired = dm.validate_params(params())
    assert dm.render_config(desired).splitlines() == [
        "# Managed by lxcfleet.lxc.dnsmasq: DHCP and DNS for bridge br0. Local changes are overwritten.",
        "interface=br0",
        "bind-interfaces",
        "except-interface=lo",
        "listen-address=10.0.3.1",
        "no-hosts",
        "domain-needed",
        "bogus-priv",
        "addn-hosts=/etc/lxcfleet/dnsmasq/br0.hosts",
        "dhcp-hostsfile=/etc/lxcfleet/dnsmasq/br0.dhcp-hosts",
        "dhcp-leasefile=/var/lib/lxcfleet/dnsmasq/br0.leases",
        "dhcp-range=10.0.3.50,10.0.3.99,12h",
        "dhcp-authoritative",
        "domain=lxc",
        "local=/lxc/",
        "expand-hosts",
        "no-resolv",
    ]


def test_render_upstream_and_static_only_range():
    desired = dm.validate_params(params(dhcp_range=None, upstream_servers=["192.0.2.53", "192.0.2.54#5353"],
                                        domain=None, dhcp_authoritative=False))
    lines = dm.render_config(desired).splitlines()
    assert "dhcp-range=10.0.3.0,static,255.255.255.0" in lines
    assert lines[-4:] == ["strict-order", "no-resolv", "server=192.0.2.53", "server=192.0.2.54#5353"]
    assert "dhcp-authoritative" not in lines
    assert not any(line.startswith(("domain=", "local=")) for line in lines)


def test_no_range_no_leases_no_dhcp():
    desired = dm.validate_params(params(dhcp_range=None, static_leases=[]))
    assert not any(line.startswith(("dhcp-range", "dhcp-authoritative")) for line in dm.render_config(desired).splitlines())


def test_render_hosts_by_mac_and_by_name():
    desired = dm.validate_params(params())
    assert dm.render_dhcp_hosts(desired) == "00:16:3e:00:03:0a,10.0.3.10,web1\nlxcmail,10.0.3.100\n"
    assert dm.render_hosts(desired) == "10.0.3.10 web1\n10.0.3.100 lxcmail\n"


def current(desired, running=True, pid=42, enabled=False, **files):
    rendered = {"config": dm.render_config(desired), "dhcp_hosts": dm.render_dhcp_hosts(desired), "hosts": dm.render_hosts(desired)}
    rendered.update(files)
    return {"files": rendered, "running": running, "pid": pid if running else None, "enabled": enabled}


def ops(result):
    return [(a["op"], a.get("key")) for a in result["actions"]]


def test_plan_fresh_start_writes_then_starts():
    desired = dm.validate_params(params())
    cur = {"files": {"config": None, "dhcp_hosts": None, "hosts": None}, "running": False, "pid": None, "enabled": False}
    assert ops(dm.plan(desired, cur)) == [("write", "dhcp_hosts"), ("write", "hosts"), ("write", "config"), ("start", None)]


def test_plan_nothing_to_do():
    desired = dm.validate_params(params())
    assert dm.plan(desired, current(desired))["actions"] == []


def test_plan_hosts_only_reloads():
    desired = dm.validate_params(params())
    cur = current(desired, dhcp_hosts="old\n", hosts="old\n")
    assert ops(dm.plan(desired, cur)) == [("write", "dhcp_hosts"), ("write", "hosts"), ("reload", None)]


def test_plan_config_change_restarts():
    desired = dm.validate_params(params())
    cur = current(desired, config="old\n")
    assert ops(dm.plan(desired, cur)) == [("write", "config"), ("restart", None)]


def test_plan_not_running_starts():
    desired = dm.validate_params(params())
    assert ops(dm.plan(desired, current(desired, running=False))) == [("start", None)]


def test_plan_service_none_only_writes():
    desired = dm.validate_params(params(service="none"))
    cur = current(desired, running=False, config="old\n")
    assert ops(dm.plan(desired, cur)) == [("write", "config")]


def test_plan_absent():
    desired = dm.validate_params(params(state="absent"))
    cur = {"files": {"config": "x", "dhcp_hosts": "x", "hosts": None, "leases": "", "pid": ""}, "running": True, "pid": 42}
    assert ops(dm.plan(desired, cur)) == [("stop", None), ("remove", "config"), ("remove", "dhcp_hosts"), ("remove", "leases"), ("remove", "pid")]
    gone = {"files": {"config": None, "dhcp_hosts": None, "hosts": None, "leases": None, "pid": None}, "running": False, "pid": None}
    assert dm.plan(desired, gone)["actions"] == []


def test_unit_text():
    desired = dm.validate_params(params(service="systemd"))
    assert dm.unit_name("br0") == "lxcfleet-dnsmasq@br0.service"
    assert dm.paths(desired)["unit"] == "/etc/systemd/system/lxcfleet-dnsmasq@br0.service"
    text = dm.render_unit(desired, "/usr/sbin/dnsmasq")
    assert "Type=forking\n" in text
    assert "PIDFile=/var/lib/lxcfleet/dnsmasq/br0.pid\n" in text
    assert "ExecStart=/usr/sbin/dnsmasq --conf-file=/etc/lxcfleet/dnsmasq/br0.conf --pid-file=/var/lib/lxcfleet/dnsmasq/br0.pid\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text
    assert "WantedBy=multi-user.target\n" in text
    # At boot the bridge's address may appear after the unit starts: ordered after networkd, and
    # restarted on failure without a start limit.
    assert "After=network.target systemd-networkd.service\n" in text
    assert "StartLimitIntervalSec=0\n" in text and "Restart=on-failure\n" in text


class FakeModule:
    """Records run_command argv; systemctl answers with the rc given per subcommand."""

    def __init__(self, rcs=None, bins=("systemctl", "dnsmasq")):
        self.calls = []
        self.rcs = rcs or {}
        self.bins = bins
        self.moved = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name if name in self.bins else None

    def run_command(self, argv):
        self.calls.append(argv)
        return self.rcs.get(argv[1], 0), "", ""

    def atomic_move(self, src, dest):
        self.moved.append(dest)
        import shutil
        shutil.move(src, dest)


def test_missing_dnsmasq_binary():
    with pytest.raises(dm.DnsmasqError) as info:
        dm.find_dnsmasq(FakeModule(bins=()))
    assert str(info.value).startswith("service: the dnsmasq binary is not installed")


def test_systemd_read_and_apply_argv(tmp_path):
    desired = dm.validate_params(params(service="systemd", config_dir=str(tmp_path / "etc"), state_dir=str(tmp_path / "state"),
                                        unit_dir=str(tmp_path / "units")))
    module = FakeModule(rcs={"is-active": 3, "is-enabled": 1})
    cur = dm.read_current(module, desired)
    assert module.calls == [["/usr/bin/systemctl", "is-active", "--quiet", "lxcfleet-dnsmasq@br0.service"],
                            ["/usr/bin/systemctl", "is-enabled", "--quiet", "lxcfleet-dnsmasq@br0.service"]]
    assert cur["running"] is False and cur["enabled"] is False
    result = dm.plan(desired, cur, "/usr/sbin/dnsmasq")
    assert ops(result) == [("write", "dhcp_hosts"), ("write", "hosts"), ("write", "config"), ("write", "unit"),
                           ("daemon-reload", None), ("enable", None), ("start", None)]
    module.calls = []
    flags = dm.apply(module, desired, cur, result, "/usr/bin/dnsmasq")
    assert flags["started"] is True
    assert module.calls[0][:2] == ["/usr/bin/dnsmasq", "--test"]
    assert module.calls[1:] == [["/usr/bin/systemctl", "daemon-reload"],
                                ["/usr/bin/systemctl", "enable", "lxcfleet-dnsmasq@br0.service"],
                                ["/usr/bin/systemctl", "start", "lxcfleet-dnsmasq@br0.service"]]
    assert (tmp_path / "units" / "lxcfleet-dnsmasq@br0.service").read_text() == result["files"]["unit"]
    assert (tmp_path / "state").is_dir()  # dnsmasq cannot create its lease file in a missing folder
    # Nothing to do on a rerun; a config change restarts.
    cur = dm.read_current(FakeModule(), desired)
    assert dm.plan(desired, cur, "/usr/sbin/dnsmasq")["actions"] == []
    changed = dm.validate_params(dict(params(service="systemd", config_dir=str(tmp_path / "etc"), state_dir=str(tmp_path / "state"),
                                             unit_dir=str(tmp_path / "units")), domain="fleet"))
    result = dm.plan(changed, cur, "/usr/sbin/dnsmasq")
    assert ops(result) == [("write", "config"), ("restart", None)]
    module = FakeModule()
    dm.apply(module, changed, cur, result, "/usr/bin/dnsmasq")
    assert module.calls[-1] == ["/usr/bin/systemctl", "restart", "lxcfleet-dnsmasq@br0.service"]


def test_systemd_reload_and_absent(tmp_path):
    base = params(service="systemd", config_dir=str(tmp_path / "etc"), state_dir=str(tmp_path / "state"), unit_dir=str(tmp_path / "units"))
    desired = dm.validate_params(base)
    module = FakeModule()
    cur = dm.read_current(module, desired)
    dm.apply(module, desired, cur, dm.plan(desired, cur, "/usr/sbin/dnsmasq"), "/usr/bin/dnsmasq")
    new = dm.validate_params(dict(base, static_leases=[dict(name="web1", mac=None, ip="10.0.3.11")]))
    cur = dm.read_current(FakeModule(), new)
    result = dm.plan(new, cur, "/usr/sbin/dnsmasq")
    assert ops(result) == [("write", "dhcp_hosts"), ("write", "hosts"), ("reload", None)]
    module = FakeModule()
    assert dm.apply(module, new, cur, result, "/usr/bin/dnsmasq")["reloaded"] is True
    assert module.calls == [["/usr/bin/systemctl", "reload", "lxcfleet-dnsmasq@br0.service"]]
    gone = dm.validate_params(dict(base, state="absent"))
    cur = dm.read_current(FakeModule(), gone)
    result = dm.plan(gone, cur)
    assert ops(result) == [("stop", None), ("remove", "config"), ("remove", "dhcp_hosts"), ("remove", "hosts"), ("remove", "unit"),
                           ("daemon-reload", None)]
    module = FakeModule()
    dm.apply(module, gone, cur, result, None)
    assert module.calls == [["/usr/bin/systemctl", "disable", "--now", "lxcfleet-dnsmasq@br0.service"], ["/usr/bin/systemctl", "daemon-reload"]]
    assert not any((tmp_path / "etc").iterdir())


def test_hostsdir_renders_dhcp_hostsdir_after_the_hostsfile():
    desired = dm.validate_params(params(hostsdir=True))
    lines = dm.render_config(desired).splitlines()
    assert dm.paths(desired)["hostsdir"] == "/etc/lxcfleet/dnsmasq/br0.hosts.d"
    index = lines.index("dhcp-hostsdir=/etc/lxcfleet/dnsmasq/br0.hosts.d")
    assert lines[index - 1] == "dhcp-hostsfile=/etc/lxcfleet/dnsmasq/br0.dhcp-hosts"
    assert lines[index + 1] == "dhcp-leasefile=/var/lib/lxcfleet/dnsmasq/br0.leases"
    assert not any(line.startswith("dhcp-hostsdir") for line in dm.render_config(dm.validate_params(params())).splitlines())


def test_plan_hostsdir_creates_the_folder_first_and_restarts():
    desired = dm.validate_params(params(hostsdir=True))
    cur = current(dm.validate_params(params()))  # running with the config of hostsdir=false
    cur["hostsdir"] = None
    result = dm.plan(desired, cur)
    assert ops(result) == [("mkdir", "hostsdir"), ("write", "config"), ("restart", None)]
    assert result["actions"][0]["text"] == "create folder /etc/lxcfleet/dnsmasq/br0.hosts.d (0755)"


@pytest.mark.parametrize("state, expected", [
    (0o755, []),
    (0o700, [("chmod", "hostsdir")]),
    (None, [("mkdir", "hostsdir")]),
])
def test_plan_hostsdir_folder_states(state, expected):
    desired = dm.validate_params(params(hostsdir=True))
    cur = current(desired)
    cur["hostsdir"] = state
    assert ops(dm.plan(desired, cur)) == expected


def test_plan_hostsdir_not_a_folder_fails():
    desired = dm.validate_params(params(hostsdir=True))
    cur = current(desired)
    cur["hostsdir"] = "notdir"
    with pytest.raises(dm.DnsmasqError) as info:
        dm.plan(desired, cur)
    assert str(info.value) == "hostsdir: /etc/lxcfleet/dnsmasq/br0.hosts.d exists and is not a folder"


def test_plan_hostsdir_false_leaves_an_existing_folder():
    desired = dm.validate_params(params())
    cur = current(desired)
    cur["hostsdir"] = 0o755
    assert dm.plan(desired, cur)["actions"] == []
    diff = dm.diff_of(desired, cur, dm.plan(desired, cur)["files"])
    assert diff[-1] == {"before_header": "/etc/lxcfleet/dnsmasq/br0.hosts.d", "after_header": "/etc/lxcfleet/dnsmasq/br0.hosts.d",
                        "before": "folder, mode 0755\n", "after": "folder, mode 0755\n"}


def test_plan_absent_removes_the_hostsdir():
    desired = dm.validate_params(params(state="absent"))
    cur = {"files": {"config": "x", "dhcp_hosts": None, "hosts": None, "leases": None, "pid": None}, "running": False, "pid": None,
           "hostsdir": 0o755}
    result = dm.plan(desired, cur)
    assert ops(result) == [("remove", "config"), ("rmtree", "hostsdir")]
    assert dm.diff_of(desired, cur, result["files"])[-1]["after"] == ""


def test_hostsdir_read_apply_and_absent(tmp_path):
    base = params(hostsdir=True, service="none", config_dir=str(tmp_path / "etc"), state_dir=str(tmp_path / "state"))
    desired = dm.validate_params(base)
    folder = tmp_path / "etc" / "br0.hosts.d"
    module = FakeModule()
    cur = dm.read_current(module, desired)
    assert cur["hostsdir"] is None
    result = dm.plan(desired, cur)
    diff = dm.diff_of(desired, cur, result["files"])
    assert diff[-1]["before"] == "" and diff[-1]["after"] == "folder, mode 0755\n"
    dm.apply(module, desired, cur, result, "/usr/bin/dnsmasq")
    assert folder.is_dir() and (folder.stat().st_mode & 0o7777) == 0o755
    assert "dhcp-hostsdir=%s\n" % folder in (tmp_path / "etc" / "br0.conf").read_text()
    cur = dm.read_current(FakeModule(), desired)
    assert cur["hostsdir"] == 0o755 and dm.plan(desired, cur)["actions"] == []
    folder.chmod(0o700)
    cur = dm.read_current(FakeModule(), desired)
    result = dm.plan(desired, cur)
    assert ops(result) == [("chmod", "hostsdir")]
    dm.apply(FakeModule(), desired, cur, result, "/usr/bin/dnsmasq")
    assert (folder.stat().st_mode & 0o7777) == 0o755
    (folder / "web2").write_text("02:00:00:00:00:02,10.0.3.12,web2\n")
    gone = dm.validate_params(dict(base, state="absent"))
    cur = dm.read_current(FakeModule(), gone)
    result = dm.plan(gone, cur)
    assert ("rmtree", "hostsdir") in ops(result)
    dm.apply(FakeModule(), gone, cur, result, None)
    assert not folder.exists()
    assert not any((tmp_path / "etc").iterdir())
