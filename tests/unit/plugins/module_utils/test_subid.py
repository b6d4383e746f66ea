# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the subid module: the /etc/subuid parser, allocation, planning and errors."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import namedtuple

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils import _subid
from ansible_collections.lxcfleet.lxc.plugins.module_utils._locks import LockTimeout
from ansible_collections.lxcfleet.lxc.plugins.module_utils._subid import (
    DEFAULT_LIMITS,
    SubidEntry,
    SubidError,
    bounds,
    first_free,
    idmap_for,
    idmap_lines,
    parse_login_defs,
    plan,
    validate_params,
    parse_subid,
    ranges_for,
    read_ranges,
    render_subid,
    shadow_locks,
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


# --- login.defs and validation --------------------------------------------------------------------

Pw = namedtuple("Pw", "pw_name pw_uid")
USERS = {"alice": Pw("alice", 1001), "bob": Pw("bob", 1002)}


def getpwnam(name):
    return USERS[name]


def getpwuid(uid):
    for entry in USERS.values():
        if entry.pw_uid == uid:
            return entry
    raise KeyError(uid)


def params(**kwargs):
    base = dict(name="alice", state="present", count=65536, start=None, base=100000, files="both", exclusive=False,
                subuid_path="/x/subuid", subgid_path="/x/subgid", lock_timeout=30.0)
    base.update(kwargs)
    return base


def desired(**kwargs):
    return validate_params(params(**kwargs), getpwnam=getpwnam, getpwuid=getpwuid)


def run_plan(uid_text, gid_text, limits=None, **kwargs):
    want = desired(**kwargs)
    texts = {"subuid": uid_text, "subgid": gid_text}
    return plan(want, {k: texts[k] for k in want["files"]}, limits or DEFAULT_LIMITS)


def test_login_defs():
    text = "# comment\nUID_MAX\t\t\t 70000\nGID_MAX 0x11170\nSUB_UID_MAX 1000000000\nUID_MIN 1000\nSUB_GID_MAX\n"
    limits = parse_login_defs(text)
    assert limits == {"UID_MAX": 70000, "GID_MAX": 70000, "SUB_UID_MAX": 1000000000, "SUB_GID_MAX": 600100000}
    lim = bounds(limits)
    assert lim["subuid"]["low"] == 70001 and lim["subuid"]["high"] == 1000000000
    assert bounds(DEFAULT_LIMITS)["subgid"]["low"] == 65536


@pytest.mark.parametrize("kwargs, message", [
    (dict(name=""), "^name must not be empty"),
    (dict(name="al:ice"), "^name 'al:ice' is not a valid user name"),
    (dict(name="nosuchuser"), "^name: user nosuchuser does not exist"),
    (dict(name="4294967295"), "^name 4294967295 is not a valid uid"),
    (dict(count=0), "^count must be 1 or more"),
    (dict(start=-1), "^start must be 0 or more"),
    (dict(start=4294967200), "^start 4294967200 with count 65536 ends after"),
    (dict(base=-5), "^base must be 0 or more"),
    (dict(lock_timeout=-1), "^lock_timeout must be 0 or more"),
    (dict(subuid_path=""), "^subuid_path must not be empty"),
    (dict(subgid_path="/x/subuid"), "^subgid_path must differ"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(SubidError, match=message):
        desired(**kwargs)


def test_numeric_name():
    want = desired(name="1001")
    assert (want["name"], want["user"], want["uid"]) == ("1001", "alice", 1001)
    want = desired(name="5000")
    assert (want["name"], want["user"], want["uid"]) == ("5000", "5000", 5000)


# --- allocation -----------------------------------------------------------------------------------

def test_first_free():
    assert first_free([], 100000, 600100000, 65536) == 100000
    assert first_free([(100000, 65536)], 100000, 600100000, 65536) == 165536
    # A gap that is too small is skipped, one that is large enough is used.
    taken = [(100000, 1000), (101001, 10), (300000, 5)]
    assert first_free(taken, 100000, 600100000, 65536) == 101011
    assert first_free(taken, 100000, 600100000, 100) == 101011
    assert first_free(taken, 100000, 600100000, 1) == 101000
    # Ranges below the base do not matter, one that spans the base does.
    assert first_free([(0, 100500)], 100000, 600100000, 10) == 100500
    # The upper bound is the last usable id.
    assert first_free([], 100, 199, 100) == 100
    assert first_free([], 100, 198, 100) is None
    assert first_free([(0, 0)], 100, 199, 100) == 100


def test_allocate_empty_files():
    result = run_plan(None, None)
    assert result["subuid"]["after"] == "alice:100000:65536\n"
    assert result["subgid"]["after"] == "alice:100000:65536\n"
    assert result["subuid"]["changed"] and result["subuid"]["before"] is None
    assert result["subuid"]["ranges"] == [(100000, 65536)]


def test_allocate_keeps_every_line_and_appends():
    # alice has a range already; bob only a malformed line, so he gets the first gap that fits.
    assert not run_plan(SAMPLE, "")["subuid"]["changed"]
    result = run_plan(SAMPLE, "", name="bob")
    assert result["subuid"]["after"] == SAMPLE + "bob:231072:65536\n"


def test_allocate_symmetric_over_both_files():
    # 100000 is taken in subuid, 165536 in subgid: the first start free in both is 231072.
    result = run_plan("bob:100000:65536\n", "bob:165536:65536\n")
    assert result["subuid"]["ranges"] == [(231072, 65536)]
    assert result["subgid"]["ranges"] == [(231072, 65536)]


def test_allocate_avoids_ranges_shadow_reads_from_odd_lines():
    result = run_plan("dave:0x186a0:65536\n", "")
    assert result["subuid"]["ranges"] == [(165536, 65536)]


def test_allocate_base():
    result = run_plan("bob:500000:65536\n", "", base=500000)
    assert result["subuid"]["ranges"] == [(565536, 65536)]


def test_allocate_base_raised_above_login_defs():
    limits = dict(DEFAULT_LIMITS, UID_MAX=200000, GID_MAX=150000)
    result = run_plan("", "", limits=limits, base=1000)
    assert result["subuid"]["ranges"] == [(200001, 65536)]
    assert result["subgid"]["ranges"] == [(200001, 65536)]
    result = run_plan("", "", limits=limits, base=1000, files="subgid")
    assert result["subgid"]["ranges"] == [(150001, 65536)]


def test_allocate_respects_sub_max():
    limits = dict(DEFAULT_LIMITS, SUB_UID_MAX=165535)
    result = run_plan("", "", limits=limits)
    assert result["subuid"]["ranges"] == [(100000, 65536)]
    with pytest.raises(SubidError, match="^base: no free range of 65536 ids in /x/subuid between 100000 and SUB_UID_MAX 165535"):
        run_plan("bob:100000:1\n", "", limits=limits)


def test_allocate_falls_back_to_separate_when_no_common_start():
    limits = dict(DEFAULT_LIMITS, SUB_UID_MAX=165535, SUB_GID_MAX=231071)
    result = run_plan("", "bob:100000:65536\n", limits=limits)
    assert result["subuid"]["ranges"] == [(100000, 65536)]
    assert result["subgid"]["ranges"] == [(165536, 65536)]


def test_second_file_follows_the_first():
    # The uid range exists; the gid range goes to the same start when it is free there.
    result = run_plan("alice:300000:65536\n", "bob:100000:65536\n")
    assert not result["subuid"]["changed"]
    assert result["subgid"]["ranges"] == [(300000, 65536)]
    # Not free there: the first free gid range.
    result = run_plan("alice:300000:65536\n", "bob:300000:10\n")
    assert result["subgid"]["ranges"] == [(100000, 65536)]


def test_present_satisfied_by_a_larger_range_by_name_or_uid():
    result = run_plan("1001:100000:131072\n", "alice:400000:65536\n")
    assert not result["subuid"]["changed"] and not result["subgid"]["changed"]
    assert result["subuid"]["ranges"] == [(100000, 131072)]
    assert idmap_for(desired(), {k: result[k]["ranges"] for k in result}) == ["u 0 100000 65536", "g 0 400000 65536"]


def test_too_small_range_gets_a_new_one_next_to_it():
    result = run_plan("alice:100000:1000\n", "alice:100000:1000\n")
    assert result["subuid"]["ranges"] == [(100000, 1000), (101000, 65536)]
    assert idmap_for(desired(), {k: result[k]["ranges"] for k in result}) == ["u 0 101000 65536", "g 0 101000 65536"]


def test_exclusive_reuses_freed_space_and_keeps_others():
    text = "# keep\nalice:100000:1000\nbob:200000:65536\nalice:500000:5\n"
    result = run_plan(text, text, exclusive=True)
    assert result["subuid"]["after"] == "# keep\nbob:200000:65536\nalice:100000:65536\n"
    assert result["subgid"]["ranges"] == [(100000, 65536)]


def test_exclusive_keeps_the_satisfying_range():
    text = "alice:100000:10\nalice:300000:65536\n"
    result = run_plan(text, text, exclusive=True)
    assert result["subuid"]["after"] == "alice:300000:65536\n"


# --- explicit start -------------------------------------------------------------------------------

def test_explicit_start():
    result = run_plan("bob:100000:65536\n", "", start=1000000)
    assert result["subuid"]["after"] == "bob:100000:65536\nalice:1000000:65536\n"
    assert result["subgid"]["after"] == "alice:1000000:65536\n"


def test_explicit_start_already_there_is_no_change():
    result = run_plan("alice:1000000:65536\n", "alice:1000000:70000\n", start=1000000)
    assert not result["subuid"]["changed"] and not result["subgid"]["changed"]


def test_explicit_start_replaces_own_overlapping_range():
    result = run_plan("alice:1000000:1000\nalice:100000:65536\n", "", start=1000000)
    assert result["subuid"]["after"] == "alice:100000:65536\nalice:1000000:65536\n"


def test_explicit_start_conflict_names_start_and_line():
    with pytest.raises(SubidError, match=r"^start 1000000 \(count 65536\) overlaps another entry of /x/subgid: 'bob:1060000:10'"):
        run_plan("", "# c\nbob:1060000:10\n", start=1000000)


@pytest.mark.parametrize("start, limits, message", [
    (60000, DEFAULT_LIMITS, r"^start 60000 is below 65536 \(the 16-bit id range\)"),
    (65536, dict(DEFAULT_LIMITS, UID_MAX=70000), r"^start 65536 is below 70001 \(UID_MAX \+ 1 from /etc/login.defs\)"),
    (600100000, DEFAULT_LIMITS, r"^start 600100000 with count 65536 ends at 600165535, above SUB_UID_MAX 600100000"),
])
def test_explicit_start_bounds(start, limits, message):
    with pytest.raises(SubidError, match=message):
        run_plan("", "", limits=limits, start=start)


# --- absent ---------------------------------------------------------------------------------------

def test_absent_removes_all_own_ranges_only():
    text = "# c\nalice:100000:65536\nbob:165536:65536\n1001:300000:10\n"
    result = run_plan(text, text, state="absent")
    assert result["subuid"]["after"] == "# c\nbob:165536:65536\n"
    assert result["subuid"]["ranges"] == []
    assert idmap_for(desired(state="absent"), {k: result[k]["ranges"] for k in result}) == []


def test_absent_with_start_and_one_file():
    text = "alice:100000:65536\nalice:300000:10\n"
    result = run_plan(text, None, state="absent", start=300000, files="subuid")
    assert result["subuid"]["after"] == "alice:100000:65536\n"
    assert "subgid" not in result


def test_absent_nothing_to_do():
    result = run_plan(None, "bob:1:2\n", state="absent")
    assert not result["subuid"]["changed"] and result["subuid"]["after"] is None
    assert not result["subgid"]["changed"]


def test_explicit_start_conflicts_with_a_line_shadow_reads():
    with pytest.raises(SubidError, match=r"^start 100000 \(count 65536\) overlaps another entry of /x/subuid: 'dave:0x186a0:10'"):
        run_plan("dave:0x186a0:10\n", "", start=100000)


def test_own_entry_by_uid_is_replaced_not_a_conflict():
    result = run_plan("1001:1000000:10\n", "", start=1000000)
    assert result["subuid"]["after"] == "alice:1000000:65536\n"


# --- locks (on files in a temporary folder) --------------------------------------------------------

def test_link_lock_takes_over_a_stale_lock(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = str(tmp_path / "subuid")
    (tmp_path / "subuid.lock").write_text(str(dead.pid))
    started = time.monotonic()
    with shadow_locks([path], 5, pwd_lock=str(tmp_path / ".pwd.lock")):
        assert (tmp_path / "subuid.lock").read_text() == str(os.getpid())
        assert not (tmp_path / ("subuid.%d" % os.getpid())).exists()
    assert time.monotonic() - started < 2
    assert not (tmp_path / "subuid.lock").exists()


def test_link_lock_waits_for_a_live_holder_then_times_out(tmp_path):
    path = str(tmp_path / "subgid")
    (tmp_path / "subgid.lock").write_text(str(os.getppid()))
    with pytest.raises(LockTimeout, match="is held by process %d" % os.getppid()):
        with shadow_locks([str(tmp_path / "subuid"), path], 0.2, pwd_lock=str(tmp_path / ".pwd.lock")):
            pass
    # The lock it got is released, the other one is untouched.
    assert not (tmp_path / "subuid.lock").exists()
    assert (tmp_path / "subgid.lock").read_text() == str(os.getppid())


# --- run() with a stand-in module (files in a temporary folder) -----------------------------------

class FakeModule:
    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self._diff = True
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)

    def atomic_move(self, src, dest):
        os.rename(src, dest)


@contextlib.contextmanager
def _no_locks(paths, timeout):
    yield


def test_run_writes_file_and_backup(tmp_path, monkeypatch):
    monkeypatch.setattr(_subid, "shadow_locks", _no_locks)
    (tmp_path / "subuid").write_text("# c\nbob:100000:65536\n")
    os.chmod(tmp_path / "subuid", 0o640)
    want = desired(subuid_path=str(tmp_path / "subuid"), subgid_path=str(tmp_path / "subgid"))
    result = _subid.run(FakeModule(), want)
    assert result["changed"] and result["subuid"] == [{"start": 165536, "count": 65536}]
    assert result["idmap"] == ["u 0 165536 65536", "g 0 165536 65536"]
    assert (tmp_path / "subuid").read_text() == "# c\nbob:100000:65536\nalice:165536:65536\n"
    assert (tmp_path / "subuid-").read_text() == "# c\nbob:100000:65536\n"
    assert os.stat(tmp_path / "subuid-").st_mode & 0o777 == 0o640
    assert (tmp_path / "subgid").read_text() == "alice:165536:65536\n"
    assert not (tmp_path / "subgid-").exists()
    assert [d["before_header"] for d in result["diff"]] == [str(tmp_path / "subuid"), str(tmp_path / "subgid")]
    again = _subid.run(FakeModule(), want)
    assert not again["changed"] and again["diff"][0]["before"] == again["diff"][0]["after"]


def test_check_mode_without_permission_for_the_locks_reads_and_warns(tmp_path, monkeypatch):
    def denied(paths, timeout):
        raise PermissionError(13, "Permission denied", "/etc/.pwd.lock")

    monkeypatch.setattr(_subid, "shadow_locks", denied)
    (tmp_path / "subuid").write_text("bob:100000:65536\n")
    want = desired(subuid_path=str(tmp_path / "subuid"), subgid_path=str(tmp_path / "subgid"))
    module = FakeModule(check_mode=True)
    result = _subid.run(module, want)
    assert result["changed"] and result["subuid"] == [{"start": 165536, "count": 65536}]
    assert module.warnings and "without the locks" in module.warnings[0]
    assert (tmp_path / "subuid").read_text() == "bob:100000:65536\n"
    with pytest.raises(AssertionError, match="Permission denied"):
        _subid.run(FakeModule(), want)
