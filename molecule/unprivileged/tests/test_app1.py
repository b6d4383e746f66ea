"""Scenario unprivileged: inside alice's container, through the attach connection as alice."""

from __future__ import annotations

import hashlib

testinfra_hosts = ["app1"]


def test_inside(host):
    assert host.ansible.get_variables()["ansible_lxc_owner"] == "alice"
    # One round trip (each one is SSH to the host, then lxc-attach as alice in her systemd scope).
    hostname, digest, uid_map = host.check_output(
        "hostname && sha256sum /etc/lfm-owner && cat /proc/self/uid_map").splitlines()
    assert hostname == "app1"
    assert digest.split()[0] == hashlib.sha256(b"app1 of alice\n").hexdigest()
    # root inside is not root outside: the user namespace maps 0 to alice's subordinate ids
    inside, outside, count = uid_map.split()
    assert inside == "0" and int(outside) >= 100000 and count == "65536"


def test_network(host):
    addresses, routes = host.check_output("ip -4 -o address show dev eth0 && echo --- && ip -4 route").split("---\n")
    assert " 10.0.3.30/24 " in addresses, addresses
    assert "default via 10.0.3.1" in routes, routes
    # the bridge (the LXC host's address on it) answers
    host.run_expect([0], "busybox ping -c 1 -W 5 10.0.3.1")
