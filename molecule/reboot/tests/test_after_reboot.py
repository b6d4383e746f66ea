"""Scenario reboot: after the host container restarted, with no playbook run since, everything the
roles set up is back: bridge, NAT tables, DHCP with the static lease, the autostart container."""

from __future__ import annotations

import re

testinfra_hosts = ["lxc_hosts"]


def lxc_info(host, name, *, owner=None):
    """lxc-info's 'Key: value' lines of a container as {key: [values]} (State, PID, IP ...)."""
    cmd = "lxc-info -n %s -s -p -i" if owner is None else "runuser -u " + owner + " -- lxc-info -n %s -s -p -i"
    info = {}
    for line in host.check_output(cmd, name).splitlines():
        key, _sep, value = line.partition(":")
        info.setdefault(key.strip(), []).append(value.strip())
    return info


def test_host_booted_after_converge(host):
    # The host's init is younger than the files the roles wrote: a real restart happened since.
    init_age = int(host.check_output("ps -o etimes= -p 1"))
    file_age = int(host.check_output("echo $(( $(date +%s) - $(stat -c %Y /etc/nftables.d/lxcfleet-lxcfleet_fleet.nft) ))"))
    assert init_age < file_age


def test_bridge_back(host):
    bridge = host.interface("lxcbr0")
    assert bridge.exists
    assert "10.0.3.1" in bridge.addresses
    assert host.service("systemd-networkd").is_running


def test_nat_back(host):
    tables = host.check_output("nft list tables").splitlines()
    assert any(re.fullmatch(r"table \w+ lxcfleet", t) for t in tables), tables
    assert any(re.fullmatch(r"table \w+ lxcfleet_fleet", t) for t in tables), tables
    ruleset = host.check_output("nft list table inet lxcfleet_fleet || nft list table ip lxcfleet_fleet")
    assert "8080" in ruleset and "10.0.3.10" in ruleset
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "1"


def test_dhcp_back_with_the_static_lease(host):
    assert host.service("lxcfleet-dnsmasq@lxcbr0").is_running
    # app1 asked for its address again after the restart, and got its static lease by DHCP.
    addr = host.check_output("lxc-attach -n app1 -- ip -4 -o addr show dev eth0")
    assert "inet 10.0.3.10/24" in addr and " dynamic " in addr, addr
    mac = host.check_output("sed -n 's/^lxc.net.0.hwaddr *= *//p' /var/lib/lxc/app1/config").lower()
    leases = host.file("/var/lib/lxcfleet/dnsmasq/lxcbr0.leases").content_string
    assert re.search(rf"^\d+ {re.escape(mac)} 10\.0\.3\.10 app1 ", leases, re.M), leases


def test_autostart(host):
    app1 = lxc_info(host, "app1")
    assert app1["State"] == ["RUNNING"] and app1["IP"] == ["10.0.3.10"], app1
    assert lxc_info(host, "app2")["State"] == ["STOPPED"]
