"""Scenario reboot: inside app1 (lxcfleet.lxc.attach over SSH to its host) after the host restarted:
it booted again with its static lease, its route and its web service, none of it set again."""

from __future__ import annotations

import hashlib

testinfra_hosts = ["app1"]


def test_reached_through_attach(host):
    assert host.ansible.get_variables()["ansible_connection"] == "lxcfleet.lxc.attach"
    assert host.check_output("hostname") == "app1"


def test_booted_cleanly(host):
    # Every unit came up, but for debugfs: an unprivileged container may not mount it (the same
    # with any Debian image on any LXC host), which leaves systemd "degraded".
    failed = host.check_output("systemctl list-units --state=failed --no-legend --plain").splitlines()
    assert [line.split()[0] for line in failed] in ([], ["sys-kernel-debug.mount"]), failed
    assert host.run("systemctl is-system-running").stdout.strip() == ("degraded" if failed else "running")


def test_network(host):
    addr = host.check_output("ip -4 -o address show dev eth0")
    assert "inet 10.0.3.10/24 " in addr and " dynamic " in addr, addr
    assert "default via 10.0.3.1 " in host.check_output("ip -4 route")


def test_web_service_started_at_boot(host):
    assert host.service("lfm-web").is_running
    assert host.service("lfm-web").is_enabled
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.file("/srv/www/index.html").sha256sum == hashlib.sha256(b"lxcfleet molecule reboot: app1\n").hexdigest()
