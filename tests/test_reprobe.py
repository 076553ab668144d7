"""Nodes come back, against the real sshd: a node down at the start joins once it is up,
a node a job's filter retired is let back for other jobs, a configuration error is not probed."""
import json
import subprocess

import pytest

from conftest import wait_for
from sshnodes import Relay


def gated_jobs(gate, n, filter_line=""):
    """n jobs that each wait until the file ``gate`` exists, then print their number."""
    return "".join(f"{filter_line}while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i}\n"
                   for i in range(1, n + 1))


def read_stderr_until(proc, text, seen):
    """Read clstr's stderr lines (collected in ``seen``) until one holds ``text``."""
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"stderr ended before {text!r}: {''.join(seen)}")


def finish(proc, seen):
    out, err = proc.communicate(timeout=60)
    return out, "".join(seen) + err


@pytest.mark.timeout(90)
def test_a_node_down_at_the_start_gets_jobs_once_it_is_up(clstr, tmp_path, testbed):
    late = Relay(testbed, "127.0.0.77")
    gate = tmp_path / "gate"
    (tmp_path / "jobs").write_text(gated_jobs(gate, 6))
    p = clstr.popen("--reprobe", "0.5", "-n", "n1", "-n", late.name, "--json", "out.json", "jobs",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        read_stderr_until(p, f"node {late.name} retired: refused; probed again in", seen)
        late.up()
        read_stderr_until(p, f"node {late.name} is back after", seen)
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
        late.down()
    assert p.returncode == 0, err
    assert sorted(out.split()) == sorted(f"job-{i}" for i in range(1, 7))
    result = json.loads((tmp_path / "out.json").read_text())
    ran_there = [j["seq"] for j in result["jobs"] if j["node"] == late.name]
    assert ran_there, result["jobs"]
    node = result["nodes"][late.name]
    assert node["retired"] is False and [o["reason"] for o in node["out"]] == ["refused"]
    assert node["out"][0]["back"] >= node["out"][0]["left"]
    assert f"nodes that came back: {late.name} (out " in err


@pytest.mark.timeout(90)
def test_a_node_a_job_filtered_out_comes_back_for_other_jobs(clstr, tmp_path, testbed):
    gate, free = tmp_path / "gate", tmp_path / "free"
    n2 = testbed.addr["n2"]
    # n2 is "busy" (someone logged in) until the file free exists: its jobs exit 1 there
    busy = f'case "$SSH_CONNECTION" in *" {n2} "*) [ -e {free} ] || exit 1;; esac; '
    (tmp_path / "jobs").write_text(gated_jobs(gate, 6, busy))
    p = clstr.popen("--reprobe", "0.5", "-v", "-n", "n1", "-n", "n2", "--json", "out.json", "jobs",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        line = read_stderr_until(p, "node n2 retired: job ", seen)
        filtered = int(line.split("job ")[1].split()[0])
        assert "let back in" in line
        free.touch()
        read_stderr_until(p, "node n2 is back after", seen)
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 0, err
    result = json.loads((tmp_path / "out.json").read_text())
    jobs = {j["seq"]: j for j in result["jobs"]}
    assert all(j["outcome"] == "succeeded" for j in jobs.values())
    # the job it filtered out never went back to n2; other jobs ran there after it came back
    assert [a["node"] for a in jobs[filtered]["attempts"]] == ["n2", "n1"]
    assert any(j["node"] == "n2" for seq, j in jobs.items() if seq != filtered)
    assert result["nodes"]["n2"]["out"][0]["reason"] == f"job {filtered} exit 1"


@pytest.mark.timeout(60)
def test_an_authentication_failure_is_not_probed_again(clstr):
    r = clstr("--reprobe", "0.2", "-v", "-n", "n1", "-n", "badauth", *sum((["-j", "sleep 0.3"] for _ in range(6)), []))
    assert r.returncode == 0, r.stderr
    assert "node badauth retired: authentication; a configuration error, not probed again" in r.stderr
    assert "badauth: probing" not in r.stderr
    assert ("badauth (authentication: Permission denied (publickey); a configuration error, not probed again)"
            in r.stderr)  # with ssh's own words (issue 34 item 4)


@pytest.mark.timeout(60)
def test_a_remote_command_in_ssh_config_is_a_configuration_error(clstr, testbed, tmp_path):
    """ssh runs no command of clstr's where the config gives a RemoteCommand: the node is out for
    good, saying why, and the run ends at once with its job not run."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host n1\n  RemoteCommand echo hi\nInclude {testbed.ssh_config}\n")
    r = clstr("--ssh", f"ssh -F {config}", "--reprobe", "0.2", "-v", "-n", "n1", "-j", "true")
    assert r.returncode == 1, r.stderr
    assert "node n1 retired: RemoteCommand in ssh_config; a configuration error, not probed again" in r.stderr
    assert "n1: probing" not in r.stderr


@pytest.mark.timeout(60)
def test_every_node_gone_for_good_ends_the_run_with_why(clstr, tmp_path, testbed):
    late = Relay(testbed, "127.0.0.78").up()
    gate, started = tmp_path / "gate", tmp_path / "started"
    (tmp_path / "jobs").write_text(gated_jobs(gate, 3, f"touch {started}; "))
    p = clstr.popen("--reprobe", "0.2", "--reprobe-for", "2", "-v", "-n", late.name, "--json", "out.json", "jobs",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(started.exists, 30)
        late.down()  # the node dies mid-job and never comes back
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        late.down()
    assert p.returncode == 1, err
    result = json.loads((tmp_path / "out.json").read_text())
    # the job it ran waited for its node with the others (a lost connection is not the job's
    # failure), as long as --reprobe-for says, then neither was run
    jobs = {j["seq"]: j for j in result["jobs"]}
    assert (jobs[1]["outcome"], jobs[1]["reason"]) == (
        "not run", "no usable node left (waited 2 s for a retired node to come back) (last: connection lost)")
    for seq in (2, 3):
        assert jobs[seq]["outcome"] == "not run"
        assert jobs[seq]["reason"] == "no usable node left (waited 2 s for a retired node to come back)"
    assert f"node {late.name}: probe failed; probed again in" in err  # probes were tried meanwhile
