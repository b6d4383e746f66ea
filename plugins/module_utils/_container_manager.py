# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""State machine of the container module: compare, plan a list of actions, then act."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import ConfigError, LxcConfig
from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic
from ansible_collections.lxcfleet.lxc.plugins.module_utils._container import (
    HOOK_EVENTS,
    CgroupLayout,
    HookEntries,
    OptionError,
    RemoveKey,
    SetKey,
    check_hook_dir,
    compile_all,
    hook_file_path,
    plan_config,
)
from ansible_collections.lxcfleet.lxc.plugins.module_utils._keys import validate_key
from ansible_collections.lxcfleet.lxc.plugins.module_utils import _unpriv
from ansible_collections.lxcfleet.lxc.plugins.module_utils._image_options import IMAGE_OPTIONS
from ansible_collections.lxcfleet.lxc.plugins.module_utils import _clone
from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import LockTimeout, fcntl_lock
from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bdev
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import (
    LxcError,
    LxcRunner,
    poll,
    validate_name,
)

STABLE = ("RUNNING", "STOPPED", "FROZEN")
#: Written into a base container's folder once it is complete (docs/clones.md).
BASE_MARKER = "lxcfleet-base.json"

_NIC_SPEC = dict(
    type=dict(type="str", default="veth", choices=["veth", "macvlan", "ipvlan", "phys", "vlan", "empty", "none"]),
    link=dict(type="str"),
    name=dict(type="str"),
    flags=dict(type="str", choices=["up", "down"]),
    hwaddr=dict(type="str"),
    mtu=dict(type="int"),
    ipv4=dict(type="list", elements="str"),
    ipv4_gateway=dict(type="str"),
    ipv6=dict(type="list", elements="str"),
    ipv6_gateway=dict(type="str"),
    veth_mode=dict(type="str", choices=["bridge", "router"]),
    veth_pair=dict(type="str"),
    macvlan_mode=dict(type="str", choices=["private", "vepa", "bridge", "passthru"]),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="started", choices=["present", "started", "stopped", "restarted", "frozen", "absent"]),
    lxc_path=dict(type="path"),
    template=dict(type="str"),
    template_options=dict(type="list", elements="str", default=[]),
    rootfs_archive=dict(type="path"),
    rootfs_metadata=dict(type="path"),
    image=dict(type="dict", options=IMAGE_OPTIONS),
    # backing stores (_bdev): None is LXC's default (dir); a clone keeps its source's store
    backing_store=dict(type="str", choices=list(_bdev.STORES)),
    backing_store_options=dict(type="dict", options=_bdev.OPTIONS_SPEC),
    config=dict(type="dict", default={}),
    config_remove=dict(type="list", elements="str", default=[]),
    network=dict(type="list", elements="dict", options=_NIC_SPEC),
    mounts=dict(
        type="list",
        elements="dict",
        options=dict(
            source=dict(type="str"),
            target=dict(type="str", required=True),
            type=dict(type="str", default="none"),
            options=dict(type="str", default="bind,create=dir"),
            dump=dict(type="int", default=0),
            **{"pass": dict(type="int", default=0, no_log=False)},
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    ),
    limits=dict(
        type="dict",
        options=dict(
            memory=dict(type="str"),
            cpus=dict(type="str"),
            cpu_weight=dict(type="int"),
            pids=dict(type="str"),
        ),
    ),
    autostart=dict(
        type="dict",
        options=dict(
            enabled=dict(type="bool"),
            delay=dict(type="int"),
            order=dict(type="int"),
            groups=dict(type="list", elements="str"),
        ),
    ),
    unprivileged=dict(type="bool"),
    idmap=dict(type="list", elements="str"),
    apparmor_profile=dict(type="str"),
    nesting=dict(type="bool"),
    hooks=dict(
        type="list",
        elements="dict",
        options=dict(
            event=dict(type="str", choices=list(HOOK_EVENTS)),
            name=dict(type="str"),
            content=dict(type="str"),
            path=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    ),
    capabilities=dict(
        type="dict",
        options=dict(drop=dict(type="list", elements="str"), keep=dict(type="list", elements="str")),
        mutually_exclusive=[("drop", "keep")],
    ),
    on_change=dict(type="str", default="restart", choices=["restart", "none", "fail"]),
    stop_timeout=dict(type="int", default=30),
    remove_snapshots=dict(type="bool", default=False),
    wait=dict(
        type="dict",
        options=dict(
            timeout=dict(type="int", default=60),
            ipv4=dict(type="bool", default=False),
            ipv6=dict(type="bool", default=False),
            interfaces=dict(type="list", elements="str"),
        ),
    ),
    # clone_from, clone_from_path, clone_snapshot, clone_stop_source, ephemeral, base (docs/clones.md)
    **_clone.ARGUMENT_SPEC,
)


class ContainerManager:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.name = self.params["name"]
        self.state = self.params["state"]
        self.changed = False
        self.actions = []
        self.first_info = None
        self.final_text = None  # the config file as this run leaves it, once known
        self.diff = {}
        self.restart_required = False
        self.image = None  # the cached image a new container came from
        self.base_result = None  # {name, created} when the container was cloned from a base container
        self.clone_warnings = []
        self.hook_edit = None  # hooks: the HookEntries edit of the task, if any
        self.hook_plan = []  # hooks: [(label, path, content or None for removal, text before)]
        self.hook_results = None  # hooks: what the result says about each hook of the task

    # -- input --------------------------------------------------------------------------------

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, changed=self.changed, actions=self.actions, **kwargs)

    def validate(self):
        p = self.params
        error = validate_name(self.name)
        if error:
            self.fail(error)
        sources = [o for o in ("template", "image", "rootfs_archive") if p[o] is not None]
        if len(sources) > 1:
            self.fail("%s are mutually exclusive: give one creation source" % " and ".join(sources))
        if p["template"] is not None and not p["template"].strip():
            self.fail("template must not be empty")
        if p["template"] is not None and ("/" in p["template"] and not os.path.isabs(p["template"])):
            self.fail("template must be a template name (busybox, download, local ...) or an absolute path")
        if p["rootfs_metadata"] is not None and p["rootfs_archive"] is None:
            self.fail("rootfs_metadata needs rootfs_archive")
        for option in ("rootfs_archive", "rootfs_metadata"):
            if p[option] is not None and not os.path.isfile(p[option]):
                self.fail("%s: %s is not a file" % (option, p[option]))
        if p["stop_timeout"] < 0:
            self.fail("stop_timeout must be 0 or more")
        wait = p["wait"]
        if wait:
            if wait["timeout"] < 0:
                self.fail("wait.timeout must be 0 or more")
            wants_addresses = wait["ipv4"] or wait["ipv6"] or wait["interfaces"]
            if wants_addresses and self.state not in ("started", "restarted"):
                self.fail(
                    "wait: addresses can only be waited for with state=started or state=restarted, "
                    "not state=%s" % self.state
                )
        try:
            self.edits = compile_all(p, CgroupLayout())
        except OptionError as exc:
            self.fail(str(exc))
        self.validate_backing_store()
        self.validate_idmap()
        self.validate_clone()

    def validate_idmap(self):
        """The id map the task names (``idmap`` or ``config: {lxc.idmap: ...}``), checked against the
        subordinate ranges of the user this runs as, before anything changes."""
        p = self.params
        self.who = _unpriv.Identity.current()
        self.task_idmap = None
        self.task_idmap_option = None
        config_keys = {}
        for raw_key, value in (p["config"] or {}).items():
            try:
                config_keys[validate_key(str(raw_key))] = value
            except Exception:  # already rejected by compile_all
                continue
        if "lxc.idmap" in config_keys:
            value = config_keys["lxc.idmap"]
            self.task_idmap = value if isinstance(value, list) else [value]
            self.task_idmap_option = "config"
        if p["idmap"] is not None:
            if self.task_idmap is not None:
                self.fail("idmap: lxc.idmap is also set in config; give the map one way only")
            self.task_idmap = list(p["idmap"])
            self.task_idmap_option = "idmap"
        if self.task_idmap is not None and p["unprivileged"] is False:
            self.fail("%s: an id map makes the container unprivileged; it cannot go with unprivileged: false"
                      % self.task_idmap_option)
        if p["unprivileged"] is False and not self.who.is_root:
            self.fail("unprivileged: false needs root; %s can only run unprivileged containers" % self.who.name)
        if self.task_idmap is not None:
            if not self.task_idmap:
                self.fail("%s: an empty id map; leave it out, or set unprivileged: false for a privileged container"
                          % self.task_idmap_option)
            try:
                entries = _unpriv.parse_idmap(self.task_idmap, option=self.task_idmap_option)
            except _unpriv.IdmapError as exc:
                self.fail(str(exc))
            problems = _unpriv.idmap_problems(entries, self.who, option=self.task_idmap_option)
            if problems:
                self.fail("; ".join(problems))
            self.task_idmap = [e.line() for e in entries]

    # -- backing store (module_utils/_bdev.py) -----------------------------------------------------

    def validate_backing_store(self):
        """backing_store and backing_store_options, checked and normalised before anything changes."""
        try:
            self.bdev_options = _bdev.validate(self.params["backing_store"], self.params["backing_store_options"])
        except _bdev.BdevError as exc:
            self.fail(str(exc))
        if self.params.get("clone_from") is not None:
            try:  # lxc-copy takes only -B and -L (fssize): the others fail here, before any change
                _bdev.copy_args(self.params["backing_store"], self.bdev_options)
            except _bdev.BdevError as exc:
                self.fail(str(exc))

    def bdev_probe(self):
        return _bdev.HostProbe(run=lambda argv: self.module.run_command(argv, environ_update={"LC_ALL": "C"}))

    def bdev_defaults(self):
        """LXC's global defaults for the stores that have them, only when they matter."""
        store = self.params["backing_store"]
        keys = {"lvm": ("lxc.bdev.lvm.vg",), "zfs": ("lxc.bdev.zfs.root",),
                "best": ("lxc.bdev.lvm.vg", "lxc.bdev.zfs.root")}.get(store, ())
        return dict((key, self.lxc.global_value(key)) for key in keys)

    def preflight_backing_store(self):
        """What the host needs for the store of a new container, checked before anything changes."""
        store = self.params["backing_store"]
        probe = self.bdev_probe()
        defaults = self.bdev_defaults()
        try:
            _bdev.preflight(store, self.bdev_options, self.lxc.lxc_path, probe, defaults)
        except _bdev.BdevError as exc:
            self.fail(str(exc))
        self.planned_backing_store = _bdev.planned_store(store, self.bdev_options, self.lxc.lxc_path, probe, defaults)

    def check_existing_backing_store(self, text):
        """An existing container keeps its store: a different one in the task is an error."""
        rootfs = LxcConfig.parse(text).get("lxc.rootfs.path")
        message = _bdev.mismatch(self.params["backing_store"], _bdev.store_of(rootfs))
        if message:
            self.fail("%s (container %s in %s, lxc.rootfs.path = %s)"
                      % (message, self.name, self.lxc.lxc_path, rootfs[-1] if isinstance(rootfs, list) else rootfs))

    # -- the run ------------------------------------------------------------------------------

    def run(self):
        self.validate()
        self.lxc = LxcRunner(self.module, self.params["lxc_path"])
        self.bind_hooks()
        self.prepare_user_environment()
        exists = self.lxc.exists(self.name)
        # One lxc-info call: when nothing changes, the result describes the container too.
        self.first_info = self.lxc.info(self.name) if exists else None
        current = self.first_info["state"] if exists else None
        if current not in (None,) + STABLE and not self.module.check_mode:
            # STARTING, STOPPING, FREEZING ...: let it settle first.
            self.lxc.wait_state(self.name, STABLE, 30)
            current = self.lxc.state(self.name)
            self.first_info = None

        if self.state == "absent":
            if exists and current in ("RUNNING", "FROZEN"):
                self.stop_if_ephemeral(current)
            if exists:
                snapshots = snapshot_folders(self.lxc.container_dir(self.name))
                if snapshots and not self.params["remove_snapshots"]:
                    self.fail("container %s has snapshots (%s), which LXC does not destroy with it: set "
                              "remove_snapshots: true to remove them too, or remove them first with "
                              "lxcfleet.lxc.snapshot (state: absent)" % (self.name, ", ".join(snapshots)))
                before = self.read_config() if self.module._diff else ""
                if current == "FROZEN":
                    self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
                if snapshots and current in ("RUNNING", "FROZEN"):
                    self.act("stop", self.stop)  # lxc-destroy -s does not stop a running container (-f or not)
                label = "destroy with %d snapshots" % len(snapshots) if snapshots else "destroy"
                self.act(label, lambda: self.lxc.destroy(self.name, force=True, snapshots=bool(snapshots)))
                if self.module._diff:
                    self.diff = {
                        "before": before, "after": "",
                        "before_header": self.lxc.config_path(self.name), "after_header": "(absent)",
                    }
            self.exit(None)

        if exists and self.state == "stopped" and current in ("RUNNING", "FROZEN"):
            self.stop_if_ephemeral(current)
        if not exists and self.state == "stopped" and self.params["ephemeral"]:
            self.exit(None)  # an ephemeral container that is stopped is gone already

        if not exists and self.params["clone_from"] is not None:
            if self.params["backing_store"] is not None:
                self.preflight_backing_store()  # LXC leaves a folder behind when -B fails
            self.plan_hook_files()
            self.clone_from_source()
            self.install_hooks()
            current = "STOPPED"
        elif not exists:
            if all(self.params[o] is None for o in ("template", "image", "rootfs_archive")):
                self.fail(
                    "container %s does not exist in %s and no creation source was given: set template, image, "
                    "rootfs_archive or clone_from" % (self.name, self.lxc.lxc_path)
                )
            self.check_template()
            self.preflight_backing_store()
            self.plan_creation_idmap()
            self.preflight_unprivileged(self.creation_idmap, starting=self.state != "present")
            self.plan_hook_files()
            if self.params["base"] is not None:
                self.create_from_base()
            else:
                self.create_and_configure()
            self.install_hooks()
            current = "STOPPED"
        else:
            before = self.read_config()
            self.check_existing_backing_store(before)
            current_map = LxcConfig.parse(before).get("lxc.idmap")
            self.check_existing_idmap(current_map)
            starts = self.state in ("started", "restarted", "frozen") and current not in ("RUNNING", "FROZEN")
            starts = starts or self.state == "restarted"
            self.preflight_unprivileged(current_map, starting=starts)
            self.check_running_ephemeral(current, before)
            self.plan_hook_files()
            current = self.configure(current, before)
            self.remove_hooks()

        self.reach_state(current)
        self.wait_for_addresses()
        self.merge_hook_diff()
        self.exit(self.describe())

    # -- creation and configuration --------------------------------------------------------------

    def read_config(self) -> str:
        try:
            with open(self.lxc.config_path(self.name), encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            self.fail("cannot read %s: %s" % (self.lxc.config_path(self.name), exc))

    def write_config(self, text: str):
        write_atomic(self.module, self.lxc.config_path(self.name), text)

    # -- unprivileged ---------------------------------------------------------------------------

    def prepare_user_environment(self):
        """LXC run by a non-root user: its own runtime dir, and a delegated scope where cgroup2 needs it."""
        self.start_problem = None
        if self.who.is_root:
            return
        _unpriv.use_own_runtime_dir(self.who)
        wrapper, env, problem = _unpriv.cgroup_delegation(self.who)
        self.lxc.start_wrapper = wrapper
        self.lxc.env.update(env)
        self.start_problem = problem

    def plan_creation_idmap(self):
        """The map a new container gets: the task's, else the user's default config's, else one made
        from the subordinate ranges of the user this runs as; none when unprivileged is false."""
        p = self.params
        self.default_config_path, self.default_config_text = read_default_config(self.lxc)
        default_map = LxcConfig.parse(self.default_config_text).get("lxc.idmap")
        if p["unprivileged"] is False:
            self.creation_idmap = []
            if default_map:
                self.edits.append(RemoveKey("unprivileged", "lxc.idmap"))
            return
        if self.task_idmap is not None:
            self.creation_idmap = self.task_idmap
            if self.task_idmap_option == "idmap":
                self.edits.append(SetKey("idmap", "lxc.idmap", self.task_idmap))
            return
        try:
            self.creation_idmap = plan_default_idmap(self.lxc, self.who, self.default_config_path,
                                                     self.default_config_text)
        except _unpriv.IdmapError as exc:
            self.fail(str(exc))
        self.edits.append(SetKey("unprivileged", "lxc.idmap", self.creation_idmap))

    def check_existing_idmap(self, current_map):
        """An existing container keeps its map: its rootfs is owned by the mapped ids."""
        p = self.params
        where = "container %s in %s" % (self.name, self.lxc.lxc_path)
        if p["unprivileged"] is True and not current_map:
            self.fail("unprivileged: %s exists as a privileged container (no lxc.idmap); turning it into an "
                      "unprivileged one would need its rootfs re-owned, which this module does not do: destroy "
                      "and recreate it" % where)
        if p["unprivileged"] is False and current_map:
            self.fail("unprivileged: %s exists as an unprivileged container; making it privileged would need "
                      "its rootfs re-owned, which this module does not do: destroy and recreate it" % where)
        if self.task_idmap is not None and self.task_idmap != [" ".join(v.split()) for v in current_map]:
            self.fail("%s: %s exists with the map %s; a different map would leave its rootfs owned by the old "
                      "ids, which this module does not re-own: destroy and recreate it"
                      % (self.task_idmap_option, where, current_map))

    def preflight_unprivileged(self, idmap, starting):
        """Causes that would surely make LXC fail for a non-root user, found before anything changes."""
        if not idmap or self.who.is_root:
            return
        problems = []
        try:
            entries = _unpriv.parse_idmap(idmap, option="lxc.idmap")
            problems += _unpriv.idmap_problems(entries, self.who, option="lxc.idmap")
        except _unpriv.IdmapError as exc:
            problems.append(str(exc))
        problems += _unpriv.newidmap_problems()
        if starting and self.start_problem:
            problems.append(self.start_problem)
        if problems:
            self.fail("container %s cannot run unprivileged as %s: %s" % (self.name, self.who.name, "; ".join(problems)),
                      causes=problems)

    def unprivileged_causes(self):
        """After a failed create or start: what this module can detect."""
        text = self.final_text
        if text is None and self.lxc.exists(self.name):
            try:
                with open(self.lxc.config_path(self.name), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                text = ""
        config = LxcConfig.parse(text or "").as_dict()
        if not config.get("lxc.idmap"):
            return []
        rootfs = config.get("lxc.rootfs.path") or os.path.join(self.lxc.container_dir(self.name), "rootfs")
        if isinstance(rootfs, list):
            rootfs = rootfs[-1]
        rootfs = rootfs.split(":", 1)[1] if rootfs.startswith("dir:") else rootfs
        nics = [n for _i, n in sorted(_nics(config).items())]
        try:
            return _unpriv.diagnose(config, self.who, rootfs, nics)
        except Exception as exc:  # diagnostics must never hide LXC's own error
            return ["(diagnostics failed: %s)" % exc]

    def check_template(self):
        """A template that LXC will not find fails here, before anything changes."""
        template = self.params["template"]
        if template is None or os.path.isabs(template):
            if template is not None and not os.access(template, os.X_OK):
                self.fail("template: %s is not an executable template script" % template)
            return
        folders = [os.path.join(prefix, "share", "lxc", "templates") for prefix in ("/usr", "/usr/local")]
        if not any(os.path.isfile(os.path.join(folder, "lxc-" + template)) for folder in folders):
            self.fail("template: LXC has no template named %r (looked for lxc-%s in %s)"
                      % (template, template, ", ".join(folders)))

    def create_and_configure(self):
        import shutil

        p = self.params
        scratch = tempfile.mkdtemp(prefix="lxcfleet-create-")
        try:
            self._create_and_configure(p, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def creation_source(self, scratch):
        """(template, options) for lxc-create. An image or a rootfs archive is checked member by member
        (and its metadata's templates entries) before anything is unpacked; LXC's local template then
        unpacks it with a metadata tarball made here from the checked files."""
        from ansible_collections.lxcfleet.lxc.plugins.module_utils import _image, _unpack  # creation only, not on a no-op

        p = self.params
        if p["template"] is not None:
            return p["template"], list(p["template_options"])
        unprivileged = bool(self.creation_idmap)
        write = not self.module.check_mode
        if p["image"] is not None:
            option = "image"
            try:
                image = _image.ensure_cached(self.module, p["image"], unprivileged=unprivileged, state="present")
            except _image.ImageError as exc:
                self.fail(str(exc))
            self.image = image
            if image.get("fetched"):
                self.actions.append("fetch image")
                self.changed = True
            rootfs = image.get("rootfs")
            if not rootfs or not os.path.exists(rootfs):  # check mode, nothing cached yet: nothing to check either
                return "local", ["--fstree", "(image rootfs)", "--metadata", "(image metadata)"]
            meta = dict((k, v) for k, v in (image.get("meta") or {}).items() if v)
            keep = True
        else:
            option = "rootfs_archive"
            rootfs = p["rootfs_archive"]
            keep = False
            if p["rootfs_metadata"] is not None:
                try:
                    meta = _unpack.extract_metadata(p["rootfs_metadata"], os.path.join(scratch, "meta-in"))
                except _unpack.UnpackError as exc:
                    self.fail("rootfs_metadata: %s" % exc)
            else:
                meta = {"config": write_minimal_config(scratch)}
        try:
            summary = _unpack.checked_archive(rootfs, keep=keep, write=write)
            if unprivileged:
                devices = _unpack.unprivileged_problems(summary, _unpack.read_lines(meta.get("excludes-user")))
                if devices:
                    raise _unpack.UnpackError(
                        "device nodes cannot be created in an unprivileged container's user namespace and the "
                        "image's excludes-user does not exclude them: %s" % ", ".join(devices[:5]))
            templates = {}
            for key in ("templates", "templates-user"):
                if key in meta:
                    templates[key] = _unpack.check_templates(_unpack.read_lines(meta[key]), summary)
        except _unpack.UnpackError as exc:
            self.fail("%s: %s; nothing was unpacked" % (option, exc))
        metadata = _unpack.write_checked_metadata(meta, templates, os.path.join(scratch, "meta-out"))
        # The container's root (a mapped id when unprivileged) runs the template and reads these files.
        os.chmod(scratch, 0o755)
        template_config, hook_dir = _unpack.lxc_share_dirs()
        return _unpack.write_template(scratch), ["--fstree", rootfs, "--metadata", metadata, "--template-config",
                                                 template_config, "--hook-dir", hook_dir] + list(p["template_options"])

    def _create_and_configure(self, p, scratch):
        template, options = self.creation_source(scratch)
        # In check mode the template's own config is unknown: the diff shows the keys of the task.
        planned = plan_config("", self.edits)[0]
        self.final_text = planned

        # An unprivileged container needs its map when the template runs (the rootfs is unpacked as the
        # mapped ids): LXC gets the default config with the task's keys applied as its initial config.
        default_map = LxcConfig.parse(self.default_config_text).get("lxc.idmap")
        initial = None
        if self.creation_idmap or default_map:
            initial = plan_config(self.default_config_text, self.edits)[0]

        def create():
            config_file = None
            if initial is not None:
                config_file = os.path.join(scratch, "config")
                with open(config_file, "w", encoding="utf-8") as handle:
                    handle.write(initial)
            make_traversable_dirs(self.lxc.lxc_path)
            self.lxc.create(self.name, template, options, config_file=config_file,
                            bdev_options=_bdev.create_args(p["backing_store"], self.bdev_options))

        self.act("create", create)
        if self.module.check_mode:
            after = planned
        else:
            before = self.read_config()
            after = plan_config(before, self.edits)[0]
            self.final_text = after
            if after != before:
                self.write_config(after)
        if self.module._diff:
            self.diff = {"before": "", "after": after, "before_header": "(absent)",
                         "after_header": os.path.join(self.lxc.lxc_path, self.name, "config")}

    def configure(self, current, before):
        try:
            after, changed_keys = plan_config(before, self.edits)
        except (ConfigError, OptionError) as exc:  # a config the model cannot edit: say so, change nothing
            self.fail("cannot plan the config of %s: %s" % (self.name, exc))
        self.final_text = after
        if after == before:
            self.install_hooks()  # a hook script's content can change without a config change (no restart)
            return current
        if self.module._diff:
            self.diff = {"before": before, "after": after, "before_header": self.lxc.config_path(self.name),
                         "after_header": self.lxc.config_path(self.name)}
        running = current in ("RUNNING", "FROZEN")
        keeps_running = self.state in ("present", "started", "restarted", "frozen")
        on_change = self.params["on_change"]
        if running and keeps_running and on_change == "fail":
            self.fail(
                "the config of running container %s would change (%s) and on_change=fail"
                % (self.name, ", ".join(changed_keys)),
                diff=self.diff,
            )
        self.install_hooks()  # hook files are in place before LXC reads a config that names them
        if running and keeps_running and on_change == "restart" and self.state != "restarted":
            frozen = current == "FROZEN"
            if frozen:
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
            self.act("stop", self.stop)
            self.act("write config", lambda: self.write_config(after))
            self.act("start", self.start)
            return "FROZEN_AFTER_RESTART" if frozen else "RUNNING"
        if running and not keeps_running:
            # state=stopped: stop first, then write, so LXC never sees a half-applied config.
            if current == "FROZEN":
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
            self.act("stop", self.stop)
            self.act("write config", lambda: self.write_config(after))
            return "STOPPED"
        self.act("write config", lambda: self.write_config(after))
        if running and on_change == "none":
            self.restart_required = True
        return current

    # -- clones, ephemeral containers and base containers (docs/clones.md) -----------------------

    def validate_clone(self):
        """The clone, ephemeral and base options, before anything changes."""
        errors = _clone.check_options(self.params)
        if errors:
            self.fail("; ".join(errors))
        if self.params["ephemeral"]:
            # An ephemeral container is one whose config says so: LXC destroys it when it stops.
            self.edits.append(SetKey("ephemeral", "lxc.ephemeral", "1"))

    def explicit_backing_store(self):
        """``backing_store`` when the task sets it; None leaves the choice to LXC (``-B`` is not passed)."""
        value = self.params.get("backing_store")
        if value is not None and value == ARGUMENT_SPEC.get("backing_store", {}).get("default"):
            return None  # the option's default, not the task's choice: lxc-copy keeps the source's store
        return value

    def read_config_of(self, runner, name):
        try:
            with open(runner.config_path(name), encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            self.fail("cannot read %s: %s" % (runner.config_path(name), exc))

    def check_clone_idmap(self, option, where, source_map):
        """A clone keeps the id map of its source (the rootfs is owned by the mapped ids)."""
        p = self.params
        if p["unprivileged"] is True and not source_map:
            self.fail("unprivileged: %s: %s is privileged and a clone keeps its source's kind" % (option, where))
        if p["unprivileged"] is False and source_map:
            self.fail("unprivileged: %s: %s is unprivileged and a clone keeps its source's id map" % (option, where))
        if self.task_idmap is not None and self.task_idmap != [" ".join(v.split()) for v in source_map]:
            self.fail("%s: %s: %s has the map %s and a clone keeps its source's map"
                      % (self.task_idmap_option, option, where, source_map))

    def clone_from_source(self):
        """A new container cloned from ``clone_from`` (checked: it exists, its map, its state)."""
        p = self.params
        source = p["clone_from"]
        runner = self.lxc.for_path(p["clone_from_path"])
        if not runner.exists(source):
            self.fail("clone_from: container %s does not exist in %s" % (source, runner.lxc_path))
        text = self.read_config_of(runner, source)
        source_map = LxcConfig.parse(text).get("lxc.idmap")
        where = "container %s in %s" % (source, runner.lxc_path)
        self.check_clone_idmap("clone_from", where, source_map)
        self.preflight_unprivileged(source_map, starting=self.state != "present")
        state = runner.state(source)
        snapshot = bool(p["clone_snapshot"] or p["ephemeral"])
        try:
            bdev_args = _bdev.copy_args(self.explicit_backing_store(), self.bdev_options)
        except _bdev.BdevError as exc:
            self.fail(str(exc))
        self.clone_and_configure(runner, source, text, state, snapshot, option="clone_from",
                                 stop_source=p["clone_stop_source"], bdev_args=bdev_args)

    def clone_and_configure(self, runner, source, source_text, source_state, snapshot, option, stop_source=False,
                            bdev_args=()):
        """``lxc-copy`` the source, then apply the task's config to the clone (as after a create)."""
        running = source_state in ("RUNNING", "FROZEN")
        allow_running = False
        restart_source = False
        if running:
            store = _clone.rootfs_store(LxcConfig.parse(source_text).get("lxc.rootfs.path"))
            decision, message = _clone.running_source_policy(store, snapshot, stop_source)
            if decision == "fail" and option == "base":
                self.fail("base: base container %s in %s is %s; containers are overlay snapshots of it, so it must stay "
                          "stopped: stop it (or use base.snapshot: false for full copies)"
                          % (source, runner.lxc_path, source_state.lower()))
            if decision == "fail":
                self.fail("%s: container %s in %s is %s; %s" % (option, source, runner.lxc_path, source_state.lower(),
                                                                message))
            if decision == "allow":
                allow_running = True
                if message:
                    self.clone_warnings.append("%s: %s: %s" % (self.name, source, message))
            else:
                restart_source = True
        elif source_state is not None and source_state != "STOPPED":
            self.fail("%s: container %s in %s is %s; wait until it is stopped or running"
                      % (option, source, runner.lxc_path, source_state.lower()))

        # What the clone's config will be: LXC gives it its own name (and rootfs path, and new MACs).
        predicted = plan_config(source_text, [SetKey("clone", "lxc.uts.name", self.name)])[0] if source_text else ""
        try:
            planned = plan_config(predicted, self.edits)[0]
        except (ConfigError, OptionError) as exc:
            self.fail("cannot plan the config of %s from %s: %s" % (self.name, source, exc))
        self.final_text = planned

        def clone():
            frozen = source_state == "FROZEN"
            if restart_source:
                if frozen:
                    runner.unfreeze(source)
                if self.params["stop_timeout"] == 0:
                    runner.stop(source, kill=True)
                else:
                    runner.stop(source, timeout=self.params["stop_timeout"])
            try:
                make_traversable_dirs(self.lxc.lxc_path)
                self.lxc.copy(source, self.name, source_path=runner.lxc_path, snapshot=snapshot,
                              allow_running=allow_running, bdev_args=bdev_args)
            finally:
                if restart_source:
                    runner.start(source)
                    if frozen:
                        runner.freeze(source)

        if restart_source:
            self.actions.append("stop source")
        self.act("clone", clone)
        if restart_source:
            self.actions.append("start source")
        if self.module.check_mode:
            after = planned
        else:
            before = self.read_config()
            try:
                after = plan_config(before, self.edits)[0]
            except (ConfigError, OptionError) as exc:
                self.fail("cannot plan the config of clone %s: %s" % (self.name, exc))
            self.final_text = after
            if after != before:
                self.write_config(after)
        if self.module._diff:
            self.diff = {"before": "", "after": after, "before_header": "(absent)",
                         "after_header": self.lxc.config_path(self.name)}

    def base_name(self):
        """The base container's name: ``base.name``, or one derived from the creation source."""
        from ansible_collections.lxcfleet.lxc.plugins.module_utils import _image, _unpack  # creation only, not on a no-op

        p = self.params
        if p["base"].get("name"):
            return p["base"]["name"]
        idmap = self.creation_idmap
        if p["image"] is not None:
            unprivileged = bool(idmap)
            try:
                image = _image.ensure_cached(self.module, p["image"], unprivileged=unprivileged, state="present")
            except _image.ImageError as exc:
                self.fail(str(exc))
            self.image = image
            if image.get("fetched") and "fetch image" not in self.actions:
                self.actions.append("fetch image")
                self.changed = True
            sha = None
            rootfs = image.get("rootfs")
            if rootfs and os.path.isfile(rootfs):
                entry = _image.read_entry(image["path"], unprivileged) or {}
                sums = (entry.get("info") or {}).get("sha256")
                sha = sums.get(_image.ROOTFS) if isinstance(sums, dict) else sums
                if not sha:
                    sha = _unpack.sha256_file(rootfs)
            return _clone.base_name_for_image(image, sha or "new-image", idmap)
        if p["template"] is not None:
            return _clone.base_name_for_template(p["template"], p["template_options"], idmap,
                                                 _clone.file_stamp(self.template_path()))
        return _clone.base_name_for_archive(p["rootfs_archive"], p["rootfs_metadata"], p["template_options"], idmap)

    def template_path(self):
        template = self.params["template"]
        if os.path.isabs(template):
            return template
        for prefix in ("/usr", "/usr/local"):
            path = os.path.join(prefix, "share", "lxc", "templates", "lxc-" + template)
            if os.path.isfile(path):
                return path
        return None

    def create_from_base(self):
        """Make sure the stopped base container exists (made once, under a lock in the lxc path), then
        clone it (copy-on-write with base.snapshot) and configure the clone; the base keeps the image's config."""
        import shutil

        p = self.params
        base = self.base_name()
        snapshot = p["base"]["snapshot"]
        created = False
        if self.module.check_mode:
            exists = self.lxc.exists(base)
            if exists and self.incomplete_base(base):
                self.actions.append("destroy incomplete base")
                exists = False
            if not exists:
                self.actions.append("create base")
                self.changed = True
                created = True
        else:
            make_traversable_dirs(self.lxc.lxc_path)
            lock = os.path.join(self.lxc.lxc_path, ".%s.lxcfleet-lock" % base)
            try:
                with fcntl_lock(lock, timeout=900, mode=0o644):
                    if self.lxc.exists(base) and self.incomplete_base(base):
                        self.act("destroy incomplete base", lambda: self.lxc.destroy(base, force=True))
                    if not self.lxc.exists(base):
                        scratch = tempfile.mkdtemp(prefix="lxcfleet-base-")
                        try:
                            self.create_base(base, scratch)
                        finally:
                            shutil.rmtree(scratch, ignore_errors=True)
                        created = True
            except LockTimeout as exc:
                self.fail("base: %s" % exc)
            exists = True
        self.base_result = {"name": base, "created": created, "snapshot": snapshot}
        text = self.read_config_of(self.lxc, base) if exists else ""
        state = self.lxc.state(base) if exists else "STOPPED"
        if exists:
            self.check_clone_idmap("base", "base container %s in %s" % (base, self.lxc.lxc_path),
                                   LxcConfig.parse(text).get("lxc.idmap"))
        self.clone_and_configure(self.lxc, base, text, state, snapshot, option="base")

    def incomplete_base(self, base):
        """The remains of an interrupted creation: a base with a name this module derived, without the marker
        it writes once the base is complete, and without clones that depend on it."""
        if self.params["base"].get("name"):
            return False  # a base the user named may have been made by other means: used as it is
        folder = self.lxc.container_dir(base)
        if os.path.exists(os.path.join(folder, BASE_MARKER)):
            return False
        try:
            with open(os.path.join(folder, "lxc_snapshots"), encoding="utf-8") as handle:
                return not handle.read().strip()
        except OSError:
            return True

    def create_base(self, base, scratch):
        """``lxc-create`` the base container from the task's source, with the id map only: the task's other
        config goes to the clone."""
        p = self.params
        template, options = self.creation_source(scratch)
        idmap_edits = []
        if p["unprivileged"] is False:
            idmap_edits.append(RemoveKey("unprivileged", "lxc.idmap"))
        elif self.creation_idmap:
            idmap_edits.append(SetKey("unprivileged", "lxc.idmap", self.creation_idmap))
        default_map = LxcConfig.parse(self.default_config_text).get("lxc.idmap")
        config_file = None
        if self.creation_idmap or default_map:
            config_file = os.path.join(scratch, "config")
            with open(config_file, "w", encoding="utf-8") as handle:
                handle.write(plan_config(self.default_config_text, idmap_edits)[0])

        def create():
            self.lxc.create(base, template, options, config_file=config_file,
                            bdev_options=_bdev.create_args(self.explicit_backing_store(), self.bdev_options))
            before = self.read_config_of(self.lxc, base)
            after = plan_config(before, idmap_edits)[0]
            if after != before:
                write_atomic(self.module, self.lxc.config_path(base), after)
            source = dict((k, p[k]) for k in ("template", "template_options", "rootfs_archive", "rootfs_metadata"))
            if p["image"] is not None:
                source["image"] = dict((k, p["image"].get(k)) for k in ("dist", "release", "arch", "variant", "server"))
            marker = json.dumps({"source": source, "created": int(time.time()), "idmap": self.creation_idmap},
                                indent=1, sort_keys=True) + "\n"
            write_atomic(self.module, os.path.join(self.lxc.container_dir(base), BASE_MARKER), marker, mode=0o644)

        self.act("create base", create)

    def stop_if_ephemeral(self, current):
        """state=stopped or absent of a running ephemeral container (lxc.ephemeral = 1): stopping it is all it
        takes, LXC destroys it then. Returns when the container is not ephemeral."""
        before = self.read_config()
        if "lxc.ephemeral" not in before or LxcConfig.parse(before).get_effective("lxc.ephemeral")[-1:] != ["1"]:
            return
        if current == "FROZEN":
            self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
        self.act("stop", self.stop)
        if not self.module.check_mode:
            folder = self.lxc.container_dir(self.name)
            if not poll(lambda: not os.path.exists(folder), 30):
                self.fail("ephemeral container %s stopped, but LXC did not remove %s within 30 s" % (self.name, folder))
        if self.module._diff:
            self.diff = {"before": before, "after": "", "before_header": self.lxc.config_path(self.name),
                         "after_header": "(absent: ephemeral container stopped)"}
        self.exit(None)

    def check_running_ephemeral(self, current, before):
        """A running ephemeral container cannot be restarted: stopping it destroys it."""
        if current not in ("RUNNING", "FROZEN") or "lxc.ephemeral" not in before:
            return
        if LxcConfig.parse(before).get_effective("lxc.ephemeral")[-1:] != ["1"]:
            return
        if self.state == "restarted":
            self.fail("state: container %s is ephemeral (lxc.ephemeral = 1): a restart would destroy it" % self.name)
        if self.params["on_change"] != "restart" or self.state not in ("present", "started", "frozen"):
            return
        try:
            after, changed_keys = plan_config(before, self.edits)
        except (ConfigError, OptionError):
            return  # configure() reports it
        if after != before:
            self.fail("ephemeral: the config of running ephemeral container %s would change (%s); a restart would "
                      "destroy it (set on_change: none to write the config only)" % (self.name, ", ".join(changed_keys)))

    # -- hooks: scripts installed as <container dir>/hook-<name> ----------------------------------

    def bind_hooks(self):
        """Tell the hooks edit where the container lives, and check the programs that ``path`` names,
        before anything changes."""
        self.hook_edit = next((e for e in self.edits if isinstance(e, HookEntries)), None)
        if self.hook_edit is None:
            return
        container_dir = self.lxc.container_dir(self.name)
        if any(s.installed and s.present for s in self.hook_edit.specs):
            try:
                check_hook_dir(container_dir)
            except OptionError as exc:
                self.fail(str(exc))
        self.hook_edit.container_dir = container_dir
        for spec in self.hook_edit.specs:
            if self.state == "absent" or not spec.present or spec.installed or spec.event == "start":  # a start hook's path is inside the container
                continue
            where = "hooks[%d].path" % spec.index
            if not os.path.isfile(spec.path):
                self.fail("%s: %s is not a file on the LXC host" % (where, spec.path))
            if not os.access(spec.path, os.X_OK):
                self.fail("%s: %s is not executable" % (where, spec.path))

    def plan_hook_files(self):
        """Which installed hook files must be written or removed (content, mode 0750, owner)."""
        if self.hook_edit is None:
            return
        self.hook_results = []
        container_dir = self.lxc.container_dir(self.name)
        try:
            gid = os.stat(container_dir).st_gid
        except OSError:
            gid = None
        for spec in self.hook_edit.specs:
            entry = {"event": spec.event, "name": spec.name, "path": spec.value(container_dir),
                     "state": "present" if spec.present else "absent", "installed": spec.installed,
                     "file_changed": False}
            self.hook_results.append(entry)
            if not spec.installed:
                continue
            path = hook_file_path(container_dir, spec.name)
            try:
                st = os.lstat(path)
            except OSError:
                st = None
            current = None
            if st is not None and stat.S_ISREG(st.st_mode):
                try:
                    with open(path, "rb") as handle:
                        current = handle.read()
                except OSError:
                    current = None
            before = current.decode("utf-8", errors="replace") if current is not None else ""
            if spec.present:
                same = (current == spec.content.encode("utf-8") and stat.S_IMODE(st.st_mode) == HOOK_MODE
                        and st.st_uid == os.geteuid() and (gid is None or st.st_gid == gid))
                if not same:
                    self.hook_plan.append(("install hook %s" % spec.name, path, spec.content, before))
                    entry["file_changed"] = True
            elif st is not None:
                self.hook_plan.append(("remove hook %s" % spec.name, path, None, before))
                entry["file_changed"] = True

    def install_hooks(self):
        for label, path, content, _before in self.hook_plan:
            if content is not None:
                self.act(label, lambda path=path, content=content: self.install_hook_file(path, content))

    def remove_hooks(self):
        """After the config no longer names them (and after a restart ran the old config's hooks)."""
        for label, path, content, _before in self.hook_plan:
            if content is None:
                self.act(label, lambda path=path: self.remove_hook_file(path))

    def install_hook_file(self, path, content):
        """Atomically, mode 0750, owned by the user running LXC; group that of the container's folder, so
        that an unprivileged container's mapped root can run its mount-namespace hooks."""
        gid = os.stat(self.lxc.container_dir(self.name)).st_gid
        write_atomic(self.module, path, content, mode=HOOK_MODE)
        _own(path, gid)  # atomic_move keeps the owner and mode of a file it replaces
        os.chmod(path, HOOK_MODE)

    def remove_hook_file(self, path):
        os.unlink(path)

    def merge_hook_diff(self):
        """With hooks, the diff is a list: the config file (when it changes), then each hook file that changes."""
        if self.hook_edit is None or not self.module._diff:
            return
        diffs = [self.diff] if self.diff else []
        for label, path, content, before in self.hook_plan:
            diffs.append({"before": before, "after": content if content is not None else "",
                          "before_header": path, "after_header": path if content is not None else "(absent)"})
        self.diff = diffs

    # -- state ----------------------------------------------------------------------------------

    def stop(self):
        timeout = self.params["stop_timeout"]
        if timeout == 0:
            return self.lxc.stop(self.name, kill=True)
        return self.lxc.stop(self.name, timeout=timeout)

    def start(self):
        self.lxc.start(self.name)

    def reach_state(self, current):
        want = self.state
        if current == "FROZEN_AFTER_RESTART":
            current = "RUNNING"
            if want in ("present", "frozen"):
                self.act("freeze", lambda: self.lxc.freeze(self.name))
                return
        if want == "present":
            return
        if want == "started":
            if current == "STOPPED":
                self.act("start", self.start)
            elif current == "FROZEN":
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
        elif want == "stopped":
            if current == "FROZEN":
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
            if current in ("RUNNING", "FROZEN"):
                self.act("stop", self.stop)
        elif want == "restarted":
            if current == "FROZEN":
                self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
            if current in ("RUNNING", "FROZEN"):
                self.act("stop", self.stop)
            self.act("start", self.start)
        elif want == "frozen":
            if current == "STOPPED":
                self.act("start", self.start)
            if current != "FROZEN":
                self.act("freeze", lambda: self.lxc.freeze(self.name))

    def act(self, label, func):
        """Record an action; run it unless in check mode. A failure of LXC fails the task with
        LXC's reason and the state the container was left in."""
        self.actions.append(label)
        self.changed = True
        if self.module.check_mode:
            return
        try:
            func()
        except OSError as exc:
            self.fail("%s of container %s failed: %s" % (label, self.name, exc))
        except LxcError as exc:
            left = self.lxc.state(self.name) if self.lxc.exists(self.name) else "absent"
            extra = exc.to_result()
            causes = self.unprivileged_causes() if label in ("create", "start") else []
            msg = "%s; container %s is %s" % (exc.msg, self.name, (left or "unknown").lower())
            if causes:
                msg += ". Detected: " + "; ".join(causes)
            self.fail(msg, container=self.describe() if left != "absent" else None, state_after_failure=left,
                      causes=causes, **extra)

    # -- waiting --------------------------------------------------------------------------------

    def wait_for_addresses(self):
        wait = self.params["wait"]
        if not wait or self.module.check_mode:
            return
        if not (wait["ipv4"] or wait["ipv6"] or wait["interfaces"]):
            return

        def ready():
            info = self.lxc.info(self.name)
            if info["state"] != "RUNNING":
                return None
            ifaces = self.lxc.interfaces(info["pid"])
            names = wait["interfaces"] or list(ifaces)
            if not names:
                return None
            for iface in names:
                entry = ifaces.get(iface)
                if entry is None:
                    return None
                if wait["ipv4"] and not entry["ipv4"]:
                    return None
                if wait["ipv6"] and not entry["ipv6"]:
                    return None
                if not (wait["ipv4"] or wait["ipv6"]) and not (entry["ipv4"] or entry["ipv6"]):
                    return None
            return True

        if not poll(ready, wait["timeout"]):
            families = [f for f in ("ipv4", "ipv6") if wait[f]] or ["an address"]
            where = ", ".join(wait["interfaces"]) if wait["interfaces"] else "every interface"
            self.fail(
                "timed out after %ds waiting for %s on %s of container %s"
                % (wait["timeout"], " and ".join(families), where, self.name),
                container=self.describe(),
            )

    # -- result ---------------------------------------------------------------------------------

    def describe(self):
        """The container after the run; in check mode, as the plan would leave it."""
        if self.module.check_mode and not self.lxc.exists(self.name):
            config = LxcConfig.parse(self.final_text or "").as_dict()
            return {
                "name": self.name, "state": _planned_state(self.state), "pid": None, "ips": [],
                "interfaces": {}, "unprivileged": bool(config.get("lxc.idmap")), "lxc_path": self.lxc.lxc_path,
                "backing_store": getattr(self, "planned_backing_store", None),
                "config": config,
                "config_path": self.lxc.config_path(self.name),
            }
        result = describe_container(self.lxc, self.name, info=None if self.actions else self.first_info,
                                    text=self.final_text)
        if self.module.check_mode and self.actions:
            if self.state != "present":
                result["state"] = _planned_state(self.state)
            if any(a in ("start", "stop") for a in self.actions):
                # A new init process would run: its pid and addresses are not known yet.
                result.update(pid=None, ips=[], interfaces={})
        return result

    def exit(self, container):
        result = dict(changed=self.changed, actions=self.actions, container=container)
        if self.restart_required:
            result["restart_required"] = True
        if self.image is not None:
            result["image"] = self.image
        if self.base_result is not None:
            result["base"] = self.base_result
        for text in self.clone_warnings:
            self.module.warn(text)
        if self.hook_results is not None:
            result["hooks"] = self.hook_results
        if self.module._diff:
            result["diff"] = self.diff
        self.module.exit_json(**result)


def read_default_config(lxc: LxcRunner):
    """(path, text) of the default config of the user this runs as (text "" when it is missing)."""
    path = lxc.global_value("lxc.default_config")
    try:
        with open(path, encoding="utf-8") as handle:
            return path, handle.read()
    except OSError:
        return path, ""


def plan_default_idmap(lxc: LxcRunner, who, path=None, text=None) -> list:
    """The map of a new unprivileged container when the task names none: the ``lxc.idmap`` of the
    user's default config (checked against the user's subordinate ranges), else one made from those
    ranges. Raises IdmapError naming the cause. Used by the container_archive module too."""
    if path is None:
        path, text = read_default_config(lxc)
    default_map = LxcConfig.parse(text or "").get("lxc.idmap")
    if default_map:
        option = "lxc.idmap in %s" % path
        entries = _unpriv.parse_idmap(default_map, option=option)
        problems = _unpriv.idmap_problems(entries, who, option=option)
        if problems:
            raise _unpriv.IdmapError("; ".join(problems))
        return [e.line() for e in entries]
    return _unpriv.derive_idmap(who)


HOOK_MODE = 0o750


def _own(path: str, gid: int) -> None:
    """Owner: the user running LXC; group: ``gid`` when this user may set it."""
    try:
        os.chown(path, os.geteuid(), gid)
    except PermissionError:
        pass


def make_traversable_dirs(path: str) -> None:
    """Create the missing folders of ``path`` with mode 0755 whatever the umask: a container's mapped
    root must be able to search the lxc path (LXC: "Could not access ...")."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        os.mkdir(folder)
        os.chmod(folder, 0o755)


def _nics(config: dict) -> dict:
    """lxc.net.N.* keys of a config dict as {N: {"type": ..., "link": ...}}."""
    nics = {}
    for key, value in config.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["lxc", "net"] and parts[2].isdigit():
            nics.setdefault(int(parts[2]), {})[parts[3]] = value[-1] if isinstance(value, list) else value
    return nics


def write_minimal_config(directory: str) -> str:
    """The config of a metadata tarball for a rootfs tarball given alone: LXC's common config and
    the host's architecture."""
    path = os.path.join(directory, "config.minimal")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = %s\n" % os.uname().machine)
    return path


def snapshot_folders(container_dir: str) -> list:
    """The snapshots LXC keeps of a container (``<folder>/snaps/snapN``), sorted."""
    try:
        names = os.listdir(os.path.join(container_dir, "snaps"))
    except OSError:
        return []
    return sorted(n for n in names if os.path.isdir(os.path.join(container_dir, "snaps", n)))


def _planned_state(state):
    return {"present": "STOPPED", "started": "RUNNING", "restarted": "RUNNING", "stopped": "STOPPED",
            "frozen": "FROZEN"}.get(state, state.upper())


def describe_container(lxc: LxcRunner, name: str, with_config: bool = True, info=None, usage: bool = False,
                       text=None) -> dict:
    """The container as modules return it. ``info`` is an lxc-info result and ``text`` the config
    file's text, when the caller already has them."""
    if info is None:
        info = lxc.info(name, usage=usage)
    if text is None:
        text = ""
        try:
            with open(lxc.config_path(name), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            pass
    cfg = LxcConfig.parse(text)
    config = cfg.as_dict()
    ifaces = lxc.interfaces(info["pid"]) if info["state"] in ("RUNNING", "FROZEN") else {}
    ips = [a.split("/")[0] for iface in sorted(ifaces) for family in ("ipv4", "ipv6") for a in ifaces[iface][family]]
    result = {
        "name": name,
        "state": info["state"],
        "pid": info["pid"],
        "ips": ips,
        "interfaces": ifaces,
        "unprivileged": bool(config.get("lxc.idmap")),
        "lxc_path": lxc.lxc_path,
        "config_path": lxc.config_path(name),
        "backing_store": _bdev.store_of(config.get("lxc.rootfs.path")),
    }
    if with_config:
        result["config"] = config
    if usage:
        result["usage"] = info.get("usage", {}) if info["state"] in ("RUNNING", "FROZEN") else {}
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ContainerManager(module).run()
