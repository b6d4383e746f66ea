"""Scenario default: the LXC host (a host container, over SSH) and what reaches it from this machine."""

from __future__ import annotations

import re
import urllib.request

testinfra_hosts = ["lxc_hosts"]

HOST_ADDRESS = "10.254.1.2"
# name: (state, static address)
FLEET = {"web1": ("RUNNING", "10.0.3.10"), "web2": ("RUNNING", "10.0.3.11"), "db1": ("STOPPED", "10.0.3.20")}


def test_systemd_and_services(host):
    assert host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
    assert host.service("systemd-networkd").is_running
    assert host.service("lxcfleet-dnsmasq@lxcbr0").is_running
    assert host.service("lxcfleet-dnsmasq@lxcbr0").is_enabled
    assert host.service("nftables").is_enabled
    assert host.service("lxc").is_enabled


def test_bridge(host):
    bridge = host.interface("lxcbr0")
    assert bridge.exists
    assert "10.0.3.1" in bridge.addresses
    assert host.file("/etc/systemd/network/50-lxcfleet-lxcbr0.netdev").exists
    assert host.file("/etc/systemd/network/50-lxcfleet-lxcbr0.network").exists


def test_nat_tables(host):
    tables = host.check_output("nft list tables")
    assert "table inet lxcfleet" in tables or "table ip lxcfleet" in tables
    assert "lxcfleet_fleet" in tables
    fleet = host.check_output("nft list ruleset")
    assert "8080" in fleet and "10.0.3.10" in fleet
    assert host.file("/etc/nftables.d/lxcfleet-lxcfleet_fleet.nft").contains("10.0.3.10")


def test_fleet_states_and_addresses(host, lxc_info):
    for name, (state, address) in FLEET.items():
        info = lxc_info(host, name)
        assert info["State"] == [state], (name, info)
        assert info.get("IP", []) == ([address] if state == "RUNNING" else []), (name, info)


def test_static_leases(host):
    """One dhcp-hostsdir file per container: MAC,IP,NAME, the MAC being the container's own."""
    for name, (_state, address) in FLEET.items():
        lease = host.file(f"/etc/lxcfleet/dnsmasq/lxcbr0.hosts.d/{name}").content_string.strip()
        assert re.fullmatch(rf"([0-9a-f]{{2}}:){{5}}[0-9a-f]{{2}},{re.escape(address)},{name}", lease), lease
        mac = host.check_output("sed -n 's/^lxc.net.0.hwaddr *= *//p' /var/lib/lxc/%s/config", name)
        assert lease.split(",")[0] == mac.lower(), (lease, mac)


def test_containers_reach_each_other(host):
    page = host.check_output(
        "lxc-attach -n web2 -- python3 -c %s",
        "import urllib.request; print(urllib.request.urlopen('http://10.0.3.10/', timeout=10).read().decode(), end='')")
    assert page == "lxcfleet molecule default: web1"


def test_port_forward_from_this_machine():
    """Port 8080 of the host container's address reaches web1's port 80 (from outside the host)."""
    with urllib.request.urlopen(f"http://{HOST_ADDRESS}:8080/", timeout=10) as resp:
        assert resp.status == 200
        assert resp.read().decode() == "lxcfleet molecule default: web1\n"
