"""Scenario multihost: the lxcfleet.lxc.containers inventory plugin lists the containers of both
hosts over SSH, and a task runs inside each through the attach connection it sets up.

Runs on this machine (the controller), with molecule's SSH key for the host containers."""

from __future__ import annotations

import json
import os
import subprocess

import yaml

HOSTS = {"h1": ("10.254.3.2", "app1"), "h2": ("10.254.3.3", "app2")}
SSH_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR"


def plugin_file(tmp_path):
    key = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "id_ed25519")
    config = {
        "plugin": "lxcfleet.lxc.containers",
        "hosts": [
            {"name": label, "address": address, "user": "root", "private_key_file": key,
             "ssh_common_args": SSH_ARGS, "host_key_checking": False}
            for label, (address, _name) in HOSTS.items()
        ],
        "hostname_format": "{host}-{name}",
        # the fleet's bases for clones are containers too; they are not part of the fleet
        "filters": [{"exclude": "lxc_name.startswith('lxcfleet-base-')"}],
    }
    path = tmp_path / "fleet.lxc.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def plain(value):
    """ansible-inventory --list shows strings the plugin marked unsafe as {"__ansible_unsafe": ...}."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def run(argv):
    env = dict(os.environ, ANSIBLE_INVENTORY_ENABLED="lxcfleet.lxc.containers")
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_lists_both_hosts(tmp_path):
    inventory = json.loads(run(["ansible-inventory", "-i", plugin_file(tmp_path), "--list"]))
    hostvars = inventory["_meta"]["hostvars"]
    assert sorted(hostvars) == ["h1-app1", "h2-app2"]
    for label, (address, name) in HOSTS.items():
        got = {key: plain(value) for key, value in hostvars[f"{label}-{name}"].items()}
        assert got["lxc_state"] == "RUNNING"
        assert got["lxc_name"] == name
        assert got["ansible_connection"] == "lxcfleet.lxc.attach"
        assert got["ansible_lxc_host"] == address
        assert f"{label}-{name}" in inventory[f"lxc_host_{label}"]["hosts"]


def test_task_inside_each_container(tmp_path):
    out = run(["ansible", "-i", plugin_file(tmp_path), "lxc_state_running", "-o",
               "-e", "ansible_python_interpreter=/usr/bin/python3",
               "-m", "ansible.builtin.command", "-a", "cat /etc/lfm-multihost"])
    assert "app1 on lfm-multi-h1" in out, out
    assert "app2 on lfm-multi-h2" in out, out
