# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""State machine of the container module: compare, plan a list of actions, then act."""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._config import ConfigError, LxcConfig
from ansible_collections.lxcfleet.lxc.plugins.module_utils._files import write_atomic
from ansible_collections.lxcfleet.lxc.plugins.module_utils._container import (
    CgroupLayout,
    OptionError,
    compile_all,
    plan_config,
)
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import (
    LxcError,
    LxcRunner,
    poll,
    validate_name,
)

STABLE = ("RUNNING", "STOPPED", "FROZEN")

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
    backing_store=dict(type="str", default="dir", choices=["dir"]),
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
    apparmor_profile=dict(type="str"),
    nesting=dict(type="bool"),
    capabilities=dict(
        type="dict",
        options=dict(drop=dict(type="list", elements="str"), keep=dict(type="list", elements="str")),
        mutually_exclusive=[("drop", "keep")],
    ),
    on_change=dict(type="str", default="restart", choices=["restart", "none", "fail"]),
    stop_timeout=dict(type="int", default=30),
    wait=dict(
        type="dict",
        options=dict(
            timeout=dict(type="int", default=60),
            ipv4=dict(type="bool", default=False),
            ipv6=dict(type="bool", default=False),
            interfaces=dict(type="list", elements="str"),
        ),
    ),
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

    # -- input --------------------------------------------------------------------------------

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, changed=self.changed, actions=self.actions, **kwargs)

    def validate(self):
        p = self.params
        error = validate_name(self.name)
        if error:
            self.fail(error)
        if p["template"] is not None and p["rootfs_archive"] is not None:
            self.fail("template and rootfs_archive are mutually exclusive: give one creation source")
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

    # -- the run ------------------------------------------------------------------------------

    def run(self):
        self.validate()
        self.lxc = LxcRunner(self.module, self.params["lxc_path"])
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
            if exists:
                before = self.read_config() if self.module._diff else ""
                if current == "FROZEN":
                    self.act("unfreeze", lambda: self.lxc.unfreeze(self.name))
                self.act("destroy", lambda: self.lxc.destroy(self.name, force=True))
                if self.module._diff:
                    self.diff = {
                        "before": before, "after": "",
                        "before_header": self.lxc.config_path(self.name), "after_header": "(absent)",
                    }
            self.exit(None)

        if not exists:
            if self.params["template"] is None and self.params["rootfs_archive"] is None:
                self.fail(
                    "container %s does not exist in %s and no creation source was given: set template or "
                    "rootfs_archive" % (self.name, self.lxc.lxc_path)
                )
            self.check_template()
            self.create_and_configure()
            current = "STOPPED"
        else:
            current = self.configure(current)

        self.reach_state(current)
        self.wait_for_addresses()
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
        p = self.params
        if p["template"] is not None:
            template = p["template"]
            options = list(p["template_options"])
        else:
            template = "local"
            options = ["--fstree", p["rootfs_archive"], "--metadata", p["rootfs_metadata"]]
            options += list(p["template_options"])
        generate_metadata = p["rootfs_archive"] is not None and p["rootfs_metadata"] is None
        # In check mode the template's own config is unknown: the diff shows the keys of the task.
        planned = plan_config("", self.edits)[0]
        self.final_text = planned

        def create():
            import shutil

            scratch = None
            try:
                if generate_metadata:
                    scratch = tempfile.mkdtemp(prefix="lxcfleet-meta-")
                    options[3] = write_minimal_metadata(scratch)
                self.lxc.create(self.name, template, options, backing_store=p["backing_store"])
            finally:
                if scratch:
                    shutil.rmtree(scratch, ignore_errors=True)

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

    def configure(self, current):
        before = self.read_config()
        try:
            after, changed_keys = plan_config(before, self.edits)
        except (ConfigError, OptionError) as exc:  # a config the model cannot edit: say so, change nothing
            self.fail("cannot plan the config of %s: %s" % (self.name, exc))
        self.final_text = after
        if after == before:
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
            self.fail("%s; container %s is %s" % (exc.msg, self.name, (left or "unknown").lower()),
                      container=self.describe() if left != "absent" else None, state_after_failure=left, **extra)

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
            return {
                "name": self.name, "state": _planned_state(self.state), "pid": None, "ips": [],
                "interfaces": {}, "unprivileged": False, "lxc_path": self.lxc.lxc_path,
                "config": LxcConfig.parse(self.final_text or "").as_dict(),
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
        if self.module._diff:
            result["diff"] = self.diff
        self.module.exit_json(**result)


def write_minimal_metadata(directory: str) -> str:
    """A meta.tar.xz for LXC's local template when the task gives a rootfs tarball alone: LXC's
    common config and the host's architecture."""
    import io
    import tarfile

    config = (
        "lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n"
        "lxc.arch = %s\n" % os.uname().machine
    ).encode()
    path = os.path.join(directory, "meta.tar.xz")
    with tarfile.open(path, "w:xz") as archive:
        info = tarfile.TarInfo("config")
        info.size = len(config)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(config))
    return path


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
    }
    if with_config:
        result["config"] = config
    if usage:
        result["usage"] = info.get("usage", {}) if info["state"] in ("RUNNING", "FROZEN") else {}
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    ContainerManager(module).run()
