# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The first lines every module of this collection runs, when it runs from Ansible's AnsiballZ zip.

``prepare_module()`` does two things there, both for speed, most visible on a task that changes
nothing:

* ``gc.freeze()``: the objects Ansible's own imports made before the module starts live until the
  module exits. Frozen, the garbage collector stops scanning them again on every collection during
  this collection's imports and run (about 1 ms of each task here). Objects made later are
  collected as usual.
* It installs the bytecode cache (``_bytecode``).

``_bytecode`` cannot come from its own cache, and a plain import of it from the AnsiballZ zip
compiles its source twice on Python 3.11: ``zipimporter.find_spec`` asks for the file name, which
compiles the module, and running it compiles it again. That is about 1 ms of every task. This
file loads ``_bytecode`` from the same zip with a spec that already names its origin, so it is
compiled once. It stays small because it is itself imported the plain way.
"""

from __future__ import annotations

import gc
import os
import sys
import zipimport
from importlib.util import module_from_spec, spec_from_loader

NAME = "ansible_collections.lxcfleet.lxc.plugins.module_utils._bytecode"


def _load_from_zip(loader):
    """``_bytecode`` run once from the zip this file came from, registered like a normal import."""
    spec = spec_from_loader(NAME, loader, origin=os.path.join(loader.archive, loader.prefix, "_bytecode.py"),
                            is_package=False)
    spec.has_location = True
    module = module_from_spec(spec)
    sys.modules[NAME] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[NAME]
        raise
    setattr(sys.modules[NAME.rpartition(".")[0]], "_bytecode", module)
    return module


def prepare_module(loader=None) -> bool:
    """In a module run from a zip: freeze the startup objects, install the bytecode cache; returns
    whether the cache was installed. Outside a zip (unit tests, sanity imports) it does nothing."""
    loader = globals().get("__loader__") if loader is None else loader
    if not isinstance(loader, zipimport.zipimporter):
        return False
    gc.freeze()
    module = sys.modules.get(NAME)
    if module is None and hasattr(loader, "exec_module"):
        module = _load_from_zip(loader)
    if module is None:
        from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bytecode as module
    return module.install(loader)
