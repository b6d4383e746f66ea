"""pytest harness for the integration targets of lxcfleet.lxc.

Every target under ``tests/integration/targets/<name>/playbook.yml`` runs as one test with real
LXC on this machine. Each target gets a short unique prefix (``test_prefix``, e.g. ``lft3fa9``)
and a scratch folder (``test_workdir``); whatever carries the prefix is removed after the target,
pass or fail: containers (in ``/var/lib/lxc``, in the scratch folder and in the homes of prefixed
users), links, network namespaces, nftables tables, dnsmasq processes and users.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = REPO / "tests" / "integration"
TARGETS = INTEGRATION / "targets"
INVENTORY = INTEGRATION / "inventory"
OUTPUT = REPO / "tests" / "output" / "integration"
DEFAULT_LXC_PATH = Path("/var/lib/lxc")
WORK_ROOT = Path(os.environ.get("LXCFLEET_TEST_WORKROOT", "/tmp/lxcfleet-it"))

#: "lft" + 4 hex digits: leaves 8 characters of a 15-character interface name for the target.
PREFIX_STEM = "lft"
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{2,9}$")

# Words allowed in a target's ``aliases`` file, registered as pytest markers.
KNOWN_ALIASES = {
    "disabled": "target is not run",
    "slow": "target takes more than a minute",
    "needs_image": "target builds or uses a debootstrap image",
    "unprivileged": "target uses unprivileged containers",
    "network": "target creates bridges, NAT or DHCP",
    "sshd": "target starts a private sshd on 127.0.0.1 (tests/testbed/sshd.py)",
}


# --------------------------------------------------------------------------- environment


def _env_from_env_sh() -> dict[str, str]:
    """The environment of ``scripts/env.sh``, so tests and humans run with the same settings."""
    out = subprocess.run(
        ["bash", "-c", '. "$1" >/dev/null && env -0', "env.sh", str(REPO / "scripts" / "env.sh")],
        check=True,
        capture_output=True,
    ).stdout
    env: dict[str, str] = {}
    for item in out.split(b"\0"):
        if b"=" in item:
            key, _sep, value = item.partition(b"=")
            env[key.decode()] = value.decode(errors="replace")
    return env


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    env = _env_from_env_sh()
    env.setdefault("ANSIBLE_STDOUT_CALLBACK", "default")
    env["ANSIBLE_FORCE_COLOR"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------- targets


def discover_targets() -> list[tuple[str, Path, list[str]]]:
    """(name, playbook, aliases) of every target, sorted by name."""
    found = []
    if TARGETS.is_dir():
        for playbook in sorted(TARGETS.glob("*/playbook.yml")):
            aliases_file = playbook.parent / "aliases"
            aliases = []
            if aliases_file.is_file():
                for line in aliases_file.read_text().splitlines():
                    word = line.split("#", 1)[0].strip()
                    if word:
                        aliases.append(word)
            found.append((playbook.parent.name, playbook, aliases))
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize a test that takes ``playbook`` with every target (id = target name)."""
    if "playbook" not in metafunc.fixturenames:
        return
    params = []
    for name, playbook, aliases in discover_targets():
        marks = [pytest.mark.integration, pytest.mark.target(name)]
        marks += [getattr(pytest.mark, word) for word in aliases if word in KNOWN_ALIASES]
        if "disabled" in aliases:
            marks.append(pytest.mark.skip(reason=f"{name}: 'disabled' in aliases"))
        params.append(pytest.param(playbook, id=name, marks=marks))
    metafunc.parametrize("playbook", params)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: runs real LXC on this machine")
    config.addinivalue_line("markers", "target(name): an integration target playbook")
    for word, text in KNOWN_ALIASES.items():
        config.addinivalue_line("markers", f"{word}: {text}")


# --------------------------------------------------------------------------- cleanup


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 255, "", str(exc))


def _containers_in(lxc_path: Path, prefix: str | None) -> list[str]:
    """Container folders under lxc_path (a folder with a ``config`` file), prefixed if asked."""
    if not lxc_path.is_dir():
        return []
    names = []
    for entry in sorted(lxc_path.iterdir()):
        if prefix is not None and not entry.name.startswith(prefix):
            continue
        if entry.is_dir() and not entry.is_symlink() and (entry / "config").is_file():
            names.append(entry.name)
    return names


def _destroy_containers(lxc_path: Path, prefix: str | None, log: list[str]) -> None:
    """Stop and destroy containers; clones block their origin's destroy, so retry in passes."""
    for _attempt in range(4):
        names = _containers_in(lxc_path, prefix)
        if not names:
            return
        for name in names:
            _run(["lxc-stop", "-k", "-P", str(lxc_path), "-n", name], timeout=30)
        for name in reversed(names):
            res = _run(["lxc-destroy", "-f", "-s", "-P", str(lxc_path), "-n", name])
            log.append(f"lxc-destroy {lxc_path}/{name}: rc={res.returncode}")
    # Last resort: whatever lxc-destroy refused (broken config, missing rootfs).
    for name in _containers_in(lxc_path, prefix):
        _umount_below(lxc_path / name, log)
        shutil.rmtree(lxc_path / name, ignore_errors=True)
        log.append(f"rm -rf {lxc_path}/{name}")


def _pids_matching(pred) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            uid = proc.stat().st_uid
        except OSError:
            continue
        if argv and argv[0] and pred(argv, uid):
            pids.append(int(proc.name))
    return pids


def _descendants(pid: int) -> list[int]:
    """Every process below pid: the sshd fixture's own walk of /proc (tests/testbed/sshd.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lxcfleet_testbed_sshd", REPO / "tests" / "testbed" / "sshd.py")
    sshd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sshd)
    return sshd.descendants(pid)


def _kill(pids: list[int], log: list[str], what: str) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            log.append(f"killed {what} pid {pid}")
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if Path(f"/proc/{p}").exists()]
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cleanup_prefix(prefix: str, workdir: Path | None = None) -> list[str]:
    """Remove everything on this machine whose name starts with ``prefix``. Returns a log."""
    if not PREFIX_RE.match(prefix) or len(prefix) < 6:
        raise ValueError(f"refusing to clean up with an unsafe prefix {prefix!r}")
    log: list[str] = []
    pb = prefix.encode()

    # Containers: default path, scratch folder (any lxc path a target made there), users' homes.
    _destroy_containers(DEFAULT_LXC_PATH, prefix, log)
    if workdir is not None and workdir.is_dir():
        # lxc paths a target made in its scratch folder: <workdir>[/<a>[/<b>]]/<name>/config
        lxc_paths = {cfg.parent.parent for pattern in ("*/config", "*/*/config", "*/*/*/config")
                     for cfg in workdir.glob(pattern)}
        for lxc_path in sorted(lxc_paths, key=lambda p: len(p.parts), reverse=True):
            _destroy_containers(lxc_path, None, log)
    users = [p for p in pwd.getpwall() if p.pw_name.startswith(prefix)]
    for user in users:
        home = Path(user.pw_dir)
        for lxc_path in (home / ".local/share/lxc",):
            _destroy_containers(lxc_path, None, log)

    # Lock files the modules keep next to containers (.NAME.lxcfleet-lock) of prefixed names that
    # lxc-destroy above removed without the module.
    for lock in DEFAULT_LXC_PATH.glob(f".{prefix}*.lxcfleet-lock"):
        lock.unlink(missing_ok=True)
        log.append(f"rm {lock}")

    # dnsmasq and test image servers started for the target: their argv names the prefix.
    _kill(
        _pids_matching(lambda argv, uid: os.path.basename(argv[0]) == b"dnsmasq" and any(pb in a for a in argv)),
        log,
        "dnsmasq",
    )
    _kill(
        _pids_matching(lambda argv, uid: any(a.endswith(b"image_server.py") for a in argv[:3])
                       and any(pb in a for a in argv)),
        log,
        "image server",
    )
    # Private sshd of tests/testbed/sshd.py: the listener's (retitled) argv names its folder, which
    # carries the prefix; its sessions (``sshd: root@notty``) do not, so they go with their parent.
    listeners = _pids_matching(lambda argv, uid: argv[0].startswith((b"sshd", b"/usr/sbin/sshd"))
                               and any(pb in a for a in argv))
    _kill(listeners + [p for pid in listeners for p in _descendants(pid)], log, "sshd")

    # Links (bridges, veths, dummies) and network namespaces.
    res = _run(["ip", "-o", "link", "show"])
    for line in res.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            ifname = parts[1].strip().split("@", 1)[0]
            if ifname.startswith(prefix):
                r = _run(["ip", "link", "del", "dev", ifname])
                log.append(f"ip link del {ifname}: rc={r.returncode}")
    res = _run(["ip", "netns", "list"])
    for line in res.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(prefix):
            r = _run(["ip", "netns", "del", ns])
            log.append(f"ip netns del {ns}: rc={r.returncode}")

    # nftables tables.
    res = _run(["nft", "list", "tables"])
    for line in res.stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2].startswith(prefix):
            r = _run(["nft", "delete", "table", words[1], words[2]])
            log.append(f"nft delete table {words[1]} {words[2]}: rc={r.returncode}")

    # Users (and their processes, home, subuid/subgid ranges, lxc-usernet lines).
    for user in users:
        _kill(_pids_matching(lambda argv, uid, u=user.pw_uid: uid == u), log, f"user {user.pw_name}")
        r = _run(["userdel", "-r", "-f", user.pw_name])
        log.append(f"userdel {user.pw_name}: rc={r.returncode}")
        _run(["groupdel", user.pw_name])
    for shared in (Path("/etc/subuid"), Path("/etc/subgid"), Path("/etc/lxc/lxc-usernet")):
        _drop_prefixed_lines(shared, prefix, log)

    # Loop devices: a btrfs/xfs lxc path on a loop file below the scratch folder (unmounted first, its
    # containers are gone by now), and `-B loop` rootdev files of containers (LXC attaches them with
    # autoclear only while the container runs; a crashed monitor can leave one behind).
    loop_roots = [str(DEFAULT_LXC_PATH / prefix)]  # a string prefix: /var/lib/lxc/<prefix>*
    if workdir is not None and workdir.exists():
        _umount_below(workdir, log)
        loop_roots.append(str(workdir.resolve()) + "/")
    _detach_loops_below(loop_roots, log)
    if workdir is not None and workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
    return log


def _loop_devices() -> list[tuple[str, str]]:
    """(device, backing file) of every attached loop device; a deleted file keeps its old path."""
    import json

    res = _run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"])
    try:
        devices = json.loads(res.stdout or "{}").get("loopdevices", [])
    except ValueError:
        return []
    found = []
    for dev in devices:
        back = dev.get("back-file") or ""
        if back.endswith(" (deleted)"):
            back = back[: -len(" (deleted)")]
        if dev.get("name") and back:
            found.append((dev["name"], back))
    return found


def _detach_loops_below(starts: list[str], log: list[str]) -> None:
    """losetup -d every loop device whose backing file path starts with one of starts. A device still
    in use (a lazy unmount not finished) is only marked for autoclear by the kernel, and goes away
    with its last user."""
    for device, back in _loop_devices():
        if any(back.startswith(start) for start in starts):
            r = _run(["losetup", "-d", device])
            log.append(f"losetup -d {device} ({back}): rc={r.returncode}")


def _umount_below(path: Path, log: list[str]) -> None:
    """Unmount everything mounted at or below path (loop filesystems, overlays), deepest first."""
    base = str(path.resolve())
    mounts = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].encode().decode("unicode_escape")
            if target == base or target.startswith(base + "/"):
                mounts.append(target)
    except OSError:
        return
    for target in sorted(mounts, key=len, reverse=True):
        r = _run(["umount", "-l", target])
        log.append(f"umount {target}: rc={r.returncode}")


def _shared_file_lock(path: Path):
    """The lock the modules (and shadow's tools) take on a shared file, so that cleanup never loses
    or resurrects a line that a concurrent run writes."""
    import sys

    collections = str(REPO / ".build" / "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import fcntl_lock
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import shadow_locks
    from ansible_collections.lxcfleet.lxc.plugins.module_utils._usernet import lock_path

    if path.name in ("subuid", "subgid"):
        return shadow_locks([str(path)], timeout=60)
    return fcntl_lock(lock_path(str(path)), timeout=60)


def _drop_prefixed_lines(path: Path, prefix: str, log: list[str]) -> None:
    if not path.exists():
        return
    with _shared_file_lock(path):
        try:
            text = path.read_text()
        except OSError:
            return
        lines = text.splitlines(keepends=True)
        keep = [ln for ln in lines if not ln.startswith(prefix)]
        if len(keep) != len(lines):
            tmp = path.with_name(f".{path.name}.{prefix}.tmp")
            tmp.write_text("".join(keep))
            shutil.copymode(path, tmp)
            os.replace(tmp, path)
            log.append(f"removed {len(lines) - len(keep)} line(s) from {path}")


def _prefix_in_use(prefix: str) -> bool:
    if _containers_in(DEFAULT_LXC_PATH, prefix):
        return True
    links = _run(["ip", "-o", "link", "show"]).stdout
    return f": {prefix}" in links or any(p.pw_name.startswith(prefix) for p in pwd.getpwall())


def new_prefix() -> str:
    for _attempt in range(50):
        prefix = PREFIX_STEM + secrets.token_hex(2)
        if not _prefix_in_use(prefix):
            return prefix
    raise RuntimeError("no free test prefix found")


@pytest.fixture
def test_prefix() -> Iterator[str]:
    """A unique short prefix; everything carrying it is removed afterwards, pass or fail."""
    prefix = new_prefix()
    workdir = WORK_ROOT / prefix
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        yield prefix
    finally:
        log = cleanup_prefix(prefix, workdir)
        if log:
            print(f"\n[cleanup {prefix}]\n  " + "\n  ".join(log))


def workdir_for(prefix: str) -> Path:
    return WORK_ROOT / prefix


class Harness:
    """What test modules need from this conftest, without importing it by name."""

    inventory = INVENTORY
    output = OUTPUT
    new_prefix = staticmethod(new_prefix)
    cleanup_prefix = staticmethod(cleanup_prefix)
    workdir_for = staticmethod(workdir_for)


@pytest.fixture(scope="session")
def harness() -> type[Harness]:
    return Harness
