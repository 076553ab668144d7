"""Trust, round two: what a second hostile review found, one test an item, against the real sshd
testbed where a node is involved.

Live node files that turn into a FIFO or a device, user files that never end, jobs that kill
their own process group or the job loop, a connection blip in a one-node run, text streams
given to the library, a background process's late partial line, ssh's own lines before a job,
a line that never ends, and --resume with duplicate commands.
"""
import io
import json
import os
import subprocess

import psutil
import pytest

import clstr
from clstr import userfiles
from clstr.errors import InputError
from conftest import lines, wait_for
from sshnodes import Relay
from test_failures import run_marker
from test_reprobe import finish, read_stderr_until


def state_of(path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def gated(gate, n):
    return "".join(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo job-{i}\n" for i in range(1, n + 1))


# ---- 1, 2: a live node file that turns into a FIFO, a device, or a huge file ---------------
def live_run(clstr, tmp_path, nodes, njobs):
    """clstr running ``njobs`` gated jobs on the live node file ``-N nodes.txt`` (holding ``nodes``),
    once every node runs one: (process, gate, state file, node file, stderr lines seen)."""
    gate, state, path = tmp_path / "gate", tmp_path / "state.json", tmp_path / "nodes.txt"
    (tmp_path / "jobs").write_text(gated(gate, njobs))
    path.write_text("".join(n + "\n" for n in nodes))
    p = clstr.popen("--state", str(state), "jobs", "-N", str(path), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    running = lambda: ((state_of(state) or {}).get("counts") or {}).get("running") == len(nodes)  # noqa: E731
    if not wait_for(running, 30):
        p.kill()
        raise AssertionError(p.communicate()[1])
    return p, gate, state, path, []


def turn_into(tmp_path, path, what):
    """Replace ``path`` in one step with a FIFO, a link to /dev/zero, or 300,000 lines."""
    new = tmp_path / "new"
    if what == "fifo":
        os.mkfifo(new)  # nobody ever writes it: an open() for reading would wait forever
    elif what == "dev-zero":
        new.symlink_to("/dev/zero")  # endless: read whole, it would take all memory
    else:
        new.write_text("".join(f"h{i}\n" for i in range(300_000)))
    os.replace(new, path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("turn", ["fifo", "dev-zero", "huge"])
def test_a_live_node_file_that_turns_odd_is_refused_and_the_run_goes_on(clstr, tmp_path, turn):
    p, gate, state, nodes, seen = live_run(clstr, tmp_path, ["n1", "n2"], 4)
    try:
        turn_into(tmp_path, nodes, turn)
        line = read_stderr_until(p, "the run keeps its node list", seen)
        why = {"fifo": "node file is a FIFO, not a regular file", "dev-zero": "node file is a device, not a regular file",
               "huge": "node list has more than 100000 slots"}[turn]
        assert line.startswith(f"clstr: {nodes}") and why in line, line
        snap = state_of(state)  # the loop went on: the snapshot is fresh and the pool unchanged
        assert snap["state"] == "running" and sorted(snap["nodes"]) == ["n1", "n2"]
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert sorted(out.split()) == [f"job-{i}" for i in range(1, 5)]
    assert err.count("the run keeps its node list") == 1  # said once, not once a second


@pytest.mark.timeout(60)
def test_a_live_node_file_turned_fifo_does_not_stop_sigterm(clstr, tmp_path):
    p, gate, state, nodes, seen = live_run(clstr, tmp_path, ["n1"], 2)
    try:
        turn_into(tmp_path, nodes, "fifo")
        read_stderr_until(p, "the run keeps its node list", seen)
        p.terminate()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 143, err
    assert "2 jobs: 0 succeeded, 0 failed, 2 not run." in err


@pytest.mark.parametrize("what,limit", [("job file", 256), ("node file", 16)])
def test_user_files_are_read_with_a_size_bound(clstr, tmp_path, what, limit):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(limit * 1024 * 1024 + 1)  # sparse: refused by its size before any of it is read
    args = [str(big), "-n", "n1"] if what == "job file" else ["-N", str(big), "-j", "true"]
    r = clstr(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"clstr: {big}: {what} is larger than {limit} MiB ({limit * 1024 * 1024 + 1} bytes)\n"


def test_a_node_file_that_is_a_device_is_bounded(clstr, tmp_path):
    dev = tmp_path / "zero"
    dev.symlink_to("/dev/zero")
    r = clstr("-N", str(dev), "-j", "true")
    assert (r.returncode, r.stderr) == (2, f"clstr: {dev}: node file is larger than 16 MiB\n")


def test_endless_stdin_is_bounded(monkeypatch):
    monkeypatch.setitem(userfiles.LIMITS, "job file", 1000)  # the bound, made small for the test
    with pytest.raises(InputError, match="job file is larger than 0 MiB"):
        userfiles.read_bytes("-", "job file", stdin=io.BytesIO(b"x" * 5000))
    assert userfiles.read_bytes("-", "job file", stdin=io.BytesIO(b"x" * 1000)) == b"x" * 1000


def test_profile_file_not_utf8_is_one_line(clstr, tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_bytes(b"lab: [n1]\nother: [\xff]\n")
    r = clstr("--profiles", str(prof), "-p", "lab", "-j", "true")
    assert (r.returncode, r.stderr) == (2, f"clstr: {prof}:2: profile file is not UTF-8 text (byte 0xff)\n")


# ---- 3: a job that ends its own process group -------------------------------------------
@pytest.mark.parametrize("mode", [["--no-pipeline"], ["-E"], []])
@pytest.mark.parametrize("job", ['trap "kill 0" EXIT; echo cleaning', "kill 0", "sh -c 'kill -9 0'"])
def test_a_job_that_kills_its_process_group_fails_once_and_its_node_stays(clstr, tmp_path, mode, job):
    count = tmp_path / "count"
    job = f"echo try >> {count}; {job}"
    args = ["-E", job] if mode == ["-E"] else [*mode, "-j", job, "-j", "echo fine"]
    r = clstr("-n", "n1", "-n", "n2", "--job-failures", "job", "--json", "out.json", *args)
    result = json.loads((tmp_path / "out.json").read_text())
    assert "retired" not in r.stderr and "connection lost" not in r.stderr, r.stderr
    ran = count.read_text().count("try")
    assert ran == (2 if mode == ["-E"] else 1)  # once a node with -E, else once: no re-run
    first = [j for j in result["jobs"] if j["command"] == job]
    if job.endswith("cleaning"):
        # the EXIT trap's kill 0 ends the job's own group, the job's shell with it (143)
        assert {j["outcome"] for j in first} == {"failed"} and {j["exit"] for j in first} == {143}
    elif job.endswith("kill 0"):
        assert {(j["outcome"], j["exit"]) for j in first} == {("failed", 143)}
    else:
        # kill -9 of its group: pipelined the loop's runner shares it and dies too; the job fails
        # (the node is alive and well) instead of the connection being taken for lost
        assert {j["outcome"] for j in first} == {"failed"}
        if not mode:  # the loop's runner went, or the whole session: either way the job's doing
            assert first[0]["reason"] in ("it killed the job loop (a kill -9 of its process group?)",
                                          "its shell was killed before its end mark (a kill -9 of its process group?)")
        else:
            assert first[0]["exit"] == 137
    if mode != ["-E"]:
        assert "fine" in r.stdout
    assert not run_marker(clstr.tb)


# ---- 4: a connection blip in a one-node run ----------------------------------------------
@pytest.mark.timeout(90)
def test_a_blip_in_a_one_node_run_costs_no_job(clstr, tmp_path, testbed):
    node = Relay(testbed, "127.0.0.79").up()
    gate, started = tmp_path / "gate", tmp_path / "started"
    jobs = [f"touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done; echo job-1"] + \
        [f"echo job-{i}" for i in range(2, 5)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    p = clstr.popen("--reprobe", "0.3", "-n", node.name, "--json", "out.json", "jobs",
                    "-O", "ServerAliveInterval=1", "-O", "ServerAliveCountMax=2",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        assert wait_for(started.exists, 30)
        node.down()  # the connection drops mid-job
        read_stderr_until(p, f"node {node.name} retired: connection lost", seen)
        gate.touch()
        node.up()  # and comes back
        out, err = finish(p, seen)
    finally:
        p.kill()
        node.down()
    assert p.returncode == 0, err
    assert sorted(out.split()) == [f"job-{i}" for i in range(1, 5)]
    result = json.loads((tmp_path / "out.json").read_text())
    first = result["jobs"][0]
    assert [(a["outcome"], a["reason"]) for a in first["attempts"]] == [("requeued", "connection lost"),
                                                                         ("succeeded", "")]


# ---- 8: the library given a text stream ---------------------------------------------------
def test_the_library_writes_job_output_to_a_text_stream(testbed, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    log = tmp_path / "log"
    r = clstr.run(["echo one; echo two >&2", "printf 'caf\\303\\251 \\377\\n'"], ["n1"], ssh=testbed.ssh,
                  stdout=out, stderr=err, joblog=str(log), log=lambda msg: None)
    assert r.ok and [j.outcome for j in r.jobs] == ["succeeded", "succeeded"]
    assert lines(out.getvalue()) == ["caf\u00e9 \ufffd", "one"] and err.getvalue() == "two\n"
    assert len(log.read_text().splitlines()) == 3


def test_the_library_refuses_a_stream_that_takes_nothing_before_running(testbed, tmp_path):
    class Odd:
        def write(self, data):
            raise TypeError("no")
    marker = tmp_path / "ran"
    with pytest.raises(TypeError, match="takes neither bytes nor text"):
        clstr.run([f"touch {marker}"], ["n1"], ssh=testbed.ssh, stdout=Odd())
    assert not marker.exists()


# ---- 9: a background process's late partial line ------------------------------------------
def test_a_late_partial_line_is_ended_and_goes_to_the_job_that_wrote_it(clstr):
    # job 1's background process writes once job 1's shell is gone, before job 2 begins (the
    # slot's next start is 2 s later: --ssh-delay), a line without newline
    job1 = "( while kill -0 $$ 2>/dev/null; do sleep 0.01; done; printf LATE-FROM-JOB1 ) & echo job1"
    r = clstr("-n", "n1", "--tag-job", "--ssh-delay", "2", "-j", job1, "-j", "echo job2-line")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["1: LATE-FROM-JOB1", "1: job1", "2: job2-line"]


# ---- 10: a job that SIGKILLs the job loop ---------------------------------------------------
@pytest.mark.timeout(60)
def test_a_job_that_kills_the_job_loop_fails_and_the_next_job_runs(clstr, tmp_path):
    """No --timeout: the slot asks the loop whether its runner lives and finds it gone."""
    r = clstr("-n", "n1", "--job-failures", "job", "--json", "out.json", "-j", "kill -9 $PPID; sleep 1; echo orphan",
              "-j", "echo next")
    assert r.returncode == 1, r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    first, second = result["jobs"]
    assert (first["outcome"], first["reason"]) == ("failed", "it killed the job loop (a kill -9 of its process group?)")
    assert second["outcome"] == "succeeded" and "next" in r.stdout
    assert result["nodes"]["n1"]["retired"] is False


# ---- 11: ssh's own lines, a line without end, --resume with duplicates --------------------
@pytest.mark.parametrize("mode", [["--no-multiplex"], ["--no-pipeline", "--no-multiplex"]])
def test_ssh_own_lines_before_a_job_are_notes_not_job_output(clstr, mode):
    r = clstr(*mode, "-n", "refused", "-n", "n1", "-j", "echo fine")
    assert r.returncode == 0 and r.stdout == "fine\n"
    # ssh's line is a note (-v), not job output; its words are in the summary (issue 34 item 4)
    assert "ssh: connect to host" not in r.stderr, r.stderr
    assert "retired nodes: refused (refused: Connection refused)" in r.stderr
    r = clstr(*mode, "-v", "-n", "refused", "-n", "n1", "-j", "echo fine")
    assert "clstr: refused: ssh: ssh: connect to host 127.0.0.250 port" in r.stderr


@pytest.mark.timeout(60)
def test_a_line_without_end_streams_as_it_comes(clstr, tmp_path):
    """4 MB without a newline reach stdout while the job still runs, as plain ssh streams them."""
    gate = tmp_path / "gate"
    job = f"head -c 4000000 /dev/zero | tr '\\0' x; while [ ! -e {gate} ]; do sleep 0.05; done; echo ' end'"
    p = clstr.popen("-n", "2/n1", "-j", job, "-j", "echo other", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = b""
        while got.count(b"x") < 3_000_000:
            data = p.stdout.read1(1 << 20)
            assert data, p.stderr.read()
            got += data
        gate.touch()
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    rows = (got + out).decode().splitlines()
    # the other job's line went before the long one began, or waited for it to end: never inside it
    assert sorted(rows, key=len) == ["other", "x" * 4_000_000 + " end"]


def test_resume_with_duplicate_commands_keeps_each_jobs_number(clstr, tmp_path):
    (tmp_path / "jobs").write_text("echo same\necho same\necho other\n")
    (tmp_path / "log").write_text("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
                                  "2\tn1\t1.0\t0.1\t0\t0\t0\t0\techo same\n")
    r = clstr("-n", "n1", "--joblog", "log", "--resume", "--json", "out.json", "jobs")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert [(j["seq"], j["command"]) for j in result["jobs"]] == [(1, "echo same"), (3, "echo other")]
    rows = (tmp_path / "log").read_text().splitlines()[1:]
    assert sorted(int(r.split("\t")[0]) for r in rows) == [1, 2, 3]


def test_no_ssh_left_after_the_trust_tests(testbed):
    assert not [p for p in run_marker(testbed) if p.status() != psutil.STATUS_ZOMBIE]


# ---- --env ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [[], ["--no-pipeline"], ["othershell"]])
def test_env_exports_the_values_here_to_the_jobs(clstr, mode):
    node = "othershell" if mode == ["othershell"] else "n1"
    env = {"CLSTR_X_ONE": "it's $HOME", "CLSTR_X_TWO": "\u00fc \\ *"}
    r = clstr(*[m for m in mode if m.startswith("-")], "-n", node, "--env", "CLSTR_X_*", "-j",
              "printf '[%s]\\n' \"$CLSTR_X_ONE\" \"$CLSTR_X_TWO\"", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[it's $HOME]\n[\u00fc \\ *]\n"


@pytest.mark.parametrize("args,message", [
    (["--env", "CLSTR_NOT_SET"], "--env CLSTR_NOT_SET: no such variable is set here"),
    (["--env", "CLSTR_NONE_*"], "--env CLSTR_NONE_*: no such variable is set here"),
    (["--env", "a b"], "--env 'a b': not a variable name or a glob of them"),
    (["--env", "CLSTR_NL"], "--env CLSTR_NL: its value holds a line break"),
    (["--env", "HOME", "--no-remote-cleanup"], "--env needs the remote wrapper"),
])
def test_env_mistakes_are_one_line_and_exit_2(clstr, args, message):
    r = clstr("-n", "n1", *args, "-j", "true", env={"CLSTR_NL": "a\nb"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


# ---- a terminal that the user's ssh_config forces --------------------------------------------
JOB_ON_NO_TTY = "echo out; echo err >&2; tty -s && echo TTY; exit 0"


@pytest.mark.parametrize("mode", [["-E"], ["--no-pipeline", "-j"], ["-j"]])
def test_a_terminal_forced_by_ssh_config_never_reaches_clstrs_sessions(clstr, mode):
    """RequestTTY force in an ssh_config would merge the marks into stdout and end lines with CR LF:
    clstr's sessions are asked for no terminal (-T), whatever the config says."""
    r = clstr("-O", "RequestTTY=force", "-n", "n1", *mode, JOB_ON_NO_TTY)
    assert (r.returncode, r.stdout) == (0, "out\n"), r.stderr
    assert "err\n" in r.stderr and "retired" not in r.stderr


def test_files_travel_whole_under_a_forced_terminal(clstr, tmp_path):
    """The file session on a connection of its own (over a shared one, ssh asks for no terminal):
    a terminal would eat or turn bytes, and the session stalled."""
    data = bytes(range(256)) * 64 + b"\r\n\x03\x04\x1a"
    (tmp_path / "in.bin").write_bytes(data)
    r = clstr("-O", "RequestTTY=force", "--no-multiplex", "-n", "n1", "--wd", str(tmp_path / "remote"),
              "--trc", "{}.back", "--", "cp {} {}.back", ":::", "in.bin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "in.bin.back").read_bytes() == data


@pytest.mark.parametrize("mode", [["-E"], ["--no-pipeline", "-j"], ["-j"]])
def test_stdin_null_in_ssh_config_does_not_end_the_jobs(clstr, mode):
    """StdinNull yes (an ssh_config's -n) closed the session's stdin at once: the node's watcher
    took it for ssh gone and ended every job (exit 143). clstr keeps it open (StdinNull=no)."""
    r = clstr("-O", "StdinNull=yes", "-n", "n1", *mode, "sleep 1; echo done")
    assert (r.returncode, r.stdout) == (0, "done\n"), r.stderr
