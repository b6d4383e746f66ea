# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.lxcfleet.lxc`` importable from the work tree.

Creates ``<repo>/.build/collections/ansible_collections/lxcfleet/lxc`` as a
symlink to the repository (``.build`` is git-ignored) and puts
``<repo>/.build/collections`` first on ``sys.path``.
"""
from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "lxcfleet", "lxc")


def _ensure_link() -> None:
    if os.path.islink(LINK) and os.path.realpath(LINK) == os.path.realpath(REPO):
        return
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    tmp = "%s.%d.tmp" % (LINK, os.getpid())
    try:
        os.symlink(REPO, tmp)
        os.replace(tmp, LINK)  # atomic: safe when several pytest runs start at once
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


_ensure_link()
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
