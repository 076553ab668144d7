"""Trust: ssh's failures told from the job's exactly, runs that always end, counts that agree.

Against the real sshd testbed: what a job prints never changes how its node is judged.
"""
import json
import subprocess

import psutil
import pytest

from clstr.joblog import JOBLOG_COLUMNS
from conftest import lines, read_until, wait_for
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
    retirements = [ln.split(";")[0] for ln in r.stderr.splitlines() if " retired: " in ln]
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
    assert "retired nodes: refused (refused: Connection refused)" in r.stderr  # ssh's own words, as pdsh's


@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])
def test_node_that_stalls_after_its_banner_is_an_ssh_failure(clstr, mode):
    r = clstr("-n", "stall", "-n", "n1", "--connect-timeout", "1", *mode, *jobs_args(["echo a", "echo b"]))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["a", "b"]
    # its job went to n1 once n1 was ready and nothing else waited (issue 36 item 4); were n1 slower,
    # stall would have been judged first
    assert "node stall: still connecting after" in r.stderr or "node stall retired: timed out" in r.stderr
    # alone, nothing can take its job: the stall is judged an ssh failure, the job not run
    r = clstr("-n", "stall", "--connect-timeout", "1", "--reprobe-for", "0", *mode, *jobs_args(["echo a"]))
    assert r.returncode == 1
    assert "node stall retired: timed out" in r.stderr and "1 not run" in r.stderr


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


# ---- I/O trouble never aborts a run -------------------------------------------------
def shell(clstr, args, tail):
    """Run clstr through bash, with ``tail`` (redirections, a pipe) after its command line."""
    import shlex
    argv = " ".join(shlex.quote(a) for a in clstr.argv(*args))
    return subprocess.run(["bash", "-c", argv + tail], capture_output=True, text=True, env=clstr.env(),
                          cwd=clstr.cwd, timeout=60)


@pytest.mark.parametrize("tail", [" 2>&-", " 2>&1 >/dev/null | true; exit ${PIPESTATUS[0]}"])
def test_stderr_gone_the_run_goes_on(clstr, tail):
    """A closed stderr or one whose reader left only silences clstr's messages: every job runs."""
    jobs = ["echo to-err >&2; echo a", "sleep 0.5; echo to-err >&2", "exit 3", "echo b"]
    r = shell(clstr, ["-n", "n1", "-n", "n2", "--job-failures", "job", "--joblog", "log", "--json", "out.json",
                      *jobs_args(jobs)], tail)
    assert r.returncode == 1
    result = json.loads((clstr.cwd / "out.json").read_text())
    assert result["counts"] == {"jobs": 4, "succeeded": 3, "failed": 1, "not_run": 0, "skipped": 0}
    rows = (clstr.cwd / "log").read_text().splitlines()
    assert len(rows) == 5


def test_json_is_written_when_stdouts_reader_leaves(clstr):
    r = shell(clstr, ["-n", "n1", "--json", "out.json", "-j", "seq 100000", "-j", "echo x"], " | head -1")
    assert r.stdout == "1\n"
    result = json.loads((clstr.cwd / "out.json").read_text())
    assert result["exit_status"] == 141 and result["interrupted_by"] == "SIGPIPE"


@pytest.mark.parametrize("target", ["/dev/stdout", "pipe"])
def test_joblog_to_a_stream(clstr, target):
    if target == "pipe":
        r = shell(clstr, ["-n", "n1", "-j", "echo a", "--joblog", "/dev/fd/3"], " 3>&1 >/dev/null | cat")
    else:
        r = clstr("-n", "n1", "-j", "echo a", "--joblog", target, "-o", "out")
    assert r.returncode == 0, r.stderr
    rows = [row.split("\t") for row in r.stdout.splitlines()]
    assert rows[0][0] == "Seq" and rows[1][0] == "1" and len(rows) == 2


def test_write_failure_mid_run_stops_new_jobs_and_accounts_for_all(clstr):
    jobs = [f"echo out {i}" for i in range(5)]
    r = clstr("-n", "n1", "-m", "1", "-o", "/dev/full", "--json", "out.json", "--joblog", "log", *jobs_args(jobs))
    assert r.returncode == 1
    assert "cannot write /dev/full: No space left on device; no more jobs start" in r.stderr
    assert "stopped early: cannot write /dev/full: No space left on device" in r.stderr
    result = json.loads((clstr.cwd / "out.json").read_text())
    assert result["error"] == "cannot write /dev/full: No space left on device"
    counts = result["counts"]
    assert counts["jobs"] == 5 and counts["succeeded"] + counts["not_run"] == 5 and counts["not_run"] >= 3
    for j in result["jobs"]:
        if j["outcome"] == "not run":
            assert j["reason"] == "not started: cannot write /dev/full: No space left on device"
    rows = (clstr.cwd / "log").read_text().splitlines()[1:]
    assert len(rows) == counts["succeeded"]


@pytest.mark.parametrize("args,message", [
    (["--joblog", "/dev/full"], "clstr: /dev/full: cannot write job log: No space left on device"),
    (["--output-dir", "od"], "clstr: od: 1.out is a directory: job 1's output cannot go there"),
])
def test_bad_destinations_are_found_before_anything_runs(clstr, args, message):
    (clstr.cwd / "od" / "1.out").mkdir(parents=True)
    r = clstr("-n", "n1", "-j", "touch ran", *args)
    assert (r.returncode, r.stderr) == (2, message + "\n")
    assert not (clstr.cwd / "ran").exists()


def blocked_reading_stdin(pid):
    """Wait (bounded) until process ``pid`` sits in a read(2) of its fd 0; True if it does."""
    def reading():
        try:
            with open(f"/proc/{pid}/syscall") as f:
                return f.read().split()[:2] == ["0", "0x0"]
        except OSError:
            return False
    return wait_for(reading, 20.0)


def test_ctrl_c_while_jobs_are_read_from_stdin(clstr):
    import signal
    p = clstr.popen("-", "-n", "n1", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stdin.write("echo a\n")
        p.stdin.flush()
        assert blocked_reading_stdin(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert (p.returncode, out, err) == (130, "", "clstr: interrupted before any job ran\n")


def test_invalid_utf8_on_stdin_is_passed_through(clstr):
    r = clstr("-n", "n1", "-", input=None, env={"LC_ALL": "C.UTF-8"}) if False else subprocess.run(
        clstr.argv("-", "-n", "n1"), input=b"printf '%s\\n' \xff | od -An -tx1\n", capture_output=True,
        env=clstr.env({"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}), cwd=clstr.cwd, timeout=60)
    assert (r.returncode, r.stdout.split()) == (0, [b"ff", b"0a"]), r.stderr


# ---- security: no planted link is followed ------------------------------------------
def test_output_dir_others_can_write_is_refused_unless_sticky(clstr, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    r = clstr("-n", "n1", "-j", "echo hi", "--output-dir", str(shared))
    assert r.returncode == 2
    assert "can be written by other users and is not sticky" in r.stderr


def planted_link(tmp_path, name):
    """A sticky directory others can write, holding ``name``: a link another user planted to a file of ours."""
    shared = tmp_path / "sticky"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (shared / name).symlink_to(victim)
    return shared, victim


def test_planted_link_in_a_sticky_output_dir_is_not_followed(clstr, tmp_path):
    shared, victim = planted_link(tmp_path, "1.out")
    r = clstr("-n", "n1", "-j", "echo hi", "-j", "echo there", "--output-dir", str(shared))
    assert victim.read_text() == "precious\n"
    assert r.returncode == 1
    assert r.stderr.count(f"not started: cannot write {shared}/1.out: Too many levels of symbolic links") == 2


# ---- signals and the control directory ----------------------------------------------
def control_dirs(base):
    return sorted(p.name for p in base.iterdir() if p.name.startswith("clstr-"))


@pytest.fixture
def short_tmp():
    """A TMPDIR short enough for control sockets (pytest's own tmp_path is too long for them)."""
    import shutil
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="ct", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_sighup_ends_the_run_like_sigterm(clstr, testbed, short_tmp):
    tmp_path = short_tmp
    import signal
    jobs = [f"echo started {i}; sleep 60; echo never" for i in range(2)] + ["echo queued"]
    p = clstr.popen("-n", "n1", "-n", "n2", "--joblog", "log", "--json", "out.json", *jobs_args(jobs),
                    env={"TMPDIR": str(tmp_path)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["started 0", "started 1"])
        assert len(control_dirs(tmp_path)) == 1
        p.send_signal(signal.SIGHUP)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 129, err
    assert "3 jobs: 0 succeeded, 0 failed, 3 not run" in err
    assert json.loads((clstr.cwd / "out.json").read_text())["interrupted_by"] == "SIGHUP"
    rows = (clstr.cwd / "log").read_text().splitlines()
    assert rows == ["\t".join(JOBLOG_COLUMNS)]  # no job ended: a --resume runs all three
    assert not run_marker(testbed)
    assert control_dirs(tmp_path) == []


def test_control_dir_of_a_killed_run_is_removed_by_the_next(clstr, testbed, short_tmp):
    tmp_path = short_tmp
    p = clstr.popen("-n", "n1", "-j", "echo started; sleep 60", env={"TMPDIR": str(tmp_path)},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["started"])
        stale = control_dirs(tmp_path)
        assert len(stale) == 1
        p.kill()
        p.wait(10)
    finally:
        p.kill()
    masters = [q for q in run_marker(testbed) if "ControlMaster=yes" in q.cmdline()]
    assert len(masters) == 1  # the killed run's master idles on (ControlPersist)
    r = clstr("-n", "n1", "-j", "echo next", env={"TMPDIR": str(tmp_path)})
    assert (r.returncode, r.stdout) == (0, "next\n"), r.stderr
    assert control_dirs(tmp_path) == []
    assert psutil.wait_procs(masters, timeout=10)[1] == []  # the next run ended it
    assert not run_marker(testbed)


def test_long_tmpdir_keeps_socket_paths_short(clstr, tmp_path):
    deep = tmp_path / ("scratch-" + "x" * 40) / ("job-" + "y" * 40)
    deep.mkdir(parents=True)
    r = clstr("-n", "n1", "-n", "n2", *jobs_args(["echo a", "echo b", "echo c"]), env={"TMPDIR": str(deep)})
    assert (r.returncode, lines(r.stdout)) == (0, ["a", "b", "c"]), r.stderr
    assert control_dirs(deep) == []


@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])
def test_timeout_ends_a_job_that_ignores_sigterm(clstr, mode):
    """Over a shared connection too: the slot is free within the kill grace, the node KILLs the job."""
    from test_failures import remote_leftovers
    job = "trap '' TERM; echo started; sleep 37; echo never"
    r = clstr("-n", "n1", "--timeout", "1", *mode, *jobs_args([job, "echo next"]), timeout=30)
    assert (r.returncode, r.stdout) == (1, "started\nnext\n"), r.stderr
    assert "failed: job 1 on n1 (timeout)" in r.stderr
    assert remote_leftovers("sleep 37") == []


def test_blocked_stdout_reader_blocks_neither_timeouts_nor_signals(clstr, testbed, tmp_path):
    import os
    import signal
    import shlex
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    log = tmp_path / "log"
    jobs = ["seq 1 300000", "sleep 30"]  # 2 MB of output, far more than a pipe holds; then a job to time out
    argv = " ".join(shlex.quote(a) for a in clstr.argv("-n", "n1", "-n", "n2", "--timeout", "2", "--joblog",
                                                         str(log), *jobs_args(jobs)))
    # the reader takes nothing until the gate opens
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", f"{argv} | {{ read -r _ < {gate}; wc -l >/dev/null; }}"],
                         env=clstr.env(),
                         cwd=clstr.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        # both jobs end (the second by its timeout) while the reader still blocks
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 3)
        rows = {r.split("\t")[0]: r.split("\t")[6:8] for r in log.read_text().splitlines()[1:]}
        assert rows == {"1": ["0", "0"], "2": ["-1", "15"]}  # the second timed out, as parallel writes it
        clstr_proc = [c for c in psutil.Process(p.pid).children() if "clstr" in " ".join(c.cmdline())][0]
        clstr_proc.send_signal(signal.SIGTERM)
        clstr_proc.wait(15)  # it gives the reader its grace, then goes (raises TimeoutExpired if not)
        with open(gate, "w") as g:
            g.write("go\n")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 143
    assert "bytes of job output were not written: their reader did not take them" in err
    assert "timeout" in err
    assert not run_marker(testbed)


def test_planted_link_as_job_log_in_a_shared_dir_is_refused(clstr, tmp_path):
    shared, victim = planted_link(tmp_path, "log")
    r = clstr("-n", "n1", "-j", "touch ran", "--joblog", str(shared / "log"))
    assert (r.returncode, victim.read_text()) == (2, "precious\n")
    assert "cannot write job log: Too many levels of symbolic links" in r.stderr
    assert not (clstr.cwd / "ran").exists()


def test_job_not_in_utf8_is_run_and_logged_as_it_is(clstr):
    (clstr.cwd / "jobs").write_bytes(b"printf '%s\\n' \xff | od -An -tx1\n")
    r = clstr("-n", "n1", "--joblog", "log", "--json", "out.json", "jobs")
    assert (r.returncode, r.stdout.split()) == (0, ["ff", "0a"]), r.stderr
    assert (clstr.cwd / "log").read_bytes().splitlines()[1].endswith(b"\t0\t0\tprintf '%s\\n' \xff | od -An -tx1")
    r = clstr("-n", "n1", "--joblog", "log", "--resume", "jobs")
    assert (r.returncode, r.stdout) == (0, "")  # found in the log as it was written


# ---- conventions: -S, host:port ---------------------------------------------------------
@pytest.mark.parametrize("jobs,plain,largest", [
    (["exit 0", "exit 3", "exit 7"], 1, 7),
    (["exit 0", "echo ok"], 0, 0),
    (["exit 255"], 1, 255),
])
def test_max_exit_is_the_largest_status_as_pdsh_S(clstr, jobs, plain, largest):
    args = ["-n", "n1", "-n", "n2", "--job-failures", "job", *jobs_args(jobs)]
    assert clstr(*args).returncode == plain
    r = clstr(*args, "-S", "--json", "out.json")
    assert r.returncode == largest
    assert json.loads((clstr.cwd / "out.json").read_text())["exit_status"] == largest


def test_max_exit_counts_a_node_that_never_ran_as_255(clstr):
    r = clstr("-n", "refused", "-n", "n1", "-E", "exit 2", "-S")
    assert r.returncode == 255


def test_host_with_port(clstr, testbed):
    addr = testbed.addr["n3"]
    r = clstr("-n", f"{addr}:{testbed.port}", "-n", f"{testbed.user}@{addr}:{testbed.port}",
              "-E", "echo $SSH_CONNECTION", "--no-multiplex")
    assert r.returncode == 0, r.stderr
    assert [line.split()[2:] for line in r.stdout.splitlines()] == [[addr, str(testbed.port)]] * 2
    r = clstr("-n", f"{addr}:1", "-j", "true")  # nothing listens on port 1: refused, the port was used
    assert "retired nodes: " in r.stderr and "(refused: Connection refused)" in r.stderr


# ---- workers follow the concurrency ---------------------------------------------
def test_fanout_bounds_workers_not_only_running_jobs(clstr, testbed, tmp_path):
    """-f 2 -E on six nodes: a worker whose node has run its job goes at once; at most two live.

    A slot's worker is a forked Python process, or its ssh itself (execslot.py): either kind is
    a child of clstr's, two of them while two jobs run."""
    import os
    nodes = [f"n{i}" for i in range(1, 7)]
    for node in nodes:
        os.mkfifo(tmp_path / f"gate.{testbed.addr[node]}")
    job = (f'a=$(echo $SSH_CONNECTION | cut -d" " -f3); echo started $a; read x < {tmp_path}/gate.$a; '
           'echo done $a')
    p = clstr.popen("-f", "2", "-E", job, "-n", *nodes, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def workers():
        try:
            return [c for c in psutil.Process(p.pid).children()
                    if c.name().startswith(("python", "ssh")) and c.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            return []
    try:
        started = []
        for _ in range(3):
            got = []
            while len(got) < 2:
                line = p.stdout.readline()
                assert line, "clstr ended early"
                if line.startswith("started "):
                    got.append(line.split()[1])
            started += got
            assert wait_for(lambda: len(workers()) == 2, 15), [w.pid for w in workers()]
            for addr in got:
                with open(tmp_path / f"gate.{addr}", "w") as g:
                    g.write("go\n")
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert sorted(started) == sorted(testbed.addr[n] for n in nodes)


def test_the_summary_says_ssh_own_words_for_each_node_it_retired(clstr, tmp_path):
    # as pdsh shows them (issue 34 item 4): the short reason the policy reads, then what ssh said
    r = clstr("-n", "n1", "refused", "badauth", "--json", "out.json", "-E", "true")
    assert r.returncode == 1
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("clstr: retired nodes: "))
    assert "refused (refused: Connection refused)" in line  # (in the order they were retired)
    assert "badauth (authentication: Permission denied (publickey); a configuration error, not probed again)" in line
    nodes = json.loads((tmp_path / "out.json").read_text())["nodes"]
    assert (nodes["refused"]["reason"], nodes["refused"]["ssh_said"]) == ("refused", "Connection refused")
    assert "ssh_said" not in nodes["n1"]
