# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper for the subid target: edit or check /etc/subuid-like files the way a person would.

    python3 subid_edit.py add PATH LINE            append LINE unless it is there
    python3 subid_edit.py remove PATH LINE         remove every line equal to LINE
    python3 subid_edit.py remove-prefix PATH TEXT  remove every line that starts with TEXT
    python3 subid_edit.py overlap PREFIX PATH...   exit 1 when an entry whose line starts with PREFIX
                                                   overlaps any other entry of the same file

Edits hold glibc's lckpwdf lock (fcntl on /etc/.pwd.lock), which shadow's tools and the module take
before anything else, so they never race with them. Prints "changed" when the file changed.
"""

from __future__ import annotations

import fcntl
import os
import sys


def _edit(action: str, path: str, arg: str) -> bool:
    fd = os.open("/etc/.pwd.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if action == "add":
            new = lines if arg in lines else lines + [arg]
        elif action == "remove":
            new = [line for line in lines if line != arg]
        else:
            new = [line for line in lines if not line.startswith(arg)]
        if new == lines:
            return False
        tmp = "%s.edit.%d" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in new))
        if os.path.exists(path):
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.chown(tmp, st.st_uid, st.st_gid)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return True
    finally:
        os.close(fd)  # closing releases the lock


def _entries(path: str) -> list:
    result = []
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().splitlines():
            fields = line.split(":")
            if len(fields) == 3 and not line.startswith("#") and fields[1].isdigit() and fields[2].isdigit():
                result.append((line, int(fields[1]), int(fields[2])))
    return result


def _overlaps(prefix: str, paths: list) -> list:
    found = []
    for path in paths:
        entries = _entries(path)
        for i, (line, start, count) in enumerate(entries):
            if not line.startswith(prefix):
                continue
            for j, (other, o_start, o_count) in enumerate(entries):
                if i != j and count and o_count and start < o_start + o_count and o_start < start + count:
                    found.append("%s: %s overlaps %s" % (path, line, other))
    return found


def main(argv: list) -> int:
    if len(argv) >= 3 and argv[1] == "overlap":
        found = _overlaps(argv[2], argv[3:])
        print("\n".join(found) or "no overlap")
        return 1 if found else 0
    if len(argv) != 4 or argv[1] not in ("add", "remove", "remove-prefix"):
        print(__doc__, file=sys.stderr)
        return 2
    print("changed" if _edit(argv[1], argv[2], argv[3]) else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
