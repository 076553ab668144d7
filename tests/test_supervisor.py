"""The supervisor driven by scripted workers: real forks and pipes, no ssh.

A scripted worker answers each job from its command: ``out:TEXT`` prints
TEXT, ``exit:N`` exits N, ``die`` kills its own process as SIGKILL would,
``refuse`` fails to connect.
"""
import errno
import io
import os
import resource
import subprocess
import sys

import pytest

from clstr.events import Finished, Output
from clstr.output import Printer
from clstr.scheduler import FAILED, NOT_RUN, SUCCEEDED, Policy, Scheduler
from clstr.options import RunOptions
from clstr.result import Ending
from clstr.pool import ForkedProcess
from clstr.supervisor import Supervisor


def scripted(slot, node, conn, cfg, board, env, control_path, timeout, close, first):
    deaths = os.environ.get("SCRIPT_DEATHS")
    job = first
    while True:
        job = job or conn.recv()
        if job is None:
            return
        kind, _, arg = job.command.partition(":")
        if kind == "out":
            for i in range(int(os.environ.get("SCRIPT_LINES", "1"))):
                conn.send(Output(slot, job.seq, 1, f"{arg} {node}\n".encode()))
            conn.send(Finished(slot, job.seq, 0, 0.0, 0.0))
        elif kind == "exit":
            conn.send(Finished(slot, job.seq, int(arg), 0.0, 0.0, Ending.EXIT if int(arg) else Ending.OK))
        elif kind == "die" and (deaths is None or job.attempt <= int(deaths)):
            os._exit(137)
        elif kind == "die":
            conn.send(Finished(slot, job.seq, 0, 0.0, 0.0))
        elif kind == "refuse" and node == arg:
            conn.send(Finished(slot, job.seq, 255, 0.0, 0.0, Ending.NEVER_RAN, "refused"))
        else:
            conn.send(Output(slot, job.seq, 1, f"{job.command} {node}\n".encode()))
            conn.send(Finished(slot, job.seq, 0, 0.0, 0.0))
        job = None


def supervise(jobs, slots, policy=None, logs=None, pinned=None, process=None):
    out, err = io.BytesIO(), io.BytesIO()
    sched = Scheduler(jobs, slots, policy or Policy(), pinned=pinned)
    log = logs.append if logs is not None else None
    result = Supervisor(sched, RunOptions(multiplex=False), Printer(out, err), log=log, worker=scripted,
                        process=process).run()
    return result, out.getvalue().decode().splitlines()


def unstartable(*nodes):
    """A process factory whose workers for ``nodes`` fail to start, as fork does without processes left."""
    class Process(ForkedProcess):
        def start(self):
            if self.args[1] in nodes:
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            super().start()
    return Process


def test_all_jobs_succeed_output_through_one_reader():
    result, out = supervise([f"out:line{i}" for i in range(30)], ["a", "b", "c"])
    assert result.exit_code() == 0
    assert sorted(x.split()[0] for x in out) == sorted(f"line{i}" for i in range(30))
    assert len(result.succeeded) == 30


def test_dead_worker_job_requeued_and_slot_replaced(monkeypatch):
    monkeypatch.setenv("SCRIPT_DEATHS", "1")
    logs = []
    result, out = supervise(["die", "out:after"], ["a"], logs=logs)
    assert result.exit_code() == 0
    assert [j.outcome for j in result.jobs] == [SUCCEEDED, SUCCEEDED]
    assert [a.outcome for a in result.jobs[0].attempts] == ["requeued", SUCCEEDED]
    assert out == ["after a"]
    assert any("died" in m for m in logs)


def test_worker_dying_every_time_fails_the_job_not_the_run(monkeypatch):
    result, out = supervise(["die", "out:x"], ["a"], Policy(max_attempts=2))
    assert [(j.outcome, j.reason) for j in result.jobs] == [(FAILED, "worker died 2 times"), (SUCCEEDED, "")]
    assert result.exit_code() == 1


def test_refused_node_retired_jobs_move():
    result, out = supervise(["refuse:b"] * 6, ["a", "b"])
    assert result.exit_code() == 0
    assert result.retired_nodes == {"b": "refused"}
    assert out == ["refuse:b a"] * 6


def test_no_node_left_not_run():
    result, out = supervise(["refuse:a", "refuse:a"], ["a"])
    assert [j.outcome for j in result.jobs] == [NOT_RUN, NOT_RUN]
    assert result.exit_code() == 1


def test_many_lines_arrive_whole(monkeypatch):
    monkeypatch.setenv("SCRIPT_LINES", "500")
    result, out = supervise([f"out:{'x' * 1000}{i}" for i in range(8)], ["a", "b", "c", "d"])
    assert result.exit_code() == 0
    assert len(out) == 4000
    assert all(line.startswith("x" * 1000) and line.split()[1] in "abcd" for line in out)


def test_slot_whose_worker_cannot_start_is_left_out_and_its_job_runs_elsewhere():
    logs = []
    result, out = supervise([f"out:line{i}" for i in range(12)], ["a", "b", "c"], logs=logs,
                            process=unstartable("b"))
    assert result.exit_code() == 0
    assert sorted(x.split()[0] for x in out) == sorted(f"line{i}" for i in range(12))
    assert {x.split()[1] for x in out} == {"a", "c"}
    assert all(len(j.attempts) == 1 for j in result.jobs)  # the failed start cost no attempt
    assert [m for m in logs if "left out" in m] == [
        "slot 1 (b) left out: no worker could be started (Resource temporarily unavailable)"]


def test_node_job_whose_worker_cannot_start_is_not_run_with_reason():
    result, out = supervise(["out:x", "out:x"], ["a", "b"], pinned=["a", "b"], process=unstartable("b"))
    assert out == ["x a"]
    assert [(j.node, j.outcome, j.reason) for j in result.jobs] == [
        ("a", SUCCEEDED, ""), ("b", NOT_RUN, "no slot of node b could run it")]
    assert result.exit_code() == 1


def test_hundreds_of_slots_under_the_usual_open_file_limit():
    """400 slots need ~1,200 descriptors in the supervisor: it raises its soft limit of 1,024 itself."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"hard limit on open files is {hard}")

    def usual_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    nodes = ",".join(f"n{i}" for i in range(400))
    # ssh is /bin/echo: each "connection" prints its arguments, the node name among them
    p = subprocess.run([sys.executable, "-m", "clstr", "--ssh", "/bin/echo", "--no-remote-cleanup", "-n", nodes,
                        "-E", "true"],
                       capture_output=True, text=True, preexec_fn=usual_limit, timeout=100)
    assert (p.returncode, p.stderr) == (0, "")
    assert sorted(line.split(" -- ")[1].split()[0] for line in p.stdout.splitlines()) == sorted(nodes.split(","))
