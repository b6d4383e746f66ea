#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: Read LXC containers, their state, addresses and config
version_added: 0.1.0
description:
  - Returns one, several or all containers of an lxc_path with their state, init PID, addresses per
    interface, resource use, whether they are unprivileged, and their config file as a dict.
  - Reads only; never changes anything. Uses C(lxc-info) and the config files, not python3-lxc.
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc
  - lxcfleet.lxc._lxc.ATTRIBUTES
  - lxcfleet.lxc._lxc.INFO_MODULE
options:
  name:
    description:
      - Names of the containers to read. Leave out for every container of O(lxc_path).
      - A named container that does not exist is returned with RV(containers[].exists=false).
    type: list
    elements: str
  include_config:
    description:
      - Return each container's config file as a dict (RV(containers[].config)) and its raw text
        (RV(containers[].config_text)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Every container of the default lxc_path
  lxcfleet.lxc.container_info:
  register: all_containers

- name: Print the running ones
  ansible.builtin.debug:
    msg: "{{ all_containers.containers | selectattr('state', 'eq', 'RUNNING') | map(attribute='name') }}"

- name: One container, without its config
  lxcfleet.lxc.container_info:
    name: web1
    include_config: false
  register: web1

- name: Its first IPv4 address on eth0
  ansible.builtin.debug:
    msg: "{{ web1.containers[0].interfaces.eth0.ipv4[0] }}"
"""

RETURN = r"""
containers:
  description: The containers, in the order named or sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
      sample: web1
    exists:
      description: Whether the container exists.
      type: bool
      sample: true
    state:
      description: LXC state (V(RUNNING), V(STOPPED), V(FROZEN) ...), or null when it does not exist.
      type: str
      sample: RUNNING
    pid:
      description: PID of the container's init on the host, null when not running.
      type: int
      sample: 4242
    ips:
      description: Every global address of the container's interfaces (except V(lo)), without prefix length.
      type: list
      elements: str
      sample: [10.0.3.10]
    interfaces:
      description: Interfaces inside the container (except V(lo)) with their global addresses.
      type: dict
      sample: {"eth0": {"ipv4": ["10.0.3.10/24"], "ipv6": []}}
    unprivileged:
      description: Whether the container has an id map.
      type: bool
      sample: false
    lxc_path:
      description: The lxc_path.
      type: str
      sample: /var/lib/lxc
    config_path:
      description: The config file.
      type: str
      sample: /var/lib/lxc/web1/config
    backing_store:
      description: Backing store of the root filesystem, from C(lxc.rootfs.path) (V(dir), V(btrfs), V(loop), V(lvm), V(zfs), V(overlayfs) ...).
      type: str
      returned: when the container exists
      sample: dir
    config:
      description: The config file as a dict; multi-valued keys are lists.
      type: dict
      returned: when O(include_config=true) and the container exists
      sample: {"lxc.uts.name": "web1"}
    usage:
      description: Resource use of a running or frozen container (empty when stopped), from C(lxc-info -S).
      type: dict
      sample: {"cpu_ns": 12781338, "memory_bytes": 622592, "kmem_bytes": 376832, "blkio_bytes": 0}
    config_text:
      description: The config file as it is.
      type: str
      returned: when O(include_config=true) and the container exists
      sample: "lxc.uts.name = web1\n"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._container_manager import describe_container
from ansible_collections.lxcfleet.lxc.plugins.module_utils._lxc import LxcError, LxcRunner, validate_name


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str"),
            lxc_path=dict(type="path"),
            include_config=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    names = module.params["name"]
    for item in names or []:
        error = validate_name(item)
        if error:
            module.fail_json(msg=error)
    lxc = LxcRunner(module, module.params["lxc_path"])
    containers = []
    listing = names is None
    for item in lxc.list_names() if listing else names:
        entry = describe(lxc, item, module.params["include_config"])
        if entry is None:
            if listing:
                continue  # removed by someone else since lxc-ls listed it
            entry = dict(name=item, exists=False, state=None, pid=None, ips=[], interfaces={}, usage={},
                         unprivileged=False, lxc_path=lxc.lxc_path, config_path=lxc.config_path(item))
        containers.append(entry)
    module.exit_json(changed=False, containers=containers)


def describe(lxc, name, include_config):
    """One existing container, or None when it does not exist (also when it disappears while it is read:
    another run may destroy containers of the same lxc path at any moment)."""
    if not lxc.exists(name):
        return None
    try:
        entry = describe_container(lxc, name, with_config=include_config, usage=True)
        if include_config:
            with open(lxc.config_path(name), encoding="utf-8", errors="replace") as handle:
                entry["config_text"] = handle.read()
    except (OSError, LxcError):
        if lxc.exists(name):
            raise
        return None
    entry["exists"] = True
    return entry


if __name__ == "__main__":
    main()
