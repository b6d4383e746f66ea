# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This plugin_utils file is private to the lxcfleet.lxc collection.
"""Discovery of the containers of one LXC host, for the ``containers`` inventory plugin.

This file is two things at once:

* the **discovery script**: the inventory plugin feeds this file's own text to ``python3 -`` on
  the LXC host (locally, or over SSH), with one JSON argument. It therefore uses the Python 3
  standard library only, runs on Python 3.7 and later, and imports nothing from Ansible or from
  the collection. It prints one JSON document on stdout (see :func:`discover`);
* a library of pure helpers (config and ``lxc-info`` parsing, argument building, result checks)
  that the plugin and the unit tests import.

On the host the script runs as the SSH user (normally root). For each lxc path (root's default
path or the configured ones, then the lxc path of each configured user, which is what
``lxc-config lxc.lxcpath`` prints when run as that user through ``runuser -u USER --``) it lists
the containers (folders with a ``config`` file), asks ``lxc-info`` for state, PID and addresses
(as root this works for users' unprivileged containers too) and reads a few keys of each config
file. A failure for one path or one container is reported in the result, never fatal.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

#: The version of the JSON document; the plugin refuses results of another version.
RESULT_VERSION = 1

#: What the plugin passes (as JSON, the script's only argument).
ARG_KEYS = ("lxc_paths", "users", "timeout")

#: Keys of the config file that the discovery reads (legacy ``lxc.id_map`` included).
_CONFIG_LINE_RE = re.compile(r"^\s*(lxc\.[A-Za-z0-9_.\-]+)\s*=\s*(.*?)\s*$")
_GROUP_SPLIT_RE = re.compile(r"[\s,]+")
_INFO_LINE_RE = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s*(.*?)\s*$")

#: Environment for the lxc-* tools: C locale, and no XDG overrides of root leaking into a
#: user's ``lxc-config`` (LXC derives a user's paths from HOME, which runuser sets).
_DROP_ENV = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "LXC_PATH")

#: Parallel lxc-info calls per host.
MAX_WORKERS = 8


# --------------------------------------------------------------------------- pure helpers


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    return value


def parse_config(text: str) -> dict:
    """The keys of a container config that the inventory needs.

    Returns ``groups`` (list, in order, without duplicates; ``lxc.group`` is multi-valued, each
    value may hold several groups separated by spaces or commas; an empty value clears the list
    like LXC does), ``autostart`` (bool, ``lxc.start.auto``), ``unprivileged`` (bool: an
    ``lxc.idmap`` or legacy ``lxc.id_map`` line with a value) and ``arch`` (``lxc.arch`` or None).
    ``lxc.include``-ed files are not followed.
    """
    groups: list = []
    autostart = False
    idmaps = 0
    arch = None
    for line in text.splitlines():
        match = _CONFIG_LINE_RE.match(line)
        if not match:
            continue
        key, value = match.group(1), _unquote(match.group(2))
        if key == "lxc.group":
            if value == "":
                groups = []
                continue
            for group in _GROUP_SPLIT_RE.split(value):
                if group and group not in groups:
                    groups.append(group)
        elif key == "lxc.start.auto":
            autostart = value.strip() not in ("", "0")
        elif key in ("lxc.idmap", "lxc.id_map"):
            idmaps = idmaps + 1 if value else 0
        elif key == "lxc.arch":
            arch = value or None
    return {"groups": groups, "autostart": autostart, "unprivileged": idmaps > 0, "arch": arch}


def parse_lxc_info(text: str) -> dict:
    """``lxc-info -s -p -i`` output: ``state`` (str or None), ``pid`` (int or None), ``ipv4``
    and ``ipv6`` (lists, in LXC's order, without duplicates)."""
    state = None
    pid = None
    ipv4: list = []
    ipv6: list = []
    for line in text.splitlines():
        match = _INFO_LINE_RE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2)
        if key == "State" and value:
            state = value.upper()
        elif key == "PID" and value.isdigit():
            pid = int(value)
        elif key == "IP" and value:
            target = ipv6 if ":" in value else ipv4
            if value not in target:
                target.append(value)
    return {"state": state, "pid": pid, "ipv4": ipv4, "ipv6": ipv6}


def script_argument(lxc_paths, users, timeout) -> str:
    """The script's one argument (JSON)."""
    return json.dumps({"lxc_paths": list(lxc_paths or []), "users": list(users or []), "timeout": int(timeout)})


def script_source() -> str:
    """The text of this file: what the plugin feeds to ``python3 -`` on the LXC host."""
    import pkgutil  # pylint: disable=import-outside-toplevel

    data = None
    if __spec__ is not None and __spec__.parent:
        try:
            data = pkgutil.get_data(__spec__.parent, "_discover.py")
        except (OSError, ValueError):
            data = None
    if data is None:
        with open(os.path.abspath(__file__), "rb") as handle:
            data = handle.read()
    return data.decode("utf-8")


class DiscoveryResultError(ValueError):
    """The discovery printed something that is not a result of this version."""


def check_result(data) -> dict:
    """Validate the shape of a discovery result (as parsed from JSON, or read from the cache)."""
    if not isinstance(data, dict) or data.get("version") != RESULT_VERSION:
        raise DiscoveryResultError("not a discovery result of version %d" % RESULT_VERSION)
    paths = data.get("paths")
    if not isinstance(paths, list):
        raise DiscoveryResultError("'paths' is not a list")
    for entry in paths:
        if not isinstance(entry, dict) or not isinstance(entry.get("containers", []), list):
            raise DiscoveryResultError("a path entry is not a mapping with a list of containers")
        for ct in entry.get("containers", []):
            if not isinstance(ct, dict) or not isinstance(ct.get("name"), str):
                raise DiscoveryResultError("a container entry has no name")
    return data


# --------------------------------------------------------------------------- on the LXC host


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["LANG"] = env["LC_ALL"] = "C"
    env["PATH"] = env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for folder in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if folder not in env["PATH"].split(":"):
            env["PATH"] += ":" + folder
    return env


def _run(argv, timeout):
    """(rc, stdout, stderr) of argv; rc None with the reason in stderr when it cannot run."""
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "", "%s: no answer within %ss" % (argv[0], timeout)
    except OSError as exc:
        return None, "", "%s: %s" % (argv[0], exc)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _lxc_path_of(user, timeout):
    """(path, error) of ``user``'s lxc path: ``lxc-config lxc.lxcpath`` run as that user."""
    argv = ["lxc-config", "lxc.lxcpath"]
    if user is not None and user != _whoami():
        try:
            pwd.getpwnam(user)
        except KeyError:
            return None, "no user %s on this host" % user
        if os.geteuid() != 0:
            return None, "the discovery runs as %s, not root: cannot run lxc-config as %s" % (_whoami(), user)
        argv = ["runuser", "-u", user, "--"] + argv
    rc, out, err = _run(argv, timeout)
    path = out.strip()
    if rc != 0 or not path:
        return None, "%s failed (rc=%s): %s" % (" ".join(argv), rc, err.strip() or out.strip())
    return path, None


def _container_names(path):
    names = []
    for entry in sorted(os.listdir(path)):
        if os.path.isfile(os.path.join(path, entry, "config")):
            names.append(entry)
    return names


def _one_container(path, name, timeout) -> dict:
    ct = {"name": name, "state": None, "pid": None, "ipv4": [], "ipv6": [],
          "groups": [], "autostart": False, "unprivileged": False, "arch": None, "error": None}
    errors = []
    try:
        with open(os.path.join(path, name, "config"), "rb") as handle:
            ct.update(parse_config(handle.read().decode("utf-8", "replace")))
    except OSError as exc:
        errors.append("cannot read its config: %s" % exc)
    rc, out, err = _run(["lxc-info", "-P", path, "-n", name, "-s", "-p", "-i"], timeout)
    if rc == 0:
        ct.update(parse_lxc_info(out))
    else:
        errors.append("lxc-info failed (rc=%s): %s" % (rc, err.strip() or out.strip()))
    if errors:
        ct["error"] = "; ".join(errors)
    return ct


def discover(args: dict) -> dict:
    """Everything about the containers of this host (the script's output).

    ``{"version": 1, "user": <who ran it>, "paths": [{"path", "owner", "error", "containers":
    [{"name", "state", "pid", "ipv4", "ipv6", "groups", "autostart", "unprivileged", "arch",
    "error"}]}]}``. The owner of a path is the user whose lxc path it is (the running user for
    configured or default paths).
    """
    timeout = int(args.get("timeout") or 30)
    me = _whoami()
    wanted = []  # (path or None, owner, error)
    if args.get("lxc_paths"):
        for path in args["lxc_paths"]:
            wanted.append((path, me, None))
    else:
        path, error = _lxc_path_of(None, timeout)
        wanted.append((path, me, error))
    for user in args.get("users") or []:
        path, error = _lxc_path_of(user, timeout)
        wanted.append((path, user, error))

    result = {"version": RESULT_VERSION, "user": me, "paths": []}
    seen = set()
    jobs = []
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        for path, owner, error in wanted:
            entry = {"path": path, "owner": owner, "error": error, "containers": []}
            result["paths"].append(entry)
            if error is not None:
                continue
            real = os.path.realpath(path)
            if real in seen:
                entry["error"] = "listed already (the same folder as another lxc path)"
                continue
            seen.add(real)
            try:
                names = _container_names(path)
            except OSError as exc:
                if not os.path.exists(path):
                    continue  # no containers yet: LXC creates the folder on the first lxc-create
                entry["error"] = "cannot list %s: %s" % (path, exc)
                continue
            for name in names:
                jobs.append((entry, pool.submit(_one_container, path, name, timeout)))
        for entry, job in jobs:
            entry["containers"].append(job.result())
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = json.loads(argv[0]) if argv else {}
    except ValueError as exc:
        sys.stderr.write("lxcfleet discovery: bad argument: %s\n" % exc)
        return 2
    sys.stdout.write(json.dumps(discover(args)))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
