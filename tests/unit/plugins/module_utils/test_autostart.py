# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the autostart module: selection arguments, LXC's output, LXC's order."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._autostart import (
    AutostartError,
    group_matches,
    log_reasons,
    lxc_order,
    parse_config_items,
    parse_list,
    pass_index,
    validate,
)


def test_selection_arguments():
    assert validate({"groups": ["db", "", "web"], "all": False, "ignore_auto": True, "timeout": 60}) == [
        "-g", "db", "-g", "", "-g", "web", "-A"]
    assert validate({"groups": None, "all": True, "ignore_auto": False, "timeout": 0}) == ["-a"]
    assert validate({"groups": None, "all": False, "ignore_auto": False, "timeout": 60}) == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"groups": ["a,b"]}, "groups: 'a,b' is not a group name"),
        ({"groups": ["a", "a"]}, "groups: 'a' is named twice"),
        ({"groups": ["a"], "all": True}, "groups and all are mutually exclusive"),
        ({"timeout": -1}, "timeout must be 0"),
    ],
)
def test_bad_selection(params, message):
    with pytest.raises(AutostartError) as err:
        validate(params)
    assert message in str(err.value)


def test_parse_list_start_and_stop_forms():
    assert parse_list("web2 1\nweb3 0\nweb1 5\n") == [("web2", 1), ("web3", 0), ("web1", 5)]
    assert parse_list("web1\nweb3\n\n") == [("web1", None), ("web3", None)]
    assert parse_list("") == []


def test_parse_config_items_multi_line_groups():
    text = ("State:          RUNNING\nPID:            42\nlxc.start.order = 4\nlxc.start.delay = 2\n"
            "lxc.start.auto = 1\nlxc.group = web\nonboot\n\n")
    assert parse_config_items(text) == {"order": 4, "delay": 2, "auto": True, "groups": ["web", "onboot"]}
    text = "State:          STOPPED\nlxc.start.order = -3\nlxc.start.delay = 0\nlxc.start.auto = 0\nlxc.group =\n"
    assert parse_config_items(text) == {"order": -3, "delay": 0, "auto": False, "groups": []}


def test_group_matching_is_lxcs_prefix_rule():
    assert group_matches("", [])
    assert not group_matches("web", [])
    assert not group_matches("", ["web"])
    assert group_matches("web", ["web"])
    assert group_matches("webfront", ["web"])  # LXC: strncmp(group, requested, strlen(group))
    assert not group_matches("we", ["web"])


def _member(name, order, groups=(), params=None):
    params = params or {}
    return {"name": name, "order": order, "groups": list(groups), "pass": pass_index(params, list(groups))}


def test_start_order_lower_first_then_name_stop_reversed():
    params = {"groups": ["g"]}
    members = [_member("a", 30, ["g"], params), _member("b", 10, ["g"], params), _member("c", 20, ["g"], params),
               _member("d", 20, ["g"], params)]
    assert [m["name"] for m in lxc_order(params, members, stopping=False)] == ["b", "c", "d", "a"]
    assert [m["name"] for m in lxc_order(params, members, stopping=True)] == ["a", "d", "c", "b"]


def test_passes_follow_the_requested_groups_in_both_directions():
    params = {"groups": ["other", "g"]}
    members = [_member("a", 5, ["g"], params), _member("b", 1, ["g"], params), _member("x", 2, ["other"], params),
               _member("y", 9, ["g", "other"], params)]
    assert [m["name"] for m in lxc_order(params, members, stopping=False)] == ["x", "y", "b", "a"]
    assert [m["name"] for m in lxc_order(params, members, stopping=True)] == ["y", "x", "a", "b"]


def test_all_is_one_pass():
    params = {"all": True}
    members = [_member("a", 5, ["g"], params), _member("x", 2, ["other"], params), _member("n", 3, [], params)]
    assert [m["name"] for m in lxc_order(params, members, stopping=False)] == ["x", "n", "a"]


def test_log_reasons_per_container():
    log = (
        'lxc-autostart e1 20261123161819.826 ERROR    network - ../src/lxc/network.c:netdev_configure_server_veth:711 - '
        'No such file or directory - Failed to attach "vethtFz3rd" to bridge "nobr", bridge interface doesn\'t exist\n'
        'lxc-autostart e1 20261123161819.843 ERROR    lxccontainer - ../src/lxc/lxccontainer.c:wait_on_daemonized_start:878 - '
        'Received container state "ABORTING" instead of "RUNNING"\n'
        'lxc-autostart 20261123161819.843 ERROR    lxc_autostart - ../src/lxc/tools/lxc_autostart.c:main:468 - '
        'Error starting container: e2\n'
    )
    reasons = log_reasons(log)
    assert reasons["e1"][0].endswith('bridge "nobr", bridge interface doesn\'t exist')
    assert reasons["e2"] == ["Error starting container: e2"]
