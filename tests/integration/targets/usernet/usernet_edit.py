# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit the real lxc-usernet for the test under the same lock the module takes.

``lineinfile`` would not take that lock, so a concurrent run of the module (other targets use it at
the same time) could write back a line the test just removed, or drop one it just added.

    python3 usernet_edit.py add PATH LINE...      append the lines
    python3 usernet_edit.py drop PATH REGEX       remove the lines that match REGEX (re.match)
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import tempfile


def main(argv):
    action, path = argv[1], argv[2]
    folder, base = os.path.split(path)
    with open(os.path.join(folder, ".%s.lock" % base), "a", encoding="utf-8") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                lines = handle.read().split("\n")
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            lines, mode = [""], 0o644
        if lines[-1] == "":
            lines.pop()
        if action == "add":
            lines.extend(argv[3:])
        elif action == "drop":
            pattern = re.compile(argv[3])
            lines = [line for line in lines if not pattern.match(line)]
        else:
            raise SystemExit("unknown action %s" % action)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % base, dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write("".join(line + "\n" for line in lines))
        os.chmod(tmp, mode)
        os.replace(tmp, path)


if __name__ == "__main__":
    main(sys.argv)
