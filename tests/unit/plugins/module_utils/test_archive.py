# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container archives: the manifest, the config rewrite, the member checks and the tar argv."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import random
import tarfile

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._archive import (
    MANIFEST,
    ArchiveError,
    check_manifest,
    detect_compression,
    export_argv,
    fix_hostname,
    hook_files,
    id_problems,
    import_argv,
    make_manifest,
    read_manifest,
    rewrite_config,
    rootfs_of,
    userns_prefix,
    verify_archive,
    write_hooks,
)
from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import LxcConfig

GOOD = make_manifest("web1", "/var/lib/lxc", LxcConfig.parse("lxc.arch = linux64\n"), "dir", "gzip",
                     created="2026-01-01T00:00:00Z")


def _add(archive, name, kind="file", data=b"x", linkname="", uid=0, gid=0, mode=0o644, major=0, minor=0):
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.mode = uid, gid, mode
    payload = None
    if kind == "file":
        info.size = len(data)
        payload = io.BytesIO(data)
    elif kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, linkname
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, linkname
    elif kind == "chr":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, major, minor
    archive.addfile(info, payload)


def _archive(tmp_path, members, manifest="good", config=b"lxc.uts.name = web1\n", compress=None, first=True):
    path = tmp_path / "a.tar"
    manifest = GOOD if manifest == "good" else manifest
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        if manifest is not None and first:
            _add(archive, MANIFEST, data=json.dumps(manifest).encode())
        if config is not None:
            _add(archive, "config", data=config)
        if manifest is not None and not first:
            _add(archive, MANIFEST, data=json.dumps(manifest).encode())
        _add(archive, "rootfs", "dir")
        for member in members:
            _add(archive, *member[:2], **(member[2] if len(member) > 2 else {}))
    data = raw.getvalue()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "xz":
        data = lzma.compress(data)
    path.write_bytes(data)
    return str(path)


# -- manifest ----------------------------------------------------------------------------------


def test_manifest_fields():
    config = LxcConfig.parse("lxc.idmap = u 0 100000 65536\nlxc.idmap = g  0 100000 65536\nlxc.arch = amd64\n")
    manifest = make_manifest("c1", "/srv/lxc", config, "btrfs", "xz", created="T")
    assert manifest["version"] == 2
    assert manifest["hooks"] == []
    assert manifest["container_dir"] == "/srv/lxc/c1"
    assert manifest["unprivileged"] is True
    assert manifest["idmap"] == ["u 0 100000 65536", "g 0 100000 65536"]
    assert manifest["arch"] == "amd64"
    assert (manifest["backing_store"], manifest["compression"], manifest["created"]) == ("btrfs", "xz", "T")
    assert check_manifest(json.dumps(manifest).encode()) == manifest


def test_manifest_privileged_has_no_map():
    manifest = make_manifest("c1", "/var/lib/lxc", LxcConfig.parse(""), "dir", "gzip")
    assert manifest["unprivileged"] is False and manifest["idmap"] == []


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "does not describe a container archive"),
    ({"version": 3}, "has version 3"),
    ({"hooks": ["../x"]}, "hooks must be a list of hook-NAME"),
    ({"hooks": "hook-a"}, "hooks must be a list of hook-NAME"),
    ({"name": "../x"}, "is not a container name"),
    ({"container_dir": "relative"}, "not an absolute path"),
    ({"idmap": ["u 0 1"]}, "is not 'u|g"),
    ({"unprivileged": "yes"}, "'unprivileged' is missing or not a bool"),
])
def test_manifest_refused(change, message):
    with pytest.raises(ArchiveError, match=message):
        check_manifest(json.dumps(dict(GOOD, **change)).encode())


def test_manifest_not_json():
    with pytest.raises(ArchiveError, match="not valid JSON"):
        check_manifest(b"{nope")


# -- reading archives ----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [None, "gzip", "xz"])
def test_verify_good_archive(tmp_path, compress):
    path = _archive(tmp_path, [("rootfs/etc", "dir"), ("rootfs/etc/passwd", "file", {"uid": 0}),
                               ("rootfs/home", "file", {"uid": 1000, "gid": 1001}),
                               ("rootfs/bin", "symlink", {"linkname": "/usr/bin"}),
                               ("rootfs/link", "hardlink", {"linkname": "rootfs/etc/passwd"})], compress=compress)
    checked = verify_archive(path)
    assert checked["manifest"] == GOOD
    assert checked["config"] == "lxc.uts.name = web1\n"
    assert checked["compression"] == (compress or "none")
    assert (checked["max_uid"], checked["max_gid"]) == (1000, 1001)
    assert checked["summary"]["members"] == 6
    assert checked["summary"]["symlinks"] == ["bin"]
    assert len(checked["sha256"]) == 64
    assert read_manifest(path) == GOOD
    assert detect_compression(path) == (compress or "none")


@pytest.mark.parametrize("members, message", [
    ([("rootfs/../../etc/x", "file")], "not a plain relative name"),
    ([("/etc/x", "file")], "not a plain relative name"),
    ([("./rootfs/x", "file")], "not a plain relative name"),
    ([("other", "file")], "'other' is outside config, the manifest's hooks, rootfs"),
    ([("rootfsx/y", "file")], "'rootfsx/y' is outside"),
    ([("rootfs/etc", "symlink", {"linkname": "/etc"}), ("rootfs/etc/passwd", "file")], "through the symlink 'etc'"),
    ([("rootfs/x", "hardlink", {"linkname": "/etc/shadow"})], "points outside the rootfs"),
    ([("rootfs/x", "hardlink", {"linkname": "rootfs/../../etc/shadow"})], "points outside the rootfs"),
    ([("rootfs/x", "hardlink", {"linkname": "rootfs/missing"})], "not a file of this archive before it"),
    ([("config", "file")], "'config' appears twice"),
    ([("rootfs/p", "file", {"mode": 0o644}), ("rootfs/p/q", "file")], "not a directory"),
])
def test_verify_refuses(tmp_path, members, message):
    path = _archive(tmp_path, members)
    with pytest.raises(ArchiveError, match=message):
        verify_archive(path)


def test_manifest_must_be_first(tmp_path):
    with pytest.raises(ArchiveError, match="first member is 'config'"):
        verify_archive(_archive(tmp_path, [], first=False))
    with pytest.raises(ArchiveError, match="is not lxcfleet-archive.json"):
        read_manifest(_archive(tmp_path, [], first=False))


def test_config_needed(tmp_path):
    with pytest.raises(ArchiveError, match="has no config"):
        verify_archive(_archive(tmp_path, [], config=None))


def test_manifest_not_a_file(tmp_path):
    path = tmp_path / "m.tar"
    with tarfile.open(path, "w") as archive:
        _add(archive, MANIFEST, "symlink", linkname="/etc/shadow")
    with pytest.raises(ArchiveError, match="not a regular file"):
        verify_archive(str(path))


def test_truncated_archive(tmp_path):
    path = _archive(tmp_path, [("rootfs/big", "file", {"data": b"y" * 100000})], compress="xz")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="not a readable tar archive"):
        verify_archive(path)


def test_devices_are_reported(tmp_path):
    path = _archive(tmp_path, [("rootfs/dev", "dir"), ("rootfs/dev/null", "chr", {"major": 1, "minor": 3})])
    assert verify_archive(path)["summary"]["devices"] == ["dev/null"]


def test_id_problems():
    idmap = ["u 0 100000 65536", "g 0 100000 65536"]
    assert id_problems(65535, 1000, idmap) == []
    problems = id_problems(70000, 5, idmap)
    assert len(problems) == 1 and "container uid 70000" in problems[0]


# -- the config at its new place ------------------------------------------------------------------

OLD = """# made by lxc-create
lxc.include = /usr/share/lxc/config/common.conf
lxc.rootfs.path = dir:/var/lib/lxc/web1/rootfs
lxc.uts.name = "web1"
lxc.mount.fstab = /var/lib/lxc/web1/fstab
lxc.hook.pre-start = /var/lib/lxc/web1/hooks/pre
lxc.mount.entry = /var/lib/lxc/web1x/data srv none bind 0 0
lxc.mount.entry = /srv/share /var/lib/lxc/web1/rootfs/mnt none bind 0 0
lxc.net.0.type = veth
lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc
lxc.net.1.type = veth
lxc.idmap = u 0 100000 65536
lxc.idmap = g 0 100000 65536
"""


def test_rewrite_config_moves_paths_and_names():
    new = rewrite_config(OLD, "/var/lib/lxc/web1", "/srv/lxc/web2", "web2", ["u 0 300000 65536", "g 0 300000 65536"],
                         keep_mac=False, rng=random.Random(1))
    config = LxcConfig.parse(new)
    assert new.startswith("# made by lxc-create\nlxc.include = /usr/share/lxc/config/common.conf\n")
    assert config.get_one("lxc.rootfs.path") == "dir:/srv/lxc/web2/rootfs"
    assert config.get_one("lxc.uts.name") == "web2"
    assert config.get_one("lxc.mount.fstab") == "/srv/lxc/web2/fstab"
    assert config.get("lxc.hook.pre-start") == ["/srv/lxc/web2/hooks/pre"]
    # a sibling folder that only starts with the same text is not moved
    assert config.get("lxc.mount.entry") == ["/var/lib/lxc/web1x/data srv none bind 0 0",
                                             "/srv/share /srv/lxc/web2/rootfs/mnt none bind 0 0"]
    assert config.get("lxc.idmap") == ["u 0 300000 65536", "g 0 300000 65536"]
    mac = config.get_one("lxc.net.0.hwaddr")
    assert mac != "00:16:3e:aa:bb:cc" and mac.startswith("00:16:3e:")
    assert config.get_one("lxc.net.1.hwaddr") is None


def test_rewrite_config_privileged_and_keep_mac():
    new = rewrite_config(OLD, "/var/lib/lxc/web1/", "/var/lib/lxc/web3", "web3", [], keep_mac=True)
    config = LxcConfig.parse(new)
    assert config.get("lxc.idmap") == []
    assert config.get_one("lxc.net.0.hwaddr") == "00:16:3e:aa:bb:cc"
    assert config.get_one("lxc.rootfs.path") == "dir:/var/lib/lxc/web3/rootfs"


def test_rootfs_of():
    assert rootfs_of(LxcConfig.parse("lxc.rootfs.path = dir:/a/rootfs\n"), "/a") == ("dir", "/a/rootfs")
    assert rootfs_of(LxcConfig.parse("lxc.rootfs.path = /a/r\n"), "/a") == ("dir", "/a/r")
    assert rootfs_of(LxcConfig.parse("lxc.rootfs.path = btrfs:/a/rootfs\n"), "/a") == ("btrfs", "/a/rootfs")
    assert rootfs_of(LxcConfig.parse("lxc.rootfs.path = overlay:/b/rootfs:/a/delta0\n"), "/a") == ("overlayfs", None)
    assert rootfs_of(LxcConfig.parse("lxc.rootfs.path = loop:/a/rootdev\n"), "/a") == ("loop", None)
    assert rootfs_of(LxcConfig.parse(""), "/a") == ("dir", "/a/rootfs")


def test_fix_hostname(tmp_path):
    (tmp_path / "etc").mkdir()
    hostname = tmp_path / "etc" / "hostname"
    hostname.write_text("web1\n")
    assert fix_hostname(str(tmp_path), "web1", "web2")
    assert hostname.read_text() == "web2\n"
    assert not fix_hostname(str(tmp_path), "web1", "web3")  # holds another name: kept
    assert hostname.read_text() == "web2\n"


def test_fix_hostname_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("web1\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").symlink_to(outside)
    assert not fix_hostname(str(rootfs), "web1", "web2")
    assert outside.read_text() == "web1\n"
    rootfs2 = tmp_path / "rootfs2"
    rootfs2.mkdir()
    (rootfs2 / "etc").symlink_to(tmp_path)
    (tmp_path / "hostname").write_text("web1\n")
    assert not fix_hostname(str(rootfs2), "web1", "web2")
    assert (tmp_path / "hostname").read_text() == "web1\n"


# -- tar ------------------------------------------------------------------------------------------


def test_tar_argv():
    argv = export_argv("/bin/tar", "zstd", "/tmp/s", "/var/lib/lxc/c/rootfs")
    assert argv[:4] == ["/bin/tar", "--create", "--file=-", "--format=posix"]
    for flag in ("--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"):
        assert flag in argv
    assert argv[-6:] == ["--directory=/tmp/s", MANIFEST, "config", "--directory=/var/lib/lxc/c/rootfs",
                         r"--transform=s,^\.,rootfs,S", "."]
    argv = import_argv("/bin/tar", "none", "/x/.c.import-1")
    assert argv[-3:] == ["--directory=/x/.c.import-1", "--anchored", "rootfs"]
    assert "--same-owner" in argv and "--preserve-permissions" in argv and "--gzip" not in argv
    assert userns_prefix("/usr/bin/lxc-usernsexec", ["u 0 100000 65536", "g 0 200000 65536"]) == [
        "/usr/bin/lxc-usernsexec", "-m", "u:0:100000:65536", "-m", "g:0:200000:65536", "--"]


# -- hook scripts (version 2) ------------------------------------------------------------------------


def test_version_1_archives_have_no_hooks():
    old = {k: v for k, v in GOOD.items() if k != "hooks"}
    assert check_manifest(json.dumps(dict(old, version=1)).encode())["hooks"] == []


def test_hook_files(tmp_path):
    cdir = tmp_path / "c1"
    cdir.mkdir()
    (cdir / "hook-mark").write_text("#!/bin/sh\n")
    (cdir / "hook-other").write_text("#!/bin/sh\n")
    (cdir / "hook-link").symlink_to(cdir / "hook-mark")
    config = LxcConfig.parse(
        "lxc.hook.pre-start = %s/hook-mark arg\n" % cdir
        + "lxc.hook.post-stop = /usr/local/bin/host-hook\n"
        + "lxc.hook.mount = %s/hook-link\n" % cdir
        + "lxc.hook.stop = %s/hook-missing\n" % cdir
        + "lxc.hook.start = %s/hook-other\n" % cdir)
    assert hook_files(config, str(cdir)) == ["hook-mark", "hook-other"]
    assert hook_files(LxcConfig.parse("lxc.arch = linux64\n"), str(cdir)) == []


def _with_hooks(hooks):
    return dict(GOOD, hooks=hooks)


def test_verify_reads_listed_hooks(tmp_path):
    path = _archive(tmp_path, [("hook-mark", "file", {"data": b"#!/bin/sh\ntouch /x\n", "mode": 0o750})],
                    manifest=_with_hooks(["hook-mark"]))
    checked = verify_archive(path)
    assert checked["hooks"] == {"hook-mark": b"#!/bin/sh\ntouch /x\n"}
    assert checked["manifest"]["hooks"] == ["hook-mark"]


@pytest.mark.parametrize("hooks, members, message", [
    ([], [("hook-mark", "file")], "outside config, the manifest's hooks, rootfs"),
    (["hook-mark"], [], "lists the hook scripts hook-mark, which the archive does not hold"),
    (["hook-mark"], [("hook-mark", "symlink", {"linkname": "/etc/shadow"})], "is not a regular file"),
    (["hook-mark"], [("hook-mark", "file"), ("hook-mark", "file")], "appears twice"),
])
def test_verify_refuses_bad_hooks(tmp_path, hooks, members, message):
    path = _archive(tmp_path, members, manifest=_with_hooks(hooks))
    with pytest.raises(ArchiveError, match=message):
        verify_archive(path)


def test_write_hooks(tmp_path):
    write_hooks(str(tmp_path), {"hook-a": b"#!/bin/sh\n", "hook-b": b"\x00binary"})
    assert (tmp_path / "hook-a").read_bytes() == b"#!/bin/sh\n"
    assert (tmp_path / "hook-b").read_bytes() == b"\x00binary"
    for name in ("hook-a", "hook-b"):
        st = (tmp_path / name).stat()
        assert st.st_mode & 0o7777 == 0o750
        assert st.st_gid == tmp_path.stat().st_gid
    with pytest.raises(FileExistsError):  # never over an existing file (the folder is new)
        write_hooks(str(tmp_path), {"hook-a": b"x"})


def test_export_argv_with_hooks():
    argv = export_argv("/bin/tar", "gzip", "/tmp/s", "/r", ["hook-a", "hook-b"])
    assert argv[-8:] == ["--directory=/tmp/s", MANIFEST, "config", "hook-a", "hook-b", "--directory=/r",
                         r"--transform=s,^\.,rootfs,S", "."]
