"""The harness cleanup and storage: a btrfs lxc path on a loop file below the scratch folder (with a
running btrfs-backed container in it) and a running `-B loop` container in /var/lib/lxc are all
gone afterwards: containers, mounts, loop devices, the folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def _loops() -> list[tuple[str, str]]:
    out = subprocess.run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"],
                         capture_output=True, text=True, check=True).stdout
    return [(d["name"], d.get("back-file") or "") for d in json.loads(out or "{}").get("loopdevices", [])]


def test_cleanup_removes_btrfs_path_and_loop_devices(harness) -> None:
    prefix = harness.new_prefix()
    workdir = harness.workdir_for(prefix)
    workdir.mkdir(parents=True, exist_ok=True)
    mnt, img, stray = workdir / "btrfs", workdir / "btrfs.img", workdir / "stray.img"
    lxc_path = Path("/var/lib/lxc")
    bt, lp = f"{prefix}bt", f"{prefix}lp"
    try:
        subprocess.run(["truncate", "-s", "512M", str(img)], check=True)
        subprocess.run(["truncate", "-s", "16M", str(stray)], check=True)
        dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True,
                             check=True).stdout.strip()
        subprocess.run(["losetup", "--find", str(stray)], check=True)  # attached, never mounted
        subprocess.run(["mkfs.btrfs", "-q", dev], check=True, capture_output=True)
        mnt.mkdir()
        subprocess.run(["mount", dev, str(mnt)], check=True)
        subprocess.run(["lxc-create", "-q", "-P", str(mnt), "-n", bt, "-t", "busybox", "-B", "btrfs"], check=True)
        subprocess.run(["lxc-create", "-q", "-n", lp, "-t", "busybox", "-B", "loop", "--fssize", "32M"], check=True)
        for path, name in ((mnt, bt), (lxc_path, lp)):
            subprocess.run(["lxc-start", "-P", str(path), "-n", name, "-s", "lxc.net.0.type=empty"], check=True)
            subprocess.run(["lxc-wait", "-P", str(path), "-n", name, "-s", "RUNNING", "-t", "30"], check=True)
        backs = [back for _dev, back in _loops()]
        assert str(img) in backs and str(stray) in backs and str(lxc_path / lp / "rootdev") in backs, backs
    finally:
        log = harness.cleanup_prefix(prefix, workdir)
    print("\n".join(log))
    leftover = [(d, b) for d, b in _loops() if b.startswith((str(workdir), str(lxc_path / prefix)))]
    assert not leftover, log
    assert str(workdir) not in Path("/proc/self/mounts").read_text(), log
    assert not (lxc_path / lp).exists(), log
    assert not workdir.exists(), log
