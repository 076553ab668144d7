"""A busy sshd (issue 15): handshakes dropped beyond MaxStartups and sessions refused beyond
MaxSessions are transient: every job is done and the node is not retired."""
import json

import pytest


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [[], ["--no-multiplex"], ["--no-pipeline"]])
def test_a_busy_sshd_gets_every_job_done_and_stays(clstr, tmp_path, mode):
    # busy: MaxStartups 2:50:4 (more than 4 handshakes in flight are all dropped) and MaxSessions 2;
    # 12 slots on it open up to 12 connections at once
    (tmp_path / "jobs").write_text("".join(f"echo job-{i}\n" for i in range(60)))
    r = clstr("--json", "out.json", *mode, "jobs", "-n", "12/busy")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(f"job-{i}" for i in range(60))
    assert "retired" not in r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["counts"]["succeeded"] == 60
    node = result["nodes"]["busy"]
    assert node["retired"] is False and node["out"] == []
    refused = [a for j in result["jobs"] for a in j["attempts"] if a["outcome"] == "requeued"]
    assert all(a["reason"].endswith("(a busy sshd: tried again)") for a in refused)
    assert node["busy_refusals"] == len(refused)
    if mode == ["--no-multiplex"]:
        assert refused  # 12 handshakes at once: the sshd dropped some, and they cost nothing
        assert r.stderr == ""  # a run that went well says nothing, refusals or not
