"""Transports other than ssh (transports.py): the node ':' (this machine) and --connect TEMPLATE (a
command that runs its arguments on the node, as docker exec does). The same job loop, wrapper and
file session ride them: exit statuses, pipelined and one-session-a-job runs, --on-each-node (its
slots are their own process), files, --env, time limits, --halt, the job log, Ctrl-C. A transport's
own failure is the node's (the job moves on), told by what the transport says; a job's is the job's.

The command transport is driven with a real sh that stands for a container runtime: it runs its
arguments with the node's name in $CLSTR_HOST, and refuses (as ``docker exec`` does for a stopped
container) a node that has a ``stopped-NODE`` file.
"""
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

import clstr.api
from conftest import processes_with, read_until, wait_for
from clstr import transports
from clstr.judging import Judge
from clstr.reading import Marked
from clstr.result import Ending
from clstr.ssh import SshConfig

# a command that gives the node a shell: "$0" is the node's name, "$@" the line clstr runs there;
# it stays the parent of what it runs, as docker exec stays between clstr and the container
RUNTIME = ('sh -c \'if [ -e "stopped-$0" ]; then echo "Error: No such container: $0" >&2; exit 1; fi; '
           'env CLSTR_HOST="$0" "$@"\' {host}')
TRANSPORTS = {
    "local": ["-n", "2/:"],  # (its loops, as a command's, read by the supervisor: loopslot.py)
    "local, forked workers": ["-n", "2/:"],
    "command": ["-n", "c1", "c2", "--connect", RUNTIME],
    "command, forked workers": ["-n", "c1", "c2", "--connect", RUNTIME],
}
# run with CLSTR_SLOT_WORKERS=python: both kinds of slot, each transport
FORKED = {"local, forked workers", "command, forked workers"}
MODES = {"pipelined": [], "one session a job": ["--no-pipeline"]}


class Run:
    """Runs the clstr command line with no ssh at all: its --ssh names no program."""

    def __init__(self, cwd):
        self.cwd = cwd

    def argv(self, *args):
        return [sys.executable, "-m", "clstr", "--ssh", "no-ssh-here", *args]

    def env(self):
        env = dict(os.environ, XDG_CONFIG_HOME=str(self.cwd / "xdg-empty"))
        env.pop("CLSTR_SSH", None)
        return env

    def __call__(self, *args, timeout=90):
        return subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=self.cwd, env=self.env(),
                              timeout=timeout)

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(*args), cwd=self.cwd, env=self.env(), **kw)


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def outcomes(path):
    with open(path) as f:
        data = json.load(f)
    data["retired_nodes"] = {name: n["reason"] for name, n in data["nodes"].items() if n["retired"]}
    return {j["seq"]: (j["outcome"], j["exit"]) for j in data["jobs"]}, data


# ---- pure ------------------------------------------------------------------
def test_each_node_gets_its_transport():
    cfg = SshConfig()
    assert isinstance(transports.of(cfg, ":"), transports.Local)
    assert isinstance(transports.of(cfg, "n1"), transports.Ssh)
    via = SshConfig(connect=transports.connect_words("docker exec -i {host}"))
    assert isinstance(transports.of(via, ":"), transports.Local)  # ':' stays this machine
    docker = transports.of(via, "web1")
    assert docker.argv("LINE") == ["docker", "exec", "-i", "web1", "sh", "-c", "LINE"]
    assert transports.of(cfg, ":").argv("LINE")[1:] == ["-c", "LINE"]
    assert transports.of(cfg, "n1").argv("LINE")[-2:] == ["n1", "LINE"]
    assert (transports.shares(cfg, "n1"), transports.shares(cfg, ":"), transports.shares(via, "web1")) == \
        (True, False, False)
    assert docker.config_argv() is None and transports.of(cfg, ":").config_argv() is None


def test_a_command_transports_failure_is_its_own_last_line():
    reach = transports.of(SshConfig(connect=("docker", "exec", "-i", "{host}")), "web1")
    judge = Judge(True, None, reach)
    p = Marked()
    p.tail = b"Error response from daemon: No such container: web1\n"
    assert judge.attempt(1, p) == (1, Ending.NEVER_RAN, "docker: Error response from daemon: No such container: web1")
    p.tail = b""
    assert judge.attempt(126, p) == (126, Ending.NEVER_RAN, "docker exit 126")
    p.tail = b"docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"
    assert judge.attempt(1, p)[2] == "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


@pytest.mark.parametrize("template,message", [
    ("docker exec -i", "clstr: --connect 'docker exec -i': no {host} (where the node's name goes), "
                       "e.g. 'docker exec -i {host}'"),
    ("docker exec 'x {host}", "clstr: --connect \"docker exec 'x {host}\": No closing quotation "
                              "(it is split as a shell would)"),
    ("", "clstr: --connect '': expected a command such as 'docker exec -i {host}'"),
    ("no-such-runtime exec {host}", "clstr: --connect 'no-such-runtime exec {host}': command not found: "
                                    "no-such-runtime"),
])
def test_a_bad_connect_template_is_one_line(run, template, message):
    r = run("-n", "c1", "--connect", template, "-j", "true")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")


def test_the_local_machine_needs_no_ssh_but_a_remote_node_does(run):
    r = run("-n", ":", "-j", "echo here")
    assert (r.returncode, r.stdout) == (0, "here\n"), r.stderr
    r = run("-n", ":", "n1", "-j", "echo here")
    assert r.returncode == 2 and r.stderr == "clstr: ssh command not found: 'no-ssh-here' (see --ssh)\n"


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_run_no_node_of_which_is_reached_by_ssh_never_starts_ssh(run, tmp_path, transport):
    # (ssh -V, asked what this ssh needs first, costs a program's start: only where ssh is used)
    asked = tmp_path / "ssh-was-run"
    fake = tmp_path / "fake-ssh"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {asked}\necho OpenSSH_9.2p1 >&2\n")
    fake.chmod(0o755)
    r = subprocess.run([sys.executable, "-m", "clstr", "--ssh", str(fake), *TRANSPORTS[transport], "-j", "echo ran"],
                       capture_output=True, text=True, cwd=tmp_path, env=run.env(), timeout=60)
    assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
    assert not asked.exists(), asked.read_text()
    clstr.api.Run(["echo ran"], [":", "n1"], ssh=str(fake))  # planned, not started: a node reached by ssh
    assert asked.read_text().splitlines()[0] == "-V"  # this ssh is asked what it needs first


# ---- the same runs over each transport ----------------------------------------
@pytest.fixture(params=sorted(TRANSPORTS))
def via(request, monkeypatch):
    if request.param in FORKED:
        monkeypatch.setenv("CLSTR_SLOT_WORKERS", "python")
    return TRANSPORTS[request.param]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_exit_statuses_are_exact(run, tmp_path, via, mode):
    jobs = ["exit 0", "exit 3", "exit 255", "echo out; echo err >&2", "kill -9 $$"] + [f"echo {i}" for i in range(40)]
    (tmp_path / "jobs.txt").write_text("".join(j + "\n" for j in jobs))
    r = run(*via, *MODES[mode], "--job-failures", "job", "--json", "r.json", "-o", "out.txt", "jobs.txt")
    assert r.returncode == 1, r.stderr
    got, data = outcomes(tmp_path / "r.json")
    assert got[1] == ("succeeded", 0) and got[2] == ("failed", 3) and got[3] == ("failed", 255)
    assert got[4] == ("succeeded", 0) and got[5][0] == "failed"
    assert all(got[seq] == ("succeeded", 0) for seq in range(6, 46))
    assert sorted((tmp_path / "out.txt").read_text().split()) == sorted(["out"] + [str(i) for i in range(40)])
    assert "err" in r.stderr
    assert data["retired_nodes"] == {}  # no job's exit is a transport's failure


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_job_starts_with_no_signal_ignored_that_a_login_would_not_ignore(run, via, mode):
    # clstr's processes ignore some signals (Python: PIPE, XFSZ; a worker: TERM, INT, HUP, USR1);
    # a job must not inherit that: `yes | head -1` would complain of a broken pipe
    r = run(*via, *MODES[mode], "-j", "yes | head -1", "-j", "grep SigIgn /proc/$$/status")
    assert r.returncode == 0 and "Broken pipe" not in r.stderr, r.stderr
    mask = int(r.stdout.split("SigIgn:")[1].split()[0], 16)
    ignored = [sig.name for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGPIPE, signal.SIGTERM,
                                    signal.SIGXFSZ) if mask & (1 << (sig - 1))]
    assert ignored == [], r.stdout


def test_a_nonzero_exit_presumes_the_node_broken_as_over_ssh(run, tmp_path, via):
    r = run(*via, "--json", "r.json", "-j", "exit 3", "-j", "echo fine")
    got, data = outcomes(tmp_path / "r.json")
    assert got[2] == ("succeeded", 0) and got[1] == ("failed", 3), r.stderr
    assert r.returncode == 1 and data["retired_nodes"]


def test_on_each_node(run, tmp_path, via):
    r = run(*via, "--json", "r.json", "-E", "echo ${CLSTR_HOST:-local}; exit 4")
    got, data = outcomes(tmp_path / "r.json")
    nodes = sorted(set(via[1:3]) if via[1] == "c1" else [":"])
    assert [o for o in got.values()] == [("failed", 4)] * len(nodes), r.stderr
    assert sorted(r.stdout.split()) == (["c1", "c2"] if via[1] == "c1" else ["local"])


def test_files_env_and_work_directory(run, tmp_path, via, monkeypatch):
    (tmp_path / "in1.txt").write_text("one\n")
    (tmp_path / "in2.txt").write_text("two\n")
    r = subprocess.run(run.argv(*via, "--env", "CLSTR_T_GREETING", "--trc", "{.}.out", "--wd", "...",
                                "--", "tr a-z A-Z < {} > {.}.out; echo $CLSTR_T_GREETING", ":::", "in1.txt",
                                "in2.txt"),
                       capture_output=True, text=True, cwd=tmp_path, timeout=90,
                       env=dict(run.env(), CLSTR_T_GREETING="hello there"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello there\nhello there\n"
    assert (tmp_path / "in1.out").read_text() == "ONE\n" and (tmp_path / "in2.out").read_text() == "TWO\n"
    assert (tmp_path / "in1.txt").read_text() == "one\n"  # the source itself, never overwritten
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".clstr"))
    assert left == [], left


def test_time_limits_end_the_job_and_leave_no_process(run, tmp_path, via):
    marker = f"clstr-t-{uuid.uuid4().hex[:10]}"
    r = run(*via, "--json", "r.json", "--timeout", "1", "-j", f"sleep 60 # {marker}", "--idle-timeout", "30")
    got, _ = outcomes(tmp_path / "r.json")
    assert got[1][0] == "failed" and r.returncode == 1, r.stderr
    assert wait_for(lambda: not processes_with(marker), 10)


def test_halt_now_ends_the_running_jobs(run, tmp_path, via):
    marker = f"clstr-h-{uuid.uuid4().hex[:10]}"
    r = run(*via, "--json", "r.json", "--job-failures", "job", "--halt", "now,fail=1",
            "-j", f"sleep 60 # {marker}", "-j", "sleep 0.2; exit 5", "-j", "sleep 60", "-j", "echo never")
    got, data = outcomes(tmp_path / "r.json")
    assert got[2] == ("failed", 5) and r.returncode == 1, r.stderr
    assert got[1][0] in ("failed", "not run") and got[4][0] == "not run"
    assert wait_for(lambda: not processes_with(marker), 10)


def test_joblog_and_resume(run, tmp_path, via):
    (tmp_path / "jobs.txt").write_text("echo a\nexit 7\necho c\n")
    r = run(*via, "--job-failures", "job", "--joblog", "log", "jobs.txt")
    assert r.returncode == 1
    r = run(*via, "--job-failures", "job", "--joblog", "log", "--resume-failed", "jobs.txt")
    assert r.returncode == 1 and r.stdout == "", r.stderr  # only job 2 ran again
    rows = (tmp_path / "log").read_text().splitlines()[1:]
    assert sorted(row.split("\t")[-1] for row in rows) == ["echo a", "echo c", "exit 7", "exit 7"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_interrupt_leaves_nothing_behind(run, tmp_path, via, mode):
    marker = f"clstr-i-{uuid.uuid4().hex[:10]}"
    p = run.popen(*via, *MODES[mode], "-j", f"echo up; sleep 60 # {marker}", "-j", f"echo up; sleep 60 # {marker}",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["up"])
        assert wait_for(lambda: len(processes_with(marker)) >= 1, 15)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 128 + signal.SIGINT, err
    assert wait_for(lambda: not processes_with(marker), 10), processes_with(marker)


# ---- what only a command transport can do: fail as a transport ----------------
def test_a_node_the_command_cannot_reach_is_the_nodes_failure_and_the_job_moves(run, tmp_path):
    (tmp_path / "stopped-c1").write_text("")
    r = run("-n", "c1", "c2", "--connect", RUNTIME, "--json", "r.json", "--reprobe", "0", "-v",
            *[a for i in range(4) for a in ("-j", f"echo {i} on $CLSTR_HOST")])
    got, data = outcomes(tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == [f"{i} on c2" for i in range(4)]
    assert data["retired_nodes"] == {"c1": "sh: Error: No such container: c1"}


def test_a_container_stopped_under_a_job_is_lost_and_the_job_moves_but_a_job_killing_its_shell_is_its_own(
        run, tmp_path):
    job = 'if [ "$CLSTR_HOST" = c1 ]; then {stop}kill -9 $PPID; sleep 1; else echo done on $CLSTR_HOST; fi'
    r = run("-n", "c1", "c2", "--connect", RUNTIME, "--no-pipeline", "--json", "r.json", "-m", "1",
            "--job-failures", "job", "-j", job.format(stop="touch stopped-c1; "))
    got, data = outcomes(tmp_path / "r.json")
    assert (r.returncode, r.stdout) == (0, "done on c2\n"), r.stderr
    assert [a["reason"] for a in data["jobs"][0]["attempts"]][0] == "connection lost"
    (tmp_path / "stopped-c1").unlink()
    r = run("-n", "c1", "--connect", RUNTIME, "--no-pipeline", "--json", "r.json", "--job-failures", "job",
            "-j", job.format(stop=""))
    got, data = outcomes(tmp_path / "r.json")
    assert got[1][0] == "failed" and data["retired_nodes"] == {}, r.stderr


@pytest.mark.skipif(not __import__("shutil").which("docker"), reason="docker is not installed here")
def test_docker_without_its_daemon_is_the_nodes_failure(run, tmp_path):
    r = run("-n", "ctr1", "--connect", "docker exec -i {host}", "--reprobe", "0", "-j", "true")
    assert r.returncode == 1
    assert "retired nodes: ctr1 (docker: " in r.stderr


# ---- more of what every transport carries the same (issue 35 item 1) ------------------------------
def _node_names(via):
    return ["c1", "c2"] if "c1" in via else [":"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_tag_group_and_output_directories_a_node(run, tmp_path, via, mode):
    r = run(*via, *MODES[mode], "--tag", "--group", "--", "echo {}; echo {}-2", ":::", "a", "b", "c")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 6 and all(line.split(": ", 1)[0] in _node_names(via) for line in lines)
    for x in "abc":  # --group: a job's lines together
        i = next(k for k, line in enumerate(lines) if line.endswith(f": {x}"))
        assert lines[i + 1].endswith(f": {x}-2")
    r = run(*via, *MODES[mode], "--output-dir", "out/{host}", "-E", "echo on {host}")
    assert r.returncode == 0, r.stderr
    for k, node in enumerate(_node_names(via), 1):
        assert (tmp_path / "out" / node / f"{k}.out").read_text() == f"on {node}\n"


def test_replacement_strings_and_the_largest_exit(run, tmp_path, via):
    r = run(*via, "-S", "--job-failures", "job", "--", "echo {#} {%} {host} {}; exit {}", ":::", "0", "3", "5")
    assert r.returncode == 5, r.stderr  # -S: the largest exit, as pdsh's and clush's
    got = sorted(line.split() for line in r.stdout.splitlines())
    assert [w[0] for w in got] == ["1", "2", "3"] and {w[2] for w in got} <= set(_node_names(via))
    assert all(w[1] in ("1", "2") for w in got)  # {%}: the slot's number on its node


def test_gather_folds_identical_output_of_each_node(run, tmp_path, via):
    r = run(*via, "-b", "-E", "echo same")
    assert r.returncode == 0, r.stderr
    folded = "c[1-2] (2)" if "c1" in via else ": (1)"
    assert r.stdout.splitlines() == ["-" * 15, folded, "-" * 15, "same"], r.stdout


def test_idle_timeout_ends_a_silent_job(run, tmp_path, via):
    marker = f"clstr-q-{uuid.uuid4().hex[:10]}"
    r = run(*via, "--json", "r.json", "--job-failures", "job", "--idle-timeout", "1",
            "-j", f"echo start; sleep 60 # {marker}", "-j", "echo fine")
    got, data = outcomes(tmp_path / "r.json")
    assert got[1][0] == "failed" and got[2] == ("succeeded", 0), r.stderr
    assert data["jobs"][0]["attempts"][-1]["ending"] == "idle timeout"
    assert wait_for(lambda: not processes_with(marker), 10)


def test_the_report_page_of_a_run_over_it(run, tmp_path, via):
    run(*via, "--json", "r.json", "--job-failures", "job", "-j", "echo why >&2; exit 2", "-j", "true")
    page = subprocess.run([sys.executable, "-m", "clstr.report", "r.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert page.returncode == 0 and '<pre class="tail">why</pre>' in page.stdout
