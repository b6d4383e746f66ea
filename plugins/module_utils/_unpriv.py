# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Unprivileged containers: id maps, who runs LXC, and why an unprivileged start fails.

Pure where it can be (id maps, ACL evaluation); the checks read files (``/etc/subuid``, the PATH's
``newuidmap``, ``lxc-usernet``, directory modes, ``/proc/self/cgroup``) but never change anything.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import struct
from typing import NamedTuple


SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
USERNET = "/etc/lxc/lxc-usernet"
#: Ids a container of a full distribution needs (up to nobody/nogroup = 65534).
FULL_RANGE = 65536


class IdmapError(Exception):
    """Bad or unusable id map; the message starts with the option's name."""


class IdmapEntry(NamedTuple):
    kind: str  # "u" or "g"
    container: int
    host: int
    count: int

    def line(self) -> str:
        return "%s %d %d %d" % (self.kind, self.container, self.host, self.count)


class Identity(NamedTuple):
    """Who the module runs as: LXC runs as this user too."""

    uid: int
    gid: int
    name: str
    home: str
    groups: tuple

    @classmethod
    def current(cls) -> "Identity":
        uid = os.geteuid()
        try:
            entry = pwd.getpwuid(uid)
            name, home, gid = entry.pw_name, entry.pw_dir, entry.pw_gid
        except KeyError:
            name, home, gid = str(uid), os.environ.get("HOME", "/"), os.getegid()
        names = []
        for g in sorted(set(os.getgroups()) | {gid}):
            try:
                names.append(grp.getgrgid(g).gr_name)
            except KeyError:
                continue
        return cls(uid, gid, name, home, tuple(names))

    @property
    def is_root(self) -> bool:
        return self.uid == 0


# --------------------------------------------------------------------------------------------
# id maps
# --------------------------------------------------------------------------------------------


def parse_idmap(values, option: str = "idmap") -> list:
    """``lxc.idmap`` values ("u 0 100000 65536") as IdmapEntry; IdmapError names the option."""
    entries = []
    for value in values:
        words = str(value).split()
        if len(words) != 4 or words[0] not in ("u", "g") or not all(w.isdigit() for w in words[1:]):
            raise IdmapError("%s: %r is not 'u|g CONTAINER_ID HOST_ID COUNT'" % (option, value))
        entry = IdmapEntry(words[0], int(words[1]), int(words[2]), int(words[3]))
        if entry.count < 1:
            raise IdmapError("%s: %r maps no ids (COUNT must be 1 or more)" % (option, value))
        if entry.container + entry.count > 2 ** 32 - 1 or entry.host + entry.count > 2 ** 32 - 1:
            raise IdmapError("%s: %r goes past the largest id" % (option, value))
        entries.append(entry)
    for kind, what in (("u", "uid"), ("g", "gid")):
        mine = [e for e in entries if e.kind == kind]
        if not any(e.container == 0 for e in mine):
            raise IdmapError("%s: no '%s' line maps container %s 0 (root of the container)" % (option, kind, what))
        for side in ("container", "host"):
            spans = sorted((getattr(e, side), getattr(e, side) + e.count, e) for e in mine)
            for (s1, e1, a), (s2, _e2, b) in zip(spans, spans[1:]):
                if s2 < e1:
                    raise IdmapError("%s: %r and %r overlap on the %s side" % (option, a.line(), b.line(), side))
    return entries


def host_root(entries) -> tuple:
    """Host uid and gid of the container's root."""
    uid = next(e.host for e in entries if e.kind == "u" and e.container == 0)
    gid = next(e.host for e in entries if e.kind == "g" and e.container == 0)
    return uid, gid


def _pick(ranges):
    """The range a derived map uses: the first with a full 65536 ids, else the largest."""
    full = [r for r in ranges if r[1] >= FULL_RANGE]
    start, count = full[0] if full else max(ranges, key=lambda r: r[1])
    return start, min(count, FULL_RANGE)


def derive_idmap(who: Identity, subuid: str = SUBUID, subgid: str = SUBGID) -> list:
    """The ``lxc.idmap`` values for ``who`` from its subordinate ranges, or IdmapError."""
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import read_ranges  # only when a map is made

    uids = read_ranges(subuid, who.name, who.uid)
    gids = read_ranges(subgid, who.name, who.uid)
    missing = [what for what, ranges, path in (("uid", uids, subuid), ("gid", gids, subgid)) if not ranges]
    if missing:
        raise IdmapError(
            "unprivileged: %s has no subordinate %s range in %s; give it one with lxcfleet.lxc.subid "
            "(name: %s), set idmap explicitly%s"
            % (who.name, " or ".join(missing), " and ".join(p for w, p in (("uid", subuid), ("gid", subgid)) if w in missing),
               who.name, ", or set unprivileged: false for a privileged container" if who.is_root else "")
        )
    ustart, ucount = _pick(uids)
    gstart, gcount = _pick(gids)
    return ["u 0 %d %d" % (ustart, ucount), "g 0 %d %d" % (gstart, gcount)]


def _span(ranges) -> str:
    return ", ".join("%d-%d" % (s, s + c - 1) for s, c in ranges) or "none"


def idmap_problems(entries, who: Identity, option: str = "idmap", subuid: str = SUBUID, subgid: str = SUBGID) -> list:
    """Why newuidmap/newgidmap would refuse this map for ``who``.

    LXC writes maps through newuidmap/newgidmap whenever they are on PATH, for root too (so that root
    reserves its ranges in /etc/subuid where shadow hands out ranges); only without them does root
    write any map directly.
    """
    if who.is_root and not (_which("newuidmap") and _which("newgidmap")):
        return []
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import read_ranges  # only when a map is checked

    problems = []
    for kind, what, path, own in (("u", "uid", subuid, who.uid), ("g", "gid", subgid, who.gid)):
        ranges = read_ranges(path, who.name, who.uid)
        for entry in (e for e in entries if e.kind == kind):
            if entry.count == 1 and entry.host == own:
                continue  # newuidmap/newgidmap let a user map its own id
            inside = any(s <= entry.host and entry.host + entry.count <= s + c for s, c in ranges)
            if inside:
                continue
            if not ranges:
                problems.append("%s: %s has no subordinate %s range in %s (needed for %r)"
                                % (option, who.name, what, path, entry.line()))
            else:
                problems.append("%s: %r is outside the subordinate %s ranges of %s in %s (%s)"
                                % (option, entry.line(), what, who.name, path, _span(ranges)))
    return problems


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def _which(tool: str):
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", tool)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def newidmap_problems() -> list:
    """newuidmap/newgidmap as LXC finds them (first on PATH): present and setuid root, or with file
    capabilities."""
    problems = []
    for tool in ("newuidmap", "newgidmap"):
        path = _which(tool)
        if path is None:
            problems.append("%s is not on PATH (%s): install the uidmap package" % (tool, os.environ.get("PATH", "")))
            continue
        st = os.stat(path)
        if st.st_uid == 0 and st.st_mode & stat.S_ISUID:
            continue
        try:
            os.getxattr(path, "security.capability")
            continue  # distributions that ship it with file capabilities instead of setuid
        except OSError:
            pass
        problems.append(
            "%s is not setuid root (mode %04o, owner uid %d), so the kernel refuses the id map it writes: "
            "chmod u+s %s (or reinstall uidmap)" % (path, stat.S_IMODE(st.st_mode), st.st_uid, path)
        )
    return problems


_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def _acl_entries(path: str):
    """POSIX access ACL entries of path as (tag, perm, id), or None without an extended ACL."""
    try:
        raw = os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return None
    if len(raw) < 4 or (len(raw) - 4) % 8:
        return None
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def can_traverse(st, acl, uid: int, gids) -> bool:
    """May ``uid`` (in groups ``gids``) search a directory with stat ``st`` and ACL ``acl``?"""
    mode = st.st_mode
    if uid == 0:
        return True  # the host's root (a privileged container, or root-owned maps to 0)
    if st.st_uid == uid:
        return bool(mode & stat.S_IXUSR)
    if acl is None:
        if st.st_gid in gids:
            return bool(mode & stat.S_IXGRP)
        return bool(mode & stat.S_IXOTH)
    mask = next((perm for tag, perm, _id in acl if tag == _ACL_MASK), 7)
    for tag, perm, ident in acl:
        if tag == _ACL_USER and ident == uid:
            return bool(perm & mask & 1)
    group_perms = [perm for tag, perm, ident in acl
                   if (tag == _ACL_GROUP_OBJ and st.st_gid in gids) or (tag == _ACL_GROUP and ident in gids)]
    if group_perms:
        return any(perm & mask & 1 for perm in group_perms)
    return bool(next((perm for tag, perm, _id in acl if tag == _ACL_OTHER), 0) & 1)


def traversal_blocker(path: str, uid: int, gid: int):
    """The first directory on the way to ``path`` that ``uid``/``gid`` cannot search, as a message,
    or None. ``path`` itself counts when it is a directory."""
    parts = os.path.abspath(path).split(os.sep)
    current = os.sep
    for part in [""] + parts[1:]:
        current = os.path.join(current, part) if part else current
        try:
            st = os.stat(current)
        except OSError:
            return None  # not there (yet): nothing to say about it
        if not stat.S_ISDIR(st.st_mode):
            return None
        if not can_traverse(st, _acl_entries(current), uid, {gid}):
            return "%s (mode %04o, owner %d:%d) cannot be searched by the container's root (host uid %d)" % (
                current, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, uid)
    return None


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_problem(mask=None):
    mask = current_umask() if mask is None else mask
    if mask & 0o001:
        return ("the umask of this run is %04o: directories created under it (by LXC, by this module's "
                "user, by other programs) cannot be searched by other users, including the container's "
                "root; use umask 0022 for this user, or chmod o+x the directories named here" % mask)
    return None


def usernet_problems(who: Identity, nics, path: str = USERNET) -> list:
    """Bridges of the container's veth interfaces for which ``who`` has no lxc-usernet allowance."""
    if who.is_root:
        return []
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._usernet import read_allowance  # a user's start only

    problems = []
    for nic in nics:
        if nic.get("type") != "veth" or not nic.get("link"):
            continue
        allowed = read_allowance(path, who.name, list(who.groups), "veth", nic["link"])
        if allowed <= 0:
            problems.append(
                "%s has no lxc-usernet allowance for veth on bridge %s in %s, so lxc-user-nic refuses the "
                "interface ('Quota reached'): add one with lxcfleet.lxc.usernet (name: %s, bridge: %s, count: N)"
                % (who.name, nic["link"], path, who.name, nic["link"])
            )
    return problems


def use_own_runtime_dir(who: Identity, environ=None) -> None:
    """Point XDG_RUNTIME_DIR at the user's own /run/user/UID when the inherited one belongs to another
    user (su and become keep root's /run/user/0, where LXC would put its sockets and fail), or drop it
    when the user has no runtime folder of its own. Nothing changes for root."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if who.is_root or not runtime:
        return
    try:
        owner = os.stat(runtime).st_uid
    except OSError:
        owner = None
    if owner == who.uid:
        return
    own = "/run/user/%d" % who.uid
    try:
        st = os.stat(own)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == who.uid:
        environ["XDG_RUNTIME_DIR"] = own
    else:
        del environ["XDG_RUNTIME_DIR"]


def cgroup_delegation(who: Identity, root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup",
                      run_user: str = "/run/user"):
    """How lxc-start should run for ``who`` on this host's cgroups.

    Returns ``(wrapper, env, problem)``: ``wrapper`` is an argv prefix (``systemd-run --user --scope
    -p Delegate=yes --``) when the container must start inside a delegated scope, ``env`` the
    variables that reach the user's systemd, ``problem`` a message when starting cannot work.
    Only a non-root user on a pure cgroup2 host whose current cgroup is not writable needs a scope.
    """
    if who.is_root or not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return [], {}, None  # root, or cgroup v1/hybrid: LXC manages the cgroups it can
    current = None
    try:
        with open(proc_cgroup, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("0::"):
                    current = line[3:].strip()
    except OSError:
        return [], {}, None
    if current is None:
        return [], {}, None
    folder = os.path.join(root, current.lstrip("/"))
    if os.access(folder, os.W_OK) and os.access(os.path.join(folder, "cgroup.procs"), os.W_OK):
        return [], {}, None  # already in a delegated cgroup (e.g. a user session scope with Delegate)
    runtime = os.path.join(run_user, str(who.uid))
    bus = os.path.join(runtime, "bus")  # with dbus-user-session
    private = os.path.join(runtime, "systemd", "private")  # systemd --user's own socket, always there
    systemd_run = _which("systemd-run")
    if systemd_run and (os.path.exists(bus) or os.path.exists(private)):
        env = {"XDG_RUNTIME_DIR": runtime}
        if os.path.exists(bus):
            env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=%s" % bus
        return [systemd_run, "--user", "--scope", "--quiet", "-p", "Delegate=yes", "--"], env, None
    if not systemd_run:
        missing = "systemd-run is not installed"
    else:
        missing = "no systemd user instance for %s (neither %s nor %s exists)" % (who.name, private, bus)
    return [], {}, (
        "this cgroup2 host does not delegate the cgroup %s to %s, so LXC would run the container without a "
        "cgroup of its own (no limits, no freezing), and it cannot be started in a delegated scope: %s. Enable "
        "lingering (loginctl enable-linger %s) so that %s has a systemd user instance, or run the task from a "
        "login session" % (current, who.name, missing, who.name, who.name)
    )


def diagnose(config: dict, who: Identity, rootfs: str, nics, lxc_reason: str = "") -> list:
    """Causes this module can detect for a failed unprivileged start (or create), most likely first."""
    causes = []
    try:
        entries = parse_idmap(config.get("lxc.idmap", []), option="lxc.idmap")
    except IdmapError as exc:
        return [str(exc)]
    causes.extend(idmap_problems(entries, who, option="lxc.idmap"))
    if not who.is_root:
        causes.extend(newidmap_problems())
        causes.extend(usernet_problems(who, nics))
    root_uid, root_gid = host_root(entries)
    blocker = traversal_blocker(rootfs, root_uid, root_gid)
    if blocker:
        causes.append(blocker)
        note = umask_problem()
        if note:
            causes.append(note)
    return causes
