# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing of lxc-* output and of /proc network files (texts captured from LXC 5.0.2 here)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import (
    LxcRunner,
    interfaces_from_proc,
    parse_info,
    parse_log_errors,
    validate_name,
)

START_LOG = "\n".join([
    "lxc-start t2 20261123034153.793 ERROR    network - ../src/lxc/network.c:netdev_configure_server_veth:711 - "
    'No such file or directory - Failed to attach "vethAUes7i" to bridge "nosuchbr0", bridge interface doesn\'t exist',
    "lxc-start t2 20261123034153.816 ERROR    network - ../src/lxc/network.c:lxc_create_network_priv:3427 - "
    "No such file or directory - Failed to create network device",
    "lxc-start t2 20261123034153.816 ERROR    start - ../src/lxc/start.c:lxc_spawn:1840 - Failed to create the network",
    "lxc-start t2 20261123034153.816 ERROR    lxccontainer - ../src/lxc/lxccontainer.c:wait_on_daemonized_start:878 - "
    'Received container state "ABORTING" instead of "RUNNING"',
    "lxc-start t2 20261123034153.816 ERROR    lxc_start - ../src/lxc/tools/lxc_start.c:main:306 - The container failed to start",
    "lxc-start t2 20261123034153.816 WARN     start - ../src/lxc/start.c:x:1 - just a warning",
])


def test_log_reason_first_is_the_specific_one():
    errors = parse_log_errors(START_LOG)
    assert errors[0].endswith("bridge interface doesn't exist")
    assert "just a warning" not in " ".join(errors)
    assert errors[-1] == "The container failed to start"


def test_log_without_errors():
    assert parse_log_errors("") == []


def test_parse_info():
    text = "State:          RUNNING\nPID:            3239\nIP:             10.0.3.5\nIP:             fd00::5\nLink:           vethmGBLOb\n"
    assert parse_info(text) == {"state": "RUNNING", "pid": 3239, "ips": ["10.0.3.5", "fd00::5"], "links": ["vethmGBLOb"]}
    assert parse_info("State:          STOPPED\n")["pid"] is None
    usage = parse_info("CPU use:        12781338\nBlkIO use:      0\nMemory use:     622592\nKMem use:       376832\n")["usage"]
    assert usage == {"cpu_ns": 12781338, "blkio_bytes": 0, "memory_bytes": 622592, "kmem_bytes": 376832}


@pytest.mark.parametrize("name", ["", None, "../x", "a b", "a/b", "-x", ".hidden", "x" * 65, "web1\n", "web1\nweb2"])
def test_bad_names(name):
    assert validate_name(name) is not None


@pytest.mark.parametrize("name", ["web1", "a", "db-1.example_2", "x" * 64])
def test_good_names(name):
    assert validate_name(name) is None


PROC = {
    "dev": "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 290 0\n  eth1: 310 0\n",
    "route": (
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0103000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0003000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth1\t004FFE0A\t00000000\t0001\t0\t0\t0\tF0FFFFFF\t0\t0\t0\n"
    ),
    "fib_trie": (
        "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.3.5\n        /32 host LOCAL\n"
        "     |-- 10.254.79.5\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 10.0.3.255\n        /32 link BROADCAST\n"
    ),
    "if_inet6": (
        "fe80000000000000fcef88fffee41f77 03 40 20 c0     eth1\n"
        "fd000000000000000000000000000005 02 40 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    ),
}


def test_interfaces_from_proc():
    assert interfaces_from_proc(PROC) == {
        "eth0": {"ipv4": ["10.0.3.5/24"], "ipv6": ["fd00::5/64"]},
        "eth1": {"ipv4": ["10.254.79.5/28"], "ipv6": []},
    }


def test_interfaces_from_empty_proc():
    assert interfaces_from_proc({}) == {}


def test_validators_refuse_a_final_newline():
    """Patterns end in \\Z, not $: '$' also matches before a final newline, which would let a name or
    key with a newline into a config file, an nft ruleset or /etc/subuid."""
    from ansible_collections.lxcfleet.lxc.plugins.module_utils import _keys, _nft, _usernet
    from ansible_collections.lxcfleet.lxc.plugins.plugin_utils import _ssh

    assert not _nft.TABLE_RE.match("lft1t\n")
    assert not _usernet._ACCOUNT_RE.match("alice\n")
    assert not _ssh.USER_NAME_RE.match("bob\n")
    with pytest.raises(Exception):
        _keys.validate_key("lxc.uts.name\n")


# A stand-in lxc-info (a real executable): records its argv and LANG, prints what the test asks.
FAKE_INFO = """#!/usr/bin/python3
import json, os, sys
with open(os.environ["FAKE_RECORD"], "w") as handle:
    json.dump({"argv": sys.argv[1:], "lang": os.environ.get("LANG"), "lc_all": os.environ.get("LC_ALL")}, handle)
sys.stdout.buffer.write(os.environ["FAKE_OUT"].encode("utf-8", "surrogateescape"))
sys.stderr.write("warning on stderr\\n")
sys.exit(int(os.environ["FAKE_RC"]))
"""


class BinModule:
    """The one AnsibleModule method LxcRunner.info needs."""

    def __init__(self, folder):
        self.folder = folder

    def get_bin_path(self, tool, required=False):
        return os.path.join(self.folder, tool)


@pytest.fixture
def fake_info(tmp_path, monkeypatch):
    tool = tmp_path / "lxc-info"
    tool.write_text(FAKE_INFO)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    return LxcRunner(BinModule(str(tmp_path)), lxc_path="/srv/lxc"), record


def test_info_runs_lxc_info_with_an_argv_list_and_the_c_locale(fake_info, monkeypatch):
    runner, record = fake_info
    monkeypatch.setenv("FAKE_OUT", "State:          RUNNING\nPID:            4242\n")
    monkeypatch.setenv("FAKE_RC", "0")
    info = runner.info("web1", ips=True)
    assert info["state"] == "RUNNING" and info["pid"] == 4242
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["-P", "/srv/lxc", "-n", "web1", "-s", "-p", "-H", "-i"]
    assert seen["lang"] == "C" and seen["lc_all"] == "C"


def test_info_of_a_missing_container_has_no_state(fake_info, monkeypatch):
    runner, record = fake_info
    monkeypatch.setenv("FAKE_OUT", "")
    monkeypatch.setenv("FAKE_RC", "1")
    assert runner.info("nosuch") == {"state": None, "pid": None, "ips": [], "links": []}


def test_query_keeps_undecodable_bytes_and_reports_a_missing_tool(fake_info, monkeypatch, tmp_path):
    runner, record = fake_info
    monkeypatch.setenv("FAKE_OUT", "name \udcff\n")
    monkeypatch.setenv("FAKE_RC", "3")
    rc, out, err = runner.query("lxc-info", "web1", ["-s"])
    assert rc == 3 and out == "name \udcff\n" and err == "warning on stderr\n"
    (tmp_path / "lxc-info").unlink()
    rc, out, err = runner.query("lxc-info", "web1")
    assert rc == 127 and out == "" and "lxc-info" in err
