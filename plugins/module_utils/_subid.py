# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Subordinate id files (``/etc/subuid``, ``/etc/subgid``): parsing and rendering.

A line is ``owner:start:count``; ``owner`` is a user name or a numeric uid, as written. Every other
line (comments, blank lines, lines that do not parse) is kept verbatim, as shadow's tools keep it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import time
from typing import NamedTuple

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic
from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import LockTimeout, fcntl_lock

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)\Z")


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


_SHADOW_NUMBER_RE = re.compile(r"^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")


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


# =============================================================================================
# The module: validation, allocation, planning (pure), then locking and writing.
# =============================================================================================

PWD_LOCK = "/etc/.pwd.lock"
LOGIN_DEFS = "/etc/login.defs"
#: Ids are 32-bit; (uid_t) -1 is "no id", so the last usable id is 2**32 - 2.
ID_LAST = 2 ** 32 - 2
#: Never below the 16-bit id range: old tools and filesystems map it as the host's own ids.
ID_FLOOR = 65536
KINDS = ("subuid", "subgid")
DEFAULT_LIMITS = {"UID_MAX": 60000, "GID_MAX": 60000, "SUB_UID_MAX": 600100000, "SUB_GID_MAX": 600100000}


class SubidError(Exception):
    """Bad input or a state that forbids the change. The message starts with the option's name."""


# --- login.defs -------------------------------------------------------------------------------

def parse_login_defs(text: str) -> dict:
    """The id limits of login.defs (UID_MAX, GID_MAX, SUB_UID_MAX, SUB_GID_MAX), defaults for missing ones."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in DEFAULT_LIMITS:
            value = _shadow_number(words[1])
            if value is not None:
                found[words[0]] = value
    limits = dict(DEFAULT_LIMITS)
    limits.update(found)
    return limits


def read_login_defs(path: str = LOGIN_DEFS) -> dict:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_login_defs(handle.read())
    except FileNotFoundError:
        return dict(DEFAULT_LIMITS)


def bounds(limits: dict) -> dict:
    """kind -> (lowest id a range may use, highest id a range may use), with where each comes from."""
    result = {}
    for kind, max_key, sub_key in (("subuid", "UID_MAX", "SUB_UID_MAX"), ("subgid", "GID_MAX", "SUB_GID_MAX")):
        low = max(ID_FLOOR, limits[max_key] + 1)
        why_low = ("%s + 1 from %s" % (max_key, LOGIN_DEFS)) if low > ID_FLOOR else "the 16-bit id range"
        result[kind] = {"low": low, "high": min(limits[sub_key], ID_LAST), "why_low": why_low, "high_key": sub_key}
    return result


# --- validation -------------------------------------------------------------------------------

def validate_params(params: dict, getpwnam=pwd.getpwnam, getpwuid=pwd.getpwuid) -> dict:
    """Checked and normalised options; SubidError names the option."""
    name = params["name"]
    if name is None or name == "":
        raise SubidError("name must not be empty")
    if ":" in name or "\n" in name or any(ch.isspace() for ch in name) or "\0" in name:
        raise SubidError("name %r is not a valid user name: no ':', whitespace or newline" % (name,))
    if name.isdigit():
        uid = int(name)
        if uid > ID_LAST:
            raise SubidError("name %s is not a valid uid: at most %d" % (name, ID_LAST))
        try:
            user = getpwuid(uid).pw_name
        except KeyError:
            user = name
    else:
        try:
            entry = getpwnam(name)
        except KeyError:
            raise SubidError("name: user %s does not exist (not in the passwd database); give an existing user or a numeric uid" % name)
        uid, user = entry.pw_uid, name
    count = params["count"]
    if count is None or count < 1:
        raise SubidError("count must be 1 or more, not %s" % (count,))
    start = params.get("start")
    if start is not None and start < 0:
        raise SubidError("start must be 0 or more, not %s" % start)
    if start is not None and start + count - 1 > ID_LAST:
        raise SubidError("start %d with count %d ends after the last id %d" % (start, count, ID_LAST))
    base = params["base"]
    if base is None or base < 0:
        raise SubidError("base must be 0 or more, not %s" % (base,))
    if base + count - 1 > ID_LAST:
        raise SubidError("base %d with count %d ends after the last id %d" % (base, count, ID_LAST))
    timeout = params["lock_timeout"]
    if timeout is None or timeout < 0:
        raise SubidError("lock_timeout must be 0 or more seconds, not %s" % (timeout,))
    paths = {"subuid": params["subuid_path"], "subgid": params["subgid_path"]}
    for kind in KINDS:
        if not paths[kind]:
            raise SubidError("%s_path must not be empty" % kind)
        if paths[kind].endswith("/") or os.path.basename(paths[kind]) in (".", ".."):
            raise SubidError("%s_path %s is not a file name" % (kind, paths[kind]))
    if paths["subuid"] == paths["subgid"] and params["files"] == "both":
        raise SubidError("subgid_path must differ from subuid_path (both are %s)" % paths["subuid"])
    files = list(KINDS) if params["files"] == "both" else [params["files"]]
    return dict(name=name, user=user, uid=uid, count=count, start=start, base=base, files=files,
                state=params["state"], exclusive=bool(params["exclusive"]), paths=paths, lock_timeout=float(timeout))


# --- allocation and the plan (pure) -----------------------------------------------------------

def _end(start: int, count: int) -> int:
    return start + count  # exclusive


def _overlaps(a_start, a_count, b_start, b_count) -> bool:
    return a_count > 0 and b_count > 0 and a_start < _end(b_start, b_count) and b_start < _end(a_start, a_count)


def first_free(taken: list, low: int, high: int, count: int):
    """Lowest start >= low so that [start, start+count) avoids every (start, count) in taken and ends <= high."""
    candidate = low
    for t_start, t_count in sorted(r for r in taken if r[1] > 0):
        if _end(t_start, t_count) <= candidate:
            continue
        if t_start >= candidate + count:
            break
        candidate = _end(t_start, t_count)
    if candidate + count - 1 > high:
        return None
    return candidate


def _is_own(owner: str, desired: dict) -> bool:
    return owner in (desired["name"], desired["user"], str(desired["uid"]))


class _FilePlan:
    """One file: its lines, the user's entries, what stays and what goes."""

    def __init__(self, kind: str, path: str, text, desired: dict):
        self.kind, self.path, self.text = kind, path, text
        self.lines = parse_subid(text or "")
        self.own = [i for i, item in enumerate(self.lines) if isinstance(item, SubidEntry) and _is_own(item.owner, desired)]
        self.remove = set()
        self.add = None

    def satisfying(self, desired: dict, use_start: bool = True):
        for i in self.own:
            entry = self.lines[i]
            if entry.count >= desired["count"] and (not use_start or desired["start"] is None or entry.start == desired["start"]):
                return i
        return None

    def taken(self) -> list:
        """(start, count) of every range shadow sees in the file, except own entries that the plan removes."""
        result = []
        for i, item in enumerate(self.lines):
            if i in self.remove:
                continue
            seen = shadow_range(item)
            if seen is not None:
                result.append((seen[1], seen[2]))
        return result

    def conflicts(self, start: int, count: int, desired: dict) -> list:
        """Lines of other owners (or lines kept verbatim) that overlap [start, start+count)."""
        result = []
        for i, item in enumerate(self.lines):
            seen = shadow_range(item)
            if seen is None or (isinstance(item, SubidEntry) and _is_own(item.owner, desired)):
                continue
            if _overlaps(start, count, seen[1], seen[2]):
                result.append(item if isinstance(item, str) else format_entry(item))
        return result

    def after_lines(self) -> list:
        lines = [item for i, item in enumerate(self.lines) if i not in self.remove]
        if self.add is not None:
            lines.append(self.add)
        return lines


def plan(desired: dict, texts: dict, limits: dict) -> dict:
    """What the task does to the files.

    ``texts``: kind -> the file's text (None when missing) for every kind in desired["files"].
    Returns kind -> {"path", "before", "after", "ranges"} and "idmap" (from the files planned, and
    ``other_ranges`` for a kind that is not managed). Raises SubidError.
    """
    limit = bounds(limits)
    files = {kind: _FilePlan(kind, desired["paths"][kind], texts[kind], desired) for kind in desired["files"]}
    if desired["state"] == "absent":
        for fp in files.values():
            fp.remove = {i for i in fp.own if desired["start"] is None or fp.lines[i].start == desired["start"]}
    elif desired["start"] is not None:
        _plan_explicit(desired, files, limit)
    else:
        _plan_allocate(desired, files, limit)
    result = {}
    for kind, fp in files.items():
        after = render_subid(fp.after_lines())
        after_text = None if fp.text is None and after == "" else after
        result[kind] = {
            "path": fp.path,
            "before": fp.text,
            "after": after_text,
            "changed": after_text != fp.text,
            "ranges": _own_ranges(fp.after_lines(), desired),
        }
    return result


def _own_ranges(lines: list, desired: dict) -> list:
    return [(item.start, item.count) for item in lines if isinstance(item, SubidEntry) and _is_own(item.owner, desired)]


def _check_explicit_bounds(desired: dict, kind: str, limit: dict) -> None:
    start, count, lim = desired["start"], desired["count"], limit[kind]
    if start < lim["low"]:
        raise SubidError("start %d is below %d (%s): ids there belong to the host's own users and groups of %s"
                         % (start, lim["low"], lim["why_low"], kind))
    if start + count - 1 > lim["high"]:
        raise SubidError("start %d with count %d ends at %d, above %s %d from %s"
                         % (start, count, start + count - 1, lim["high_key"], lim["high"], LOGIN_DEFS))


def _plan_explicit(desired: dict, files: dict, limit: dict) -> None:
    start, count = desired["start"], desired["count"]
    for kind, fp in files.items():
        _check_explicit_bounds(desired, kind, limit)
    for kind, fp in files.items():
        keep = fp.satisfying(desired)
        if keep is None:
            conflicts = fp.conflicts(start, count, desired)
            if conflicts:
                raise SubidError("start %d (count %d) overlaps another entry of %s: %s"
                                 % (start, count, fp.path, "; ".join(repr(line) for line in conflicts)))
            # Own entries that overlap the new range are replaced by it.
            fp.remove = {i for i in fp.own if _overlaps(start, count, fp.lines[i].start, fp.lines[i].count)}
            fp.add = SubidEntry(desired["name"], start, count)
        if desired["exclusive"]:
            fp.remove = set(i for i in fp.own if i != keep)


def _plan_allocate(desired: dict, files: dict, limit: dict) -> None:
    count = desired["count"]
    keep = {kind: fp.satisfying(desired) for kind, fp in files.items()}
    for kind, fp in files.items():
        if desired["exclusive"]:
            fp.remove = set(i for i in fp.own if i != keep[kind])
    missing = [kind for kind in files if keep[kind] is None]
    if not missing:
        return

    def low(kind):
        return max(desired["base"], limit[kind]["low"])

    def fits(kind, start):
        fp = files[kind]
        return (low(kind) <= start and start + count - 1 <= limit[kind]["high"]
                and not any(_overlaps(start, count, s, c) for s, c in fp.taken()))

    chosen = {}
    if len(missing) == 1 and len(files) == 2:
        # One file has a range already: the same start in the other keeps the maps symmetric.
        kind = missing[0]
        other = [k for k in files if k != kind][0]
        other_start = files[other].lines[keep[other]].start
        if fits(kind, other_start):
            chosen[kind] = other_start
    elif len(missing) == 2:
        lo = max(low(kind) for kind in missing)
        hi = min(limit[kind]["high"] for kind in missing)
        start = first_free(files["subuid"].taken() + files["subgid"].taken(), lo, hi, count)
        if start is not None:
            chosen = {kind: start for kind in missing}
    for kind in missing:
        if kind not in chosen:
            start = first_free(files[kind].taken(), low(kind), limit[kind]["high"], count)
            if start is None:
                raise SubidError("base: no free range of %d ids in %s between %d and %s %d"
                                 % (count, files[kind].path, low(kind), limit[kind]["high_key"], limit[kind]["high"]))
            chosen[kind] = start
    for kind, start in chosen.items():
        files[kind].add = SubidEntry(desired["name"], start, count)


def idmap_for(desired: dict, ranges: dict) -> list:
    """lxc.idmap lines from the first uid and gid range that satisfy the task ([] when one is missing)."""
    picked = {}
    for kind in KINDS:
        for start, count in ranges.get(kind) or []:
            if count >= desired["count"] and (desired["state"] == "absent" or desired["start"] is None or start == desired["start"]):
                picked[kind] = (start, desired["count"])
                break
    if len(picked) != 2:
        return []
    return idmap_lines(picked["subuid"], picked["subgid"])


# --- locks ------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def link_lock(path: str, deadline: float):
    """shadow's commonio lock: our pid in ``<path>.<pid>``, hard-linked to ``<path>.lock``.

    A lock whose pid is dead is stale and removed; a live one is waited for until ``deadline``
    (time.monotonic()).
    """
    lock = path + ".lock"
    pid = os.getpid()
    tmp = "%s.%d" % (path, pid)
    delay = 0.01
    while True:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, lock)
            got = True
        except FileExistsError:
            got = False
        finally:
            os.unlink(tmp)
        if got:
            break
        try:
            with open(lock, encoding="utf-8", errors="replace") as handle:
                content = handle.read().strip()
        except FileNotFoundError:
            continue  # released meanwhile: try again at once
        holder = int(content) if content.isdigit() else None
        if holder is not None and holder > 0 and (holder == pid or not _pid_alive(holder)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)  # stale: its process is gone
            continue
        if time.monotonic() >= deadline:
            if holder is None:
                raise LockTimeout("%s holds no valid pid (%r); remove it if no tool is editing %s" % (lock, content[:40], path))
            raise LockTimeout("%s is held by process %d (waited for it)" % (lock, holder))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


@contextlib.contextmanager
def shadow_locks(paths: list, timeout: float, pwd_lock: str = PWD_LOCK):
    """lckpwdf's fcntl lock on /etc/.pwd.lock, then the link lock of each file, released in reverse."""
    deadline = time.monotonic() + timeout
    with fcntl_lock(pwd_lock, timeout):
        with contextlib.ExitStack() as stack:
            for path in paths:
                stack.enter_context(link_lock(path, deadline))
            yield


# --- the module -------------------------------------------------------------------------------

def argument_spec() -> dict:
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        count=dict(type="int", default=65536),
        start=dict(type="int"),
        base=dict(type="int", default=100000),
        files=dict(type="str", choices=["both", "subuid", "subgid"], default="both"),
        exclusive=dict(type="bool", default=False),
        subuid_path=dict(type="path", default="/etc/subuid"),
        subgid_path=dict(type="path", default="/etc/subgid"),
        lock_timeout=dict(type="float", default=30.0),
    )


def read_text(path: str, kind: str = "subuid"):
    """The file's text, None when it is missing. SubidError when it is not UTF-8 text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubidError("%s_path: %s is not UTF-8 text (%s); not touching it" % (kind, path, exc))


def write_backup(path: str, text: str) -> None:
    """``<path>-`` with the old text, mode, owner and times of ``path``, as shadow keeps it."""
    backup = path + "-"
    st = os.stat(path)
    tmp = "%s.%d.tmp" % (backup, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, text.encode("utf-8"))
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, st.st_mode & 0o7777)
        finally:
            os.close(fd)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, backup)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        desired = validate_params(module.params)
    except SubidError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**run(module, desired))


def run(module, desired: dict) -> dict:
    limits = read_login_defs()
    managed = desired["files"]
    paths = [desired["paths"][kind] for kind in managed]
    for path in paths:
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            kind = [k for k in managed if desired["paths"][k] == path][0]
            module.fail_json(msg="%s_path: folder %s does not exist" % (kind, folder))
    # The locks are taken in check mode too: the plan is made from the state a real run would see
    # at that moment, and both files are read as one consistent snapshot (usermod changes them in turn).
    # Only a check run of a user who may not take the locks (not root) reads without them, with a warning.

    def locked_work():
        with shadow_locks(paths, desired["lock_timeout"]):
            texts = {kind: read_text(desired["paths"][kind], kind) for kind in managed}
            planned = plan(desired, texts, limits)
            if not module.check_mode:
                for kind in managed:
                    item = planned[kind]
                    if not item["changed"]:
                        continue
                    if item["before"] is not None:
                        write_backup(item["path"], item["before"])
                    write_atomic(module, item["path"], item["after"] or "", mode=0o644)
            return planned

    try:
        try:
            result = locked_work()
        except PermissionError as exc:
            if not module.check_mode:
                raise
            module.warn("check mode without the locks (%s: %s): the prediction may differ from a real run if the files "
                        "change meanwhile" % (exc.filename, os.strerror(exc.errno)))
            result = plan(desired, {kind: read_text(desired["paths"][kind], kind) for kind in managed}, limits)
    except SubidError as exc:
        module.fail_json(msg=str(exc))
    except LockTimeout as exc:
        module.fail_json(msg="lock_timeout: %s" % exc)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (getattr(exc, "filename", None) or "subid", os.strerror(exc.errno) if exc.errno else exc))

    ranges = {}
    for kind in KINDS:
        if kind in managed:
            ranges[kind] = result[kind]["ranges"]
        else:
            # Not managed by this task: what the file holds, read without the lock.
            try:
                text = read_text(desired["paths"][kind], kind)
            except (SubidError, OSError):
                text = None
            ranges[kind] = _own_ranges(parse_subid(text or ""), desired)
    output = {
        "changed": any(result[kind]["changed"] for kind in managed),
        "subuid": [{"start": s, "count": c} for s, c in ranges["subuid"]],
        "subgid": [{"start": s, "count": c} for s, c in ranges["subgid"]],
        "idmap": idmap_for(desired, ranges),
    }
    if module._diff:
        output["diff"] = [
            {"before_header": result[kind]["path"], "after_header": result[kind]["path"],
             "before": result[kind]["before"] or "", "after": result[kind]["after"] or ""}
            for kind in managed
        ]
    return output
