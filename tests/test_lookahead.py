"""Lookahead (lookahead.py): a slot running a job holds the job it runs next, and its worker
starts it the moment its job ends with status 0, without a round trip to the supervisor. Which
side has a held job is settled once (the worker starting it, or the supervisor taking it back):
no job runs twice, none is lost, a job that failed starts nothing after it on its node, and a
held job never waits behind a long one while a slot is free."""
import io
import json
import os
import subprocess
import sys

import pytest

from clstr import slots
from clstr.events import Connected, Finished
from clstr.options import RunOptions
from clstr.output import Printer
from clstr.result import Ending
from clstr.scheduler import NOT_RUN, Policy, Scheduler

pytestmark = pytest.mark.timeout(120)


def counter():
    n = [0]

    def number():
        n[0] += 1
        return n[0]
    return number


def started(jobs, nodes, policy=None):
    """A scheduler whose slots all run a job over a connection that is up."""
    s = Scheduler(jobs, nodes, policy or Policy())
    batch = s.assign()
    for idx, _ in batch:
        s.connected(idx)
    return s, batch


def end(s, slot, exit=0):
    seq = s.slots[slot].busy
    return s.finished(Finished(slot, seq, exit, 0.0, 0.0, Ending.OK if exit == 0 else Ending.EXIT))


# ---- pure: the scheduler's side -------------------------------------------
def test_a_running_slot_holds_the_next_job_and_runs_it_when_started():
    s, batch = started(["j1", "j2", "j3", "j4", "j5"], ["a", "b"])
    assert [job.seq for _, job in batch] == [1, 2]
    held = s.ahead.give(lambda idx: True, counter())
    assert [(idx, job.seq, job.hold, job.after) for idx, job in held] == [(0, 3, 1, 1), (1, 4, 2, 2)]
    assert s.pending() == 1 and not s.jobs[3].attempts  # held: out of the queue, no attempt yet
    assert s.ahead.give(lambda idx: True, counter()) == []  # one job ahead a slot
    end(s, 0)
    assert s.ahead.promoted(0) == 3 and s.slots[0].busy == 3 and s.busy == 2
    att = end(s, 0)
    assert (att.seq, att.attempt, att.outcome) == (3, 1, "succeeded")


def test_no_job_is_held_while_a_slot_is_free_or_before_the_connection_is_up():
    s = Scheduler(["j1", "j2", "j3"], ["a", "b"])
    s.assign()
    assert s.ahead.give(lambda idx: True, counter()) == []  # connecting: not ready
    s.connected(0)
    s.connected(1)
    assert [idx for idx, _ in s.ahead.give(lambda idx: idx == 1, counter())] == [1]  # slot 0's kind holds nothing
    s2, _ = started(["j1", "j2", "j3"], ["a", "b", "c"])
    assert s2.ahead.give(lambda idx: True, counter()) == []  # nothing waits
    s3 = Scheduler(["j1", "j2", "j3", "j4"], ["a", "b"], Policy(max_running=1))
    s3.assign()
    s3.connected(0)
    assert s3.ahead.give(lambda idx: True, counter()) == []  # b is free (held back by -m): it takes jobs first


def test_a_held_job_taken_back_costs_nothing_and_goes_first():
    s, _ = started(["j1", "j2", "j3", "j4"], ["a", "b"])
    s.ahead.give(lambda idx: True, counter())
    uses = s.slots[0].uses
    s.ahead.taken_back(0)
    assert s.slots[0].after is None and s.slots[0].uses == uses - 1 and not s.jobs[3].attempts
    end(s, 1)
    s.ahead.promoted(1)  # slot 1 started j4
    end(s, 1)
    assert [job.seq for _, job in s.assign()] == [3]  # j3 first again


def test_at_the_tail_a_held_job_goes_to_the_slot_that_is_free():
    s, _ = started(["long", "short", "last"], ["a", "b"])
    s.ahead.give(lambda idx: True, counter())
    assert s.slots[0].after == 3
    assert s.ahead.takebacks() == []  # slot b is busy: nothing to give it
    end(s, 1)
    assert s.ahead.takebacks() == [(0, s.slots[0].after_hold)]
    s.ahead.taken_back(0)
    assert [(idx, job.seq) for idx, job in s.assign()] == [(1, 3)]


def test_held_jobs_go_back_when_the_run_stops_or_their_node_leaves():
    s, _ = started(["j1", "j2", "j3", "j4", "j5"], ["a", "b"])
    s.ahead.give(lambda idx: True, counter())
    assert s.ahead.takebacks() == []
    s.retire_node("a", "broken")
    assert [idx for idx, _ in s.ahead.takebacks(recheck=True)] == [0]
    s.stop("halted")
    assert sorted(idx for idx, _ in s.ahead.takebacks()) == [0, 1]


def test_max_node_uses_counts_a_held_job():
    s, _ = started(["j1", "j2", "j3"], ["a"], Policy(max_node_uses=2))
    assert [job.seq for _, job in s.ahead.give(lambda idx: True, counter())] == [2]  # its second use
    end(s, 0)
    s.ahead.promoted(0)
    assert s.ahead.give(lambda idx: True, counter()) == []
    end(s, 0)
    assert s.slots[0].retired and s.done() and s.jobs[3].outcome == NOT_RUN


def test_a_held_job_left_unsettled_is_not_lost():
    s, _ = started(["j1", "j2", "j3"], ["a"])
    s.ahead.give(lambda idx: True, counter())
    s.interrupt()
    end(s, 0)
    assert s.done()
    assert {seq: (j.outcome, j.reason) for seq, j in s.jobs.items() if seq > 1} == \
        {2: (NOT_RUN, "interrupted"), 3: (NOT_RUN, "interrupted")}


# ---- the supervisor through the slot contract: a kind of the test's own -----
class Holding(slots.Kind):
    """Slots that hold a job ahead, as forked workers do, with no process. A job ``wait:NAME`` runs
    until a job ``free:NAME`` has run; any other job ends on the next tick with status 0 (or N for
    ``exit:N``). A slot whose job ends with status 0 starts its held job at once, as a worker does,
    unless the supervisor took it back first."""

    def __init__(self):
        self.sup = None
        self.running = {}  # slot -> its Job
        self.held = {}  # slot -> (hold number, Job)
        self.freed = set()
        self.calls = []
        self.ready = []

    def take(self, idx, job):
        self.calls.append(("take", idx, job.seq))
        self.running[idx] = job
        self.ready.append((idx, Connected(idx)))
        return slots.STARTED

    def runs(self, idx):
        return idx in self.running

    def holds(self, idx):
        return idx in self.running

    def hold(self, idx, job):
        self.calls.append(("hold", idx, job.seq))
        self.held[idx] = (job.hold, job)
        return True

    def take_back(self, idx, number, recall=False):
        if idx in self.held and self.held[idx][0] == number:
            self.calls.append(("back", idx, self.held.pop(idx)[1].seq))
            return True
        return False  # it started already

    def next_due(self):
        return 0.0 if self.running or self.ready else None

    def tick(self, now):
        # a job connects on one tick and ends on a later one: the supervisor gets a turn between
        ready, self.ready = self.ready, []
        connecting = {idx for idx, _ in ready}
        for idx, job in list(self.running.items()):
            kind, _, arg = job.command.partition(":")
            if idx in connecting:
                continue
            if kind == "wait" and arg not in self.freed:
                continue
            if kind == "free":
                self.freed.add(arg)
            status = int(arg) if kind == "exit" else 0
            del self.running[idx]
            if status == 0 and idx in self.held:
                _, nxt = self.held.pop(idx)
                self.calls.append(("started ahead", idx, nxt.seq))
                self.running[idx] = nxt
            self.sup.on_events(idx, Finished(idx, job.seq, status, 0.0, 0.0, Ending.OK if status == 0 else Ending.EXIT))
        for idx, ev in ready:
            self.sup.on_events(idx, ev)


def drive(jobs, nodes, policy=None):
    from clstr.supervisor import Supervisor
    kind = Holding()
    out, logs = io.BytesIO(), []
    sched = Scheduler(jobs, nodes, policy or Policy())
    sup = kind.sup = Supervisor(sched, RunOptions(multiplex=False), Printer(out, io.BytesIO()), log=logs.append,
                                kinds=[kind])
    return sup.run(), kind, logs


def test_a_held_job_is_taken_back_for_a_free_slot_instead_of_waiting_behind_a_long_one():
    # slot 0 runs "wait:x" until "free:x" has run; slot 1 runs "quick", then is free: "free:x",
    # held by slot 0, must go to slot 1, or the run never ends
    result, kind, _ = drive(["wait:x", "quick", "free:x"], ["a", "b"])
    assert result.exit_code() == 0 and len(result.succeeded) == 3
    assert ("hold", 0, 3) in kind.calls and ("back", 0, 3) in kind.calls and ("take", 1, 3) in kind.calls
    assert all(j.attempts[0].attempt == 1 and len(j.attempts) == 1 for j in result.jobs)


def test_jobs_started_ahead_are_each_run_once_and_recorded():
    result, kind, _ = drive([f"j{i}" for i in range(40)], ["a", "b"])
    ahead = [c for c in kind.calls if c[0] == "started ahead"]
    assert ahead  # most jobs started ahead
    assert result.exit_code() == 0 and len(result.succeeded) == 40
    assert sorted(a.seq for j in result.jobs for a in j.attempts) == list(range(1, 41))


def test_a_failed_job_starts_nothing_after_it_and_its_held_job_runs_elsewhere():
    result, kind, logs = drive(["j1", "j2", "j3", "exit:1", "j5", "j6", "j7", "j8"], ["a", "b"],
                               Policy(max_attempts=1))
    by = {j.seq: j for j in result.jobs}
    failed_on = by[4].attempts[0].node
    after = [c for c in kind.calls if c[0] in ("take", "started ahead")]
    ran_there = [seq for what, idx, seq in after if result.slots[idx] == failed_on and seq > 4]
    assert by[4].outcome == "failed" and ran_there == []  # its node ran nothing after it
    assert all(by[n].outcome == "succeeded" for n in (5, 6, 7, 8))
    assert any(f"node {failed_on} retired" in line for line in logs)


# ---- real runs: the local machine and a command transport --------------------
def run_clstr(tmp_path, *args):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg-empty"))
    env.pop("CLSTR_SSH", None)
    return subprocess.run([sys.executable, "-m", "clstr", "--ssh", "no-ssh-here", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=100)


def test_every_job_runs_exactly_once_on_the_local_machine(tmp_path):
    r = run_clstr(tmp_path, "-n", "3/:", "--json", "r.json", "--joblog", "log", "--", "echo {#} >> ran; echo out {#}",
                  ":::", *map(str, range(300)))
    assert r.returncode == 0, r.stderr
    assert sorted(int(x) for x in (tmp_path / "ran").read_text().split()) == list(range(1, 301))
    assert sorted(r.stdout.splitlines()) == sorted(f"out {i}" for i in range(1, 301))
    data = json.loads((tmp_path / "r.json").read_text())
    assert [len(j["attempts"]) for j in data["jobs"]] == [1] * 300
    assert len((tmp_path / "log").read_text().splitlines()) == 301  # a header and a row a job


# c1 fails every job from the 3rd on: the first such failure retires it, and nothing after it runs
# there (a held job would, without the end's gate); the job moves to c2 and succeeds
RUNTIME = 'sh -c \'env CLSTR_HOST="$0" "$@"\' {host}'


def test_a_job_that_fails_starts_nothing_after_it_on_its_node(tmp_path):
    job = 'echo {#} $CLSTR_HOST >> ran; if [ "$CLSTR_HOST" = c1 ] && [ {#} -ge 3 ]; then exit 1; fi'
    r = run_clstr(tmp_path, "-n", "c1", "c2", "--connect", RUNTIME, "--json", "r.json", "--", job,
                  ":::", *map(str, range(40)))
    assert r.returncode == 0, r.stderr
    ran = [line.split() for line in (tmp_path / "ran").read_text().splitlines()]
    on_c1 = [int(seq) for seq, host in ran if host == "c1"]
    assert on_c1[-1] >= 3 and all(seq < 3 for seq in on_c1[:-1])  # the failure was the last job there
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["nodes"]["c1"]["retired"] and all(j["outcome"] == "succeeded" for j in data["jobs"])
    assert sorted({int(seq) for seq, _ in ran}) == list(range(1, 41))
