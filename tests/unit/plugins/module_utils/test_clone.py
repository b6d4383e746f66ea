# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clone, ephemeral and base options: validation, the running-source policy and base names."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _clone
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import NAME_RE


def params(**kwargs):
    p = dict(name="c1", state="started", lxc_path=None, template=None, template_options=[], image=None,
             rootfs_archive=None, rootfs_metadata=None, config={}, clone_from=None, clone_from_path=None,
             clone_snapshot=False, clone_stop_source=False, ephemeral=False, base=None)
    p.update(kwargs)
    return p


def test_valid_combinations():
    assert _clone.check_options(params()) == []
    assert _clone.check_options(params(clone_from="src", clone_snapshot=True, clone_stop_source=True)) == []
    assert _clone.check_options(params(clone_from="src", ephemeral=True)) == []
    assert _clone.check_options(params(clone_from="src", ephemeral=True, state="stopped")) == []
    assert _clone.check_options(params(ephemeral=True, state="absent")) == []
    assert _clone.check_options(params(template="busybox", base={"name": None, "snapshot": True})) == []
    assert _clone.check_options(params(image={"dist": "debian"}, base={"name": "b", "snapshot": False})) == []
    # The same name in another lxc path is another container.
    assert _clone.check_options(params(clone_from="c1", clone_from_path="/a", lxc_path="/b")) == []


@pytest.mark.parametrize("kwargs, start", [
    (dict(clone_from="src", template="busybox"), "clone_from and template are mutually exclusive"),
    (dict(clone_from="src", image={}, rootfs_archive="/x"), "clone_from and image and rootfs_archive are"),
    (dict(clone_from="bad/name"), "clone_from 'bad/name' is not a valid container name"),
    (dict(clone_from="c1"), "clone_from: a container cannot be cloned onto itself"),
    (dict(clone_from="c1", clone_from_path="/var/lib/lxc/", lxc_path="/var/lib/lxc"), "clone_from: a container cannot"),
    (dict(clone_from_path="/x"), "clone_from_path needs clone_from"),
    (dict(clone_snapshot=True), "clone_snapshot needs clone_from"),
    (dict(clone_stop_source=True), "clone_stop_source needs clone_from"),
    (dict(clone_from="src", ephemeral=True, state="present"), "ephemeral: "),
    (dict(clone_from="src", ephemeral=True, state="frozen"), "ephemeral: "),
    (dict(clone_from="src", ephemeral=True, state="restarted"), "ephemeral: "),
    (dict(clone_from="src", ephemeral=True, config={"lxc.ephemeral": 0}), "ephemeral: lxc.ephemeral is also set"),
    (dict(template="busybox", ephemeral=True, base={"name": None, "snapshot": True}), "ephemeral: "),
    (dict(base={"name": None, "snapshot": True}), "base: needs a creation source"),
    (dict(clone_from="src", base={"name": None, "snapshot": True}), "base: a base container is made from"),
    (dict(template="busybox", base={"name": "c1", "snapshot": True}), "base.name: the base container must have"),
    (dict(template="busybox", base={"name": "-x", "snapshot": True}), "base.name '-x' is not a valid"),
])
def test_rejected(kwargs, start):
    errors = _clone.check_options(params(**kwargs))
    assert errors and any(e.startswith(start) for e in errors), errors


@pytest.mark.parametrize("path, store", [
    (None, "dir"), ("", "dir"), ("/var/lib/lxc/c/rootfs", "dir"), ("dir:/var/lib/lxc/c/rootfs", "dir"),
    ("overlay:/a/rootfs:/b/delta", "overlayfs"), ("overlayfs:/a:/b", "overlayfs"), ("btrfs:/var/lib/lxc/c/rootfs", "btrfs"),
    ("zfs:tank/lxc/c", "zfs"), ("lvm:/dev/vg/c", "lvm"), (["dir:/x", "btrfs:/y"], "btrfs"),
])
def test_rootfs_store(path, store):
    assert _clone.rootfs_store(path) == store


def test_running_source_policy():
    assert _clone.running_source_policy("dir", snapshot=False, stop_source=True) == ("stop", None)
    assert _clone.running_source_policy("overlayfs", snapshot=True, stop_source=True) == ("stop", None)
    decision, warning = _clone.running_source_policy("dir", snapshot=False, stop_source=False)
    assert decision == "allow" and "clone_stop_source" in warning
    assert _clone.running_source_policy("btrfs", snapshot=True, stop_source=False) == ("allow", None)
    decision, message = _clone.running_source_policy("dir", snapshot=True, stop_source=False)
    assert decision == "fail" and "clone_stop_source: true" in message and "clone_snapshot" in message
    assert _clone.running_source_policy("overlayfs", snapshot=True, stop_source=False)[0] == "fail"


SHA = "0123456789abcdef" * 4
IMAGE = {"dist": "debian", "release": "bookworm", "arch": "amd64", "variant": "default"}
IDMAP = ["u 0 100000 65536", "g 0 100000 65536"]


def test_base_name_for_image():
    assert _clone.base_name_for_image(IMAGE, SHA) == "lxcfleet-base-debian-bookworm-amd64-0123456789ab"
    # A refreshed image is another rootfs, so another base.
    assert _clone.base_name_for_image(IMAGE, "f" * 64) == "lxcfleet-base-debian-bookworm-amd64-ffffffffffff"
    assert _clone.base_name_for_image(dict(IMAGE, variant="cloud"), SHA) == \
        "lxcfleet-base-debian-bookworm-amd64-cloud-0123456789ab"
    unpriv = _clone.base_name_for_image(IMAGE, SHA, IDMAP)
    assert unpriv.startswith("lxcfleet-base-debian-bookworm-amd64-0123456789ab-u") and len(unpriv) == 58
    # Whitespace in a map line does not make another base; another map does.
    assert _clone.base_name_for_image(IMAGE, SHA, ["u  0 100000 65536", "g 0 100000   65536"]) == unpriv
    assert _clone.base_name_for_image(IMAGE, SHA, ["u 0 200000 65536", "g 0 200000 65536"]) != unpriv


def test_base_names_are_valid_container_names():
    long_image = {"dist": "a" * 40, "release": "b/../c" * 5, "arch": "x86 64", "variant": "v" * 30}
    for name in (
        _clone.base_name_for_image(long_image, SHA, IDMAP),
        _clone.base_name_for_template("/opt/templates/lxc-my template" + "x" * 80, ["--a"], IDMAP),
        _clone.base_name_for_archive("/srv/" + "r" * 100 + ".tar.xz", None, (), IDMAP, archive_stamp=("/x", 1, 2)),
    ):
        assert NAME_RE.match(name), name
        assert len(name) <= 64
        assert name.endswith(_clone.idmap_suffix(IDMAP))


def test_base_name_for_template():
    stat = ("/usr/share/lxc/templates/lxc-busybox", 9000, 123)
    name = _clone.base_name_for_template("busybox", [], template_stat=stat)
    assert name.startswith("lxcfleet-base-tpl-busybox-") and len(name) == len("lxcfleet-base-tpl-busybox-") + 12
    assert name == _clone.base_name_for_template("busybox", [], template_stat=stat)
    assert name != _clone.base_name_for_template("busybox", ["--x"], template_stat=stat)
    # An upgraded template script gives a new base.
    assert name != _clone.base_name_for_template("busybox", [], template_stat=(stat[0], 9001, 124))
    assert _clone.base_name_for_template("/opt/lxc-mine", []).startswith("lxcfleet-base-tpl-mine-")


def test_base_name_for_archive(tmp_path):
    archive = tmp_path / "rootfs.tar.xz"
    archive.write_bytes(b"x" * 10)
    first = _clone.base_name_for_archive(str(archive))
    assert first.startswith("lxcfleet-base-archive-rootfs-")
    assert first == _clone.base_name_for_archive(str(archive))
    archive.write_bytes(b"y" * 11)  # another size (and mtime): another base
    assert _clone.base_name_for_archive(str(archive)) != first
    meta = tmp_path / "meta.tar.xz"
    meta.write_bytes(b"m")
    assert _clone.base_name_for_archive(str(archive), str(meta)) != _clone.base_name_for_archive(str(archive))


def test_idmap_suffix():
    assert _clone.idmap_suffix(None) == ""
    assert _clone.idmap_suffix([]) == ""
    assert _clone.idmap_suffix(IDMAP).startswith("-u") and len(_clone.idmap_suffix(IDMAP)) == 10
