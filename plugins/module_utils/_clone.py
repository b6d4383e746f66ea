# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Clones, ephemeral containers and base containers of the container module: the pure parts.

Option checks, the policy for a running source and the names of base containers. Nothing here
runs a command; ``_container_manager`` does (through ``LxcRunner.copy``).
"""

from __future__ import annotations

import hashlib
import os
import re

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bdev
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import validate_name

#: Options of the container module that this file owns (merged into its argument spec).
ARGUMENT_SPEC = dict(
    clone_from=dict(type="str"),
    clone_from_path=dict(type="path"),
    clone_snapshot=dict(type="bool", default=False),
    clone_stop_source=dict(type="bool", default=False),
    ephemeral=dict(type="bool", default=False),
    base=dict(
        type="dict",
        options=dict(
            name=dict(type="str"),
            snapshot=dict(type="bool", default=True),
        ),
    ),
)

SOURCES = ("template", "image", "rootfs_archive")
BASE_PREFIX = "lxcfleet-base-"
NAME_MAX = 64

# Backing stores whose snapshot is taken at one instant by the file system or volume manager, so
# that LXC may snapshot a running container (lxc-copy -s -a): what it sees is what a power cut would
# leave. An overlay snapshot instead keeps reading the source's rootfs as its lower layer.
ATOMIC_SNAPSHOT_STORES = ("btrfs", "zfs", "lvm")


def check_options(params: dict) -> list:
    """Problems with the clone, ephemeral and base options, each message naming the option."""
    p = params
    errors = []
    clone_from = p.get("clone_from")
    base = p.get("base")
    state = p.get("state")
    sources = [o for o in SOURCES if p.get(o) is not None]
    if clone_from is not None:
        error = validate_name(clone_from, option="clone_from")
        if error:
            errors.append(error)
        if sources:
            errors.append("clone_from and %s are mutually exclusive: give one creation source" % " and ".join(sources))
        if base is not None:
            errors.append("base: a base container is made from image, template or rootfs_archive; with clone_from the "
                          "source container is the base already (use clone_snapshot: true)")
        same_path = p.get("clone_from_path") is None or (
            p.get("lxc_path") is not None and os.path.normpath(p["clone_from_path"]) == os.path.normpath(p["lxc_path"]))
        if clone_from == p.get("name") and same_path:
            errors.append("clone_from: a container cannot be cloned onto itself (%s)" % clone_from)
    else:
        for option in ("clone_from_path",):
            if p.get(option) is not None:
                errors.append("%s needs clone_from" % option)
        for option in ("clone_snapshot", "clone_stop_source"):
            if p.get(option):
                errors.append("%s needs clone_from" % option)
    if p.get("ephemeral"):
        if state in ("present", "frozen", "restarted"):
            errors.append("ephemeral: an ephemeral container is destroyed by LXC when it stops, so it is started "
                          "(state=started) or stopped, which removes it (state=stopped or absent); state=%s does not "
                          "fit" % state)
        if base is not None:
            errors.append("ephemeral: an ephemeral container is cloned from clone_from, not from a base")
        if "lxc.ephemeral" in (p.get("config") or {}):
            errors.append("ephemeral: lxc.ephemeral is also set in config; give it one way only")
    if base is not None:
        if not sources and clone_from is None:
            errors.append("base: needs a creation source to make the base container from: image, template or "
                          "rootfs_archive")
        if base.get("name") is not None:
            error = validate_name(base["name"], option="base.name")
            if error:
                errors.append(error)
            elif base["name"] == p.get("name"):
                errors.append("base.name: the base container must have another name than the container (%s)"
                              % base["name"])
    return errors


def rootfs_store(rootfs_path) -> str:
    """The backing store of a container from its ``lxc.rootfs.path`` (``_bdev.store_of``; ``dir``
    without a rootfs)."""
    return _bdev.store_of(rootfs_path) or "dir"


def running_source_policy(store: str, snapshot: bool, stop_source: bool) -> tuple:
    """What to do when the source of a clone is running (or frozen).

    Returns ``("stop", None)`` (stop it, clone, start it again: only when the task says so),
    ``("allow", warning_or_None)`` (``lxc-copy --allowrunning``) or ``("fail", message)``.
    """
    if stop_source:
        return "stop", None
    if not snapshot:
        return "allow", ("copied while the source was running (lxc-copy --allowrunning): files written during the copy "
                         "may be inconsistent in the clone; clone_stop_source: true stops the source for the copy "
                         "and starts it again")
    if store in ATOMIC_SNAPSHOT_STORES:
        return "allow", None
    return "fail", ("the source keeps running and an overlay snapshot (clone_snapshot) uses its rootfs as the clone's "
                    "lower layer, which must not change under it. Set clone_stop_source: true to stop the source, "
                    "clone it and start it again, or clone_snapshot: false for a full copy of the running source")


def _short_hash(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _clean(part) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(part)).strip("._-") or "x"


def _fit(middle: str, suffix: str) -> str:
    """``BASE_PREFIX + middle + "-" + suffix`` shortened in the middle to a valid container name."""
    room = NAME_MAX - len(BASE_PREFIX) - len(suffix) - 1
    middle = middle[:max(room, 1)].rstrip("._-") or "x"
    return "%s%s-%s" % (BASE_PREFIX, middle, suffix)


def idmap_suffix(idmap) -> str:
    """A base made for an id map carries it in its name: a clone keeps the map of its base."""
    if not idmap:
        return ""
    return "-u" + _short_hash(*[" ".join(str(v).split()) for v in idmap])[:8]


def base_name_for_image(image: dict, sha256: str, idmap=None) -> str:
    """``lxcfleet-base-DIST-RELEASE-ARCH[-VARIANT]-<12 hex of the rootfs sha256>[-u<map hash>]``.

    A refreshed image (another rootfs) gives another base; containers made before keep theirs.
    """
    parts = [image.get("dist"), image.get("release"), image.get("arch")]
    if image.get("variant") not in (None, "", "default"):
        parts.append(image["variant"])
    middle = "-".join(_clean(p) for p in parts if p)
    return _fit(middle, (sha256 or "")[:12].lower() + idmap_suffix(idmap))


def base_name_for_template(template: str, template_options, idmap=None, template_stat=None) -> str:
    """``lxcfleet-base-tpl-NAME-<12 hex of name, options and the template script's size and mtime>``."""
    stamp = _short_hash(template, list(template_options or []), template_stat)[:12]
    return _fit("tpl-" + _clean(os.path.basename(template).replace("lxc-", "", 1)), stamp + idmap_suffix(idmap))


def file_stamp(path) -> tuple | None:
    """(realpath, size, mtime in ns) of a file, or None when there is none."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


def base_name_for_archive(archive: str, metadata=None, template_options=(), idmap=None,
                          archive_stamp=None, metadata_stamp=None) -> str:
    """``lxcfleet-base-archive-FILE-<12 hex of the archive's path, size and mtime (and its metadata's)>``."""
    archive_stamp = archive_stamp or file_stamp(archive)
    metadata_stamp = metadata_stamp or file_stamp(metadata)
    stamp = _short_hash(archive_stamp, metadata_stamp, list(template_options or []))[:12]
    stem = os.path.basename(archive or "rootfs")
    for ext in (".tar.xz", ".tar.gz", ".tar.zst", ".tar.bz2", ".tar", ".txz", ".tgz"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return _fit("archive-" + _clean(stem), stamp + idmap_suffix(idmap))
