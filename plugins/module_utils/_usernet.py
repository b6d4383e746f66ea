# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""``/etc/lxc/lxc-usernet`` (lxc-usernet(5)): parsing, and the allowance lxc-user-nic computes.

A line is ``<user> <type> <link> <count>`` or ``@<group> <type> <link> <count>``. lxc-user-nic
(``src/lxc/cmd/lxc_user_nic.c``, ``get_alloted()``) reads the file line by line with
``sscanf(line, "%99[^ \\t] %99[^ \\t] %99[^ \\t] %d", ...)``: a line counts when all four fields
are read, the first field is the calling user's name or ``@`` and the name of one of the caller's
groups (``getgroups()``), and type and link are equal to the requested ones. The counts of all such
lines are summed, and that sum must be positive; how many nics that gives is ``allowance()``.
``_scan()`` reproduces that ``sscanf`` (no leading blank, fields of up to 99 bytes, ``%d`` with
sign and a wrap to a C ``int``), so a line that lxc-user-nic counts is counted here, whatever its
shape: a line starting with a blank is never counted, ``alice veth br0 2 # x`` counts 2.

``parse_usernet()``, ``allowance()``, ``validate_params()`` and ``plan()`` are pure;
``read_allowance()`` reads the file, ``run()`` reads and writes it under a lock (module usernet).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import NamedTuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import LockTimeout, fcntl_lock

DEFAULT_PATH = "/etc/lxc/lxc-usernet"
_FIELD_MAX = 99
_C_WHITESPACE = " \t\n\v\f\r"
_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1
_LONG_MIN, _LONG_MAX = -(2 ** 63), 2 ** 63 - 1
# A line that parse_usernet() turns into a UsernetEntry: exactly four blank-separated fields, the
# count plain decimal digits, nothing else but trailing blanks. Everything else stays a raw string.
_ENTRY_RE = re.compile(r"^([^ \t\n\v\f\r#][^ \t\n\v\f\r]*)[ \t]+([^ \t\n\v\f\r]+)[ \t]+([^ \t\n\v\f\r]+)[ \t]+([0-9]+)[ \t]*\Z")


class UsernetEntry(NamedTuple):
    """One entry of lxc-usernet: ``name`` is a user (``alice``) or a group (``@lxcusers``)."""

    name: str
    type: str
    link: str
    count: int

    def render(self) -> str:
        return "%s %s %s %d" % (self.name, self.type, self.link, self.count)


def _to_c_int(value: int) -> int:
    """``strtol`` clamps to a ``long``; storing through ``%d`` keeps the low 32 bits."""
    value = max(_LONG_MIN, min(_LONG_MAX, value))
    value &= 0xFFFFFFFF
    return value - 2 ** 32 if value > _INT_MAX else value


def _scan(line: str):
    """What lxc-user-nic's ``sscanf`` reads from one line: ``(name, type, link, count)`` or None."""
    line = line.split("\0", 1)[0]
    pos = 0
    fields = []
    for index in range(3):
        if index:
            while pos < len(line) and line[pos] in _C_WHITESPACE:
                pos += 1
        start = pos
        while pos < len(line) and pos - start < _FIELD_MAX and line[pos] not in " \t":
            pos += 1
        if pos == start:
            return None
        fields.append(line[start:pos])
    while pos < len(line) and line[pos] in _C_WHITESPACE:
        pos += 1
    match = re.match(r"[+-]?[0-9]+", line[pos:])
    if not match:
        return None
    return fields[0], fields[1], fields[2], _to_c_int(int(match.group(0)))


def split_lines(text: str) -> list:
    """The lines of ``text`` as getline() sees them (split on ``\\n`` only), without the newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_entry(line: str):
    """A UsernetEntry for a plain entry line, else None (comments, blank and odd lines)."""
    match = _ENTRY_RE.match(line)
    if not match:
        return None
    return UsernetEntry(match.group(1), match.group(2), match.group(3), int(match.group(4)))


def parse_usernet(text: str) -> list:
    """One item per line of ``text``: a UsernetEntry, or the line itself (a str, verbatim, no newline).

    Plain entry lines (four fields, a decimal count, nothing after it) become UsernetEntry; comments,
    blank lines and lines of any other shape stay strings. ``allowance()`` still reads those strings
    the way lxc-user-nic does, so nothing lxc-user-nic counts is lost.
    """
    return [parse_entry(line) or line for line in split_lines(text)]


def render_usernet(lines: list) -> str:
    """The text of a list as parse_usernet() returns it, each line ending with a newline."""
    return "".join((item.render() if isinstance(item, UsernetEntry) else item) + "\n" for item in lines)


def matching_lines(lines: list, user: str, groups: list, nic_type: str, link: str) -> list:
    """``(name, count)`` of the lines lxc-user-nic's ``get_alloted()`` finds for the user, in file order."""
    groups = set(groups or [])
    found = []
    for item in lines:
        if isinstance(item, UsernetEntry):
            fields = (item.name, item.type, item.link, _to_c_int(item.count))
        else:
            fields = _scan(item)
        if fields is None:
            continue
        name, entry_type, entry_link, count = fields
        if name != user and not (name.startswith("@") and name[1:] in groups):
            continue
        if entry_type != nic_type or entry_link != link:
            continue
        found.append((name, count))
    return found


def matching_counts(lines: list, user: str, groups: list, nic_type: str, link: str) -> list:
    """The counts of the matching lines, in file order."""
    return [count for name, count in matching_lines(lines, user, groups, nic_type, link)]


def allotted(lines: list, user: str, groups: list, nic_type: str, link: str) -> int:
    """The sum ``get_alloted()`` returns: the counts of all matching lines (user and group lines)."""
    total = 0
    for count in matching_counts(lines, user, groups, nic_type, link):
        total = _to_c_int(total + count)
    return total


def allowance(lines: list, user: str, groups: list, nic_type: str, link: str) -> int:
    """How many nics of ``nic_type`` on ``link`` lxc-user-nic lets ``user`` hold at once.

    lxc-user-nic sums the counts of all matching lines (``get_alloted()``); a sum of 0 or less is
    "Quota reached". Else a new nic needs one matching line, in file order, whose count is above the
    number of nics its name (``alice`` or ``@group``) already holds in lxc-user-nic's database
    (``/run/lxc/nics``); the nic is then recorded under that name (``get_nic_if_avail()``). So the
    lines of different names add up (a user line of 1 and a group line of 1 give 2 nics), while
    several lines of the same name do not (two lines ``alice veth br0 1`` give 1 nic): each name
    contributes the largest count of its matching lines.

    This is the number for a user who holds no other nics. lxc-user-nic counts a name's nics over all
    links and types, and a group's nics over all its members, so nics held elsewhere lower it.
    """
    if allotted(lines, user, groups, nic_type, link) <= 0:
        return 0
    per_name = {}
    for name, count in matching_lines(lines, user, groups, nic_type, link):
        per_name[name] = max(per_name.get(name, 0), count)
    return sum(per_name.values())


def read_allowance(path: str, user: str, groups: list, nic_type: str, link: str) -> int:
    """``allowance()`` for the file at ``path``; 0 when the file is missing."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return 0
    text = data.decode("utf-8", errors="surrogateescape")
    return allowance(parse_usernet(text), user, groups, nic_type, link)


# ---------------------------------------------------------------------------------------------
# The module lxcfleet.lxc.usernet: validation and planning (pure), then reading and writing.
# ---------------------------------------------------------------------------------------------

NIC_TYPES = ("veth",)
IFNAMSIZ = 16
COUNT_MAX = _INT_MAX
DEFAULT_LOCK_TIMEOUT = 15.0
NEW_FILE_MODE = 0o644
# shadow's useradd/groupadd accept [A-Za-z0-9_.][A-Za-z0-9_.-]* (and a final $ for machine
# accounts), up to 32 characters, not only digits; Debian's stricter NAME_REGEX is a subset.
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?\Z")
_ACCOUNT_MAX = 32


class UsernetError(Exception):
    """Bad input or an unusable file. The message starts with the option's name."""


def validate_account(value) -> str:
    """``alice`` or ``@group``: a user or group name as useradd/groupadd accept it."""
    text = "" if value is None else str(value)
    account = text[1:] if text.startswith("@") else text
    kind = "group" if text.startswith("@") else "user"
    if not account:
        raise UsernetError("name: %r is empty; give a user name like alice or a group like @lxcusers" % (text,))
    if len(account) > _ACCOUNT_MAX or not _ACCOUNT_RE.match(account) or account.isdigit() or account in (".", ".."):
        raise UsernetError("name: %r is not a valid %s name (letters, digits, '_', '.', '-', not starting with '-',"
                           " not only digits, at most %d characters)" % (text, kind, _ACCOUNT_MAX))
    return text


def validate_bridge(value, option="bridge") -> str:
    text = "" if value is None else str(value)
    if not text:
        raise UsernetError("%s: is required and must not be empty" % option)
    if len(text.encode("utf-8")) >= IFNAMSIZ:
        raise UsernetError("%s: %r is too long: an interface name has at most %d characters" % (option, text, IFNAMSIZ - 1))
    if text in (".", "..") or any(ch in text for ch in "/:#") or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise UsernetError("%s: %r is not a valid interface name: no whitespace, '/', ':' or '#'" % (option, text))
    return text


def validate_count(value, option="count") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsernetError("%s: %r is not an integer" % (option, value))
    if value < 0 or value > COUNT_MAX:
        raise UsernetError("%s: %d is out of range: 0 to %d" % (option, value, COUNT_MAX))
    return value


def validate_type(value, option="type") -> str:
    text = "veth" if value is None else str(value)
    if text not in NIC_TYPES:
        raise UsernetError("%s: %r is not supported: lxc-user-nic is only used for %s nics" % (option, text, ", ".join(NIC_TYPES)))
    return text


def validate_params(params: dict) -> dict:
    """Normalized desired state, or UsernetError naming the option."""
    name = validate_account(params.get("name"))
    state = params.get("state") or "present"
    exclusive = bool(params.get("exclusive"))
    path = params.get("path") or DEFAULT_PATH
    if not path.startswith("/") or path.endswith("/"):
        raise UsernetError("path: %r is not an absolute file path" % (path,))
    timeout = params.get("lock_timeout")
    timeout = DEFAULT_LOCK_TIMEOUT if timeout is None else timeout
    if timeout < 0:
        raise UsernetError("lock_timeout: %r must not be negative" % (timeout,))
    entries = params.get("entries")
    bridge = params.get("bridge")
    if entries is not None and (bridge is not None or params.get("count") is not None):
        raise UsernetError("entries: is mutually exclusive with bridge and count")
    wanted = []
    if entries is None and bridge is not None:
        entries_in = [dict(bridge=bridge, count=params.get("count"), type=params.get("type"))]
        labels = ["bridge", "count", "type"]
    elif entries is None:
        if params.get("count") is not None:
            raise UsernetError("count: needs bridge")
        if state == "present":
            raise UsernetError("bridge: one of bridge (with count) or entries is required with state=present")
        entries_in = []
        labels = None
    else:
        entries_in = list(entries)
        labels = None
    seen = {}
    for index, entry in enumerate(entries_in):
        if not isinstance(entry, dict):
            raise UsernetError("entries[%d]: %r is not a dict with bridge, count and type" % (index, entry))
        option = labels or ["entries[%d].bridge" % index, "entries[%d].count" % index, "entries[%d].type" % index]
        link = validate_bridge(entry.get("bridge"), option[0])
        nic_type = validate_type(entry.get("type"), option[2])
        count = entry.get("count")
        if state == "present":
            if count is None:
                raise UsernetError("%s: is required with state=present" % option[1])
            count = validate_count(count, option[1])
        elif count is not None:
            count = validate_count(count, option[1])
        key = (nic_type, link)
        if key in seen:
            raise UsernetError("%s: %s %s is given twice (entries[%d] and entries[%d])" % (option[0], nic_type, link, seen[key], index))
        seen[key] = index
        wanted.append(UsernetEntry(name, nic_type, link, count))
    return dict(name=name, state=state, exclusive=exclusive, entries=wanted, path=path,
                lock_timeout=float(timeout), remove_all=(state == "absent" and entries is None and bridge is None))


def owner_fields(line: str, name: str):
    """The fields lxc-user-nic reads from ``line`` when it is a line of ``name``, else None."""
    fields = _scan(line)
    if fields is None or fields[0] != name:
        return None
    return fields


def plan(desired: dict, lines: list) -> list:
    """The new list of raw lines (``split_lines()`` of the file) for the desired state.

    Lines of other names, comments, blank lines and lines lxc-user-nic does not read are kept as
    they are. Of the lines of ``name`` (as lxc-user-nic reads them): the first line of each wanted
    (type, link) key is kept verbatim when it already says the wanted count in the plain form, else it
    is rewritten in place; further lines of that key are dropped. With ``exclusive`` the lines of
    other keys of this name are dropped; with ``state=absent`` the lines of the given keys (or all
    lines of the name) are dropped. Wanted keys without a line are added after the name's last line,
    or at the end of the file.
    """
    name = desired["name"]
    present = desired["state"] == "present"
    wanted = {(entry.type, entry.link): entry for entry in desired["entries"]}
    done = set()
    result = []
    last_own = None
    for line in lines:
        fields = owner_fields(line, name)
        if fields is None:
            result.append(line)
            continue
        key = (fields[1], fields[2])
        if present and key in wanted:
            if key in done:
                continue
            done.add(key)
            entry = wanted[key]
            result.append(line if parse_entry(line) == entry else entry.render())
        elif present:
            if desired["exclusive"]:
                continue
            result.append(line)
        else:
            if desired["remove_all"] or key in wanted:
                continue
            result.append(line)
        last_own = len(result)
    if present:
        missing = [entry.render() for key, entry in wanted.items() if key not in done]
        if missing:
            at = len(result) if last_own is None else last_own
            result[at:at] = missing
    return result


def own_entries(lines: list, name: str) -> list:
    """The lines of ``name`` as dicts (name, type, bridge, count), in file order."""
    entries = []
    for line in lines:
        fields = owner_fields(line, name)
        if fields is not None:
            entries.append(dict(name=fields[0], type=fields[1], bridge=fields[2], count=fields[3]))
    return entries


def render_lines(lines: list) -> str:
    return "".join(line + "\n" for line in lines)


def lock_path(path: str) -> str:
    """The sidecar lock file: the file itself is replaced by rename, so it cannot carry the lock."""
    folder, base = os.path.split(path)
    return os.path.join(folder, ".%s.lock" % base)


def read_text(path: str):
    """The file's text, or None when it is missing."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise UsernetError("path: %s is a directory" % path)
    except OSError as exc:
        raise UsernetError("path: cannot read %s: %s" % (path, exc.strerror or exc))


def write_file(module, path: str, text: str, existed: bool) -> None:
    """Replace ``path`` atomically (temporary file in the same folder, then ``atomic_move``).

    ``atomic_move`` keeps the mode and owner of a file it replaces; a new file gets 0644.
    """
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", errors="surrogateescape"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, NEW_FILE_MODE)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not existed:
        os.chmod(path, NEW_FILE_MODE)


def run(module, desired: dict) -> dict:
    """Read, plan and (unless in check mode) write, under the lock when writing."""
    path = desired["path"]
    if module.check_mode:
        return _run_locked(module, desired)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise UsernetError("path: cannot create %s: %s" % (folder, exc.strerror or exc))
    try:
        with fcntl_lock(lock_path(path), timeout=desired["lock_timeout"]):
            return _run_locked(module, desired)
    except LockTimeout as exc:
        raise UsernetError("lock_timeout: %s" % exc)


def _run_locked(module, desired: dict) -> dict:
    path = desired["path"]
    before = read_text(path)
    lines = split_lines(before or "")
    new_lines = plan(desired, lines)
    changed = new_lines != lines
    after = render_lines(new_lines) if changed else (before or "")
    if changed and not module.check_mode:
        write_file(module, path, after, existed=before is not None)
    return dict(changed=changed, before=before or "", after=after, entries=own_entries(new_lines, desired["name"]))


def argument_spec() -> dict:
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        bridge=dict(type="str"),
        count=dict(type="int"),
        type=dict(type="str", choices=list(NIC_TYPES), default="veth"),
        entries=dict(type="list", elements="dict", options=dict(
            bridge=dict(type="str", required=True),
            count=dict(type="int"),
            type=dict(type="str", choices=list(NIC_TYPES), default="veth"),
        )),
        exclusive=dict(type="bool", default=False),
        path=dict(type="path", default=DEFAULT_PATH),
        lock_timeout=dict(type="float", default=DEFAULT_LOCK_TIMEOUT),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("entries", "bridge"), ("entries", "count"), ("entries", "type")])
    try:
        desired = validate_params(dict(module.params))
        result = run(module, desired)
    except UsernetError as exc:
        module.fail_json(msg=str(exc))
        return
    except OSError as exc:
        module.fail_json(msg="path: %s: %s" % (module.params["path"], exc))
        return
    output = dict(changed=result["changed"], entries=result["entries"])
    if module._diff:
        output["diff"] = dict(before=result["before"], after=result["after"],
                              before_header=desired["path"], after_header=desired["path"])
    module.exit_json(**output)
