# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""A per-user cache of this collection's compiled module_utils, for modules run from an AnsiballZ zip.

Ansible sends a module and its module_utils as a zip; Python's ``zipimport`` compiles every source
file in it on every run and never keeps the result. For this collection's larger modules that is
most of the work of a run that changes nothing (about 40 ms of a no-op ``container`` task).

``install()`` puts a finder in front of the import system that serves only
``ansible_collections.lxcfleet.lxc.plugins.module_utils.*`` modules that come from a zip. Their
code objects are kept in ``~/.cache/lxcfleet/bytecode`` of the user the module runs as, named by
the SHA-256 of the module name, the Python bytecode magic and the exact source text: a changed
source never meets an old entry. The folder and every entry must belong to that user and must not
be writable by anyone else, or the cache is not used. Any problem (no home, a read-only home, a
foreign owner, a corrupt entry) falls back to the normal compile. ``LXCFLEET_BYTECODE_CACHE=off``
in the module's environment turns it off; any other non-empty value names another folder.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import marshal
import os
import stat
import sys
import tempfile
import zipimport

PACKAGE = "ansible_collections.lxcfleet.lxc.plugins.module_utils."
ENV = "LXCFLEET_BYTECODE_CACHE"
OFF = ("0", "off", "no", "false")


def _safe(st, uid) -> bool:
    """A folder or file only its owner (this user, or root above it) can change."""
    return st.st_uid in (uid, 0) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def cache_dir(environ=None, uid=None, home=None):
    """The cache folder to use, created 0700 when missing, or None when it cannot be used safely."""
    environ = os.environ if environ is None else environ
    uid = os.geteuid() if uid is None else uid
    value = environ.get(ENV, "")
    if value.lower() in OFF:
        return None
    try:
        if value:
            path = os.path.abspath(value)
            top = os.path.dirname(path)
        else:
            if home is None:
                import pwd  # the account's home, not $HOME: a become may keep the caller's HOME

                home = pwd.getpwuid(uid).pw_dir
            top = home
            path = os.path.join(home, ".cache", "lxcfleet", "bytecode")
        # Every folder from the top down must be a real folder that only this user (or root) can change.
        current = top
        parts = os.path.relpath(path, top).split(os.sep)
        st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (uid, 0):
            return None
        for part in parts:
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o700)
            except FileExistsError:
                pass
            st = os.lstat(current)
            if not stat.S_ISDIR(st.st_mode) or not _safe(st, uid):
                return None
        if st.st_uid != uid:
            return None
        return path
    except (OSError, KeyError, ValueError):
        return None


def entry_name(fullname: str, source: bytes) -> str:
    digest = hashlib.sha256()
    for part in (importlib.util.MAGIC_NUMBER, fullname.encode("utf-8"), b"\0", source):
        digest.update(part)
    tag = sys.implementation.cache_tag or "python"
    return "%s-%s.%s.code" % (fullname[len(PACKAGE):], digest.hexdigest()[:40], tag)


class CachedLoader:
    """Loads one module's code from the cache, compiling and storing it on a miss."""

    def __init__(self, loader, directory, uid, origin):
        self.loader = loader
        self.directory = directory
        self.uid = uid
        self.origin = origin

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)  # pylint: disable=exec-used

    def get_source(self, fullname):
        return self.loader.get_source(fullname)

    def is_package(self, fullname):
        return False

    def get_filename(self, fullname):
        return self.origin

    def get_code(self, fullname):
        text = self.loader.get_source(fullname)
        if text is None:
            return self.loader.get_code(fullname)
        source = text.encode("utf-8")
        name = entry_name(fullname, source)
        path = os.path.join(self.directory, name)
        code = self.read(path)
        if code is None:
            filename = fullname.replace(".", "/") + ".py"
            code = compile(source, filename, "exec", dont_inherit=True)
            self.write(path, name, code)
        return code

    def read(self, path):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != self.uid or not _safe(st, self.uid):
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
            code = marshal.loads(data)
            return code if hasattr(code, "co_code") else None
        except (OSError, ValueError, EOFError, TypeError):
            return None
        finally:
            os.close(fd)

    def write(self, path, name, code):
        """Atomically; then drop this module's entries for other sources (an older collection)."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(marshal.dumps(code))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
            prefix = name.split("-", 1)[0] + "-"
            suffix = name.rsplit(".", 2)[-2] + ".code"
            for other in os.listdir(self.directory):
                if other != name and other.startswith(prefix) and other.endswith(suffix):
                    try:
                        os.unlink(os.path.join(self.directory, other))
                    except OSError:
                        pass
        except OSError:
            pass


class CacheFinder:
    """Serves this collection's module_utils from the zip through the cache; everything else is left alone.

    It looks the module up in the zip itself: on Python 3.11 ``zipimporter.find_spec`` asks the
    importer for the file name, which compiles the whole module just to name it (then ``get_code``
    compiles it again), so going through ``PathFinder`` would keep half the cost."""

    def __init__(self, directory, uid):
        self.directory = directory
        self.uid = uid

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PACKAGE) or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            importer = sys.path_importer_cache.get(entry)
            if not isinstance(importer, zipimport.zipimporter):
                continue
            try:
                if importer.is_package(fullname):
                    return None
            except zipimport.ZipImportError:
                continue
            origin = os.path.join(importer.archive, importer.prefix, leaf + ".py")
            loader = CachedLoader(importer, self.directory, self.uid, origin)
            spec = importlib.util.spec_from_loader(fullname, loader, origin=origin, is_package=False)
            spec.has_location = True
            return spec
        return None

    def invalidate_caches(self):
        pass


def install(loader=None) -> bool:
    """Put the cache in front of the imports when this collection runs from a zip. Returns whether it did."""
    loader = globals().get("__loader__") if loader is None else loader
    if not isinstance(loader, zipimport.zipimporter):
        return False
    if any(isinstance(finder, CacheFinder) for finder in sys.meta_path):
        return True
    uid = os.geteuid()
    directory = cache_dir(uid=uid)
    if directory is None:
        return False
    sys.meta_path.insert(0, CacheFinder(directory, uid))
    return True
