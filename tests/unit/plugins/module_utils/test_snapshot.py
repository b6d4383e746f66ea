# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot names, the listing read from snaps/snapN folders, and the plan."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _snapshot as sn
from ansible_collections.lxcfleet.lxc.plugins.module_utils._snapshot import SnapshotError


def params(**kw):
    base = dict(name="c1", lxc_path="/var/lib/lxc", snapshot="before", state="present", comment=None,
                restore_to=None, restore_path=None, stop_running=False, stop_timeout=30)
    base.update(kw)
    return base


def snap(name, lxc_name, comment=None, deps=()):
    return {"name": name, "lxc_name": lxc_name, "named": name != lxc_name, "comment": comment,
            "created": None, "ts": None, "path": "/x/" + lxc_name, "rootfs": None, "backing_store": "dir",
            "dependents": list(deps)}


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("name", ["before-upgrade", "a", "v1.2:pre@host+x_y", "A" * 128, "snap0", "0day"])
def test_valid_names(name):
    assert sn.validate_snapshot_name(name) is None


@pytest.mark.parametrize("name", ["", None, "a b", "../x", "a/b", "-x", ".hidden", "A" * 129, "x\ny", "x\n", "é"])
def test_invalid_names_name_the_option(name):
    msg = sn.validate_snapshot_name(name)
    assert msg and msg.startswith("snapshot")


def test_lxc_index():
    assert sn.lxc_index("snap0") == 0
    assert sn.lxc_index("snap12") == 12
    assert sn.lxc_index("snap") is None
    assert sn.lxc_index("snapx") is None
    assert sn.lxc_index("snap1\n") is None
    assert sn.lxc_index("before") is None


@pytest.mark.parametrize("kw, expect", [
    (dict(name="a b"), "^name "),
    (dict(name="c1\n"), "^name .* not a valid container name"),
    (dict(state="restored", restore_to="c2\n"), "^restore_to .* not a valid container name"),
    (dict(snapshot="bad name"), "^snapshot 'bad name'"),
    (dict(state="absent", comment="x"), "^comment "),
    (dict(restore_to="x"), "^restore_to is used with state=restored"),
    (dict(state="restored", restore_to="../x"), "^restore_to "),
    (dict(state="restored", restore_path="/srv"), "^restore_path needs restore_to"),
    (dict(state="restored", restore_to="n", restore_path="rel"), "^restore_path must be an absolute"),
    (dict(stop_timeout=-1), "^stop_timeout"),
])
def test_validate_params_rejects(kw, expect):
    import re
    with pytest.raises(SnapshotError) as err:
        sn.validate_params(params(**kw))
    assert re.search(expect, str(err.value)), str(err.value)


def test_validate_params_listing_needs_no_snapshot():
    sn.validate_params(params(snapshot=None))
    for state in ("absent", "restored"):
        with pytest.raises(SnapshotError, match="snapshot is required with state=%s" % state):
            sn.validate_params(params(state=state, snapshot=None))
    with pytest.raises(SnapshotError, match="^comment needs snapshot"):
        sn.validate_params(params(snapshot=None, comment="x"))


def test_plan_listing_changes_nothing():
    out = sn.plan(params(snapshot=None), [snap("a", "snap0")], "RUNNING", "lvm", "lvm:/dev/vg/x", ["/l/x"], False)
    assert out["actions"] == [] and out["snapshot"] is None


# ------------------------------------------------------------------ files

def test_ts_to_iso():
    assert sn.ts_to_iso("2026:11:23 16:20:44\n") == "2026-11-23T16:20:44"
    assert sn.ts_to_iso("garbage") is None
    assert sn.ts_to_iso(None) is None


@pytest.mark.parametrize("rootfs, store", [
    ("dir:/var/lib/lxc/c1/rootfs", "dir"),
    ("overlay:/var/lib/lxc/b/rootfs:/var/lib/lxc/c1/overlay/delta", "overlayfs"),
    ("overlayfs:/a:/b", "overlayfs"),
    ("btrfs:/srv/c1/rootfs", "btrfs"),
    ("loop:/var/lib/lxc/c1/rootdev", "loop"),
    ("lvm:/dev/vg/c1", "lvm"),
    ("zfs:tank/c1", "zfs"),
    (None, "unknown"),
    ("/nonexistent/c1/rootfs", "dir"),  # a plain path: LXC probes dir first
])
def test_store_of(rootfs, store):
    assert sn.store_of(rootfs) == store


def test_store_of_unprefixed_directory(tmp_path):
    assert sn.store_of(str(tmp_path)) == "dir"


def test_rootfs_value_reads_current_and_legacy_keys():
    assert sn.rootfs_value("lxc.uts.name = c1\nlxc.rootfs.path = dir:/x/c1/rootfs\n") == "dir:/x/c1/rootfs"
    assert sn.rootfs_value("lxc.rootfs = /x/c1/rootfs\n") == "/x/c1/rootfs"
    assert sn.rootfs_value("# nothing\n") is None


def make_snap(root, lxc_name, name=None, comment=None, ts="2026:01:02 03:04:05", rootfs=None, deps=None):
    folder = root / lxc_name
    folder.mkdir(parents=True)
    (folder / "config").write_text("lxc.rootfs.path = %s\n" % (rootfs or "dir:%s/rootfs" % folder))
    if ts:
        (folder / "ts").write_text(ts)
    if name is not None:
        (folder / sn.NAME_FILE).write_text(name + "\n")
    if comment is not None:
        (folder / "comment").write_text(comment)
    if deps:
        (folder / "lxc_snapshots").write_text(deps)
    return folder


def test_list_snapshots_reads_folders_in_lxc_order(tmp_path):
    make_snap(tmp_path, "snap10", name="ten")
    make_snap(tmp_path, "snap2", comment="hand made\n")
    make_snap(tmp_path, "snap0", name="before-upgrade", comment="two\nlines\n",
              rootfs="overlay:/l/base/rootfs:/l/c1/snaps/snap0/overlay/delta", deps="/l\nc1r\n")
    (tmp_path / "snap3").mkdir()  # no config: not a snapshot (lxc-snapshot -L skips it too)
    (tmp_path / "other").mkdir()
    (tmp_path / "snap4").write_text("a file")
    snaps = sn.list_snapshots(str(tmp_path))
    assert [s["lxc_name"] for s in snaps] == ["snap0", "snap2", "snap10"]
    first, hand, ten = snaps
    assert first["name"] == "before-upgrade" and first["named"]
    assert first["comment"] == "two\nlines"
    assert first["backing_store"] == "overlayfs"
    assert first["created"] == "2026-01-02T03:04:05" and first["ts"] == "2026:01:02 03:04:05"
    assert first["dependents"] == ["/l/c1r"]
    assert first["path"] == str(tmp_path / "snap0")
    assert hand["name"] == "snap2" and not hand["named"] and hand["comment"] == "hand made"
    assert ten["name"] == "ten" and ten["comment"] is None and ten["dependents"] == []


def test_list_snapshots_missing_folder():
    assert sn.list_snapshots("/nonexistent/snaps") == []


def test_snaps_dir_new_and_legacy(tmp_path):
    lxc_path = tmp_path / "lxc"
    lxc_path.mkdir()
    assert sn.snaps_dir(str(lxc_path), "c1") == str(lxc_path / "c1" / "snaps")
    assert sn.snaps_dir(str(lxc_path) + "/", "c1") == str(lxc_path / "c1" / "snaps")
    (tmp_path / "lxcsnaps").mkdir()  # LXC 1.0's <lxc_path>snaps
    assert sn.snaps_dir(str(lxc_path), "c1") == str(tmp_path / "lxcsnaps" / "c1")


def test_next_lxc_name_is_lowest_free_index():
    assert sn.next_lxc_name([]) == "snap0"
    assert sn.next_lxc_name([snap("a", "snap0"), snap("b", "snap2")]) == "snap1"
    # a folder without config still takes the index in LXC's eyes
    assert sn.next_lxc_name([snap("a", "snap0")], ["snap1"]) == "snap2"


def test_find_snapshot_by_user_name_then_lxc_name():
    snaps = [snap("before", "snap0"), snap("snap1", "snap1")]
    assert sn.find_snapshot(snaps, "before")["lxc_name"] == "snap0"
    assert sn.find_snapshot(snaps, "snap0")["name"] == "before"
    assert sn.find_snapshot(snaps, "snap1")["lxc_name"] == "snap1"
    assert sn.find_snapshot(snaps, "nope") is None


def test_find_snapshot_ambiguous():
    with pytest.raises(SnapshotError, match="2 snapshots carry the name 'x'"):
        sn.find_snapshot([snap("x", "snap0"), snap("x", "snap1")], "x")


def test_dependents_pairs(tmp_path):
    (tmp_path / "lxc_snapshots").write_text("/var/lib/lxc\nov1\n/var/lib/lxc/ov1/snaps\nsnap0\n")
    assert sn.dependents(str(tmp_path)) == ["/var/lib/lxc/ov1", "/var/lib/lxc/ov1/snaps/snap0"]
    assert sn.dependents(str(tmp_path / "none")) == []


# ------------------------------------------------------------------ plan

DIR = "dir:/var/lib/lxc/c1/rootfs"


def test_plan_create_when_missing():
    out = sn.plan(params(), [], "STOPPED", "dir", DIR, [], False)
    assert out["kind"] == "create" and not out["stop"]
    assert out["actions"] == ["create snapshot before of container c1"]


def test_plan_present_is_idempotent_and_keeps_comment():
    snaps = [snap("before", "snap0", comment="c")]
    assert sn.plan(params(), snaps, "RUNNING", "dir", DIR, [], False)["actions"] == []
    assert sn.plan(params(comment="c\n"), snaps, "STOPPED", "dir", DIR, [], False)["actions"] == []
    out = sn.plan(params(comment="new"), snaps, "RUNNING", "dir", DIR, [], False)
    assert out["kind"] == "comment" and len(out["actions"]) == 1


def test_plan_running_fails_without_stop_running():
    for state in ("RUNNING", "FROZEN"):
        with pytest.raises(SnapshotError, match="stop_running: true") as err:
            sn.plan(params(), [], state, "dir", DIR, [], False)
        assert state in str(err.value)


def test_plan_running_with_stop_running():
    out = sn.plan(params(stop_running=True), [], "RUNNING", "dir", DIR, [], False)
    assert out["stop"]
    assert out["actions"][0] == "stop container c1" and out["actions"][-1] == "start container c1"


@pytest.mark.parametrize("store", ["lvm", "rbd", "nbd"])
def test_plan_refuses_stores_lxc_cannot_back_up(store):
    with pytest.raises(SnapshotError, match="backing store %s cannot be snapshotted" % store):
        sn.plan(params(), [], "STOPPED", store, "%s:/dev/vg/c1" % store, [], False)


def test_plan_refuses_rootfs_without_container_name():
    with pytest.raises(SnapshotError, match="does not contain the container name"):
        sn.plan(params(), [], "STOPPED", "dir", "dir:/srv/rootfs", [], False)


def test_plan_refuses_new_snapn_name():
    with pytest.raises(SnapshotError, match="names of the form snapN"):
        sn.plan(params(snapshot="snap3"), [snap("a", "snap0")], "STOPPED", "dir", DIR, [], False)


def test_plan_missing_container():
    assert sn.plan(params(state="absent"), [], None, "unknown", None, [], False)["actions"] == []
    with pytest.raises(SnapshotError, match="container c1 does not exist in /var/lib/lxc"):
        sn.plan(params(), [], None, "unknown", None, [], False)


def test_plan_absent():
    snaps = [snap("before", "snap0")]
    out = sn.plan(params(state="absent"), snaps, "RUNNING", "dir", DIR, [], False)
    assert out["kind"] == "remove"
    assert sn.plan(params(state="absent", snapshot="x"), snaps, "RUNNING", "dir", DIR, [], False)["actions"] == []


def test_plan_absent_refuses_snapshot_with_dependents():
    snaps = [snap("before", "snap0", deps=["/l/c1r"])]
    with pytest.raises(SnapshotError, match="/l/c1r"):
        sn.plan(params(state="absent"), snaps, "STOPPED", "overlayfs", DIR, [], False)


def test_plan_restore_in_place_always_acts():
    snaps = [snap("before", "snap0")]
    out = sn.plan(params(state="restored"), snaps, "STOPPED", "dir", DIR, [], False)
    assert out["kind"] == "restore" and len(out["actions"]) == 1
    with pytest.raises(SnapshotError, match="stop_running"):
        sn.plan(params(state="restored"), snaps, "RUNNING", "dir", DIR, [], False)
    with pytest.raises(SnapshotError, match="dependent snapshots.*restore_to"):
        sn.plan(params(state="restored"), snaps, "STOPPED", "dir", DIR, ["/l/ov1"], False)


def test_plan_restore_missing_snapshot_lists_existing():
    with pytest.raises(SnapshotError, match=r"snapshot 'x' of container c1 does not exist \(snapshots: before \(snap0\)\)"):
        sn.plan(params(state="restored", snapshot="x"), [snap("before", "snap0")], "STOPPED", "dir", DIR, [], False)


def test_plan_restore_new_is_idempotent_and_allowed_while_running():
    snaps = [snap("before", "snap0")]
    p = params(state="restored", restore_to="c2")
    out = sn.plan(p, snaps, "RUNNING", "dir", DIR, [], False)
    assert out["kind"] == "restore_new" and not out["stop"]
    assert sn.plan(p, snaps, "RUNNING", "dir", DIR, [], True)["actions"] == []
    # restore_to == name is a restore in place
    assert sn.plan(params(state="restored", restore_to="c1"), snaps, "STOPPED", "dir", DIR, [], False)["kind"] == "restore"


def test_summary_and_comment_text():
    assert sn.summary([snap("a", "snap0", comment="c")]) == [{"name": "a", "lxc_name": "snap0", "comment": "c"}]
    assert sn.comment_text("x") == "x\n"
    assert sn.comment_text("x\n") == "x\n"
