"""Reads `ansible-inventory --list` JSON (the file named by the one argument) and prints a plain view of it for assertions.

{"groups": {group: sorted direct hosts}, "children": {group: sorted child groups},
 "hostvars": {host: vars with the unsafe markers removed},
 "unsafe": {host: sorted names of the variables that hold a string marked unsafe}}

ansible-inventory writes a string marked unsafe as {"__ansible_unsafe": "..."} (2.17 and 2.18 for
AnsibleUnsafeText, 2.19 for every string that is not trusted as a template).
"""

from __future__ import annotations

import json
import sys

MARK = "__ansible_unsafe"


def plain(value, found: list) -> object:
    if isinstance(value, dict):
        if set(value) == {MARK}:
            found.append(True)
            return value[MARK]
        return {k: plain(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, found) for v in value]
    return value


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        data = json.load(handle)
    view = {"groups": {}, "children": {}, "hostvars": {}, "unsafe": {}}
    for host, hostvars in data.get("_meta", {}).get("hostvars", {}).items():
        view["hostvars"][host] = {}
        unsafe = []
        for key, value in hostvars.items():
            found: list = []
            view["hostvars"][host][key] = plain(value, found)
            if found:
                unsafe.append(key)
        view["unsafe"][host] = sorted(unsafe)
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        if body.get("hosts"):
            view["groups"][group] = sorted(body["hosts"])
        if body.get("children"):
            view["children"][group] = sorted(body["children"])
    json.dump(view, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
