"""Scenario unprivileged: alice's ids, quota and lingering, and her container, seen on the host."""

from __future__ import annotations

import re

testinfra_hosts = ["lxc_hosts"]


def subid_range(host, path):
    for line in host.file(path).content_string.splitlines():
        user, start, count = line.split(":")
        if user == "alice":
            return int(start), int(count)
    raise AssertionError(f"no range of alice in {path}")


def test_user_and_ids(host):
    assert host.user("alice").exists
    for path in ("/etc/subuid", "/etc/subgid"):
        start, count = subid_range(host, path)
        assert count == 65536 and start >= 100000


def test_usernet_quota(host):
    lines = [line.split() for line in host.file("/etc/lxc/lxc-usernet").content_string.splitlines()]
    assert ["alice", "veth", "lxcbr0", "10"] in lines, lines


def test_lingering(host):
    assert host.file("/var/lib/systemd/linger/alice").exists
    assert host.service("user@%d" % host.user("alice").uid).is_running


def test_container_runs_unprivileged_as_alice(host, lxc_info):
    info = lxc_info(host, "app1", owner="alice")
    assert info["State"] == ["RUNNING"] and info["IP"] == ["10.0.3.30"], info
    pid = int(info["PID"][0])
    # The container's root is alice's first subordinate uid on the host.
    uid_start, _count = subid_range(host, "/etc/subuid")
    uids = re.search(r"^Uid:\s+(\d+)", host.file(f"/proc/{pid}/status").content_string, re.M).group(1)
    assert int(uids) == uid_start
    # ... and it lives in a cgroup delegated to alice's systemd instance.
    cgroup = host.file(f"/proc/{pid}/cgroup").content_string
    assert re.search(r"^0::/user\.slice/user-\d+\.slice/user@\d+\.service/.*lxc\.payload\.app1(/init\.scope)?$", cgroup, re.M), cgroup
    # The file the converge wrote through the attach connection belongs, on the host, to that uid too.
    assert host.file(f"/proc/{pid}/root/etc/lfm-owner").uid == uid_start
    # Nothing of root's: root has no container named app1.
    assert host.run("lxc-info -n app1 -s").rc != 0


def test_container_reachable_from_host(host):
    host.run_expect([0], "busybox ping -c 1 -W 5 10.0.3.30")


def test_lease_file(host):
    lease = host.file("/etc/lxcfleet/dnsmasq/lxcbr0.hosts.d/app1").content_string.strip()
    assert lease.endswith(",10.0.3.30,app1")
