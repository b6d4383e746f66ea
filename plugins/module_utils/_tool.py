# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""The error every module raises when an external tool (lxc-*, nft, dnsmasq ...) fails."""

from __future__ import annotations


class ToolError(Exception):
    """A command failed; carries what a task result reports about it."""

    def __init__(self, msg: str, cmd=None, rc=None, stdout="", stderr=""):
        super().__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def to_result(self) -> dict:
        return {"cmd": self.cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}
