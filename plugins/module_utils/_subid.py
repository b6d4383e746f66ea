# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Subordinate id files (``/etc/subuid``, ``/etc/subgid``): parsing and rendering.

A line is ``owner:start:count``; ``owner`` is a user name or a numeric uid, as written. Every other
line (comments, blank lines, lines that do not parse) is kept verbatim, as shadow's tools keep it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)$")


class SubidEntry(NamedTuple):
    """One range line: ``owner:start:count``."""

    owner: str
    start: int
    count: int


def _parse_line(line: str):
    fields = line.split(":")
    if len(fields) != 3 or not fields[0] or line.startswith("#"):
        return line
    owner, start, count = fields
    if not _DECIMAL_RE.match(start) or not _DECIMAL_RE.match(count):
        # Kept verbatim (shadow would read some of these, e.g. 0x186a0: see shadow_range()).
        return line
    return SubidEntry(owner, int(start), int(count))


def parse_subid(text: str) -> list:
    """One item per line: a SubidEntry, or the line itself (str) for comments, blank and malformed lines."""
    if not text:
        return []
    parts = text.split("\n")
    if text.endswith("\n"):
        parts.pop()
    return [_parse_line(line) for line in parts]


def format_entry(entry: SubidEntry) -> str:
    return "%s:%d:%d" % (entry.owner, entry.start, entry.count)


def render_subid(lines: list) -> str:
    """The file text of parsed lines; every line ends with a newline (as shadow writes the file)."""
    return "".join((format_entry(item) if isinstance(item, SubidEntry) else item) + "\n" for item in lines)


def _owns(owner: str, name: str, uid) -> bool:
    return owner == name or (uid is not None and owner == str(uid))


def ranges_for(lines: list, name: str, uid) -> list:
    """(start, count) of the entries whose owner is ``name`` or ``str(uid)``, in file order."""
    return [(item.start, item.count) for item in lines if isinstance(item, SubidEntry) and _owns(item.owner, name, uid)]


def read_ranges(path: str, name: str, uid) -> list:
    """ranges_for() of a file; [] when the file is missing."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    return ranges_for(parse_subid(text), name, uid)


def idmap_lines(uid_range, gid_range, container_start: int = 0) -> list:
    """``lxc.idmap`` values mapping container ids from ``container_start`` onto the two ranges."""
    return [
        "u %d %d %d" % (container_start, uid_range[0], uid_range[1]),
        "g %d %d %d" % (container_start, gid_range[0], gid_range[1]),
    ]


_SHADOW_NUMBER_RE = re.compile(r"^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


def _shadow_number(text: str):
    """A number as shadow's getulong() reads it (strtoul base 0: decimal, 0x hex, 0 octal), or None."""
    match = _SHADOW_NUMBER_RE.match(text)
    if not match:
        return None
    return int(match.group(1), 0) if not re.match(r"^0[0-7]+$", match.group(1)) else int(match.group(1), 8)


def shadow_range(item):
    """(owner, start, count) that shadow's tools see in a line, or None; raw lines included.

    Allocation must avoid ranges shadow reads from lines this parser keeps verbatim (``0x186a0``,
    ``0303240`` octal, `` 100000``), so these count as taken.
    """
    if isinstance(item, SubidEntry):
        return item.owner, item.start, item.count
    fields = item.split(":")
    if len(fields) != 3 or not fields[0] or item.startswith("#"):
        return None
    start, count = _shadow_number(fields[1]), _shadow_number(fields[2])
    if start is None or count is None:
        return None
    return fields[0], start, count
