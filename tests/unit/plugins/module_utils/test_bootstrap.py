# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_bootstrap: from a real zip in a fresh interpreter, startup objects frozen, the bytecode cache installed,
_bytecode compiled once."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import zipfile

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bootstrap

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PKG_DIR = "ansible_collections/lxcfleet/lxc/plugins/module_utils"

# Runs in a fresh interpreter with only the zip on sys.path: counts every compile by file name
# (zipimport and the cache both call the builtin), imports _bootstrap from the zip, installs the cache and
# imports a module through it twice.
PROBE = r"""
import builtins, gc, json, sys
compiled = []
_compile = builtins.compile
def counting(source, filename, *args, **kwargs):
    if isinstance(filename, str):
        compiled.append(filename.rsplit('/', 1)[-1])
    return _compile(source, filename, *args, **kwargs)
builtins.compile = counting
sys.path.insert(0, sys.argv[1])
from ansible_collections.lxcfleet.lxc.plugins.module_utils._bootstrap import prepare_module
installed = prepare_module()
from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bytecode
import ansible_collections.lxcfleet.lxc.plugins.module_utils._probe as probe
print(json.dumps({"installed": installed, "frozen": gc.get_freeze_count(), "compiled": compiled, "value": probe.VALUE,
                  "finder": any(type(f).__name__ == "CacheFinder" for f in sys.meta_path),
                  "same_module": sys.modules[_bytecode.__name__] is _bytecode,
                  "bytecode_file": _bytecode.__file__}))
"""


def make_zip(tmp_path):
    path = tmp_path / "payload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in ("ansible_collections", "ansible_collections/lxcfleet", "ansible_collections/lxcfleet/lxc",
                    "ansible_collections/lxcfleet/lxc/plugins", PKG_DIR):
            zf.writestr(pkg + "/__init__.py", "")
        for name in ("_bootstrap.py", "_bytecode.py"):
            zf.write(os.path.join(REPO, "plugins", "module_utils", name), PKG_DIR + "/" + name)
        zf.writestr(PKG_DIR + "/_probe.py", "VALUE = 42\n")
    return str(path)


def run_probe(payload, cache):
    env = dict(os.environ, LXCFLEET_BYTECODE_CACHE=cache)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE, payload], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_installs_from_a_zip_and_compiles_bytecode_once(tmp_path):
    payload = make_zip(tmp_path)
    cache = str(tmp_path / "cache")
    first = run_probe(payload, cache)
    assert first["installed"] is True and first["finder"] is True and first["same_module"] is True
    assert first["value"] == 42
    assert first["frozen"] > 1000  # the objects of the imports so far
    assert first["bytecode_file"].endswith("payload.zip/%s/_bytecode.py" % PKG_DIR)
    # zipimport compiles a plainly imported file twice (find_spec, then the run): _bootstrap is
    # such a file; _bytecode is compiled once; _probe once, on the cache miss.
    assert first["compiled"].count("_bootstrap.py") == 2
    assert first["compiled"].count("_bytecode.py") == 1
    assert first["compiled"].count("_probe.py") == 1
    assert any(n.startswith("_probe-") for n in os.listdir(cache))
    second = run_probe(payload, cache)
    assert second["compiled"].count("_probe.py") == 0  # served from the cache now
    assert second["value"] == 42


def test_outside_a_zip_nothing_is_installed():
    before = list(sys.meta_path)
    frozen = gc.get_freeze_count()
    assert _bootstrap.prepare_module() is False  # the unit tests import from files
    assert sys.meta_path == before
    assert gc.get_freeze_count() == frozen
