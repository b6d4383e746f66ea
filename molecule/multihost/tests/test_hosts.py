"""Scenario multihost: each LXC host has its own container; inside each, the file converge wrote."""

from __future__ import annotations

testinfra_hosts = ["lxc_hosts"]

CONTAINER = {"lfm-multi-h1": "app1", "lfm-multi-h2": "app2"}


def test_own_container_only(host, lxc_info):
    name = host.backend.get_hostname()
    # besides the fleet's own base for clones (lxc_fleet_base), whose name the container module makes
    names = [n for n in host.check_output("lxc-ls -1").split() if not n.startswith("lxcfleet-base-")]
    assert names == [CONTAINER[name]]
    assert lxc_info(host, CONTAINER[name])["State"] == ["RUNNING"]


def test_file_written_through_attach(host):
    name = host.backend.get_hostname()
    got = host.check_output("lxc-attach -n %s -- cat /etc/lfm-multihost", CONTAINER[name])
    assert got == f"{CONTAINER[name]} on {name}"
