"""Named node groups against the real testbed: profiles found through the search path."""
import os

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
    assert r.stdout == f"lab-machines\t3 nodes\t6 slots\t{prof}\nsmall\t1 nodes\t1 slots\t{prof}\n"


def test_shipped_example_profiles_parse():
    from clstr.profiles import ProfileSet
    here = os.path.join(os.path.dirname(__file__), "..", "conf", "profiles.yaml")
    ps = ProfileSet([(here, True)])
    assert ps.names()
    for name in ps.names():
        assert ps.resolve(name).hosts
