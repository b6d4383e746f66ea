"""lxcfleet.lxc.subid under contention, on the real /etc/subuid and /etc/subgid.

* Ten ``ansible-playbook`` processes started at once, one user each: all succeed, ten ranges in
  each file that overlap nothing, every line that was there before still there.
* Runs of the module racing ``usermod --add-subuids/--add-subgids`` (shadow's own tool and locks):
  every entry of both is there, none lost, none overlapping.
* The locks themselves: a stale link lock (dead pid) is taken over, a live one makes the task fail
  naming lock_timeout, and so does glibc's lckpwdf lock held by another process.

Users are named with the test prefix, so the harness removes them and their lines afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest

SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
#: Lines of other test runs (prefix "lft" + 4 hex digits), which their own cleanup may remove meanwhile.
OTHER_TEST_LINE = re.compile(r"^lft[0-9a-f]{4}")
PLAYBOOK = """\
- name: Subordinate ids for one user
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ranges for the user
      lxcfleet.lxc.subid: "{{ subid_args }}"
"""

pytestmark = pytest.mark.integration


def _useradd(names: list[str]) -> dict[str, int]:
    uids = {}
    for name in names:
        subprocess.run(["useradd", "-M", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
                       check=True, capture_output=True, text=True)
        out = subprocess.run(["id", "-u", name], check=True, capture_output=True, text=True).stdout
        uids[name] = int(out.strip())
    return uids


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _entries(path: Path) -> list[tuple[str, int, int]]:
    result = []
    for line in _lines(path):
        fields = line.split(":")
        if len(fields) == 3 and not line.startswith("#") and fields[1].isdigit() and fields[2].isdigit():
            result.append((fields[0], int(fields[1]), int(fields[2])))
    return result


def _overlaps(path: Path, owners: set[str]) -> list[str]:
    """Entries of ``owners`` that overlap any other entry of the file."""
    entries = _entries(path)
    found = []
    for i, (owner, start, count) in enumerate(entries):
        if owner not in owners:
            continue
        for j, (o_owner, o_start, o_count) in enumerate(entries):
            if i != j and count and o_count and start < o_start + o_count and o_start < start + count:
                found.append(f"{path}: {owner}:{start}:{count} overlaps {o_owner}:{o_start}:{o_count}")
    return found


class _Snapshot:
    """The files and the users before a test, and canary lines of this test in both files."""

    def __init__(self, prefix: str):
        self.users = {p.pw_name for p in pwd.getpwall()} | {str(p.pw_uid) for p in pwd.getpwall()}
        self.canaries = [f"# {prefix}: canary comment", f"{prefix}cx:{590000000 + int(prefix[3:], 16) % 100 * 1000}:1"]
        for path in (SUBUID, SUBGID):
            _locked_edit(path, add=self.canaries)
        self.lines = {path: _lines(path) for path in (SUBUID, SUBGID)}

    def lost(self, path: Path) -> list[str]:
        """Lines that were there before and are gone.

        Other test runs (and people) work on this machine at the same time: their own lines
        (``lft...``) and the lines of users deleted meanwhile (userdel removes them) do not count.
        The canaries of this test must be there, byte for byte.
        """
        after = set(_lines(path))
        now = {p.pw_name for p in pwd.getpwall()} | {str(p.pw_uid) for p in pwd.getpwall()}
        lost = []
        for line in self.lines[path]:
            if line in after or (OTHER_TEST_LINE.match(line) and line not in self.canaries):
                continue
            if line.startswith("# lft") and line not in self.canaries:
                continue
            owner = line.split(":", 1)[0]
            if owner in self.users and owner not in now:
                continue
            lost.append(line)
        return lost

    def remove_canaries(self) -> None:
        for path in (SUBUID, SUBGID):
            _locked_edit(path, remove=self.canaries)


def _locked_edit(path: Path, add=(), remove=()) -> None:
    """Append or remove lines under glibc's lckpwdf lock, which shadow's tools and the module take first."""
    fd = os.open("/etc/.pwd.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        lines = _lines(path)
        new = [line for line in lines if line not in remove] + [line for line in add if line not in lines]
        if new != lines:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text("".join(line + "\n" for line in new))
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
            os.replace(tmp, path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _snapshot(prefix: str):
    snap = _Snapshot(prefix)
    try:
        yield snap
    finally:
        snap.remove_canaries()


def _json_env(ansible_env: dict[str, str]) -> dict[str, str]:
    env = dict(ansible_env)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.json"
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    return env


def _start_playbook(playbook: Path, args: dict, harness, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        ["ansible-playbook", "-i", str(harness.inventory), str(playbook), "-e", json.dumps({"subid_args": args})],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _results(proc: subprocess.Popen, timeout: float = 300) -> list[dict]:
    """The module results of a finished playbook run (json callback), asserting it succeeded."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"rc={proc.returncode}\n{out[-4000:]}\n{err[-2000:]}"
    report = json.loads(out)
    return [task["hosts"]["localhost"] for play in report["plays"] for task in play["tasks"]]


def _run_module(args: dict, harness, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        ["ansible", "localhost", "-i", str(harness.inventory), "-m", "lxcfleet.lxc.subid", "-a", json.dumps(args)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    report = json.loads(proc.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_ten_parallel_runs(test_prefix: str, harness, ansible_env: dict[str, str]) -> None:
    users = [f"{test_prefix}p{i}" for i in range(10)]
    _useradd(users)
    workdir = harness.workdir_for(test_prefix)
    playbook = workdir / "subid_one.yml"
    playbook.write_text(PLAYBOOK)
    env = _json_env(ansible_env)
    with _snapshot(test_prefix) as snap:
        _ten_parallel_runs(users, playbook, snap, harness, env)


def _ten_parallel_runs(users, playbook, snap, harness, env) -> None:
    procs = [_start_playbook(playbook, {"name": user}, harness, env) for user in users]
    results = {user: _results(proc)[0] for user, proc in zip(users, procs)}

    for user, result in results.items():
        assert result["changed"] is True, result
        assert len(result["subuid"]) == 1 and result["subuid"][0]["count"] == 65536, result
        assert len(result["subgid"]) == 1 and result["subgid"][0]["count"] == 65536, result
        assert result["subuid"][0]["start"] >= 100000, result
        assert result["idmap"] == [f"u 0 {result['subuid'][0]['start']} 65536", f"g 0 {result['subgid'][0]['start']} 65536"]
    for path, kind in ((SUBUID, "subuid"), (SUBGID, "subgid")):
        mine = [entry for entry in _entries(path) if entry[0] in users]
        assert sorted(entry[0] for entry in mine) == sorted(users), mine
        assert {(e[1], e[2]) for e in mine} == {(r[kind][0]["start"], r[kind][0]["count"]) for r in results.values()}
        assert _overlaps(path, set(users)) == []
        assert snap.lost(path) == []

    # Ten more runs at once find everything in place.
    procs = [_start_playbook(playbook, {"name": user}, harness, env) for user in users]
    for user, proc in zip(users, procs):
        again = _results(proc)[0]
        assert again["changed"] is False, again
        assert again["subuid"] == results[user]["subuid"] and again["subgid"] == results[user]["subgid"]


def test_race_with_usermod(test_prefix: str, harness, ansible_env: dict[str, str]) -> None:
    rounds = 5
    shadow_user = f"{test_prefix}sh"
    module_users = [f"{test_prefix}m{i}" for i in range(rounds)]
    _useradd([shadow_user] + module_users)
    workdir = harness.workdir_for(test_prefix)
    playbook = workdir / "subid_one.yml"
    playbook.write_text(PLAYBOOK)
    env = _json_env(ansible_env)
    with _snapshot(test_prefix) as snap:
        _race_with_usermod(test_prefix, shadow_user, module_users, playbook, snap, harness, env)


def _race_with_usermod(test_prefix, shadow_user, module_users, playbook, snap, harness, env) -> None:
    # usermod's ranges: far above where allocation goes; one region per prefix.
    region = 500000000 + (int(test_prefix[3:], 16) % 900) * 100000
    shadow_ranges = []
    allocated = {}

    for rnd, user in enumerate(module_users):
        explicit = (region + 100000 - (rnd + 1) * 1000, 1000)
        procs = [_start_playbook(playbook, {"name": user}, harness, env),
                 _start_playbook(playbook, {"name": user, "start": explicit[0], "count": explicit[1]}, harness, env)]
        # usermod over and over, paced, while the two playbooks start up and run the module.
        deadline = time.monotonic() + 120
        step = 0
        while any(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
            if step < 100:
                first = region + rnd * 10000 + step * 100
                spec = f"{first}-{first + 99}"
                res = subprocess.run(["usermod", "--add-subuids", spec, "--add-subgids", spec, shadow_user],
                                     capture_output=True, text=True, check=False, timeout=60)
                assert res.returncode == 0, res.stderr
                shadow_ranges.append((first, 100))
                step += 1
            time.sleep(0.02)
        results = [_results(proc)[0] for proc in procs]
        assert all(result["changed"] for result in results), results
        allocated[user] = (explicit, results)

    for path, kind in ((SUBUID, "subuid"), (SUBGID, "subgid")):
        entries = _entries(path)
        shadow = sorted((start, count) for owner, start, count in entries if owner == shadow_user)
        assert shadow == sorted(shadow_ranges), f"{path}: usermod's entries lost"
        for user, (explicit, results) in allocated.items():
            own = sorted((start, count) for owner, start, count in entries if owner == user)
            # The explicit range and an allocated one, whichever run came first.
            assert len(own) == 2 and explicit in own, own
            assert set(own) == {(r["start"], r["count"]) for result in results for r in result[kind]}
        assert _overlaps(path, {shadow_user, *module_users}) == []
        assert snap.lost(path) == []


def test_locks(test_prefix: str, harness, ansible_env: dict[str, str]) -> None:
    """Stale and live link locks (on files in the scratch folder), and glibc's lckpwdf lock."""
    env = _json_env(ansible_env)
    workdir = harness.workdir_for(test_prefix)
    paths = {"subuid_path": str(workdir / "subuid"), "subgid_path": str(workdir / "subgid")}
    Path(paths["subuid_path"]).write_text("# kept\n")
    args = {"name": "4000000", **paths}

    # A stale lock: its process is gone. It is removed and the task goes on.
    dead = subprocess.Popen(["true"])
    dead.wait()
    Path(paths["subuid_path"] + ".lock").write_text(str(dead.pid))
    result = _run_module({**args, "lock_timeout": 5}, harness, env)
    assert not result.get("failed"), result
    assert result["subuid"] == [{"start": 100000, "count": 65536}]
    assert Path(paths["subuid_path"]).read_text() == "# kept\n4000000:100000:65536\n"
    assert Path(paths["subuid_path"] + "-").read_text() == "# kept\n"
    assert Path(paths["subgid_path"]).read_text() == "4000000:100000:65536\n"  # a new file
    assert Path(paths["subgid_path"]).stat().st_mode & 0o7777 == 0o644
    assert not Path(paths["subuid_path"] + ".lock").exists()

    # A live lock: the task waits lock_timeout, then fails naming it; nothing changes.
    holder = subprocess.Popen(["sleep", "30"])
    try:
        Path(paths["subgid_path"] + ".lock").write_text(str(holder.pid))
        started = time.monotonic()
        result = _run_module({**args, "count": 70000, "lock_timeout": 1.5}, harness, env)
        waited = time.monotonic() - started
        assert result.get("failed"), result
        assert result["msg"].startswith("lock_timeout: ") and f"held by process {holder.pid}" in result["msg"], result
        assert waited >= 1.5
        assert Path(paths["subuid_path"]).read_text() == "# kept\n4000000:100000:65536\n"
        assert Path(paths["subgid_path"]).read_text() == "4000000:100000:65536\n"
        assert not Path(paths["subuid_path"] + ".lock").exists()  # the first lock was released
        assert Path(paths["subgid_path"] + ".lock").read_text() == str(holder.pid)  # someone else's: untouched
    finally:
        holder.kill()
        holder.wait()
        os.unlink(paths["subgid_path"] + ".lock")

    # glibc's lckpwdf lock held by another process, as usermod holds it for its whole run: the task
    # waits lock_timeout, then fails naming it. lockf locks belong to a process: take it in a child.
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl, os, sys, time\n"
         "fd = os.open('/etc/.pwd.lock', os.O_WRONLY | os.O_CREAT, 0o600)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = _run_module({**args, "count": 70000, "lock_timeout": 1}, harness, env)
        assert result.get("failed"), result
        assert result["msg"].startswith("lock_timeout: /etc/.pwd.lock is locked"), result
    finally:
        holder.kill()
        holder.wait()

    # Check mode takes the locks too: with them free it predicts the allocation and writes nothing.
    proc = subprocess.run(
        ["ansible", "localhost", "-C", "-i", str(harness.inventory), "-m", "lxcfleet.lxc.subid",
         "-a", json.dumps({**args, "count": 70000})],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is True and result["subuid"][-1] == {"start": 165536, "count": 70000}, result
    assert Path(paths["subuid_path"]).read_text() == "# kept\n4000000:100000:65536\n"
    assert not Path(paths["subuid_path"] + ".lock").exists()
