# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The member checks of the safe unpack, on archives built here with tarfile."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._unpack import (
    UnpackError,
    check_archive,
    check_templates,
    checked_archive,
    excluded,
    normalize,
    sidecar_path,
    unprivileged_problems,
)


def _member(name, kind="file", data=b"x", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.mode = mode
    payload = None
    if kind == "file":
        info.size = len(data)
        payload = io.BytesIO(data)
    elif kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    elif kind == "hardlink":
        info.type = tarfile.LNKTYPE
        info.linkname = linkname
    elif kind == "chr":
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    return info, payload


def _archive(tmp_path, members, name="rootfs.tar.xz"):
    path = tmp_path / name
    with tarfile.open(path, "w:xz") as archive:
        for spec in members:
            info, payload = _member(*spec) if isinstance(spec, tuple) else _member(spec)
            archive.addfile(info, payload)
    return str(path)


GOOD = [
    ("./", "dir"), ("./bin", "dir"), ("./bin/busybox", "file", b"ELF", "", 0o4755), ("./bin/sh", "symlink", b"", "busybox"),
    ("./usr", "dir"), ("./usr/lib", "dir"), ("./lib", "symlink", b"", "usr/lib"), ("./etc", "dir"),
    ("./etc/hostname", "file", b"LXC_NAME\n"), ("./etc/alt", "symlink", b"", "/etc/hostname"),
    ("./bin/ash", "hardlink", b"", "./bin/busybox"), ("./dev", "dir"), ("./dev/null", "chr"), ("./run", "dir"),
    ("./run/initctl", "fifo"),
]


def test_normalize():
    assert normalize("./a/b") == "a/b"
    assert normalize("a//b/./c") == "a/b/c"
    assert normalize("./") == ""
    assert normalize("../x") is None
    assert normalize("a/../../x") is None
    assert normalize("/etc/passwd") is None
    assert normalize("a\0b") is None


def test_good_archive_summary(tmp_path):
    summary = check_archive(_archive(tmp_path, GOOD))
    assert summary["members"] == len(GOOD)
    assert summary["devices"] == ["dev/null"]
    assert summary["device_ids"] == {"dev/null": ["c", 1, 3]}
    assert summary["symlinks"] == ["bin/sh", "etc/alt", "lib"]
    assert len(summary["sha256"]) == 64


@pytest.mark.parametrize("members, needle", [
    ([("../x", "file")], "'../x' escapes the rootfs"),
    ([("./a/../../x", "file")], "escapes the rootfs"),
    ([("/etc/passwd", "file")], "escapes the rootfs"),
    ([("./etc", "dir"), ("./etc/evil", "symlink", b"", "/etc"), ("./etc/evil/pwned", "file")],
     "would be written through the symlink 'etc/evil'"),
    ([("./lib", "symlink", b"", "usr/lib"), ("./lib/x/y", "file")], "through the symlink 'lib'"),
    ([("./shadow", "hardlink", b"", "/etc/shadow")], "points outside the rootfs"),
    ([("./shadow", "hardlink", b"", "../../etc/shadow")], "points outside the rootfs"),
    ([("./a", "hardlink", b"", "./later"), ("./later", "file")], "not a file of this archive before it"),
    ([("./f", "file"), ("./f/x", "file")], "which is not a directory"),
    ([("./s", "symlink", b"", "/tmp"), ("./s", "file")], "replaces a symlink"),
    ([("./", "file")], "replaces the rootfs folder"),
])
def test_attacks_are_refused(tmp_path, members, needle):
    with pytest.raises(UnpackError) as err:
        check_archive(_archive(tmp_path, members))
    assert needle in str(err.value)


def test_not_a_tarball(tmp_path):
    path = tmp_path / "rootfs.tar.xz"
    path.write_bytes(b"\xfd7zXZ\x00 truncated")
    with pytest.raises(UnpackError, match="not a readable tar archive"):
        check_archive(str(path))
    good = _archive(tmp_path, GOOD, name="good.tar.xz")
    data = open(good, "rb").read()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnpackError, match="not a readable tar archive"):
        check_archive(str(path))


def test_sidecar_is_used_only_for_the_same_bytes(tmp_path, monkeypatch):
    path = _archive(tmp_path, GOOD)
    first = checked_archive(path, keep=True)
    assert os.path.exists(sidecar_path(path))
    calls = []
    from ansible_collections.lxcfleet.lxc.plugins.module_utils import _unpack
    real = _unpack.check_archive
    monkeypatch.setattr(_unpack, "check_archive", lambda p: calls.append(p) or real(p))
    assert checked_archive(path, keep=True)["sha256"] == first["sha256"]
    assert calls == []
    # Other bytes under the same name: checked again, and an attack is found.
    _archive(tmp_path, [("../x", "file")])
    with pytest.raises(UnpackError):
        checked_archive(path, keep=True)
    assert calls == [path]
    assert json.load(open(sidecar_path(path)))["sha256"] == first["sha256"]  # the old record stays, unused


def test_excludes_like_gnu_tar_anchored():
    assert excluded("dev/null", ["dev/*"])
    assert excluded("dev/pts/0", ["dev/*"])
    assert excluded("dev/null", ["./dev"])
    assert not excluded("usr/dev/null", ["dev/*"])
    assert unprivileged_problems({"devices": ["dev/null", "lib/udev/x"]}, ["dev/*"]) == ["lib/udev/x"]


def test_templates():
    summary = {"symlinks": ["etc/alt", "lib"]}
    assert check_templates(["/etc/hostname", "etc/hosts", "", "# c"], summary) == ["/etc/hostname", "/etc/hosts"]
    for bad, needle in [("../../../etc/passwd", "does not name a file inside"), ("/etc/../../x", "does not name"),
                        ("/etc/alt", "goes through the symlink 'etc/alt'"), ("/lib/x", "through the symlink 'lib'"),
                        ("/", "does not name")]:
        with pytest.raises(UnpackError) as err:
            check_templates([bad], summary)
        assert needle in str(err.value)
