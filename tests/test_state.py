"""--state FILE: a whole JSON snapshot whenever read, agreeing with the end of the run."""
import json
import subprocess

import pytest

from clstr.scheduler import Policy, Scheduler
from clstr.state import snapshot
from test_scheduler import NEVER_RAN, finish
from conftest import wait_for


def test_snapshot_counts_add_up_and_name_every_node():
    s = Scheduler(["a", "b", "c", "d", "e"], ["n1", "n1", "n2", "dead"], Policy(reprobe=30))
    s.tick(100.0, 1000.0)
    batch = dict(s.assign())
    finish(s, 3, 255, ending=NEVER_RAN, reason="refused")
    finish(s, 0, 0, jump_host="j")  # n1's worker found it behind jump host j
    snap = snapshot(s, "running", 990.0, 1002.0, 101.0, [998.0] * 4)
    c = snap["counts"]
    assert c == {"jobs": 5, "succeeded": 1, "failed": 0, "not_run": 0, "running": 2, "pending": 2}
    assert c["jobs"] == c["succeeded"] + c["failed"] + c["not_run"] + c["running"] + c["pending"]
    assert snap["nodes"]["dead"]["status"] == "retired" and snap["nodes"]["dead"]["next_probe_in"] == 29.0
    assert snap["nodes"]["dead"]["out"] == [{"left": 1000.0, "reason": "refused", "back": None, "failed_probes": 0}]
    assert snap["nodes"]["n1"] == {"status": "up", "slots": 2, "running": 1, "attempts": 2, "reason": "",
                                   "next_probe_in": None, "configuration_error": False, "jump_host": "j", "gateway": None,
                                   "out": []}
    assert snap["nodes"]["dead"]["jump_host"] is None
    assert [(r["node"], r["seq"], r["command"], r["running_for"]) for r in snap["running"]] == [
        ("n1", 2, "b", 4.0), ("n2", 3, "c", 4.0)]
    assert snap["elapsed"] == 12.0 and batch


@pytest.mark.timeout(90)
def test_state_is_whole_json_while_running_and_agrees_at_the_end(clstr, tmp_path):
    gate = tmp_path / "gate"
    jobs = [f"while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i}" for i in range(1, 7)] + ["exit 3"]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    state = tmp_path / "state.json"
    p = clstr.popen("--state", str(state), "--job-failures", "job", "--json", "out.json", "jobs", "-n", "n1",
                    "-n", "n2", "-n", "refused", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reads = []

    def running_two():
        if not state.exists():
            return False
        snap = json.loads(state.read_text())  # never a part: a bad read fails the test here
        reads.append(snap)
        return snap["counts"]["running"] == 2
    try:
        assert wait_for(running_two, 30), (reads[-1:], p.poll())
        snap = reads[-1]
        assert snap["state"] == "running" and snap["schema"] == 1
        assert sorted(r["node"] for r in snap["running"]) == ["n1", "n2"]
        assert all(r["command"] in jobs and r["running_for"] >= 0 for r in snap["running"])
        assert snap["nodes"]["refused"]["status"] == "retired"
        assert snap["nodes"]["refused"]["reason"] == "refused"
        c = snap["counts"]
        assert c["jobs"] == 7 and c["succeeded"] + c["failed"] + c["not_run"] + c["running"] + c["pending"] == 7
        gate.touch()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 1, err
    final = json.loads(state.read_text())
    result = json.loads((tmp_path / "out.json").read_text())
    assert final["state"] == "finished" and final["running"] == []
    assert {k: final["counts"][k] for k in ("jobs", "succeeded", "failed", "not_run")} == {
        k: result["counts"][k] for k in ("jobs", "succeeded", "failed", "not_run")}
    assert final["counts"] == {"jobs": 7, "succeeded": 6, "failed": 1, "not_run": 0, "running": 0, "pending": 0}
    assert "7 jobs: 6 succeeded, 1 failed, 0 not run." in err
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".clstr-state-")]  # no temp file left


def test_state_file_in_a_missing_directory_is_refused_before_running(clstr, tmp_path):
    r = clstr("--state", str(tmp_path / "nodir" / "state.json"), "-n", "n1", "-j", "echo hi")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--state file: no such directory" in r.stderr
