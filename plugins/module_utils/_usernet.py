# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""``/etc/lxc/lxc-usernet`` (lxc-usernet(5)): parsing, and the allowance lxc-user-nic computes.

A line is ``<user> <type> <link> <count>`` or ``@<group> <type> <link> <count>``. lxc-user-nic
(``src/lxc/cmd/lxc_user_nic.c``, ``get_alloted()``) reads the file line by line with
``sscanf(line, "%99[^ \\t] %99[^ \\t] %99[^ \\t] %d", ...)``: a line counts when all four fields
are read, the first field is the calling user's name or ``@`` and the name of one of the caller's
groups (``getgroups()``), and type and link are equal to the requested ones. The counts of all such
lines are summed. ``_scan()`` reproduces that ``sscanf`` (no leading blank, fields of up to 99
bytes, ``%d`` with sign and a wrap to a C ``int``), so a line that lxc-user-nic counts is counted
here, whatever its shape: a line starting with a blank is never counted, ``alice veth br0 2 # x``
counts 2.

``parse_usernet()`` and ``allowance()`` are pure; ``read_allowance()`` reads the file.
"""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_PATH = "/etc/lxc/lxc-usernet"
_FIELD_MAX = 99
_C_WHITESPACE = " \t\n\v\f\r"
_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1
_LONG_MIN, _LONG_MAX = -(2 ** 63), 2 ** 63 - 1
# A line that parse_usernet() turns into a UsernetEntry: exactly four blank-separated fields, the
# count plain decimal digits, nothing else but trailing blanks. Everything else stays a raw string.
_ENTRY_RE = re.compile(r"^([^ \t\n\v\f\r#][^ \t\n\v\f\r]*)[ \t]+([^ \t\n\v\f\r]+)[ \t]+([^ \t\n\v\f\r]+)[ \t]+([0-9]+)[ \t]*$")


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


def matching_counts(lines: list, user: str, groups: list, nic_type: str, link: str) -> list:
    """The counts of the lines lxc-user-nic's ``get_alloted()`` finds for the user, in file order."""
    groups = set(groups or [])
    counts = []
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
        counts.append(count)
    return counts


def allotted(lines: list, user: str, groups: list, nic_type: str, link: str) -> int:
    """The sum ``get_alloted()`` returns: the counts of all matching lines (user and group lines)."""
    total = 0
    for count in matching_counts(lines, user, groups, nic_type, link):
        total = _to_c_int(total + count)
    return total


def allowance(lines: list, user: str, groups: list, nic_type: str, link: str) -> int:
    """How many nics of ``nic_type`` on ``link`` lxc-user-nic lets ``user`` hold at once.

    lxc-user-nic first sums the counts of all matching lines (``get_alloted()``); a sum of 0 or
    less is "Quota reached". Else it gives a new nic when one matching line, taken on its own, has a
    count above the number of nics already recorded in its database (``get_nic_if_avail()``). So the
    most a user gets is the largest count of a single matching line, and nothing when the sum is not
    positive. With one matching line this is simply its count. (LXC 4.0 to 6.0 count every live nic
    of the database there, of all users and links, so other users' running containers lower it.)
    """
    counts = matching_counts(lines, user, groups, nic_type, link)
    if allotted(lines, user, groups, nic_type, link) <= 0:
        return 0
    return max(0, *counts)


def read_allowance(path: str, user: str, groups: list, nic_type: str, link: str) -> int:
    """``allowance()`` for the file at ``path``; 0 when the file is missing."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return 0
    text = data.decode("utf-8", errors="surrogateescape")
    return allowance(parse_usernet(text), user, groups, nic_type, link)
