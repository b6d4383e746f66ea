# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The only code that talks to LXC: argv-only calls of the lxc-* tools, and parsing of their output."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time

from ansible_collections.lxcfleet.lxc.plugins.module_utils._tool import ToolError

# State names as lxc-info prints them.
STATES = ("STOPPED", "STARTING", "RUNNING", "STOPPING", "ABORTING", "FREEZING", "FROZEN", "THAWED")

# A container name is used as a directory name below lxc_path and as a hostname default.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")

_LOG_LINE_RE = (
    r"^\S+ \S+ \d+\.\d+ (?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|ERROR|CRIT|ALERT|FATAL)\s+"
    r"(?P<cat>\S+) - (?P<where>\S+) - (?P<msg>.*)$"
)  # compiled on first use: only failures read logs
# Lines LXC's tools print on every failure: they carry no reason.
_GENERIC_MESSAGES = (
    "The container failed to start",
    "To get more details, run the container in foreground mode",
    "Additional information can be obtained by setting the --logfile and --logpriority options",
    "Failed to spawn container",
    "Received container state",
)


class LxcError(ToolError):
    """An lxc-* tool failed. ``reason`` is LXC's own explanation, from the log of that call."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout="", stderr="", reason=None, log_errors=None):
        super().__init__(msg, cmd=cmd, rc=rc, stdout=stdout, stderr=stderr)
        self.reason = reason
        self.log_errors = log_errors or []

    def to_result(self) -> dict:
        result = super().to_result()
        result.update(lxc_reason=self.reason, lxc_errors=self.log_errors)
        return result


def validate_name(name, option="name") -> str | None:
    """Return an error message naming the option, or None when ``name`` is a valid container name."""
    if name is None or name == "":
        return "%s must not be empty" % option
    if not NAME_RE.match(name):
        return (
            "%s %r is not a valid container name: use 1-64 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '/', no spaces)" % (option, name)
        )
    return None


def parse_log_errors(text: str) -> list:
    """Messages of the ERROR (and worse) lines of an LXC log, most specific first, without duplicates."""
    messages = []
    for line in text.splitlines():
        match = re.match(_LOG_LINE_RE, line.strip())
        if not match or match.group("level") not in ("ERROR", "CRIT", "ALERT", "FATAL"):
            continue
        msg = match.group("msg").strip()
        if msg and msg not in messages:
            messages.append(msg)
    specific = [m for m in messages if not m.startswith(_GENERIC_MESSAGES)]
    generic = [m for m in messages if m.startswith(_GENERIC_MESSAGES)]
    return specific + generic


# lxc-info -S -H: raw numbers (nanoseconds of CPU, bytes).
_USAGE_KEYS = {"CPU use": "cpu_ns", "Memory use": "memory_bytes", "KMem use": "kmem_bytes", "BlkIO use": "blkio_bytes"}


def parse_info(text: str) -> dict:
    """Parse ``lxc-info -H`` output: state, pid, ips (in order), link (host side of the veths)."""
    info = {"state": None, "pid": None, "ips": [], "links": []}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if key == "State":
            info["state"] = value
        elif key == "PID":
            try:
                info["pid"] = int(value)
            except ValueError:
                info["pid"] = None
        elif key == "IP":
            info["ips"].append(value)
        elif key == "Link":
            info["links"].append(value)
        elif key in _USAGE_KEYS:
            try:
                info.setdefault("usage", {})[_USAGE_KEYS[key]] = int(value)
            except ValueError:
                pass
    return info


class LxcRunner:
    """Runs the lxc-* tools for one lxc_path, argv lists only."""

    def __init__(self, module, lxc_path=None):
        self.module = module
        self._bins = {}
        #: Variables every lxc-* call gets (LANG/LC_ALL, and for a user, where its systemd is).
        self.env = {"LANG": "C", "LC_ALL": "C"}
        #: argv prefix of lxc-start, e.g. a delegated systemd scope for an unprivileged user.
        self.start_wrapper = []
        self.lxc_path = lxc_path or self.default_lxc_path()

    # -- plumbing -----------------------------------------------------------------------------

    def bin(self, tool: str) -> str:
        if tool not in self._bins:
            self._bins[tool] = self.module.get_bin_path(tool, required=True)
        return self._bins[tool]

    def global_value(self, key: str) -> str:
        """``lxc-config KEY`` for the user this runs as (lxc.lxcpath, lxc.default_config ...)."""
        rc, out, err = self.module.run_command([self.bin("lxc-config"), key], environ_update=self.env)
        value = out.strip()
        if rc != 0 or not value:
            self.module.fail_json(msg="cannot read %s: lxc-config %s failed: %s" % (key, key, err.strip()))
        return value

    def default_lxc_path(self) -> str:
        return self.global_value("lxc.lxcpath")

    def run(self, tool: str, name=None, args=(), check=True, log=False, data=None, what=None, prefix=()):
        """Run ``tool -P lxc_path [-n name] args``.

        With ``log``, LXC logs this one call at INFO into a temporary file, and a failure carries
        the reasons found there.
        """
        argv = list(prefix) + [self.bin(tool), "-P", self.lxc_path]
        if name is not None:
            argv += ["-n", name]
        logfile = None
        if log:
            fd, logfile = tempfile.mkstemp(prefix="lxcfleet-", suffix=".log")
            os.close(fd)
            argv += ["--logfile", logfile, "--logpriority", "ERROR"]
        argv += list(args)
        try:
            rc, out, err = self.module.run_command(
                argv, data=data, binary_data=data is not None, environ_update=self.env
            )
            logtext = ""
            if logfile:
                with open(logfile, encoding="utf-8", errors="replace") as handle:
                    logtext = handle.read()
        finally:
            if logfile:
                try:
                    os.unlink(logfile)
                except OSError:
                    pass
        if rc != 0 and check:
            errors = parse_log_errors(logtext) or parse_log_errors(err)
            if not errors:
                errors = [line.strip() for line in err.splitlines() if line.strip()]
            reason = errors[0] if errors else None
            label = what or "%s failed" % tool
            msg = label + (": " + reason if reason else " (rc %d)" % rc)
            raise LxcError(msg, cmd=argv, rc=rc, stdout=out, stderr=err, reason=reason, log_errors=errors)
        return rc, out, err

    def query(self, tool: str, name: str, args=()):
        """Run a read-only ``tool -P lxc_path -n name args`` and return (rc, stdout, stderr).

        For the questions asked on every run (lxc-info): it starts the tool with ``subprocess``
        directly, which costs about 1.5 ms less than ``AnsibleModule.run_command`` and is most
        of what a task that changes nothing spends here. Same argv list, no shell, same
        environment as ``run``; the output is decoded as UTF-8 with ``surrogateescape``.
        """
        argv = [self.bin(tool), "-P", self.lxc_path, "-n", name] + list(args)
        env = dict(os.environ)
        env.update(self.env)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, check=False)
        except OSError as exc:
            return 127, "", "%s: %s" % (argv[0], exc)
        return (proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"),
                proc.stderr.decode("utf-8", "surrogateescape"))

    # -- questions ----------------------------------------------------------------------------

    def container_dir(self, name: str) -> str:
        return os.path.join(self.lxc_path, name)

    def config_path(self, name: str) -> str:
        return os.path.join(self.lxc_path, name, "config")

    def exists(self, name: str) -> bool:
        return os.path.isfile(self.config_path(name))

    def list_names(self) -> list:
        """Containers of this lxc_path (directories holding a config file), sorted."""
        try:
            entries = os.listdir(self.lxc_path)
        except OSError:
            return []
        return sorted(e for e in entries if os.path.isfile(os.path.join(self.lxc_path, e, "config")))

    def info(self, name: str, ips: bool = False, usage: bool = False) -> dict:
        args = ["-s", "-p", "-H"]
        if ips:
            args.append("-i")
        if usage:
            args.append("-S")
        rc, out, err = self.query("lxc-info", name, args)
        if rc != 0:
            return {"state": None, "pid": None, "ips": [], "links": []}
        return parse_info(out)

    def state(self, name: str):
        return self.info(name)["state"]

    def interfaces(self, pid) -> dict:
        return read_interfaces(pid)

    # -- actions --------------------------------------------------------------------------------

    def create(self, name: str, template: str, template_options=(), backing_store=None, config_file=None, bdev_options=()):
        args = ["-t", template]
        if backing_store:
            args += ["-B", backing_store]
        args += list(bdev_options)
        if config_file:
            args += ["-f", config_file]
        if template_options:
            args += ["--"] + list(template_options)
        return self.run("lxc-create", name, args, log=True, what="creating container %s failed" % name)

    def for_path(self, lxc_path: str) -> "LxcRunner":
        """A runner for another lxc path that shares this one's environment and start wrapper."""
        if not lxc_path or lxc_path == self.lxc_path:
            return self
        other = LxcRunner(self.module, lxc_path)
        other._bins = self._bins
        other.env = self.env
        other.start_wrapper = self.start_wrapper
        return other

    def copy(self, source: str, new_name: str, source_path=None, snapshot: bool = False, allow_running: bool = False,
             backing_store=None, ephemeral: bool = False, bdev_args=()):
        """``lxc-copy -n SOURCE -P SOURCE_PATH -N NEW -p THIS_PATH [-s] [-a] [-B STORE] [-e]``.

        LXC gives the copy its own name (``lxc.uts.name``, ``/etc/hostname`` when the rootfs has one)
        and new MAC addresses. Without ``allow_running`` LXC refuses a running source.
        """
        args = ["-N", new_name, "-p", self.lxc_path]
        if snapshot:
            args.append("-s")
        if allow_running:
            args.append("-a")
        if backing_store:
            args += ["-B", backing_store]
        args += list(bdev_args)
        if ephemeral:
            args.append("-e")
        return self.for_path(source_path).run(
            "lxc-copy", source, args, log=True, what="cloning container %s to %s failed" % (source, new_name))

    def start(self, name: str):
        return self.run("lxc-start", name, ["-d"], log=True, what="starting container %s failed" % name,
                        prefix=self.start_wrapper)

    def stop(self, name: str, timeout: int = 30, kill: bool = False):
        args = ["-k"] if kill else ["-t", str(timeout)]
        return self.run("lxc-stop", name, args, log=True, what="stopping container %s failed" % name)

    def freeze(self, name: str):
        return self.run("lxc-freeze", name, log=True, what="freezing container %s failed" % name)

    def unfreeze(self, name: str):
        return self.run("lxc-unfreeze", name, log=True, what="unfreezing container %s failed" % name)

    def destroy(self, name: str, force: bool = False, snapshots: bool = False):
        """Destroy a container with its rootfs; ``force`` stops a running one first, ``snapshots``
        removes its snapshots too (LXC refuses a container that has some, without it)."""
        args = (["-f"] if force else []) + (["-s"] if snapshots else [])
        return self.run("lxc-destroy", name, args, log=True, what="destroying container %s failed" % name)

    def wait_state(self, name: str, states, timeout: float) -> bool:
        """Block until the container is in one of ``states`` (lxc-wait, no polling)."""
        rc, out, err = self.run(
            "lxc-wait", name, ["-s", "|".join(states), "-t", str(max(int(timeout), 0))], check=False
        )
        return rc == 0

    def attach(self, name: str, argv, env=None, chdir=None, data=None, clear_env=True, uid=None, gid=None, prefix=()):
        """``lxc-attach`` (after the argv ``prefix``, e.g. a delegated systemd scope for a user)."""
        args = []
        if clear_env:
            args.append("--clear-env")
        for key, value in sorted((env or {}).items()):
            args += ["--set-var", "%s=%s" % (key, value)]
        if uid is not None:
            args += ["--uid", str(uid)]
        if gid is not None:
            args += ["--gid", str(gid)]
        args.append("--")
        if chdir:
            # lxc-attach has no --cwd; 'cd' is done by env(1)-free means: the command runs through
            # the container's own sh with the directory and argv passed as positional parameters.
            args += ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", chdir]
        args += list(argv)
        return self.run("lxc-attach", name, args, check=False, data=data, prefix=prefix)


def poll(predicate, timeout: float, first: float = 0.02, factor: float = 1.5, longest: float = 0.5):
    """Call ``predicate`` until it returns a true value or ``timeout`` passes, backing off from
    ``first`` to ``longest`` seconds between calls. Returns the last value."""
    deadline = time.monotonic() + timeout
    delay = first
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            return value
        time.sleep(min(delay, deadline - now))
        delay = min(delay * factor, longest)


# -- addresses per interface, read from the container's /proc/PID/net (no namespace entry, no fork) --

def _hex_ipv4(value: str) -> int:
    """/proc/net/route prints IPv4 addresses as little-endian hex."""
    raw = int(value, 16)
    return int.from_bytes(raw.to_bytes(4, "little"), "big")


def _ipv4_str(value: int) -> str:
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _ipv4_int(text: str) -> int:
    parts = [int(p) for p in text.split(".")]
    return (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]


def parse_proc_route(text: str) -> list:
    """Connected routes of /proc/PID/net/route: (iface, dest, mask) with integer addresses."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest, gateway, mask = fields[0], fields[1], fields[2], fields[7]
        try:
            if _hex_ipv4(gateway) != 0:
                continue
            routes.append((iface, _hex_ipv4(dest), _hex_ipv4(mask)))
        except ValueError:
            continue
    return routes


def parse_fib_trie_locals(text: str) -> list:
    """Local IPv4 addresses of /proc/PID/net/fib_trie (the '/32 host LOCAL' leaves), in order."""
    found = []
    last = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            last = stripped[4:].strip()
        elif stripped.startswith("/32 host LOCAL") and last:
            if last not in found:
                found.append(last)
    return found


def parse_if_inet6(text: str) -> list:
    """(iface, address/prefix, scope) of /proc/PID/net/if_inet6."""
    import ipaddress

    result = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            addr = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            prefix = int(fields[2], 16)
            scope = int(fields[3], 16)
        except ValueError:
            continue
        result.append((fields[5], "%s/%d" % (addr, prefix), scope))
    return result


def parse_proc_net_dev(text: str) -> list:
    names = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if sep:
            names.append(name.strip())
    return names


def interfaces_from_proc(texts: dict) -> dict:
    """Interfaces with their global IPv4/IPv6 addresses, from the texts of route, fib_trie,
    if_inet6 and dev of a network namespace. An IPv4 address is put on the interface of the
    longest connected route that contains it."""
    names = parse_proc_net_dev(texts.get("dev", ""))
    result = {name: {"ipv4": [], "ipv6": []} for name in names if name != "lo"}
    routes = parse_proc_route(texts.get("route", ""))
    for address in parse_fib_trie_locals(texts.get("fib_trie", "")):
        try:
            value = _ipv4_int(address)
        except (ValueError, IndexError):
            continue
        if address.startswith("127."):
            continue
        best = None
        for iface, dest, mask in routes:
            if mask and (value & mask) == dest and (best is None or mask > best[2]):
                best = (iface, dest, mask)
        if best is None or best[0] not in result:
            continue
        prefix = bin(best[2]).count("1")
        result[best[0]]["ipv4"].append("%s/%d" % (address, prefix))
    for iface, address, scope in parse_if_inet6(texts.get("if_inet6", "")):
        if iface in result and scope == 0:  # global scope only
            result[iface]["ipv6"].append(address)
    return result


def read_interfaces(pid) -> dict:
    if not pid:
        return {}
    texts = {}
    for item in ("dev", "route", "fib_trie", "if_inet6"):
        try:
            # ASCII text; read as UTF-8, whose codec is loaded already (the ascii codec would be an import)
            with open("/proc/%d/net/%s" % (pid, item), encoding="utf-8", errors="replace") as handle:
                texts[item] = handle.read()
        except OSError:
            texts[item] = ""
    return interfaces_from_proc(texts)
