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


# what is not a node at all: a space, shell syntax, an empty name, a group or regex that fails
NOT_NODES = [
    ("n[1-4] n7", "'n[1-4] n7' cannot be a node (it has a space; separate hosts with commas)"),
    ("echo hello", "'echo hello' cannot be a node (it has a space; separate hosts with commas)"),
    ("a;rm -rf x", "cannot be a node (it has a space"),
    ("$(reboot)", "'$(reboot)' cannot be a node (it has shell syntax)"),
    ("n1,,n2", "empty item in 'n1,,n2'"),
    ("@lab", "@lab: no profile groups to look it up in"),
    ("n[1-4],/(/", "bad regular expression '/(/'"),
    ("-", "empty host name"),
]


@pytest.mark.parametrize("pattern,message", NOT_NODES + [
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
    (["x9", "x10", "y", "x011"], "x[9-10],x011,y"),
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


# ---- as pdsh and ClusterShell read host lists ------------------------------------------
import shutil  # noqa: E402
import subprocess  # noqa: E402

NODESET = shutil.which("nodeset")
needs_nodeset = pytest.mark.skipif(NODESET is None, reason="ClusterShell's nodeset is not installed "
                                   "(tests/run installs it)")

# ClusterShell's syntax: clstr must expand these exactly as `nodeset -e` does
CLUSH_CASES = ["n[1-4]!n2", "n[1-4]!n2,n7", "n7,n[1-4]!n7", "n[1-10/2]", "n[0-20/5]", "n[1-6]&n[4-9]",
               "n[1-6]^n[4-9]", "a,b!a", "node[01-03].example.com", "da[2-3]c[1-2]", "cluster[50-52,99]-ipmi",
               "n[1-3],n[2-5]!n3", "r[1-2]n[1-3]&r1n[2-9]"]


@needs_nodeset
@pytest.mark.parametrize("pattern", CLUSH_CASES)
def test_expand_as_nodeset_does(pattern):
    oracle = subprocess.run([NODESET, "-e", pattern], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(set(hostlist.expand(pattern)), key=hostlist.natural) == sorted(oracle, key=hostlist.natural)


FOLD_CASES = [
    [f"cluster{i}-ipmi" for i in (50, 51, 52, 99)],
    [f"node{i:02d}.example.com" for i in range(1, 41)],
    [f"da{i}c{j}" for i in (2, 3) for j in (1, 2)],
    [f"r{i}n{j:02d}" for i in (1, 2, 3) for j in range(1, 9)] + ["r4n01"],
    ["b2", "a1", "a3", "a2", "c"],
    [f"n{i}" for i in (1, 2, 3, 7, 10, 11, 12)],
    [f"rack{r}-node{n}.dc{d}.example.org" for r in (1, 2) for n in (1, 2, 3) for d in (1,)],
    ["login", "gpu1", "gpu2", "cpu01", "cpu02", "cpu03"],
]


@needs_nodeset
@pytest.mark.parametrize("hosts", FOLD_CASES)
def test_fold_as_nodeset_does(hosts):
    oracle = subprocess.run([NODESET, "-f", *hosts], capture_output=True, text=True, check=True).stdout.strip()
    assert hostlist.fold(hosts) == oracle
    assert sorted(hostlist.expand(hostlist.fold(hosts))) == sorted(set(hosts))


@pytest.mark.parametrize("hosts,folded", [
    ([f"node{i:02d}" for i in range(1, 129)], "node[01-128]"),  # nodeset: node[01-99,100-128]
    ([f"node{i:03d}" for i in range(1, 10)] + ["node10", "node11"], "node[001-009],node[10-11]"),
    (["[::1]:2222", "h:22", "h"], "[::1]:2222,h,h:22"),
])
def test_fold_mixed_padding_and_addresses(hosts, folded):
    assert hostlist.fold(hosts) == folded
    assert sorted(hostlist.expand(folded)) == sorted(hosts)


@pytest.mark.parametrize("pattern,expected", [
    ("foo[9-11],-foo10", ["foo9", "foo11"]),  # pdsh: -host excludes
    ("n[1-5],-n[2-3]", ["n1", "n4", "n5"]),
    ("n[1-20],/^n1/", ["n1"] + [f"n{i}" for i in range(10, 20)]),  # pdsh: /regex/ filters
    ("n[1-5]!/[24]/", ["n1", "n3", "n5"]),
    ("n[1-5],/a,b/", []),
    ("u@n[1-2],-n1", ["u@n2"]),
    ("[::1]:2222", ["[::1]:2222"]),
    ("::1", ["::1"]),
    ("u@[fe80::1%eth0]", ["u@[fe80::1%eth0]"]),
    ("host:2222", ["host:2222"]),
    ("2/n[1-2]!n2", ["n1", "n1"]),
])
def test_pdsh_forms_and_addresses(pattern, expected):
    assert hostlist.expand(pattern) == expected


def test_file_and_group_items(tmp_path):
    (tmp_path / "wcoll").write_text("# lab\nn[1-3]\n-n2\nn9  # spare\n")
    ctx = hostlist.Context(group=lambda name: {"gpu": ["g1", "g2"]}[name])
    assert hostlist.expand(f"^{tmp_path}/wcoll,@gpu,x", ctx) == ["n1", "n3", "n9", "g1", "g2", "x"]
    assert hostlist.expand_all(["n[1-4]", "-n3", "/[12]/"]) == ["n1", "n2"]
    assert hostlist.exclusions([f"^{tmp_path}/wcoll", "/^g/"], ctx)[0] == {"n1", "n3", "n9"}


def test_node_file_line_that_is_a_job_names_file_and_line(tmp_path):
    with pytest.raises(InputError) as e:
        hostlist.read_node_lines([(1, "n1"), (2, "echo hi; sleep 1")], "jobs.txt")
    assert str(e.value).startswith("jobs.txt:2: 'echo hi; sleep 1' cannot be a node")
