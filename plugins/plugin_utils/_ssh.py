# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This plugin_utils file is private to the lxcfleet.lxc collection.
"""Reaching an LXC host: argv for local runs and for runs over OpenSSH.

Shared by the ``attach`` connection and the ``containers`` inventory. Everything is built as an
argv list. Over SSH the remote side gets one command string (that is how SSH works); it is made
only with :func:`shlex.quote` of argv elements, never by pasting user text into a shell line.

A container owned by another user on the LXC host is reached as that owner: when the user we are
is not the owner, the argv runs through ``runuser -u OWNER --`` (which needs root and sets the
owner's HOME, so LXC finds the owner's config and lxc path).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
from dataclasses import dataclass, field

#: A POSIX-ish user name (what useradd accepts by default, plus a trailing $ for machine accounts).
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?\Z")

#: Ansible's ssh plugin default, so the LXC host sees the same multiplexed master.
DEFAULT_SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s"

#: The exit code OpenSSH uses for its own errors (cannot connect, authentication failed).
SSH_ERROR_RC = 255


class HostSpecError(ValueError):
    """A bad option for reaching a host (names the option)."""


@dataclass
class HostSpec:
    """How to reach one LXC host. ``address`` None (or empty) means this machine."""

    address: str | None = None
    user: str | None = None
    port: int | None = None
    private_key_file: str | None = None
    ssh_executable: str = "ssh"
    ssh_args: str = DEFAULT_SSH_ARGS
    ssh_common_args: str = ""
    ssh_extra_args: str = ""
    host_key_checking: bool = True
    timeout: int = 10
    control_path_dir: str = "~/.ansible/cp"
    extra_options: list[str] = field(default_factory=list)

    @property
    def is_local(self) -> bool:
        return not self.address

    def describe(self) -> str:
        """'this machine' or 'user@address:port' for messages."""
        if self.is_local:
            return "this machine"
        text = self.address or ""
        if self.user:
            text = f"{self.user}@{text}"
        if self.port:
            text = f"{text}:{self.port}"
        return text

    def validate(self) -> None:
        if self.address is not None and self.address.startswith("-"):
            raise HostSpecError(f"lxc_host: {self.address!r} must not start with '-'")
        if self.user is not None and self.user and not USER_NAME_RE.match(self.user):
            raise HostSpecError(f"lxc_host_user: {self.user!r} is not a valid user name")
        if self.port is not None and not 0 < int(self.port) < 65536:
            raise HostSpecError(f"lxc_host_port: {self.port!r} is not a TCP port")
        if int(self.timeout) <= 0:
            raise HostSpecError(f"timeout: {self.timeout!r} must be a positive number of seconds")
        for name in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
            try:
                shlex.split(getattr(self, name) or "")
            except ValueError as exc:
                raise HostSpecError(f"{name}: cannot be split like a shell would: {exc}") from exc


def ssh_base_argv(spec: HostSpec) -> list[str]:
    """ssh argv up to and including the destination, without the remote command."""
    spec.validate()
    argv = [spec.ssh_executable]
    argv += shlex.split(spec.ssh_args or "")
    # ControlPath: short, per destination (%C is a hash of local host, remote host, port, user).
    cp_dir = os.path.expanduser(spec.control_path_dir)
    if "ControlPath" not in " ".join(argv + shlex.split(spec.ssh_common_args or "")):
        argv += ["-o", f"ControlPath={cp_dir}/lxcfleet-%C"]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(spec.timeout)}"]
    if not spec.host_key_checking:
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    if spec.port:
        argv += ["-o", f"Port={int(spec.port)}"]
    if spec.user:
        argv += ["-o", f"User={spec.user}"]
    if spec.private_key_file:
        argv += ["-o", f"IdentityFile={os.path.expanduser(spec.private_key_file)}", "-o", "IdentitiesOnly=yes"]
    argv += shlex.split(spec.ssh_common_args or "")
    argv += shlex.split(spec.ssh_extra_args or "")
    argv += list(spec.extra_options)
    argv += ["--", spec.address or ""]
    return argv


def ensure_control_dir(spec: HostSpec) -> None:
    """The folder for ControlPath sockets, private to the user (like Ansible's ~/.ansible/cp)."""
    if spec.is_local:
        return
    path = os.path.expanduser(spec.control_path_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def as_owner_local(argv: list[str], owner: str | None) -> list[str]:
    """argv run as ``owner`` on this machine (unchanged when we are the owner, or no owner)."""
    if not owner:
        return list(argv)
    if not USER_NAME_RE.match(owner):
        raise HostSpecError(f"lxc_owner: {owner!r} is not a valid user name")
    if current_user() == owner:
        return list(argv)
    if os.geteuid() != 0:
        raise HostSpecError(
            f"lxc_owner: the container belongs to {owner}, but this runs as {current_user()}, which is "
            f"neither {owner} nor root; connect as {owner} or as root"
        )
    return ["runuser", "-u", owner, "--"] + list(argv)


def remote_script(argv: list[str], owner: str | None) -> str:
    """The command string for the remote shell: argv quoted, run as ``owner`` when given.

    The owner check happens on the remote side because only it knows whom SSH logged in as.
    """
    joined = shlex.join(argv)
    if not owner:
        return f"exec {joined}"
    if not USER_NAME_RE.match(owner):
        raise HostSpecError(f"lxc_owner: {owner!r} is not a valid user name")
    q_owner = shlex.quote(owner)
    return (
        f'if [ "$(id -un)" = {q_owner} ]; then exec {joined}; '
        f'elif [ "$(id -u)" = 0 ]; then u=$(id -u {q_owner} 2>/dev/null); d=/run/user/$u; '
        f'if [ -n "$u" ] && [ -d "$d" ]; then export XDG_RUNTIME_DIR="$d"; else unset XDG_RUNTIME_DIR; fi; '
        f'if [ -n "$u" ] && [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -S "$d/systemd/private" ]; then '
        f'exec runuser -u {q_owner} -- systemd-run --user --scope --quiet -p Delegate=yes -- {joined}; fi; '
        f'exec runuser -u {q_owner} -- {joined}; '
        f'else echo "lxcfleet: the container belongs to "{q_owner}", but SSH logged in as $(id -un), '
        f'which is neither "{q_owner}" nor root" >&2; exit 126; fi'
    )


def host_argv(spec: HostSpec, argv: list[str], owner: str | None = None) -> list[str]:
    """The argv that runs ``argv`` on the LXC host described by ``spec`` (as ``owner``)."""
    if spec.is_local:
        return as_owner_local(argv, owner)
    return ssh_base_argv(spec) + [remote_script(argv, owner)]
