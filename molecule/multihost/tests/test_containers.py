"""Scenario multihost: inside app1 and app2, through the lxcfleet.lxc.attach connection over SSH to
each one's own LXC host (molecule.yml's inventory: lxc_fleet_host names the host).

testinfra's ansible backend runs one `ansible` process per command: few commands, each telling much."""

from __future__ import annotations

testinfra_hosts = ["lxc_containers"]

# container: its LXC host
FLEET = {"app1": "lfm-multi-h1", "app2": "lfm-multi-h2"}


def test_reached_through_attach_over_ssh(host):
    variables = host.ansible.get_variables()
    name = variables["inventory_hostname"]
    assert host.backend.NAME == "ansible"
    assert variables["ansible_connection"] == "lxcfleet.lxc.attach"
    # ansible_lxc_host is the address of that LXC host (a template; the inventory shows it unrendered)
    assert "lxc_fleet_host" in variables["ansible_lxc_host"]
    assert variables["lxc_fleet_host"] == FLEET[name]
    assert host.check_output("hostname") == name


def test_file_written_by_converge(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    mode, owner, content = host.check_output("stat -c '%a %U' /etc/lfm-multihost && cat /etc/lfm-multihost").split(None, 2)
    assert (mode, owner) == ("644", "root")
    assert content == f"{name} on {FLEET[name]}"


def test_network_and_ids(host):
    """Both containers have the same static lease, each from the dnsmasq of its own host's bridge; root
    in the container is not root of the LXC host (root's containers are unprivileged)."""
    address, route, uid_map = host.check_output(
        "ip -4 -o address show dev eth0 | awk '{print $4}' && ip -4 route show default && cat /proc/self/uid_map").splitlines()
    assert address == "10.0.3.10/24"
    assert route.startswith("default via 10.0.3.1 "), route
    inside, outside, _count = uid_map.split()
    assert inside == "0" and outside != "0", uid_map
