"""Scenario unprivileged: inside alice's container, through the attach connection as alice."""

from __future__ import annotations

import hashlib

testinfra_hosts = ["app1"]


def test_inside(host):
    assert host.ansible.get_variables()["ansible_lxc_owner"] == "alice"
    assert host.check_output("hostname") == "app1"
    assert host.file("/etc/lfm-owner").sha256sum == hashlib.sha256(b"app1 of alice\n").hexdigest()
    # root inside is not root outside: the user namespace maps 0 to alice's subordinate ids
    uid_map = host.file("/proc/self/uid_map").content_string.split()
    assert uid_map[0] == "0" and int(uid_map[1]) >= 100000 and uid_map[2] == "65536"


def test_network(host):
    assert "10.0.3.30" in host.interface("eth0").addresses
    assert "default via 10.0.3.1" in host.check_output("ip -4 route")
    host.run_expect([0], "busybox ping -c 1 -W 5 10.0.3.1")
