"""A busy sshd: handshakes dropped beyond MaxStartups and sessions refused beyond
MaxSessions are transient: every job is done and the node is not retired."""
import json
import re

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


@pytest.mark.timeout(90)
def test_a_black_hole_node_is_quarantined_while_others_take_its_jobs(clstr, tmp_path, testbed):
    n2 = testbed.addr["n2"]
    # n2 fails every job, as a node with a full disk or a broken library would; n1 and n3 are well
    hole = f'case "$SSH_CONNECTION" in *" {n2} "*) exit 1;; esac; '
    (tmp_path / "jobs").write_text("".join(f"{hole}sleep 0.1; echo job-{i}\n" for i in range(30)))
    r = clstr("--json", "out.json", "--job-failures", "job", "--retries", "1", "--quarantine", "3", "--reprobe", "0",
              "jobs", "-n", "n1", "-n", "n2", "-n", "n3")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(f"job-{i}" for i in range(30))
    # a black hole once at least 3 of its failures succeeded elsewhere and its record stands out
    assert re.search(r"node n2 retired: quarantined: [3-6] jobs failed here and succeeded on other nodes, "
                     r"([3-6]) of its \1 runs failed", r.stderr), r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["nodes"]["n2"]["retired"] and result["nodes"]["n2"]["reason"].startswith("quarantined")
    on_n2 = [a for j in result["jobs"] for a in j["attempts"] if a["node"] == "n2"]
    assert 3 <= len(on_n2) <= 6 and all(a["outcome"] == "requeued" for a in on_n2)  # then no more


@pytest.mark.timeout(90)
def test_timeout_percent_ends_a_straggler_and_runs_it_elsewhere(clstr, tmp_path, testbed):
    n2 = testbed.addr["n2"]
    # job 1 lands on n2 (its first slot) and would take a minute there; elsewhere it is quick
    straggler = f'case "$SSH_CONNECTION" in *" {n2} "*) sleep 60;; esac; echo straggler-done'
    jobs = [straggler] + [f"sleep 0.3; echo quick-{i}" for i in range(6)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    r = clstr("--timeout", "300%", "--json", "out.json", "--joblog", "log", "jobs", "-n", "n2", "-n", "n1")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(["straggler-done"] + [f"quick-{i}" for i in range(6)])
    result = json.loads((tmp_path / "out.json").read_text())
    first = next(j for j in result["jobs"] if j["seq"] == 1)
    assert [(a["node"], a["outcome"], a["reason"]) for a in first["attempts"]] == [
        ("n2", "requeued", "straggler"), ("n1", "succeeded", "")]
    assert first["attempts"][0]["runtime"] < 30  # ended at 3x the median, not after its minute
    assert result["nodes"]["n2"]["retired"] is False  # the node stays: it ran other jobs after
    assert any(a["node"] == "n2" and j["seq"] != 1 for j in result["jobs"] for a in j["attempts"])


@pytest.mark.timeout(120)
def test_nodes_behind_a_busy_jump_host_share_its_start_rate(clstr, tmp_path):
    # behind1..behind24 reach n1 through ProxyJump busy (MaxStartups 2:50:4): one handshake each,
    # 24 at once through a jump host that drops all beyond four in flight
    r = clstr("--json", "out.json", "-v", "-n", "behind[1-24]", "-E", "echo done-$((6*7))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["done-42"] * 24
    assert "retired" not in r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["counts"]["succeeded"] == 24
    assert not any(n["retired"] for n in result["nodes"].values())
    refused = sum(n["busy_refusals"] for n in result["nodes"].values())
    assert refused  # busy dropped handshakes, and they cost nothing
    # the workers of refused nodes found their ProxyJump (and, after that, nodes not yet connected
    # looked theirs up before connecting): the limit through it was shared
    gate = result["jump_hosts"]["busy"]
    assert gate["refused"] == refused and 1 <= gate["open_limit"] < 24
    assert {name for name, n in result["nodes"].items() if n["busy_refusals"]} <= set(gate["nodes"])
    assert set(gate["nodes"]) <= {f"behind{i}" for i in range(1, 25)}
    # a job deferred that way was not an attempt: one attempt succeeded a node, after its refusals
    for job in result["jobs"]:
        assert [a["outcome"] for a in job["attempts"]][-1] == "succeeded"
        assert all(a["reason"].endswith("(a busy sshd: tried again)") for a in job["attempts"][:-1])
    assert f"jump host busy (the ProxyJump of {len(gate['nodes'])} nodes) refused {refused} handshakes" in r.stderr
    # -v says which attempts waited (not started: no attempt of the job), each a node behind busy
    waited = [ln.split()[3].rstrip(":") for ln in r.stderr.splitlines() if "not started: behind jump host busy" in ln]
    assert set(waited) <= set(gate["nodes"])
