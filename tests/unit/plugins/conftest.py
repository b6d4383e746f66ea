# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's collection loader, so that ``connection_loader`` and ``inventory_loader`` find
``lxcfleet.lxc.attach`` and ``lxcfleet.lxc.containers`` with their documented options (as
``ansible-test units`` sets it up)."""
from __future__ import annotations

import os
import sys

from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

COLLECTIONS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    ".build",
    "collections",
)

if AnsibleCollectionConfig.collection_finder is None:
    _AnsibleCollectionFinder(paths=[COLLECTIONS])._install()
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
