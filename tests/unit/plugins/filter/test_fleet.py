# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lxc_fleet role's planning filters: merge, normalise, validate, forwards."""
from __future__ import annotations

import hashlib

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.lxcfleet.lxc.plugins.filter.fleet import (
    derive_mac, fleet_bridge_network, fleet_inventory, fleet_nat, fleet_networks, fleet_nft_file, fleet_plan,
)

USERS = ["root", "alice"]


def plan(containers=None, **kw):
    kw.setdefault("users", USERS)
    kw.setdefault("defaults", {"template": "busybox"})
    return fleet_plan(containers or [], "lxc1", **kw)


def test_mac_is_derived_from_host_and_name_and_stable():
    digest = hashlib.md5(b"lxc1web1").hexdigest()
    assert derive_mac("lxc1", "web1") == "00:16:3e:%s:%s:%s" % (digest[0:2], digest[2:4], digest[4:6])
    assert derive_mac("lxc1", "web1") != derive_mac("lxc2", "web1")


def test_defaults_merge_and_normalise():
    [item] = plan([{"name": "web1", "ipv4": "10.0.3.10", "port_forwards": [{"port": 8080, "dest_port": 80}],
                    "autostart": True}], networks={"lxcbr0": "10.0.3.0/24"})
    assert item["template"] == "busybox"
    assert item["state"] == "started" and item["owner"] == "root" and item["unprivileged"] is True
    assert item["become"] is False
    assert item["network"] == [{"type": "veth", "link": "lxcbr0", "hwaddr": derive_mac("lxc1", "web1"), "name": "eth0"}]
    assert item["port_forwards"] == [{"proto": "tcp", "port": "8080", "dest": "10.0.3.10", "dest_port": 80}]
    assert item["autostart"] == {"enabled": True}
    assert item["base"] is None


def test_a_source_in_the_spec_replaces_the_defaults_source():
    [item] = plan([{"name": "a", "image": {"dist": "debian", "release": "bookworm"}}],
                  defaults={"template": "busybox", "template_options": ["-x"], "unprivileged": False})
    assert item["image"] == {"dist": "debian", "release": "bookworm"}
    assert item["template"] is None and item["template_options"] == []
    assert item["unprivileged"] is False


def test_base_default_and_override():
    items = plan([{"name": "a"}, {"name": "b", "base": None}, {"name": "c", "base": {"name": "x"}},
                  {"name": "d", "clone_from": "a", "template": None}], base={})
    assert [i["base"] for i in items] == [{}, None, {"name": "x"}, None]


def test_inventory_hosts_of_this_host_only():
    hostvars = {
        "web1": {"lxc_fleet_host": "lxc1", "lxc_fleet_container": {"ipv4": "10.0.3.11"}},
        "db1": {"lxc_fleet_host": "lxc2"},
        "app1": {"lxc_fleet_host": "lxc1", "lxc_fleet_container": {"name": "app", "owner": "alice"}},
        "plain": {},
    }
    items = plan([{"name": "local1"}], inventory_hosts=["web1", "db1", "app1", "plain"], hostvars=hostvars)
    assert [(i["name"], i["inventory_name"]) for i in items] == [("local1", "local1"), ("web1", "web1"), ("app", "app1")]
    assert items[2]["become"] is True and items[2]["owner"] == "alice"


@pytest.mark.parametrize("containers, kw, message", [
    ([{"name": "-bad"}], {}, "container '-bad' (lxc_fleet_containers[0]): name: '-bad' is not a container name"),
    ([{"name": "a"}, {"name": "a"}], {}, "name: a is also used by container 'a' (lxc_fleet_containers[0])"),
    ([{"name": "a", "ipv4": "10.0.3.5"}, {"name": "b", "ipv4": "10.0.3.5"}], {},
     "container 'b' (lxc_fleet_containers[1]): ipv4: 10.0.3.5 is also used"),
    ([{"name": "a", "mac": "00:16:3e:00:00:01"}, {"name": "b", "mac": "00:16:3E:00:00:01"}], {},
     "'b' (lxc_fleet_containers[1]): mac: 00:16:3e:00:00:01 is also used"),
    ([{"name": "a", "owner": "bob"}], {}, "container 'a' (lxc_fleet_containers[0]): owner: user 'bob' does not exist on lxc1"),
    ([{"name": "a", "owner": "alice", "unprivileged": False}], {}, "unprivileged: false needs owner root"),
    ([{"name": "a", "state": "running"}], {}, "state: 'running' is not one of"),
    ([{"name": "a", "port_forwards": [{"port": 80}]}], {}, "port_forwards[0]: a port forward needs the container's ipv4"),
    ([{"name": "a", "ipv4": "10.0.3.5/24"}], {}, "ipv4: '10.0.3.5/24' is not an IPv4 address"),
    ([{"name": "a", "ipv4": "10.0.4.5"}], {"networks": {"lxcbr0": "10.0.3.0/24"}}, "ipv4: 10.0.4.5 is not inside 10.0.3.0/24"),
    ([{"name": "a", "ipv4": "10.0.3.255"}], {"networks": {"lxcbr0": "10.0.3.0/24"}}, "is the network or broadcast address"),
    ([{"name": "a_b", "ipv4": "10.0.3.5"}], {}, "name: 'a_b' cannot be a DHCP host name"),
    ([{"name": "a", "mac": "01:16:3e:00:00:01"}], {}, "mac: 01:16:3e:00:00:01 is a multicast address"),
    ([{"name": "a", "mac": "nope"}], {}, "mac: 'nope' is not a MAC address"),
    ([{"name": "a", "imgae": {}}], {}, "imgae: unknown key"),
    ([{"name": "a", "template": "busybox", "image": {"dist": "x"}}], {}, "template: only one of"),
    ([{"name": "a"}], {"defaults": {}}, "image: no creation source"),
    ([{"name": "a", "bridge": "a-very-long-bridge-name"}], {}, "bridge: 'a-very-long-bridge-name' is not an interface name"),
    ([{"name": "a", "ipv4": "10.0.3.5", "port_forwards": [{"port": "90-80"}]}], {}, "port_forwards[0].port: '90-80' is not a port"),
    ([{"name": "a", "ipv4": "10.0.3.5", "port_forwards": [{"port": "80-90", "dest_port": 8080}]}], {}, "dest_port: not allowed with a port range"),
    ([{"name": "a", "ipv4": "10.0.3.5", "port_forwards": [{"port": 80, "dest": "10.0.3.9"}]}], {}, "port_forwards[0].dest: unknown key"),
    ([{"name": "a", "ipv4": "10.0.3.5", "port_forwards": [{"port": 80, "proto": "sctp"}]}], {}, "proto: 'sctp' is not tcp or udp"),
    ([{"name": "a", "ipv4": "10.0.3.5", "port_forwards": [{"port": "8000-8010"}]},
      {"name": "b", "ipv4": "10.0.3.6", "port_forwards": [{"port": 8005}]}], {}, "tcp port 8005 overlaps port 8000-8010 of container 'a'"),
    ([{"name": "a", "limits": "1G"}], {}, "limits: '1G' is not a dict"),
    (["web1"], {}, "lxc_fleet_containers[0]: (entry): 'web1' is not a dict"),
    ([], {"defaults": {"ipv4": "10.0.3.5"}}, "lxc_fleet_defaults: ipv4: must be set per container"),
])
def test_invalid_specs_fail_naming_container_and_field(containers, kw, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(containers, **kw)
    assert message in str(err.value)


def test_inventory_host_errors_name_the_host():
    with pytest.raises(AnsibleFilterError, match=r"container 'web1' from inventory host 'web1' \(group lxc_containers\): state"):
        plan([], inventory_hosts=["web1"], hostvars={"web1": {"lxc_fleet_host": "lxc1", "lxc_fleet_container": {"state": "up"}}})


def test_absent_containers_need_no_source_and_free_their_address():
    items = plan([{"name": "old", "state": "absent", "ipv4": "10.0.3.5", "port_forwards": [{"port": 80}]},
                  {"name": "new", "ipv4": "10.0.3.5", "port_forwards": [{"port": 80}]}], defaults={"template": "busybox"})
    assert [i["state"] for i in items] == ["absent", "started"]
    assert plan([{"name": "gone", "state": "absent"}], defaults={})[0]["template"] is None


def test_nat_of_a_plan():
    items = plan([
        {"name": "a", "ipv4": "10.0.3.10", "port_forwards": [{"port": 8080, "dest_port": 80}]},
        {"name": "b", "ipv4": "10.0.5.10", "bridge": "br5", "port_forwards": [{"port": "9000-9001", "proto": "udp"}]},
        {"name": "c", "ipv4": "10.0.3.11", "state": "absent", "port_forwards": [{"port": 8081}]},
        {"name": "d", "ipv4": "10.0.3.12"},
    ])
    nat = fleet_nat(items, {"lxcbr0": "10.0.3.0/24", "br5": "10.0.5.0/24"})
    assert nat == {
        "masquerade": [{"source": "10.0.3.0/24"}, {"source": "10.0.5.0/24"}],
        "port_forwards": [{"proto": "tcp", "port": "8080", "dest": "10.0.3.10", "dest_port": 80},
                          {"proto": "udp", "port": "9000-9001", "dest": "10.0.5.10"}],
    }
    assert fleet_nat(items[3:], {}) == {"masquerade": [], "port_forwards": []}
    with pytest.raises(AnsibleFilterError, match="container 'b': bridge: the network of bridge br5 is unknown"):
        fleet_nat(items, {"lxcbr0": "10.0.3.0/24"})
    with pytest.raises(AnsibleFilterError, match="ipv4: 10.0.3.10 is not inside 10.0.9.0/24"):
        fleet_nat(items[:1], {"lxcbr0": "10.0.9.0/24"})


def test_networks():
    bridges = [{"name": "lxcbr0", "address": "10.0.3.1/24"}, {"name": "noaddr"}, {"name": "br1", "address": "bad"}]
    assert fleet_networks(bridges, {"br2": "10.0.7.1/25"}) == {"lxcbr0": "10.0.3.0/24", "br2": "10.0.7.0/25"}
    with pytest.raises(AnsibleFilterError, match="lxc_fleet_bridge_networks.br3"):
        fleet_networks([], {"br3": "x"})
    entry = {"ifname": "lxcbr0", "addr_info": [{"family": "inet", "local": "10.0.3.1", "prefixlen": 24}]}
    assert fleet_bridge_network(entry) == {"name": "lxcbr0", "network": "10.0.3.0/24"}
    assert fleet_bridge_network({"ifname": "x", "addr_info": []}) is None


def test_inventory_entries():
    items = plan([{"name": "a", "owner": "alice", "groups": ["web"]}, {"name": "b", "state": "stopped"}, {"name": "c"}])
    results = [
        {"item": items[0], "container": {"lxc_path": "/home/alice/.local/share/lxc", "ips": ["10.0.3.100"]}, "actions": []},
        {"item": items[1], "container": {"lxc_path": "/var/lib/lxc"}},
        {"item": items[2], "container": {"lxc_path": "/var/lib/lxc", "ips": []}, "actions": ["create", "start"]},
    ]
    access = {"local": False, "host": "192.0.2.5"}
    out = fleet_inventory(results, "lxc1", access)
    assert [e["name"] for e in out] == ["a", "c"]
    assert out[0] == {"name": "a", "container": "a", "owner": "alice", "lxc_path": "/home/alice/.local/share/lxc",
                      "groups": ["web"], "access": access, "lxc_host": "lxc1", "ipv4": "10.0.3.100"}
    assert [e["name"] for e in fleet_inventory(results, "lxc1", access, check_mode=True)] == ["a"]


def test_nft_file_is_safe_to_load_twice():
    text = fleet_nft_file("table inet t {\n}", "t")
    assert text.splitlines()[1:] == ["table inet t {}", "delete table inet t", "table inet t {", "}"]
