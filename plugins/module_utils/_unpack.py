# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Safe unpacking of rootfs tarballs: every member is checked before anything is written.

A rootfs needs owners, modes (setuid included), xattrs and, for privileged containers, device
nodes. What it must never have: a member that escapes the rootfs (``../x``, an absolute name), a
member written through a symlink (``etc/evil -> /etc`` then ``etc/evil/pwned``), a hard link to
something outside (``/etc/shadow``, ``../../etc/shadow``) or to a member not seen before, and, in
an unprivileged unpack, a device node that the image's ``excludes-user`` does not exclude.

``check_archive`` reads the whole archive (one pass, nothing written) and returns a summary, or
raises UnpackError naming the first bad member. The extraction itself is then left to LXC's
``local`` template (GNU tar, in the container's user namespace when unprivileged), which is fast and
maps owners; since every member was checked, tar extracts exactly what was checked. A summary can be
kept next to an archive that does not change (the image cache), keyed by its sha256, so a cached
image is read once.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import tarfile

SIDECAR_SUFFIX = ".lxcfleet-checked.json"
SIDECAR_VERSION = 2


class UnpackError(Exception):
    """An archive or a metadata file that must not be unpacked; the message names the member."""


def normalize(name: str):
    """A member name as a clean relative path ('' for the root itself), or None when it escapes."""
    if "\0" in name:
        return None
    stripped = name
    while stripped.startswith("./"):
        stripped = stripped[2:]
    if stripped in (".", ""):
        return ""
    if stripped.startswith("/"):
        return None
    parts = []
    for part in stripped.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)


def excluded(name: str, patterns) -> bool:
    """Like GNU tar's ``--anchored --exclude=PATTERN``: the pattern matches the member name (without
    a leading ./) or one of its leading directories."""
    for pattern in patterns:
        pattern = pattern.strip()
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if not pattern:
            continue
        path = name
        while path:
            if fnmatch.fnmatchcase(path, pattern):
                return True
            path = posixpath.dirname(path)
    return False


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "fifo"
    return "other"


def check_members(members) -> dict:
    """Check TarInfo members in order; return a summary or raise UnpackError."""
    seen = {}  # normalized name -> kind
    symlinks = set()
    devices = []
    device_ids = {}  # name -> ["c" or "b", major, minor]
    count = 0
    for member in members:
        count += 1
        name = normalize(member.name)
        if name is None:
            raise UnpackError("member %r escapes the rootfs" % member.name)
        kind = _kind(member)
        if kind == "other":
            raise UnpackError("member %r has a type a rootfs does not need (%r)" % (member.name, member.type))
        if name == "":
            if kind != "dir":
                raise UnpackError("member %r replaces the rootfs folder itself" % member.name)
            continue
        # No member is written through a symlink that the archive made.
        parent = posixpath.dirname(name)
        while parent:
            if parent in symlinks:
                raise UnpackError("member %r would be written through the symlink %r" % (member.name, parent))
            if seen.get(parent) not in (None, "dir"):
                raise UnpackError("member %r is below %r, which is not a directory" % (member.name, parent))
            parent = posixpath.dirname(parent)
        if name in symlinks and kind != "symlink":
            # Replacing a symlink by a file is what tar does, but it is never what a rootfs needs.
            raise UnpackError("member %r replaces a symlink of the same archive" % member.name)
        if kind == "hardlink":
            target = normalize(member.linkname)
            if target is None or member.linkname.startswith("/"):
                raise UnpackError("hard link %r points outside the rootfs (%r)" % (member.name, member.linkname))
            if seen.get(target) != "file":
                raise UnpackError("hard link %r points to %r, which is not a file of this archive before it"
                                  % (member.name, member.linkname))
        if kind == "symlink":
            symlinks.add(name)
        else:
            symlinks.discard(name)
        if kind == "device":
            devices.append(name)
            device_ids[name] = ["b" if member.isblk() else "c", member.devmajor, member.devminor]
        seen[name] = kind
    return {"members": count, "devices": devices, "device_ids": device_ids, "symlinks": sorted(symlinks)}


def check_archive(path: str) -> dict:
    """Read the whole archive, check every member; return the summary (with its sha256)."""
    digest = hashlib.sha256()

    class _Hashing:
        def __init__(self, handle):
            self.handle = handle

        def read(self, size=-1):
            data = self.handle.read(size)
            digest.update(data)
            return data

    try:
        with open(path, "rb") as raw:
            magic = raw.read(6)
            raw.seek(0)
            hashing = _Hashing(raw)
            # The decompressor is opened here (not by tarfile) so that a truncated stream is an
            # error: reading it to its end raises EOFError when the end-of-stream marker is missing.
            if magic.startswith(b"\xfd7zXZ\x00"):
                stream = lzma.LZMAFile(hashing)
            elif magic.startswith(b"\x1f\x8b"):
                stream = gzip.GzipFile(fileobj=hashing)
            elif magic.startswith(b"BZh"):
                stream = bz2.BZ2File(hashing)
            else:
                stream = hashing
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                summary = check_members(archive)
            while stream.read(1 << 20):
                pass  # the rest: padding after the end-of-archive blocks, and the stream's end marker
            while hashing.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        raise UnpackError("%s is not a readable tar archive: %s" % (path, exc))
    summary["sha256"] = digest.hexdigest()
    return summary


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: str) -> str:
    """Where a check's summary of ``path`` is kept: a hidden file next to it."""
    return os.path.join(os.path.dirname(path), "." + os.path.basename(path) + SIDECAR_SUFFIX)


def remember(path: str, summary: dict) -> None:
    """Keep a check's summary next to the archive it describes (see ``checked_archive``)."""
    record = dict(summary, version=SIDECAR_VERSION)
    sidecar = sidecar_path(path)
    tmp = "%s.%d.tmp" % (sidecar, os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(tmp, sidecar)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def checked_archive(path: str, keep: bool, write: bool = True) -> dict:
    """``check_archive``, remembered next to the archive when ``keep`` (a cache the caller owns;
    ``write=False`` uses a record but makes none, for check mode). A remembered summary is used only
    while the archive's sha256 is the same."""
    sidecar = sidecar_path(path)
    if keep:
        try:
            with open(sidecar, encoding="utf-8") as handle:
                known = json.load(handle)
            if known.get("version") == SIDECAR_VERSION and known.get("sha256") == sha256_file(path):
                return known
        except (OSError, ValueError):
            pass
    summary = check_archive(path)
    if keep and write:
        remember(path, summary)
    return summary


def unprivileged_problems(summary: dict, excludes) -> list:
    """Device nodes an unprivileged unpack would meet (the user namespace cannot create them)."""
    return [d for d in summary["devices"] if not excluded(d, excludes)]


def check_templates(lines, summary: dict) -> list:
    """The ``templates`` entries of an image as rootfs-relative paths, each of which resolves inside
    the rootfs: relative after its leading /, no ``..``, not a symlink nor below one of the archive.
    Raises UnpackError for the first that does not."""
    symlinks = set(summary.get("symlinks", []))
    entries = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        name = normalize(entry.lstrip("/"))
        if not name:
            raise UnpackError("templates: %r does not name a file inside the rootfs" % entry)
        path = name
        while path:
            if path in symlinks:
                raise UnpackError("templates: %r goes through the symlink %r of the image, so it may not resolve "
                                  "inside the rootfs" % (entry, path))
            path = posixpath.dirname(path)
        entries.append("/" + name)
    return entries


def read_lines(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


#: Files of an image's metadata that LXC's local template reads (each may have a -user variant).
META_FILES = ("config", "config-user", "excludes", "excludes-user", "templates", "templates-user", "fstab",
              "fstab-user", "create-message", "create-message-user", "expiry")


def extract_metadata(path: str, folder: str) -> dict:
    """The files of a metadata tarball (regular files at its top level only), extracted into folder."""
    os.makedirs(folder, exist_ok=True)
    found = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = normalize(member.name)
                if name == "" and member.isdir():
                    continue
                if name is None or "/" in name or not member.isreg():
                    raise UnpackError("member %r of %s is not a plain file at the top level" % (member.name, path))
                if member.size > 1 << 20:
                    raise UnpackError("member %r of %s is larger than 1 MiB" % (member.name, path))
                if name not in META_FILES:
                    continue
                target = os.path.join(folder, name)
                with archive.extractfile(member) as src, open(target, "wb") as dst:
                    dst.write(src.read())
                found[name] = target
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnpackError("%s is not a readable metadata tarball: %s" % (path, exc))
    if "config" not in found:
        raise UnpackError("%s has no config file" % path)
    return found


def write_checked_metadata(meta: dict, templates: dict, folder: str) -> str:
    """A meta.tar.xz for LXC's local template: the image's metadata files, with the templates lists
    replaced by their checked entries."""
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "meta.tar.xz")
    with tarfile.open(path, "w:xz") as archive:
        for name in META_FILES:
            if name in templates:
                data = "".join(entry + "\n" for entry in templates[name]).encode()
            elif name in meta:
                with open(meta[name], "rb") as handle:
                    data = handle.read()
            else:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    os.chmod(path, 0o644)
    return path


#: LXC template that unpacks a checked rootfs tarball. LXC's own ``local`` template does the same
#: but drops extended attributes (file capabilities such as ping's cap_net_raw); this one keeps them
#: (all of them for a privileged container; ``security.capability`` and ``user.*`` in a user
#: namespace, where the kernel refuses trusted.* ones). lxc-create runs it (in the container's user
#: namespace when the container is unprivileged) with --path/--name/--rootfs and, for an unprivileged
#: container, --mapped-uid/--mapped-gid; the module adds --fstree, --metadata, --template-config and
#: --hook-dir. The metadata tarball is the one the module wrote from checked files.
TEMPLATE_SCRIPT = r"""#!/bin/sh
# lxcfleet.lxc: unpack a checked rootfs tarball for lxc-create (written by the container module).
set -eu
path=; name=; rootfs=; fstree=; metadata=; mapped=; template_config=/usr/share/lxc/config; hook_dir=/usr/share/lxc/hooks
while [ "$#" -gt 0 ]; do
  case "$1" in
    --path=*) path=${1#*=}; shift ;;
    --name=*) name=${1#*=}; shift ;;
    --rootfs=*) rootfs=${1#*=}; shift ;;
    --path|--name|--rootfs|--fstree|--metadata|--mapped-uid|--mapped-gid|--template-config|--hook-dir)
      [ "$#" -ge 2 ] || { echo "lxcfleet-unpack: $1 needs a value" >&2; exit 1; }
      case "$1" in
        --path) path=$2 ;; --name) name=$2 ;; --rootfs) rootfs=$2 ;; --fstree) fstree=$2 ;;
        --metadata) metadata=$2 ;; --mapped-uid) mapped=$2 ;; --template-config) template_config=$2 ;;
        --hook-dir) hook_dir=$2 ;;
      esac
      shift 2 ;;
    *) shift ;;
  esac
done
for value in "$path" "$name" "$rootfs" "$fstree" "$metadata"; do
  [ -n "$value" ] || { echo "lxcfleet-unpack: --path, --name, --rootfs, --fstree and --metadata are needed" >&2; exit 1; }
done
mode=system
[ -n "$mapped" ] && mode=user
meta=$(mktemp -d)
trap 'rm -rf "$meta"' EXIT
tar -xJf "$metadata" -C "$meta"
pick() {
  if [ -e "$meta/$1-$mode" ]; then echo "$meta/$1-$mode"; else echo "$meta/$1"; fi
}
set --
if [ -f "$(pick excludes)" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] && set -- "$@" "--exclude=$line"
  done < "$(pick excludes)"
fi
if [ "$mode" = user ]; then
  set -- "$@" --xattrs --xattrs-include=security.capability --xattrs-include='user.*'
else
  set -- "$@" --xattrs --xattrs-include='*'
fi
mkdir -p "$rootfs"
tar --anchored "$@" --numeric-owner -xpf "$fstree" -C "$rootfs"
mkdir -p "$rootfs/dev/pts"
config=$(pick config)
[ -f "$config" ] || { echo "lxcfleet-unpack: the metadata has no config" >&2; exit 1; }
# The image's config first, then the keys lxc-create wrote (the task's initial config), the name, and
# the interfaces last, as LXC's local template orders them.
own="$meta/own-config"
cp "$path/config" "$own"
{
  echo ""
  echo "# Distribution configuration"
  cat "$config"
  echo ""
  echo "# Container specific configuration"
  grep -E '^[[:space:]]*lxc\.' "$own" | grep -Ev '^[[:space:]]*lxc\.net\.' || true
  if [ -f "$(pick fstab)" ]; then
    cp "$(pick fstab)" "$path/fstab"
    echo "lxc.mount.fstab = $path/fstab"
  fi
  echo "lxc.uts.name = $name"
  if grep -Eq '^[[:space:]]*lxc\.net\.' "$own"; then
    echo ""
    echo "# Network configuration"
    grep -E '^[[:space:]]*lxc\.net\.' "$own"
  fi
} > "$path/config"
substitute() {
  sed -i -e "s#LXC_NAME#$name#g" -e "s#LXC_PATH#$path#g" -e "s#LXC_ROOTFS#$rootfs#g" \
    -e "s#LXC_TEMPLATE_CONFIG#$template_config#g" -e "s#LXC_HOOK_DIR#$hook_dir#g" "$1"
}
substitute "$path/config"
[ -f "$path/fstab" ] && substitute "$path/fstab"
if [ -f "$(pick templates)" ]; then
  # Checked entries: inside the rootfs, through no symlink of the archive; a symlink is never followed.
  while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    target="$rootfs/${line#/}"
    if [ -f "$target" ] && [ ! -L "$target" ]; then substitute "$target"; fi
  done < "$(pick templates)"
fi
if [ -f "$(pick create-message)" ]; then cat "$(pick create-message)"; fi
exit 0
"""


def write_template(folder: str) -> str:
    """The unpack template as an executable file in ``folder``; returns its path."""
    path = os.path.join(folder, "lxcfleet-unpack")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(TEMPLATE_SCRIPT)
    os.chmod(path, 0o755)
    return path


def lxc_share_dirs():
    """LXC's template config and hook folders, as LXC's templates substitute them."""
    for prefix in ("/usr/share/lxc", "/usr/local/share/lxc"):
        if os.path.isdir(os.path.join(prefix, "config")):
            return os.path.join(prefix, "config"), os.path.join(prefix, "hooks")
    return "/usr/share/lxc/config", "/usr/share/lxc/hooks"
