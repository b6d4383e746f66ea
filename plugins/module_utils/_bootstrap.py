# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The first lines every module of this collection runs: install the bytecode cache (``_bytecode``).

``_bytecode`` cannot come from its own cache, and a plain import of it from the AnsiballZ zip
compiles its source twice on Python 3.11: ``zipimporter.find_spec`` asks for the file name, which
compiles the module, and running it compiles it again. That is about 1 ms of every task. This
file loads ``_bytecode`` from the same zip with a spec that already names its origin, so it is
compiled once. It stays small because it is itself imported the plain way.
"""

from __future__ import annotations

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


def install_bytecode_cache(loader=None) -> bool:
    """``_bytecode.install`` for the zip this file came from; False (nothing done) outside a zip."""
    loader = globals().get("__loader__") if loader is None else loader
    module = sys.modules.get(NAME)
    if module is None and isinstance(loader, zipimport.zipimporter) and hasattr(loader, "exec_module"):
        module = _load_from_zip(loader)
    if module is None:
        from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bytecode as module
    return module.install(loader)
