"""A live node list: a node file edited mid-run adds and removes nodes, and a file that
turns invalid is reported in one line while the run keeps its last good list."""
import json
import subprocess

import pytest

from conftest import wait_for
from test_reprobe import finish, read_stderr_until


def state_of(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@pytest.mark.timeout(90)
def test_a_node_file_edited_mid_run_adds_and_removes_nodes(clstr, tmp_path, testbed):
    gate, state, nodes = tmp_path / "gate", tmp_path / "state.json", tmp_path / "nodes.txt"
    addr = {testbed.addr[n]: n for n in ("n1", "n2", "n3")}
    # each job waits for the gate, then says which node ran it (the address sshd answered on)
    jobs = [f"while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i} $SSH_CONNECTION" for i in range(1, 9)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    nodes.write_text("n1\n")
    p = clstr.popen("--state", str(state), "--json", "out.json", "jobs", "-N", str(nodes),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        assert wait_for(lambda: (state_of(state) or {}).get("counts", {}).get("running") == 1, 30)
        nodes.write_text("n2\nn3\n")  # n1 goes (its running job finishes), n2 and n3 come
        read_stderr_until(p, "node list changed: 2 slots added (n[2-3]), 1 removed", seen)
        assert wait_for(lambda: state_of(state)["counts"]["running"] == 3, 30)
        snap = state_of(state)
        assert snap["nodes"]["n1"]["status"] == "removed" and snap["nodes"]["n1"]["slots"] == 0
        assert sorted(r["node"] for r in snap["running"]) == ["n1", "n2", "n3"]
        nodes.write_text("n2\nn3\nn[4\n")  # invalid: reported, the run keeps n2 and n3
        line = read_stderr_until(p, "the run keeps its node list", seen)
        assert line.startswith(f"clstr: {nodes}:3: ")
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 0, err
    ran = {}
    for line in out.splitlines():
        job, _, _, server, _ = line.split()
        ran.setdefault(addr[server], []).append(job)
    assert len(ran["n1"]) == 1  # the job it ran when it was removed, and no other
    assert len(ran["n2"]) + len(ran["n3"]) == 7 and ran["n2"] and ran["n3"]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["nodes"]["n1"]["removed"] is True and result["counts"]["succeeded"] == 8
    assert "removed from the node list during the run: n1" in err


@pytest.mark.timeout(90)
def test_a_profile_file_edited_mid_run_changes_the_pool(clstr, tmp_path, testbed):
    gate, state, prof = tmp_path / "gate", tmp_path / "state.json", tmp_path / "lab.yaml"
    jobs = [f"while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i}" for i in range(1, 5)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    prof.write_text('lab: ["n1"]\n')
    p = clstr.popen("--profiles", str(prof), "-p", "lab", "--state", str(state), "jobs",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        assert wait_for(lambda: (state_of(state) or {}).get("counts", {}).get("running") == 1, 30)
        prof.write_text('lab: ["n1", "n[5-6]"]\n')
        read_stderr_until(p, "node list changed: 2 slots added (n[5-6]), 0 removed", seen)
        assert wait_for(lambda: state_of(state)["counts"]["running"] == 3, 30)
        prof.write_text("lab: [n1\n")  # bad YAML: one line, the pool stays
        line = read_stderr_until(p, "the run keeps its node list", seen)
        assert str(prof) in line
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert sorted(out.split()) == [f"job-{i}" for i in range(1, 5)]
