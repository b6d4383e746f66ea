# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the subid module: the /etc/subuid parser, allocation, planning and errors."""

from __future__ import annotations

from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import (
    SubidEntry,
    idmap_lines,
    parse_subid,
    ranges_for,
    read_ranges,
    render_subid,
    shadow_range,
)

SAMPLE = (
    "# ranges for the fleet\n"
    "alice:100000:65536\n"
    "\n"
    "1001:165536:65536\n"
    "broken line\n"
    "bob:abc:65536\n"
    "carol:231072:65536:extra\n"
    "   \n"
    "alice:300000:1000\n"
    ":1:2\n"
    "dave:0x186a0:65536\n"
)


# --- parser -------------------------------------------------------------------------------------

def test_parse_items():
    lines = parse_subid(SAMPLE)
    assert lines == [
        "# ranges for the fleet",
        SubidEntry("alice", 100000, 65536),
        "",
        SubidEntry("1001", 165536, 65536),
        "broken line",
        "bob:abc:65536",
        "carol:231072:65536:extra",
        "   ",
        SubidEntry("alice", 300000, 1000),
        ":1:2",
        "dave:0x186a0:65536",
    ]


def test_round_trip_verbatim():
    assert render_subid(parse_subid(SAMPLE)) == SAMPLE


def test_round_trip_adds_final_newline_only():
    text = "alice:100000:65536\n# end"
    assert render_subid(parse_subid(text)) == text + "\n"


def test_empty_and_newline_only():
    assert parse_subid("") == []
    assert parse_subid("\n") == [""]
    assert render_subid(parse_subid("\n")) == "\n"


def test_carriage_return_kept_in_line():
    # Only "\n" ends a line; anything else stays part of the (then malformed) line.
    lines = parse_subid("alice:100000:65536\r\n")
    assert lines == ["alice:100000:65536\r"]
    assert render_subid(lines) == "alice:100000:65536\r\n"


def test_commented_entry_is_not_an_entry():
    assert parse_subid("#alice:100000:65536\n") == ["#alice:100000:65536"]


def test_non_canonical_numbers_are_kept_verbatim():
    for line in ("a:0100000:65536", "a: 100000:65536", "a:+5:1", "a:-5:1", "a:1:"):
        assert parse_subid(line + "\n") == [line]


def test_ranges_for_name_and_uid():
    lines = parse_subid(SAMPLE)
    assert ranges_for(lines, "alice", None) == [(100000, 65536), (300000, 1000)]
    assert ranges_for(lines, "alice", 1001) == [(100000, 65536), (165536, 65536), (300000, 1000)]
    assert ranges_for(lines, "nobody", None) == []
    assert ranges_for(lines, "bob", None) == []


def test_read_ranges(tmp_path):
    path = tmp_path / "subuid"
    path.write_text(SAMPLE)
    assert read_ranges(str(path), "alice", 1001) == [(100000, 65536), (165536, 65536), (300000, 1000)]
    assert read_ranges(str(tmp_path / "missing"), "alice", 1001) == []


def test_idmap_lines():
    assert idmap_lines((100000, 65536), (200000, 65536)) == ["u 0 100000 65536", "g 0 200000 65536"]
    assert idmap_lines((100000, 1000), (100000, 1000), container_start=5) == ["u 5 100000 1000", "g 5 100000 1000"]


def test_shadow_range_reads_what_shadow_reads():
    assert shadow_range(SubidEntry("a", 1, 2)) == ("a", 1, 2)
    assert shadow_range("dave:0x186a0:65536") == ("dave", 100000, 65536)
    assert shadow_range("e:0303240:010") == ("e", 100000, 8)
    assert shadow_range("f: 100000:65536") == ("f", 100000, 65536)
    assert shadow_range("bob:abc:65536") is None
    assert shadow_range("# c:1:2") is None
    assert shadow_range("") is None
