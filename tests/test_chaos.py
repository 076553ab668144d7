"""A bounded chaos run: random jobs, a node frozen and one dying mid-run, workers killed.

Every job must end with exactly the outcome its command decides (job failures mode), and
the summary, the exit status, the job log and the JSON must agree on all of them.
"""
import json
import os
import random
import subprocess

import psutil
import pytest

from clstr.joblog import JOBLOG_COLUMNS
from conftest import wait_for
from sshnodes import Testbed
from test_failures import run_marker


@pytest.fixture(scope="module")
def chaos_bed(tmp_path_factory):
    """Five nodes, each with an sshd of its own, so that one can be frozen and one killed."""
    with Testbed(tmp_path_factory.mktemp("chaos"), count=5, first_octet=100, per_sshd=1) as tb:
        yield tb


def make_jobs(n, seed):
    """(command, expected outcome, expected exit) for n random jobs."""
    rnd = random.Random(seed)
    jobs = []
    for i in range(1, n + 1):
        nap = f"sleep 0.{rnd.randint(0, 9)}"
        kind = rnd.choice(["out", "out", "out", "err", "noeol", "lines", "exit", "exit255", "killgroup"])
        if kind == "out":
            jobs.append((f"{nap}; echo out-{i}", "succeeded", 0))
        elif kind == "err":
            jobs.append((f"{nap}; echo err-{i} >&2; echo Permission denied >&2; echo out-{i}", "succeeded", 0))
        elif kind == "noeol":
            jobs.append((f"{nap}; printf out-{i}", "succeeded", 0))
        elif kind == "lines":
            jobs.append((f"{nap}; seq 1 {rnd.randint(1, 3000)} >/dev/null; echo out-{i}", "succeeded", 0))
        elif kind == "exit":
            k = rnd.randint(1, 3)
            jobs.append((f"{nap}; echo Connection refused >&2; exit {k}", "failed", k))
        elif kind == "exit255":
            jobs.append((f"{nap}; exit 255", "failed", 255))
        else:  # the cleanup idiom: its EXIT trap ends its own process group, its shell with it
            jobs.append((f'{nap}; trap "kill 0" EXIT; echo out-{i}', "failed", 143))
    return jobs


def signal_all(procs, how):
    """suspend() or kill() each process that still exists (sessions come and go)."""
    for proc in procs:
        try:
            getattr(proc, how)()
        except psutil.Error:
            pass


def rows_in(path):
    try:
        return len(path.read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def wait_rows(path, n, proc):
    """Wait (bounded) until the job log has n rows; False if clstr ended first."""
    wait_for(lambda: rows_in(path) >= n or proc.poll() is not None, 120.0)
    return rows_in(path) >= n


@pytest.mark.timeout(240)
def test_chaos_every_job_one_outcome_and_all_records_agree(chaos_bed, tmp_path):
    tb = chaos_bed
    jobs = make_jobs(400, seed=20261125)
    jobfile = tmp_path / "jobs"
    jobfile.write_text("".join(cmd + "\n" for cmd, _, _ in jobs))
    log, out_json, nodefile = tmp_path / "log", tmp_path / "out.json", tmp_path / "nodes"
    nodefile.write_text("3/n5\nrefused\n")
    argv = ["python3", "-m", "clstr", "--ssh", tb.ssh, "--connect-timeout", "2", "--job-failures", "job",
            "-O", "ServerAliveInterval=1", "-O", "ServerAliveCountMax=2",
            "-n", "3/n1", "-n", "3/n2", "-n", "3/n3", "-n", "3/n4", "-N", str(nodefile),
            "--joblog", str(log), "--json", str(out_json), str(jobfile)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    frozen = []
    try:
        assert wait_rows(log, 30, p)
        os.mkfifo(tmp_path / "fifo")
        os.replace(tmp_path / "fifo", nodefile)  # the live node file becomes a FIFO: refused, the run goes on
        assert wait_rows(log, 60, p)
        frozen = tb.sshd_tree("n4")
        signal_all(frozen, "suspend")  # n4 goes silent mid-job: keepalives find it
        assert wait_rows(log, 140, p)
        # n5 dies: its sshd and sessions first, so its connections drop before any job of it sees a signal
        signal_all(tb.sshd_tree("n5"), "kill")
        assert wait_rows(log, 220, p)
        workers = [c for c in psutil.Process(p.pid).children() if c.name().startswith("python")]
        signal_all(random.Random(7).sample(workers, 2), "kill")  # two workers die mid-job
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
        signal_all(frozen, "kill")
    err = err.decode()
    assert p.returncode == 1, err
    result = json.loads(out_json.read_text())

    # every job: exactly the outcome its command decides
    by_seq = {j["seq"]: j for j in result["jobs"]}
    assert sorted(by_seq) == list(range(1, len(jobs) + 1))
    for seq, (cmd, outcome, status) in enumerate(jobs, 1):
        j = by_seq[seq]
        assert (j["outcome"], j["exit"]) == (outcome, status), (seq, cmd, j)
        if outcome == "failed":
            assert j["reason"] == f"exit {status}"

    # the JSON's counts, the summary, the job log and the exit status agree
    want = {"succeeded": sum(o == "succeeded" for _, o, _ in jobs), "failed": sum(o == "failed" for _, o, _ in jobs)}
    counts = result["counts"]
    assert (counts["succeeded"], counts["failed"], counts["not_run"]) == (want["succeeded"], want["failed"], 0)
    assert f"{len(jobs)} jobs: {want['succeeded']} succeeded, {want['failed']} failed, 0 not run." in err
    assert err.count("clstr: failed: job ") == want["failed"]
    rows = [r.split("\t") for r in log.read_text().splitlines()]
    assert rows[0] == JOBLOG_COLUMNS
    assert sorted(int(r[0]) for r in rows[1:]) == list(range(1, len(jobs) + 1))  # one row a job
    for r in rows[1:]:
        assert int(r[6]) == by_seq[int(r[0])]["exit"] and r[7] == "0"
    assert result["exit_status"] == 1

    # output: every succeeded job's line, at least once (an attempt cut off may have printed it before)
    printed = set(out.decode().split())
    for seq, (cmd, outcome, _) in enumerate(jobs, 1):
        if outcome == "succeeded":
            assert f"out-{seq}" in printed
    # the faults were seen as ssh's, not the jobs'
    assert "n5" in result["nodes"] and result["nodes"]["n5"]["retired"]
    assert result["nodes"]["refused"]["reason"] == "refused"
    assert "died" in err
    assert f"{nodefile}: node file is a FIFO, not a regular file" in err
    assert not run_marker(tb)


@pytest.mark.timeout(240)
def test_chaos_files_on_a_shared_filesystem_then_a_group_sigterm_during_a_return(chaos_bed, tmp_path):
    """--trc of absolute inputs on nodes that share this machine's disk (each send is the input
    itself, each result is home already), jobs failing among them; then a run of the same files to
    a work directory of its own, stopped by SIGTERM to clstr's whole process group while a large
    result comes back. Inputs intact, nothing of clstr's left anywhere, every record agrees."""
    import hashlib
    import signal
    tb = chaos_bed
    rnd = random.Random(20261206)
    (tmp_path / "in").mkdir()
    inputs = {}
    for i in range(60):
        path = tmp_path / "in" / f"i{i}.dat"
        path.write_bytes(rnd.randbytes(rnd.randint(0, 300_000)))
        inputs[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    base = ["python3", "-m", "clstr", "--ssh", tb.ssh, "--connect-timeout", "2", "--job-failures", "job",
            "-n", "3/n1", "-n", "3/n2", "-n", "3/n3"]
    job = 'case {} in *7.dat) exit 7;; esac; cp {} {}.out'
    r = subprocess.run(base + ["--json", "a.json", "--trc", "{}.out", "--", job, ":::", *map(str, inputs)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stderr
    result = json.loads((tmp_path / "a.json").read_text())
    failed = {j["seq"] for j in result["jobs"] if j["outcome"] == "failed"}
    assert failed == {i + 1 for i in range(60) if str(i).endswith("7")}
    for path, digest in inputs.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        if not path.name[:-4].endswith("7"):
            assert hashlib.sha256((tmp_path / "in" / (path.name + ".out")).read_bytes()).hexdigest() == digest
    assert not list(tmp_path.rglob(".clstr*"))

    # the same files, relative, to a work directory of the run's (an absolute path is the same path
    # there, GNU parallel's rule), a large result among them; SIGTERM to the group
    big = tmp_path / "in" / "big.dat"
    big.write_bytes(b"")
    remote = tmp_path / "remote"
    job = 'case {} in *big.dat) head -c 400000000 /dev/zero > {}.out;; *) cp {} {}.out;; esac'
    p = subprocess.Popen(base + ["--wd", str(remote), "--json", "b.json", "--joblog", "log", "--trc", "{}.out",
                                 "--", job, ":::", "in/big.dat", *(f"in/{p.name}" for p in inputs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, start_new_session=True)
    try:
        assert wait_for(lambda: any(n.startswith(".clstr-part-") for n in os.listdir(tmp_path / "in")), 60)
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    err = err.decode()
    assert p.returncode == 143, err
    assert "died" not in err
    result = json.loads((tmp_path / "b.json").read_text())
    outcomes = {j["outcome"] for j in result["jobs"]}
    assert outcomes <= {"succeeded", "failed", "not run"} and len(result["jobs"]) == 61
    big_job = result["jobs"][0]
    assert big_job["outcome"] == "not run" and big_job["reason"] == "interrupted"
    rows = [ln.split("\t") for ln in (tmp_path / "log").read_text().splitlines()[1:]]
    assert sorted(int(r[0]) for r in rows) == sorted(j["seq"] for j in result["jobs"] if j["outcome"] != "not run")
    for path, digest in inputs.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "in" / "big.dat.out").exists()
    assert not list(tmp_path.rglob(".clstr*"))  # no partial here, no hold or temporary name on the node
    assert wait_for(lambda: not run_marker(tb), 15)
