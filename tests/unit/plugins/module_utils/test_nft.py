# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

from ansible_collections.lxcfleet.lxc.plugins.module_utils._nft import (
    NatError,
    build_model,
    model_from_json,
    render_table,
    rule_text,
    same,
    summary,
    transaction,
    validate,
)

# Captured with nftables 1.0.6 (Debian 12): `nft -j list table inet lftzz00nat` after the module wrote
# the table for PARAMS below.
CAPTURED = {
    "nftables": [
        {
            "metainfo": {
                "version": "1.0.6",
                "release_name": "Lester Gooch #5",
                "json_schema_version": 1
            }
        },
        {
            "table": {
                "family": "inet",
                "name": "lftzz00nat",
                "handle": 3
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lftzz00nat",
                "name": "prerouting",
                "handle": 1,
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
                "policy": "accept"
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lftzz00nat",
                "name": "output",
                "handle": 2,
                "type": "nat",
                "hook": "output",
                "prio": -100,
                "policy": "accept"
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lftzz00nat",
                "name": "postrouting",
                "handle": 3,
                "type": "nat",
                "hook": "postrouting",
                "prio": 100,
                "policy": "accept"
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lftzz00nat",
                "name": "forward",
                "handle": 4,
                "type": "filter",
                "hook": "forward",
                "prio": 0,
                "policy": "accept"
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "prerouting",
                "handle": 5,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "fib": {
                                    "result": "type",
                                    "flags": [
                                        "daddr"
                                    ]
                                }
                            },
                            "right": "local"
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "tcp",
                                    "field": "dport"
                                }
                            },
                            "right": 8080
                        }
                    },
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": "10.0.3.100",
                            "port": 80
                        }
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "prerouting",
                "handle": 6,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "daddr"
                                }
                            },
                            "right": "192.0.2.1"
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "udp",
                                    "field": "dport"
                                }
                            },
                            "right": {
                                "range": [
                                    8000,
                                    8010
                                ]
                            }
                        }
                    },
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": "10.0.3.101"
                        }
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "output",
                "handle": 7,
                "expr": [
                    {
                        "match": {
                            "op": "!=",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "daddr"
                                }
                            },
                            "right": {
                                "prefix": {
                                    "addr": "127.0.0.0",
                                    "len": 8
                                }
                            }
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "fib": {
                                    "result": "type",
                                    "flags": [
                                        "daddr"
                                    ]
                                }
                            },
                            "right": "local"
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "tcp",
                                    "field": "dport"
                                }
                            },
                            "right": 8080
                        }
                    },
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": "10.0.3.100",
                            "port": 80
                        }
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "output",
                "handle": 8,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "daddr"
                                }
                            },
                            "right": "192.0.2.1"
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "udp",
                                    "field": "dport"
                                }
                            },
                            "right": {
                                "range": [
                                    8000,
                                    8010
                                ]
                            }
                        }
                    },
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": "10.0.3.101"
                        }
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "postrouting",
                "handle": 9,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "saddr"
                                }
                            },
                            "right": {
                                "prefix": {
                                    "addr": "10.0.3.0",
                                    "len": 24
                                }
                            }
                        }
                    },
                    {
                        "match": {
                            "op": "!=",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "daddr"
                                }
                            },
                            "right": {
                                "prefix": {
                                    "addr": "10.0.3.0",
                                    "len": 24
                                }
                            }
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "meta": {
                                    "key": "oifname"
                                }
                            },
                            "right": "eth0"
                        }
                    },
                    {
                        "masquerade": None
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "postrouting",
                "handle": 10,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "saddr"
                                }
                            },
                            "right": {
                                "prefix": {
                                    "addr": "10.0.3.0",
                                    "len": 24
                                }
                            }
                        }
                    },
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "payload": {
                                    "protocol": "ip",
                                    "field": "daddr"
                                }
                            },
                            "right": {
                                "prefix": {
                                    "addr": "10.0.3.0",
                                    "len": 24
                                }
                            }
                        }
                    },
                    {
                        "match": {
                            "op": "in",
                            "left": {
                                "ct": {
                                    "key": "status"
                                }
                            },
                            "right": "dnat"
                        }
                    },
                    {
                        "masquerade": None
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "forward",
                "handle": 11,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "meta": {
                                    "key": "iifname"
                                }
                            },
                            "right": "lxcbr0"
                        }
                    },
                    {
                        "accept": None
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "forward",
                "handle": 12,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {
                                "meta": {
                                    "key": "oifname"
                                }
                            },
                            "right": "lxcbr0"
                        }
                    },
                    {
                        "match": {
                            "op": "in",
                            "left": {
                                "ct": {
                                    "key": "state"
                                }
                            },
                            "right": [
                                "established",
                                "related"
                            ]
                        }
                    },
                    {
                        "accept": None
                    }
                ]
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lftzz00nat",
                "chain": "forward",
                "handle": 13,
                "expr": [
                    {
                        "match": {
                            "op": "in",
                            "left": {
                                "ct": {
                                    "key": "status"
                                }
                            },
                            "right": "dnat"
                        }
                    },
                    {
                        "accept": None
                    }
                ]
            }
        }
    ]
}


PARAMS = {
    "table": "lftzz00nat",
    "netns": "lftzz00ns",
    "masquerade": [{"source": "10.0.3.0/24", "out_interface": "eth0"}],
    "forward_bridges": ["lxcbr0"],
    "port_forwards": [
        {"proto": "tcp", "port": 8080, "dest": "10.0.3.100", "dest_port": 80},
        {"proto": "udp", "port": "8000-8010", "host_address": "192.0.2.1", "dest": "10.0.3.101"},
    ],
}


def params(**changes):
    p = copy.deepcopy(PARAMS)
    p.update(changes)
    return p


def fwd(**kw):
    base = {"proto": "tcp", "port": 8080, "host_address": None, "dest": "10.0.3.100", "dest_port": None}
    base.update(kw)
    return base


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("changes, expect", [
    ({"table": "bad name"}, "table: "),
    ({"table": "1abc"}, "table: "),
    ({"table": ""}, "table: "),
    ({"netns": "../x"}, "netns: "),
    ({"masquerade": [{"source": "10.0.3.0/33"}]}, "masquerade[0].source: "),
    ({"masquerade": [{"source": "10.0.3.1/24"}]}, "masquerade[0].source: 10.0.3.1/24 has host bits set; the network is 10.0.3.0/24"),
    ({"masquerade": [{"source": "nonsense"}]}, "masquerade[0].source: "),
    ({"masquerade": [{"source": "10.0.3.0/24"}, {"source": "10.0.3.0/24"}]}, "masquerade[1].source: 10.0.3.0/24 is already given"),
    ({"masquerade": [{"source": "10.0.3.0/24", "out_interface": 'x" accept'}]}, "masquerade[0].out_interface: "),
    ({"masquerade": [{"source": "10.0.3.0/24", "out_interface": "a" * 16}]}, "masquerade[0].out_interface: "),
    ({"forward_bridges": ["br0", "br0"]}, "forward_bridges[1]: br0 is listed twice"),
    ({"forward_bridges": ["br;0"]}, "forward_bridges[0]: "),
    ({"port_forwards": [fwd(port=0)]}, "port_forwards[0].port: port 0 is out of range"),
    ({"port_forwards": [fwd(port=65536)]}, "port_forwards[0].port: port 65536 is out of range"),
    ({"port_forwards": [fwd(port="8010-8000")]}, "port_forwards[0].port: range 8010-8000 is empty"),
    ({"port_forwards": [fwd(port="80-90-100")]}, "port_forwards[0].port: "),
    ({"port_forwards": [fwd(port="http")]}, "port_forwards[0].port: "),
    ({"port_forwards": [fwd(port=True)]}, "port_forwards[0].port: "),
    ({"port_forwards": [fwd(proto="sctp")]}, "port_forwards[0].proto: "),
    ({"port_forwards": [fwd(dest="10.0.4.1")]}, "port_forwards[0].dest: 10.0.4.1 is not inside a managed network"),
    ({"port_forwards": [fwd(dest="10.0.3.300")]}, "port_forwards[0].dest: "),
    ({"port_forwards": [fwd(host_address="127.0.0.1")]}, "port_forwards[0].host_address: 127.0.0.1 is a loopback"),
    ({"port_forwards": [fwd(host_address="::1")]}, "port_forwards[0].host_address: "),
    ({"port_forwards": [fwd(dest_port=0)]}, "port_forwards[0].dest_port: port 0 is out of range"),
    ({"port_forwards": [fwd(port="80-81", dest_port=80)]}, "port_forwards[0].dest_port: not allowed with the port range"),
    ({"port_forwards": [fwd(), fwd(dest="10.0.3.5")]}, "port_forwards[1].port: tcp 8080 overlaps port_forwards[0]"),
    ({"port_forwards": [fwd(port="8000-8100"), fwd(port=8080, host_address="192.0.2.1")]}, "port_forwards[1].port: "),
    ({"masquerade": [], "port_forwards": [fwd()]},
     "port_forwards[0].dest: 10.0.3.100 is not inside a managed network (masquerade sources: none)"),
])
def test_validate_errors_name_the_option(changes, expect):
    with pytest.raises(NatError) as exc:
        validate(params(**changes))
    assert str(exc.value).startswith(expect)


@pytest.mark.parametrize("forwards", [
    [fwd(), fwd(proto="udp")],
    [fwd(), fwd(port=8081)],
    [fwd(host_address="192.0.2.1"), fwd(host_address="192.0.2.2")],
    [fwd(port="8000-8079"), fwd(port="8081-8090")],
])
def test_validate_accepts_non_overlapping(forwards):
    assert len(validate(params(port_forwards=forwards))["port_forwards"]) == 2


def test_validate_normalises_and_sorts():
    spec = validate(params(
        masquerade=[{"source": "10.0.4.0/24"}, {"source": " 10.0.3.0/24"}],
        forward_bridges=["zz", "aa"],
        port_forwards=[fwd(port="9000"), fwd(port=" 22-22 ", dest="10.0.4.2"), fwd(proto="udp", port=53)],
    ))
    assert [str(m["source"]) for m in spec["masquerade"]] == ["10.0.3.0/24", "10.0.4.0/24"]
    assert spec["forward_bridges"] == ["aa", "zz"]
    rules = summary(spec)["port_forwards"]
    assert [(r["proto"], r["port"]) for r in rules] == [("tcp", "22"), ("tcp", "9000"), ("udp", "53")]


# ------------------------------------------------------------------ rendering

EXPECTED_TEXT = """table inet lftzz00nat {
\tchain prerouting {
\t\ttype nat hook prerouting priority -100; policy accept;
\t\tfib daddr type local tcp dport 8080 dnat ip to 10.0.3.100:80
\t\tip daddr 192.0.2.1 udp dport 8000-8010 dnat ip to 10.0.3.101
\t}

\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat ip to 10.0.3.100:80
\t\tip daddr 192.0.2.1 udp dport 8000-8010 dnat ip to 10.0.3.101
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 oifname "eth0" masquerade
\t\tip saddr 10.0.3.0/24 ip daddr 10.0.3.0/24 ct status dnat masquerade
\t}

\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t\tiifname "lxcbr0" accept
\t\toifname "lxcbr0" ct state established,related accept
\t\tct status dnat accept
\t}
}
"""


def test_render_fixed_text():
    assert render_table("lftzz00nat", build_model(validate(PARAMS))) == EXPECTED_TEXT


def test_render_order_does_not_depend_on_input_order():
    shuffled = params(port_forwards=list(reversed(PARAMS["port_forwards"])))
    assert render_table("t", build_model(validate(shuffled))) == render_table("t", build_model(validate(PARAMS)))


def test_no_hairpin_without_forwards_into_the_network():
    model = build_model(validate(params(port_forwards=[])))
    assert model["postrouting"]["rules"] == ['ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 oifname "eth0" masquerade']
    assert model["forward"]["rules"] == ['iifname "lxcbr0" accept', 'oifname "lxcbr0" ct state established,related accept']
    assert model["prerouting"]["rules"] == [] and model["output"]["rules"] == []


def test_transaction_is_create_delete_recreate():
    text = transaction("t", build_model(validate(PARAMS)))
    lines = text.splitlines()
    assert lines[0] == "table inet t {}"
    assert lines[1] == "delete table inet t"
    assert lines[2] == "table inet t {"


def test_render_absent_is_empty():
    assert render_table("t", None) == ""


# ------------------------------------------------------------------ reading the live table

def test_captured_json_equals_desired_model():
    live = model_from_json(CAPTURED, "lftzz00nat")
    assert same(live, build_model(validate(PARAMS)))
    assert render_table("lftzz00nat", live) == EXPECTED_TEXT


def test_other_table_in_json_is_not_ours():
    assert model_from_json(CAPTURED, "other") is None


def test_changed_rule_is_detected():
    data = copy.deepcopy(CAPTURED)
    for obj in data["nftables"]:
        rule = obj.get("rule")
        if rule and rule["chain"] == "prerouting":
            for expr in rule["expr"]:
                if "dnat" in expr and expr["dnat"].get("port") == 80:
                    expr["dnat"]["port"] = 81
    live = model_from_json(data, "lftzz00nat")
    desired = build_model(validate(PARAMS))
    assert not same(live, desired)
    assert live["prerouting"]["rules"][0].endswith("10.0.3.100:81")
    assert live["output"] == desired["output"]


def test_unknown_expression_and_foreign_objects_make_the_table_differ():
    data = copy.deepcopy(CAPTURED)
    data["nftables"].append({"rule": {"family": "inet", "table": "lftzz00nat", "chain": "forward", "handle": 99,
                                      "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}})
    live = model_from_json(data, "lftzz00nat")
    assert live["forward"]["rules"][-1].startswith("# not written by this module")
    assert not same(live, build_model(validate(PARAMS)))
    data = copy.deepcopy(CAPTURED)
    data["nftables"].append({"set": {"family": "inet", "table": "lftzz00nat", "name": "s", "type": "ipv4_addr"}})
    live = model_from_json(data, "lftzz00nat")
    assert "" in live and not same(live, build_model(validate(PARAMS)))
    assert "not written by this module: set s" in render_table("lftzz00nat", live)


def test_extra_chain_makes_the_table_differ():
    data = copy.deepcopy(CAPTURED)
    data["nftables"].append({"chain": {"family": "inet", "table": "lftzz00nat", "name": "mine", "handle": 50}})
    assert not same(model_from_json(data, "lftzz00nat"), build_model(validate(PARAMS)))


@pytest.mark.parametrize("exprs, text", [
    ([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br0"}}, {"accept": None}], 'iifname "br0" accept'),
    ([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "related"]}}}, {"accept": None}],
     "ct state established,related accept"),
    ([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": 'a" b'}}, {"accept": None}], "# not written"),
    ([{"match": {"op": "<", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 5}}], "# not written"),
    ([{"drop": None}], "drop"),
])
def test_rule_text(exprs, text):
    assert rule_text(exprs).startswith(text)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_rendered_transaction_passes_nft_check():
    """nft -c parses the file and asks the kernel to check it, without applying anything."""
    res = subprocess.run(["nft", "-c", "-f", "-"], input=transaction("lftunitchk", build_model(validate(PARAMS))),
                         capture_output=True, text=True, check=False)
    if res.returncode != 0 and "Operation not permitted" in res.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert res.returncode == 0, res.stderr
    assert json.dumps(CAPTURED)
