# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: containers
short_description: Containers of one or more LXC hosts as inventory hosts
version_added: 0.1.0
description:
  - Lists the classic LXC containers (liblxc and the C(lxc-*) tools) of one or more LXC hosts, on this
    machine or reached over OpenSSH, and makes each container an inventory host that the
    P(lxcfleet.lxc.attach#connection) connection reaches; no python3-lxc anywhere.
  - Reads a YAML file whose name ends in C(.lxc.yml) or C(.lxc.yaml) and whose O(plugin) is
    V(lxcfleet.lxc.containers).
  - For each LXC host, one process runs the discovery, C(python3 -) fed with a standard-library script
    (locally, or as the command of one C(ssh) call). It lists the containers (folders with a C(config) file)
    of root's lxc path or of O(hosts[].lxc_paths), and of the lxc path of each user in O(hosts[].users),
    which is what C(lxc-config lxc.lxcpath) prints when run as that user (C(runuser -u USER --)). It asks
    C(lxc-info) for state, PID and addresses, and reads C(lxc.group), C(lxc.start.auto), C(lxc.idmap)
    (and the legacy C(lxc.id_map)) and C(lxc.arch) from each config file; C(lxc.include)d files are
    not followed.
  - The discovery runs as the SSH user (or the user running Ansible, for this machine). Users'
    containers need root there, to run C(lxc-config) as the user and C(lxc-info) on the user's containers.
  - An LXC host that cannot be reached, or that has no C(python3), fails the inventory with what C(ssh)
    or the host said. An lxc path or a container that cannot be read is a warning; the rest is listed.
  - Every host variable gets the prefix C(lxc_). Each container is in the groups
    C(lxc_state_<state>) (lower case, for example C(lxc_state_running)), C(lxc_host_<label>) (the
    O(hosts[].name)) and C(lxc_group_<group>) for each of its C(lxc.group) values. In these names every
    character other than a letter, a digit or C(_) becomes C(_).
  - Every string discovered on an LXC host (names, states, addresses, paths, groups, owners) is
    marked unsafe, so a container's config can never make Ansible evaluate a template.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; makes the file an inventory source of this plugin.
    type: str
    required: true
    choices: [lxcfleet.lxc.containers]
  hosts:
    description:
      - The LXC hosts whose containers to list.
      - Their discoveries run in parallel.
    type: list
    elements: dict
    default: [{name: localhost}]
    suboptions:
      name:
        description:
          - Label of the LXC host; used in the host variable C(lxc_host), the group C(lxc_host_<name>)
            and the C({host}) placeholder of O(hostname_format).
          - Unique among O(hosts).
        type: str
        required: true
      address:
        description:
          - Address or name to reach the LXC host with C(ssh).
          - Without it the LXC host is this machine, reached without SSH.
        type: str
      user:
        description: The SSH user. Listing other users' containers (O(hosts[].users)) needs root.
        type: str
      port:
        description: The SSH port.
        type: int
      private_key_file:
        description: The SSH private key.
        type: path
      ssh_common_args:
        description: Extra arguments for C(ssh), as for the C(ansible.builtin.ssh) connection.
        type: str
      ssh_extra_args:
        description: More extra arguments for C(ssh), as for the C(ansible.builtin.ssh) connection.
        type: str
      host_key_checking:
        description:
          - Whether C(ssh) checks the host key of the LXC host.
          - Also passed on to the connection as C(ansible_lxc_host_key_checking).
        type: bool
        default: true
      lxc_paths:
        description:
          - The lxc paths to list on that host, as absolute paths; their owner is the user that the discovery
            runs as.
          - Default is the lxc path of that user there (C(lxc-config lxc.lxcpath); for root normally C(/var/lib/lxc)).
        type: list
        elements: path
      users:
        description:
          - Users whose unprivileged containers to list too, each in that user's lxc path (normally
            C(~/.local/share/lxc)). Their containers get the user as C(lxc_owner), and the connection
            attaches as that user.
        type: list
        elements: str
        default: []
      vars:
        description:
          - Variables set on every container of this LXC host, after the discovered ones (so they can
            override them) and before O(compose).
        type: dict
        default: {}
  hostname_format:
    description:
      - The inventory name of a container, a Python format string with the placeholders C({name})
        (the container's name), C({host}) (the O(hosts[].name) label) and C({owner}) (the user owning it).
      - Two containers with the same inventory name are an error naming both; use C({host}) or
        C({owner}) when names repeat across hosts or users.
    type: str
    default: "{name}"
  states:
    description:
      - List only containers in these states (as LXC names them, for example C(RUNNING), C(STOPPED),
        C(FROZEN); case does not matter).
      - Default is every state.
    type: list
    elements: str
    default: []
  filters:
    description:
      - Which containers to list, as a list of one-key mappings, C(include) or C(exclude), whose value
        is a Jinja2 expression evaluated with the container's variables (the discovered C(lxc_*)
        variables, the connection variables and O(hosts[].vars)).
      - The first entry whose expression is true decides; a container that no entry matches is
        included.
      - An expression that cannot be evaluated fails the inventory, naming the entry and the container.
    type: list
    elements: dict
    default: []
  timeout:
    description:
      - Seconds for the discovery of one LXC host (connecting included). Also the C(ConnectTimeout) of
        C(ssh).
    type: int
    default: 30
notes:
  - The discovery needs C(python3) and the C(lxc-*) tools on each LXC host, and C(runuser) for O(hosts[].users).
  - With O(cache=true) the result of the discovery is cached per inventory file; C(--flush-cache) or
    O(cache_timeout) renews it.
  - C(lxc.group) values are split at spaces and commas (C(lxc.group = web, db) gives C(web) and C(db)).
    An empty C(lxc.group) clears the groups of the lines before it, as in LXC.
seealso:
  - plugin: lxcfleet.lxc.attach
    plugin_type: connection
"""

EXAMPLES = r"""
---
# lxc.lxc.yml: the containers of this machine (root's), and the unprivileged ones of user alice
plugin: lxcfleet.lxc.containers
hosts:
  - name: local
    users: [alice]

---
# fleet.lxc.yml: two hosts over SSH, running containers only, grouped by architecture
plugin: lxcfleet.lxc.containers
hosts:
  - name: lxc1
    address: lxc1.example.com
    user: root
  - name: lxc2
    address: 192.0.2.12
    user: root
    port: 2222
    private_key_file: ~/.ssh/fleet_ed25519
    vars:
      datacenter: east
hostname_format: "{host}-{name}"
states: [running]
filters:
  - exclude: "'template' in lxc_groups"
  - include: "lxc_name is match('web')"
  - exclude: true
keyed_groups:
  - key: lxc_owner
    prefix: owner
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/lxcfleet-inventory
"""

import json
import string
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.group import to_safe_group_name
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.lxcfleet.lxc.plugins.plugin_utils._discover import (
    DiscoveryResultError,
    check_result,
    script_argument,
    script_source,
)
from ansible_collections.lxcfleet.lxc.plugins.plugin_utils._ssh import (
    USER_NAME_RE,
    HostSpec,
    HostSpecError,
    SSH_ERROR_RC,
    ensure_control_dir,
    host_argv,
)

CONNECTION = "lxcfleet.lxc.attach"
HOST_KEYS = (
    "name", "address", "user", "port", "private_key_file", "ssh_common_args", "ssh_extra_args",
    "host_key_checking", "lxc_paths", "users", "vars",
)
HOSTNAME_FIELDS = ("name", "host", "owner")
#: Seconds added to ``timeout`` before the discovery process is killed (ssh's own timeout first).
KILL_GRACE = 5


def safe_group(name: str) -> str:
    """A group name of letters, digits and ``_`` only, whatever Ansible's transform setting is."""
    return to_safe_group_name(name, force=True, silent=True)


def hostname_fields(fmt: str) -> list:
    """The placeholders of ``hostname_format``; raises ValueError for anything but the known names."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise ValueError("hostname_format: %r is not a valid format string: %s" % (fmt, exc)) from exc
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in HOSTNAME_FIELDS or spec or conversion:
            raise ValueError(
                "hostname_format: %r has the placeholder {%s}; use only {name}, {host} and {owner}"
                % (fmt, field + ("!" + conversion if conversion else "") + (":" + spec if spec else ""))
            )
        fields.append(field)
    if "name" not in fields:
        raise ValueError("hostname_format: %r must contain {name}" % fmt)
    return fields


def _opt_str(value, where: str):
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("%s: %r is not a string" % (where, value))
    return value


def normalize_host(entry, index: int) -> dict:
    """One O(hosts) entry checked and with defaults; ValueError names the option."""
    where = "hosts[%d]" % index
    if not isinstance(entry, dict):
        raise ValueError("%s: must be a mapping with at least 'name', got %r" % (where, entry))
    unknown = sorted(str(k) for k in entry if k not in HOST_KEYS)
    if unknown:
        raise ValueError("%s: unknown key(s) %s; known: %s" % (where, ", ".join(unknown), ", ".join(HOST_KEYS)))
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("%s.name: required, a non-empty string" % where)
    host = {"name": name}
    for key in ("address", "user", "private_key_file", "ssh_common_args", "ssh_extra_args"):
        host[key] = _opt_str(entry.get(key), "%s.%s" % (where, key))
    if host["address"] == "":
        host["address"] = None
    port = entry.get("port")
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ValueError("%s.port: %r is not an integer" % (where, port)) from None
        if not 0 < port < 65536:
            raise ValueError("%s.port: %r is not a TCP port" % (where, port))
    host["port"] = port
    try:
        host["host_key_checking"] = boolean(entry.get("host_key_checking", True), strict=True)
    except TypeError:
        raise ValueError("%s.host_key_checking: %r is not a boolean" % (where, entry.get("host_key_checking"))) from None
    for key in ("lxc_paths", "users"):
        value = entry.get(key)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("%s.%s: must be a list of non-empty strings, got %r" % (where, key, value))
        host[key] = list(value)
    for path in host["lxc_paths"]:
        if not path.startswith("/"):
            raise ValueError("%s.lxc_paths: %r is not an absolute path" % (where, path))
    for user in host["users"]:
        if not USER_NAME_RE.match(user):
            raise ValueError("%s.users: %r is not a valid user name" % (where, user))
    host_vars = entry.get("vars")
    if host_vars is None:
        host_vars = {}
    if not isinstance(host_vars, dict):
        raise ValueError("%s.vars: must be a mapping, got %r" % (where, host_vars))
    host["vars"] = dict(host_vars)
    return host


def normalize_filters(filters) -> list:
    """O(filters) as (action, expression) pairs; ValueError names the entry."""
    result = []
    if filters is None:
        return result
    if not isinstance(filters, list):
        raise ValueError("filters: must be a list of {include: EXPR} or {exclude: EXPR}, got %r" % (filters,))
    for index, entry in enumerate(filters):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError("filters[%d]: must be a mapping with exactly one key, include or exclude, got %r" % (index, entry))
        action, expr = next(iter(entry.items()))
        if action not in ("include", "exclude"):
            raise ValueError("filters[%d]: unknown key %r; use include or exclude" % (index, action))
        if isinstance(expr, bool):
            result.append((action, expr))  # a constant: nothing to evaluate
            continue
        if not isinstance(expr, str) or not expr.strip():
            raise ValueError("filters[%d].%s: must be a Jinja2 expression (a string), got %r" % (index, action, expr))
        result.append((action, expr))
    return result


def host_spec(host: dict, timeout: int) -> HostSpec:
    spec = HostSpec(
        address=host["address"],
        user=host["user"],
        port=host["port"],
        private_key_file=host["private_key_file"],
        ssh_common_args=host["ssh_common_args"] or "",
        ssh_extra_args=host["ssh_extra_args"] or "",
        host_key_checking=host["host_key_checking"],
        timeout=timeout,
    )
    return spec


def connection_vars(host: dict, path: str, owner: str, name: str) -> dict:
    """What the attach connection needs to reach the container (plain config values, not unsafe)."""
    conn = {
        "ansible_connection": CONNECTION,
        "ansible_lxc_name": wrap_var(name),
        "ansible_lxc_path": wrap_var(path),
    }
    if owner != "root":
        conn["ansible_lxc_owner"] = wrap_var(owner)
    if host["address"]:
        conn["ansible_lxc_host"] = host["address"]
        conn["ansible_lxc_host_key_checking"] = host["host_key_checking"]
        for key, var in (
            ("user", "ansible_lxc_host_user"),
            ("port", "ansible_lxc_host_port"),
            ("private_key_file", "ansible_lxc_ssh_private_key_file"),
            ("ssh_common_args", "ansible_lxc_ssh_common_args"),
            ("ssh_extra_args", "ansible_lxc_ssh_extra_args"),
        ):
            if host[key] is not None:
                conn[var] = host[key]
    return conn


def container_vars(host: dict, path: str, owner: str, ct: dict) -> dict:
    """The host variables of one discovered container; discovered strings are unsafe."""
    pid = ct.get("pid")
    hostvars = {
        "lxc_name": ct["name"],
        "lxc_state": ct.get("state"),
        "lxc_ipv4": list(ct.get("ipv4") or []),
        "lxc_ipv6": list(ct.get("ipv6") or []),
        "lxc_pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        "lxc_owner": owner,
        "lxc_path": path,
        "lxc_groups": list(ct.get("groups") or []),
        "lxc_autostart": bool(ct.get("autostart")),
        "lxc_unprivileged": bool(ct.get("unprivileged")),
        "lxc_arch": ct.get("arch"),
    }
    hostvars = wrap_var(hostvars)
    # From the inventory file, not from the LXC host.
    hostvars["lxc_host"] = host["name"]
    hostvars["lxc_host_address"] = host["address"]
    hostvars.update(connection_vars(host, path, owner, ct["name"]))
    return hostvars


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Containers of LXC hosts as inventory hosts."""

    NAME = "lxcfleet.lxc.containers"

    def verify_file(self, path):
        if super().verify_file(path):
            return to_text(path).endswith((".lxc.yml", ".lxc.yaml"))
        return False

    # ------------------------------------------------------------------ discovery

    def _run_discovery(self, host: dict, timeout: int) -> dict:
        """Run the discovery script on one LXC host; its parsed JSON result."""
        spec = host_spec(host, timeout)
        try:
            argv = host_argv(spec, ["python3", "-", script_argument(host["lxc_paths"], host["users"], timeout)])
            ensure_control_dir(spec)
        except (HostSpecError, OSError) as exc:
            raise AnsibleParserError("hosts: LXC host %r: %s" % (host["name"], to_native(exc))) from exc
        where = "LXC host %r (%s)" % (host["name"], spec.describe())
        try:
            proc = subprocess.run(
                argv,
                input=script_source().encode("utf-8"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout + KILL_GRACE,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AnsibleParserError("%s: the discovery did not finish within %ss (option timeout)" % (where, timeout)) from None
        except OSError as exc:
            raise AnsibleParserError("%s: cannot run %s: %s" % (where, argv[0], to_native(exc))) from exc
        stderr = to_text(proc.stderr, errors="surrogate_or_replace").strip()
        if proc.returncode != 0:
            if not spec.is_local and proc.returncode == SSH_ERROR_RC:
                raise AnsibleParserError("%s: cannot reach the host; ssh said: %s" % (where, stderr or "(nothing)"))
            if proc.returncode == 127:
                raise AnsibleParserError("%s: python3 is needed there to list the containers: %s" % (where, stderr))
            raise AnsibleParserError("%s: the discovery failed (rc=%s): %s" % (where, proc.returncode, stderr or "(no message)"))
        try:
            return check_result(json.loads(to_text(proc.stdout, errors="surrogate_or_replace")))
        except (ValueError, DiscoveryResultError) as exc:
            raise AnsibleParserError("%s: the discovery printed no usable result (%s): %s" % (where, exc, stderr)) from exc

    def _discover_all(self, hosts: list, timeout: int) -> dict:
        """Results per host label, discovered in parallel."""
        if len(hosts) == 1:
            return {hosts[0]["name"]: self._run_discovery(hosts[0], timeout)}
        with ThreadPoolExecutor(max_workers=min(len(hosts), 8)) as pool:
            jobs = [(host["name"], pool.submit(self._run_discovery, host, timeout)) for host in hosts]
            return {label: job.result() for label, job in jobs}

    # ------------------------------------------------------------------ options

    def _checked_options(self):
        try:
            hosts = self.get_option("hosts")
            if not isinstance(hosts, list) or not hosts:
                raise ValueError("hosts: must be a non-empty list of mappings, got %r" % (hosts,))
            hosts = [normalize_host(entry, i) for i, entry in enumerate(hosts)]
            labels = [h["name"] for h in hosts]
            for label in labels:
                if labels.count(label) > 1:
                    raise ValueError("hosts: the name %r is used by more than one entry" % label)
            fmt = self.get_option("hostname_format")
            if not isinstance(fmt, str):
                raise ValueError("hostname_format: must be a string")
            hostname_fields(fmt)
            states = self.get_option("states") or []
            if not all(isinstance(s, str) and s for s in states):
                raise ValueError("states: must be a list of state names, got %r" % (states,))
            filters = normalize_filters(self.get_option("filters"))
            timeout = self.get_option("timeout")
            if not isinstance(timeout, int) or timeout <= 0:
                raise ValueError("timeout: %r must be a positive number of seconds" % (timeout,))
        except ValueError as exc:
            raise AnsibleParserError(to_native(exc)) from None
        return hosts, fmt, {s.upper() for s in states}, filters, timeout

    # ------------------------------------------------------------------ inventory

    def _keep(self, filters: list, hostvars: dict, label: str) -> bool:
        for index, (action, expr) in enumerate(filters):
            if isinstance(expr, bool):
                if expr:
                    return action == "include"
                continue
            try:
                value = self._compose(expr, hostvars)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # Jinja2 and Ansible raise many kinds; the message names the entry either way.
                raise AnsibleParserError(
                    "filters[%d].%s: cannot evaluate %r for container %s: %s" % (index, action, expr, label, to_native(exc))
                ) from exc
            if isinstance(value, str):
                value = boolean(value, strict=False)
            if value:
                return action == "include"
        return True

    def _populate(self, results: dict, hosts: list, fmt: str, states: set, filters: list) -> None:
        strict = self.get_option("strict")
        seen = {}
        for host in hosts:
            result = results.get(host["name"])
            if result is None:
                continue
            for entry in result["paths"]:
                path, owner = entry.get("path"), entry.get("owner") or "root"
                if entry.get("error"):
                    self.display.warning(
                        "lxcfleet.lxc.containers: LXC host %r, lxc path %s of %s: %s"
                        % (host["name"], path or "(unknown)", owner, entry["error"])
                    )
                for ct in entry.get("containers", []):
                    label = "%s in %s on %s" % (ct["name"], path, host["name"])
                    if ct.get("error"):
                        self.display.warning("lxcfleet.lxc.containers: container %s: %s" % (label, ct["error"]))
                    if not ct.get("state"):
                        continue
                    if states and ct["state"].upper() not in states:
                        continue
                    hostvars = container_vars(host, path, owner, ct)
                    hostvars.update(host["vars"])
                    if filters and not self._keep(filters, hostvars, label):
                        continue
                    inventory_name = fmt.format(name=ct["name"], host=host["name"], owner=owner)
                    if not inventory_name:
                        raise AnsibleParserError("hostname_format: %r gives an empty name for container %s" % (fmt, label))
                    if inventory_name in seen:
                        raise AnsibleParserError(
                            "hostname_format: containers %s and %s both become the inventory host %r; "
                            "add {host} or {owner} to hostname_format, or filter one out"
                            % (seen[inventory_name], label, inventory_name)
                        )
                    seen[inventory_name] = label
                    self._add_container(wrap_var(inventory_name), hostvars, host, strict)

    def _add_container(self, name, hostvars: dict, host: dict, strict: bool) -> None:
        self.inventory.add_host(name)
        for key, value in hostvars.items():
            self.inventory.set_variable(name, key, value)
        groups = ["lxc_state_" + str(hostvars["lxc_state"]).lower(), "lxc_host_" + host["name"]]
        groups += ["lxc_group_" + group for group in hostvars["lxc_groups"]]
        for group in groups:
            group = self.inventory.add_group(safe_group(group))
            self.inventory.add_child(group, name)
        try:
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
        except AnsibleParserError:
            raise
        except AnsibleError as exc:
            raise AnsibleParserError(to_native(exc)) from exc

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        hosts, fmt, states, filters, timeout = self._checked_options()

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        results = None
        if use_cache and cache:
            try:
                results = self._cache[cache_key]
                if not isinstance(results, dict) or sorted(results) != sorted(h["name"] for h in hosts):
                    results = None  # the file lists other hosts now
                else:
                    for value in results.values():
                        check_result(value)
            except KeyError:
                results = None
            except DiscoveryResultError:
                results = None
        if results is None:
            results = self._discover_all(hosts, timeout)
            if use_cache:
                self._cache[cache_key] = results
        self._populate(results, hosts, fmt, states, filters)
