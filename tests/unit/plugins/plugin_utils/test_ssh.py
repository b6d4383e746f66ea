# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/_ssh: argv for an LXC host, locally and over OpenSSH."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from ansible_collections.lxcfleet.lxc.plugins.plugin_utils import _ssh
from ansible_collections.lxcfleet.lxc.plugins.plugin_utils._ssh import HostSpec, HostSpecError


def test_local_without_owner_is_the_argv_itself():
    assert _ssh.host_argv(HostSpec(), ["lxc-info", "-n", "a b"]) == ["lxc-info", "-n", "a b"]


def test_local_owner_as_root_goes_through_runuser(monkeypatch):
    monkeypatch.setattr(_ssh.os, "geteuid", lambda: 0)
    monkeypatch.setattr(_ssh, "current_user", lambda: "root")
    assert _ssh.host_argv(HostSpec(), ["lxc-attach", "-n", "c"], owner="alice") == [
        "runuser", "-u", "alice", "--", "lxc-attach", "-n", "c"]


def test_local_owner_is_us(monkeypatch):
    monkeypatch.setattr(_ssh.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_ssh, "current_user", lambda: "alice")
    assert _ssh.host_argv(HostSpec(), ["x"], owner="alice") == ["x"]


def test_local_owner_neither_us_nor_root(monkeypatch):
    monkeypatch.setattr(_ssh.os, "geteuid", lambda: 1001)
    monkeypatch.setattr(_ssh, "current_user", lambda: "bob")
    with pytest.raises(HostSpecError, match=r"lxc_owner: the container belongs to alice, but this runs as bob"):
        _ssh.host_argv(HostSpec(), ["x"], owner="alice")


@pytest.mark.parametrize("owner", ["-rf", "a b", "x;y", "$(id)", ""])
def test_bad_owner_names_are_refused(owner, monkeypatch):
    monkeypatch.setattr(_ssh.os, "geteuid", lambda: 0)
    if owner == "":
        assert _ssh.as_owner_local(["x"], owner) == ["x"]
        return
    with pytest.raises(HostSpecError, match="lxc_owner"):
        _ssh.as_owner_local(["x"], owner)
    with pytest.raises(HostSpecError, match="lxc_owner"):
        _ssh.remote_script(["x"], owner)


def test_ssh_argv_options_and_destination():
    spec = HostSpec(address="h1.example", user="root", port=2222, private_key_file="~/k",
                    ssh_common_args="-o ProxyJump=jump", ssh_extra_args="-v", host_key_checking=False, timeout=7)
    argv = _ssh.host_argv(spec, ["lxc-attach", "-n", "web 1", "--", "/bin/sh", "-c", "echo $HOME"])
    assert argv[0] == "ssh"
    dash = argv.index("--")
    opts = argv[:dash]
    for expected in ("Port=2222", "User=root", "ConnectTimeout=7", "BatchMode=yes", "StrictHostKeyChecking=no",
                     f"IdentityFile={os.path.expanduser('~/k')}", "ProxyJump=jump", "ControlPersist=60s"):
        assert expected in opts
    assert "-v" in opts and opts.index("-v") > opts.index("ProxyJump=jump")
    assert any(o.startswith("ControlPath=") and o.endswith("/lxcfleet-%C") for o in opts)
    assert argv[dash + 1] == "h1.example"
    assert len(argv) == dash + 3
    # The remote shell gets exactly the argv back.
    assert shlex.split(argv[-1]) == ["exec", "lxc-attach", "-n", "web 1", "--", "/bin/sh", "-c", "echo $HOME"]


def test_user_control_path_wins():
    spec = HostSpec(address="h", ssh_common_args="-o ControlPath=/tmp/cp-%h")
    assert not any(o.startswith("ControlPath=") and "lxcfleet" in o for o in _ssh.ssh_base_argv(spec))


@pytest.mark.parametrize("name", ["ünïcødé ✓ 名前", "it's \"quoted\" $HOME `x` \\ ;|&", "-n", "\n"])
def test_remote_script_round_trips_through_a_real_shell(name):
    """What the remote shell executes is exactly the argv, whatever the characters."""
    script = _ssh.remote_script(["printf", "%s\\0", name, "second"], None)
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:2] == [name.encode(), b"second"]


def test_remote_owner_script_refuses_a_stranger_in_a_real_shell():
    me = _ssh.current_user()
    script = _ssh.remote_script(["echo", "ran"], "nobody" if me != "nobody" else "daemon")
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=False)
    if os.geteuid() == 0:
        # root switches with runuser and the command runs as the owner
        assert proc.returncode == 0 and proc.stdout == b"ran\n"
    else:
        assert proc.returncode == 126 and b"lxcfleet: the container belongs to" in proc.stderr


def test_remote_owner_script_runs_directly_as_the_owner():
    script = _ssh.remote_script(["id", "-un"], _ssh.current_user())
    assert "runuser" in script  # the decision is taken remotely
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True).stdout
    assert out.decode().strip() == _ssh.current_user()


@pytest.mark.parametrize(
    "spec, message",
    [
        (HostSpec(address="-oProxyCommand=x"), "lxc_host: '-oProxyCommand=x' must not start with '-'"),
        (HostSpec(address="h", user="a b"), "lxc_host_user"),
        (HostSpec(address="h", port=70000), "lxc_host_port"),
        (HostSpec(address="h", timeout=0), "timeout"),
        (HostSpec(address="h", ssh_common_args="-o 'unterminated"), "ssh_common_args"),
    ],
)
def test_bad_specs_name_the_option(spec, message):
    with pytest.raises(HostSpecError, match=message):
        _ssh.ssh_base_argv(spec)


def test_describe():
    assert HostSpec().describe() == "this machine"
    assert HostSpec(address="h", user="u", port=22).describe() == "u@h:22"
