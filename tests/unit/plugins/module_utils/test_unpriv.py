# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Id maps, ACL evaluation, cgroup delegation and the checks behind unprivileged diagnostics.

The real failures (LXC refusing a start) are provoked in the integration target ``unprivileged``;
here the logic runs on files made in a temporary folder.
"""

from __future__ import annotations

import os
import stat
import struct
from types import SimpleNamespace

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _unpriv
from ansible_collections.lxcfleet.lxc.plugins.module_utils._unpriv import (
    Identity,
    IdmapError,
    can_traverse,
    cgroup_delegation,
    derive_idmap,
    host_root,
    idmap_problems,
    parse_idmap,
    traversal_blocker,
    umask_problem,
    usernet_problems,
)

ALICE = Identity(1001, 1001, "alice", "/home/alice", ("alice", "lxcusers"))
ROOT = Identity(0, 0, "root", "/root", ("root",))


@pytest.fixture
def open_tmp():
    """A folder every user may search (pytest's own tmp_path sits below a 0700 folder)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="lxcfleet-unpriv-", dir="/tmp")
    os.chmod(folder, 0o755)
    try:
        yield __import__("pathlib").Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ids(tmp_path):
    subuid = tmp_path / "subuid"
    subgid = tmp_path / "subgid"
    subuid.write_text("# ranges\nbob:100000:65536\nalice:165536:65536\nalice:400000:1000\n")
    subgid.write_text("alice:165536:65536\n")
    return str(subuid), str(subgid)


# ------------------------------------------------------------------------------ parse_idmap


def test_parse_idmap_plain_and_passthrough():
    entries = parse_idmap(["u 0 100000 1000", "g 0 100000 1000", "u 1000 1000 1", "g 1000 1000 1",
                           "u 1001 101001 64535", "g 1001 101001 64535"])
    assert len(entries) == 6
    assert host_root(entries) == (100000, 100000)
    assert entries[2].line() == "u 1000 1000 1"


@pytest.mark.parametrize("values, needle", [
    (["x 0 100000 65536", "g 0 100000 65536"], "is not 'u|g CONTAINER_ID HOST_ID COUNT'"),
    (["u 0 100000", "g 0 100000 65536"], "is not 'u|g"),
    (["u 0 -1 5", "g 0 100000 65536"], "is not 'u|g"),
    (["u 0 100000 0", "g 0 100000 65536"], "maps no ids"),
    (["u 0 4294967290 100", "g 0 100000 65536"], "past the largest id"),
    (["g 0 100000 65536"], "no 'u' line maps container uid 0"),
    (["u 1 100000 65536", "g 0 100000 65536"], "no 'u' line maps container uid 0"),
    (["u 0 100000 65536"], "no 'g' line maps container gid 0"),
    (["u 0 100000 100", "u 50 300000 10", "g 0 100000 65536"], "overlap on the container side"),
    (["u 0 100000 100", "u 100 100050 10", "g 0 100000 65536"], "overlap on the host side"),
])
def test_parse_idmap_rejects(values, needle):
    with pytest.raises(IdmapError) as err:
        parse_idmap(values, option="idmap")
    assert str(err.value).startswith("idmap: ")
    assert needle in str(err.value)


# ------------------------------------------------------------------------------ ranges


def test_derive_idmap_takes_first_full_range(ids):
    subuid, subgid = ids
    assert derive_idmap(ALICE, subuid, subgid) == ["u 0 165536 65536", "g 0 165536 65536"]


def test_derive_idmap_small_range_uses_largest(tmp_path):
    subuid = tmp_path / "u"
    subgid = tmp_path / "g"
    subuid.write_text("alice:200000:500\nalice:300000:2000\n")
    subgid.write_text("1001:300000:70000\n")  # by uid
    assert derive_idmap(ALICE, str(subuid), str(subgid)) == ["u 0 300000 2000", "g 0 300000 65536"]


def test_derive_idmap_without_ranges_names_the_fix(tmp_path):
    subuid = tmp_path / "u"
    subuid.write_text("bob:100000:65536\n")
    with pytest.raises(IdmapError) as err:
        derive_idmap(ALICE, str(subuid), str(tmp_path / "missing"))
    msg = str(err.value)
    assert msg.startswith("unprivileged: alice has no subordinate uid or gid range")
    assert "lxcfleet.lxc.subid" in msg
    assert "unprivileged: false" not in msg  # only root may fall back to privileged
    with pytest.raises(IdmapError) as err:
        derive_idmap(ROOT, str(subuid), str(subuid))
    assert "set unprivileged: false" in str(err.value)


def test_idmap_problems(ids):
    subuid, subgid = ids
    inside = parse_idmap(["u 0 165536 65536", "g 0 165536 65536", "u 70000 400000 1000"])
    assert idmap_problems(inside, ALICE, subuid=subuid, subgid=subgid) == []
    own = parse_idmap(["u 0 165536 1000", "g 0 165536 1000", "u 1000 1001 1", "g 1000 1001 1"])
    assert idmap_problems(own, ALICE, subuid=subuid, subgid=subgid) == []
    outside = parse_idmap(["u 0 100000 65536", "g 0 165536 65537"])
    problems = idmap_problems(outside, ALICE, subuid=subuid, subgid=subgid)
    assert len(problems) == 2
    assert "'u 0 100000 65536' is outside the subordinate uid ranges of alice" in problems[0]
    assert "165536-231071, 400000-400999" in problems[0]
    assert "'g 0 165536 65537' is outside the subordinate gid ranges" in problems[1]
    nobody = Identity(1002, 1002, "carol", "/home/carol", ())
    problems = idmap_problems(inside, nobody, subuid=subuid, subgid=subgid)
    assert any("carol has no subordinate uid range" in p for p in problems)


def test_root_is_checked_only_when_newuidmap_is_on_path(ids, tmp_path, monkeypatch):
    subuid, subgid = ids
    entries = parse_idmap(["u 0 1000000 65536", "g 0 1000000 65536"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert idmap_problems(entries, ROOT, subuid=subuid, subgid=subgid) == []
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("newuidmap", "newgidmap"):
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    problems = idmap_problems(entries, ROOT, subuid=subuid, subgid=subgid)
    assert problems and "root has no subordinate uid range" in problems[0]


# ------------------------------------------------------------------------------ newuidmap


def test_newidmap_problems(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "newuidmap").write_text("#!/bin/sh\n")
    (bindir / "newuidmap").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    problems = _unpriv.newidmap_problems()
    assert len(problems) == 2
    assert "%s/newuidmap is not setuid root (mode 0755" % bindir in problems[0]
    assert problems[1].startswith("newgidmap is not on PATH")
    if os.path.exists("/usr/bin/newuidmap") and os.stat("/usr/bin/newuidmap").st_mode & stat.S_ISUID:
        monkeypatch.setenv("PATH", "/usr/bin")
        assert _unpriv.newidmap_problems() == []


# ------------------------------------------------------------------------------ traversal


def _st(mode, uid, gid):
    return SimpleNamespace(st_mode=stat.S_IFDIR | mode, st_uid=uid, st_gid=gid)


def _acl(*entries):
    return list(entries)


def test_can_traverse_by_mode():
    assert can_traverse(_st(0o755, 1001, 1001), None, 100000, {100000})
    assert not can_traverse(_st(0o750, 1001, 1001), None, 100000, {100000})
    assert can_traverse(_st(0o750, 1001, 100000), None, 100000, {100000})
    assert can_traverse(_st(0o700, 100000, 1001), None, 100000, {100000})
    assert not can_traverse(_st(0o070, 100000, 100000), None, 100000, {100000})  # owner bits decide
    assert can_traverse(_st(0o700, 1001, 1001), None, 0, {0})


def test_can_traverse_by_acl():
    # setfacl -m u:100000:x on a 0700 folder: mask rwx
    acl = _acl((0x01, 7, 0), (0x02, 1, 100000), (0x04, 0, 0), (0x10, 7, 0), (0x20, 0, 0))
    assert can_traverse(_st(0o770, 1001, 1001), acl, 100000, {100000})
    assert not can_traverse(_st(0o770, 1001, 1001), acl, 100001, {100001})
    masked = _acl((0x01, 7, 0), (0x02, 1, 100000), (0x04, 0, 0), (0x10, 6, 0), (0x20, 0, 0))
    assert not can_traverse(_st(0o760, 1001, 1001), masked, 100000, {100000})
    group = _acl((0x01, 7, 0), (0x04, 0, 0), (0x08, 1, 100000), (0x10, 1, 0), (0x20, 0, 0))
    assert can_traverse(_st(0o710, 1001, 1001), group, 100000, {100000})


def test_acl_entries_parse_real_xattr(open_tmp):
    tmp_path = open_tmp
    folder = tmp_path / "d"
    folder.mkdir()
    entries = [(0x01, 7, 0xFFFFFFFF), (0x02, 1, 100000), (0x04, 0, 0xFFFFFFFF),
               (0x10, 1, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(folder, "system.posix_acl_access", raw)
    except OSError as exc:
        pytest.skip("no POSIX ACLs on %s: %s" % (tmp_path, exc))
    folder.chmod(0o710)  # chmod keeps the named entries, sets the mask from the group bits
    assert _unpriv._acl_entries(str(folder))[1] == (0x02, 1, 100000)
    assert traversal_blocker(str(folder), 100000, 100000) is None
    assert "cannot be searched" in traversal_blocker(str(folder), 100001, 100001)


def test_traversal_blocker(open_tmp):
    tmp_path = open_tmp
    home = tmp_path / "home"
    rootfs = home / ".local" / "share" / "lxc" / "c1" / "rootfs"
    rootfs.mkdir(parents=True)
    for folder in (tmp_path, home, home / ".local", home / ".local" / "share"):
        folder.chmod(0o755)
    assert traversal_blocker(str(rootfs), 100000, 100000) is None
    (home / ".local").chmod(0o750)
    msg = traversal_blocker(str(rootfs), 100000, 100000)
    assert msg.startswith("%s (mode 0750, owner " % (home / ".local"))
    assert "cannot be searched by the container's root (host uid 100000)" in msg
    assert traversal_blocker(str(tmp_path / "missing" / "x"), 100000, 100000) is None


def test_umask_problem():
    assert umask_problem(0o022) is None
    assert umask_problem(0o077).startswith("the umask of this run is 0077")
    assert "0027" in umask_problem(0o027)


# ------------------------------------------------------------------------------ usernet


def test_usernet_problems(tmp_path):
    usernet = tmp_path / "lxc-usernet"
    usernet.write_text("alice veth br0 2\n@lxcusers veth br1 1\n")
    nics = [{"type": "veth", "link": "br0"}, {"type": "veth", "link": "br1"}, {"type": "veth", "link": "br2"},
            {"type": "macvlan", "link": "eth0"}, {"type": "empty"}]
    problems = usernet_problems(ALICE, nics, path=str(usernet))
    assert len(problems) == 1
    assert "alice has no lxc-usernet allowance for veth on bridge br2" in problems[0]
    assert usernet_problems(ROOT, nics, path=str(usernet)) == []


# ------------------------------------------------------------------------------ cgroup2 delegation


@pytest.fixture
def cgroup2(tmp_path):
    root = tmp_path / "cgroup"
    scope = root / "user.slice" / "user-1001.slice" / "session-3.scope"
    scope.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (scope / "cgroup.procs").write_text("")
    proc = tmp_path / "cgroup-of-self"
    proc.write_text("0::/user.slice/user-1001.slice/session-3.scope\n")
    run_user = tmp_path / "run-user"
    return SimpleNamespace(root=root, scope=scope, proc=proc, run_user=run_user)


def test_delegation_not_needed_for_root_or_v1(cgroup2, tmp_path):
    assert cgroup_delegation(ROOT, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user)) == ([], {}, None)
    assert cgroup_delegation(ALICE, str(tmp_path / "v1"), str(cgroup2.proc), str(cgroup2.run_user)) == ([], {}, None)


def test_delegation_writable_cgroup_needs_nothing(cgroup2, monkeypatch):
    monkeypatch.setattr(_unpriv.os, "access", lambda path, mode: True)
    assert cgroup_delegation(ALICE, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user)) == ([], {}, None)


def test_delegation_through_systemd_run(cgroup2, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemd-run").write_text("#!/bin/sh\n")
    (bindir / "systemd-run").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    real_access = os.access
    monkeypatch.setattr(_unpriv.os, "access",
                        lambda path, mode: False if str(path).startswith(str(cgroup2.root)) else real_access(path, mode))
    (cgroup2.run_user / "1001").mkdir(parents=True)
    (cgroup2.run_user / "1001" / "bus").write_text("")
    wrapper, env, problem = cgroup_delegation(ALICE, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user))
    assert problem is None
    assert wrapper == [str(bindir / "systemd-run"), "--user", "--scope", "--quiet", "-p", "Delegate=yes", "--"]
    assert env == {"XDG_RUNTIME_DIR": str(cgroup2.run_user / "1001"),
                   "DBUS_SESSION_BUS_ADDRESS": "unix:path=%s" % (cgroup2.run_user / "1001" / "bus")}
    # Without dbus-user-session there is no bus, but systemd --user's private socket will do.
    os.unlink(cgroup2.run_user / "1001" / "bus")
    (cgroup2.run_user / "1001" / "systemd").mkdir()
    (cgroup2.run_user / "1001" / "systemd" / "private").write_text("")
    wrapper, env, problem = cgroup_delegation(ALICE, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user))
    assert problem is None and wrapper[-1] == "--"
    assert env == {"XDG_RUNTIME_DIR": str(cgroup2.run_user / "1001")}
    # Without a user instance: the problem names lingering.
    os.unlink(cgroup2.run_user / "1001" / "systemd" / "private")
    wrapper, env, problem = cgroup_delegation(ALICE, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user))
    assert wrapper == [] and env == {}
    assert "loginctl enable-linger alice" in problem
    assert "/user.slice/user-1001.slice/session-3.scope" in problem
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    problem = cgroup_delegation(ALICE, str(cgroup2.root), str(cgroup2.proc), str(cgroup2.run_user))[2]
    assert "systemd-run is not installed" in problem


# ------------------------------------------------------------------------------ diagnose


def test_diagnose_orders_and_collects(open_tmp, monkeypatch):
    tmp_path = open_tmp
    monkeypatch.setattr(_unpriv, "newidmap_problems", lambda: ["newuidmap is not setuid root"])
    monkeypatch.setattr(_unpriv, "usernet_problems", lambda who, nics: ["no allowance on br9"])
    monkeypatch.setattr(_unpriv, "idmap_problems", lambda entries, who, option: [])
    rootfs = tmp_path / "c" / "rootfs"
    rootfs.mkdir(parents=True)
    (tmp_path / "c").chmod(0o700)
    old = os.umask(0o027)
    try:
        causes = _unpriv.diagnose({"lxc.idmap": ["u 0 100000 65536", "g 0 100000 65536"]}, ALICE, str(rootfs),
                                  [{"type": "veth", "link": "br9"}])
    finally:
        os.umask(old)
    assert causes[:2] == ["newuidmap is not setuid root", "no allowance on br9"]
    assert causes[2].startswith("%s (mode 0700" % (tmp_path / "c"))
    assert causes[-1].startswith("the umask of this run is 0027")
    assert _unpriv.diagnose({"lxc.idmap": ["bogus"]}, ALICE, str(rootfs), [])[0].startswith("lxc.idmap: ")


# --------------------------------------------------------------------------------------------
# the runtime folder of a user that became another one
# --------------------------------------------------------------------------------------------


def test_own_runtime_dir_replaces_or_drops_a_foreign_one(tmp_path):
    foreign = tmp_path / "run-user-0"
    foreign.mkdir()  # owned by the test's user, not by uid 1001
    own_exists = os.path.isdir("/run/user/1001") and os.stat("/run/user/1001").st_uid == 1001
    environ = {"XDG_RUNTIME_DIR": str(foreign), "HOME": "/home/alice"}
    _unpriv.use_own_runtime_dir(ALICE, environ)
    if own_exists:
        assert environ["XDG_RUNTIME_DIR"] == "/run/user/1001"
    else:
        assert "XDG_RUNTIME_DIR" not in environ
    assert environ["HOME"] == "/home/alice"


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a folder to uid 1001")
def test_own_runtime_dir_keeps_the_users_own_and_roots(tmp_path):
    alices = tmp_path / "alices"
    alices.mkdir()
    os.chown(alices, 1001, 1001)
    for who, environ in ((ALICE, {"XDG_RUNTIME_DIR": str(alices)}), (ROOT, {"XDG_RUNTIME_DIR": str(tmp_path)}),
                         (ALICE, {})):
        before = dict(environ)
        _unpriv.use_own_runtime_dir(who, environ)
        assert environ == before
