#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_exec
short_description: Run a command in a running LXC container
version_added: 0.1.0
description:
  - Runs a command inside a running container through C(lxc-attach), for example to bootstrap Python
    before ordinary Ansible tasks can reach the container.
  - The command is an argv list and is never passed through a shell. Use O(command=[/bin/sh, -c, ...])
    to run a shell script on purpose.
  - Fails when the command exits non-zero, unless O(check_rc=false).
  - Run as a user other than root (the owner of an unprivileged container, for example with
    C(become_user)) on a pure cgroup2 host, C(lxc-attach) must be able to move into the container's
    cgroup, which lives in the user's delegated subtree. When the user's current cgroup is not theirs
    (as after C(su) or C(runuser) from root), the command runs in a scope of the user's systemd instance,
    C(systemd-run --user --scope -p Delegate=yes), like the P(lxcfleet.lxc.container#module) module
    starts such a container; that needs a systemd user instance (lingering).
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: partial
    details:
      - In check mode the command is not run; the task reports a change unless O(creates) or O(removes)
        says it would be skipped.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Idempotent only with O(creates) or O(removes); otherwise the command runs every time.
options:
  name:
    description: Name of the container. It must be running.
    type: str
    required: true
  command:
    description: The command and its arguments, one list item per argument.
    type: list
    elements: str
    required: true
  stdin:
    description: Text fed to the command's standard input.
    type: str
  env:
    description:
      - Environment variables for the command. The environment is otherwise cleared; C(PATH) defaults to
        V(/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
    type: dict
    default: {}
  chdir:
    description: Directory inside the container to run the command in (needs C(/bin/sh) in the container).
    type: str
  creates:
    description: A path inside the container; when it exists, the command is not run.
    type: str
  removes:
    description: A path inside the container; when it does not exist, the command is not run.
    type: str
  uid:
    description: User id inside the container to run the command as.
    type: int
  gid:
    description: Group id inside the container to run the command as.
    type: int
  check_rc:
    description: Fail the task when the command exits with a non-zero code.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Bootstrap Python in a Debian container, once
  lxcfleet.lxc.container_exec:
    name: db1
    command: [apt-get, install, -y, python3]
    env:
      DEBIAN_FRONTEND: noninteractive
    creates: /usr/bin/python3

- name: Feed a file through stdin
  lxcfleet.lxc.container_exec:
    name: web1
    command: [tee, /etc/motd]
    stdin: "Managed by Ansible\n"

- name: A command that may fail, run in /tmp as uid 1000
  lxcfleet.lxc.container_exec:
    name: web1
    command: [ls, missing-file]
    chdir: /tmp
    uid: 1000
    check_rc: false
  register: listing
"""

RETURN = r"""
rc:
  description: Exit code of the command (null when it was skipped).
  returned: always
  type: int
  sample: 0
stdout:
  description: Standard output.
  returned: always
  type: str
  sample: "hello\n"
stderr:
  description: Standard error.
  returned: always
  type: str
  sample: ""
stdout_lines:
  description: Standard output split into lines.
  returned: always
  type: list
  elements: str
  sample: [hello]
stderr_lines:
  description: Standard error split into lines.
  returned: always
  type: list
  elements: str
  sample: []
skipped_reason:
  description: Why the command was not run (O(creates) exists or O(removes) is missing).
  returned: when the command was skipped
  type: str
  sample: /usr/bin/python3 exists
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _unpriv
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import LxcRunner, validate_name

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def user_environment(who):
    """For a user other than root: its own runtime folder, and where cgroup2 needs it, the argv prefix
    that puts lxc-attach into a delegated scope of the user's systemd.

    Returns ``(wrapper, problem)``; ``problem`` says why no scope can be had (shown when the attach
    then fails).
    """
    if who.is_root:
        return [], None
    _unpriv.use_own_runtime_dir(who)
    wrapper, env, problem = _unpriv.cgroup_delegation(who)
    os.environ.update(env)
    return wrapper, problem


def hint(scope_problem, stderr):
    """The reason a user's lxc-attach could not join the container's cgroup, when that is what failed."""
    if scope_problem and "cgroup" in stderr:
        return "; " + scope_problem
    return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            lxc_path=dict(type="path"),
            command=dict(type="list", elements="str", required=True),
            stdin=dict(type="str"),
            env=dict(type="dict", default={}),
            chdir=dict(type="str"),
            creates=dict(type="str"),
            removes=dict(type="str"),
            uid=dict(type="int"),
            gid=dict(type="int"),
            check_rc=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    error = validate_name(p["name"])
    if error:
        module.fail_json(msg=error)
    if not p["command"]:
        module.fail_json(msg="command must hold at least the program to run")
    env = {}
    for key, value in p["env"].items():
        if not key or "=" in key or any(ch.isspace() for ch in key):
            module.fail_json(msg="env: %r is not a variable name" % key)
        env[key] = "" if value is None else str(value)
    env.setdefault("PATH", DEFAULT_PATH)
    for option in ("chdir", "creates", "removes"):
        if p[option] is not None and not p[option].startswith("/"):
            module.fail_json(msg="%s must be an absolute path inside the container" % option)
    wrapper, scope_problem = user_environment(_unpriv.Identity.current())
    lxc = LxcRunner(module, p["lxc_path"])
    if not lxc.exists(p["name"]):
        module.fail_json(msg="container %s does not exist in %s" % (p["name"], lxc.lxc_path))
    state = lxc.state(p["name"])
    if state != "RUNNING":
        module.fail_json(msg="container %s is %s, not RUNNING: commands run only in a running container"
                         % (p["name"], (state or "unknown").lower()))
    # failed is explicit: Ansible would call a result with a non-zero or null rc failed.
    result = dict(changed=False, failed=False, rc=None, stdout="", stderr="", stdout_lines=[], stderr_lines=[],
                  cmd=list(p["command"]))
    for option, want in (("creates", False), ("removes", True)):
        path = p[option]
        if path is None:
            continue
        rc, out, err = lxc.attach(p["name"], ["/bin/sh", "-c", 'test -e "$1"', "sh", path], env={"PATH": DEFAULT_PATH},
                                  prefix=wrapper)
        if rc not in (0, 1):
            module.fail_json(msg="%s: cannot test %s in container %s: %s%s"
                             % (option, path, p["name"], err.strip(), hint(scope_problem, err)), **result)
        if (rc == 0) != want:
            result["skipped_reason"] = "%s %s" % (path, "exists" if rc == 0 else "does not exist")
            module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    data = p["stdin"].encode("utf-8") if p["stdin"] is not None else None
    rc, out, err = lxc.attach(p["name"], p["command"], env=env, chdir=p["chdir"], data=data, uid=p["uid"], gid=p["gid"],
                              prefix=wrapper)
    result.update(rc=rc, stdout=out, stderr=err, stdout_lines=out.splitlines(), stderr_lines=err.splitlines())
    if rc != 0 and p["check_rc"]:
        module.fail_json(msg="command exited with rc %d in container %s%s" % (rc, p["name"], hint(scope_problem, err)), **result)
    # A non-zero rc alone would make Ansible call the task failed: say explicitly that it is not.
    module.exit_json(**result)


if __name__ == "__main__":
    main()
