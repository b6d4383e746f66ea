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


@pytest.mark.parametrize("user, groups, nic_type, link, expected", [
    ("alice", [], "veth", "br0", 2),                  # user line only
    ("alice", ["staff"], "veth", "br0", 3),           # user + group line: largest single line
    ("carol", ["staff"], "veth", "br0", 3),           # group line only
    ("carol", ["other", "staff"], "veth", "br0", 50),
    ("alice", ["staff"], "veth", "br1", 7),           # other link
    ("alice", [], "macvlan", "br0", 9),               # other type, asked for
    ("alice", [], "veth", "br9", 0),                  # nothing for that link
    ("nobody", [], "veth", "br0", 0),
    ("staff", [], "veth", "br0", 0),                  # a group line is not a user line
    ("bob", [], "veth", "br0", 1),
])
def test_allowance(user, groups, nic_type, link, expected):
    assert un.allowance(LINES, user, groups, nic_type, link) == expected


def test_allowance_several_lines_of_one_user():
    lines = un.parse_usernet("u veth br0 1\nu veth br0 1\n")
    assert un.allotted(lines, "u", [], "veth", "br0") == 2
    # lxc-user-nic checks each line's count on its own against the nics in its database.
    assert un.allowance(lines, "u", [], "veth", "br0") == 1


def test_allowance_needs_a_positive_sum():
    lines = un.parse_usernet("u veth br0 3\n@g veth br0 -5\n")
    assert un.allotted(lines, "u", ["g"], "veth", "br0") == -2
    assert un.allowance(lines, "u", ["g"], "veth", "br0") == 0
    assert un.allowance(lines, "u", [], "veth", "br0") == 3
    assert un.allowance(un.parse_usernet("u veth br0 0\n"), "u", [], "veth", "br0") == 0


def test_allowance_reads_raw_lines_like_lxc_user_nic():
    lines = ["u veth br0 2 # two", "  u veth br0 40", "u veth br0"]
    assert un.allowance(lines, "u", [], "veth", "br0") == 2


def test_read_allowance(tmp_path):
    path = tmp_path / "lxc-usernet"
    assert un.read_allowance(str(path), "u", [], "veth", "br0") == 0
    path.write_text("# x\nu veth br0 4\n@g veth br0 6\n")
    assert un.read_allowance(str(path), "u", [], "veth", "br0") == 4
    assert un.read_allowance(str(path), "u", ["g"], "veth", "br0") == 6
    assert un.read_allowance(str(path), "v", [], "veth", "br0") == 0
