# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The discovery script's pure parts: config and lxc-info parsing, its argument, result checks, and
the walk over lxc paths with lxc-info answered by a fake (texts captured from LXC 5.0.2 here)."""

from __future__ import annotations

import ast
import json
import os

import pytest

from ansible_collections.lxcfleet.lxc.plugins.plugin_utils import _discover as d


@pytest.mark.parametrize("text, expected", [
    ("", {"groups": [], "autostart": False, "unprivileged": False, "arch": None}),
    ("lxc.group = web\nlxc.group = db\n", {"groups": ["web", "db"]}),
    ("lxc.group = web, db\nlxc.group=onboot  web\n", {"groups": ["web", "db", "onboot"]}),
    ("lxc.group = a,b,,c\n", {"groups": ["a", "b", "c"]}),
    ("lxc.group = a\nlxc.group =\nlxc.group = b\n", {"groups": ["b"]}),
    ('lxc.group = "quoted"\n', {"groups": ["quoted"]}),
    ("# lxc.group = commented\n  lxc.group = indented\n", {"groups": ["indented"]}),
    ("lxc.start.auto = 1\n", {"autostart": True}),
    ("lxc.start.auto = 0\n", {"autostart": False}),
    ("lxc.start.auto = 1\nlxc.start.auto = 0\n", {"autostart": False}),
    ("lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n", {"unprivileged": True}),
    ("lxc.id_map = u 0 100000 65536\n", {"unprivileged": True}),
    ("lxc.idmap = u 0 100000 65536\nlxc.idmap =\n", {"unprivileged": False}),
    ("lxc.arch = linux64\n", {"arch": "linux64"}),
    ("lxc.include = /usr/share/lxc/config/common.conf\nlxc.groupx = no\nxlxc.group = no\n", {"groups": []}),
])
def test_parse_config(text, expected):
    got = d.parse_config(text)
    for key, value in expected.items():
        assert got[key] == value, key


def test_parse_config_keeps_template_text_verbatim():
    text = "lxc.group = {{lookup(*'pipe|touch${IFS}/tmp/x'.split('|'))}}\n"
    assert d.parse_config(text)["groups"] == ["{{lookup(*'pipe|touch${IFS}/tmp/x'.split('|'))}}"]


RUNNING = "State:          RUNNING\nPID:            10285\nIP:             10.254.77.2\nIP:             fd00:77::2\n"


@pytest.mark.parametrize("text, expected", [
    (RUNNING, {"state": "RUNNING", "pid": 10285, "ipv4": ["10.254.77.2"], "ipv6": ["fd00:77::2"]}),
    ("State:          STOPPED\n", {"state": "STOPPED", "pid": None, "ipv4": [], "ipv6": []}),
    (RUNNING.replace("RUNNING", "FROZEN"), {"state": "FROZEN", "pid": 10285, "ipv4": ["10.254.77.2"], "ipv6": ["fd00:77::2"]}),
    ("State: RUNNING\nPID: 7\nIP: 10.0.0.1\nIP: 10.0.0.2\nIP: 10.0.0.1\n",
     {"state": "RUNNING", "pid": 7, "ipv4": ["10.0.0.1", "10.0.0.2"], "ipv6": []}),
    ("", {"state": None, "pid": None, "ipv4": [], "ipv6": []}),
    ("garbage\nPID: x\n", {"state": None, "pid": None, "ipv4": [], "ipv6": []}),
])
def test_parse_lxc_info(text, expected):
    assert d.parse_lxc_info(text) == expected


def test_script_argument():
    assert json.loads(d.script_argument(None, ("alice",), "7")) == {"lxc_paths": [], "users": ["alice"], "timeout": 7}


def test_script_source_is_this_module_and_stdlib_only():
    source = d.script_source()
    with open(d.__file__, encoding="utf-8") as handle:
        assert source == handle.read()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"ansible", "ansible_collections"}, imported
    assert 'if __name__ == "__main__":' in source


@pytest.mark.parametrize("data, message", [
    ([], "not a discovery result"),
    ({"version": 2, "paths": []}, "not a discovery result of version 1"),
    ({"version": 1}, "'paths' is not a list"),
    ({"version": 1, "paths": ["x"]}, "a path entry"),
    ({"version": 1, "paths": [{"containers": [{"state": "RUNNING"}]}]}, "has no name"),
])
def test_check_result_refuses(data, message):
    with pytest.raises(d.DiscoveryResultError, match=message):
        d.check_result(data)


def test_main_bad_argument(capsys):
    assert d.main(["{not json"]) == 2
    assert "bad argument" in capsys.readouterr().err


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """An lxc path with two containers, a folder without config and a file; lxc-info answered."""
    lxc = tmp_path / "lxc"
    for name, config in (("c1", "lxc.group = web\nlxc.start.auto = 1\n"), ("c2", "lxc.idmap = u 0 100000 65536\n")):
        (lxc / name).mkdir(parents=True)
        (lxc / name / "config").write_text(config)
    (lxc / "notacontainer").mkdir()
    (lxc / "afile").write_text("x")
    calls = []

    def fake_run(argv, timeout):
        calls.append(argv)
        if argv[0] == "lxc-info":
            name = argv[argv.index("-n") + 1]
            if name == "c1":
                return 0, RUNNING, ""
            return 1, "", "%s doesn't exist" % name
        if argv[-2:] == ["lxc-config", "lxc.lxcpath"]:
            return 0, str(lxc) + "\n", ""
        raise AssertionError(argv)

    monkeypatch.setattr(d, "_run", fake_run)
    return lxc, calls


def test_discover_walks_paths(fake_host, tmp_path):
    lxc, calls = fake_host
    result = d.discover({"lxc_paths": [str(lxc), str(tmp_path / "missing")], "timeout": 3})
    assert result["version"] == 1
    first, missing = result["paths"]
    assert missing == {"path": str(tmp_path / "missing"), "owner": result["user"], "error": None, "containers": []}
    assert [c["name"] for c in first["containers"]] == ["c1", "c2"]
    c1, c2 = first["containers"]
    assert c1 == {"name": "c1", "state": "RUNNING", "pid": 10285, "ipv4": ["10.254.77.2"], "ipv6": ["fd00:77::2"],
                  "groups": ["web"], "autostart": True, "unprivileged": False, "arch": None, "error": None}
    assert c2["state"] is None and c2["unprivileged"] is True
    assert c2["error"] == "lxc-info failed (rc=1): c2 doesn't exist"
    assert ["lxc-info", "-P", str(lxc), "-n", "c1", "-s", "-p", "-i"] in calls
    assert d.check_result(json.loads(json.dumps(result))) == result


def test_discover_default_path_and_users(fake_host, monkeypatch):
    lxc, calls = fake_host
    monkeypatch.setattr(d, "_whoami", lambda: "root")
    monkeypatch.setattr(d.os, "geteuid", lambda: 0)

    def getpwnam(user):
        if user != "alice":
            raise KeyError(user)

    monkeypatch.setattr(d.pwd, "getpwnam", getpwnam)
    result = d.discover({"users": ["alice", "nobodyhere"], "timeout": 3})
    root, alice, nobody = result["paths"]
    assert root["path"] == str(lxc) and root["owner"] == "root" and len(root["containers"]) == 2
    assert ["runuser", "-u", "alice", "--", "lxc-config", "lxc.lxcpath"] in calls
    # alice's path is the same folder here: listed once only
    assert alice["owner"] == "alice" and alice["error"].startswith("listed already")
    assert nobody == {"path": None, "owner": "nobodyhere", "error": "no user nobodyhere on this host", "containers": []}


def test_discover_users_need_root(fake_host, monkeypatch):
    monkeypatch.setattr(d, "_whoami", lambda: "carol")
    monkeypatch.setattr(d.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(d.pwd, "getpwnam", lambda user: None)
    result = d.discover({"users": ["alice"], "timeout": 3})
    assert result["paths"][0]["owner"] == "carol"
    assert "not root" in result["paths"][1]["error"]


def test_unreadable_path_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(d, "_run", lambda argv, timeout: (0, "", ""))
    afile = tmp_path / "file"
    afile.write_text("")
    result = d.discover({"lxc_paths": [str(afile)], "timeout": 3})
    assert result["paths"][0]["error"].startswith("cannot list %s" % afile)


def test_run_reports_missing_tool():
    rc, _out, err = d._run(["/nonexistent/lxc-info"], 3)
    assert rc is None and "/nonexistent/lxc-info" in err


def test_env_is_c_locale_without_xdg(monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "/root/.local/share")
    monkeypatch.setenv("PATH", "/usr/local/bin")
    env = d._env()
    assert env["LC_ALL"] == "C" and "XDG_DATA_HOME" not in env
    assert "/usr/sbin" in env["PATH"].split(os.pathsep)
