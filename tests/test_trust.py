"""Trust: ssh's failures told from the job's exactly, runs that always end, counts that agree.

Against the real sshd testbed: what a job prints never changes how its node is judged.
"""
import json
import subprocess

import psutil
import pytest

from conftest import lines, read_until
from test_failures import jobs_args, run_marker

SSH_LIKE = ('echo "u@h: Permission denied (publickey)." >&2; '
            'echo "ssh: connect to host h port 22: Connection refused" >&2; '
            'echo "Host key verification failed." >&2; exit 1')


def test_job_printing_ssh_errors_is_judged_by_its_exit_node_mode(clstr):
    good = [f"echo job {i}" for i in range(6)]
    r = clstr("-n", "n1", "-n", "n2", *jobs_args([SSH_LIKE] + good))
    assert r.returncode == 1
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(6))
    assert "failed: job 1" in r.stderr and "(exit 1 on every node)" in r.stderr
    retirements = [ln for ln in r.stderr.splitlines() if ln.startswith("clstr: node ")]
    assert sorted(retirements) == ["clstr: node n1 retired: job 1 exit 1", "clstr: node n2 retired: job 1 exit 1"]
    assert "6 succeeded, 1 failed, 0 not run" in r.stderr


def test_job_printing_ssh_errors_is_judged_by_its_exit_job_mode(clstr):
    r = clstr("-n", "n1", "-n", "n2", "--job-failures", "job", *jobs_args([SSH_LIKE, "echo fine"]))
    assert r.returncode == 1
    assert r.stdout == "fine\n"
    assert "failed: job 1" in r.stderr and "(exit 1)" in r.stderr
    assert "retired" not in r.stderr


@pytest.mark.parametrize("job", ["exit 255", "perl -e 'die'", "sh -c 'kill -KILL $$'"])
def test_exit_255_and_signals_are_the_jobs_own_status_and_the_run_ends(clstr, tmp_path, job):
    count = tmp_path / "count"
    r = clstr("-n", "n1", "--job-failures", "job", "--retries", "2",
              *jobs_args([f"echo try >> {count}; {job}", "echo fine"]))
    assert r.returncode == 1
    assert r.stdout == "fine\n"
    assert count.read_text() == "try\n" * 3  # one run and two retries: no more, however few the nodes
    status = 137 if "KILL" in job else 255
    assert f"failed: job 1 on n1 (exit {status})" in r.stderr
    assert "retired" not in r.stderr


def test_refused_node_costs_no_retry(clstr, tmp_path):
    count = tmp_path / "count"
    r = clstr("-n", "refused", "-n", "n1", "--job-failures", "job", "--retries", "1",
              "-j", f"echo try >> {count}; exit 3")
    assert r.returncode == 1
    assert count.read_text() == "try\n" * 2
    assert "failed: job 1 on n1 (exit 3)" in r.stderr
    assert "retired nodes: refused (refused)" in r.stderr


@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])
def test_node_that_stalls_after_its_banner_is_an_ssh_failure(clstr, mode):
    r = clstr("-n", "stall", "-n", "n1", "--connect-timeout", "1", *mode, *jobs_args(["echo a", "echo b"]))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["a", "b"]
    assert "node stall retired: timed out" in r.stderr


def test_never_run_on_each_node_job_is_not_run(clstr):
    r = clstr("-n", "stall", "-n", "refused", "-n", "n1", "--connect-timeout", "1", "-E", "echo hi",
              "--json", "out.json")
    assert r.returncode == 1
    assert r.stdout == "hi\n"
    assert "0 failed, 2 not run" in r.stderr
    result = json.loads((clstr.cwd / "out.json").read_text())
    outcomes = {j["node"]: (j["outcome"], j["reason"]) for j in result["jobs"]}
    assert outcomes == {"n1": ("succeeded", ""), "refused": ("not run", "node refused unreachable (refused)"),
                        "stall": ("not run", "node stall unreachable (timed out)")}


def test_control_master_killed_mid_job_is_a_lost_connection(clstr, testbed, tmp_path):
    marker = tmp_path / "first"
    job = f"if [ ! -e {marker} ]; then touch {marker}; echo started; sleep 60; fi; echo done"
    p = clstr.popen("-n", "n1", "-n", "n2", "-m", "1", "--job-failures", "job", "-j", job,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["started"])
        masters = [c for c in psutil.Process(p.pid).children(recursive=True)
                   if "ControlMaster=yes" in " ".join(c.cmdline())]
        assert len(masters) == 1
        masters[0].kill()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out == "done\n"
    assert "retired: connection lost" in err and "exit 255" not in err
    assert not run_marker(testbed)


def test_job_of_120_kb_runs_as_with_plain_ssh(clstr):
    job = "echo " + "y" * 120_000 + " | wc -c"
    for mode in ([], ["--no-multiplex"], ["-E"]):
        args = [*mode, job] if mode == ["-E"] else [*mode, "-j", job]
        r = clstr("-n", "n1", *args)
        assert (r.returncode, r.stdout.strip()) == (0, "120001"), r.stderr
