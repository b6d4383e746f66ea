#!/usr/bin/python
# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: autostart
short_description: Start or stop a group of LXC containers in their configured order (lxc-autostart)
version_added: 0.1.0
description:
  - Starts, stops or restarts the containers that C(lxc-autostart) selects - by autostart group
    (C(lxc.group)), or all autostart containers - in LXC's own order and with LXC's own delays, as the
    LXC service does at boot and shutdown. Configure the containers with the O(lxcfleet.lxc.container#module:autostart)
    option of M(lxcfleet.lxc.container).
  - The module first asks LXC what it would do (C(lxc-autostart -L) with the same selection) and reads
    the state and autostart settings of each selected container (C(lxc-info)); when nothing is to be done it
    reports no change. Otherwise one C(lxc-autostart) run acts, and every container it was to start or stop
    is checked after; one that did not reach its state fails the task with LXC's reason.
  - "Order, as LXC 5.0 does it: one pass per group in O(groups), in the order given (a container is handled
    in the first pass that selects it). Within a pass, starting goes by C(lxc.start.order) ascending
    (B(lower values first)), ties by name; stopping goes the exact reverse (higher values first, then names
    backwards). After starting a container LXC waits its C(lxc.start.delay) seconds before the next one
    (also after the last one); stopping has no delays."
  - "Selection, as LXC 5.0 does it: a container is selected when C(lxc.start.auto) is V(1) (or always, with
    O(ignore_auto)) and one of its groups matches a requested group. LXC compares a container's group as a
    B(prefix) of the requested one, so a container in group V(web) is also selected by V(webfront). The
    empty group selects containers without any group. The module reports what LXC selects."
author:
  - lxcfleet developers (@lxcfleet)
extends_documentation_fragment:
  - lxcfleet.lxc._lxc
  - lxcfleet.lxc._lxc.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Check mode lists what would be started or stopped, in order, and changes nothing.
  diff_mode:
    support: full
    details:
      - "The diff is the state of each selected container before and after, one C(NAME: STATE) line each."
  idempotent:
    support: partial
    details:
      - V(started) and V(stopped) report no change when every selected container already is in that
        state. V(restarted) always acts on a non-empty selection.
options:
  groups:
    description:
      - The autostart groups to select (C(lxc-autostart -g)), processed in this order. The empty string V('')
        means the containers without a group.
      - When left out (and O(all) is false), LXC selects the containers without a group, as C(lxc-autostart)
        without C(-g) does.
      - A group name must not contain a comma. Mutually exclusive with O(all).
    type: list
    elements: str
  all:
    description:
      - Select every autostart container, whatever its groups (C(lxc-autostart -a)).
    type: bool
    default: false
  ignore_auto:
    description:
      - Also select containers without C(lxc.start.auto = 1) (C(lxc-autostart -A)). With O(all), that is every
        container in O(lxc_path).
    type: bool
    default: false
  state:
    description:
      - V(started) starts the selected containers that are not running, in order, with their delays. A
        frozen container counts as running to LXC and is left as it is.
      - V(stopped) stops the running (and frozen) ones, in reverse order. A clean shutdown is asked for and a
        container still running after O(timeout) seconds is killed.
      - V(restarted) stops the running ones, then starts all of the selection.
    type: str
    choices: [started, stopped, restarted]
    default: started
  timeout:
    description:
      - Seconds to wait for a clean shutdown of each container before it is killed (C(lxc-autostart -s -t)).
      - V(0) kills at once (C(lxc-autostart -k)); LXC's own C(-t 0) would send the halt signal without
        waiting, leaving the container running.
    type: int
    default: 60
notes:
  - C(lxc-autostart) runs as the user the module runs as, on that user's containers (for example
    C(~/.local/share/lxc) with C(become_user)).
  - Starting is sequential and sleeps the delays, so a large selection with delays takes the sum of them.
seealso:
  - module: lxcfleet.lxc.container
  - name: lxc-autostart(1)
    description: The LXC tool this module drives.
    link: https://linuxcontainers.org/lxc/manpages/man1/lxc-autostart.1.html
"""

EXAMPLES = r"""
- name: The database tier first, then the web tier, in their configured order
  lxcfleet.lxc.autostart:
    groups: [db, web]
    state: started

- name: Every autostart container, as the LXC service does at boot
  lxcfleet.lxc.autostart:
    all: true

- name: Stop the web tier in reverse order, killing what has not shut down after 20 s
  lxcfleet.lxc.autostart:
    groups: [web]
    state: stopped
    timeout: 20

- name: Start the containers without a group, also those without lxc.start.auto
  lxcfleet.lxc.autostart:
    groups: [""]
    ignore_auto: true

- name: Alice's own autostart group, in her lxc path
  lxcfleet.lxc.autostart:
    groups: [dev]
  become: true
  become_user: alice
"""

RETURN = r"""
containers:
  description:
    - The selected containers, in the order LXC handles them for O(state) (start order, or stop order for
      V(stopped)).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
      sample: web1
    order:
      description: C(lxc.start.order) (0 when unset).
      type: int
      sample: 10
    delay:
      description: C(lxc.start.delay), the seconds LXC waits after starting it.
      type: int
      sample: 2
    auto:
      description: Whether C(lxc.start.auto) is V(1).
      type: bool
      sample: true
    groups:
      description: Its C(lxc.group) values.
      type: list
      elements: str
      sample: [web]
    state_before:
      description: State before the task (V(RUNNING), V(STOPPED), V(FROZEN)).
      type: str
      sample: STOPPED
    state_after:
      description: State after the task (in check mode, as planned).
      type: str
      sample: RUNNING
    action:
      description: V(start), V(stop), V(kill), V(stop+start), V(kill+start) or V(none).
      type: str
      sample: start
actions:
  description: What was (in check mode, would be) done, in order, for example V(start web1).
  returned: always
  type: list
  elements: str
  sample: [start db1, start web1, start web2]
selection:
  description: The selection arguments passed to C(lxc-autostart).
  returned: success
  type: list
  elements: str
  sample: [-g, db, -g, web]
lxc_path:
  description: The lxc path used.
  returned: success
  type: str
  sample: /var/lib/lxc
failed_containers:
  description: When a start or stop failed, the containers that did not reach their state.
  returned: failure
  type: list
  elements: str
  sample: [web2]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module

prepare_module()  # GC freeze of the startup objects; module_utils compiled once per user (see _bootstrap)

from ansible_collections.lxcfleet.lxc.plugins.module_utils._autostart import ARGUMENT_SPEC, Autostart


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("groups", "all")])
    Autostart(module).run()


if __name__ == "__main__":
    main()
