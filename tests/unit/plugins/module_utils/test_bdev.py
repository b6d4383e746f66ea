# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bdev
from ansible_collections.lxcfleet.lxc.plugins.module_utils._bdev import BdevError


class FakeProbe:
    """A host described by data: files that exist, tools on PATH, mounts, command answers."""

    def __init__(self, exists=(), tools=(), fstypes=None, files=None, runs=None, euid=0, blocks=(), regular=(),
                 inodes=None, nonempty=()):
        self._exists = set(exists)
        self._tools = set(tools)
        self._fstypes = fstypes or {}
        self._files = files or {}
        self._runs = runs or {}
        self.euid = euid
        self._blocks = set(blocks)
        self._regular = set(regular)
        self._inodes = inodes or {}
        self._nonempty = set(nonempty)
        self.calls = []

    def run(self, argv):
        self.calls.append(argv)
        return self._runs.get(tuple(argv), (5, "", "  Volume group \"%s\" not found\n" % argv[-1]))

    def which(self, tool):
        return "/usr/sbin/" + tool if tool in self._tools else None

    def exists(self, path):
        return path in self._exists

    def is_file(self, path):
        return path in self._regular

    def is_block_device(self, path):
        return path in self._blocks

    def inode(self, path):
        return self._inodes.get(path)

    def read(self, path):
        return self._files.get(path, "")

    def fstype(self, path):
        return self._fstypes.get(path, "ext4")

    def empty_or_missing(self, path):
        return path not in self._nonempty


# --------------------------------------------------------------------------- validation and argv


@pytest.mark.parametrize("text,size", [
    ("64M", 64 << 20), ("1G", 1 << 30), ("2g", 2 << 30), ("512MiB", 512 << 20), ("100MB", 100 << 20),
    ("4096K", 4 << 20), ("1T", 1 << 40), ("1000B", 1000), (" 8 M ", 8 << 20),
])
def test_parse_size(text, size):
    assert _bdev.parse_size(text) == size


@pytest.mark.parametrize("text", ["64", "", "M", "1.5G", "-1G", "0M", "12X", "1 GB extra"])
def test_parse_size_rejects(text):
    with pytest.raises(BdevError, match="backing_store_options.fssize"):
        _bdev.parse_size(text)


def test_format_size():
    assert _bdev.format_size(64 << 20) == "64M"
    assert _bdev.format_size(1 << 30) == "1G"
    assert _bdev.format_size(1536 << 20) == "1536M"
    assert _bdev.format_size(1000) == "1000B"


def test_lvm_thin_argv():
    opts = _bdev.validate("lvm", {"vgname": "vg0", "thinpool": "pool0", "fstype": "xfs", "fssize": "20480M",
                                  "lvname": None})
    assert _bdev.create_args("lvm", opts) == ["-B", "lvm", "--vgname", "vg0", "--thinpool", "pool0",
                                              "--fstype", "xfs", "--fssize", "20G"]


def test_zfs_argv():
    opts = _bdev.validate("zfs", {"zfsroot": "tank/lxc"})
    assert _bdev.create_args("zfs", opts) == ["-B", "zfs", "--zfsroot", "tank/lxc"]


def test_loop_argv_and_plain_stores():
    opts = _bdev.validate("loop", {"fstype": "ext4", "fssize": "64M"})
    assert _bdev.create_args("loop", opts) == ["-B", "loop", "--fstype", "ext4", "--fssize", "64M"]
    assert _bdev.create_args("btrfs", {}) == ["-B", "btrfs"]
    assert _bdev.create_args("best", {}) == ["-B", "best"]
    assert _bdev.create_args("overlayfs", {}) == ["-B", "overlayfs"]
    assert _bdev.create_args(None, {}) == []
    dir_options = _bdev.validate("dir", {"dir": "/srv/roots/x/"})
    assert _bdev.create_args("dir", dir_options) == ["-B", "dir", "--dir", "/srv/roots/x"]


def test_copy_argv():
    assert _bdev.copy_args("loop", {"fssize": "1G"}) == ["-B", "loop", "-L", "1G"]
    assert _bdev.copy_args(None, {}) == []
    with pytest.raises(BdevError, match="backing_store_options.vgname cannot be used for a clone"):
        _bdev.copy_args("lvm", {"vgname": "vg0"})


@pytest.mark.parametrize("store,options,message", [
    ("btrfs", {"fssize": "1G"}, "backing_store_options.fssize does not apply to backing_store: btrfs"),
    ("loop", {"vgname": "vg0"}, "backing_store_options.vgname does not apply to backing_store: loop"),
    ("dir", {"zfsroot": "tank"}, "backing_store_options.zfsroot does not apply to backing_store: dir"),
    ("best", {"dir": "/x"}, "backing_store_options.dir does not apply to backing_store: best"),
    ("zfs", {"fstype": "ext4"}, "backing_store_options.fstype does not apply to backing_store: zfs"),
    (None, {"fssize": "1G"}, r"backing_store_options \(fssize\) need backing_store"),
    ("lvm", {"vgname": "-bad"}, "backing_store_options.vgname: '-bad' is not a valid LVM name"),
    ("lvm", {"thinpool": "a b"}, "backing_store_options.thinpool"),
    ("zfs", {"zfsroot": "/tank/lxc"}, "backing_store_options.zfsroot: '/tank/lxc' is not a ZFS dataset"),
    ("zfs", {"zfsroot": "tank//lxc"}, "backing_store_options.zfsroot"),
    ("loop", {"fstype": "ext4; rm"}, "backing_store_options.fstype"),
    ("loop", {"fssize": "lots"}, "backing_store_options.fssize: 'lots' is not a size"),
    ("dir", {"dir": "relative/path"}, "backing_store_options.dir: 'relative/path' must be an absolute path"),
    ("nope", {}, "backing_store: 'nope' is not one of"),
    ("loop", {"colour": "red"}, "unknown option"),
])
def test_validate_rejects(store, options, message):
    with pytest.raises(BdevError, match=message):
        _bdev.validate(store, options)


def test_validate_best_takes_lvm_and_zfs_options():
    assert _bdev.validate("best", {"vgname": "vg0", "zfsroot": "tank/lxc", "fssize": "2048M"}) == {
        "vgname": "vg0", "zfsroot": "tank/lxc", "fssize": "2G"}
    assert _bdev.validate(None, None) == {}
    assert _bdev.validate("loop", {"fstype": None, "fssize": None}) == {}


# --------------------------------------------------------------------------- existing containers


@pytest.mark.parametrize("value,store", [
    ("dir:/var/lib/lxc/a/rootfs", "dir"),
    ("btrfs:/srv/b/a/rootfs", "btrfs"),
    ("loop:/var/lib/lxc/a/rootdev", "loop"),
    ("lvm:/dev/vg0/a", "lvm"),
    ("zfs:tank/lxc/a", "zfs"),
    ("overlay:/var/lib/lxc/base/rootfs:/var/lib/lxc/a/overlay/delta", "overlayfs"),
    ("overlayfs:/var/lib/lxc/base/rootfs:/var/lib/lxc/a/delta0", "overlayfs"),
    ("rbd:lxc/a", "rbd"),
    ("/dev/vg0/a", "lvm"),
    (["dir:/old", "loop:/x/rootdev"], "loop"),  # the last value counts
    (None, None),
    ("", None),
    ([], None),
])
def test_store_of_prefixed_and_devices(value, store):
    assert _bdev.store_of(value, probe=FakeProbe()) == store


def test_store_of_plain_paths():
    probe = FakeProbe(fstypes={"/b/a/rootfs": "btrfs", "/b/c/rootfs": "btrfs"}, inodes={"/b/a/rootfs": 256,
                      "/b/c/rootfs": 4711}, regular={"/l/rootdev"}, blocks={"/mnt/dev/sdz"})
    assert _bdev.store_of("/b/a/rootfs", probe) == "dir"  # a subvolume without btrfs: is a folder to LXC >= 4.0
    assert _bdev.store_of("/b/c/rootfs", probe) == "dir"  # a plain folder on btrfs
    assert _bdev.store_of("/l/rootdev", probe) == "loop"
    assert _bdev.store_of("/mnt/dev/sdz", probe) == "lvm"
    assert _bdev.store_of("/var/lib/lxc/a/rootfs", probe) == "dir"


def test_rootfs_location():
    assert _bdev.rootfs_location("loop:/x/rootdev") == "/x/rootdev"
    assert _bdev.rootfs_location("overlay:/base/rootfs:/x/overlay/delta") == "/x/overlay/delta"
    assert _bdev.rootfs_location("/x/rootfs") == "/x/rootfs"
    assert _bdev.rootfs_location(None) is None


def test_mismatch():
    assert _bdev.mismatch(None, "loop") is None
    assert _bdev.mismatch("best", "loop") is None
    assert _bdev.mismatch("loop", "loop") is None
    assert _bdev.mismatch("dir", None) is None
    msg = _bdev.mismatch("btrfs", "dir")
    assert msg.startswith("backing_store: the container exists with backing store dir")
    assert "clone it with backing_store: btrfs" in msg


# --------------------------------------------------------------------------- preflight


def test_preflight_lvm_without_device_mapper():
    probe = FakeProbe(tools={"lvcreate", "mkfs.ext4"}, files={"/proc/misc": " 10 loop-control\n"})
    with pytest.raises(BdevError) as err:
        _bdev.preflight("lvm", {}, "/var/lib/lxc", probe)
    assert str(err.value) == ("backing_store: lvm needs device-mapper, which this kernel does not have "
                              "(/sys/class/misc/device-mapper is missing)")
    assert probe.calls == []  # nothing asked of LVM before the kernel check


def test_preflight_lvm_without_tools():
    with pytest.raises(BdevError, match="backing_store: lvm needs lvcreate on PATH"):
        _bdev.preflight("lvm", {}, "/var/lib/lxc", FakeProbe())


def test_preflight_lvm_volume_group_and_thin_pool():
    base = dict(tools={"lvcreate", "mkfs.ext4"}, exists={"/sys/class/misc/device-mapper"})
    with pytest.raises(BdevError, match=r"volume group vg9 \(backing_store_options.vgname\), which does not exist"):
        _bdev.preflight("lvm", {"vgname": "vg9"}, "/l", FakeProbe(**base))
    with pytest.raises(BdevError, match=r"volume group lxc \(the default volume group"):
        _bdev.preflight("lvm", {}, "/l", FakeProbe(**base), defaults={"lxc.bdev.lvm.vg": "lxc"})
    runs = {("vgs", "--noheadings", "-o", "vg_name", "vg0"): (0, "  vg0\n", ""),
            ("lvs", "--noheadings", "-o", "lv_attr", "vg0/pool"): (0, "  -wi-a-----\n", "")}
    with pytest.raises(BdevError, match="backing_store_options.thinpool: vg0/pool is a logical volume but not a thin pool"):
        _bdev.preflight("lvm", {"vgname": "vg0", "thinpool": "pool"}, "/l", FakeProbe(runs=runs, **base))
    runs[("lvs", "--noheadings", "-o", "lv_attr", "vg0/pool")] = (0, "  twi-a-tz--\n", "")
    _bdev.preflight("lvm", {"vgname": "vg0", "thinpool": "pool"}, "/l", FakeProbe(runs=runs, **base))
    with pytest.raises(BdevError, match="lvm needs mkfs.xfs"):
        _bdev.preflight("lvm", {"vgname": "vg0", "fstype": "xfs"}, "/l", FakeProbe(runs=runs, **base))


def test_preflight_zfs():
    with pytest.raises(BdevError, match="backing_store: zfs needs zfs on PATH"):
        _bdev.preflight("zfs", {}, "/l", FakeProbe())
    with pytest.raises(BdevError, match=r"zfs needs the ZFS kernel module.*/dev/zfs is missing"):
        _bdev.preflight("zfs", {}, "/l", FakeProbe(tools={"zfs"}))
    probe = FakeProbe(tools={"zfs"}, exists={"/dev/zfs"})
    with pytest.raises(BdevError, match=r"dataset tank/lxc \(backing_store_options.zfsroot\), which does not exist"):
        _bdev.preflight("zfs", {"zfsroot": "tank/lxc"}, "/l", probe)
    assert probe.calls == [["zfs", "list", "-H", "-o", "name", "tank/lxc"]]
    ok = FakeProbe(tools={"zfs"}, exists={"/dev/zfs"},
                   runs={("zfs", "list", "-H", "-o", "name", "lxc"): (0, "lxc\n", "")})
    _bdev.preflight("zfs", {}, "/l", ok, defaults={"lxc.bdev.zfs.root": "lxc"})


def test_preflight_loop_btrfs_dir_and_root():
    with pytest.raises(BdevError, match=r"loop needs loop devices.*/dev/loop-control is missing"):
        _bdev.preflight("loop", {}, "/l", FakeProbe(tools={"mkfs.ext4"}))
    with pytest.raises(BdevError, match=r"loop needs mkfs.xfs on PATH \(backing_store_options.fstype: xfs\)"):
        _bdev.preflight("loop", {"fstype": "xfs"}, "/l", FakeProbe(exists={"/dev/loop-control"}, tools={"mkfs.ext4"}))
    _bdev.preflight("loop", {}, "/l", FakeProbe(exists={"/dev/loop-control"}, tools={"mkfs.ext4"}))
    with pytest.raises(BdevError, match="backing_store: loop needs root"):
        _bdev.preflight("loop", {}, "/l", FakeProbe(exists={"/dev/loop-control"}, tools={"mkfs.ext4"}, euid=1000))
    with pytest.raises(BdevError, match="backing_store: btrfs needs the lxc_path on a btrfs filesystem; /l is on ext4"):
        _bdev.preflight("btrfs", {}, "/l", FakeProbe())
    _bdev.preflight("btrfs", {}, "/b", FakeProbe(fstypes={"/b": "btrfs"}))
    with pytest.raises(BdevError, match="backing_store_options.dir: /r exists and is not empty"):
        _bdev.preflight("dir", {"dir": "/r"}, "/l", FakeProbe(nonempty={"/r"}))
    _bdev.preflight("dir", {}, "/l", FakeProbe())
    _bdev.preflight("best", {}, "/l", FakeProbe())
    _bdev.preflight(None, {}, "/l", FakeProbe())


def test_planned_store():
    assert _bdev.planned_store(None, {}, "/l", FakeProbe()) == "dir"
    assert _bdev.planned_store("loop", {}, "/l", FakeProbe()) == "loop"
    assert _bdev.planned_store("best", {}, "/b", FakeProbe(fstypes={"/b": "btrfs"})) == "btrfs"
    assert _bdev.planned_store("best", {}, "/l", FakeProbe()) == "dir"
    lvm_host = FakeProbe(tools={"lvcreate", "mkfs.ext4"}, exists={"/sys/class/misc/device-mapper"},
                         runs={("vgs", "--noheadings", "-o", "vg_name", "lxc"): (0, "lxc", "")})
    assert _bdev.planned_store("best", {}, "/l", lvm_host, {"lxc.bdev.lvm.vg": "lxc"}) == "lvm"


def test_fstype_from_mounts(tmp_path):
    probe = _bdev.HostProbe()
    probe.read = lambda path: ("/dev/sda1 / ext4 rw 0 0\n/dev/loop3 %s btrfs rw 0 0\n"
                               "tmpfs %s/sub\\040dir tmpfs rw 0 0\n" % (tmp_path, tmp_path))
    assert probe.fstype(str(tmp_path / "not" / "yet")) == "btrfs"  # nearest existing parent
    (tmp_path / "sub dir").mkdir()
    assert probe.fstype(str(tmp_path / "sub dir" / "x")) == "tmpfs"
    assert probe.fstype("/") == "ext4"
