# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Backing stores of a container's root filesystem (``lxc-create -B``).

Three parts, all before anything changes:

* ``validate(store, options)``: the options of ``backing_store_options`` that apply to the chosen
  store, checked and normalised (an option that does not apply is an error naming both).
* ``create_args(store, options)``: the ``lxc-create`` argv pieces (``-B lvm --vgname X ...``).
* ``preflight(store, options, lxc_path, host)``: what the host must have for that store (a btrfs
  lxc path, device-mapper and the volume group, ZFS and the dataset, loop devices and mkfs ...),
  with messages that name the option and say what is missing.

And for existing containers: ``store_of(lxc.rootfs.path)``, the store a container has.
"""

from __future__ import annotations

import os
import re
import shutil

#: What ``backing_store`` accepts. ``best`` lets LXC pick: btrfs, zfs, lvm, then dir.
STORES = ("dir", "btrfs", "loop", "lvm", "zfs", "overlayfs", "best")

#: The argument spec of ``backing_store_options``.
OPTIONS_SPEC = dict(
    fstype=dict(type="str"),
    fssize=dict(type="str"),
    vgname=dict(type="str"),
    lvname=dict(type="str"),
    thinpool=dict(type="str"),
    zfsroot=dict(type="str"),
    dir=dict(type="path"),
)

#: Which stores each option applies to. ``best`` passes the block and zfs options on to LXC, which
#: uses them if it picks that store.
APPLIES_TO = {
    "fstype": ("loop", "lvm", "best"),
    "fssize": ("loop", "lvm", "best"),
    "vgname": ("lvm", "best"),
    "lvname": ("lvm", "best"),
    "thinpool": ("lvm", "best"),
    "zfsroot": ("zfs", "best"),
    "dir": ("dir",),
}

#: lxc-create's long option for each of ours.
_FLAGS = {"fstype": "--fstype", "fssize": "--fssize", "vgname": "--vgname", "lvname": "--lvname",
          "thinpool": "--thinpool", "zfsroot": "--zfsroot", "dir": "--dir"}

#: Prefixes of lxc.rootfs.path and the store they mean (LXC writes ``overlay:``; ``overlayfs:`` is
#: the old spelling).
_PREFIXES = {"dir": "dir", "btrfs": "btrfs", "loop": "loop", "lvm": "lvm", "zfs": "zfs", "overlay": "overlayfs",
             "overlayfs": "overlayfs", "rbd": "rbd", "nbd": "nbd", "aufs": "aufs"}

_UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# Patterns as text: re compiles (and caches) them on first use, which a run that changes nothing never makes.
_SIZE_RE = r"^\s*(\d+)\s*([bBkKmMgGtT])(?:i?[bB])?\s*$"
_FSTYPE_RE = r"^[a-z0-9][a-z0-9._-]{0,31}$"
# LVM: letters, digits and "+_.-", not starting with "-" (lvm(8) "VALID NAMES").
_LVM_NAME_RE = r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$"
_ZFS_COMPONENT_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"

BTRFS_SUBVOLUME_INO = 256  # the inode number of every btrfs subvolume's root directory


class BdevError(Exception):
    """Bad backing store input or a host that lacks what the store needs. The message names the option."""


# --------------------------------------------------------------------------- input


def parse_size(value, option="backing_store_options.fssize") -> int:
    """Bytes of a size with a unit (``512M``, ``2G``, ``64MiB``; powers of 1024, as LXC reads them)."""
    match = re.match(_SIZE_RE, str(value))
    if not match:
        raise BdevError("%s: %r is not a size; give a number and a unit, for example 512M or 2G (B, K, M, G, T)"
                        % (option, value))
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size <= 0:
        raise BdevError("%s: %r must be more than 0" % (option, value))
    return size


def format_size(size: int) -> str:
    """The largest exact unit: 67108864 -> ``64M``."""
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return "%d%s" % (size // _UNITS[unit], unit)
    return "%dB" % size


def validate(store, options) -> dict:
    """The options given for ``store``, checked and normalised (None values dropped, sizes as
    ``<n><unit>``). Raises BdevError naming the option."""
    given = dict((k, v) for k, v in (options or {}).items() if v is not None)
    if store is not None and store not in STORES:
        raise BdevError("backing_store: %r is not one of %s" % (store, ", ".join(STORES)))
    unknown = sorted(k for k in given if k not in OPTIONS_SPEC)
    if unknown:
        raise BdevError("backing_store_options: unknown option(s) %s; known: %s"
                        % (", ".join(unknown), ", ".join(sorted(OPTIONS_SPEC))))
    if given and store is None:
        raise BdevError("backing_store_options (%s) need backing_store: name the store they are for"
                        % ", ".join(sorted(given)))
    for key in sorted(given):
        if store not in APPLIES_TO[key]:
            raise BdevError("backing_store_options.%s does not apply to backing_store: %s (only to %s)"
                            % (key, store, ", ".join(s for s in APPLIES_TO[key] if s != "best")))
    result = {}
    for key, value in sorted(given.items()):
        option = "backing_store_options.%s" % key
        value = str(value)
        if key == "fssize":
            value = format_size(parse_size(value, option))
        elif key == "fstype":
            if not re.match(_FSTYPE_RE, value):
                raise BdevError("%s: %r is not a filesystem type (for example ext4, xfs, btrfs)" % (option, value))
        elif key in ("vgname", "lvname", "thinpool"):
            if not re.match(_LVM_NAME_RE, value) or value in (".", ".."):
                raise BdevError("%s: %r is not a valid LVM name (letters, digits and +_.-, not starting with -)"
                                % (option, value))
        elif key == "zfsroot":
            parts = value.split("/")
            if value.startswith("/") or value.endswith("/") or not all(re.match(_ZFS_COMPONENT_RE, p) for p in parts):
                raise BdevError("%s: %r is not a ZFS dataset name (pool/dataset, for example tank/lxc; no leading /)"
                                % (option, value))
        elif key == "dir":
            if not os.path.isabs(value):
                raise BdevError("%s: %r must be an absolute path" % (option, value))
            value = os.path.normpath(value)
        result[key] = value
    return result


def create_args(store, options) -> list:
    """``lxc-create`` arguments for the store and its (validated) options; [] for LXC's default."""
    if store is None:
        return []
    args = ["-B", store]
    for key in ("vgname", "lvname", "thinpool", "zfsroot", "fstype", "fssize", "dir"):
        if options.get(key) is not None:
            args += [_FLAGS[key], options[key]]
    return args


def copy_args(store, options) -> list:
    """``lxc-copy`` arguments: it takes ``-B`` and ``-L`` (the size of a new block device) only."""
    if store is None:
        return []
    extra = sorted(k for k in options if k != "fssize")
    if extra:
        raise BdevError("backing_store_options.%s cannot be used for a clone: lxc-copy takes only the store and "
                        "fssize" % extra[0])
    args = ["-B", store]
    if options.get("fssize"):
        args += ["-L", options["fssize"]]
    return args


# --------------------------------------------------------------------------- existing containers


def store_of(rootfs_path, probe=None):
    """The backing store of a container from its ``lxc.rootfs.path``, in the words of the
    ``backing_store`` option: the prefix LXC writes (``dir:``, ``btrfs:``, ``loop:``, ``lvm:``,
    ``zfs:``, ``overlay:`` is ``overlayfs``), or for a plain path what LXC 4.0 and later detect: their
    storage drivers are probed dir first, so a folder is ``dir`` (also a btrfs subvolume: LXC writes
    ``btrfs:`` for the containers it puts on btrfs), a block device ``lvm``, a regular file ``loop``.
    None when the config has no rootfs (the host's /). ``probe`` answers questions about the plain
    path (default: this host's filesystem). The container, snapshot, clone and archive code all use
    this one answer."""
    if isinstance(rootfs_path, list):
        rootfs_path = rootfs_path[-1] if rootfs_path else None
    if not rootfs_path:
        return None
    value = str(rootfs_path).strip()
    prefix, sep, _rest = value.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES[prefix]
    probe = probe or HostProbe()
    if value.startswith("/dev/") or probe.is_block_device(value):
        return "lvm"
    if probe.is_file(value):
        return "loop"
    return "dir"


def rootfs_location(rootfs_path):
    """The path part of lxc.rootfs.path (``loop:/x/rootdev`` -> ``/x/rootdev``; for overlay the
    upper layer, the last part)."""
    if isinstance(rootfs_path, list):
        rootfs_path = rootfs_path[-1] if rootfs_path else None
    if not rootfs_path:
        return None
    prefix, sep, rest = str(rootfs_path).partition(":")
    if sep and prefix in _PREFIXES:
        return rest.split(":")[-1] if _PREFIXES[prefix] == "overlayfs" else rest
    return str(rootfs_path)


def mismatch(wanted, current):
    """A message when an existing container's store differs from the task's, else None. ``best``
    and an unset backing_store accept any store."""
    if wanted in (None, "best") or current is None or wanted == current:
        return None
    return ("backing_store: the container exists with backing store %s; the store of an existing container "
            "cannot be changed: recreate it, or clone it with backing_store: %s" % (current, wanted))


# --------------------------------------------------------------------------- host preflight


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class HostProbe:
    """Questions about this host. Commands run through ``run(argv) -> (rc, out, err)`` (the module's
    run_command); tests give a fake."""

    def __init__(self, run=None, euid=None):
        self._run = run
        self.euid = os.geteuid() if euid is None else euid

    def run(self, argv):
        if self._run is None:
            return 127, "", "no command runner"
        return self._run(argv)

    @staticmethod
    def which(tool):
        return shutil.which(tool, path=os.environ.get("PATH", "") + ":/sbin:/usr/sbin:/usr/local/sbin")

    @staticmethod
    def exists(path):
        return os.path.exists(path)

    @staticmethod
    def is_file(path):
        return os.path.isfile(path)

    @staticmethod
    def is_block_device(path):
        import stat

        try:
            return stat.S_ISBLK(os.stat(path).st_mode)
        except OSError:
            return False

    @staticmethod
    def inode(path):
        try:
            return os.stat(path).st_ino
        except OSError:
            return None

    @staticmethod
    def read(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def fstype(self, path):
        """Filesystem type of the mount that holds ``path`` (or its nearest existing parent), from
        /proc/self/mounts: the longest mount point that contains it, the last one mounted wins."""
        path = os.path.abspath(path)
        while not os.path.exists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        path = os.path.realpath(path)
        best, best_type = "", None
        for line in self.read("/proc/self/mounts").splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            target = _unescape_mount(fields[1])
            inside = path == target or path.startswith(target.rstrip("/") + "/")
            if inside and len(target) >= len(best):
                best, best_type = target, fields[2]
        return best_type

    def empty_or_missing(self, path):
        try:
            return not os.listdir(path)
        except FileNotFoundError:
            return True
        except OSError:
            return False


def _needs_root(store, probe):
    if probe.euid != 0:
        raise BdevError("backing_store: %s needs root (it attaches block devices and makes filesystems); this runs "
                        "as uid %d: use dir or btrfs, or become root" % (store, probe.euid))


def _needs_tool(store, tool, probe, why=""):
    if not probe.which(tool):
        raise BdevError("backing_store: %s needs %s on PATH%s, which this host does not have" % (store, tool, why))


def preflight(store, options, lxc_path, probe, defaults=None):
    """Raise BdevError if this host cannot create a container with ``store`` in ``lxc_path``.
    ``defaults`` are LXC's global values (``lxc.bdev.lvm.vg``, ``lxc.bdev.lvm.thin_pool``,
    ``lxc.bdev.zfs.root``) used when an option is not given."""
    defaults = defaults or {}
    options = options or {}
    if store in (None, "best"):
        return
    if store == "dir":
        where = options.get("dir")
        if where and not probe.empty_or_missing(where):
            raise BdevError("backing_store_options.dir: %s exists and is not empty; the template would write into it"
                            % where)
        return
    if store == "btrfs":
        fstype = probe.fstype(lxc_path)
        if fstype != "btrfs":
            raise BdevError("backing_store: btrfs needs the lxc_path on a btrfs filesystem; %s is on %s"
                            % (lxc_path, fstype or "an unknown filesystem"))
        return
    if store == "overlayfs":
        module_dir = "/lib/modules/%s/kernel/fs/overlayfs" % os.uname().release
        if "overlay" not in probe.read("/proc/filesystems").split() and not probe.exists(module_dir):
            raise BdevError("backing_store: overlayfs needs the overlay filesystem, which this kernel does not have "
                            "(no overlay in /proc/filesystems, no %s)" % module_dir)
        return
    if store == "loop":
        _needs_root(store, probe)
        if not probe.exists("/dev/loop-control"):
            raise BdevError("backing_store: loop needs loop devices, which this host does not have "
                            "(/dev/loop-control is missing)")
        fstype = options.get("fstype", "ext4")
        _needs_tool(store, "mkfs." + fstype, probe, " (backing_store_options.fstype: %s)" % fstype)
        return
    if store == "lvm":
        _needs_root(store, probe)
        _needs_tool(store, "lvcreate", probe, " (package lvm2)")
        if not (probe.exists("/sys/class/misc/device-mapper") or
                "device-mapper" in probe.read("/proc/misc").split()):
            raise BdevError("backing_store: lvm needs device-mapper, which this kernel does not have "
                            "(/sys/class/misc/device-mapper is missing)")
        fstype = options.get("fstype", "ext4")
        _needs_tool(store, "mkfs." + fstype, probe, " (backing_store_options.fstype: %s)" % fstype)
        vgname = options.get("vgname") or defaults.get("lxc.bdev.lvm.vg") or "lxc"
        option = "backing_store_options.vgname" if options.get("vgname") else "the default volume group (lxc.bdev.lvm.vg)"
        rc, _out, err = probe.run(["vgs", "--noheadings", "-o", "vg_name", vgname])
        if rc != 0:
            raise BdevError("backing_store: lvm needs the volume group %s (%s), which does not exist: %s"
                            % (vgname, option, " ".join(err.split()) or "vgs rc=%d" % rc))
        if options.get("thinpool"):
            thin = "%s/%s" % (vgname, options["thinpool"])
            rc, out, err = probe.run(["lvs", "--noheadings", "-o", "lv_attr", thin])
            if rc != 0:
                raise BdevError("backing_store_options.thinpool: the thin pool %s does not exist: %s"
                                % (thin, " ".join(err.split()) or "lvs rc=%d" % rc))
            if not out.strip().startswith("t"):
                raise BdevError("backing_store_options.thinpool: %s is a logical volume but not a thin pool "
                                "(attributes %s)" % (thin, out.strip()))
        return
    if store == "zfs":
        _needs_root(store, probe)
        _needs_tool(store, "zfs", probe, " (package zfsutils-linux)")
        if not probe.exists("/dev/zfs"):
            raise BdevError("backing_store: zfs needs the ZFS kernel module, which this host does not have "
                            "(/dev/zfs is missing)")
        root = options.get("zfsroot") or defaults.get("lxc.bdev.zfs.root") or "lxc"
        option = "backing_store_options.zfsroot" if options.get("zfsroot") else "the default (lxc.bdev.zfs.root)"
        rc, _out, err = probe.run(["zfs", "list", "-H", "-o", "name", root])
        if rc != 0:
            raise BdevError("backing_store: zfs needs the dataset %s (%s), which does not exist: %s"
                            % (root, option, " ".join(err.split()) or "zfs list rc=%d" % rc))
        return


def planned_store(store, options, lxc_path, probe, defaults=None):
    """What a new container will have: the store asked for, LXC's default ``dir`` when none is, and
    for ``best`` what LXC picks: the first of btrfs (lxc_path on btrfs), zfs (the zfsroot dataset
    exists), lvm (the volume group exists) and dir."""
    if store is None:
        return "dir"
    if store != "best":
        return store
    if probe.fstype(lxc_path) == "btrfs":
        return "btrfs"
    for candidate in ("zfs", "lvm"):
        try:
            preflight(candidate, dict((k, v) for k, v in (options or {}).items() if candidate in APPLIES_TO[k]),
                      lxc_path, probe, defaults)
        except BdevError:
            continue
        return candidate
    return "dir"
