"""Pure tests of profile files: parsing, includes, search path, and every bad input."""
import pytest

from clstr.errors import InputError
from clstr.profiles import ProfileSet, default_search_path, parse

GOOD = """\
# lab machines
lab-machines:
  nodes: ["lab[01-03]", "2/bigbox"]
  slots: 2
  user: alice
  ssh_options: [Port=2222]
  connect_timeout: 5
  include: [gpu]
gpu: [gpu1, gpu2]
solo: one-host
"""


def write(tmp_path, text, name="profiles.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_parse_and_resolve(tmp_path):
    ps = ProfileSet([(write(tmp_path, GOOD), True)])
    assert ps.names() == ["gpu", "lab-machines", "solo"]
    r = ps.resolve("lab-machines")
    assert r.hosts == ["alice@lab01", "alice@lab01", "alice@lab02", "alice@lab02", "alice@lab03",
                       "alice@lab03", "alice@bigbox", "alice@bigbox", "gpu1", "gpu2"]
    assert r.ssh_options == ["Port=2222"]
    assert r.connect_timeout == 5.0
    assert ps.resolve("solo").hosts == ["one-host"]


def test_first_file_wins(tmp_path):
    a = write(tmp_path, "lab: [a1]\n", "a.yaml")
    b = write(tmp_path, "lab: [b1]\nother: [o1]\n", "b.yaml")
    ps = ProfileSet([(a, True), (b, True)])
    assert ps.resolve("lab").hosts == ["a1"]
    assert ps.resolve("other").hosts == ["o1"]


def test_missing_optional_file_is_skipped(tmp_path):
    ps = ProfileSet([(str(tmp_path / "nope.yaml"), False)])
    assert ps.names() == []


def test_search_path_order(tmp_path):
    env = {"CLSTR_PROFILES": "/x/a.yaml::/x/b.yaml", "XDG_CONFIG_HOME": "/cfg"}
    assert default_search_path(env) == [("/x/a.yaml", True), ("/x/b.yaml", True),
                                        ("/cfg/clstr/profiles.yaml", False),
                                        ("/etc/clstr/profiles.yaml", False)]


def test_search_path_default_xdg(monkeypatch):
    monkeypatch.setenv("HOME", "/home/u")
    path = default_search_path({})
    assert path[0] == ("/home/u/.config/clstr/profiles.yaml", False)


@pytest.mark.parametrize("text,where,message", [
    ("lab: [a\n", ":2", "malformed YAML"),
    ("lab:\n  nodes: [a]\n  slots: two\n", ":3", "key 'slots' must be a whole number"),
    ("lab:\n  nodes: [a]\n  slots: 0\n", ":3", "key 'slots' must be"),
    ("lab:\n  nodes: {a: 1}\n", ":2", "key 'nodes' must be a list of host patterns"),
    ("lab:\n  nodes: [a]\n  connect_timeout: soon\n", ":3", "key 'connect_timeout' must be a number"),
    ("lab:\n  nodes: [a]\n  ssh_options: [[x]]\n", ":3", "key 'ssh_options' must be a list"),
    ("lab:\n  nodes: [a]\n  colour: red\n", ":3", "unknown key 'colour'"),
    ("lab:\n  slots: 2\n", ":1", "profile 'lab' has no nodes"),
    ("- a\n- b\n", ":1", "must be a mapping"),
    ("lab: 3\n", ":1", "must be a list of nodes or a mapping"),
])
def test_bad_files(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        ProfileSet([(path, True)])
    assert e.value.where == path + where
    assert message in e.value.message


def test_unknown_profile_lists_known(tmp_path):
    ps = ProfileSet([(write(tmp_path, GOOD), True)])
    with pytest.raises(InputError, match=r"unknown profile 'lab' \(known: gpu, lab-machines, solo"):
        ps.resolve("lab")


def test_include_cycle(tmp_path):
    path = write(tmp_path, "a: {nodes: [x], include: [b]}\nb: {include: [c]}\nc: {include: [a]}\n")
    ps = ProfileSet([(path, True)])
    with pytest.raises(InputError) as e:
        ps.resolve("a")
    assert "include cycle: a -> b -> c -> a" in e.value.message
    assert e.value.where == path + ":1"


def test_include_unknown(tmp_path):
    path = write(tmp_path, "a: {nodes: [x], include: [zz]}\n")
    with pytest.raises(InputError, match="includes unknown profile 'zz'"):
        ProfileSet([(path, True)]).resolve("a")


@pytest.mark.parametrize("pattern,message", [("n[5-1]", "empty range"), ("n[1-200000]", "more than 100000")])
def test_bad_range_in_profile(tmp_path, pattern, message):
    path = write(tmp_path, f'lab: ["{pattern}"]\n')
    with pytest.raises(InputError) as e:
        ProfileSet([(path, True)]).resolve("lab")
    assert message in e.value.message and e.value.where == path + ":1"


def test_required_file_missing(tmp_path):
    with pytest.raises(InputError, match="profile file not found"):
        ProfileSet([(str(tmp_path / "gone.yaml"), True)])


def test_parse_empty():
    assert parse("", "f.yaml") == {}
    assert parse("# nothing\n", "f.yaml") == {}


def test_include_diamonds_resolve_once(tmp_path):
    """36 levels of diamonds: 2**36 paths; each profile is resolved once, a node reached on many
    paths counts once."""
    rows = ["p0: {nodes: [a], include: [p1, p1b]}"]
    for i in range(1, 36):
        rows.append(f"p{i}: {{nodes: [n{i}], include: [p{i + 1}, p{i + 1}b]}}")
        rows.append(f"p{i}b: {{nodes: [m{i}], include: [p{i + 1}]}}")
    rows += ["p36: [z]", "p36b: [y]"]
    path = tmp_path / "d.yaml"
    path.write_text("\n".join(rows) + "\n")
    ps = ProfileSet([(str(path), True)])
    hosts = ps.resolve("p0").hosts
    assert len(hosts) == len(set(hosts)) == 1 + 35 * 2 + 2
    assert ps.resolve("p34").hosts == ["n34", "n35", "z", "y", "m35"]


def test_a_diamond_of_40_levels_resolves_at_once_to_its_one_node(tmp_path):
    rows = [f"p{i}: {{include: [q{i}, r{i}]}}\nq{i}: {{include: [p{i + 1}]}}\nr{i}: {{include: [p{i + 1}]}}"
            for i in range(40)] + ["p40: [box7]"]
    path = tmp_path / "d.yaml"
    path.write_text("\n".join(rows) + "\n")
    r = ProfileSet([(str(path), True)]).resolve("p0")
    assert r.hosts == ["box7"] and r.slots == {"box7": 1}


OVERLAP = """\
a: {include: [b, c]}
b: {include: [d]}
c: {include: [d]}
d: [n1, n2]
gpu: {nodes: [box7, gpu1], slots: 2}
bigmem: [box7, mem1]
lab: {nodes: [lab1], include: [gpu, bigmem]}
twice: [x, x, 3/y]
"""


@pytest.mark.parametrize("name,slots", [
    ("a", {"n1": 1, "n2": 1}),  # the diamond: n1 and n2 once each, not twice
    ("lab", {"lab1": 1, "box7": 2, "gpu1": 2, "mem1": 1}),  # box7: the larger of 2 (gpu) and 1 (bigmem)
    ("twice", {"x": 2, "y": 3}),  # within one list, repetition is slots, as ever
])
def test_overlapping_includes_are_a_set_with_the_largest_slot_count(tmp_path, name, slots):
    r = ProfileSet([(write(tmp_path, OVERLAP), True)]).resolve(name)
    assert r.slots == slots and sorted(r.hosts) == sorted(h for h, n in slots.items() for _ in range(n))


@pytest.mark.parametrize("patterns,slots", [
    (["@gpu", "@bigmem"], {"box7": 2, "gpu1": 2, "mem1": 1}),  # several groups: a union
    (["@gpu,@bigmem"], {"box7": 2, "gpu1": 2, "mem1": 1}),  # in one host list too
    (["@a", "@a"], {"n1": 1, "n2": 1}),  # a group named twice is the same nodes
    (["box7", "@gpu"], {"box7": 2, "gpu1": 2}),  # -n box7 -p gpu: the larger count, not 1 + 2
    (["box7", "box7", "box7", "@gpu"], {"box7": 3, "gpu1": 2}),  # written three times: three slots
    (["x", "x"], {"x": 2}),  # -n x -n x: two slots, as in the original clstr
    (["2/x", "@twice"], {"x": 2, "y": 3}),
    (["@lab!box7"], {"lab1": 1, "gpu1": 2, "mem1": 1}),
])
def test_groups_in_host_lists_join_as_sets(tmp_path, patterns, slots):
    from clstr import hostlist
    ps = ProfileSet([(write(tmp_path, OVERLAP), True)])
    got = {}
    for h in hostlist.expand_all(patterns, hostlist.Context(group=lambda name: ps.resolve(name).hosts)):
        got[h] = got.get(h, 0) + 1
    assert got == slots


def test_profile_names_must_be_usable_as_groups(tmp_path):
    path = write(tmp_path, "ok: [a]\n'lab, gpu': [b]\n")
    with pytest.raises(InputError) as e:
        ProfileSet([(path, True)])
    assert e.value.where == path + ":2" and "cannot be used as @lab, gpu" in e.value.message


@pytest.mark.parametrize("text", [
    "big: {nodes: ['n[1-99999]'], slots: 1000}\n",
    "many: ['n[1-99999]', 'n[1-99999]', 'n[1-99999]']\n",
    "grid: ['r[1-1000]n[1-1000]']\n",
])
def test_huge_profiles_refused_before_expanding(tmp_path, text):
    path = tmp_path / "h.yaml"
    path.write_text(text)
    ps = ProfileSet([(str(path), True)])
    name = text.split(":")[0]
    with pytest.raises(InputError) as e:
        ps.resolve(name)
    assert str(e.value) == f"{path}:1: profile '{name}' has more than 100000 slots with its includes"


def test_workdir_env_and_basefile_join_through_includes_own_first(tmp_path):
    path = write(tmp_path, """\
lab:
  nodes: [a]
  env: [OMP_NUM_THREADS, "MY_*"]
  basefile: [tool.sif]
  include: [gpu]
gpu:
  nodes: [g1]
  workdir: ...
  env: "CUDA_*"
  basefile: [tool.sif, weights.bin]
""")
    r = ProfileSet([(path, True)]).resolve("lab")
    assert (r.workdir, r.env, r.basefile) == ("...", ["OMP_NUM_THREADS", "MY_*", "CUDA_*"],
                                              ["tool.sif", "weights.bin"])


@pytest.mark.parametrize("text,message", [
    ("lab:\n  nodes: [a]\n  workdir: ['x']\n", "key 'workdir' must be a directory on the nodes"),
    ("lab:\n  nodes: [a]\n  workdir: ''\n", "key 'workdir' must be"),
    ("lab:\n  nodes: [a]\n  env: {A: 1}\n", "key 'env' must be a list of variable names"),
    ("lab:\n  nodes: [a]\n  basefile: [[x]]\n", "key 'basefile' must be a list of files"),
])
def test_bad_workdir_env_basefile(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        ProfileSet([(path, True)])
    assert e.value.where == path + ":3" and message in e.value.message
