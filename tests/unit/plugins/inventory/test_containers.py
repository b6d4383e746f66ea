# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The containers inventory plugin: the real plugin, its options and inventory building, with a
fake discovery (what the discovery script prints). Real discovery is the integration target's job."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar
from ansible.utils.display import Display

from ansible_collections.lxcfleet.lxc.plugins.inventory import containers as mod

PLUGIN = "lxcfleet.lxc.containers"


def _ct(name, state="RUNNING", pid=100, ipv4=(), ipv6=(), groups=(), autostart=False, unprivileged=False, error=None):
    return {
        "name": name, "state": state, "pid": pid, "ipv4": list(ipv4), "ipv6": list(ipv6), "groups": list(groups),
        "autostart": autostart, "unprivileged": unprivileged, "arch": None, "error": error,
    }


LOCAL = {
    "version": 1,
    "user": "root",
    "paths": [
        {"path": "/var/lib/lxc", "owner": "root", "error": None, "containers": [
            _ct("web1", ipv4=["10.0.3.10"], ipv6=["fd00::10"], groups=["web", "prod"], autostart=True),
            _ct("db1", state="STOPPED", pid=None, groups=["db"]),
            _ct("cold", state="FROZEN", pid=200),
        ]},
        {"path": "/home/alice/.local/share/lxc", "owner": "alice", "error": None, "containers": [
            _ct("web1", pid=300, ipv4=["10.0.3.20"], unprivileged=True),
        ]},
        {"path": None, "owner": "bob", "error": "no user bob on this host", "containers": []},
    ],
}
REMOTE = {
    "version": 1,
    "user": "root",
    "paths": [{"path": "/srv/lxc", "owner": "root", "error": None, "containers": [_ct("app1", ipv4=["10.1.0.5"])]}],
}


class Runner:
    """A fake discovery: the canned result per host label, and a record of the calls."""

    def __init__(self, results):
        self.results = results
        self.calls = []

    def __call__(self, plugin, host, timeout):
        self.calls.append((host["name"], timeout))
        result = copy.deepcopy(self.results[host["name"]])
        # like the real discovery: root's path, then the paths of the users asked for
        owners = ["root"] + host["users"]
        result["paths"] = [p for p in result["paths"] if p["owner"] in owners]
        return result

    def install(self, monkeypatch):
        runner = self

        def fake_run_discovery(plugin, host, timeout):
            return runner(plugin, host, timeout)

        monkeypatch.setattr(mod.InventoryModule, "_run_discovery", fake_run_discovery)
        return self


@pytest.fixture
def runner(monkeypatch):
    return Runner({"local": LOCAL, "remote": REMOTE}).install(monkeypatch)


def parse(tmp_path, config, cache=True, name="test.lxc.yml"):
    """Run the real plugin on a config file; returns (inventory, plugin)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict({"plugin": PLUGIN}, **config)))
    inventory = InventoryData()
    plugin = inventory_loader.get(PLUGIN)
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    if getattr(plugin, "_cache", None) is not None:
        plugin.update_cache_if_changed()
    return inventory, plugin


MAGIC = ("inventory_file", "inventory_dir", "group_names", "inventory_hostname", "inventory_hostname_short")


def render(variables, expression):
    """Template ``{{ expression }}`` from a trusted source (a playbook) with these variables."""
    text = "{{ %s }}" % expression
    try:
        from ansible.template import trust_as_template  # ansible-core 2.19+: only trusted text is a template
    except ImportError:
        pass
    else:
        text = trust_as_template(text)
    return Templar(loader=DataLoader(), variables=variables).template(text)


def group_hosts(inventory):
    return {name: sorted(h.name for h in group.get_hosts()) for name, group in inventory.groups.items()
            if name not in ("all", "ungrouped")}


def hostvars(inventory, host):
    return inventory.get_host(host).get_vars()


def test_verify_file(tmp_path):
    plugin = inventory_loader.get(PLUGIN)
    for name, ok in (("a.lxc.yml", True), ("a.lxc.yaml", True), ("a.yml", False), ("lxc.yml", False), ("a.lxc.json", False)):
        path = tmp_path / name
        path.write_text("plugin: %s\n" % PLUGIN)
        assert plugin.verify_file(str(path)) is ok, name


def test_groups_and_vars(tmp_path, runner):
    inventory, _plugin = parse(tmp_path, {
        "hosts": [{"name": "local", "users": ["alice"]}],
        "hostname_format": "{owner}-{name}",
    })
    assert group_hosts(inventory) == {
        "lxc_state_running": ["alice-web1", "root-web1"],
        "lxc_state_stopped": ["root-db1"],
        "lxc_state_frozen": ["root-cold"],
        "lxc_host_local": ["alice-web1", "root-cold", "root-db1", "root-web1"],
        "lxc_group_web": ["root-web1"],
        "lxc_group_prod": ["root-web1"],
        "lxc_group_db": ["root-db1"],
    }
    web = hostvars(inventory, "root-web1")
    assert {k: v for k, v in web.items() if k not in MAGIC} == {
        "lxc_name": "web1", "lxc_state": "RUNNING", "lxc_ipv4": ["10.0.3.10"], "lxc_ipv6": ["fd00::10"],
        "lxc_pid": 100, "lxc_owner": "root", "lxc_path": "/var/lib/lxc", "lxc_host": "local",
        "lxc_host_address": None, "lxc_groups": ["web", "prod"], "lxc_autostart": True, "lxc_unprivileged": False,
        "lxc_arch": None,
        "ansible_connection": "lxcfleet.lxc.attach", "ansible_lxc_name": "web1", "ansible_lxc_path": "/var/lib/lxc",
    }
    alice = hostvars(inventory, "alice-web1")
    assert alice["ansible_lxc_owner"] == "alice"
    assert alice["lxc_unprivileged"] is True
    assert alice["ansible_lxc_path"] == "/home/alice/.local/share/lxc"
    assert hostvars(inventory, "root-db1")["lxc_pid"] is None


def test_path_error_is_a_warning(tmp_path, runner, monkeypatch):
    warnings = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *a, **k: warnings.append(msg))
    parse(tmp_path, {"hosts": [{"name": "local", "users": ["alice", "bob"]}], "hostname_format": "{owner}-{name}"})
    assert any("no user bob on this host" in w and "'local'" in w for w in warnings), warnings


def test_container_without_state_is_skipped_with_warning(tmp_path, monkeypatch):
    broken = copy.deepcopy(REMOTE)
    broken["paths"][0]["containers"].append(_ct("bad", state=None, pid=None, error="lxc-info failed (rc=1): boom"))
    Runner({"r": broken}).install(monkeypatch)
    warnings = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *a, **k: warnings.append(msg))
    inventory, _plugin = parse(tmp_path, {"hosts": [{"name": "r"}]})
    assert sorted(inventory.hosts) == ["app1"]
    assert any("bad in /srv/lxc on r" in w and "boom" in w for w in warnings), warnings


def test_remote_connection_vars(tmp_path, runner):
    inventory, _plugin = parse(tmp_path, {
        "hosts": [
            {"name": "remote", "address": "192.0.2.7", "user": "root", "port": 2222, "private_key_file": "/k",
             "ssh_common_args": "-o A=b", "host_key_checking": False, "lxc_paths": ["/srv/lxc"],
             "vars": {"site": "east", "ansible_python_interpreter": "/usr/bin/python3"}},
        ],
    })
    got = hostvars(inventory, "app1")
    assert got["ansible_lxc_host"] == "192.0.2.7"
    assert got["ansible_lxc_host_user"] == "root"
    assert got["ansible_lxc_host_port"] == 2222
    assert got["ansible_lxc_ssh_private_key_file"] == "/k"
    assert got["ansible_lxc_ssh_common_args"] == "-o A=b"
    assert "ansible_lxc_ssh_extra_args" not in got
    assert got["ansible_lxc_host_key_checking"] is False
    assert "ansible_lxc_owner" not in got
    assert got["lxc_host_address"] == "192.0.2.7"
    assert got["site"] == "east"
    assert got["ansible_python_interpreter"] == "/usr/bin/python3"


def test_two_hosts_states_and_host_placeholder(tmp_path, runner):
    inventory, _plugin = parse(tmp_path, {
        "hosts": [{"name": "local", "users": ["alice"]}, {"name": "remote", "address": "192.0.2.7"}],
        "hostname_format": "{host}.{owner}.{name}",
        "states": ["running", "Frozen"],
    })
    assert sorted(inventory.hosts) == ["local.alice.web1", "local.root.cold", "local.root.web1", "remote.root.app1"]
    assert sorted(runner.calls) == [("local", 30), ("remote", 30)]


def test_hostname_collision_names_both(tmp_path, runner):
    with pytest.raises(AnsibleParserError) as err:
        parse(tmp_path, {"hosts": [{"name": "local", "users": ["alice"]}]})
    msg = str(err.value)
    assert "web1 in /var/lib/lxc on local" in msg
    assert "web1 in /home/alice/.local/share/lxc on local" in msg
    assert "hostname_format" in msg


@pytest.mark.parametrize("filters, expected", [
    ([], ["cold", "db1", "web1"]),
    ([{"exclude": "lxc_state == 'STOPPED'"}], ["cold", "web1"]),
    ([{"include": "'web' in lxc_groups"}, {"exclude": True}], ["web1"]),
    # first match wins: db1 is included before the exclude of everything that is not running
    ([{"include": "lxc_name == 'db1'"}, {"exclude": "lxc_state != 'RUNNING'"}], ["db1", "web1"]),
    ([{"exclude": "lxc_name == 'db1'"}, {"include": "lxc_name == 'db1'"}], ["cold", "web1"]),
    ([{"include": False}, {"exclude": "site == 'east'"}], []),
    ([{"include": "lxc_pid is none"}, {"exclude": "true"}], ["db1"]),
])
def test_filters(tmp_path, runner, filters, expected):
    inventory, _plugin = parse(tmp_path, {
        "hosts": [{"name": "local", "vars": {"site": "east"}}],
        "filters": filters,
    })
    assert sorted(inventory.hosts) == expected


def test_filter_that_fails_names_the_entry(tmp_path, runner):
    with pytest.raises(AnsibleParserError, match=r"filters\[1\]\.include: cannot evaluate .* for container"):
        parse(tmp_path, {"hosts": [{"name": "local"}], "filters": [{"exclude": "false"}, {"include": "no_such_var.x"}]})


def test_compose_groups_keyed_groups(tmp_path, runner):
    inventory, _plugin = parse(tmp_path, {
        "hosts": [{"name": "local", "users": ["alice"], "vars": {"site": "east"}}],
        "hostname_format": "{owner}-{name}",
        "compose": {"first_ip": "lxc_ipv4 | first | default('none')", "where": "site ~ '/' ~ lxc_host"},
        "groups": {"autostarted": "lxc_autostart", "users": "lxc_owner != 'root'"},
        "keyed_groups": [{"key": "lxc_owner", "prefix": "owner"}, {"key": "lxc_groups", "prefix": "tag"}],
    })
    groups = group_hosts(inventory)
    assert groups["autostarted"] == ["root-web1"]
    assert groups["users"] == ["alice-web1"]
    assert groups["owner_alice"] == ["alice-web1"]
    assert groups["owner_root"] == ["root-cold", "root-db1", "root-web1"]
    assert groups["tag_web"] == ["root-web1"]
    assert hostvars(inventory, "root-web1")["first_ip"] == "10.0.3.10"
    assert hostvars(inventory, "root-db1")["first_ip"] == "none"
    assert hostvars(inventory, "alice-web1")["where"] == "east/local"


def test_discovered_strings_are_not_templated(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = "{{ lookup('pipe', 'touch %s') }}" % marker
    result = copy.deepcopy(REMOTE)
    result["paths"][0]["containers"][0].update(groups=[evil], ipv4=[evil], state="RUNNING")
    result["paths"][0]["path"] = "/srv/{{ 'x' }}"
    Runner({"r": result}).install(monkeypatch)
    inventory, _plugin = parse(tmp_path, {
        "hosts": [{"name": "r"}],
        "compose": {"g": "lxc_groups[0]", "both": "lxc_path ~ lxc_ipv4[0]"},
        "keyed_groups": [{"key": "lxc_groups", "prefix": "k"}],
    })
    got = hostvars(inventory, "app1")
    for expression in ("lxc_groups[0]", "lxc_ipv4[0]", "g", "ansible_lxc_path", "lxc_groups | first", "both"):
        value = render(got, expression)
        assert "lookup" in value or "{{ 'x' }}" in value, (expression, value)
    assert got["g"] == evil
    assert got["both"] == "/srv/{{ 'x' }}" + evil
    assert not marker.exists()
    # group names from discovered strings are sanitized, whatever TRANSFORM_INVALID_GROUP_CHARS says
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
               for name in inventory.groups if name.startswith("lxc_"))


@pytest.mark.parametrize("config, message", [
    ({"hosts": []}, "hosts: must be a non-empty list"),
    ({"hosts": ["local"]}, r"hosts\[0\]: must be a mapping"),
    ({"hosts": [{"address": "x"}]}, r"hosts\[0\].name: required"),
    ({"hosts": [{"name": "a"}, {"name": "a"}]}, "hosts: the name 'a' is used by more than one entry"),
    ({"hosts": [{"name": "a", "adress": "x"}]}, r"hosts\[0\]: unknown key\(s\) adress"),
    ({"hosts": [{"name": "a", "port": "ssh"}]}, r"hosts\[0\].port: 'ssh' is not an integer"),
    ({"hosts": [{"name": "a", "port": 70000}]}, r"hosts\[0\].port: 70000 is not a TCP port"),
    ({"hosts": [{"name": "a", "users": "alice"}]}, r"hosts\[0\].users: must be a list"),
    ({"hosts": [{"name": "a", "users": ["al ice"]}]}, r"hosts\[0\].users: 'al ice' is not a valid user name"),
    ({"hosts": [{"name": "a", "lxc_paths": ["lxc"]}]}, r"hosts\[0\].lxc_paths: 'lxc' is not an absolute path"),
    ({"hosts": [{"name": "a", "host_key_checking": "maybe"}]}, r"hosts\[0\].host_key_checking: 'maybe' is not a boolean"),
    ({"hosts": [{"name": "a", "vars": ["x"]}]}, r"hosts\[0\].vars: must be a mapping"),
    ({"hosts": [{"name": "a", "user": ["x"]}]}, r"hosts\[0\].user: \['x'\] is not a string"),
    ({"hostname_format": "{name}-{ip}"}, r"hostname_format: .* has the placeholder \{ip\}"),
    ({"hostname_format": "{name.__class__}"}, r"hostname_format: .* has the placeholder"),
    ({"hostname_format": "{host}"}, r"hostname_format: .* must contain \{name\}"),
    ({"hostname_format": "{name"}, "hostname_format: .* is not a valid format string"),
    ({"filters": [{"include": "x", "exclude": "y"}]}, r"filters\[0\]: must be a mapping with exactly one key"),
    ({"filters": [{"keep": "x"}]}, r"filters\[0\]: unknown key 'keep'"),
    ({"filters": [{"include": ""}]}, r"filters\[0\].include: must be a Jinja2 expression"),
    ({"timeout": 0}, "timeout: 0 must be a positive number"),
])
def test_bad_config_names_the_option(tmp_path, runner, config, message):
    with pytest.raises(AnsibleParserError, match=message):
        parse(tmp_path, config)
    assert runner.calls == []  # nothing was run on any host


def test_cache(tmp_path, runner):
    cache_dir = tmp_path / "cache"
    config = {
        "hosts": [{"name": "remote", "address": "192.0.2.7"}],
        "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(cache_dir),
    }
    inventory, _plugin = parse(tmp_path, config)
    assert len(runner.calls) == 1 and list(cache_dir.iterdir())
    assert '\\"name\\": \\"app1\\"' in next(cache_dir.iterdir()).read_text()

    # The host changed, the cache still answers: no discovery.
    runner.results["remote"] = copy.deepcopy(REMOTE)
    runner.results["remote"]["paths"][0]["containers"][0]["name"] = "app2"
    inventory, _plugin = parse(tmp_path, config)
    assert len(runner.calls) == 1
    assert sorted(inventory.hosts) == ["app1"]
    # Cached strings are as unsafe as fresh ones.
    got = hostvars(inventory, "app1")
    assert render(got, "lxc_name") == "app1"

    # --flush-cache / refresh (cache=False): discovered again and stored.
    inventory, _plugin = parse(tmp_path, config, cache=False)
    assert len(runner.calls) == 2
    assert sorted(inventory.hosts) == ["app2"]
    inventory, _plugin = parse(tmp_path, config)
    assert len(runner.calls) == 2
    assert sorted(inventory.hosts) == ["app2"]

    # Another list of hosts in the same file: the cached result does not fit, discovered again.
    config["hosts"].append({"name": "local"})
    inventory, _plugin = parse(tmp_path, config)
    assert len(runner.calls) == 4


def test_cache_off_never_stores(tmp_path, runner):
    parse(tmp_path, {"hosts": [{"name": "remote", "address": "192.0.2.7"}]})
    parse(tmp_path, {"hosts": [{"name": "remote", "address": "192.0.2.7"}]})
    assert len(runner.calls) == 2


# --------------------------------------------------------------------------- running the discovery


class FakeProc:
    def __init__(self, rc, stdout=b"", stderr=b""):
        self.returncode, self.stdout, self.stderr = rc, stdout, stderr


@pytest.fixture
def plugin():
    return inventory_loader.get(PLUGIN)


def _host(**kw):
    return mod.normalize_host(dict({"name": "h1"}, **kw), 0)


def test_discovery_argv_local(plugin, monkeypatch):
    seen = {}

    def fake_run(argv, **kw):
        seen.update(argv=argv, **kw)
        return FakeProc(0, json.dumps(REMOTE).encode())

    monkeypatch.setattr(mod.subprocess, "run", fake_run)
    assert plugin._run_discovery(_host(users=["alice"]), 12) == REMOTE
    assert seen["argv"][:2] == ["python3", "-"]
    assert json.loads(seen["argv"][2]) == {"lxc_paths": [], "users": ["alice"], "timeout": 12}
    assert seen["input"].startswith(b"# Copyright")
    assert b"def discover(" in seen["input"]
    assert seen["timeout"] == 12 + mod.KILL_GRACE
    assert "shell" not in seen


def test_discovery_argv_ssh(plugin, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(mod.subprocess, "run", lambda argv, **kw: seen.update(argv=argv) or FakeProc(0, json.dumps(REMOTE).encode()))
    plugin._run_discovery(_host(address="192.0.2.7", user="root", port=2200, host_key_checking=False), 9)
    argv = seen["argv"]
    assert argv[0] == "ssh"
    assert "ConnectTimeout=9" in argv and "Port=2200" in argv and "User=root" in argv
    assert "StrictHostKeyChecking=no" in argv
    assert argv[-2] == "192.0.2.7"
    assert argv[-1].startswith("exec python3 - ")


@pytest.mark.parametrize("proc, message", [
    (FakeProc(255, b"", b"ssh: connect to host 192.0.2.7 port 22: Connection refused"),
     r"LXC host 'h1' \(192.0.2.7\): cannot reach the host; ssh said: ssh: connect to host 192.0.2.7 port 22: Connection refused"),
    (FakeProc(127, b"", b"sh: 1: exec: python3: not found"), "python3 is needed there"),
    (FakeProc(1, b"", b"Traceback"), r"the discovery failed \(rc=1\): Traceback"),
    (FakeProc(0, b"not json", b""), "the discovery printed no usable result"),
    (FakeProc(0, b'{"version": 99, "paths": []}', b""), "not a discovery result of version 1"),
])
def test_discovery_failures_name_the_host(plugin, monkeypatch, tmp_path, proc, message):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(mod.subprocess, "run", lambda argv, **kw: proc)
    with pytest.raises(AnsibleParserError, match=message):
        plugin._run_discovery(_host(address="192.0.2.7"), 5)


def test_discovery_timeout(plugin, monkeypatch):
    def fake_run(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw["timeout"])

    monkeypatch.setattr(mod.subprocess, "run", fake_run)
    with pytest.raises(AnsibleParserError, match=r"LXC host 'h1' \(this machine\): the discovery did not finish within 5s"):
        plugin._run_discovery(_host(), 5)


def test_bad_address_is_refused_before_running(plugin, monkeypatch):
    monkeypatch.setattr(mod.subprocess, "run", lambda *a, **k: pytest.fail("ran something"))
    with pytest.raises(AnsibleParserError, match="hosts: LXC host 'h1': lxc_host: '-oProxyCommand=x' must not start with '-'"):
        plugin._run_discovery(_host(address="-oProxyCommand=x"), 5)


@pytest.mark.parametrize("fmt, fields", [
    ("{name}", ["name"]),
    ("{host}-{owner}-{name}", ["host", "owner", "name"]),
    ("ct_{name}.example", ["name"]),
])
def test_hostname_fields(fmt, fields):
    assert mod.hostname_fields(fmt) == fields


def test_safe_group():
    assert mod.safe_group("lxc_group_web-1.x") == "lxc_group_web_1_x"
    assert mod.safe_group("lxc_group_{{") == "lxc_group___"
