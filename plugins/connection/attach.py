# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
author:
  - lxcfleet developers (@lxcfleet)
name: attach
short_description: Run tasks in classic LXC containers through lxc-attach, locally or on an LXC host over SSH
description:
  - Runs commands and transfers files in a running LXC container with C(lxc-attach). No Python bindings
    (python3-lxc) are needed, neither on the controller nor on the LXC host.
  - The container may live on the controller, or on a remote LXC host reached with OpenSSH (O(lxc_host)).
    Over SSH, C(lxc-attach) runs on the LXC host; SSH connection sharing (ControlPersist) keeps that cheap.
  - Unprivileged containers owned by another user on the LXC host are reached as that user (O(lxc_owner));
    when the user the connection runs as is root, the command goes through C(runuser -u OWNER).
  - Commands run as the container's root with a clean environment (O(clear_env), O(path)). Use C(become)
    (for example C(ansible.builtin.su) or C(ansible.builtin.sudo)) to run as another user inside.
  - File transfers stream through C(lxc-attach)'s standard input and output, so files of any size and any
    content are copied without being held in memory; names may contain any character but NUL.
  - A stopped or missing container is an C(AnsibleConnectionFailure) that names the container, its LXC path,
    its owner and the LXC host.
version_added: 0.1.0
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description:
      - The name of the container.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_lxc_name
    env:
      - name: ANSIBLE_LXC_NAME
    ini:
      - section: lxcfleet_attach_connection
        key: container
  lxc_path:
    description:
      - The LXC path of the container on the LXC host (C(lxc-attach -P)).
      - Default is the LXC default of the user that runs C(lxc-attach), that is root's
        (usually C(/var/lib/lxc)) or, with O(lxc_owner), the owner's (usually C(~/.local/share/lxc)).
    type: string
    vars:
      - name: ansible_lxc_path
    env:
      - name: ANSIBLE_LXC_PATH
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_path
  lxc_owner:
    description:
      - The user on the LXC host who owns the container (for unprivileged containers of a user).
      - C(lxc-attach) runs as this user. If the connection runs as root it switches with C(runuser);
        if it runs as another user that is not the owner, the task fails with a connection error.
      - Unset for containers of root.
    type: string
    vars:
      - name: ansible_lxc_owner
    env:
      - name: ANSIBLE_LXC_OWNER
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_owner
  lxc_host:
    description:
      - Address (or SSH host alias) of the LXC host that runs the container.
      - Unset or empty means the controller itself; no SSH is used then.
    type: string
    vars:
      - name: ansible_lxc_host
    env:
      - name: ANSIBLE_LXC_HOST
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_host
  lxc_host_user:
    description:
      - The SSH user on the LXC host. Default is what OpenSSH picks (C(~/.ssh/config), then the local user name).
    type: string
    vars:
      - name: ansible_lxc_host_user
    env:
      - name: ANSIBLE_LXC_HOST_USER
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_host_user
  lxc_host_port:
    description:
      - The SSH port of the LXC host. Default is what OpenSSH picks (usually 22).
    type: integer
    vars:
      - name: ansible_lxc_host_port
    env:
      - name: ANSIBLE_LXC_HOST_PORT
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_host_port
  private_key_file:
    description:
      - Private key for SSH to the LXC host (C(ssh -i)).
    type: string
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
      - name: ansible_lxc_ssh_private_key_file
    env:
      - name: ANSIBLE_PRIVATE_KEY_FILE
    ini:
      - section: defaults
        key: private_key_file
  ssh_executable:
    description:
      - The OpenSSH client to use.
    type: string
    default: ssh
    vars:
      - name: ansible_ssh_executable
      - name: ansible_lxc_ssh_executable
    env:
      - name: ANSIBLE_SSH_EXECUTABLE
    ini:
      - section: ssh_connection
        key: ssh_executable
  ssh_args:
    description:
      - Arguments for every SSH call, as for the C(ansible.builtin.ssh) connection. The default shares one
        connection per LXC host (ControlMaster/ControlPersist); the control sockets live in O(control_path_dir).
    type: string
    default: -C -o ControlMaster=auto -o ControlPersist=60s
    vars:
      - name: ansible_ssh_args
      - name: ansible_lxc_ssh_args
    env:
      - name: ANSIBLE_SSH_ARGS
    ini:
      - section: ssh_connection
        key: ssh_args
  ssh_common_args:
    description:
      - Further SSH arguments, for example a C(ProxyJump), as for the C(ansible.builtin.ssh) connection.
    type: string
    default: ""
    vars:
      - name: ansible_ssh_common_args
      - name: ansible_lxc_ssh_common_args
    env:
      - name: ANSIBLE_SSH_COMMON_ARGS
    ini:
      - section: ssh_connection
        key: ssh_common_args
  ssh_extra_args:
    description:
      - Extra SSH arguments, added after O(ssh_common_args).
    type: string
    default: ""
    vars:
      - name: ansible_ssh_extra_args
      - name: ansible_lxc_ssh_extra_args
    env:
      - name: ANSIBLE_SSH_EXTRA_ARGS
    ini:
      - section: ssh_connection
        key: ssh_extra_args
  host_key_checking:
    description:
      - Whether OpenSSH checks the LXC host's key. V(false) accepts any key and records none.
    type: boolean
    default: true
    vars:
      - name: ansible_host_key_checking
      - name: ansible_ssh_host_key_checking
      - name: ansible_lxc_host_key_checking
    env:
      - name: ANSIBLE_HOST_KEY_CHECKING
      - name: ANSIBLE_SSH_HOST_KEY_CHECKING
    ini:
      - section: defaults
        key: host_key_checking
  control_path_dir:
    description:
      - Folder for the SSH control sockets (created with mode 0700).
    type: string
    default: ~/.ansible/cp
    vars:
      - name: ansible_control_path_dir
    env:
      - name: ANSIBLE_SSH_CONTROL_PATH_DIR
    ini:
      - section: ssh_connection
        key: control_path_dir
  timeout:
    description:
      - Seconds to wait for the SSH connection to the LXC host (C(ConnectTimeout)).
    type: integer
    default: 10
    vars:
      - name: ansible_ssh_timeout
      - name: ansible_lxc_timeout
    env:
      - name: ANSIBLE_TIMEOUT
      - name: ANSIBLE_SSH_TIMEOUT
    ini:
      - section: defaults
        key: timeout
    cli:
      - name: timeout
  lxc_attach_executable:
    description:
      - The C(lxc-attach) program on the LXC host. C(lxc-info) is taken from the same folder when this is a path.
    type: string
    default: lxc-attach
    vars:
      - name: ansible_lxc_attach_executable
    env:
      - name: ANSIBLE_LXC_ATTACH_EXECUTABLE
    ini:
      - section: lxcfleet_attach_connection
        key: lxc_attach_executable
  clear_env:
    description:
      - Start commands with an empty environment (C(lxc-attach --clear-env)) plus C(PATH) (O(path)),
        C(HOME=/root) and O(env). V(false) passes the environment of C(lxc-attach) on (not recommended).
    type: boolean
    default: true
    vars:
      - name: ansible_lxc_clear_env
    env:
      - name: ANSIBLE_LXC_CLEAR_ENV
    ini:
      - section: lxcfleet_attach_connection
        key: clear_env
  path:
    description:
      - The C(PATH) inside the container.
    type: string
    default: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    vars:
      - name: ansible_lxc_env_path
    env:
      - name: ANSIBLE_LXC_ENV_PATH
    ini:
      - section: lxcfleet_attach_connection
        key: path
  env:
    description:
      - Further environment variables for every command in the container, as a mapping of names to values.
      - From the environment variable or C(ansible.cfg), the mapping is written as a JSON object,
        for example C({"LANG":"C.UTF-8"}).
    type: raw
    default: {}
    vars:
      - name: ansible_lxc_env
    env:
      - name: ANSIBLE_LXC_ENV
    ini:
      - section: lxcfleet_attach_connection
        key: env
  become_timeout:
    description:
      - Seconds to wait for a C(become) method to report success or ask for its password.
    type: integer
    default: 30
    vars:
      - name: ansible_lxc_become_timeout
    env:
      - name: ANSIBLE_LXC_BECOME_TIMEOUT
    ini:
      - section: lxcfleet_attach_connection
        key: become_timeout
notes:
  - Commands run as root in the container; the O(remote_addr) name and not C(ansible_user) selects the target.
    Use C(become) with C(become_user) to run as another user there.
  - C(become) methods that ask for a password read it from standard input (for example C(sudo -S), which
    C(ansible.builtin.sudo) uses when a password is set). Methods that insist on a terminal cannot be given a
    password through this connection; as root they do not need one.
  - C(community.general.lxc) uses C(ansible_lxc_host) for the container's name. Here it names the LXC host;
    the container is O(remote_addr) (C(ansible_lxc_name), C(ansible_host) or the inventory name).
seealso:
  - plugin: lxcfleet.lxc.containers
    plugin_type: inventory
"""

EXAMPLES = r"""
# Inventory (inventory.yml): one container on the controller, one unprivileged container of alice
# on a remote LXC host.
#
# all:
#   hosts:
#     web1:
#       ansible_connection: lxcfleet.lxc.attach
#     db1:
#       ansible_connection: lxcfleet.lxc.attach
#       ansible_lxc_host: lxchost1.example.org
#       ansible_lxc_host_user: root
#       ansible_lxc_owner: alice
#       ansible_lxc_path: /home/alice/.local/share/lxc
#       ansible_pipelining: true

- name: Configure inside the containers
  hosts: all
  tasks:
    - name: Install the application config
      ansible.builtin.template:
        src: app.conf.j2
        dest: /etc/app.conf
        mode: "0644"
    - name: Run as the application user
      ansible.builtin.command: whoami
      become: true
      become_method: ansible.builtin.su
      become_user: app
      changed_when: false
"""

import json
import os
import re
import selectors
import shlex
import stat
import subprocess
import tempfile
import time
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.lxcfleet.lxc.plugins.plugin_utils._ssh import (
    SSH_ERROR_RC,
    HostSpec,
    HostSpecError,
    ensure_control_dir,
    host_argv,
    ssh_base_argv,
)

display = Display()

#: lxc-attach's own messages when it cannot reach the container (not output of the command inside).
_ATTACH_FAILURE_RE = re.compile(
    rb"^lxc-attach: .*(Failed to get init pid|Failed to get attach context|No such file or directory - "
    rb"Failed to open|does not exist|is not running|You lack access|Permission denied - Failed|"
    rb"Insuffici?ent privileges)",
    re.MULTILINE,
)
#: The remote side's refusal when SSH logged in as a user that is neither the owner nor root.
_OWNER_REFUSAL = b"lxcfleet: the container belongs to "
#: OpenSSH's own error lines (exit code 255).
_SSH_ERROR_RE = re.compile(
    rb"^(ssh: |kex_exchange_identification|Permission denied \(|Host key verification failed|"
    rb"Connection (closed|reset|timed out|refused)|.*: Connection refused|Received disconnect|"
    rb"mux_client|ControlSocket|ControlPath too long|Could not resolve|.*No route to host|"
    rb"command-line line \d+:|no argument after keyword|Bad configuration option|Identity file .* not accessible)",
    re.MULTILINE,
)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class Connection(ConnectionBase):
    """Run commands and copy files in an LXC container through ``lxc-attach``."""

    transport = "lxcfleet.lxc.attach"
    has_pipelining = True
    default_user = "root"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._spec: HostSpec | None = None

    # ------------------------------------------------------------------ options

    def _container(self) -> str:
        name = self.get_option("remote_addr")
        if not name:
            raise AnsibleConnectionFailure("lxcfleet.lxc.attach: no container name (remote_addr / ansible_lxc_name)")
        return to_text(name)

    def _text_option(self, name: str) -> str | None:
        value = self.get_option(name)
        if value is None:
            return None
        return to_text(value) or None

    def _owner(self) -> str | None:
        return self._text_option("lxc_owner")

    def _lxc_path(self) -> str | None:
        return self._text_option("lxc_path")

    def _host_spec(self) -> HostSpec:
        if self._spec is None:
            port = self.get_option("lxc_host_port")
            spec = HostSpec(
                address=self._text_option("lxc_host"),
                user=self._text_option("lxc_host_user"),
                port=int(port) if port else None,
                private_key_file=self._text_option("private_key_file"),
                ssh_executable=to_text(self.get_option("ssh_executable") or "ssh"),
                ssh_args=to_text(self.get_option("ssh_args") or ""),
                ssh_common_args=to_text(self.get_option("ssh_common_args") or ""),
                ssh_extra_args=to_text(self.get_option("ssh_extra_args") or ""),
                host_key_checking=bool(self.get_option("host_key_checking")),
                timeout=int(self.get_option("timeout") or 10),
                control_path_dir=to_text(self.get_option("control_path_dir") or "~/.ansible/cp"),
            )
            try:
                spec.validate()
            except HostSpecError as exc:
                raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: {exc}") from None
            self._spec = spec
        return self._spec

    def _where(self) -> str:
        """'container web1 (lxc path /var/lib/lxc, owner alice) on host h1' for messages."""
        details = [f"lxc path {self._lxc_path() or 'default'}"]
        if self._owner():
            details.append(f"owner {self._owner()}")
        return f"container {self._container()!r} ({', '.join(details)}) on {self._host_spec().describe()}"

    def _environment(self) -> list[str]:
        argv: list[str] = []
        if self.get_option("clear_env"):
            argv.append("--clear-env")
            argv += ["--set-var", f"PATH={self.get_option('path')}", "--set-var", "HOME=/root"]
        for key, value in sorted(self._extra_env().items()):
            key = to_text(key)
            if not _ENV_NAME_RE.match(key):
                raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: env: {key!r} is not a valid variable name")
            argv += ["--set-var", f"{key}={to_text(value)}"]
        return argv

    def _extra_env(self) -> dict:
        value = self.get_option("env") or {}
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(to_text(value))
            except ValueError as exc:
                raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: env: not a JSON object: {exc}") from None
        if not isinstance(value, Mapping):
            raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: env: must be a mapping, not {type(value).__name__}")
        return dict(value)

    def _lxc_tool(self, tool: str) -> str:
        attach = to_text(self.get_option("lxc_attach_executable") or "lxc-attach")
        if tool == "lxc-attach":
            return attach
        if "/" in attach:
            return os.path.join(os.path.dirname(attach), tool)
        return tool

    def _host_argv(self, argv: list[str]) -> list[str]:
        try:
            return host_argv(self._host_spec(), argv, self._owner())
        except HostSpecError as exc:
            raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: {self._where()}: {exc}") from None

    def _attach_argv(self, command: list[str]) -> list[str]:
        argv = [self._lxc_tool("lxc-attach")]
        if self._lxc_path():
            argv += ["-P", self._lxc_path()]
        argv += ["-n", self._container()]
        argv += self._environment()
        argv += ["--"] + command
        return self._host_argv(argv)

    # ------------------------------------------------------------------ connection

    def _connect(self) -> "Connection":
        if not self._connected:
            spec = self._host_spec()
            if not self._container() or self._container().startswith("-"):
                raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: invalid container name {self._container()!r}")
            try:
                ensure_control_dir(spec)
            except OSError as exc:
                raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: control_path_dir: {exc}") from None
            display.vvv(f"ATTACH {self._where()}", host=self._container())
            self._connected = True
        return self

    def _popen(self, argv: list[str], **kwargs: t.Any) -> subprocess.Popen:
        display.vvvv(f"LXCFLEET ATTACH ARGV {shlex.join(argv)}", host=self._container())
        try:
            return subprocess.Popen(argv, cwd="/", **kwargs)  # noqa: S603 - argv list, no shell
        except OSError as exc:
            raise AnsibleConnectionFailure(
                f"lxcfleet.lxc.attach: cannot run {argv[0]!r} for {self._where()}: {exc}"
            ) from None

    def _raise_if_unreachable(self, rc: int, stderr: bytes) -> None:
        """Turn failures of SSH, of the owner switch and of lxc-attach itself into connection errors."""
        spec = self._host_spec()
        if not spec.is_local and rc == SSH_ERROR_RC and _SSH_ERROR_RE.search(stderr):
            raise AnsibleConnectionFailure(
                f"lxcfleet.lxc.attach: cannot reach LXC host {spec.describe()} for container "
                f"{self._container()!r}: {to_text(stderr).strip()}"
            )
        if _OWNER_REFUSAL in stderr or (rc == 1 and b"runuser: user " in stderr and b"does not exist" in stderr):
            raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: {self._where()}: {to_text(stderr).strip()}")
        if rc != 0 and _ATTACH_FAILURE_RE.search(stderr):
            raise AnsibleConnectionFailure(f"lxcfleet.lxc.attach: {self._state_problem(stderr)}")

    def _state_problem(self, attach_stderr: bytes) -> str:
        """Why lxc-attach could not reach the container: ask lxc-info (same host, path and owner)."""
        argv = [self._lxc_tool("lxc-info")]
        if self._lxc_path():
            argv += ["-P", self._lxc_path()]
        argv += ["-n", self._container(), "-s", "-H"]
        try:
            proc = subprocess.run(  # noqa: S603 - argv list
                self._host_argv(argv), capture_output=True, timeout=self._host_spec().timeout + 20, check=False,
                cwd="/",
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self._where()}: lxc-attach failed ({to_text(attach_stderr).strip()}); lxc-info failed: {exc}"
        state = to_text(proc.stdout).strip()
        err = to_text(proc.stderr).strip()
        if re.search(rb"Insuffici?ent privileges", attach_stderr):
            who = self._owner() or "the connecting user"
            return (
                f"{self._where()}: {who} may not control this container (is it the owner? set lxc_owner / "
                f"ansible_lxc_owner to the user that owns it): {to_text(attach_stderr).strip()}"
            )
        if proc.returncode != 0 and "doesn't exist" in err:
            return f"{self._where()} does not exist"
        if proc.returncode == 0 and state and state != "RUNNING":
            return f"{self._where()} is {state}, not RUNNING; start it first"
        return f"{self._where()}: lxc-attach failed: {to_text(attach_stderr).strip()}" + (
            f" (lxc-info: {err or state})" if (err or state) else ""
        )

    # ------------------------------------------------------------------ commands

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {to_text(cmd)}", host=self._container())
        argv = self._attach_argv(["/bin/sh", "-c", to_native(cmd)])
        proc = self._popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        become_out, become_err = b"", b""
        if sudoable and self.become and getattr(self.become, "_id", None):
            become_out, become_err = self._become_handshake(proc)
        stdout, stderr = proc.communicate(in_data)
        stdout, stderr = become_out + stdout, become_err + stderr
        self._raise_if_unreachable(proc.returncode, stderr)
        return proc.returncode, stdout, stderr

    def _become_handshake(self, proc: subprocess.Popen) -> tuple[bytes, bytes]:
        """Wait for the become method's success marker, answering one password prompt on stdin."""
        assert_streams = proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        if not assert_streams:  # pragma: no cover - Popen was given PIPEs
            return b"", b""
        out, err = bytearray(), bytearray()
        expect_prompt = self.become.expect_prompt()
        sent = False
        deadline = time.monotonic() + int(self.get_option("become_timeout"))
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        buffers = {proc.stdout: out, proc.stderr: err}
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                selector.register(proc.stderr, selectors.EVENT_READ)
                while not self.become.check_success(bytes(out)):
                    if expect_prompt and not sent and (
                        self.become.check_password_prompt(bytes(out)) or self.become.check_password_prompt(bytes(err))
                    ):
                        password = self.become.get_option("become_pass") or ""
                        proc.stdin.write(to_bytes(password) + b"\n")
                        proc.stdin.flush()
                        sent = True
                    if not selector.get_map():
                        break
                    remaining = deadline - time.monotonic()
                    events = selector.select(remaining) if remaining > 0 else []
                    if not events:
                        proc.kill()
                        raise AnsibleConnectionFailure(
                            f"lxcfleet.lxc.attach: timed out waiting for become ({self.become.name}) in "
                            f"{self._where()}:\n{to_text(bytes(out))}{to_text(bytes(err))}"
                        )
                    for key, _mask in events:
                        chunk = key.fileobj.read()  # type: ignore[union-attr]
                        if chunk:
                            buffers[key.fileobj] += chunk  # type: ignore[index]
                        else:
                            selector.unregister(key.fileobj)
        finally:
            for stream in (proc.stdout, proc.stderr):
                os.set_blocking(stream.fileno(), True)
        if self.become.check_success(bytes(out)):
            # Drop everything up to and including the success marker line, as Ansible expects.
            marker = to_bytes(self.become.success)
            idx = out.find(marker)
            if idx >= 0:
                nl = out.find(b"\n", idx)
                out = out[nl + 1:] if nl >= 0 else bytearray()
            if expect_prompt and sent:
                err = bytearray()
        return bytes(out), bytes(err)

    # ------------------------------------------------------------------ files

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._container())
        b_in = to_bytes(in_path, errors="surrogate_or_strict")
        try:
            mode = stat.S_IMODE(os.stat(b_in).st_mode)
            src = open(b_in, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise AnsibleFileNotFound(f"lxcfleet.lxc.attach: file or module does not exist: {in_path}") from None
        except OSError as exc:
            raise AnsibleError(f"lxcfleet.lxc.attach: cannot read {in_path}: {exc}") from None
        # The file is created private and gets the source's permission bits once complete.
        script = 'umask 077 && cat > "$1" && chmod "$2" "$1"'
        argv = self._attach_argv(["/bin/sh", "-c", script, "sh", to_native(out_path), f"{mode:04o}"])
        with src:
            proc = self._popen(argv, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stdout, stderr = proc.communicate()
        self._check_transfer(proc.returncode, stderr or stdout, f"write {out_path}")

    def _check_transfer(self, rc: int, output: bytes, what: str) -> None:
        """A transfer that lxc-attach could not run is a connection failure; one that failed inside, an error."""
        self._raise_if_unreachable(rc, output)
        if rc != 0:
            raise AnsibleError(
                f"lxcfleet.lxc.attach: failed to {what} in {self._where()} (rc={rc}): {to_text(output).strip()}"
            )

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._container())
        b_out = to_bytes(out_path, errors="surrogate_or_strict")
        folder = os.path.dirname(b_out) or b"."
        argv = self._attach_argv(["/bin/sh", "-c", 'exec cat -- "$1"', "sh", to_native(in_path)])
        fd, tmp = tempfile.mkstemp(prefix=b".lxcfleet-fetch-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as dst:
                proc = self._popen(argv, stdin=subprocess.DEVNULL, stdout=dst, stderr=subprocess.PIPE)
                _out, stderr = proc.communicate()
            self._check_transfer(proc.returncode, stderr, f"read {in_path}")
            os.chmod(tmp, 0o644 & ~_umask())
            os.replace(tmp, b_out)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    # ------------------------------------------------------------------ lifecycle

    def reset(self) -> None:
        """Close the shared SSH connection to the LXC host (meta: reset_connection)."""
        spec = self._host_spec()
        if not spec.is_local:
            argv = ssh_base_argv(spec)
            argv[-2:-2] = ["-O", "exit"]
            subprocess.run(argv, capture_output=True, timeout=spec.timeout + 5, check=False)  # noqa: S603
        self.close()

    def close(self) -> None:
        self._connected = False


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
