# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Export of a stopped container to one archive file, and import of such a file as a new container.

The archive is a tar file (compressed or not) with these members, in this order:
``lxcfleet-archive.json`` (the manifest), ``config`` (the container's config as it was), the hook
scripts of the container's folder that the config runs (``hook-NAME``, listed in the manifest;
version 2) and ``rootfs`` with everything below it. GNU tar writes and unpacks it (``--numeric-owner --xattrs
--xattrs-include=* --acls``); for an unprivileged container it runs inside the container's user
namespace (``lxc-usernsexec``), so the archive holds container ids and an import under another
subordinate range shifts them on the way in. Python only reads the archive, to check every member
before anything is unpacked (``_unpack.check_members`` for the rootfs).
"""

from __future__ import annotations

import bz2
import copy
import datetime
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bdev, _unpack, _unpriv
from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import ConfigLine, LxcConfig
from ansible_collections.lxcfleet.lxc.plugins.module_utils._container_manager import (
    describe_container,
    make_traversable_dirs,
    plan_default_idmap,
)
from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import LxcError, LxcRunner, validate_name

MANIFEST = "lxcfleet-archive.json"
FORMAT = "lxcfleet.lxc/container-archive"
VERSION = 2
KNOWN_VERSIONS = (1, 2)
#: Hook scripts in the container's folder (the container module's ``hooks`` installs them there).
HOOK_MEMBER_RE = re.compile(r"^hook-[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
#: Largest manifest and config accepted on import.
SMALL_FILE = 1 << 20
#: tar options for each compression, and the magic bytes that tell them apart on import.
COMPRESSION_FLAGS = {"gzip": ["--gzip"], "xz": ["--xz"], "zstd": ["--zstd"], "bzip2": ["--bzip2"], "none": []}
DEFAULT_COMPRESSION = "gzip"
#: What GNU tar must keep: numeric owners, every xattr, POSIX ACLs, setuid bits, holes.
KEEP = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse"]


class ArchiveError(Exception):
    """An archive that must not be imported, or a container that cannot be exported."""


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def rootfs_of(config: LxcConfig, container_dir: str):
    """(backing store, rootfs folder) of a container's config; the folder is None when the rootfs is not
    a plain folder on the host (loop, lvm, zfs, overlay: a mount would be needed)."""
    value = config.get_one("lxc.rootfs.path") or os.path.join(container_dir, "rootfs")
    kind = _bdev.store_of(value)
    _prefix, sep, rest = value.partition(":")
    if not sep:
        rest = value
    if kind in ("dir", "btrfs") and rest.startswith("/"):
        return kind, rest
    return kind, None


def hook_files(config: LxcConfig, container_dir: str) -> list:
    """The hook scripts of the container's own folder that its config runs (``lxc.hook.* =
    <folder>/hook-NAME ...``): regular files only, sorted. Hooks elsewhere on the host are the host's
    business and stay out of the archive (their paths are kept in the config)."""
    names = set()
    folder = container_dir.rstrip("/") + "/"
    for line in config.lines:
        if line.kind != "entry" or not line.key.startswith("lxc.hook.") or not line.value:
            continue
        program = line.value.split()[0]
        name = program[len(folder):] if program.startswith(folder) else None
        if name and HOOK_MEMBER_RE.match(name):
            try:
                if stat.S_ISREG(os.lstat(program).st_mode):
                    names.add(name)
            except OSError:
                pass
    return sorted(names)


def make_manifest(name: str, lxc_path: str, config: LxcConfig, backing_store: str, compression: str,
                  created: str = None, hooks=()) -> dict:
    idmap = [" ".join(v.split()) for v in config.get_effective("lxc.idmap")]
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "lxc_path": lxc_path,
        "container_dir": os.path.join(lxc_path, name),
        "arch": config.get_one("lxc.arch") or os.uname().machine,
        "unprivileged": bool(idmap),
        "idmap": idmap,
        "backing_store": backing_store,
        "compression": compression,
        "hooks": list(hooks),
        "created": created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def check_manifest(data: bytes) -> dict:
    """The manifest of an archive, or ArchiveError naming what is wrong with it."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError("%s is not valid JSON: %s" % (MANIFEST, exc))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("%s does not describe a container archive of lxcfleet.lxc (format %r)"
                           % (MANIFEST, manifest.get("format") if isinstance(manifest, dict) else None))
    if manifest.get("version") not in KNOWN_VERSIONS:
        raise ArchiveError("%s has version %r; this collection reads version %s"
                           % (MANIFEST, manifest.get("version"), ", ".join(str(v) for v in KNOWN_VERSIONS)))
    for key, kind in (("name", str), ("container_dir", str), ("idmap", list), ("unprivileged", bool)):
        if not isinstance(manifest.get(key), kind):
            raise ArchiveError("%s: %r is missing or not a %s" % (MANIFEST, key, kind.__name__))
    if validate_name(manifest["name"]):
        raise ArchiveError("%s: name %r is not a container name" % (MANIFEST, manifest["name"]))
    if not manifest["container_dir"].startswith("/"):
        raise ArchiveError("%s: container_dir %r is not an absolute path" % (MANIFEST, manifest["container_dir"]))
    hooks = manifest.setdefault("hooks", [])
    if not isinstance(hooks, list) or not all(isinstance(h, str) and HOOK_MEMBER_RE.match(h) for h in hooks):
        raise ArchiveError("%s: hooks must be a list of hook-NAME file names, got %r" % (MANIFEST, hooks))
    if manifest["idmap"]:
        try:
            _unpriv.parse_idmap(manifest["idmap"], option="%s idmap" % MANIFEST)
        except _unpriv.IdmapError as exc:
            raise ArchiveError(str(exc))
    return manifest


# --------------------------------------------------------------------------------------------
# reading an archive
# --------------------------------------------------------------------------------------------


def detect_compression(path: str) -> str:
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if magic.startswith(b"BZh"):
        return "bzip2"
    return "none"


class _Hashing:
    def __init__(self, handle, digest):
        self.handle = handle
        self.digest = digest

    def read(self, size=-1):
        data = self.handle.read(size)
        self.digest.update(data)
        return data


class _Reader:
    """The decompressed stream of an archive file, and the sha256 of the file itself."""

    def __init__(self, path: str):
        self.path = path
        self.digest = hashlib.sha256()
        self.compression = detect_compression(path)
        self.raw = open(path, "rb")
        self.proc = None
        hashing = _Hashing(self.raw, self.digest)
        if self.compression == "xz":
            self.stream = lzma.LZMAFile(hashing)
        elif self.compression == "gzip":
            self.stream = gzip.GzipFile(fileobj=hashing)
        elif self.compression == "bzip2":
            self.stream = bz2.BZ2File(hashing)
        elif self.compression == "zstd":
            zstd = shutil.which("zstd")
            if not zstd:
                self.raw.close()
                raise ArchiveError("%s is zstd-compressed and zstd is not installed on this host" % path)
            # The file is hashed here; zstd reads its own copy of it.
            self.proc = subprocess.Popen([zstd, "-dcq", "--", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.stream = self.proc.stdout
        else:
            self.stream = hashing

    def finish(self) -> str:
        """Read to the end (the stream's end marker included); return the file's sha256."""
        while self.stream.read(1 << 20):
            pass
        if self.proc is None:
            while _Hashing(self.raw, self.digest).read(1 << 20):
                pass  # padding after the compressed stream
            return self.digest.hexdigest()
        self.proc.stdout.close()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        if self.proc.wait() != 0:
            raise ArchiveError("zstd could not read %s: %s" % (self.path, err.strip()))
        return _unpack.sha256_file(self.path)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.raw.close()


def _read_small(archive, member, what: str) -> bytes:
    if not member.isreg():
        raise ArchiveError("member %r (the %s) is not a regular file" % (member.name, what))
    if member.size > SMALL_FILE:
        raise ArchiveError("member %r (the %s) is larger than 1 MiB" % (member.name, what))
    handle = archive.extractfile(member)
    return handle.read()


def read_manifest(path: str) -> dict:
    """The manifest of an archive from its first member only (cheap: the rest is not read)."""
    reader = _Reader(path)
    try:
        with tarfile.open(fileobj=reader.stream, mode="r|") as archive:
            member = archive.next()
            if member is None or member.name != MANIFEST:
                raise ArchiveError("the first member of %s is not %s" % (path, MANIFEST))
            return check_manifest(_read_small(archive, member, "manifest"))
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        raise ArchiveError("%s is not a readable tar archive: %s" % (path, exc))
    finally:
        reader.close()


def _rootfs_members(members, found: dict, ids: dict):
    """The rootfs members of an archive, renamed relative to the rootfs, for ``_unpack.check_members``;
    the manifest and the config are read on the way. Raises ArchiveError for any other member."""
    for index, (archive, member) in enumerate(members):
        name = member.name
        if _unpack.normalize(name) != name or name == "":
            raise ArchiveError("member %r is not a plain relative name (absolute, with '..', './' or '//')" % name)
        if index == 0 and name != MANIFEST:
            raise ArchiveError("the first member is %r, not %s" % (name, MANIFEST))
        if name == MANIFEST:
            if "manifest" in found:
                raise ArchiveError("member %r appears twice" % name)
            found["manifest"] = check_manifest(_read_small(archive, member, "manifest"))
            continue
        if name == "config":
            if "config" in found:
                raise ArchiveError("member %r appears twice" % name)
            found["config"] = _read_small(archive, member, "config").decode("utf-8", "surrogateescape")
            continue
        if "manifest" in found and name in found["manifest"]["hooks"]:
            hooks = found.setdefault("hooks", {})
            if name in hooks:
                raise ArchiveError("member %r appears twice" % name)
            hooks[name] = _read_small(archive, member, "hook script")
            continue
        if name != "rootfs" and not name.startswith("rootfs/"):
            raise ArchiveError("member %r is outside config, the manifest's hooks, rootfs and %s" % (name, MANIFEST))
        if name == "rootfs" and not member.isdir():
            raise ArchiveError("member 'rootfs' is not a directory")
        inner = copy.copy(member)
        inner.name = "." if name == "rootfs" else name[len("rootfs/"):]
        if member.islnk():
            if not member.linkname.startswith("rootfs/"):
                raise ArchiveError("hard link %r points outside the rootfs (%r)" % (name, member.linkname))
            inner.linkname = member.linkname[len("rootfs/"):]
        ids["uid"] = max(ids["uid"], member.uid)
        ids["gid"] = max(ids["gid"], member.gid)
        yield inner


def verify_archive(path: str) -> dict:
    """Read the whole archive and check every member; nothing is written. Returns the manifest, the
    config text, the rootfs summary of ``_unpack.check_members``, the largest uid and gid, the
    compression and the sha256."""
    found = {}
    ids = {"uid": 0, "gid": 0}
    reader = _Reader(path)
    try:
        with tarfile.open(fileobj=reader.stream, mode="r|") as archive:
            summary = _unpack.check_members(_rootfs_members(((archive, m) for m in archive), found, ids))
        sha256 = reader.finish()
    except _unpack.UnpackError as exc:
        raise ArchiveError("below rootfs/: %s" % exc)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
        raise ArchiveError("%s is not a readable tar archive: %s" % (path, exc))
    finally:
        reader.close()
    for what in ("manifest", "config"):
        if what not in found:
            raise ArchiveError("the archive has no %s" % (MANIFEST if what == "manifest" else "config"))
    if summary["members"] == 0:
        raise ArchiveError("the archive has no rootfs")
    missing = [h for h in found["manifest"]["hooks"] if h not in found.get("hooks", {})]
    if missing:
        raise ArchiveError("%s lists the hook scripts %s, which the archive does not hold" % (MANIFEST, ", ".join(missing)))
    return {"manifest": found["manifest"], "config": found["config"], "hooks": found.get("hooks", {}),
            "summary": summary, "max_uid": ids["uid"],
            "max_gid": ids["gid"], "compression": reader.compression, "sha256": sha256}


def id_problems(max_uid: int, max_gid: int, idmap) -> list:
    """Owners of the archive that the target map cannot represent (container ids without a host id)."""
    problems = []
    entries = _unpriv.parse_idmap(idmap, option="idmap")
    for kind, what, largest in (("u", "uid", max_uid), ("g", "gid", max_gid)):
        covered = sorted((e.container, e.container + e.count) for e in entries if e.kind == kind)
        # ids below the largest one are not all used, but a rootfs uses 0..n nearly contiguously;
        # only the largest is known without keeping every id, and it must be mapped.
        if not any(start <= largest < end for start, end in covered):
            problems.append("the archive has files owned by container %s %d, which the target map %s does not map"
                            % (what, largest, " / ".join(e.line() for e in entries if e.kind == kind)))
    return problems


# --------------------------------------------------------------------------------------------
# the config at its new place
# --------------------------------------------------------------------------------------------


def random_mac(rng=None) -> str:
    rng = rng or random.SystemRandom()
    return "00:16:3e:%02x:%02x:%02x" % (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _under(value: str, old: str, new: str) -> str:
    """``value`` with every path at or below ``old`` moved below ``new``."""
    return re.sub(r"(?<![^\s:=,])" + re.escape(old) + r"(?=/|$|[\s:,])", lambda _m: new, value)


def rewrite_config(text: str, old_dir: str, new_dir: str, name: str, idmap, keep_mac: bool, rng=None) -> str:
    """The config of an imported container: paths under the old container folder moved to the new one,
    its rootfs a plain folder there, its name, its id map (none: privileged) and new MACs unless
    ``keep_mac``."""
    eol = "\r\n" if "\r\n" in text else "\n"
    old_dir = old_dir.rstrip("/")
    lines = []
    for line in LxcConfig.parse(text).lines:
        if line.kind == "entry" and line.value and old_dir in line.value:
            moved = _under(line.value, old_dir, new_dir)
            if moved != line.value:
                line = ConfigLine.entry(line.key, moved, line.eol)
        lines.append(line)
    config = LxcConfig(lines, eol)
    config.set("lxc.rootfs.path", "dir:" + os.path.join(new_dir, "rootfs"))
    config.set("lxc.uts.name", name)
    config.set("lxc.idmap", list(idmap or []))
    if not keep_mac:
        for index in config.net_indices():
            key = "lxc.net.%d.hwaddr" % index
            if config.get_one(key):
                config.set(key, random_mac(rng))
    return config.render()


# --------------------------------------------------------------------------------------------
# tar
# --------------------------------------------------------------------------------------------


def userns_prefix(usernsexec: str, idmap) -> list:
    """argv prefix that runs a command as root of a user namespace with the container's map."""
    argv = [usernsexec]
    for entry in _unpriv.parse_idmap(idmap, option="lxc.idmap"):
        argv += ["-m", "%s:%d:%d:%d" % (entry.kind, entry.container, entry.host, entry.count)]
    return argv + ["--"]


#: GNU tar writes the named entries of an ACL with the user and group names of the host that reads the
#: files (even with --numeric-owner), and those names mean nothing in the container nor on another host.
#: So tar runs in a mount namespace of its own where the passwd and group databases are empty files: every
#: ACL entry is stored with its number.
NO_NAMES = ('mount --bind "$1" /etc/passwd && mount --bind "$1" /etc/group && '
            '{ [ ! -e /etc/nsswitch.conf ] || mount --bind "$2" /etc/nsswitch.conf; } && shift 2 && exec "$@"')
NSSWITCH = "passwd: files\ngroup: files\n"


def no_names_prefix(unshare: str, shell: str, empty: str, nsswitch: str) -> list:
    """argv prefix that runs a command where no uid or gid has a name (see NO_NAMES)."""
    return [unshare, "--mount", "--propagation", "private", "--", shell, "-c", NO_NAMES, "sh", empty, nsswitch]


def export_argv(tar: str, compression: str, scratch: str, rootfs: str, hooks=()) -> list:
    """tar that writes the archive to stdout: manifest, config and hook scripts from ``scratch``, then
    the rootfs renamed to ``rootfs`` (symlink targets untouched)."""
    return ([tar, "--create", "--file=-", "--format=posix"] + COMPRESSION_FLAGS[compression] + KEEP
            + ["--directory=" + scratch, MANIFEST, "config"] + list(hooks)
            + ["--directory=" + rootfs, r"--transform=s,^\.,rootfs,S", "."])


def import_argv(tar: str, compression: str, target: str) -> list:
    """tar that unpacks the rootfs members of the archive on stdin into ``target`` (the container
    folder); the manifest and the config are not unpacked."""
    return ([tar, "--extract", "--file=-", "--preserve-permissions", "--same-owner"] + COMPRESSION_FLAGS[compression]
            + KEEP + ["--directory=" + target, "--anchored", "rootfs"])


# --------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", required=True, choices=["exported", "imported"]),
    path=dict(type="path", required=True),
    lxc_path=dict(type="path"),
    compression=dict(type="str", default=DEFAULT_COMPRESSION, choices=["gzip", "xz", "zstd", "none"]),
    force=dict(type="bool", default=False),
    stop_running=dict(type="bool", default=False),
    stop_timeout=dict(type="int", default=30),
    unprivileged=dict(type="bool"),
    idmap=dict(type="list", elements="str"),
    keep_mac=dict(type="bool", default=False),
)


class ArchiveManager:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.p = module.params
        self.name = self.p["name"]
        self.path = self.p["path"]
        self.changed = False
        self.actions = []
        self.diff = {}
        self.who = _unpriv.Identity.current()

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, changed=self.changed, actions=self.actions, **kwargs)

    def exit(self, **result):
        out = dict(changed=self.changed, actions=self.actions, **result)
        if self.module._diff:
            out["diff"] = self.diff
        self.module.exit_json(**out)

    def act(self, label, func, also=None):
        """Record an action; run it unless in check mode. ``also``: an earlier error the message repeats."""
        self.actions.append(label)
        self.changed = True
        if self.module.check_mode:
            return None
        before = (also + "; then ") if also else ""
        try:
            return func()
        except LxcError as exc:
            self.fail("%s%s: %s" % (before, label, exc.msg), **exc.to_result())
        except (OSError, ArchiveError) as exc:
            self.fail("%s%s failed: %s" % (before, label, exc))

    def run_piped(self, argv, stdin=None, stdout=None, what=""):
        """Run argv with a file as stdin or stdout (an archive never passes through memory)."""
        env = dict(os.environ, LANG="C", LC_ALL="C")
        proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        out, err = proc.communicate()
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip()
            raise ArchiveError("%s (rc %d): %s" % (what, proc.returncode, text[-2000:]))

    def validate(self):
        error = validate_name(self.name)
        if error:
            self.fail(error)
        if self.p["stop_timeout"] < 0:
            self.fail("stop_timeout must be 0 or more")
        if not os.path.isabs(self.path) or self.path.endswith("/"):
            self.fail("path must be an absolute file path, not %r" % self.path)
        state = self.p["state"]
        if state == "exported":
            for option in ("unprivileged", "idmap"):
                if self.p[option] is not None:
                    self.fail("%s is an option of state=imported" % option)
            if self.p["keep_mac"]:
                self.fail("keep_mac is an option of state=imported")
            if self.p["compression"] == "zstd" and not shutil.which("zstd"):
                self.fail("compression: zstd is not installed on this host; install the zstd package or choose gzip or xz")
            if not os.path.isdir(os.path.dirname(self.path)):
                self.fail("path: the folder %s does not exist" % os.path.dirname(self.path))
        else:
            for option in ("force", "stop_running"):
                if self.p[option]:
                    self.fail("%s is an option of state=exported" % option)
            if self.p["unprivileged"] is False and self.p["idmap"] is not None:
                self.fail("idmap: an id map makes the container unprivileged; it cannot go with unprivileged: false")
            if self.p["unprivileged"] is False and not self.who.is_root:
                self.fail("unprivileged: false needs root; %s can only import unprivileged containers" % self.who.name)
            if self.p["idmap"] is not None:
                try:
                    entries = _unpriv.parse_idmap(self.p["idmap"], option="idmap")
                except _unpriv.IdmapError as exc:
                    self.fail(str(exc))
                problems = _unpriv.idmap_problems(entries, self.who, option="idmap")
                if problems:
                    self.fail("; ".join(problems))

    def run(self):
        self.validate()
        self.lxc = LxcRunner(self.module, self.p["lxc_path"])
        if self.p["state"] == "exported":
            self.export()
        else:
            self.import_()

    # -- export ---------------------------------------------------------------------------------

    def archive_result(self, manifest, sha256=None):
        result = {"path": self.path, "manifest": manifest, "size": None, "sha256": sha256}
        if os.path.isfile(self.path):
            result["size"] = os.path.getsize(self.path)
            if sha256 is None:
                result["sha256"] = _unpack.sha256_file(self.path)
        return result

    def export(self):
        if not self.lxc.exists(self.name):
            self.fail("container %s does not exist in %s" % (self.name, self.lxc.lxc_path))
        cdir = self.lxc.container_dir(self.name)
        with open(self.lxc.config_path(self.name), encoding="utf-8", errors="surrogateescape") as handle:
            config_text = handle.read()
        config = LxcConfig.parse(config_text)
        backing, rootfs = rootfs_of(config, cdir)
        if rootfs is None:
            self.fail("container %s has a %s rootfs (lxc.rootfs.path = %s); export reads plain folders only (dir, btrfs)"
                      % (self.name, backing, config.get_one("lxc.rootfs.path")))
        if not os.path.isdir(rootfs):
            self.fail("the rootfs of container %s (%s) is not a folder" % (self.name, rootfs))
        idmap = config.get_effective("lxc.idmap")
        if idmap:
            try:
                _unpriv.parse_idmap(idmap, option="lxc.idmap of %s" % self.name)
            except _unpriv.IdmapError as exc:
                self.fail(str(exc))
        compression = self.p["compression"]
        manifest = make_manifest(self.name, self.lxc.lxc_path, config, backing, compression,
                                 hooks=hook_files(config, cdir))

        existing = None
        if os.path.lexists(self.path):
            if not os.path.isfile(self.path) or os.path.islink(self.path):
                self.fail("path: %s exists and is not a regular file" % self.path)
            try:
                existing = read_manifest(self.path)
            except ArchiveError as exc:
                if not self.p["force"]:
                    self.fail("path: %s exists and is not a container archive (%s); set force: true to replace it"
                              % (self.path, exc))
        if existing is not None and not self.p["force"]:
            same = existing.get("container_dir") == manifest["container_dir"]
            if not same:
                self.fail("path: %s is an archive of container %s, not of %s; set force: true to replace it"
                          % (self.path, existing.get("container_dir"), manifest["container_dir"]))
            self.exit(archive=self.archive_result(existing))

        state = self.lxc.state(self.name)
        if state != "STOPPED":
            if not self.p["stop_running"]:
                self.fail("container %s is %s: it is exported only when stopped, so that its rootfs does not change "
                          "while it is read; stop it first, or set stop_running: true to stop it, export it and start "
                          "it again" % (self.name, (state or "unknown").lower()))
            if state == "FROZEN":
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
            self.act("stop", self.stop)
        if self.module._diff:
            self.diff = {"before": json.dumps(existing, indent=2, sort_keys=True) + "\n" if existing else "",
                         "after": json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                         "before_header": self.path if existing else "(absent)", "after_header": self.path}
        self.actions.append("export")
        self.changed = True
        error = None
        if not self.module.check_mode:
            try:
                self.write_archive(cdir, config_text, rootfs, idmap, manifest, compression)
            except (OSError, ArchiveError) as exc:
                error = "export of container %s failed, %s was not changed: %s" % (self.name, self.path, exc)
                self.changed = len(self.actions) > 1  # the container was stopped (and is started again below)
        if state in ("RUNNING", "FROZEN"):
            # Started again also when the export failed; a failing start reports both.
            self.act("start", lambda: self.lxc.start(self.name), also=error)
            if state == "FROZEN":
                self.act("freeze", lambda: self.lxc.freeze(self.name), also=error)
        if error:
            self.fail(error)
        archive = self.archive_result(manifest) if not self.module.check_mode else {
            "path": self.path, "manifest": manifest, "size": None, "sha256": None}
        self.exit(archive=archive)

    def stop(self):
        if self.p["stop_timeout"] == 0:
            return self.lxc.stop(self.name, kill=True)
        return self.lxc.stop(self.name, timeout=self.p["stop_timeout"])

    def write_archive(self, cdir, config_text, rootfs, idmap, manifest, compression):
        tar = self.module.get_bin_path("tar", required=True)
        prefix = []
        if idmap:
            prefix = userns_prefix(self.module.get_bin_path("lxc-usernsexec", required=True), idmap)
        scratch = tempfile.mkdtemp(prefix="lxcfleet-export-")
        folder = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(self.path), suffix=".tmp", dir=folder)
        try:
            files = [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n"), ("config", config_text),
                     (".empty", ""), (".nsswitch.conf", NSSWITCH)]
            for name, data in files:
                with open(os.path.join(scratch, name), "w", encoding="utf-8", errors="surrogateescape") as handle:
                    handle.write(data)
            for name in manifest["hooks"]:
                with open(os.path.join(cdir, name), "rb") as handle:
                    data = handle.read()
                with open(os.path.join(scratch, name), "wb") as handle:
                    handle.write(data)
                files.append((name, None))
            private = 0o640
            if idmap and self.who.is_root:
                # tar runs as the container's root: the scratch files become its own (uid 0 in the archive).
                root_uid, root_gid = _unpriv.host_root(_unpriv.parse_idmap(idmap, option="lxc.idmap"))
                for item in [scratch] + [os.path.join(scratch, name) for name, _data in files]:
                    os.chown(item, root_uid, root_gid)
            elif idmap:
                # The owner of the container cannot give files to its subordinate ids: readable by others,
                # for the moment of the export (owner nobody in the archive, never unpacked).
                os.chmod(scratch, 0o755)
                private = 0o644
            for name, _data in files:
                os.chmod(os.path.join(scratch, name), private if name == "config" or _data is None else 0o644)
            prefix += no_names_prefix(self.module.get_bin_path("unshare", required=True),
                                      self.module.get_bin_path("sh", required=True),
                                      os.path.join(scratch, ".empty"), os.path.join(scratch, ".nsswitch.conf"))
            with os.fdopen(fd, "wb") as out:
                fd = None
                self.run_piped(prefix + export_argv(tar, compression, scratch, rootfs, manifest["hooks"]), stdout=out,
                               what="tar could not read container %s" % self.name)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.rename(tmp, self.path)
        finally:
            if fd is not None:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            shutil.rmtree(scratch, ignore_errors=True)

    # -- import ---------------------------------------------------------------------------------

    def target_idmap(self, manifest):
        """The map of the imported container ([] for privileged): ``idmap``, else the source's kind
        (unless ``unprivileged`` says otherwise) with the map a new container of this user gets."""
        unprivileged = self.p["unprivileged"]
        if unprivileged is None:
            unprivileged = bool(manifest["unprivileged"]) or self.p["idmap"] is not None or not self.who.is_root
        if not unprivileged:
            return []
        if self.p["idmap"] is not None:
            return [e.line() for e in _unpriv.parse_idmap(self.p["idmap"], option="idmap")]
        try:
            return plan_default_idmap(self.lxc, self.who)
        except _unpriv.IdmapError as exc:
            self.fail(str(exc))

    def import_(self):
        if not os.path.isfile(self.path):
            self.fail("path: %s is not a file" % self.path)
        if self.lxc.exists(self.name):
            try:
                manifest = read_manifest(self.path)
            except ArchiveError as exc:
                manifest = None
                self.module.warn("path: %s" % exc)
            self.exit(archive=self.archive_result(manifest), container=describe_container(self.lxc, self.name))
        cdir = self.lxc.container_dir(self.name)
        if os.path.lexists(cdir):
            self.fail("name: %s exists but is not a container (no config file); remove it or choose another name" % cdir)
        try:
            checked = verify_archive(self.path)
        except ArchiveError as exc:
            self.fail("path: %s is refused, nothing was unpacked: %s" % (self.path, exc))
        manifest = checked["manifest"]
        idmap = self.target_idmap(manifest)
        problems = []
        if idmap:
            devices = ["rootfs/" + d for d in checked["summary"]["devices"]]
            if devices:
                problems.append("it holds device nodes, which an unprivileged container's user namespace cannot "
                                "create: %s" % ", ".join(devices[:5]))
            problems += id_problems(checked["max_uid"], checked["max_gid"], idmap)
            if not self.who.is_root:
                problems += _unpriv.newidmap_problems()
        elif not self.who.is_root:
            problems.append("a privileged container needs root")
        if problems:
            self.fail("path: %s cannot be imported as %s container %s, nothing was unpacked: %s"
                      % (self.path, "an unprivileged" if idmap else "a privileged", self.name, "; ".join(problems)))
        config = rewrite_config(checked["config"], manifest["container_dir"], cdir, self.name, idmap, self.p["keep_mac"])
        if self.module._diff:
            self.diff = {"before": "", "after": config, "before_header": "(absent)",
                         "after_header": self.lxc.config_path(self.name)}
        self.act("unpack", lambda: self.unpack(checked, cdir, idmap, manifest["name"]))
        self.act("write config", lambda: self.write_config(config))
        archive = {"path": self.path, "manifest": manifest, "size": os.path.getsize(self.path),
                   "sha256": checked["sha256"]}
        if self.module.check_mode:
            container = {"name": self.name, "state": "STOPPED", "pid": None, "ips": [], "interfaces": {},
                         "unprivileged": bool(idmap), "lxc_path": self.lxc.lxc_path,
                         "config_path": self.lxc.config_path(self.name), "config": LxcConfig.parse(config).as_dict()}
        else:
            container = describe_container(self.lxc, self.name, text=config)
        self.exit(archive=archive, container=container)

    def write_config(self, text):
        path = self.lxc.config_path(self.name)
        write_atomic(self.module, path, text, mode=0o640)
        os.chmod(path, 0o640)

    def unpack(self, checked, cdir, idmap, old_name):
        """The rootfs into a hidden folder of lxc_path, then renamed to the container folder; the config is
        written after that, so LXC never sees a half-imported container."""
        make_traversable_dirs(self.lxc.lxc_path)
        tar = self.module.get_bin_path("tar", required=True)
        staging = tempfile.mkdtemp(prefix=".%s.import-" % self.name, dir=self.lxc.lxc_path)
        prefix = []
        try:
            if idmap:
                prefix = userns_prefix(self.module.get_bin_path("lxc-usernsexec", required=True), idmap)
                root_uid, root_gid = _unpriv.host_root(_unpriv.parse_idmap(idmap, option="idmap"))
                # As LXC makes it: the container folder belongs to the mapped root, 0770.
                os.chown(staging, root_uid, root_gid)
            os.chmod(staging, 0o770)
            with open(self.path, "rb") as source:
                self.run_piped(prefix + import_argv(tar, checked["compression"], staging), stdin=source,
                               what="tar could not unpack %s" % self.path)
            fix_hostname(os.path.join(staging, "rootfs"), old_name, self.name)
            write_hooks(staging, checked["hooks"])
            if os.path.lexists(cdir):
                raise ArchiveError("%s appeared while the archive was unpacked" % cdir)
            os.rename(staging, cdir)
        except BaseException:
            remove_tree(staging, prefix)
            raise


def write_hooks(folder: str, hooks: dict) -> None:
    """The hook scripts into the new container folder as the container module installs them: mode
    0750, owned by the user running LXC, group that of the folder (an unprivileged container's mapped
    root runs its mount hooks)."""
    gid = os.stat(folder).st_gid
    for name, data in sorted(hooks.items()):
        path = os.path.join(folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o700)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.chown(path, -1, gid)
        except OSError:
            pass  # a user who is not in the folder's group keeps their own group
        os.chmod(path, 0o750)


def fix_hostname(rootfs: str, old: str, new: str) -> bool:
    """/etc/hostname of the rootfs gets the new name when it held the old one; never through a symlink."""
    etc = os.path.join(rootfs, "etc")
    path = os.path.join(etc, "hostname")
    try:
        if not stat.S_ISDIR(os.lstat(etc).st_mode) or not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "r+b") as handle:
        if handle.read(4096).strip() != old.encode():
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(new.encode() + b"\n")
    return True


def remove_tree(path: str, prefix) -> None:
    """Remove a half-unpacked folder (as the container's root when this is not root)."""
    if prefix and os.geteuid() != 0:
        subprocess.run(prefix + ["rm", "-rf", "--", os.path.join(path, "rootfs")], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ArchiveManager(module).run()
