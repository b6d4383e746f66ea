# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-user cache of compiled module_utils: real zips, real files, real imports."""

from __future__ import annotations

import marshal
import os
import sys
import zipfile
import zipimport

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _bytecode

PKG_DIR = "ansible_collections/lxcfleet/lxc/plugins/module_utils"
NAME = _bytecode.PACKAGE + "_bcprobe"


def make_zip(tmp_path, source, name="payload.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(PKG_DIR + "/_bcprobe.py", source)
        zf.writestr(PKG_DIR + "/_bcpkg/__init__.py", "")
    entry = str(path) + "/" + PKG_DIR
    sys.path_importer_cache[entry] = zipimport.zipimporter(entry)
    return entry


def load(finder, entry, name=NAME):
    spec = finder.find_spec(name, [entry])
    assert spec is not None
    module = type(sys)(name)
    module.__spec__ = spec
    module.__file__ = spec.origin
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cache(tmp_path):
    directory = _bytecode.cache_dir(environ={_bytecode.ENV: str(tmp_path / "cache")})
    assert directory == str(tmp_path / "cache")
    return directory


def entries(directory):
    return sorted(n for n in os.listdir(directory) if not n.startswith("."))


def test_miss_compiles_and_stores_then_hit_reads_the_entry(tmp_path, cache):
    entry = make_zip(tmp_path, "VALUE = 1\n")
    finder = _bytecode.CacheFinder(cache, os.geteuid())
    assert load(finder, entry).VALUE == 1
    stored = entries(cache)
    assert len(stored) == 1 and stored[0].startswith("_bcprobe-")
    assert os.stat(os.path.join(cache, stored[0])).st_mode & 0o077 == 0
    # Prove the second import comes from the entry: put other code under the same name.
    with open(os.path.join(cache, stored[0]), "wb") as handle:
        handle.write(marshal.dumps(compile("VALUE = 'from cache'\n", "x", "exec")))
    assert load(finder, entry).VALUE == "from cache"


def test_changed_source_gets_a_new_entry_and_the_old_one_goes(tmp_path, cache):
    finder = _bytecode.CacheFinder(cache, os.geteuid())
    assert load(finder, make_zip(tmp_path, "VALUE = 1\n", "a.zip")).VALUE == 1
    first = entries(cache)
    assert load(finder, make_zip(tmp_path, "VALUE = 2\n", "b.zip")).VALUE == 2
    second = entries(cache)
    assert len(second) == 1 and second != first


def test_corrupt_entry_falls_back_to_compiling(tmp_path, cache):
    entry = make_zip(tmp_path, "VALUE = 3\n")
    finder = _bytecode.CacheFinder(cache, os.geteuid())
    load(finder, entry)
    (name,) = entries(cache)
    with open(os.path.join(cache, name), "wb") as handle:
        handle.write(b"not marshal data")
    assert load(finder, entry).VALUE == 3


def _foreign_owner(path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give an entry another owner")
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize("make_unsafe", [_foreign_owner, lambda path: os.chmod(path, 0o620)],
                         ids=["another-owner", "group-writable"])
def test_unsafe_entry_is_not_read(tmp_path, cache, make_unsafe):
    entry = make_zip(tmp_path, "VALUE = 'source'\n")
    finder = _bytecode.CacheFinder(cache, os.geteuid())
    load(finder, entry)
    (name,) = entries(cache)
    path = os.path.join(cache, name)
    with open(path, "wb") as handle:
        handle.write(marshal.dumps(compile("VALUE = 'planted'\n", "x", "exec")))
    make_unsafe(path)
    assert load(finder, entry).VALUE == "source"


def test_only_this_collections_modules_from_zips(tmp_path, cache):
    entry = make_zip(tmp_path, "VALUE = 1\n")
    finder = _bytecode.CacheFinder(cache, os.geteuid())
    assert finder.find_spec("ansible.module_utils.basic", [entry]) is None
    assert finder.find_spec(NAME, None) is None
    assert finder.find_spec(_bytecode.PACKAGE + "_bcpkg", [entry]) is None  # packages stay with zipimport
    assert finder.find_spec(_bytecode.PACKAGE + "_missing", [entry]) is None
    assert finder.find_spec(NAME, [str(tmp_path)]) is None  # a folder, not a zip: Python's own cache applies


def test_cache_dir_refuses_unsafe_folders(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    assert _bytecode.cache_dir(environ={_bytecode.ENV: str(open_dir / "cache")}) is not None  # the top may be shared
    os.chmod(open_dir / "cache", 0o770)
    assert _bytecode.cache_dir(environ={_bytecode.ENV: str(open_dir / "cache")}) is None
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    assert _bytecode.cache_dir(environ={_bytecode.ENV: str(link)}) is None
    for off in ("off", "0", "no", "false", "OFF"):
        assert _bytecode.cache_dir(environ={_bytecode.ENV: off}) is None


def test_cache_dir_default_is_under_the_accounts_home(tmp_path):
    path = _bytecode.cache_dir(environ={}, uid=os.geteuid(), home=str(tmp_path))
    assert path == str(tmp_path / ".cache" / "lxcfleet" / "bytecode")
    for part in (".cache", ".cache/lxcfleet", ".cache/lxcfleet/bytecode"):
        assert os.stat(tmp_path / part).st_mode & 0o077 == 0
    os.chmod(tmp_path / ".cache", 0o777)
    assert _bytecode.cache_dir(environ={}, uid=os.geteuid(), home=str(tmp_path)) is None


def test_install_is_a_no_op_outside_a_zip():
    before = list(sys.meta_path)
    assert _bytecode.install() is False  # the unit tests import from files
    assert sys.meta_path == before
