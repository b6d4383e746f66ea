# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hooks helper of the container module: validation and compilation to lxc.hook.<event> values."""

from __future__ import annotations

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._container import (
    CgroupLayout,
    HookEntries,
    OptionError,
    compile_all,
    plan_config,
    validate_hooks,
)

DIR = "/var/lib/lxc/t1"
SCRIPT = "#!/bin/sh\necho hi\n"
BASE = """lxc.uts.name = t1
lxc.hook.pre-start = /usr/share/lxc/hooks/other
lxc.hook.version = 0
"""


def edits(hooks, config=None, config_remove=None):
    result = compile_all({"hooks": hooks, "config": config, "config_remove": config_remove}, CgroupLayout())
    for edit in result:
        if isinstance(edit, HookEntries):
            edit.container_dir = DIR
    return result


def plan(hooks, text=BASE, **kwargs):
    return plan_config(text, edits(hooks, **kwargs))


def test_installed_script_is_added_after_the_keys_other_values():
    new, changed = plan([{"event": "pre-start", "name": "mark", "content": SCRIPT}])
    assert changed == ["lxc.hook.pre-start"]
    assert new == BASE.replace(
        "lxc.hook.pre-start = /usr/share/lxc/hooks/other\n",
        "lxc.hook.pre-start = /usr/share/lxc/hooks/other\nlxc.hook.pre-start = /var/lib/lxc/t1/hook-mark\n")


def test_second_run_changes_nothing():
    hooks = [{"event": "pre-start", "name": "mark", "content": SCRIPT},
             {"event": "post-stop", "path": "/usr/local/bin/after"}]
    first = plan(hooks)[0]
    again, changed = plan(hooks, text=first)
    assert again == first
    assert changed == []
    assert "lxc.hook.post-stop = /usr/local/bin/after\n" in first


def test_content_change_is_no_config_change():
    hooks = [{"event": "pre-start", "name": "mark", "content": SCRIPT}]
    first = plan(hooks)[0]
    hooks[0]["content"] = "#!/bin/sh\necho other\n"
    again, changed = plan(hooks, text=first)
    assert (again, changed) == (first, [])


def test_absent_removes_only_the_named_value():
    text = BASE + "lxc.hook.post-stop = /var/lib/lxc/t1/hook-mark\nlxc.hook.post-stop = /usr/bin/keep\n"
    new, changed = plan([{"name": "mark", "state": "absent"}], text=text)
    assert changed == ["lxc.hook.post-stop"]
    assert new == BASE + "lxc.hook.post-stop = /usr/bin/keep\n"


def test_absent_path_in_its_event_only():
    text = BASE + "lxc.hook.stop = /usr/bin/x\nlxc.hook.post-stop = /usr/bin/x\n"
    new = plan([{"event": "stop", "path": "/usr/bin/x", "state": "absent"}], text=text)[0]
    assert new == BASE + "lxc.hook.post-stop = /usr/bin/x\n"


def test_absent_path_without_event_in_every_event():
    text = BASE + "lxc.hook.stop = /usr/bin/x\nlxc.hook.post-stop = /usr/bin/x\n"
    new = plan([{"path": "/usr/bin/x", "state": "absent"}], text=text)[0]
    assert new == BASE


def test_event_change_of_an_installed_script_moves_its_reference():
    first = plan([{"event": "pre-start", "name": "mark", "content": SCRIPT}])[0]
    moved, changed = plan([{"event": "post-stop", "name": "mark", "content": SCRIPT}], text=first)
    assert changed == ["lxc.hook.post-stop", "lxc.hook.pre-start"]
    assert "hook-mark" not in moved.split("lxc.hook.post-stop")[0]
    assert moved.endswith("lxc.hook.post-stop = /var/lib/lxc/t1/hook-mark\n")
    assert "lxc.hook.pre-start = /usr/share/lxc/hooks/other\n" in moved


def test_hook_and_config_on_one_key_fails_naming_both():
    with pytest.raises(OptionError) as err:
        edits([{"event": "pre-start", "path": "/bin/true"}], config={"lxc.hook.pre-start": "/bin/false"})
    assert "config" in str(err.value) and "lxc.hook.pre-start" in str(err.value) and "hooks" in str(err.value)
    with pytest.raises(OptionError) as err:
        edits([{"event": "pre-start", "path": "/bin/true"}], config_remove=["lxc.hook.pre-start"])
    assert "config_remove" in str(err.value) and "hooks" in str(err.value)


def test_other_hook_keys_in_config_are_fine():
    edits([{"event": "pre-start", "path": "/bin/true"}], config={"lxc.hook.post-stop": "/bin/false", "lxc.hook.version": 1})


@pytest.mark.parametrize(
    "hook, message",
    [
        ({"event": "pre-boot", "path": "/bin/true"}, "hooks[0].event: 'pre-boot' is not one of pre-start"),
        ({"path": "/bin/true"}, "hooks[0].event is required"),
        ({"event": "pre-start"}, "hooks[0]: give content (a script to install) or path"),
        ({"event": "pre-start", "name": "a", "content": SCRIPT, "path": "/bin/true"}, "hooks[0]: content and path are mutually exclusive"),
        ({"event": "pre-start", "path": "bin/true"}, "hooks[0].path: 'bin/true' is not an absolute path"),
        ({"event": "pre-start", "path": "/bin/true --flag"}, "hooks[0].path: '/bin/true --flag' must be one absolute path"),
        ({"event": "pre-start", "path": "/bin/$(reboot)"}, "must be one absolute path"),
        ({"event": "pre-start", "path": "/usr/../bin/x"}, "must be one absolute path"),
        ({"event": "pre-start", "content": SCRIPT}, "hooks[0].name is required with content"),
        ({"event": "pre-start", "name": "a/b", "content": SCRIPT}, "hooks[0].name: 'a/b' is not a file name"),
        ({"event": "pre-start", "name": "..", "content": SCRIPT}, "is not a file name"),
        ({"event": "pre-start", "name": "a b", "content": SCRIPT}, "is not a file name"),
        ({"event": "pre-start", "name": "a", "content": "echo hi\n"}, "hooks[0].content must start with an interpreter line"),
        ({"event": "start", "name": "a", "content": SCRIPT}, "hooks[0]: a start hook runs inside the container"),
        ({"state": "absent"}, "hooks[0]: an absent hook needs name"),
        ({"event": "pre-start", "path": "/bin/true", "state": "gone"}, "hooks[0].state"),
    ],
)
def test_bad_hooks_are_refused_naming_the_entry(hook, message):
    with pytest.raises(OptionError) as err:
        validate_hooks([hook])
    assert message in str(err.value)


def test_names_are_unique():
    with pytest.raises(OptionError) as err:
        validate_hooks([{"event": "pre-start", "name": "a", "content": SCRIPT},
                        {"event": "post-stop", "name": "a", "content": SCRIPT}])
    assert "hooks[1].name: a is also the name of hooks[0]" in str(err.value)


def test_same_path_twice_for_one_event_is_refused():
    with pytest.raises(OptionError) as err:
        validate_hooks([{"event": "stop", "path": "/bin/true"}, {"event": "stop", "path": "/bin/true"}])
    assert "hooks[1].path" in str(err.value)
    validate_hooks([{"event": "stop", "path": "/bin/true"}, {"event": "post-stop", "path": "/bin/true"}])


def test_start_hook_takes_a_path_inside_the_container():
    specs = validate_hooks([{"event": "start", "path": "/usr/local/bin/inside"}])
    assert specs[0].value(DIR) == "/usr/local/bin/inside"
    assert not specs[0].installed


def test_every_lxc_5_event_is_accepted():
    for event in ("pre-start", "pre-mount", "mount", "autodev", "start-host", "start", "stop", "post-stop",
                  "clone", "destroy"):
        validate_hooks([{"event": event, "path": "/bin/true"}])
