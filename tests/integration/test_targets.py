"""Run every integration target playbook with real LXC.

``pytest tests/integration`` runs them all; ``pytest tests/integration -k container`` runs the
targets whose name contains ``container``. Each target runs as

    ansible-playbook -i tests/integration/inventory targets/<name>/playbook.yml --diff
        -e test_prefix=<lftXXXX> -e test_workdir=/tmp/lxcfleet-it/<lftXXXX>

from its own folder, with the environment of ``scripts/env.sh``. Its full output is kept in
``tests/output/integration/<name>.log``; a failure shows the tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


TARGET_TIMEOUT = int(os.environ.get("LXCFLEET_TARGET_TIMEOUT", "900"))
TAIL_LINES = 80


def test_target(playbook: Path, test_prefix: str, ansible_env: dict[str, str], harness) -> None:
    """One target playbook (parametrized by conftest.pytest_generate_tests)."""
    name = playbook.parent.name
    workdir = harness.workdir_for(test_prefix)
    harness.output.mkdir(parents=True, exist_ok=True)
    log_path = harness.output / f"{name}.log"
    argv = [
        "ansible-playbook",
        "-i", str(harness.inventory),
        str(playbook),
        "--diff",
        "-e", json.dumps({"test_prefix": test_prefix, "test_workdir": str(workdir)}),
    ]
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"# {' '.join(argv)}\n# cwd {playbook.parent}\n")
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=playbook.parent,
            env=ansible_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=TARGET_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    elapsed = time.monotonic() - started
    lines = log_path.read_text(errors="replace").splitlines()
    tail = "\n".join(lines[-TAIL_LINES:])
    if rc is None:
        pytest.fail(f"{name}: timed out after {TARGET_TIMEOUT}s (log {log_path})\n{tail}", pytrace=False)
    if rc != 0:
        pytest.fail(f"{name}: ansible-playbook rc={rc} after {elapsed:.1f}s (log {log_path})\n{tail}",
                    pytrace=False)
    recap = [ln for ln in lines if ln.startswith("localhost") and "ok=" in ln]
    print(f"{name}: {elapsed:.1f}s {recap[-1] if recap else ''}")


def test_cleanup_removes_prefixed_resources(harness) -> None:
    """The finalizer really removes a running container, its bridge, a dnsmasq and an nft table."""
    prefix = harness.new_prefix()
    workdir = harness.workdir_for(prefix)
    workdir.mkdir(parents=True, exist_ok=True)
    bridge, ct = f"{prefix}br", f"{prefix}ct"
    lxc_path = Path("/var/lib/lxc")
    dnsmasq = None
    try:
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        conf = workdir / "ct.conf"
        conf.write_text(
            "lxc.net.0.type = veth\n"
            f"lxc.net.0.link = {bridge}\n"
            "lxc.net.0.flags = up\n"
            "lxc.apparmor.profile = unconfined\n"
        )
        subprocess.run(["lxc-create", "-q", "-n", ct, "-t", "busybox", "-f", str(conf)], check=True)
        subprocess.run(["lxc-start", "-n", ct], check=True)
        subprocess.run(["lxc-wait", "-n", ct, "-s", "RUNNING", "-t", "20"], check=True)
        subprocess.run(["nft", "add", "table", "inet", f"{prefix}nat"], check=True)
        # A DHCP-less, DNS-less dnsmasq bound to the test bridge only.
        dnsmasq = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--port=0",
             f"--interface={bridge}", "--bind-dynamic", f"--pid-file={workdir}/dnsmasq.pid"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        assert dnsmasq.poll() is None, "dnsmasq did not stay up"
        assert (lxc_path / ct).is_dir()
    finally:
        log = harness.cleanup_prefix(prefix, workdir)
        if dnsmasq is not None:
            try:
                dnsmasq.wait(timeout=5)
            except subprocess.TimeoutExpired:
                dnsmasq.kill()
                dnsmasq.wait()
    print("\n".join(log))
    assert not (lxc_path / ct).exists(), log
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, check=False).returncode != 0, log
    assert dnsmasq.returncode is not None
    assert prefix not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    assert not workdir.exists()
