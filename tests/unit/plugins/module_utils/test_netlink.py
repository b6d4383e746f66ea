# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the bridge module: validation of every option and the plan (desired vs current)."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._netlink import (
    BridgeError,
    centiseconds_to_seconds,
    plan,
    seconds_to_centiseconds,
    validate_ifname,
    validate_params,
)


def params(**kwargs):
    base = dict(name="br0", state="present", addresses=None, addresses_mode="exact", mtu=None, hwaddr=None,
                stp=None, forward_delay=None, up=True, ports=None, ports_mode="exact", netns=None)
    base.update(kwargs)
    return base


def bridge(**kwargs):
    base = dict(addresses=["10.0.3.1/24"], mtu=1500, hwaddr="02:00:00:00:00:01", stp=False, forward_delay=15.0,
                up=True, operstate="UP", ports=[])
    base.update(kwargs)
    return base


def snapshot(current=None, links=None, addresses=None):
    links = dict(links or {})
    if current is not None:
        links.setdefault("br0", {"index": 5, "kind": "bridge", "master": None})
    links.setdefault("lo", {"index": 1, "kind": None, "master": None})
    addrs = list(addresses or [])
    if current is not None:
        addrs += [{"index": 5, "cidr": cidr} for cidr in current["addresses"]]
    return {"links": links, "addresses": addrs, "bridge": current}


def texts(result):
    return [action["text"] for action in result["actions"]]


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fragment", [
    ("", "must not be empty"),
    ("a" * 16, "too long"),
    ("br/0", "not a valid interface name"),
    ("br 0", "not a valid interface name"),
    ("br:0", "not a valid interface name"),
    ("..", "not a valid interface name"),
])
def test_bad_names(name, fragment):
    with pytest.raises(BridgeError, match="^name .*" + fragment if name else "^name must not be empty"):
        validate_params(params(name=name))


def test_fifteen_characters_are_fine():
    assert validate_ifname("a" * 15) is None
    assert validate_params(params(name="a" * 15))["name"] == "a" * 15


@pytest.mark.parametrize("value, fragment", [
    ("10.0.3.1", "needs a prefix length"),
    ("10.0.3.300/24", "not a valid CIDR"),
    ("10.0.3.1/33", "not a valid CIDR"),
    ("fd00::g/64", "not a valid CIDR"),
    ("224.0.0.1/4", "not a unicast"),
    ("fe80::1/64", "link-local"),
    ("bridge", "needs a prefix length"),
])
def test_bad_addresses(value, fragment):
    with pytest.raises(BridgeError, match="^addresses: .*" + fragment):
        validate_params(params(addresses=[value]))


def test_same_address_twice_with_other_prefix():
    with pytest.raises(BridgeError, match="^addresses: 10.0.3.1 is listed twice"):
        validate_params(params(addresses=["10.0.3.1/24", "10.0.3.1/16"]))


def test_addresses_canonical_and_sorted():
    desired = validate_params(params(addresses=["FD00:0::1/64", "10.0.3.1/24", "10.0.3.1/24"]))
    assert desired["addresses"] == ["10.0.3.1/24", "fd00::1/64"]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(mtu=67), "^mtu: 67 is out of range"),
    (dict(mtu=65536), "^mtu: 65536 is out of range"),
    (dict(hwaddr="02:00:00:00:00"), "^hwaddr: .* is not a MAC address"),
    (dict(hwaddr="01:00:5e:00:00:01"), "^hwaddr: .* multicast"),
    (dict(hwaddr="00:00:00:00:00:00"), "^hwaddr: .* not a usable"),
    (dict(forward_delay=-1), "^forward_delay: -1 is out of range"),
    (dict(forward_delay=1.005), "^forward_delay: 1.005 has more than two decimals"),
    (dict(stp=True, forward_delay=1), "^forward_delay: 1 is out of range while stp is on"),
    (dict(stp=True, forward_delay=31), "^forward_delay: 31 is out of range while stp is on"),
    (dict(ports=["eth0", "x" * 16]), "^ports .* too long"),
    (dict(ports=["br0"]), "^ports: 'br0' is the bridge itself"),
    (dict(netns="a/b"), "^netns 'a/b' is not a valid"),
    (dict(netns=".."), "^netns '..' is not a valid"),
])
def test_bad_options(kwargs, fragment):
    with pytest.raises(BridgeError, match=fragment):
        validate_params(params(**kwargs))


def test_canonical_values():
    desired = validate_params(params(hwaddr="02-AA-00-00-00-01", forward_delay=4, ports=["b", "a", "b"], mtu=1400))
    assert desired["hwaddr"] == "02:aa:00:00:00:01"
    assert desired["forward_delay"] == 4.0
    assert desired["ports"] == ["a", "b"]
    assert desired["up"] is True


def test_units():
    assert seconds_to_centiseconds(15) == 1500
    assert seconds_to_centiseconds(0.5) == 50
    assert centiseconds_to_seconds(1500) == 15.0
    assert centiseconds_to_seconds(None) is None


# --- planning ---------------------------------------------------------------------------------

def test_create_with_everything():
    desired = validate_params(params(addresses=["10.0.3.1/24", "fd00::1/64"], mtu=1400, stp=True, forward_delay=4,
                                     hwaddr="02:00:00:00:00:09", ports=["veth1"]))
    result = plan(desired, snapshot(links={"veth1": {"index": 7, "kind": "veth", "master": None}}))
    assert texts(result) == [
        "create bridge br0", "set mtu 1400", "set hwaddr 02:00:00:00:00:09", "set forward_delay 4.0 s", "set stp on",
        "add address 10.0.3.1/24", "add address fd00::1/64", "add port veth1", "set up"]
    assert result["before"] == {"state": "absent"}
    assert result["after"] == {"state": "present", "addresses": ["10.0.3.1/24", "fd00::1/64"], "mtu": 1400,
                               "hwaddr": "02:00:00:00:00:09", "stp": True, "forward_delay": 4.0, "up": True,
                               "ports": ["veth1"]}


def test_no_change_is_empty_plan():
    current = bridge(ports=["veth1"])
    desired = validate_params(params(addresses=["10.0.3.1/24"], mtu=1500, stp=False, forward_delay=15,
                                     hwaddr="02:00:00:00:00:01", ports=["veth1"]))
    result = plan(desired, snapshot(current, links={"veth1": {"index": 7, "kind": "veth", "master": 5}}))
    assert result["actions"] == []
    assert result["before"] == result["after"]


def test_only_named_options_are_managed():
    result = plan(validate_params(params()), snapshot(bridge(mtu=9000, stp=True)))
    assert result["actions"] == []
    assert result["after"] == {"state": "present", "up": True}


def test_exact_addresses_remove_others():
    current = bridge(addresses=["10.0.3.1/24", "10.0.4.1/24", "fd00::1/64"])
    result = plan(validate_params(params(addresses=["10.0.3.1/24", "10.0.5.1/24"])), snapshot(current))
    assert texts(result) == ["remove address 10.0.4.1/24", "remove address fd00::1/64", "add address 10.0.5.1/24"]
    assert result["after"]["addresses"] == ["10.0.3.1/24", "10.0.5.1/24"]


def test_exact_empty_list_removes_all():
    result = plan(validate_params(params(addresses=[])), snapshot(bridge()))
    assert texts(result) == ["remove address 10.0.3.1/24"]


def test_append_addresses_never_remove():
    current = bridge(addresses=["10.0.3.1/24", "10.0.4.1/24"])
    result = plan(validate_params(params(addresses=["10.0.5.1/24"], addresses_mode="append")), snapshot(current))
    assert texts(result) == ["add address 10.0.5.1/24"]
    assert result["after"]["addresses"] == ["10.0.3.1/24", "10.0.4.1/24", "10.0.5.1/24"]


def test_append_replaces_other_prefix_of_named_address():
    result = plan(validate_params(params(addresses=["10.0.3.1/16"], addresses_mode="append")), snapshot(bridge()))
    assert texts(result) == ["remove address 10.0.3.1/24", "add address 10.0.3.1/16"]


def test_address_on_another_link_fails():
    snap = snapshot(bridge(), links={"eth0": {"index": 2, "kind": None, "master": None}},
                    addresses=[{"index": 2, "cidr": "192.168.7.1/24"}])
    with pytest.raises(BridgeError, match="^addresses: 192.168.7.1/16 is already on link eth0"):
        plan(validate_params(params(addresses=["192.168.7.1/16"])), snap)


def test_name_of_a_non_bridge_fails_for_present_and_absent():
    snap = snapshot(links={"br0": {"index": 3, "kind": "veth", "master": None}})
    for state in ("present", "absent"):
        with pytest.raises(BridgeError, match="^name: br0 exists but is not a bridge \\(kind veth\\)"):
            plan(validate_params(params(state=state)), snap)
    snap = snapshot(links={"br0": {"index": 3, "kind": None, "master": None}})
    with pytest.raises(BridgeError, match="kind none"):
        plan(validate_params(params()), snap)


def test_missing_port_fails():
    with pytest.raises(BridgeError, match="^ports: nope does not exist in netns lab"):
        plan(validate_params(params(ports=["nope"], netns="lab")), snapshot(bridge()))


def test_bridge_as_port_fails():
    snap = snapshot(bridge(), links={"br1": {"index": 9, "kind": "bridge", "master": None}})
    with pytest.raises(BridgeError, match="^ports: br1 is a bridge"):
        plan(validate_params(params(ports=["br1"])), snap)


def test_ports_exact_and_append():
    links = {name: {"index": i, "kind": "veth", "master": 5 if name in ("a", "b") else None}
             for i, name in enumerate(["a", "b", "c"], start=10)}
    current = bridge(ports=["a", "b"])
    exact = plan(validate_params(params(ports=["b", "c"])), snapshot(current, links=links))
    assert texts(exact) == ["release port a", "add port c"]
    assert exact["after"]["ports"] == ["b", "c"]
    append = plan(validate_params(params(ports=["c"], ports_mode="append")), snapshot(current, links=links))
    assert texts(append) == ["add port c"]
    assert append["after"]["ports"] == ["a", "b", "c"]


def test_stp_off_before_short_delay_and_delay_before_stp_on():
    off = plan(validate_params(params(stp=False, forward_delay=0)), snapshot(bridge(stp=True)))
    assert texts(off) == ["set stp off", "set forward_delay 0.0 s"]
    on = plan(validate_params(params(stp=True, forward_delay=4)), snapshot(bridge(forward_delay=0.0)))
    assert texts(on) == ["set forward_delay 4.0 s", "set stp on"]


def test_short_delay_while_stp_stays_on_fails():
    with pytest.raises(BridgeError, match="^forward_delay: 1.0 is out of range while stp is on"):
        plan(validate_params(params(forward_delay=1)), snapshot(bridge(stp=True)))


def test_stp_on_with_short_current_delay_fails():
    with pytest.raises(BridgeError, match="^stp: cannot turn STP on while forward_delay is 0.0 s"):
        plan(validate_params(params(stp=True)), snapshot(bridge(forward_delay=0.0)))


def test_down_and_up():
    down = plan(validate_params(params(up=False)), snapshot(bridge()))
    assert texts(down) == ["set down"]
    up = plan(validate_params(params()), snapshot(bridge(up=False)))
    assert texts(up) == ["set up"]


def test_absent():
    result = plan(validate_params(params(state="absent")), snapshot(bridge(ports=["a"])))
    assert texts(result) == ["delete bridge br0 (its ports are released, not deleted)"]
    assert result["before"]["state"] == "present"
    assert result["before"]["ports"] == ["a"]
    assert result["after"] == {"state": "absent"}
    gone = plan(validate_params(params(state="absent")), snapshot())
    assert gone["actions"] == []
    assert gone["before"] == gone["after"] == {"state": "absent"}


def test_mtu_and_hwaddr_change():
    result = plan(validate_params(params(mtu=1400, hwaddr="02:00:00:00:00:02")), snapshot(bridge()))
    assert texts(result) == ["set mtu 1400", "set hwaddr 02:00:00:00:00:02"]
    assert result["before"]["mtu"] == 1500
    assert result["after"]["mtu"] == 1400
