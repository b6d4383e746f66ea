"""A private OpenSSH server on 127.0.0.1 for tests of lxcfleet.lxc (the attach connection over SSH).

A test fixture, not part of the collection. Standard library only; runs with the venv's Python and
with Debian's /usr/bin/python3. Needs ``/usr/sbin/sshd`` (openssh-server, installed by
scripts/bootstrap.sh without the system's sshd running).

    python3 tests/testbed/sshd.py start --dir DIR --name PREFIX [--user root --user PREFIXu ...]
    python3 tests/testbed/sshd.py stop --dir DIR

``start`` makes (once) in DIR a host key, a client key pair (``id_ed25519``) and
``authorized_keys``; writes ``sshd_config`` (listens only on 127.0.0.1 on a free port, public key
authentication only, ``PermitRootLogin prohibit-password``, ``UsePAM no``, ``AllowUsers`` the
given users, pid file and log in DIR) and ``known_hosts`` (``[127.0.0.1]:PORT`` and the host key,
so that clients keep ``StrictHostKeyChecking``); starts ``/usr/sbin/sshd -f DIR/sshd_config``,
waits until the port accepts and prints JSON: host, port, user (the first ``--user``), users,
private_key_file, known_hosts_file, pid, dir, log. A running server of DIR is stopped first.

DIR must contain PREFIX (its absolute path is in sshd's argv, and in the argv of every session
process that sshd re-executes): the test harness kills sshd processes whose argv names the prefix.

StrictModes stays on. sshd checks the key file and every folder above it up to ``/``: each must be
owned by root (or the user) and not writable by group or others. If DIR passes that walk,
``AuthorizedKeysFile`` points at ``DIR/authorized_keys``. Below ``/tmp`` (mode 1777, which sshd
refuses although the sticky bit makes it safe) it cannot pass; then the same file is read through
``AuthorizedKeysCommand /bin/cat DIR/authorized_keys`` as user ``nobody``, which sshd runs
without that walk (the command itself is checked instead).

With ``UsePAM no``, sshd refuses an account whose password field starts with ``!`` (locked, which is
what ``useradd`` leaves): ``start`` says so for such a user; ``usermod -p '*' USER`` fixes it.

From Python: ``start(dir, name, users) -> info``, ``stop(dir) -> bool``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
HOST = "127.0.0.1"
PRIVSEP_DIR = "/run/sshd"  # Debian's sshd chroots its pre-auth child here; it must exist
KEYS_COMMAND_USER = "nobody"


def log(msg: str) -> None:
    print(f"[sshd] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (rc={res.returncode}): {res.stderr.strip()[-2000:]}")
    return res


def paths(directory: str) -> dict[str, str]:
    d = os.path.abspath(directory)
    return {
        "dir": d,
        "host_key": os.path.join(d, "ssh_host_ed25519_key"),
        "client_key": os.path.join(d, "id_ed25519"),
        "authorized_keys": os.path.join(d, "authorized_keys"),
        "config": os.path.join(d, "sshd_config"),
        "known_hosts": os.path.join(d, "known_hosts"),
        "pid": os.path.join(d, "sshd.pid"),
        "log": os.path.join(d, "sshd.log"),
        "state": os.path.join(d, "sshd.json"),
    }


def strict_modes_ok(path: str) -> bool:
    """Would sshd's StrictModes accept a root-owned key file at path (every folder up to /)?"""
    folder = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            st = os.stat(folder)
        except OSError:
            return False
        if st.st_uid != 0 or st.st_mode & 0o022:
            return False
        if folder == "/":
            return True
        folder = os.path.dirname(folder)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect((HOST, port))
        except OSError:
            return False
        # sshd speaks first: its banner proves it is sshd and not a stranger that took the port.
        try:
            return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False


def _locked(user: str) -> bool:
    try:
        with open("/etc/shadow", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split(":")
                if fields[0] == user:
                    return len(fields) > 1 and fields[1].startswith("!")
    except OSError:
        pass
    return False


def _keys(p: dict[str, str], name: str) -> None:
    """Host key, client key pair and authorized_keys, made once (kept across restarts)."""
    if not os.path.exists(p["host_key"]):
        run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-host", "-f", p["host_key"]])
    if not os.path.exists(p["client_key"]):
        run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-client", "-f", p["client_key"]])
    with open(p["client_key"] + ".pub", encoding="utf-8") as fh:
        pub = fh.read().strip()
    tmp = p["authorized_keys"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(pub + "\n")
    os.chmod(tmp, 0o644)  # public keys only; nobody (AuthorizedKeysCommandUser) reads it
    os.replace(tmp, p["authorized_keys"])
    for key in (p["host_key"], p["client_key"]):
        os.chmod(key, 0o600)


def _config(p: dict[str, str], port: int, users: list[str]) -> str:
    if strict_modes_ok(p["authorized_keys"]):
        keys = [f"AuthorizedKeysFile {p['authorized_keys']}"]
    else:
        keys = [
            "AuthorizedKeysFile none",
            f"AuthorizedKeysCommand /bin/cat {p['authorized_keys']}",
            f"AuthorizedKeysCommandUser {KEYS_COMMAND_USER}",
        ]
    lines = [
        "# written by tests/testbed/sshd.py: a private test sshd, 127.0.0.1 only",
        f"ListenAddress {HOST}:{port}",
        "AddressFamily inet",
        f"HostKey {p['host_key']}",
        f"PidFile {p['pid']}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes yes",
        "UsePAM no",
        *keys,
        f"AllowUsers {' '.join(users)}",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PermitUserEnvironment no",
        # Ansible's ControlPersist multiplexes many sessions over one connection.
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
    ]
    return "\n".join(lines) + "\n"


def _read_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile, encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, config: str) -> bool:
    """Is pid the sshd listener of this config? sshd rewrites its title into one string,
    ``sshd: /usr/sbin/sshd -f DIR/sshd_config -E DIR/sshd.log [listener] ...``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ")
    except OSError:
        return False
    return cmdline.startswith((b"sshd", b"/usr/sbin/sshd")) and f" {config} ".encode() in cmdline + b" "


def start(directory: str, name: str, users: list[str] | None = None, timeout: float = 15) -> dict:
    """Start the private sshd of DIR; return what a client needs to reach it."""
    users = users or ["root"]
    p = paths(directory)
    if not name or name not in p["dir"]:
        raise ValueError(f"--dir {p['dir']} must contain the name {name!r} (the harness finds sshd by it)")
    if any(c.isspace() for c in p["dir"]):
        raise ValueError(f"--dir {p['dir']} must not contain white space (it is an sshd_config value)")
    for user in users:
        try:
            pwd.getpwnam(user)
        except KeyError as exc:
            raise ValueError(f"no such user {user!r}") from exc
        if _locked(user):
            raise ValueError(f"user {user!r} is locked ('!' in /etc/shadow); sshd with UsePAM no refuses it: "
                             f"usermod -p '*' {user}")
    stop(directory)
    os.makedirs(p["dir"], mode=0o755, exist_ok=True)
    os.chmod(p["dir"], 0o755)
    if not os.path.isdir(PRIVSEP_DIR):
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)
    _keys(p, name)
    with open(p["host_key"] + ".pub", encoding="utf-8") as fh:
        host_pub = " ".join(fh.read().split()[:2])

    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        with open(p["config"], "w", encoding="utf-8") as fh:
            fh.write(_config(p, port, users))
        run([SSHD, "-t", "-f", p["config"]])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p["pid"])
        # sshd daemonizes: it returns once the listener is bound (or failed to bind).
        res = subprocess.run([SSHD, "-f", p["config"], "-E", p["log"]], capture_output=True, text=True,
                             check=False, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            last_error = res.stderr.strip()
            continue
        deadline = time.monotonic() + timeout
        pid = None
        while time.monotonic() < deadline:
            pid = _read_pid(p["pid"])
            if pid and _is_ours(pid, p["config"]) and _accepts(port):
                break
            time.sleep(0.05)
        else:
            if pid and _is_ours(pid, p["config"]):
                os.kill(pid, signal.SIGTERM)
            with open(p["log"], encoding="utf-8", errors="replace") as fh:
                last_error = fh.read()[-2000:]
            continue
        with open(p["known_hosts"], "w", encoding="utf-8") as fh:
            fh.write(f"[{HOST}]:{port} {host_pub}\n")
        info = {
            "host": HOST,
            "port": port,
            "user": users[0],
            "users": users,
            "private_key_file": p["client_key"],
            "known_hosts_file": p["known_hosts"],
            "pid": pid,
            "dir": p["dir"],
            "log": p["log"],
        }
        with open(p["state"], "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2, sort_keys=True)
        return info
    raise RuntimeError(f"sshd did not start: {last_error}")


def descendants(pid: int) -> list[int]:
    """Processes below pid: sshd's sessions retitle themselves (``sshd: root@notty``), so they are
    found through their parent, not their argv."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(directory: str, timeout: float = 10) -> bool:
    """Stop the sshd of DIR and its sessions. True if one was running."""
    p = paths(directory)
    pid = _read_pid(p["pid"])
    if not pid or not _is_ours(pid, p["config"]):
        return False
    for child in descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_ours(pid, p["config"]):
        time.sleep(0.05)
    if _is_ours(pid, p["config"]):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p["pid"])
    return True


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start a private sshd on 127.0.0.1; print JSON")
    p_start.add_argument("--dir", required=True, help="folder for keys, config, pid and log (must contain --name)")
    p_start.add_argument("--name", required=True, help="the test prefix (carried in sshd's argv through --dir)")
    p_start.add_argument("--user", action="append", dest="users",
                         help="a user who may log in with the client key (repeatable; default root)")
    p_stop = sub.add_parser("stop", help="stop the sshd of a folder")
    p_stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)

    if args.cmd == "start":
        try:
            info = start(args.dir, args.name, args.users)
        except (ValueError, RuntimeError) as exc:
            log(str(exc))
            return 1
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print("stopped" if stop(args.dir) else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
