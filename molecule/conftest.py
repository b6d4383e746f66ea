"""Fixtures shared by the testinfra tests of every scenario under molecule/.

pytest reads this file for each scenario's tests: molecule runs pytest from the scenario's folder
with the tests and its inventory (in ~/.ansible/tmp) as arguments, and without an ini file pytest's
rootdir is the common folder of those (/), so every conftest.py between it and the tests counts.
A test that asks for one of these fixtures fails with "fixture not found" if that ever changes.
"""

from __future__ import annotations

import pytest


def _lxc_info(host, name, *, owner=None):
    """lxc-info's 'Key: value' lines of a container as {key: [values]} (State, PID, IP ...).

    With ``owner``, lxc-info runs as that user on the LXC host, with the user's own runtime folder
    (an SSH session as root has XDG_RUNTIME_DIR=/run/user/0, where the user cannot take LXC's lock).
    """
    cmd = "lxc-info -n %s -s -p -i"
    if owner is not None:
        cmd = f"runuser -u {owner} -- env XDG_RUNTIME_DIR=/run/user/$(id -u {owner}) " + cmd
    info = {}
    for line in host.check_output(cmd, name).splitlines():
        key, _sep, value = line.partition(":")
        info.setdefault(key.strip(), []).append(value.strip())
    return info


@pytest.fixture
def lxc_info():
    """``lxc_info(host, name, owner=None)``: a container's state, init PID and addresses on its LXC host."""
    return _lxc_info
