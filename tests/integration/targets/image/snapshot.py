# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print a JSON listing of a folder tree: relative path -> sha256 of a file, link target, or "dir", with the mode.

The module's lock files (``.<variant>.lxcfleet-lock``, empty, next to a cache folder) are left out: a run
creates one before it fetches, and it is no part of a cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys


def main(top: str) -> None:
    out = {}
    for root, dirs, files in os.walk(top):
        for name in sorted(dirs + files):
            if name.endswith(".lxcfleet-lock"):
                continue
            path = os.path.join(root, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, top)
            if stat.S_ISLNK(info.st_mode):
                what = "-> " + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    what = hashlib.sha256(handle.read()).hexdigest()
            else:
                what = "dir"
            out[rel] = "%s %o" % (what, stat.S_IMODE(info.st_mode))
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
