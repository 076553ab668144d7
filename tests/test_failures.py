"""Nothing lost: failure policy, time limits, dead workers, interruption, job log and resume.

Every test asserts the exact set of job outputs against the real sshd testbed.
"""
import json
import os
import shlex
import signal
import subprocess

import psutil
import pytest

from conftest import lines, read_until, signal_when, wait_for


def jobs_args(commands):
    out = []
    for c in commands:
        out += ["-j", c]
    return out


def with_cmdline(text):
    """Processes whose command line contains ``text``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if text in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def run_marker(testbed):
    """Processes that are ssh of the testbed (every ssh clstr starts names its config)."""
    return with_cmdline(testbed.ssh_config)


def remote_leftovers(text, grace=10):
    """Processes of a job on the nodes whose command line has ``text``, once they had ``grace`` s to end.

    The node ends a job when it sees its connection close, a moment after clstr has exited.
    """
    _, alive = psutil.wait_procs(with_cmdline(text), timeout=grace)
    return alive


def test_hung_node_rejected_and_jobs_done(clstr):
    good = [f"echo job {i}" for i in range(10)]
    r = clstr("-n", "hung", "-n", "n1", "-n", "n2", "--connect-timeout", "2", *jobs_args(good))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(10))
    # its connection timed out while jobs waited, or it was still connecting, with its job taken
    # by a ready slot, when the others had done the rest (issue 36 item 4)
    assert "node hung retired: timed out" in r.stderr or \
        "node hung: still connecting after" in r.stderr and "when the run ended (its job ran elsewhere)" in r.stderr


def test_always_failing_job_retires_at_most_max_attempts(clstr):
    good = [f"echo job {i}" for i in range(20)]
    r = clstr("-n", "n[1-8]", *jobs_args(["exit 7"] + good))
    assert r.returncode == 1
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(20))
    assert "failed: job 1" in r.stderr and "(exit 7 on 3 nodes): exit 7" in r.stderr
    retired = r.stderr.split("retired nodes: ", 1)[1]
    assert retired.count("(job 1 exit 7)") == 3


def test_failing_jobs_first_on_two_nodes_lose_nothing(clstr):
    good = [f"echo job {i}" for i in range(20)]
    r = clstr("-n", "n1", "-n", "n2", *jobs_args(["false", "false"] + good))
    assert r.returncode == 1
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(20))
    assert "2 failed, 0 not run" in r.stderr


def test_job_failures_mode_keeps_nodes_and_retries(clstr, tmp_path):
    count = tmp_path / "count"
    job = f"echo try >> {count}; exit 3"
    r = clstr("-n", "n1", "-n", "n2", "--job-failures", "job", "--retries", "2",
              *jobs_args([job, "echo fine"]))
    assert r.returncode == 1
    assert r.stdout == "fine\n"
    assert count.read_text() == "try\n" * 3  # the first run and two retries
    assert "retired" not in r.stderr
    assert "failed: job 1" in r.stderr and "(exit 3)" in r.stderr


def test_job_that_kills_its_connection_is_requeued(clstr, tmp_path):
    marker = tmp_path / "killed-once"
    # the first attempt kills the sshd session process serving it; the second one completes
    kill_session = ('p=$PPID; while [ "$p" -gt 1 ]; do case "$(ps -o args= -p $p)" in '
                    '"sshd: "*@notty*) kill -9 $p; break;; esac; p=$(ps -o ppid= -p $p | tr -d " "); done')
    job = f"if [ ! -e {marker} ]; then touch {marker}; {kill_session}; sleep 5; fi; echo survived"
    r = clstr("-n", "n1", "-n", "n2", "--job-failures", "job", "--no-multiplex", "-j", job)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "survived\n"
    assert "retired: connection lost" in r.stderr


def kill_all(procs):
    """End processes a test stopped (they may be gone already)."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


def test_node_dies_mid_job_silently(clstr, testbed):
    """The node stops answering (its sshd sessions are stopped): keepalives find it, the job moves."""
    job = f'case "$SSH_CONNECTION" in *" {testbed.addr["n1"]} "*) echo on-n1; sleep 60;; esac; echo done'
    p = clstr.popen("-n", "n1", "-n", "n2", "-m", "1", "--job-failures", "job",
                    "-O", "ServerAliveInterval=1", "-O", "ServerAliveCountMax=2", "-j", job,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = []
    try:
        read_until(p.stdout, ["on-n1"])
        for child in testbed.session_processes("n1"):
            child.suspend()  # n1 goes silent: no answer, no reset
            stopped.append(child)
        assert stopped
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        kill_all(stopped)
    assert p.returncode == 0, err
    assert out == "done\n"  # on-n1 was read above
    assert "node n1 retired: connection lost" in err


def test_on_each_node_a_node_that_goes_silent_mid_job_is_lost_not_the_jobs_failure(clstr, testbed):
    """With one session a job and no shared connection to ask (-E), and ssh's own words hidden
    (the testbed's ssh_config says LogLevel ERROR), a connection that died of silence looks like
    a job that killed its shell: the node is asked whether the job's wrapper lives on."""
    job = f'case "$SSH_CONNECTION" in *" {testbed.addr["n1"]} "*) echo on-n1; sleep 60;; esac; echo done'
    p = clstr.popen("-n", "n1", "-n", "n2", "-O", "ServerAliveInterval=1", "-O", "ServerAliveCountMax=2",
                    "--json", "-", "-o", os.devnull, "-E", job,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = []

    def freeze():
        """Suspend the sshd session of n1 that runs the job (its sleep beneath it), and all beneath."""
        for child in testbed.session_processes("n1"):
            try:
                below = child.children(recursive=True)
                if any(c.name() == "sleep" for c in below):
                    for c in [child] + below:
                        c.suspend()
                        stopped.append(c)
                    return True
            except psutil.Error:
                continue
        return False
    try:
        assert wait_for(freeze)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        kill_all(stopped)
    result = json.loads(out)
    by_node = {j["node"]: j for j in result["jobs"]}
    assert by_node["n2"]["outcome"] == "succeeded"
    first = by_node["n1"]["attempts"][0]
    assert (first["ending"], first["reason"]) == ("lost", "connection lost"), err
    assert "node n1 retired: connection lost" in err


def test_on_each_node_a_job_that_kills_its_shell_is_its_own_failure_once_the_node_says_so(clstr):
    """The other side of the one above: no end mark, no word of ssh's, and the node answers that
    the job's wrapper is gone: the job killed it, which is the job's failure, not a lost connection."""
    r = clstr("-n", "n1", "--json", "-", "-o", os.devnull, "-E", "echo hi; kill -9 $PPID; sleep 1")
    job = json.loads(r.stdout)["jobs"][0]
    assert (job["outcome"], job["attempts"][0]["ending"]) == ("failed", "exit"), r.stderr
    assert "its shell was killed before its end mark" in job["reason"]
    assert "connection lost" not in r.stderr


@pytest.mark.parametrize("mode", [[], ["--no-pipeline"]])
def test_timeout_fails_job_and_keeps_node(clstr, tmp_path, mode):
    after = tmp_path / "after"
    job = f"sleep 30; touch {after}"
    r = clstr(*mode, "-n", "n1", "--timeout", "1", *jobs_args([job, "echo next"]))
    assert r.returncode == 1
    assert r.stdout == "next\n"
    assert "failed: job 1 on n1 (timeout)" in r.stderr
    assert "retired" not in r.stderr
    # the remote job was ended with its ssh: nothing of it is left on the node
    assert remote_leftovers("sleep 30; touch") == []


@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])
def test_login_shell_clstr_does_not_know_runs_job_and_cleans_up(clstr, testbed, tmp_path, mode):
    """$SHELL is a bash at a path not in INLINE_SHELLS: sh starts the watcher, $SHELL runs the job."""
    after = tmp_path / "after-othershell"
    r = clstr("-n", "othershell", *mode, "--timeout", "2",
              *jobs_args(['echo "$0"', "echo $((6 * 7))", f"sleep 31; touch {after}"]))
    # the job ran as `$SHELL -c` (its $0), with bash syntax; the timed-out one was ended on the node
    assert sorted(r.stdout.splitlines()) == sorted([testbed.other_shell, "42"])
    assert "failed: job 3 on othershell (timeout)" in r.stderr
    assert remote_leftovers("sleep 31; touch") == []
    assert not after.exists()


def test_worker_killed_job_requeued(clstr, testbed, tmp_path):
    marker = tmp_path / "first"
    job = f"if [ ! -e {marker} ]; then touch {marker}; echo first-started; sleep 60; fi; echo rerun"
    p = clstr.popen("-n", "n1", "-j", job, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["first-started"])
        workers = [c for c in psutil.Process(p.pid).children() if "ssh" not in c.name()]
        victim = None
        for w in workers:
            if any("ssh" in c.name() for c in w.children()):
                victim = w
        assert victim is not None
        victim.kill()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out == "rerun\n"
    assert "died" in err
    assert not run_marker(testbed)


@pytest.mark.parametrize("sig,code,mode", [(signal.SIGINT, 130, []), (signal.SIGTERM, 143, []),
                                           (signal.SIGINT, 130, ["--no-pipeline"])])
def test_interrupt_ends_everything(clstr, testbed, tmp_path, sig, code, mode):
    jobs = [f"echo started {i}; sleep 60; echo never" for i in range(4)] + ["echo queued"] * 3
    p = clstr.popen(*mode, "-n", "2/n1", "-n", "2/n2", *jobs_args(jobs), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = signal_when(p, [f"started {i}" for i in range(4)], sig)
    assert p.returncode == code, err
    assert "never" not in out and "queued" not in out
    assert err.splitlines()[-2:] == ["clstr: 7 jobs not run (interrupted): jobs 1-7",
                                     "clstr: 7 jobs: 0 succeeded, 0 failed, 7 not run."]  # folded, counts last
    assert not run_marker(testbed)
    assert remote_leftovers("sleep 60; echo never") == []


def test_joblog_and_resume_after_interrupt(clstr, tmp_path):
    results = tmp_path / "results"
    fast = tmp_path / "fast"
    log = tmp_path / "joblog.tsv"
    jobs = [f"echo job {i} >> {results}; echo quick {i}" for i in range(1, 5)]
    jobs += [f"echo slow {i}; [ -e {fast} ] || sleep 60; echo job {i} >> {results}" for i in range(5, 9)]
    args = ["-n", "2/n1", "-n", "2/n2", "-m", "4", "--joblog", str(log), *jobs_args(jobs)]
    p = clstr.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # slow jobs start only once the quick ones ended (at most four at once): all are logged then
    out, err = signal_when(p, [f"slow {i}" for i in range(5, 9)], signal.SIGINT)
    assert p.returncode == 130, err
    rows = [r.split("\t") for r in log.read_text().splitlines()]
    assert rows[0] == ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"]
    # GNU parallel's log: a row per ended job; the interrupted ones have none, so --resume runs them
    assert sorted(int(r[0]) for r in rows[1:]) == [1, 2, 3, 4]
    assert all(r[6] == "0" and r[7] == "0" for r in rows[1:])
    fast.touch()
    r = clstr(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"slow {i}" for i in range(5, 9))
    assert sorted(results.read_text().splitlines()) == sorted(f"job {i}" for i in range(1, 9))
    rows = [r.split("\t") for r in log.read_text().splitlines()]
    assert sorted(int(r[0]) for r in rows[1:] if r[6] == "0") == list(range(1, 9))


def test_supervisor_killed_workers_and_jobs_end(clstr, testbed, tmp_path):
    """Even SIGKILL of clstr itself: its workers see their pipe close, end their ssh and exit."""
    p = clstr.popen("-n", "n1", "-n", "n2", "--no-multiplex",
                    *jobs_args([f"echo started {i}; sleep 60; echo never" for i in range(2)]),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["started 0", "started 1"])
        workers = psutil.Process(p.pid).children()
        assert len([w for w in workers if "python" in w.name()]) == 2
        p.kill()
        p.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == []
    finally:
        p.kill()
    assert not run_marker(testbed)


def test_ssh_delay_paces_connections_and_loses_nothing(clstr):
    r = clstr("-n", "n1", "-n", "n2", "--ssh-delay", "0.1", *jobs_args([f"echo d{i}" for i in range(5)]))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == [f"d{i}" for i in range(5)]


def test_second_interrupt_skips_the_grace(clstr, testbed):
    jobs = [f"echo started {i}; sleep 60" for i in range(2)]
    p = clstr.popen("-n", "n1", "-n", "n2", *jobs_args(jobs), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = signal_when(p, ["started 0", "started 1"], signal.SIGINT, signal.SIGINT)
    assert p.returncode == 130, err
    assert "2 jobs: 0 succeeded, 0 failed, 2 not run" in err
    assert not run_marker(testbed)


def test_background_process_of_a_finished_job_survives(clstr, tmp_path):
    """Remote cleanup ends jobs whose ssh ended early, not what a finished job left running."""
    import threading
    gate, back = tmp_path / "gate", tmp_path / "back"
    os.mkfifo(gate)
    os.mkfifo(back)
    job = f"(cat {gate} >/dev/null; echo alive > {back}) >/dev/null 2>&1 & echo launched"
    r = clstr("-n", "n1", "-j", job)
    assert (r.returncode, r.stdout) == (0, "launched\n"), r.stderr
    heard = []

    def talk():
        with open(gate, "w") as g:
            g.write("go\n")
        with open(back) as b:
            heard.append(b.read())
    t = threading.Thread(target=talk, daemon=True)
    t.start()
    t.join(20)
    assert heard == ["alive\n"]


def test_reader_leaving_stops_the_run_quietly(clstr, testbed):
    argv = " ".join(shlex.quote(a) for a in clstr.argv(
        "-n", "2/n1", "-n", "2/n2", *jobs_args(["seq 100000", "seq 100000", "echo s; sleep 60"])))
    r = subprocess.run(["bash", "-c", argv + ' | head -1; echo "status ${PIPESTATUS[0]}"'],
                       capture_output=True, text=True, env=clstr.env(), timeout=60)
    out = r.stdout.splitlines()
    assert out[-1] == "status 141"
    assert len(out) == 2 and out[0] in ("1", "s")
    assert r.stderr == ""
    assert not run_marker(testbed)


@pytest.mark.parametrize("mode", [["-E", "echo $SSH_CONNECTION | cut -d' ' -f3"],
                                  ["-n", "2/n[1-4]", "--no-multiplex", "-j", "echo x", "-j", "echo x"]])
def test_connection_limit_loses_nothing(clstr, testbed, mode):
    r = clstr("--max-connecting", "1", "-n", "n[1-4],refused", *mode)
    if mode[0] == "-E":
        assert r.returncode == 1, r.stderr
        assert lines(r.stdout) == sorted(testbed.addr[n] for n in ("n1", "n2", "n3", "n4"))
        assert "5 jobs: 4 succeeded, 0 failed, 1 not run" in r.stderr
    else:
        assert (r.returncode, lines(r.stdout)) == (0, ["x", "x"]), r.stderr


# ---- one job a node (-E): a slot whose worker is its ssh (execslot.py), or a forked worker ----
# (tests/test_slot_kinds.py runs these, and the other -E tests, with forked workers too)
def test_on_each_node_timeout_fails_the_job_and_ends_it_on_the_node(clstr):
    r = clstr("-n", "n1", "-n", "n2", "--timeout", "1", "-E",
              'case "$SSH_CONNECTION" in *" 127.0.0.2 "*) sleep 30; echo late-each;; esac; echo quick')
    assert r.returncode == 1
    assert r.stdout == "quick\n"
    assert "failed: job 1 on n1 (timeout)" in r.stderr and "retired" not in r.stderr
    assert remote_leftovers("sleep 30; echo late-each") == []


def test_on_each_node_idle_timeout_and_a_long_job_of_its_own(clstr):
    job = 'case "$SSH_CONNECTION" in *" 127.0.0.3 "*) echo a; sleep 30;; esac; echo b'
    r = clstr("-n", "n1", "-n", "n2", "--idle-timeout", "1", "-E", job)
    assert r.returncode == 1
    assert sorted(r.stdout.split()) == ["a", "b"]
    assert "failed: job 2 on n2 (idle timeout)" in r.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_on_each_node_interrupt_ends_everything(clstr, testbed, sig, code):
    p = clstr.popen("-n", "n[1-4]", "-E", "echo started; sleep 60; echo never-each", stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = signal_when(p, ["started"] * 4, sig)
    assert p.returncode == code, err
    assert "never-each" not in out
    assert err.splitlines()[-3:] == ["clstr: 4 jobs not run (interrupted): jobs 1-4", "clstr: not run on n[1-4]",
                                     "clstr: 4 jobs: 0 succeeded, 0 failed, 4 not run."]
    assert not run_marker(testbed)
    assert remote_leftovers("sleep 60; echo never-each") == []

