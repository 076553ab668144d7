"""The node-source seam (clstr/nodes.py): the command line and clstr.run read nodes from the same
sources, node files and profiles included, and a profile's settings apply where the caller gave
none of its own. Against the real testbed."""

import clstr
from clstr import cli
from clstr.options import Options
from clstr.nodes import Sources
from test_profiles_run import profile_text


def test_node_files_reach_the_library(testbed, tmp_path):
    (tmp_path / "nodes.txt").write_text("n1\n2/n2\n")
    r = clstr.run([f"echo {i}" for i in range(6)], node_files=[str(tmp_path / "nodes.txt")],
                  ssh=testbed.ssh, stdout=False, stderr=False, log=lambda m: None)
    assert [j.outcome for j in r.jobs] == ["succeeded"] * 6
    assert {j.node for j in r.jobs} <= {"n1", "n2"}


def test_a_profile_reaches_the_library_with_its_settings_and_the_callers_win(testbed, tmp_path, monkeypatch):
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    r = clstr.run(["hostname"] * 4, profile="lab-machines", profiles=[str(prof)], stdout=False, stderr=False,
                  log=lambda m: None)  # the profile's own ssh reaches the testbed
    assert [j.outcome for j in r.jobs] == ["succeeded"] * 4
    assert {j.node for j in r.jobs} <= {"n1", "n2", "n3"}
    r = clstr.run(["hostname"], profile=["small"], profiles=[str(prof)], ssh=testbed.ssh, connect_timeout=3,
                  stdout=False, stderr=False, log=lambda m: None)
    assert [(j.outcome, j.node) for j in r.jobs] == [("succeeded", "n4")]


def test_the_command_line_and_the_library_gather_the_same_nodes(tmp_path, testbed):
    prof = tmp_path / "lab.yaml"
    prof.write_text(profile_text(testbed))
    (tmp_path / "nodes.txt").write_text("n5\n")
    args = cli.build_parser().parse_args(["-n", "n[7-8]", "-N", str(tmp_path / "nodes.txt"), "-p", "small",
                                          "--profiles", str(prof), "-j", "x"])
    given = cli.gather_nodes(args)
    src = Sources(("n[7-8]",), (str(tmp_path / "nodes.txt"),), ("small",), (str(prof),))
    assert given.nodes == src.nodes() == ["n[7-8]", "1/n5", "@small"]
    nodes, options = clstr.api.from_sources(["n[7-8]"], [str(tmp_path / "nodes.txt")], "small",
                                            Options(profiles=[str(prof)]))
    assert nodes == given.nodes
