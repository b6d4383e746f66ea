# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Atomic file writes: a temporary file in the same folder, then ``module.atomic_move``."""

from __future__ import annotations

import os
import tempfile


def write_atomic(module, path: str, text: str, mode=None, make_dirs: bool = False) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a part.

    ``mode`` applies to a new file (``atomic_move`` keeps the mode of a file it replaces);
    ``make_dirs`` creates the folder first.
    """
    folder = os.path.dirname(path)
    if make_dirs:
        os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
