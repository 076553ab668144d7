"""The supervisor driven by scripted workers: real forks and pipes, no ssh.

A scripted worker answers each job from its command: ``out:TEXT`` prints
TEXT, ``exit:N`` exits N, ``die`` kills its own process as SIGKILL would,
``refuse`` fails to connect.
"""
import dataclasses
import errno
import io
import os
import resource
import subprocess
import sys

import pytest

from clstr.events import Deferred, Finished, Limit, Output
from clstr.output import Printer
from clstr.scheduler import FAILED, NOT_RUN, SUCCEEDED, Policy, Scheduler
from clstr.options import RunOptions
from clstr.result import Ending
from clstr.pool import ForkedProcess
from clstr.supervisor import Supervisor


def scripted(spec, conn, board, close, first):
    slot, node = spec.slot, spec.node
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
            if self.args[0].node in nodes:
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
        "slot 1 (b) left out: no worker could be started (Resource temporarily unavailable (EAGAIN))"]


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


# ---- scripted histories: the supervisor's reactions, no process at all ----------------------
class ScriptedPool:
    """The slot pool's contract (pool.py) kept with no process: what the supervisor sends is
    recorded; what the workers would send, the test gives the supervisor's reactions itself."""

    def __init__(self, ctx, nslots, target, spec, sel, process=None, capacity=None, handlers=None):
        self.spec, self.capacity = spec, max(capacity or nslots, nslots)
        self.board = type("Board", (), {"busy": lambda board: 0, "close_gate": lambda board, idx: None,
                                        "withdraw": lambda board, idx: False})()
        self.board.state, self.board.pid = [0] * self.capacity, [0] * self.capacity
        self.workers, self.sent, self.paused = {}, [], False

    def raise_fd_limit(self):
        return None

    def start(self, idx, first):
        self.workers[idx] = self.spec(idx)
        self.sent.append((idx, first))

    def send(self, idx, job):
        self.sent.append((idx, job))
        return True

    def live(self, idx):
        return idx in self.workers

    def live_slots(self):
        return set(self.workers)

    def count(self):
        return len(self.workers)

    def pause(self, pause):
        self.paused = pause

    def release(self, idx):
        self.workers.pop(idx, None)
        self.sent.append((idx, None))

    def died(self, idx):
        self.workers.pop(idx, None)
        return [], -9

    def recv(self, idx):
        return None

    def kill(self, idx):
        pass

    def shutdown(self, clock):
        self.workers.clear()

    def take(self):
        sent, self.sent = self.sent, []
        return sent


def scripted_run(jobs, slots, policy=None, **options):
    out, err, logs = io.BytesIO(), io.BytesIO(), []
    sched = Scheduler(jobs, slots, policy or Policy())
    sup = Supervisor(sched, RunOptions(multiplex=False, **options), Printer(out, err), log=logs.append,
                     pool=ScriptedPool)
    return sup, sup.pool, out, logs


def test_a_history_of_output_and_ends_makes_the_result_and_the_output():
    sup, pool, out, logs = scripted_run(["a", "b", "c"], ["n1", "n2"])
    sup.dispatch()
    (s0, j1), (s1, j2) = pool.take()
    assert (j1.seq, j2.seq) == (1, 2) and [w.node for w in pool.workers.values()] == ["n1", "n2"]
    sup.on_events(s1, [Output(s1, 2, 1, b"two\n"), Finished(s1, 2, 0, 0.0, 0.1)])
    sup.dispatch()
    assert pool.take() == [(s1, dataclasses.replace(j1, seq=3, command="c"))]  # the free slot's next job
    sup.on_events(s0, Output(s0, 1, 1, b"one\n"))
    sup.on_events(s0, Finished(s0, 1, 3, 0.0, 0.2, Ending.EXIT))  # node mode: n1 leaves the pool
    sup.on_events(s1, [Output(s1, 3, 2, b"err\n"), Finished(s1, 3, 0, 0.0, 0.1)])
    sup.dispatch()
    # n1's worker goes (its node is out), and job 1 runs again, on n2
    assert pool.take() == [(s0, None), (s1, dataclasses.replace(j1, attempt=2))]
    sup.on_events(s1, Finished(s1, 1, 0, 0.0, 0.1))
    assert sup.sched.done()
    result = sup.result()
    assert [(j.seq, j.outcome, j.node) for j in result.jobs] == [(1, SUCCEEDED, "n2"), (2, SUCCEEDED, "n2"),
                                                                  (3, SUCCEEDED, "n2")]
    assert result.retired_nodes == {"n1": "job 1 exit 3"}
    sup.printer.flush()
    assert out.getvalue() == b"two\none\n"
    assert any("node n1 retired: job 1 exit 3" in m for m in logs) is False  # news are said by the loop
    sup._node_news()
    assert any(m.startswith("node n1 retired: job 1 exit 3") for m in logs)


def test_a_worker_death_in_the_history_sends_the_job_to_a_new_worker():
    sup, pool, out, logs = scripted_run(["a"], ["n1"])
    sup.dispatch()
    (slot, job), = pool.take()
    sup.on_death(slot)
    assert logs == ["worker of slot 0 (n1) died (exit -9); its job goes back"] and not pool.workers
    sup.dispatch()
    (again, job2), = pool.take()
    assert again == slot and job2.attempt == 2 and pool.live(slot)  # a new worker, started with the job
    sup.on_events(slot, Finished(slot, 1, 0, 0.0, 0.1))
    assert [a.outcome for a in sup.result().jobs[0].attempts] == ["requeued", SUCCEEDED]


def test_a_deferral_in_the_history_costs_no_attempt():
    sup, pool, out, logs = scripted_run(["a"], ["n1"], verbose=True)
    sup.dispatch()
    (slot, job), = pool.take()
    sup.on_events(slot, Deferred(slot, 1, "bastion"))
    assert logs == ["job 1 on n1: not started: behind jump host bastion, which refused handshakes; it waits for "
                    "a turn through it"]
    sup.dispatch()
    (_, again), = pool.take()
    assert again.attempt == 1 and sup.sched.jobs[1].attempts == []


def test_a_signal_in_the_history_ends_the_run_with_running_jobs_interrupted():
    import signal
    sup, pool, out, logs = scripted_run(["a", "b", "c"], ["n1", "n2"])
    sup.dispatch()
    (s0, _), (s1, _) = pool.take()
    sup.on_signal(signal.SIGTERM)
    assert logs == ["SIGTERM: stopping, ending 2 running jobs"]
    sup.on_events(s0, Finished(s0, 1, -15, 0.0, 0.1, Ending.LOST, "ssh killed by signal 15"))
    sup.on_events(s1, Finished(s1, 2, 0, 0.0, 0.1))
    sup.dispatch()
    assert [job for _, job in pool.take()] == [None, None] and sup.sched.done()  # no job starts; workers go
    result = sup.result()
    assert [(j.outcome, j.reason) for j in result.jobs] == [(NOT_RUN, "interrupted"), (SUCCEEDED, ""),
                                                            (NOT_RUN, "interrupted")]
    assert result.exit_code() == 143


def test_stragglers_in_the_history_get_their_limit_once_the_median_is_known():
    sup, pool, out, logs = scripted_run([f"j{i}" for i in range(6)], ["n1"] * 4, Policy(straggler_percent=300))
    sup.dispatch()
    first = pool.take()
    assert all(job.limit is None for _, job in first)
    for (slot, job), runtime in zip(first[:3], (1.0, 2.0, 3.0)):
        sup.on_events(slot, Finished(slot, job.seq, 0, 0.0, runtime))
    limits = [(slot, msg) for slot, msg in pool.take() if isinstance(msg, Limit)]
    assert limits == [(first[3][0], Limit(6.0))]  # the one still running, told once
    sup.dispatch()
    assert {job.limit for _, job in pool.take()} == {6.0}
