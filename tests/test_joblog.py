"""The job log in GNU parallel's columns, read and written in round trips with the installed parallel."""
import shutil
import subprocess

import pytest

from clstr.joblog import JOBLOG_COLUMNS
from test_failures import jobs_args

PARALLEL = shutil.which("parallel")
needs_parallel = pytest.mark.skipif(PARALLEL is None, reason="GNU parallel is not installed (tests/run installs it)")
JOBS = ["echo a", "exit 3", "printf 'b\\tc\\n'", "sh -c 'kill -KILL $$'"]


def parallel(*args, cwd):
    """GNU parallel run locally (no ssh): it writes a job log as any of its users' would."""
    return subprocess.run([PARALLEL, "--will-cite", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def rows(path):
    return [r.split("\t") for r in path.read_text().splitlines()]


def test_rows_have_parallels_columns_and_meaning(clstr):
    r = clstr("-n", "n1", "-n", "n2", "--job-failures", "job", "--timeout", "2", "--joblog", "log",
              *jobs_args(JOBS + ["sleep 30"]))
    assert r.returncode == 1
    got = rows(clstr.cwd / "log")
    assert got[0] == JOBLOG_COLUMNS
    by_seq = {int(row[0]): row for row in got[1:]}
    assert sorted(by_seq) == [1, 2, 3, 4, 5]
    assert {seq: (row[6], row[7]) for seq, row in by_seq.items()} == {
        1: ("0", "0"), 2: ("3", "0"), 3: ("0", "0"), 4: ("137", "0"), 5: ("-1", "15")}
    assert by_seq[3][8] == "printf 'b\\tc\\n'"  # backslashes as the command has them, as parallel writes
    assert {row[1] for row in got[1:]} <= {"n1", "n2"}
    # the scripts of parallel's users: failed jobs are those whose Exitval is not 0
    failed = subprocess.run(["awk", "-F\t", "NR > 1 && $7 != 0 {print $1}", "log"], capture_output=True, text=True,
                            cwd=clstr.cwd).stdout.split()
    assert sorted(failed) == ["2", "4", "5"]


@needs_parallel
def test_resume_from_a_log_gnu_parallel_wrote(clstr):
    parallel("--joblog", "log", ":::", *JOBS, cwd=clstr.cwd)
    assert len(rows(clstr.cwd / "log")) == 5
    r = clstr("-n", "n1", "--joblog", "log", "--resume", *jobs_args(JOBS + ["echo new"]))
    assert (r.returncode, r.stdout) == (0, "new\n"), r.stderr  # every ended job skipped, as parallel's --resume
    r = clstr("-n", "n1", "--job-failures", "job", "--joblog", "log", "--resume-failed",
              *jobs_args(JOBS + ["echo new"]))
    assert r.returncode == 1  # the two failed jobs ran again (and fail again)
    assert "3 skipped" in r.stderr and "failed: job 2" in r.stderr and "failed: job 4" in r.stderr


@needs_parallel
def test_gnu_parallel_resumes_from_a_log_clstr_wrote(clstr):
    r = clstr("-n", "n1", "--job-failures", "job", "--joblog", "log", *jobs_args(JOBS))
    assert r.returncode == 1
    # parallel's --resume-failed reads clstr's log: it runs the failed seqs (2 and 4) again, locally
    p = parallel("--joblog", "log", "--resume-failed", "-k", ":::", "echo again a", "echo again 3", "echo again b",
                 "echo again kill", cwd=clstr.cwd)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["again 3", "again kill"]


def test_resume_with_clstr_0_2_logs(clstr):
    old = ["Seq\tHost\tStarttime\tJobRuntime\tExitval\tAttempt\tOutcome\tCommand",
           "1\tn1\t1.0\t0.1\t0\t1\tsucceeded\techo a",
           "2\tn1\t1.0\t0.1\t1\t1\trequeued\texit 3",
           "2\tn2\t1.0\t0.1\t1\t2\tfailed\texit 3",
           "3\tn1\t1.0\t0.1\t0\t1\tinterrupted\tprintf 'b\\\\tc\\\\n'"]
    (clstr.cwd / "log").write_text("\n".join(old) + "\n")
    r = clstr("-n", "n1", "--joblog", "log", "--resume", *jobs_args(JOBS[:3]))
    assert (r.returncode, r.stdout) == (0, "b\tc\n"), r.stderr


@pytest.mark.parametrize("text,message", [
    ("Seq\tHost\tWhen\n1\tx\t2\n",
     "log:1: not a job log of clstr or GNU parallel (its first line is not their header)"),
    ("\t".join(JOBLOG_COLUMNS) + "\n1\tn1\t1.0\n", "log:2: malformed job log row"),
    ("echo a\necho b\n", "log:1: not a job log of clstr or GNU parallel (its first line is not their header)"),
])
def test_resume_refuses_what_it_cannot_read(clstr, text, message):
    (clstr.cwd / "log").write_text(text)
    r = clstr("-n", "n1", "--joblog", "log", "--resume", "-j", "touch ran")
    assert (r.returncode, r.stderr) == (2, f"clstr: {message}\n")
    assert not (clstr.cwd / "ran").exists()
    assert (clstr.cwd / "log").read_text() == text  # nothing appended


def test_resume_on_each_node_runs_only_where_it_did_not_succeed(clstr, testbed):
    import json
    flag = clstr.cwd / "flag"
    job = f'case "$SSH_CONNECTION" in *" {testbed.addr["n2"]} "*) [ -e {flag} ] || exit 5;; esac; echo ran'
    nodes = ["-n", "n1", "-n", "n2", "-n", "n3", "--joblog", "log", "--job-failures", "job"]
    r = clstr(*nodes, "-E", job)
    assert (r.returncode, r.stdout) == (1, "ran\nran\n")
    assert r.stderr.splitlines()[-3:] == [  # folded, as a pssh user looks for it; then how to go on, the counts
        "clstr: failed on n2", "clstr: the job log log has a row of each job that ended: --joblog log --resume runs "
        "the jobs not run, --resume-failed the failed ones too", "clstr: 3 jobs: 2 succeeded, 1 failed, 0 not run."]
    r = clstr(*nodes, "-E", job, "--resume")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr  # every node ended it (n2 failed)
    flag.touch()
    r = clstr(*nodes, "-E", "echo other", "--resume-failed")
    assert (r.returncode, r.stdout) == (0, "other\nother\nother\n")  # another command: nothing of it ended
    r = clstr(*nodes, "-E", job, "--resume-failed", "--json", "out.json")
    assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr  # n2 only
    result = json.loads((clstr.cwd / "out.json").read_text())
    assert result["counts"]["skipped"] == 2 and [j["node"] for j in result["jobs"]] == ["n2"]


def test_on_each_node_names_the_nodes_it_failed_and_did_not_run_on_folded(clstr):
    r = clstr("-n", "n[1-3],refused", "--job-failures", "job", "-E", "exit 3")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-3:] == ["clstr: failed on n[1-3]", "clstr: not run on refused",
                                          "clstr: 4 jobs: 0 succeeded, 3 failed, 1 not run."]
