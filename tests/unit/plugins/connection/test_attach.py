# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attach connection's own logic, with a fake ``lxc-attach``/``lxc-info`` that run the command on
this machine. Real containers (locally, as an owner, over SSH) are tested in
tests/integration/targets/connection; these cover argv, streaming, names, the become handshake and
the error classification without LXC."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import textwrap

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import become_loader, connection_loader, shell_loader

FAKE_ATTACH = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    if os.environ.get("FAKE_ATTACH_FAIL"):
        sys.stderr.write("lxc-attach: c1: ../src/lxc/attach.c: get_attach_context: 406 Connection refused - "
                         "Failed to get init pid\\n")
        sys.exit(1)
    cut = args.index("--")
    opts, cmd = args[:cut], args[cut + 1:]
    env = {{}} if "--clear-env" in opts else dict(os.environ)
    for i, opt in enumerate(opts):
        if opt == "--set-var":
            key, _, value = opts[i + 1].partition("=")
            env[key] = value
    os.execvpe(cmd[0], cmd, env)
    """
)
FAKE_INFO = textwrap.dedent(
    """\
    #!/bin/sh
    if [ -n "$FAKE_STATE" ]; then echo "$FAKE_STATE"; exit 0; fi
    echo "$4 doesn't exist" >&2
    exit 1
    """
)


@pytest.fixture
def fake_lxc(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    attach = bindir / "lxc-attach"
    attach.write_text(FAKE_ATTACH.format(python=sys.executable))
    info = bindir / "lxc-info"
    info.write_text(FAKE_INFO)
    for path in (attach, info):
        path.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "argv.log"))
    monkeypatch.delenv("FAKE_ATTACH_FAIL", raising=False)
    monkeypatch.delenv("FAKE_STATE", raising=False)
    return attach


def make_conn(fake_lxc, **variables):
    conn = connection_loader.get("lxcfleet.lxc.attach", PlayContext(), None)
    assert conn is not None, "connection_loader did not find lxcfleet.lxc.attach"
    opts = {"ansible_lxc_name": "c1", "ansible_lxc_attach_executable": str(fake_lxc)}
    opts.update(variables)
    conn.set_options(var_options=opts)
    conn._connect()
    return conn


def logged_argv(tmp_path):
    import json

    return [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]


def test_exec_runs_in_sh_with_a_clean_environment(fake_lxc, tmp_path, monkeypatch):
    monkeypatch.setenv("LEAK_ME", "controller-secret")
    conn = make_conn(fake_lxc, ansible_lxc_path="/srv/lxc", ansible_lxc_env={"APP": "x y"})
    rc, out, err = conn.exec_command("echo \"$HOME|$PATH|$APP|${LEAK_ME:-none}|$(pwd)\"; exit 7")
    assert rc == 7
    assert out == b"/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|x y|none|/\n"
    argv = logged_argv(tmp_path)[-1]
    assert argv[:4] == ["-P", "/srv/lxc", "-n", "c1"]
    assert "--clear-env" in argv and "APP=x y" in argv
    assert argv[-3:-1] == ["/bin/sh", "-c"]


def test_pipelined_stdin_is_passed(fake_lxc):
    conn = make_conn(fake_lxc)
    data = bytes(range(256)) * 1000
    rc, out, _err = conn.exec_command("cat", in_data=data)
    assert rc == 0 and out == data


def test_a_command_failing_on_its_own_is_a_result_not_a_connection_failure(fake_lxc):
    conn = make_conn(fake_lxc)
    rc, _out, err = conn.exec_command("echo 'lxc-attach: something' >&2; exit 1")
    assert rc == 1 and err == b"lxc-attach: something\n"


@pytest.mark.parametrize(
    "state, message",
    [
        ("STOPPED", r"container 'c1' \(lxc path default\) on this machine is STOPPED, not RUNNING"),
        ("", r"container 'c1' \(lxc path default\) on this machine does not exist"),
        ("FROZEN", r"is FROZEN, not RUNNING"),
    ],
)
def test_unreachable_containers_are_connection_failures(fake_lxc, monkeypatch, state, message):
    monkeypatch.setenv("FAKE_ATTACH_FAIL", "1")
    monkeypatch.setenv("FAKE_STATE", state)
    conn = make_conn(fake_lxc)
    with pytest.raises(AnsibleConnectionFailure, match=message):
        conn.exec_command("true")
    with pytest.raises(AnsibleConnectionFailure, match=message):
        conn.fetch_file("/etc/hostname", "/dev/null")


@pytest.mark.parametrize(
    "name",
    ["plain.bin", "ünïcødé ✓ 名前.bin", "it's \"quoted\" $HOME `x`.bin", "-leading-dash.bin", "new\nline.bin"],
)
def test_put_and_fetch_are_binary_safe_and_keep_names_and_modes(fake_lxc, tmp_path, name):
    conn = make_conn(fake_lxc)
    src = tmp_path / "src.bin"
    payload = bytes(range(256)) * 4096 + os.urandom(4096)
    src.write_bytes(payload)
    src.chmod(0o751)
    box = tmp_path / "container"
    box.mkdir()
    dest = box / name
    conn.put_file(str(src), str(dest))
    assert dest.read_bytes() == payload
    assert stat.S_IMODE(dest.stat().st_mode) == 0o751
    back = tmp_path / ("back-" + name)
    conn.fetch_file(str(dest), str(back))
    assert back.read_bytes() == payload
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lxcfleet-fetch-")]


def test_put_file_streams_from_the_file_descriptor(fake_lxc, tmp_path, monkeypatch):
    """The source file object itself becomes lxc-attach's stdin: nothing is read into memory."""
    import subprocess

    seen = {}
    real_popen = subprocess.Popen

    def spy(argv, **kwargs):
        seen["stdin"] = kwargs.get("stdin")
        return real_popen(argv, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    conn = make_conn(fake_lxc)
    src = tmp_path / "s"
    src.write_bytes(b"x" * 100)
    conn.put_file(str(src), str(tmp_path / "d"))
    assert hasattr(seen["stdin"], "fileno") and seen["stdin"].name == str(src).encode()


def test_put_missing_source(fake_lxc, tmp_path):
    conn = make_conn(fake_lxc)
    with pytest.raises(AnsibleFileNotFound):
        conn.put_file(str(tmp_path / "nope"), str(tmp_path / "d"))


def test_put_into_a_missing_folder_names_the_file(fake_lxc, tmp_path):
    conn = make_conn(fake_lxc)
    src = tmp_path / "s"
    src.write_bytes(b"x")
    with pytest.raises(AnsibleError, match=r"failed to write .*/no/such/dir/d in container 'c1'"):
        conn.put_file(str(src), str(tmp_path / "no/such/dir/d"))


def test_fetch_missing_file_leaves_nothing_behind(fake_lxc, tmp_path):
    conn = make_conn(fake_lxc)
    out = tmp_path / "out"
    with pytest.raises(AnsibleError, match="failed to read"):
        conn.fetch_file(str(tmp_path / "missing"), str(out))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lxcfleet-fetch-")]


def test_become_password_prompt_is_answered_on_stdin(fake_lxc):
    conn = make_conn(fake_lxc)
    become = become_loader.get("ansible.builtin.sudo")
    become.set_options(direct={"become_pass": "s3cret", "become_user": "app"})
    conn.set_become_plugin(become)
    shell = shell_loader.get("sh")
    become.build_become_command("true", shell)  # sets the prompt and success marker
    script = (
        f"printf '%s' {shlex.quote(become.prompt)} >&2; read -r pw; "
        f"echo {shlex.quote(become.success)}; echo \"got:$pw\""
    )
    rc, out, err = conn.exec_command(script, sudoable=True)
    assert rc == 0
    assert out == b"got:s3cret\n"
    assert b"s3cret" not in err


def test_become_without_prompt_strips_the_success_marker(fake_lxc):
    conn = make_conn(fake_lxc)
    become = become_loader.get("ansible.builtin.su")
    become.set_options(direct={"become_user": "app"})
    conn.set_become_plugin(become)
    become.build_become_command("true", shell_loader.get("sh"))
    rc, out, _err = conn.exec_command(f"echo {shlex.quote(become.success)}; echo payload", sudoable=True)
    assert (rc, out) == (0, b"payload\n")


def test_become_timeout_is_a_connection_failure(fake_lxc):
    conn = make_conn(fake_lxc, ansible_lxc_become_timeout=1)
    become = become_loader.get("ansible.builtin.su")
    become.set_options(direct={"become_user": "app"})
    conn.set_become_plugin(become)
    become.build_become_command("true", shell_loader.get("sh"))
    with pytest.raises(AnsibleConnectionFailure, match=r"timed out waiting for become \(su\)"):
        conn.exec_command("sleep 5", sudoable=True)


def test_owner_runs_through_runuser_as_root(fake_lxc, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    conn = make_conn(fake_lxc, ansible_lxc_owner="nobody")
    argv = conn._attach_argv(["/bin/true"])
    assert argv[:4] == ["runuser", "-u", "nobody", "--"]


def test_remote_argv_goes_through_ssh(fake_lxc):
    conn = make_conn(
        fake_lxc,
        ansible_lxc_host="lxc1.example",
        ansible_lxc_host_user="admin",
        ansible_lxc_host_port=2200,
        ansible_lxc_owner="alice",
        ansible_lxc_path="/home/alice/.local/share/lxc",
    )
    argv = conn._attach_argv(["/bin/sh", "-c", "echo ü"])
    assert argv[0] == "ssh" and "Port=2200" in argv and "User=admin" in argv
    assert argv[-2] == "lxc1.example"
    words = shlex.split(argv[-1])
    # runuser directly, or (cgroup2 host with the owner's systemd) through a delegated user scope
    assert "runuser" in words and words.count("/home/alice/.local/share/lxc") == 3
    assert "systemd-run" in words and "Delegate=yes" in words
    assert any(word.startswith("echo ü") for word in words)


def test_bad_options_name_the_option(fake_lxc):
    conn = connection_loader.get("lxcfleet.lxc.attach", PlayContext(), None)
    conn.set_options(var_options={"ansible_lxc_name": "c1", "ansible_lxc_host": "h", "ansible_lxc_host_port": 99999})
    with pytest.raises(AnsibleConnectionFailure, match="lxc_host_port"):
        conn._connect()
    conn = make_conn(fake_lxc, ansible_lxc_env={"BAD-NAME": "x"})
    with pytest.raises(AnsibleConnectionFailure, match="env: 'BAD-NAME'"):
        conn.exec_command("true")


def test_unreachable_ssh_host_is_a_connection_failure(fake_lxc, tmp_path):
    """A real ssh to a closed port on 127.0.0.1 (no server needed)."""
    import socket
    import tempfile

    short = tempfile.mkdtemp(prefix="lxcf-cp-")  # a control socket path must stay below 108 bytes

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = make_conn(
        fake_lxc,
        ansible_lxc_host="127.0.0.1",
        ansible_lxc_host_port=port,
        ansible_control_path_dir=short,
    )
    with pytest.raises(AnsibleConnectionFailure, match=rf"cannot reach LXC host 127.0.0.1:{port} .*Connection refused"):
        conn.exec_command("true")
    os.rmdir(short)


def test_ssh_errors_of_its_own_are_connection_failures(fake_lxc, tmp_path):
    """OpenSSH refusing to start (a too long control path) is not a result of the command."""
    conn = make_conn(fake_lxc, ansible_lxc_host="127.0.0.1", ansible_lxc_host_port=1,
                     ansible_control_path_dir=str(tmp_path / ("x" * 80)))
    with pytest.raises(AnsibleConnectionFailure, match="ControlPath too long"):
        conn.exec_command("true")


def test_env_from_the_environment_is_a_json_object(fake_lxc, tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_LXC_ENV", '{"LANG": "C.UTF-8", "APP": "a b"}')
    conn = make_conn(fake_lxc)
    rc, out, _err = conn.exec_command('echo "$LANG|$APP"')
    assert (rc, out) == (0, b"C.UTF-8|a b\n")
    monkeypatch.setenv("ANSIBLE_LXC_ENV", "LANG=C")
    conn = make_conn(fake_lxc)
    with pytest.raises(AnsibleConnectionFailure, match="env: not a JSON object"):
        conn.exec_command("true")
    monkeypatch.setenv("ANSIBLE_LXC_ENV", "[1]")
    conn = make_conn(fake_lxc)
    with pytest.raises(AnsibleConnectionFailure, match="env: must be a mapping, not list"):
        conn.exec_command("true")


@pytest.mark.skipif(os.geteuid() != 0, reason="the remote script's owner branch runs as root")
def test_remote_script_as_root_for_a_missing_and_an_existing_owner():
    """The script itself, run by a real /bin/sh as root: a missing owner gets runuser's own error
    (nothing from id first), an existing one runs the command as that user."""
    from ansible_collections.lxcfleet.lxc.plugins.plugin_utils._ssh import remote_script

    missing = subprocess.run(["sh", "-c", remote_script(["true"], "lfnosuchowner")], capture_output=True, text=True,
                             check=False)
    assert missing.returncode != 0
    assert missing.stderr.startswith("runuser: user lfnosuchowner does not exist")
    existing = subprocess.run(["sh", "-c", remote_script(["id", "-un"], "nobody")], capture_output=True, text=True,
                              check=False)
    assert existing.returncode == 0 and existing.stdout.strip() == "nobody"
