# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This doc fragment is private to the lxcfleet.lxc collection.

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  lxc_path:
    description:
      - The directory that holds the containers (LXC's C(-P) / C(--lxcpath)).
      - Default is what C(lxc-config lxc.lxcpath) prints for the user the module runs as,
        usually C(/var/lib/lxc) for root and C(~/.local/share/lxc) for other users.
    type: path
requirements:
  - LXC 4.0 or later with its command-line tools (C(lxc-create), C(lxc-start), C(lxc-info) ...) on the managed host.
  - No python3-lxc bindings are needed.
"""

    ATTRIBUTES = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the changed status prediction without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second run reports no change.
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""
