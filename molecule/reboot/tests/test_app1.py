"""Scenario reboot: inside app1 (lxcfleet.lxc.attach over SSH to its host) after the host restarted:
it booted again with its name, its static lease, its route and its web service, none of it set
again. Few commands: each one is a round trip through the attach connection."""

from __future__ import annotations

import hashlib

testinfra_hosts = ["app1"]


def test_reached_through_attach(host):
    assert host.ansible.get_variables()["ansible_connection"] == "lxcfleet.lxc.attach"
    assert host.check_output("hostname") == "app1"


def test_booted_cleanly(host):
    # Every unit came up, but for debugfs: an unprivileged container may not mount it (the same
    # with any Debian image on any LXC host), which leaves systemd "degraded".
    out = host.run("systemctl list-units --state=failed --no-legend --plain; systemctl is-system-running").stdout
    *failed, state = out.strip().splitlines()
    assert [line.split()[0] for line in failed] in ([], ["sys-kernel-debug.mount"]), failed
    assert state == ("degraded" if failed else "running")


def test_network(host):
    addr, route = host.check_output("ip -4 -o address show dev eth0; echo '|'; ip -4 route").split("|")
    assert "inet 10.0.3.10/24 " in addr and " dynamic " in addr, addr
    assert "default via 10.0.3.1 " in route, route


def test_web_service_started_at_boot(host):
    out = host.check_output(
        "systemctl is-active lfm-web; systemctl is-enabled lfm-web; ss -Htln 'sport = :80' | awk '{print $4}'; "
        "sha256sum /srv/www/index.html | cut -d' ' -f1").splitlines()
    assert out == ["active", "enabled", "0.0.0.0:80", hashlib.sha256(b"lxcfleet molecule reboot: app1\n").hexdigest()]
