"""Scenario reboot: after the host container restarted, with no playbook run since, everything the
roles set up is back: bridge, NAT tables, DHCP with the static leases, the autostart containers in
their order, and the non-autostart container stays stopped."""

from __future__ import annotations

import re
import urllib.request

testinfra_hosts = ["lxc_hosts"]

HOST_ADDRESS = "10.254.4.2"
# name: (state after the restart, static address)
FLEET = {"app1": ("RUNNING", "10.0.3.10"), "app2": ("RUNNING", "10.0.3.11"), "app3": ("STOPPED", "10.0.3.12")}


def started_at(host, pid):
    """Start time of a process in seconds since the (machine's) boot: field 22 of /proc/PID/stat."""
    fields = host.file(f"/proc/{pid}/stat").content_string.rpartition(")")[2].split()
    return int(fields[19]) / int(host.check_output("getconf CLK_TCK"))


def test_host_booted_after_converge(host):
    # The host's init is younger than the files the roles wrote: a real restart happened since, and
    # nothing the roles manage has been written after it (no playbook ran).
    init_age = int(host.check_output("ps -o etimes= -p 1"))
    for path in ("/etc/nftables.d/lxcfleet-lxcfleet_fleet.nft", "/etc/systemd/network/50-lxcfleet-lxcbr0.network",
                 "/etc/lxcfleet/dnsmasq/lxcbr0.hosts.d/app1", "/var/lib/lxc/app1/config"):
        file_age = int(host.check_output("echo $(( $(date +%%s) - $(stat -c %%Y %s) ))", path))
        assert init_age < file_age, (path, init_age, file_age)


def test_booted_cleanly(host):
    assert host.run("systemctl is-system-running").stdout.strip() == "running"
    assert host.check_output("systemctl list-units --state=failed --no-legend --plain") == ""


def test_bridge_back(host):
    bridge = host.interface("lxcbr0")
    assert bridge.exists
    assert host.check_output("ip -4 -o address show dev lxcbr0").split()[3] == "10.0.3.1/24"
    # systemd-networkd made and configured it at boot, from the role's files.
    assert host.service("systemd-networkd").is_running
    assert re.search(r"^\s*\d+\s+lxcbr0\s+bridge\s+\S+\s+configured\b", host.check_output("networkctl list --no-legend lxcbr0"), re.M)
    # the running containers' veths are its ports
    assert len(host.check_output("ls /sys/class/net/lxcbr0/brif").split()) == 2


def test_nat_back(host):
    assert host.service("nftables").is_enabled
    assert host.check_output("systemctl show -p ActiveState --value nftables") == "active"
    tables = host.check_output("nft list tables").splitlines()
    assert "table inet lxcfleet" in tables and "table inet lxcfleet_fleet" in tables, tables
    host_table = host.check_output("nft list table inet lxcfleet")
    assert re.search(r"ip saddr 10\.0\.3\.0/24 .*masquerade", host_table), host_table
    fleet_table = host.check_output("nft list table inet lxcfleet_fleet")
    assert re.search(r"tcp dport 8080 .*dnat ip to 10\.0\.3\.10:80", fleet_table), fleet_table
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "1"


def test_dhcp_back_with_the_static_leases(host):
    dnsmasq = host.service("lxcfleet-dnsmasq@lxcbr0")
    assert dnsmasq.is_running and dnsmasq.is_enabled
    leases = host.file("/var/lib/lxcfleet/dnsmasq/lxcbr0.leases").content_string
    for name, (state, address) in FLEET.items():
        if state != "RUNNING":
            continue
        # The container asked for its address again after the restart and got its static lease by DHCP.
        addr = host.check_output("lxc-attach -n %s -- ip -4 -o address show dev eth0", name)
        assert f"inet {address}/24 " in addr and " dynamic " in addr, addr
        mac = host.check_output("sed -n 's/^lxc.net.0.hwaddr *= *//p' /var/lib/lxc/%s/config", name).lower()
        assert host.file(f"/etc/lxcfleet/dnsmasq/lxcbr0.hosts.d/{name}").content_string.strip() == f"{mac},{address},{name}"
        assert re.search(rf"^\d+ {re.escape(mac)} {re.escape(address)} ", leases, re.M), leases


def test_autostart_containers_back_the_other_stopped(host, lxc_info):
    assert host.service("lxc").is_enabled
    for name, (state, address) in FLEET.items():
        info = lxc_info(host, name)
        assert info["State"] == [state], (name, info)
        assert info.get("IP", []) == ([address] if state == "RUNNING" else []), (name, info)
    assert not host.file("/var/lib/lxc/app3/config").contains("^lxc.start.auto *= *1")


def test_autostart_order(host, lxc_info):
    # lxc.start.order 10 (app1) before 20 (app2); app1's lxc.start.delay of 3 s comes between them.
    app1 = started_at(host, lxc_info(host, "app1")["PID"][0])
    app2 = started_at(host, lxc_info(host, "app2")["PID"][0])
    assert app2 - app1 >= 2.5, (app1, app2)


def test_port_forward_from_this_machine():
    """Port 8080 of the host container's address reaches app1's port 80 (from outside the host)."""
    with urllib.request.urlopen(f"http://{HOST_ADDRESS}:8080/", timeout=10) as resp:
        assert resp.status == 200
        assert resp.read().decode() == "lxcfleet molecule reboot: app1\n"
