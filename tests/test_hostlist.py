"""Pure table tests of host pattern expansion and folding."""
import pytest

from clstr import hostlist
from clstr.errors import InputError


@pytest.mark.parametrize("pattern,expected", [
    ("node1", ["node1"]),
    ("node[1-3]", ["node1", "node2", "node3"]),
    ("node[01-03]", ["node01", "node02", "node03"]),
    ("node[08-11]", ["node08", "node09", "node10", "node11"]),
    ("node[1-3,7,10-12]", ["node1", "node2", "node3", "node7", "node10", "node11", "node12"]),
    ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
    ("[1-2].lab", ["1.lab", "2.lab"]),
    ("3/bigbox", ["bigbox"] * 3),
    ("2/n[1-2]", ["n1", "n1", "n2", "n2"]),
    ("alice@node[1-2]", ["alice@node1", "alice@node2"]),
    ("  spaced  ", ["spaced"]),
    ("a,node[1-2,5],b", ["a", "node1", "node2", "node5", "b"]),
])
def test_expand(pattern, expected):
    assert hostlist.expand(pattern) == expected


def test_expand_eight_hosts():
    assert len(hostlist.expand("r[1-2]n[01-04]")) == 8


@pytest.mark.parametrize("pattern,message", [
    ("node[3-1]", "empty range"),
    ("node[]", "empty item"),
    ("node[1-", "unbalanced"),
    ("node]1[", "stray bracket"),
    ("node[a-b]", "bad range"),
    ("node[1,,2]", "empty item"),
    ("node[0-100000]", "more than 100000"),
    ("a[0-999]b[0-999]", "more than 100000"),
    ("0/host", "at least 1"),
    ("", "empty host"),
])
def test_expand_errors(pattern, message):
    with pytest.raises(InputError) as e:
        hostlist.expand(pattern)
    assert message in str(e.value)


def test_expand_all_limit():
    with pytest.raises(InputError, match="more than 100000"):
        hostlist.expand_all(["a[1-60000]", "b[1-60000]"])


@pytest.mark.parametrize("hosts,folded", [
    (["n01", "n02", "n03", "n07"], "n[01-03,07]"),
    (["node1"], "node1"),
    ([f"node{i:02d}" for i in range(1, 41)] + ["node42"], "node[01-40,42]"),
    (["n1", "n2", "n10", "n11"], "n[1-2,10-11]"),
    (["x9", "x10", "y", "x011"], "x[9-10],y,x011"),
    (["n08", "n09", "n10"], "n[08-10]"),
    (["a", "b1", "b2", "a"], "a,b[1-2]"),
])
def test_fold(hosts, folded):
    assert hostlist.fold(hosts) == folded


@pytest.mark.parametrize("hosts", [
    ["n1", "n01", "n2"], ["x9", "x10", "y", "x011"], [f"r{i}n{j}" for i in (1, 2) for j in (1, 2)],
])
def test_fold_round_trip(hosts):
    assert sorted(hostlist.expand(hostlist.fold(hosts))) == sorted(set(hosts))
