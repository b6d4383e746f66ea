# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Ordered, lossless model of an LXC container config file (lxc.container.conf(5)).

Every physical line is kept; an unchanged model renders byte for byte as it
was read.  Changes replace values in place and never append a duplicate of a
single-valued key.  Legacy (pre-3.0) key names are understood on read and are
written in their current form.  No LXC calls: pure text handling.
"""
from __future__ import annotations

import copy as _copy
from typing import Any, Dict, Iterable, List, Optional, Union

from ansible_collections.lxcfleet.lxc.plugins.module_utils._keys import (
    OBSOLETE_KEYS,
    ConfigError,
    canonical_key,
    is_legacy_key,
    is_multi_valued,
    is_valid_key,
    legacy_net_unindexed,
    net_index,
    validate_key,
)

__all__ = ["ConfigError", "ConfigLine", "LxcConfig", "format_line", "format_value", "parse_value"]

BLANK = "blank"
COMMENT = "comment"
ENTRY = "entry"
INVALID = "invalid"

ValueArg = Union[str, int, float, bool, List[Any], tuple]


def parse_value(text: str) -> str:
    """Value as liblxc reads it: outer blanks stripped, then one pair of matching quotes."""
    value = text.strip(" \t")
    if len(value) > 1 and value[0] in "\"'" and value[-1] == value[0]:
        value = value[1:-1]
    return value


def format_value(value: str) -> str:
    """Text that parse_value() reads back as ``value``.

    A value is written bare unless liblxc would alter it on reading (leading or
    trailing blanks, or a matching outer pair of quotes); then it is wrapped in
    double quotes, of which liblxc strips exactly one pair.
    """
    if value != value.strip(" \t") or (len(value) > 1 and value[0] in "\"'" and value[-1] == value[0]):
        return '"%s"' % value
    return value


def format_line(key: str, value: str) -> str:
    """A line in the form this collection writes: ``key = value`` (``key =`` when empty)."""
    text = format_value(value)
    if text == "":
        return "%s =" % key
    return "%s = %s" % (key, text)


class ConfigLine:
    """One physical line of a config file.

    ``raw`` is the text without its line ending, ``eol`` the line ending
    (``"\\n"``, ``"\\r\\n"`` or ``""`` for a last line without one).
    ``kind`` is one of ``blank``, ``comment``, ``entry``, ``invalid``.
    For entries, ``raw_key`` is the key as written, ``key`` its canonical
    name and ``value`` the value as liblxc reads it (blanks and one pair of
    quotes stripped).  ``invalid`` lines (no ``=``, or a key not starting with
    ``lxc.``, which liblxc ignores) are kept verbatim.
    """

    __slots__ = ("raw", "eol", "kind", "key", "raw_key", "value")

    def __init__(self, raw: str, eol: str = "\n", net_idx: int = 0) -> None:
        self.raw = raw
        self.eol = eol
        self.key = None  # type: Optional[str]
        self.raw_key = None  # type: Optional[str]
        self.value = None  # type: Optional[str]
        body = raw.lstrip(" \t")
        if body == "" or body.isspace():
            self.kind = BLANK
        elif body.startswith("#"):
            self.kind = COMMENT
        elif "=" not in body:
            self.kind = INVALID
        else:
            rkey, rvalue = body.split("=", 1)
            rkey = rkey.rstrip(" \t")
            if not rkey.startswith("lxc."):
                self.kind = INVALID
            else:
                self.kind = ENTRY
                self.raw_key = rkey
                self.value = parse_value(rvalue)
                self.key = canonical_key(rkey, net_idx)

    @classmethod
    def entry(cls, key: str, value: str, eol: str = "\n") -> "ConfigLine":
        line = cls(format_line(key, value), eol)
        # format_line() round-trips, so key/value are exactly what was asked for
        line.key = key
        return line

    def is_entry(self) -> bool:
        return self.kind == ENTRY

    def __repr__(self) -> str:
        return "ConfigLine(%r, kind=%r, key=%r, value=%r)" % (self.raw, self.kind, self.key, self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigLine):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value or "\0" in value:
            raise ConfigError("value of LXC config key '%s' must be one line" % key, key=key)
        return value
    if value is None:
        raise ConfigError("value of LXC config key '%s' must not be null (use remove)" % key, key=key)
    if isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigError("LXC config key '%s' is single-valued; got a list" % key, key=key)
    raise ConfigError("value of LXC config key '%s' must be a string, got %s" % (key, type(value).__name__), key=key)


def _values(key: str, value: Any) -> List[str]:
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, (list, tuple, set, frozenset, dict)):
                raise ConfigError("values of LXC config key '%s' must be strings, got a nested %s"
                                  % (key, type(item).__name__), key=key)
            out.append(_scalar(key, item))
        return out
    if isinstance(value, (set, frozenset, dict)):
        raise ConfigError("value of LXC config key '%s' must be a list (order matters), got %s"
                          % (key, type(value).__name__), key=key)
    return [_scalar(key, value)]


class LxcConfig:
    """Ordered model of one LXC config file."""

    def __init__(self, lines: Optional[Iterable[ConfigLine]] = None, eol: str = "\n") -> None:
        self._lines = list(lines or [])  # type: List[ConfigLine]
        self._eol = eol

    # ----------------------------------------------------------------- I/O
    @classmethod
    def parse(cls, text: str) -> "LxcConfig":
        """Read ``text``; never raises, never loses a line.

        Unindexed legacy ``lxc.network.<sub>`` lines belong to the interface
        opened by the last ``lxc.network.type`` line before them (the first
        one opens index 0); an empty ``lxc.network.type`` clears all
        interfaces (canonical key ``lxc.net``) and restarts counting.
        """
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        lines = []  # type: List[ConfigLine]
        eol = None  # type: Optional[str]
        chunks = text.split("\n")
        last = len(chunks) - 1
        legacy_idx = -1
        for i, chunk in enumerate(chunks):
            if i == last:
                if chunk == "":
                    break
                raw, line_eol = chunk, ""
            elif chunk.endswith("\r"):
                raw, line_eol = chunk[:-1], "\r\n"
            else:
                raw, line_eol = chunk, "\n"
            if eol is None and line_eol:
                eol = line_eol
            line = ConfigLine(raw, line_eol, max(legacy_idx, 0))
            if line.kind == ENTRY and line.raw_key is not None and legacy_net_unindexed(line.raw_key):
                if line.raw_key == "lxc.network.type":
                    if line.value == "":
                        legacy_idx = -1
                        line.key = "lxc.net"
                    else:
                        legacy_idx += 1
                        line.key = canonical_key(line.raw_key, legacy_idx)
            lines.append(line)
        return cls(lines, eol or "\n")

    def render(self) -> str:
        return "".join(line.raw + line.eol for line in self._lines)

    def __str__(self) -> str:
        return self.render()

    def copy(self) -> "LxcConfig":
        return LxcConfig(_copy.deepcopy(self._lines), self._eol)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LxcConfig):
            return NotImplemented
        return self.render() == other.render()

    @property
    def lines(self) -> List[ConfigLine]:
        """The lines (a copy of the list; do not mutate the ConfigLine objects)."""
        return list(self._lines)

    def errors(self) -> List[ConfigError]:
        """Problems liblxc (4.0-6.x) would have with this file, one per line.

        Lists lines without ``=`` or with a key not starting with ``lxc.``
        (liblxc rejects or ignores them), unknown keys and legacy keys (LXC
        3.0 and later refuse them; see modernize()).
        """
        out = []  # type: List[ConfigError]
        for no, line in enumerate(self._lines, 1):
            if line.kind == INVALID:
                out.append(ConfigError("not a 'lxc.<key> = <value>' line: %r" % line.raw, lineno=no))
            elif line.kind == ENTRY:
                rkey = line.raw_key or ""
                if is_legacy_key(rkey):
                    out.append(ConfigError("legacy LXC config key '%s' (now '%s')" % (rkey, line.key),
                                           key=rkey, lineno=no))
                elif not is_valid_key(rkey):
                    try:
                        validate_key(rkey)
                    except ConfigError as exc:
                        out.append(ConfigError(exc.msg, key=rkey, lineno=no))
        return out

    # ---------------------------------------------------------------- read
    def _entries(self, key: str) -> List[int]:
        return [i for i, line in enumerate(self._lines) if line.kind == ENTRY and line.key == key]

    def get(self, key: str) -> List[str]:
        """All values of ``key`` (any spelling) in file order."""
        canon = canonical_key(key)
        return [line.value or "" for line in self._lines if line.kind == ENTRY and line.key == canon]

    def get_one(self, key: str) -> Optional[str]:
        """The value liblxc uses for a single-valued key: the last one; None if absent."""
        values = self.get(key)
        return values[-1] if values else None

    def get_effective(self, key: str) -> List[str]:
        """Values of a multi-valued key after liblxc's rule that an empty value clears the list."""
        values = self.get(key)
        for i in range(len(values) - 1, -1, -1):
            if values[i] == "":
                return values[i + 1:]
        return values

    def has(self, key: str) -> bool:
        return bool(self._entries(canonical_key(key)))

    def keys(self) -> List[str]:
        seen = {}  # type: Dict[str, None]
        for line in self._lines:
            if line.kind == ENTRY and line.key is not None and line.key not in seen:
                seen[line.key] = None
        return list(seen)

    def as_dict(self) -> Dict[str, Union[str, List[str]]]:
        """Canonical key -> last value (single-valued) or list of values (multi-valued)."""
        out = {}  # type: Dict[str, Union[str, List[str]]]
        for key in self.keys():
            values = self.get(key)
            out[key] = values if is_multi_valued(key) else values[-1]
        return out

    def net_indices(self) -> List[int]:
        found = set()
        for line in self._lines:
            if line.kind == ENTRY and line.key is not None:
                idx = net_index(line.key)
                if idx is not None:
                    found.add(idx)
        return sorted(found)

    def has_legacy(self) -> bool:
        return any(line.kind == ENTRY and is_legacy_key(line.raw_key or "") for line in self._lines)

    # --------------------------------------------------------------- write
    def _append_pos(self, key: str) -> int:
        """Where a new line of ``key`` goes: after its interface group, else at the end.

        ``lxc.net.N.type`` opens its group instead: LXC resets an interface's other settings
        (its link, for one) when it reads the type, so the type must come first.
        """
        idx = net_index(key)
        if idx is not None:
            group = [i for i, line in enumerate(self._lines)
                     if line.kind == ENTRY and line.key is not None and net_index(line.key) == idx]
            if group:
                return group[0] if key.endswith(".type") else group[-1] + 1
        return len(self._lines)

    def _insert(self, pos: int, new: List[ConfigLine]) -> None:
        if not new:
            return
        if pos > 0 and self._lines[pos - 1].eol == "":
            self._lines[pos - 1].eol = self._eol
        self._lines[pos:pos] = new

    def _delete(self, indices: Iterable[int]) -> None:
        drop = set(indices)
        self._lines = [line for i, line in enumerate(self._lines) if i not in drop]

    def set(self, key: str, value: ValueArg) -> bool:
        """Make ``key`` have exactly ``value``; return whether anything changed.

        Single-valued: the first existing line is rewritten in place (as
        ``key = value``, current key name), further lines of the key are
        removed; a missing key is appended (after its ``lxc.net.<N>`` group
        for interface keys, else at the end).
        Multi-valued: ``value`` is the whole ordered list (a string means a
        one-item list, an empty list removes the key); the new lines take the
        place of the first existing line.
        """
        canon = validate_key(key)
        idxs = self._entries(canon)
        if is_multi_valued(canon):
            values = _values(canon, value)
            if [self._lines[i].value for i in idxs] == values:
                return False
            if idxs:
                pos, eol = idxs[0], self._lines[idxs[0]].eol or self._eol
            else:
                pos, eol = self._append_pos(canon), self._eol
            new = [ConfigLine.entry(canon, v, eol) for v in values]
            self._delete(idxs)
            self._insert(pos, new)
            return True
        val = _scalar(canon, value)
        if not idxs:
            self._insert(self._append_pos(canon), [ConfigLine.entry(canon, val, self._eol)])
            return True
        first = idxs[0]
        if len(idxs) == 1 and self._lines[first].value == val:
            return False
        self._lines[first] = ConfigLine.entry(canon, val, self._lines[first].eol)
        self._delete(idxs[1:])
        return True

    def add_value(self, key: str, value: ValueArg) -> bool:
        """Multi-valued key: ensure ``value`` is present (appended after the key's last line)."""
        canon = validate_key(key)
        if not is_multi_valued(canon):
            raise ConfigError("LXC config key '%s' is single-valued; use set()" % canon, key=key)
        val = _scalar(canon, value)
        idxs = self._entries(canon)
        if any(self._lines[i].value == val for i in idxs):
            return False
        pos = idxs[-1] + 1 if idxs else self._append_pos(canon)
        self._insert(pos, [ConfigLine.entry(canon, val, self._eol)])
        return True

    def remove_value(self, key: str, value: ValueArg) -> bool:
        """Remove every line of ``key`` whose value is ``value``."""
        canon = validate_key(key)
        val = _scalar(canon, value)
        idxs = [i for i in self._entries(canon) if self._lines[i].value == val]
        self._delete(idxs)
        return bool(idxs)

    def remove(self, key: str) -> bool:
        """Remove every line of ``key`` (all spellings).

        An invalid key is accepted when the file has lines of it (to clean
        up), otherwise its ConfigError is raised.
        """
        try:
            canon = validate_key(key)
        except ConfigError:
            canon = canonical_key(key) if isinstance(key, str) else ""
            if not canon or not self._entries(canon):
                raise
        idxs = self._entries(canon)
        self._delete(idxs)
        return bool(idxs)

    def remove_prefix(self, prefix: str) -> bool:
        """Remove every entry whose canonical key starts with ``prefix`` (e.g. ``lxc.net.1.``)."""
        if not isinstance(prefix, str) or not prefix.startswith("lxc.") or any(c.isspace() for c in prefix):
            raise ConfigError("bad LXC config key prefix %r" % (prefix,), key=str(prefix))
        canon = prefix
        if prefix.startswith("lxc.network"):
            canon = "lxc.net" + prefix[len("lxc.network"):]
        idxs = [i for i, line in enumerate(self._lines)
                if line.kind == ENTRY and line.key is not None and line.key.startswith(canon)]
        self._delete(idxs)
        return bool(idxs)

    def modernize(self) -> bool:
        """Rewrite lines with legacy keys in their current form; True if any.

        Lines of keys removed in LXC 3.0 (lxc.pivotdir, lxc.kmsg,
        lxc.rootfs.backend) are dropped; a non-``dir`` lxc.rootfs.backend
        becomes the ``<backend>:`` prefix of lxc.rootfs.path, as
        lxc-update-config does.
        """
        backend = None  # type: Optional[str]
        for line in self._lines:
            if line.kind == ENTRY and line.raw_key == "lxc.rootfs.backend":
                backend = line.value
        changed = False
        out = []  # type: List[ConfigLine]
        for line in self._lines:
            rkey = line.raw_key or ""
            if line.kind != ENTRY or not is_legacy_key(rkey):
                out.append(line)
                continue
            changed = True
            if rkey in OBSOLETE_KEYS:
                continue
            value = line.value or ""
            if rkey == "lxc.rootfs" and backend and backend != "dir" and value \
                    and not value.startswith(backend + ":"):
                value = "%s:%s" % (backend, value)
            out.append(ConfigLine.entry(line.key or canonical_key(rkey), value, line.eol))
        if changed:
            self._lines = out
        return changed
