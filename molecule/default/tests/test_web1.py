"""Scenario default: inside web1, through the lxcfleet.lxc.attach connection over SSH to its host."""

from __future__ import annotations

import hashlib

testinfra_hosts = ["web1"]


def test_reached_through_attach(host):
    assert host.backend.NAME == "ansible"
    assert host.ansible.get_variables()["ansible_connection"] == "lxcfleet.lxc.attach"
    assert host.check_output("hostname") == "web1"


def test_network(host):
    assert "10.0.3.10" in host.interface("eth0").addresses
    assert "default via 10.0.3.1" in host.check_output("ip -4 route")


def test_web_service(host):
    assert host.service("lfm-web").is_running
    assert host.service("lfm-web").is_enabled
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.file("/srv/www/index.html").sha256sum == hashlib.sha256(b"lxcfleet molecule default: web1\n").hexdigest()
