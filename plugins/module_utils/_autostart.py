# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The autostart module: start or stop a selection of containers through ``lxc-autostart``.

LXC chooses the containers and their order; this code asks it first (``lxc-autostart -L``), plans,
and only then lets ``lxc-autostart`` act. What LXC 5.0 does (checked on LXC 5.0.2, see
docs/autostart.md):

- Selection: ``-g G`` (several, in order) selects containers with ``lxc.start.auto = 1`` (all of
  them with ``-A``) whose ``lxc.group`` holds G; the empty group means containers without any
  group, and is the default. A container's group matches when it is a *prefix* of G (LXC compares
  with ``strncmp(group, G, strlen(group))``). ``-a`` ignores groups.
- Order: one pass per requested group, in the order given; a container is handled in the first pass
  that selects it. Within a pass, starting goes by ``lxc.start.order`` ascending (lower first), then
  by name; stopping and killing go the exact reverse within each pass (higher order first).
- Delay: after starting a container, LXC sleeps its ``lxc.start.delay`` seconds before the next
  one (also after the last). Stopping has no delay.
- ``-L`` lists what it would do: for a start the containers that are not running, with their delay
  (``NAME DELAY``); for a stop or kill the running ones (``NAME``). FROZEN counts as running.
- ``-s -t 0`` only sends the halt signal and does not wait, so timeout 0 is done with ``-k``.
"""

from __future__ import annotations

import os
import re
import tempfile
from functools import cmp_to_key

from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import LxcError, LxcRunner, parse_info

ARGUMENT_SPEC = dict(
    groups=dict(type="list", elements="str"),
    all=dict(type="bool", default=False),
    ignore_auto=dict(type="bool", default=False),
    state=dict(type="str", default="started", choices=["started", "stopped", "restarted"]),
    timeout=dict(type="int", default=60),
    lxc_path=dict(type="path"),
)

_CONFIG_KEYS = ("lxc.start.order", "lxc.start.delay", "lxc.start.auto", "lxc.group")  # lxc.group last: multi-line
_LOG_RE = r"^lxc-autostart (?:(?P<name>\S+) )?\d+\.\d+ (?:ERROR|CRIT|ALERT|FATAL)\s+\S+ - \S+ - (?P<msg>.*)$"
_FAILED_RE = r"Error (?:starting|shutting down|killing) container: (\S+)"


class AutostartError(Exception):
    pass


def validate(params: dict) -> list:
    """The selection arguments of lxc-autostart, or AutostartError naming the option."""
    groups = params.get("groups")
    if groups is not None and params.get("all"):
        raise AutostartError("groups and all are mutually exclusive: all selects every autostart container, "
                             "whatever its groups")
    if params.get("timeout") is not None and params["timeout"] < 0:
        raise AutostartError("timeout must be 0 (kill at once) or more seconds")
    args = []
    if params.get("all"):
        args.append("-a")
    seen = set()
    for group in groups or []:
        group = str(group)
        if "," in group or "\n" in group:
            raise AutostartError("groups: %r is not a group name (lxc-autostart splits -g at commas)" % group)
        if group in seen:
            raise AutostartError("groups: %r is named twice" % group)
        seen.add(group)
        args += ["-g", group]
    if params.get("ignore_auto"):
        args.append("-A")
    return args


def parse_list(text: str) -> list:
    """``lxc-autostart -L`` output: [(name, delay or None)], in LXC's order."""
    items = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        delay = None
        if len(fields) > 1:
            try:
                delay = int(fields[1])
            except ValueError:
                delay = None
        items.append((fields[0], delay))
    return items


def parse_config_items(text: str) -> dict:
    """``lxc-info -c lxc.start.order -c lxc.start.delay -c lxc.start.auto -c lxc.group`` output.
    LXC prints a multi-valued item as its first value after ``KEY =`` and the others on the lines
    after it, so lxc.group is asked for last and takes every further line."""
    values = {}
    current = None
    for line in text.splitlines():
        key, sep, value = line.partition(" =")
        key = key.strip()
        if sep and key in _CONFIG_KEYS and current != "lxc.group":
            current = key
            value = value.strip()
            values[key] = [value] if value else []
            continue
        if current == "lxc.group" and line.strip():
            values["lxc.group"].append(line.strip())
    return {
        "order": _int(values.get("lxc.start.order")),
        "delay": _int(values.get("lxc.start.delay")),
        "auto": _int(values.get("lxc.start.auto")) == 1,
        "groups": values.get("lxc.group", []),
    }


def _int(values) -> int:
    try:
        return int(values[0])
    except (TypeError, ValueError, IndexError):
        return 0


def group_matches(requested: str, groups: list) -> bool:
    """LXC's list_contains_entry(): the empty group selects containers without groups; otherwise a
    container's group matches when it is a prefix of the requested one."""
    if not groups:
        return requested == ""
    return any(requested.startswith(group) for group in groups)


def pass_index(params: dict, groups: list) -> int:
    if params.get("all") or not params.get("groups"):
        return 0
    for index, requested in enumerate(params["groups"]):
        if group_matches(str(requested), groups):
            return index
    return len(params["groups"])


def _name_cmp(a: str, b: str) -> int:
    """LXC's tie-break: strncmp(a, b, strlen(a))."""
    a2, b2 = a, b[:len(a)]
    return (a2 > b2) - (a2 < b2)


def lxc_order(params: dict, containers: list, stopping: bool) -> list:
    """Containers (dicts with name, order, pass) in the order lxc-autostart handles them."""
    def cmp(x, y):
        if x["order"] != y["order"]:
            result = x["order"] - y["order"]
        else:
            result = _name_cmp(x["name"], y["name"])
        return -result if stopping else result

    ordered = sorted(containers, key=cmp_to_key(cmp))
    return sorted(ordered, key=lambda c: c["pass"])  # stable: passes in the order of the groups


def log_reasons(text: str) -> dict:
    """ERROR lines of an lxc-autostart log, per container (None: the tool's own lines)."""
    reasons = {}
    for line in text.splitlines():
        match = re.match(_LOG_RE, line.strip())
        if not match:
            continue
        name = match.group("name")
        msg = match.group("msg").strip()
        failed = re.search(_FAILED_RE, msg)
        if name is None and failed:
            name = failed.group(1)
        if msg not in reasons.setdefault(name, []):
            reasons[name].append(msg)
    return reasons


class Autostart:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.actions = []
        self.changed = False

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, changed=self.changed, actions=self.actions, **kwargs)

    def run(self):
        p = self.params
        try:
            self.selection = validate(p)
        except AutostartError as exc:
            self.fail(str(exc))
        self.lxc = LxcRunner(self.module, p["lxc_path"])
        if not os.path.isdir(self.lxc.lxc_path):
            self.fail("lxc_path: %s is not a folder" % self.lxc.lxc_path)
        stopping_args = ["-k"] if p["timeout"] == 0 else ["-s", "-t", str(p["timeout"])]

        to_start = self.list([])
        to_stop = self.list(["-k"])
        names = [n for n, _d in to_start] + [n for n, _d in to_stop if n not in dict(to_start)]
        members = {}
        for name in names:
            members[name] = self.describe(name)
        start_order = lxc_order(p, list(members.values()), stopping=False)
        stop_order = lxc_order(p, list(members.values()), stopping=True)
        self.check_order([n for n, _d in to_start], start_order)
        self.check_order([n for n, _d in to_stop], stop_order)

        state = p["state"]
        planned_stop = [n for n, _d in to_stop] if state in ("stopped", "restarted") else []
        if state == "started":
            planned_start = [n for n, _d in to_start]
        elif state == "restarted":
            planned_start = [c["name"] for c in start_order]
        else:
            planned_start = []
        verb = "kill" if p["timeout"] == 0 else "stop"
        for name in planned_stop:
            self.actions.append("%s %s" % (verb, name))
        for name in planned_start:
            self.actions.append("start %s" % name)
        self.changed = bool(self.actions)

        if planned_stop and not self.module.check_mode:
            self.act(stopping_args, planned_stop, ("STOPPED",), "stopping")
        if planned_start and not self.module.check_mode:
            self.act([], planned_start, ("RUNNING",), "starting")

        ordered = stop_order if state == "stopped" else start_order
        result = []
        for member in ordered:
            name = member["name"]
            before = member["state"]
            if self.module.check_mode:
                after = "RUNNING" if name in planned_start else ("STOPPED" if name in planned_stop else before)
            elif name in planned_start or name in planned_stop:
                after = self.lxc.state(name)
            else:
                after = before
            result.append({
                "name": name, "order": member["order"], "delay": member["delay"], "auto": member["auto"],
                "groups": member["groups"], "state_before": before, "state_after": after,
                "action": ("%s+start" % verb if name in planned_stop and name in planned_start else
                           "start" if name in planned_start else verb if name in planned_stop else "none"),
            })
        out = dict(changed=self.changed, actions=self.actions, containers=result, lxc_path=self.lxc.lxc_path,
                   selection=self.selection)
        if self.module._diff:
            out["diff"] = {
                "before": "".join("%s: %s\n" % (c["name"], c["state_before"]) for c in result),
                "after": "".join("%s: %s\n" % (c["name"], c["state_after"]) for c in result),
                "before_header": "states (%s)" % " ".join(self.selection or ["(no group)"]),
                "after_header": "states (%s)" % " ".join(self.selection or ["(no group)"]),
            }
        self.module.exit_json(**out)

    # -- LXC ------------------------------------------------------------------------------------

    def list(self, mode: list) -> list:
        try:
            _rc, out, _err = self.lxc.run("lxc-autostart", None, mode + ["-L"] + self.selection,
                                          what="listing the selection (lxc-autostart -L) failed")
        except LxcError as exc:
            self.fail(exc.msg, **exc.to_result())
        return parse_list(out)

    def describe(self, name: str) -> dict:
        args = ["-s", "-p", "-H"]
        for key in _CONFIG_KEYS:
            args += ["-c", key]
        rc, out, err = self.lxc.run("lxc-info", name, args, check=False)
        info = parse_info(out) if rc == 0 else {"state": None}
        member = parse_config_items(out)
        member.update(name=name, state=info.get("state"), **{"pass": pass_index(self.params, member["groups"])})
        return member

    def check_order(self, listed: list, ordered: list):
        mine = [c["name"] for c in ordered if c["name"] in listed]
        if mine != listed:
            self.module.warn("lxc-autostart lists %s, which differs from the order computed from the containers' "
                             "config (%s); the containers are reported in the computed order"
                             % (", ".join(listed), ", ".join(mine)))

    def act(self, mode: list, names: list, wanted: tuple, verb: str):
        """One lxc-autostart run for the whole selection; LXC acts in its order, with its delays. Its exit
        code does not say which container failed, so every planned one is checked after."""
        fd, logfile = tempfile.mkstemp(prefix="lxcfleet-autostart-", suffix=".log")
        os.close(fd)
        try:
            rc, out, err = self.lxc.run("lxc-autostart", None,
                                        ["--logfile", logfile, "--logpriority", "ERROR"] + mode + self.selection,
                                        check=False)
            with open(logfile, encoding="utf-8", errors="replace") as handle:
                logtext = handle.read()
        finally:
            os.unlink(logfile)
        failed = [n for n in names if self.lxc.state(n) not in wanted]
        if failed:
            reasons = log_reasons(logtext)
            details = []
            for name in failed:
                found = [m for m in reasons.get(name, []) if not m.startswith("Received container state")]
                details.append("%s: %s" % (name, "; ".join(found) if found else "no reason in LXC's output"))
            self.fail("%s %s through lxc-autostart failed (rc %d): %s" % (verb, ", ".join(failed), rc, " | ".join(details)),
                      failed_containers=failed, stderr=err, rc=rc)
