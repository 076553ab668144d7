"""Named node groups against the real testbed: profiles found through the search path."""
import os

import pytest

from conftest import lines


def profile_text(testbed):
    return f"""\
lab-machines:
  nodes: ["n[1-3]"]
  slots: 2
  ssh: "{testbed.ssh}"
  connect_timeout: 3
small: ["n4"]
"""


def test_profile_through_clstr_profiles(clstr, testbed, tmp_path):
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed))
    (tmp_path / "jobs.txt").write_text("".join(f"echo job {i}\n" for i in range(12)))
    r = clstr("-p", "lab-machines", "jobs.txt", env={"CLSTR_PROFILES": str(prof)}, ssh=False)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(12))


def test_profile_through_xdg_config_home(clstr, testbed, tmp_path):
    conf = tmp_path / "xdg" / "clstr"
    conf.mkdir(parents=True)
    (conf / "profiles.yaml").write_text(profile_text(testbed))
    r = clstr("-p", "lab-machines", "-x", "n[2-3]", "--tag", "-E", "echo hi",
              env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, ssh=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "n1: hi\n"  # n2, n3 excluded; n1's two slots run it once


def test_profiles_combine_with_nodes(clstr, testbed, tmp_path):
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed))
    r = clstr("--profiles", str(prof), "-p", "small", "-n", "n5", "--tag", "-E", "echo up")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["n4: up", "n5: up"]


def test_list_profiles_shows_counts_and_file(clstr, testbed, tmp_path):
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed))
    r = clstr("--list-profiles", env={"CLSTR_PROFILES": str(prof)}, ssh=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"lab-machines\t3 nodes\t6 slots\t{prof}\nsmall\t1 node\t1 slot\t{prof}\n"


def test_shipped_example_profiles_parse():
    from clstr.profiles import ProfileSet
    here = os.path.join(os.path.dirname(__file__), "..", "conf", "profiles.yaml")
    ps = ProfileSet([(here, True)])
    assert ps.names()
    for name in ps.names():
        assert ps.resolve(name).hosts


OVERLAP = """\
a: {include: [b, c]}
b: {include: [d]}
c: {include: [d]}
d: [n1, n2]
gpu: {nodes: [n3, n4], slots: 2}
bigmem: [n3, n5]
"""


@pytest.mark.parametrize("args,counts", [
    (["-p", "a"], "nodes: 2 (n[1-2]), slots: 2"),
    (["-p", "gpu", "-p", "bigmem"], "nodes: 3 (n[3-5]), slots: 5"),  # n3: 2 slots (gpu), not 3
    (["-p", "gpu", "-p", "gpu"], "nodes: 2 (n[3-4]), slots: 4"),
    (["-n", "n3", "-p", "gpu"], "nodes: 2 (n[3-4]), slots: 4"),  # -n and -p: the larger count, not 1 + 2
    (["-n", "n1", "-n", "n1", "-p", "a"], "nodes: 2 (n[1-2]), slots: 3"),  # -n twice: two slots of n1
])
def test_dry_run_shows_merged_counts(clstr, tmp_path, args, counts):
    (tmp_path / "p.yaml").write_text(OVERLAP)
    r = clstr("--profiles", "p.yaml", *args, "--dry-run", "-j", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == counts


def test_list_profiles_shows_merged_counts(clstr, tmp_path):
    (tmp_path / "p.yaml").write_text(OVERLAP)
    r = clstr("--list-profiles", "--profiles", "p.yaml", ssh=False)
    rows = {line.split("\t")[0]: line.split("\t")[1:3] for line in r.stdout.splitlines()}
    assert rows["a"] == ["2 nodes", "2 slots"] and rows["gpu"] == ["2 nodes", "4 slots"]


@pytest.mark.timeout(90)
def test_a_live_profile_applies_the_set_rule(clstr, tmp_path):
    import subprocess
    from conftest import wait_for
    from test_reprobe import finish, read_stderr_until
    gate, state, prof = tmp_path / "gate", tmp_path / "state.json", tmp_path / "lab.yaml"
    (tmp_path / "jobs").write_text("".join(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i}\n"
                                           for i in range(1, 5)))
    prof.write_text("lab: [n1]\nother: [n1, n2]\n")
    p = clstr.popen("--profiles", str(prof), "-p", "lab", "--state", str(state), "jobs",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        assert wait_for(lambda: state.exists() and '"running": 1' in state.read_text(), 30)
        prof.write_text("lab: {nodes: [n1], include: [other]}\nother: [n1, n2]\n")  # n1 reached twice
        read_stderr_until(p, "node list changed: 1 slot added (n2), 0 removed", seen)
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 0, err


def test_a_profiles_workdir_basefile_and_env_reach_its_jobs(clstr, testbed, tmp_path):
    remote = tmp_path / "remote"
    (tmp_path / "tool.txt").write_text("tool\n")
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed) + f"""\
work:
  include: [small]
  workdir: {remote}
  env: ["CLSTR_PROF_*"]
  basefile: [tool.txt]
""")
    r = clstr("--profiles", str(prof), "-p", "work", "-E", 'cat tool.txt; pwd; echo "$CLSTR_PROF_X"',
              env={"CLSTR_PROF_X": "a b'c"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"tool\n{remote}\na b'c\n"
