# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lxc-usernet parsing and the allowance lxc-user-nic computes."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _usernet as un
from ansible_collections.lxcfleet.lxc.plugins.module_utils._usernet import UsernetEntry

SAMPLE = (
    "# USERNAME TYPE BRIDGE COUNT\n"
    "\n"
    "alice veth lxcbr0 10\n"
    "@lxcusers veth lxcbr0 2\n"
    "bob\tveth\tbr1\t3\n"
    "  carol veth lxcbr0 4\n"
    "dave veth lxcbr0 5 # five\n"
    "#erin veth lxcbr0 6\n"
)


def test_parse_round_trip_and_items():
    lines = un.parse_usernet(SAMPLE)
    assert lines == [
        "# USERNAME TYPE BRIDGE COUNT",
        "",
        UsernetEntry("alice", "veth", "lxcbr0", 10),
        UsernetEntry("@lxcusers", "veth", "lxcbr0", 2),
        UsernetEntry("bob", "veth", "br1", 3),
        "  carol veth lxcbr0 4",
        "dave veth lxcbr0 5 # five",
        "#erin veth lxcbr0 6",
    ]
    canonical = SAMPLE.replace("bob\tveth\tbr1\t3", "bob veth br1 3")
    assert un.render_usernet(lines) == canonical
    assert un.render_usernet(un.parse_usernet(canonical)) == canonical


def test_parse_empty_and_no_final_newline():
    assert un.parse_usernet("") == []
    assert un.parse_usernet("alice veth br0 1") == [UsernetEntry("alice", "veth", "br0", 1)]
    assert un.parse_usernet("\n\n") == ["", ""]


@pytest.mark.parametrize("line, expected", [
    ("alice veth br0 1", ("alice", "veth", "br0", 1)),
    ("alice veth br0 2 # comment", ("alice", "veth", "br0", 2)),
    ("alice veth br0 3x", ("alice", "veth", "br0", 3)),
    ("alice veth br0 +4", ("alice", "veth", "br0", 4)),
    ("alice veth br0 -1", ("alice", "veth", "br0", -1)),
    ("alice   veth \t br0 \t 5", ("alice", "veth", "br0", 5)),
    ("alice veth br0 4294967297", ("alice", "veth", "br0", 1)),
    (" alice veth br0 1", None),
    ("\talice veth br0 1", None),
    ("alice veth br0", None),
    ("alice veth br0 many", None),
    ("", None),
    ("#alice veth br0 1", ("#alice", "veth", "br0", 1)),
])
def test_scan_like_sscanf(line, expected):
    assert un._scan(line) == expected


def test_scan_long_first_field_is_split_like_sscanf():
    # %99[^ \t] stops after 99 bytes; the rest of the word is the next field.
    assert un._scan("a" * 100 + " veth br0 1") is None
    assert un._scan("a" * 100 + " veth 7") == ("a" * 99, "a", "veth", 7)


LINES = un.parse_usernet(
    "# comment alice veth br0 100\n"
    "alice veth br0 2\n"
    "@staff veth br0 3\n"
    "@other veth br0 50\n"
    "alice veth br1 7\n"
    "alice macvlan br0 9\n"
    "alicex veth br0 11\n"
    " alice veth br0 13\n"
    "bob veth br0 1\n"
)


def test_allotted_sums_user_and_group_lines():
    assert un.allotted(LINES, "alice", ["alice", "staff"], "veth", "br0") == 5
    assert un.matching_counts(LINES, "alice", ["staff"], "veth", "br0") == [2, 3]
    assert un.matching_lines(LINES, "alice", ["staff"], "veth", "br0") == [("alice", 2), ("@staff", 3)]


@pytest.mark.parametrize("user, groups, nic_type, link, expected", [
    ("alice", [], "veth", "br0", 2),                  # user line only
    ("alice", ["staff"], "veth", "br0", 5),           # user + group line: summed
    ("carol", ["staff"], "veth", "br0", 3),           # group line only
    ("carol", ["other", "staff"], "veth", "br0", 53),
    ("alice", ["staff"], "veth", "br1", 7),           # other link
    ("alice", [], "macvlan", "br0", 9),               # other type, asked for
    ("alice", [], "veth", "br9", 0),                  # nothing for that link
    ("nobody", [], "veth", "br0", 0),
    ("staff", [], "veth", "br0", 0),                  # a group line is not a user line
    ("bob", [], "veth", "br0", 1),
])
def test_allowance(user, groups, nic_type, link, expected):
    assert un.allowance(LINES, user, groups, nic_type, link) == expected


def test_allowance_several_lines_of_one_name_do_not_add_up():
    # lxc-user-nic checks each line's count against the nics its name holds, so lines of one name
    # give the largest of their counts (seen for real with LXC 5.0.2: the second nic is "Quota reached").
    lines = un.parse_usernet("u veth br0 1\nu veth br0 1\n@g veth br0 2\n@g veth br0 3\n")
    assert un.allotted(lines, "u", ["g"], "veth", "br0") == 7
    assert un.allowance(lines, "u", [], "veth", "br0") == 1
    assert un.allowance(lines, "u", ["g"], "veth", "br0") == 4
    assert un.allowance(lines, "v", ["g"], "veth", "br0") == 3


def test_allowance_needs_a_positive_sum():
    lines = un.parse_usernet("u veth br0 3\n@g veth br0 -5\n@h veth br0 1\n")
    assert un.allotted(lines, "u", ["g"], "veth", "br0") == -2
    assert un.allowance(lines, "u", ["g"], "veth", "br0") == 0
    assert un.allowance(lines, "u", [], "veth", "br0") == 3
    assert un.allowance(lines, "u", ["g", "h"], "veth", "br0") == 0
    assert un.allowance(lines, "u", ["h"], "veth", "br0") == 4
    assert un.allowance(un.parse_usernet("u veth br0 0\n"), "u", [], "veth", "br0") == 0


def test_allowance_reads_raw_lines_like_lxc_user_nic():
    lines = ["u veth br0 2 # two", "  u veth br0 40", "u veth br0"]
    assert un.allowance(lines, "u", [], "veth", "br0") == 2


def test_read_allowance(tmp_path):
    path = tmp_path / "lxc-usernet"
    assert un.read_allowance(str(path), "u", [], "veth", "br0") == 0
    path.write_text("# x\nu veth br0 4\n@g veth br0 6\n")
    assert un.read_allowance(str(path), "u", [], "veth", "br0") == 4
    assert un.read_allowance(str(path), "u", ["g"], "veth", "br0") == 10
    assert un.read_allowance(str(path), "v", [], "veth", "br0") == 0


# --- the module: validation and planning ---------------------------------------------------


def desired(**kwargs):
    params = dict(name="alice", state="present", bridge=None, count=None, type="veth", entries=None,
                  exclusive=False, path="/etc/lxc/lxc-usernet", lock_timeout=15.0)
    params.update(kwargs)
    return un.validate_params(params)


FILE = [
    "# lxc-usernet of this host",
    "bob veth lxcbr0 5",
    "alice veth lxcbr0 2",
    "",
    "@staff veth lxcbr0 1",
    "alice\tveth\tbr1\t3",
    "alice veth br2 1 # temporary",
    "alice veth lxcbr0 7",
    "  alice veth lxcbr0 40",
    "#alice veth br9 9",
]


def test_plan_additive_sets_one_key_and_collapses_duplicates():
    new = un.plan(desired(bridge="lxcbr0", count=4), FILE)
    assert new == [
        "# lxc-usernet of this host",
        "bob veth lxcbr0 5",
        "alice veth lxcbr0 4",
        "",
        "@staff veth lxcbr0 1",
        "alice\tveth\tbr1\t3",
        "alice veth br2 1 # temporary",
        "  alice veth lxcbr0 40",
        "#alice veth br9 9",
    ]
    assert un.allowance(new, "alice", [], "veth", "lxcbr0") == 4


def test_plan_keeps_a_matching_line_verbatim():
    new = un.plan(desired(bridge="br1", count=3), FILE)
    assert new == FILE
    new = un.plan(desired(bridge="br2", count=1), FILE)
    assert "alice veth br2 1" in new and "alice veth br2 1 # temporary" not in new


def test_plan_additive_appends_after_the_names_last_line():
    new = un.plan(desired(bridge="br5", count=1), FILE)
    assert new[:8] == FILE[:8] and new[8] == "alice veth br5 1" and new[9:] == FILE[8:]
    assert un.plan(desired(name="carol", bridge="br5", count=1), FILE) == FILE + ["carol veth br5 1"]
    assert un.plan(desired(bridge="br5", count=1), []) == ["alice veth br5 1"]


def test_plan_exclusive():
    new = un.plan(desired(entries=[dict(bridge="br1", count=3, type="veth"), dict(bridge="br6", count=0, type="veth")],
                          exclusive=True), FILE)
    assert new == [
        "# lxc-usernet of this host",
        "bob veth lxcbr0 5",
        "",
        "@staff veth lxcbr0 1",
        "alice\tveth\tbr1\t3",
        "alice veth br6 0",
        "  alice veth lxcbr0 40",
        "#alice veth br9 9",
    ]
    assert un.own_entries(new, "alice") == [
        dict(name="alice", type="veth", bridge="br1", count=3),
        dict(name="alice", type="veth", bridge="br6", count=0),
    ]
    assert un.plan(desired(entries=[], exclusive=True), FILE) == [line for line in FILE if not un.owner_fields(line, "alice")]


def test_plan_group():
    new = un.plan(desired(name="@staff", bridge="lxcbr0", count=3), FILE)
    assert "@staff veth lxcbr0 3" in new and "@staff veth lxcbr0 1" not in new
    assert un.plan(desired(name="@staff", state="absent"), FILE) == [line for line in FILE if line != "@staff veth lxcbr0 1"]


def test_plan_absent():
    new = un.plan(desired(state="absent", bridge="lxcbr0"), FILE)
    assert "alice veth lxcbr0 2" not in new and "alice veth lxcbr0 7" not in new
    assert "alice\tveth\tbr1\t3" in new and "  alice veth lxcbr0 40" in new
    assert un.plan(desired(state="absent", entries=[dict(bridge="br1", count=None, type="veth")]), FILE) == [
        line for line in FILE if line != "alice\tveth\tbr1\t3"]
    everything = un.plan(desired(state="absent"), FILE)
    assert un.own_entries(everything, "alice") == []
    assert "  alice veth lxcbr0 40" in everything and "#alice veth br9 9" in everything
    assert un.plan(desired(state="absent", bridge="nothere"), FILE) == FILE


def test_plan_idempotent():
    for kwargs in (dict(bridge="lxcbr0", count=4), dict(entries=[dict(bridge="x", count=1, type="veth")], exclusive=True),
                   dict(state="absent"), dict(state="absent", bridge="br1")):
        once = un.plan(desired(**kwargs), FILE)
        assert un.plan(desired(**kwargs), once) == once


@pytest.mark.parametrize("change, message", [
    (dict(name=""), "name: '' is empty"),
    (dict(name="@"), "name: '@' is empty"),
    (dict(name="al ice", bridge="b", count=1), "name: 'al ice' is not a valid user name"),
    (dict(name="@st aff", bridge="b", count=1), "name: '@st aff' is not a valid group name"),
    (dict(name="-x", bridge="b", count=1), "name: '-x' is not a valid user name"),
    (dict(name="1234", bridge="b", count=1), "name: '1234' is not a valid user name"),
    (dict(name="a" * 33, bridge="b", count=1), "is not a valid user name"),
    (dict(name="#alice", bridge="b", count=1), "name: '#alice' is not a valid user name"),
    (dict(bridge="b"), "count: is required with state=present"),
    (dict(bridge="b", count=-1), "count: -1 is out of range"),
    (dict(bridge="b", count=2 ** 31), "count: 2147483648 is out of range"),
    (dict(bridge="a-name-much-too-long", count=1), "bridge: 'a-name-much-too-long' is too long"),
    (dict(bridge="br 0", count=1), "bridge: 'br 0' is not a valid interface name"),
    (dict(bridge="br/0", count=1), "bridge: 'br/0' is not a valid interface name"),
    (dict(bridge="", count=1), "bridge: is required"),
    (dict(bridge="b", count=1, type="macvlan"), "type: 'macvlan' is not supported"),
    (dict(count=1), "count: needs bridge"),
    (dict(), "bridge: one of bridge (with count) or entries is required"),
    (dict(entries=[dict(bridge="b", count=1, type="veth"), dict(bridge="b", count=2, type="veth")]),
     "entries[1].bridge: veth b is given twice"),
    (dict(entries=[dict(bridge="b", count=None, type="veth")]), "entries[0].count: is required with state=present"),
    (dict(entries=[dict(bridge="b b", count=1, type="veth")]), "entries[0].bridge: 'b b' is not a valid"),
    (dict(entries=[], bridge="b"), "entries: is mutually exclusive"),
    (dict(bridge="b", count=1, path="relative"), "path: 'relative' is not an absolute file path"),
    (dict(bridge="b", count=1, lock_timeout=-1), "lock_timeout: -1 must not be negative"),
])
def test_validate_errors(change, message):
    with pytest.raises(un.UsernetError, match=None) as info:
        desired(**change)
    assert message in str(info.value)


def test_validate_accepts():
    assert desired(name="@lxc-users", bridge="none", count=0)["entries"] == [UsernetEntry("@lxc-users", "veth", "none", 0)]
    assert desired(name="svc$", state="absent")["remove_all"] is True
    assert desired(name="Al.ice_1", state="absent", bridge="b")["remove_all"] is False
