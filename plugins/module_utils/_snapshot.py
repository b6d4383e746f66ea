# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Snapshots of a container through ``lxc-snapshot`` (and ``lxc-copy`` for a restore into another lxc path).

LXC names snapshots ``snap0``, ``snap1`` ... (the lowest free index) and keeps each as a container
below ``<lxc_path>/<name>/snaps/snapN/`` with a ``ts`` file (creation time) and an optional
``comment`` file. The user's name of a snapshot is kept in the file ``lxcfleet-name`` in that folder:
it moves and dies with the snapshot, LXC ignores it, and ``lxc-snapshot -d`` removes it with the rest.
See docs/snapshot.md for what LXC 5.0.2 does with each backing store and with running containers.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bdev
from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import LxcConfig
from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import LxcError, LxcRunner, validate_name

NAME_FILE = "lxcfleet-name"
LXC_NAME_RE = re.compile(r"snap([0-9]+)")
# The user's name: one line, no '/', usable in a log line and a file; 1-128 characters.
SNAPSHOT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
# Backing stores whose LXC driver has can_backup = false: do_lxcapi_snapshot refuses them
# ("<name>'s backing store cannot be backed up") - every LVM volume, thin or not, rbd and nbd.
CANNOT_SNAPSHOT = {
    "lvm": "LXC's lvm storage driver cannot be backed up (can_backup is false for every LVM volume, thin or not)",
    "rbd": "LXC's rbd storage driver cannot be backed up (can_backup is false)",
    "nbd": "LXC's nbd storage driver cannot be backed up (can_backup is false)",
}
STOPPED = "STOPPED"


class SnapshotError(Exception):
    """Bad input or a state in which the requested change cannot be made; nothing was changed."""


# -- pure helpers (unit tested) ----------------------------------------------------------------

def validate_snapshot_name(name, option="snapshot"):
    """An error message naming the option, or None for a valid snapshot name."""
    if name is None or name == "":
        return "%s must not be empty" % option
    if not SNAPSHOT_NAME_RE.fullmatch(name):
        return (
            "%s %r is not a valid snapshot name: use 1-128 characters of letters, digits, '_', '.', ':', '@', "
            "'+' and '-', starting with a letter or digit (no '/', no spaces)" % (option, name)
        )
    return None


def lxc_index(lxc_name):
    """N of an LXC snapshot name ``snapN``, or None."""
    match = LXC_NAME_RE.fullmatch(lxc_name or "")
    return int(match.group(1)) if match else None


def snaps_dir(lxc_path: str, name: str) -> str:
    """Where lxc-snapshot keeps the snapshots of ``name`` (LXC's get_snappath_dir).

    LXC 1.0 kept them in ``<lxc_path>snaps/<name>`` (for /var/lib/lxc: /var/lib/lxcsnaps/<name>);
    when that folder exists, LXC still uses it. Otherwise ``<lxc_path>/<name>/snaps``.
    """
    base = lxc_path.rstrip("/") or "/"
    legacy = base + "snaps"
    if os.path.isdir(legacy):
        return os.path.join(legacy, name)
    return os.path.join(base, name, "snaps")


def ts_to_iso(text):
    """``2026:11:23 16:20:44`` (LXC's ts file, host local time) -> ``2026-11-23T16:20:44``; None if unreadable."""
    match = re.match(r"^\s*(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})\s*$", text or "")
    if not match:
        return None
    return "%s-%s-%sT%s:%s:%s" % match.groups()


def rootfs_value(config_text: str):
    """The value of lxc.rootfs.path (or legacy lxc.rootfs) of a config file text; None if absent."""
    return LxcConfig.parse(config_text).get_one("lxc.rootfs.path")


def store_of(rootfs):
    """The backing store of an lxc.rootfs.path value, in the container module's words (``dir``,
    ``overlayfs``, ``btrfs``, ``loop``, ``lvm`` ...: ``_bdev.store_of``); ``unknown`` without a rootfs."""
    return _bdev.store_of(rootfs) or "unknown"


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def read_snapshot(folder: str, lxc_name: str) -> dict:
    """One snapshot as the module returns it, read from its folder."""
    config = read_text(os.path.join(folder, "config")) or ""
    rootfs = rootfs_value(config)
    user = read_text(os.path.join(folder, NAME_FILE))
    user = user.strip() if user is not None else ""
    comment = read_text(os.path.join(folder, "comment"))
    ts = read_text(os.path.join(folder, "ts"))
    return {
        "name": user or lxc_name,
        "lxc_name": lxc_name,
        "named": bool(user),
        "comment": comment.rstrip("\n") if comment is not None else None,
        "created": ts_to_iso(ts),
        "ts": ts.strip() if ts is not None else None,
        "path": folder,
        "rootfs": rootfs,
        "backing_store": store_of(rootfs),
        "dependents": dependents(folder),
    }


def list_snapshots(snapdir: str) -> list:
    """The snapshots in ``snapdir`` (folders snapN holding a config file, as lxc-snapshot -L lists them), by N."""
    try:
        entries = os.listdir(snapdir)
    except OSError:
        return []
    found = []
    for entry in entries:
        index = lxc_index(entry)
        folder = os.path.join(snapdir, entry)
        if index is None or not os.path.isfile(os.path.join(folder, "config")):
            continue
        found.append((index, read_snapshot(folder, entry)))
    return [item[1] for item in sorted(found, key=lambda item: item[0])]


def next_lxc_name(snapshots: list, snapdir_entries=()) -> str:
    """The name lxc-snapshot gives the next snapshot: the lowest N whose folder snapN does not exist."""
    taken = {s["lxc_name"] for s in snapshots} | set(snapdir_entries)
    index = 0
    while "snap%d" % index in taken:
        index += 1
    return "snap%d" % index


def find_snapshot(snapshots: list, name: str):
    """The snapshot the user means by ``name``: the one carrying that name, else the one with that LXC name.

    Raises SnapshotError when the name is ambiguous (two snapshots carry it, made by hand).
    """
    named = [s for s in snapshots if s["name"] == name]
    if len(named) > 1:
        raise SnapshotError(
            "snapshot: %d snapshots carry the name %r (%s); address one by its LXC name or remove the extra %s files"
            % (len(named), name, ", ".join(s["lxc_name"] for s in named), NAME_FILE)
        )
    if named:
        return named[0]
    for snap in snapshots:
        if snap["lxc_name"] == name:
            return snap
    return None


def summary(snapshots: list) -> list:
    """What diff mode shows of a snapshot list."""
    return [{"name": s["name"], "lxc_name": s["lxc_name"], "comment": s["comment"]} for s in snapshots]


def comment_text(comment: str) -> str:
    """The comment file's content for a comment: LXC prints it as is, so it ends with a newline."""
    return comment if comment.endswith("\n") else comment + "\n"


def validate_params(p: dict) -> None:
    """Checks that need no LXC; raise SnapshotError naming the option."""
    error = validate_name(p["name"], "name")
    if error:
        raise SnapshotError(error)
    state = p["state"]
    if p.get("snapshot") is None:
        if state != "present":
            raise SnapshotError("snapshot is required with state=%s" % state)
        if p.get("comment") is not None:
            raise SnapshotError("comment needs snapshot (the snapshot to comment)")
    else:
        error = validate_snapshot_name(p["snapshot"])
        if error:
            raise SnapshotError(error)
    if p.get("restore_to") is not None:
        if state != "restored":
            raise SnapshotError("restore_to is used with state=restored only")
        error = validate_name(p["restore_to"], "restore_to")
        if error:
            raise SnapshotError(error)
    if p.get("restore_path") is not None:
        if p.get("restore_to") is None:
            raise SnapshotError("restore_path needs restore_to (the name of the new container)")
        if not os.path.isabs(p["restore_path"]):
            raise SnapshotError("restore_path must be an absolute path, got %r" % p["restore_path"])
    if p.get("comment") is not None:
        if state != "present":
            raise SnapshotError("comment is used with state=present only")
        if "\x00" in p["comment"]:
            raise SnapshotError("comment must not contain NUL characters")
    if p.get("stop_timeout") is not None and p["stop_timeout"] < 0:
        raise SnapshotError("stop_timeout must be 0 (kill) or more seconds, got %d" % p["stop_timeout"])


def check_store(store: str, container: str, rootfs) -> None:
    """Refuse, before any change, a container whose rootfs LXC cannot snapshot."""
    if store in CANNOT_SNAPSHOT:
        raise SnapshotError(
            "container %s: its backing store %s cannot be snapshotted: %s; lxc-snapshot fails with "
            "\"backing store cannot be backed up\". Copy it to another store first (lxc-copy -B dir|btrfs|loop)"
            % (container, store, CANNOT_SNAPSHOT[store])
        )
    if rootfs and container not in rootfs:
        raise SnapshotError(
            "container %s: its rootfs path %s does not contain the container name, and LXC cannot copy such a "
            "rootfs into a snapshot (storage_copy: \"Original rootfs path does not include container name\")"
            % (container, rootfs)
        )


def running_error(container: str, state: str, what: str) -> SnapshotError:
    return SnapshotError(
        "container %s is %s and LXC cannot %s a container that is not stopped (lxc-snapshot refuses it); "
        "nothing was changed. Stop it first, or set stop_running: true to stop it, %s and start it again"
        % (container, state, what, what)
    )


def dependents(container_dir: str) -> list:
    """Containers and snapshots that use this container's rootfs (LXC's lxc_snapshots file: path/name pairs)."""
    text = read_text(os.path.join(container_dir, "lxc_snapshots"))
    if not text:
        return []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ["%s/%s" % (lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]


def plan(p: dict, snapshots: list, cstate, store: str, rootfs, deps: list, target_exists: bool) -> dict:
    """Decide what to do. Returns {actions, snapshot (the one acted on or None), stop, kind}.

    ``cstate`` is the container's state (None: it does not exist), ``deps`` the containers that use
    its rootfs, ``target_exists`` whether restore_to exists already. Raises SnapshotError (before any change).
    """
    name = p["name"]
    state = p["state"]
    wanted = p.get("snapshot")
    result = {"actions": [], "snapshot": None, "stop": False, "kind": None}
    if cstate is None:
        if state == "absent":
            return result
        raise SnapshotError("container %s does not exist in %s" % (name, p["lxc_path"]))
    found = find_snapshot(snapshots, wanted) if wanted is not None else None
    result["snapshot"] = found
    running = cstate != STOPPED

    if wanted is None:  # state=present without a snapshot: a read-only listing
        return result

    if state == "present":
        if found is not None:
            comment = p.get("comment")
            if comment is not None and (found["comment"] or "") != comment.rstrip("\n"):
                result["kind"] = "comment"
                result["actions"].append("set the comment of snapshot %s (%s)" % (found["name"], found["lxc_name"]))
            return result
        if lxc_index(wanted) is not None:
            raise SnapshotError(
                "snapshot %r: there is no snapshot %s of container %s, and names of the form snapN are LXC's own "
                "(lxc-snapshot picks N itself), so a new snapshot cannot be given one; choose another name"
                % (wanted, wanted, name)
            )
        check_store(store, name, rootfs)
        if running:
            if not p.get("stop_running"):
                raise running_error(name, cstate, "snapshot")
            result["stop"] = True
        result["kind"] = "create"
        if result["stop"]:
            result["actions"].append("stop container %s" % name)
        result["actions"].append("create snapshot %s of container %s" % (wanted, name))
        if result["stop"]:
            result["actions"].append("start container %s" % name)
        return result

    if state == "absent":
        if found is None:
            return result
        if found["dependents"]:
            raise SnapshotError(
                "snapshot %s (%s) of container %s cannot be removed: LXC records that containers restored from it "
                "use it (%s; an overlay snapshot restored into a new container), and lxc-snapshot -d refuses it "
                "(\"has snapshots on its rootfs\"); destroy those containers first"
                % (found["name"], found["lxc_name"], name, ", ".join(found["dependents"]))
            )
        result["kind"] = "remove"
        result["actions"].append("remove snapshot %s (%s) of container %s" % (found["name"], found["lxc_name"], name))
        return result

    # restored
    if found is None:
        raise SnapshotError("snapshot %r of container %s does not exist (snapshots: %s)" % (
            wanted, name, ", ".join("%s (%s)" % (s["name"], s["lxc_name"]) for s in snapshots) or "none"))
    target = p.get("restore_to")
    if target is not None and target != name:
        if target_exists:
            return result
        result["kind"] = "restore_new"
        result["actions"].append("restore snapshot %s (%s) of container %s into new container %s" % (
            found["name"], found["lxc_name"], name, target))
        return result
    if p.get("restore_path") is not None:
        raise SnapshotError("restore_path: an in-place restore keeps the container in lxc_path; "
                            "restore_path is only for a new container (restore_to other than name)")
    if store in CANNOT_SNAPSHOT:
        check_store(store, name, None)
    if deps:
        raise SnapshotError(
            "container %s cannot be restored in place: other containers or snapshots use its rootfs (%s), and LXC "
            "refuses to destroy it (\"container rootfs has dependent snapshots\"); restore into a new container with "
            "restore_to, or remove those first" % (name, ", ".join(deps))
        )
    if running:
        if not p.get("stop_running"):
            raise running_error(name, cstate, "restore")
        result["stop"] = True
    result["kind"] = "restore"
    if result["stop"]:
        result["actions"].append("stop container %s" % name)
    result["actions"].append("restore snapshot %s (%s) in place: container %s is replaced by a copy of it" % (
        found["name"], found["lxc_name"], name))
    if result["stop"]:
        result["actions"].append("start container %s" % name)
    return result


# -- acting ------------------------------------------------------------------------------------

class SnapshotManager:
    """Reads and changes the snapshots of one container."""

    def __init__(self, module, params: dict):
        self.module = module
        self.p = params
        self.lxc = LxcRunner(module, params.get("lxc_path"))
        self.p["lxc_path"] = self.lxc.lxc_path
        self.name = params["name"]
        self.snapdir = snaps_dir(self.lxc.lxc_path, self.name)

    def snapshots(self) -> list:
        return list_snapshots(self.snapdir)

    def container_rootfs(self):
        text = read_text(self.lxc.config_path(self.name)) or ""
        return rootfs_value(text)

    def fs_type(self, path: str):
        """The filesystem type (stat -f) of ``path`` or of its nearest existing parent; None if unknown."""
        while path and not os.path.exists(path):
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        rc, out, err = self.module.run_command(["stat", "-f", "-c", "%T", path])
        return out.strip() if rc == 0 and out.strip() else None

    def check_restore_path(self, decided: dict) -> None:
        """A btrfs snapshot can only be restored onto btrfs (LXC makes a subvolume there): say so before any change."""
        snap = decided["snapshot"]
        path = self.p.get("restore_path")
        if decided["kind"] != "restore_new" or not path or snap["backing_store"] != "btrfs":
            return
        fstype = self.fs_type(path)
        if fstype is not None and fstype != "btrfs":
            raise SnapshotError(
                "restore_path %s is on %s, not btrfs: LXC restores the btrfs snapshot %s (%s) only as a btrfs subvolume "
                "(\"Failed to create btrfs subvolume\"); choose a restore_path on a btrfs filesystem"
                % (path, fstype, snap["name"], snap["lxc_name"])
            )

    def target_exists(self) -> bool:
        target = self.p.get("restore_to")
        if target is None:
            return False
        base = self.p.get("restore_path") or self.lxc.lxc_path
        return os.path.isfile(os.path.join(base, target, "config"))

    # ---- steps

    def _stop(self, cstate):
        if cstate == "FROZEN":
            self.lxc.unfreeze(self.name)
        timeout = self.p.get("stop_timeout")
        self.lxc.stop(self.name, timeout=timeout or 0, kill=not timeout)

    def _start(self, cstate):
        self.lxc.start(self.name)
        if cstate == "FROZEN":
            self.lxc.freeze(self.name)

    def _create(self, wanted: str):
        before = set(os.listdir(self.snapdir)) if os.path.isdir(self.snapdir) else set()
        args = []
        tmp = None
        comment = self.p.get("comment")
        try:
            if comment:
                fd, tmp = tempfile.mkstemp(prefix="lxcfleet-snapshot-comment-")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(comment_text(comment))
                args = ["-c", tmp]
            self.lxc.run("lxc-snapshot", self.name, args, log=True,
                         what="creating a snapshot of container %s failed" % self.name)
        finally:
            if tmp:
                os.unlink(tmp)
        after = set(os.listdir(self.snapdir)) if os.path.isdir(self.snapdir) else set()
        new = sorted(e for e in after - before if lxc_index(e) is not None)
        if len(new) != 1:
            raise SnapshotError(
                "lxc-snapshot of container %s succeeded, but %s new snapshot folders appeared in %s (%s): another "
                "snapshot was made at the same time; the name %r was not recorded" % (
                    self.name, len(new), self.snapdir, ", ".join(new) or "none", wanted))
        write_atomic(self.module, os.path.join(self.snapdir, new[0], NAME_FILE), wanted + "\n", mode=0o644)
        return new[0]

    def _set_comment(self, snap: dict):
        path = os.path.join(snap["path"], "comment")
        comment = self.p["comment"]
        if comment == "":
            if os.path.exists(path):
                os.unlink(path)
        else:
            write_atomic(self.module, path, comment_text(comment), mode=0o644)

    def _remove(self, snap: dict):
        self.lxc.run("lxc-snapshot", self.name, ["-d", snap["lxc_name"]], log=True,
                     what="removing snapshot %s of container %s failed" % (snap["lxc_name"], self.name))

    def _restore(self, snap: dict, target=None):
        args = ["-r", snap["lxc_name"]]
        if target is not None:
            args += ["-N", target]
        self.lxc.run("lxc-snapshot", self.name, args, log=True,
                     what="restoring snapshot %s of container %s failed" % (snap["lxc_name"], self.name))

    def _restore_elsewhere(self, snap: dict, target: str, path: str):
        """lxc-snapshot has no --newpath in LXC 5.0: clone the snapshot container with lxc-copy as
        lxc-snapshot -r would (same backing store; overlay snapshots as overlay snapshots)."""
        store = snap["backing_store"]
        args = ["-N", target, "-p", path]
        if store == "overlayfs":
            args += ["-s", "-B", "overlayfs"]
        elif store in ("dir", "btrfs", "loop", "zfs"):
            args += ["-B", store]
        os.makedirs(path, mode=0o755, exist_ok=True)
        runner = LxcRunner(self.module, os.path.dirname(snap["path"]))
        runner.run("lxc-copy", snap["lxc_name"], args, log=True,
                   what="restoring snapshot %s of container %s into %s failed" % (snap["lxc_name"], self.name, path))

    # ---- the task

    def run(self) -> dict:
        p = self.p
        exists = self.lxc.exists(self.name)
        cstate = (self.lxc.state(self.name) or STOPPED) if exists else None
        before = self.snapshots() if exists else []
        rootfs = self.container_rootfs() if exists else None
        store = store_of(rootfs)
        deps = dependents(self.lxc.container_dir(self.name)) if exists else []
        decided = plan(p, before, cstate, store, rootfs, deps, self.target_exists())
        self.check_restore_path(decided)
        kind = decided["kind"]
        acted = decided["snapshot"]
        after = before
        if kind and self.module.check_mode:
            after = self._predict(before, decided)
            if kind == "create":
                acted = [s for s in after if s["name"] == p["snapshot"]][0]
        elif kind:
            acted = self._apply(decided, cstate)
            after = self.snapshots()
            if acted is not None and kind != "remove":
                acted = find_snapshot(after, acted["lxc_name"]) or acted
        result = {
            "changed": bool(decided["actions"]),
            "actions": decided["actions"],
            "snapshots": after,
            "snapshot": acted,
            "diff": {"before": {"snapshots": summary(before)}, "after": {"snapshots": summary(after)}},
        }
        if p.get("restore_to") and acted is not None:
            result["restored"] = {"name": p["restore_to"], "lxc_path": p.get("restore_path") or self.lxc.lxc_path}
        return result

    def _predict(self, before: list, decided: dict) -> list:
        kind = decided["kind"]
        if kind == "create":
            lxc_name = next_lxc_name(before, os.listdir(self.snapdir) if os.path.isdir(self.snapdir) else ())
            snap = {
                "name": self.p["snapshot"], "lxc_name": lxc_name, "named": True,
                "comment": self.p["comment"].rstrip("\n") if self.p.get("comment") else None,
                "created": None, "ts": None, "path": os.path.join(self.snapdir, lxc_name),
                "rootfs": None, "backing_store": None, "dependents": [],
            }
            return sorted(before + [snap], key=lambda s: lxc_index(s["lxc_name"]))
        if kind == "remove":
            return [s for s in before if s["lxc_name"] != decided["snapshot"]["lxc_name"]]
        if kind == "comment":
            target = decided["snapshot"]["lxc_name"]
            comment = self.p["comment"].rstrip("\n") or None
            return [dict(s, comment=comment) if s["lxc_name"] == target else s for s in before]
        return before

    def _apply(self, decided: dict, cstate):
        kind = decided["kind"]
        snap = decided["snapshot"]
        if kind == "comment":
            self._set_comment(snap)
            return snap
        if kind == "remove":
            self._remove(snap)
            return snap
        if kind == "restore_new":
            if self.p.get("restore_path"):
                self._restore_elsewhere(snap, self.p["restore_to"], self.p["restore_path"])
            else:
                self._restore(snap, self.p["restore_to"])
            return snap
        if decided["stop"]:
            self._stop(cstate)
        try:
            if kind == "create":
                snap = {"lxc_name": self._create(self.p["snapshot"])}
            else:
                self._restore(snap)
        except (LxcError, SnapshotError, OSError):
            if decided["stop"]:
                try:  # leave the container running as it was, if it can still start
                    self._start(cstate)
                except LxcError:
                    pass
            raise
        if decided["stop"]:
            self._start(cstate)
        return snap


def argument_spec() -> dict:
    return dict(
        name=dict(type="str", required=True),
        lxc_path=dict(type="path"),
        snapshot=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
        comment=dict(type="str"),
        restore_to=dict(type="str"),
        restore_path=dict(type="path"),
        stop_running=dict(type="bool", default=False),
        stop_timeout=dict(type="int", default=30),
    )


def main():
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    try:
        validate_params(params)
        manager = SnapshotManager(module, params)
        result = manager.run()
    except SnapshotError as exc:
        module.fail_json(msg=str(exc))
        return
    except LxcError as exc:
        module.fail_json(msg=exc.msg, **exc.to_result())
        return
    except OSError as exc:
        module.fail_json(msg="snapshots of container %s: %s" % (params["name"], exc))
        return
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)
