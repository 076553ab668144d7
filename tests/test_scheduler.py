"""Pure tests of the scheduler: assignment, failure policy, retirement, interruption."""
import heapq
import random
import re

import pytest

from clstr.events import Deferred, Finished
from clstr.result import Ending
from clstr.scheduler import FAILED, NOT_RUN, SUCCEEDED, Policy, Scheduler, interleave

NEVER_RAN, LOST, EXIT, TIMEOUT, STRAGGLER = (Ending.NEVER_RAN, Ending.LOST, Ending.EXIT, Ending.TIMEOUT,
                                             Ending.STRAGGLER)


def finish(s, slot, exit=0, ending=None, reason=None, jump_host=None, deferred=False, runtime=0.0):
    """The end of the slot's attempt, as its worker reports it: exit status, how it ended, why."""
    seq = s.slots[slot].busy
    if deferred:
        return s.deferred(Deferred(slot, seq, jump_host))
    if ending is None:
        ending = Ending.OK if exit == 0 else Ending.EXIT
    return s.finished(Finished(slot, seq, exit, 0.0, runtime, ending, reason, jump_host))


def drive(s, result):
    """Run the scheduler to the end; ``result(node, job)`` gives the finished() keyword args."""
    runs = []
    while not s.done():
        batch = s.assign()
        assert batch, "not done, yet nothing to assign and nothing running"
        for slot, job in batch:
            node = s.slots[slot].node
            runs.append((node, job.seq))
            finish(s, slot, **result(node, job))
    return runs


def ok(node, job):
    return {"exit": 0}


def outcomes(s):
    return {seq: (j.outcome, j.reason) for seq, j in s.jobs.items()}


def test_interleave_spreads_slots_over_nodes():
    assert interleave(["a", "a", "a", "b", "b", "c"]) == ["a", "b", "c", "a", "b", "a"]


def test_every_job_runs_once_when_all_is_well():
    s = Scheduler([f"echo {i}" for i in range(10)], ["a", "b", "a"])
    runs = drive(s, ok)
    assert sorted(seq for _, seq in runs) == list(range(1, 11))
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())


def test_one_job_per_slot_at_a_time():
    s = Scheduler(["j1", "j2", "j3"], ["a", "b"])
    first = s.assign()
    assert [(i, j.seq) for i, j in first] == [(0, 1), (1, 2)]
    assert s.assign() == []
    finish(s, 1, 0)
    assert [(i, j.seq) for i, j in s.assign()] == [(1, 3)]


@pytest.mark.parametrize("max_running,expected", [(1, 1), (2, 2), (None, 4)])
def test_max_running(max_running, expected):
    s = Scheduler(["x"] * 6, ["a", "a", "b", "b"], Policy(max_running=max_running))
    assert len(s.assign()) == expected


def test_max_node_uses_retires_the_slot():
    s = Scheduler(["x"] * 5, ["a", "b"], Policy(max_node_uses=2))
    runs = drive(s, ok)
    assert len(runs) == 4
    assert [j.outcome for j in s.jobs.values()].count(NOT_RUN) == 1
    assert s.jobs[5].reason == "no usable node left"


def test_node_mode_failure_retires_node_and_requeues():
    s = Scheduler(["bad-on-a", "x"], ["a", "b"])
    runs = drive(s, lambda node, job: {"exit": 1 if (node == "a" and job.seq == 1) else 0})
    assert outcomes(s) == {1: (SUCCEEDED, ""), 2: (SUCCEEDED, "")}
    assert ("b", 1) in runs
    assert s.retired_nodes() == {"a": "job 1 exit 1"}
    assert s.jobs[1].attempts[0].outcome == "requeued"


def test_always_failing_job_retires_at_most_max_attempts_nodes():
    nodes = [f"n{i}" for i in range(8)]
    s = Scheduler(["false"] + ["true"] * 20, nodes, Policy(max_attempts=3))
    drive(s, lambda node, job: {"exit": 1 if job.command == "false" else 0})
    assert s.jobs[1].outcome == FAILED
    assert s.jobs[1].reason == "exit 1 on 3 nodes"
    assert len(s.retired_nodes()) == 3
    assert all(s.jobs[i].outcome == SUCCEEDED for i in range(2, 22))


def test_failing_jobs_first_cannot_take_a_two_node_run_down():
    s = Scheduler(["false", "false"] + ["true"] * 20, ["a", "b"])
    runs = drive(s, lambda node, job: {"exit": 1 if job.command == "false" else 0})
    assert [s.jobs[i].outcome for i in (1, 2)] == [FAILED, FAILED]
    assert s.jobs[1].reason == "exit 1 on every node"
    assert all(s.jobs[i].outcome == SUCCEEDED for i in range(3, 23))
    # a job never goes back to a node it failed on
    assert runs.count(("a", 1)) <= 1 and runs.count(("b", 1)) <= 1


def test_filter_semantics_busy_nodes_are_skipped():
    # the original clstr's use: a job exits non-zero on a busy node; it completes on a free one
    s = Scheduler(["run"] * 6, ["busy1", "free", "busy2"])
    drive(s, lambda node, job: {"exit": 1 if node.startswith("busy") else 0})
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())
    assert set(s.retired_nodes()) == {"busy1", "busy2"}


def test_connect_failure_costs_no_attempt():
    s = Scheduler(["x"], ["dead1", "dead2", "dead3", "good"], Policy(max_attempts=1, max_running=1))
    drive(s, lambda node, job: ({"exit": 255, "ending": NEVER_RAN, "reason": "refused"}
                                if node.startswith("dead") else {"exit": 0}))
    assert s.jobs[1].outcome == SUCCEEDED
    assert s.retired_nodes() == {"dead1": "refused", "dead2": "refused", "dead3": "refused"}
    assert s.jobs[1].failed_nodes == set()


def test_no_usable_node_left_marks_not_run():
    s = Scheduler(["a", "b"], ["dead"])
    drive(s, lambda node, job: {"exit": 255, "ending": NEVER_RAN, "reason": "timed out"})
    assert outcomes(s) == {
        1: (NOT_RUN, "no usable node left (last: node unreachable: timed out)"),
        2: (NOT_RUN, "no usable node left"),
    }


def test_job_mode_exit_fails_job_keeps_node():
    s = Scheduler(["exit 3", "true"], ["a"], Policy(job_failures="job"))
    drive(s, lambda node, job: {"exit": 3 if job.seq == 1 else 0})
    assert outcomes(s) == {1: (FAILED, "exit 3"), 2: (SUCCEEDED, "")}
    assert s.retired_nodes() == {}


def test_job_mode_retries_prefer_another_node():
    s = Scheduler(["flaky"], ["a", "b"], Policy(job_failures="job", retries=1))
    runs = drive(s, lambda node, job: {"exit": 1 if node == "a" else 0})
    assert runs == [("a", 1), ("b", 1)]
    assert s.jobs[1].outcome == SUCCEEDED


def test_job_mode_retries_on_same_node_when_it_is_the_only_one():
    s = Scheduler(["flaky"], ["a"], Policy(job_failures="job", retries=2))
    runs = drive(s, lambda node, job: {"exit": 1})
    assert runs == [("a", 1)] * 3
    assert s.jobs[1].outcome == FAILED


def test_job_mode_ssh_failure_retires_node():
    s = Scheduler(["x", "y"], ["a", "b"], Policy(job_failures="job", max_running=1))
    drive(s, lambda node, job: ({"exit": 255, "ending": LOST, "reason": "connection lost"} if node == "a" else {"exit": 0}))
    assert s.retired_nodes() == {"a": "connection lost"}
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())


def test_timeout_fails_job_and_keeps_node():
    s = Scheduler(["sleep", "true"], ["a"], Policy(max_running=1))
    drive(s, lambda node, job: {"exit": -15, "ending": TIMEOUT} if job.seq == 1 else {"exit": 0})
    assert outcomes(s) == {1: (FAILED, "timeout"), 2: (SUCCEEDED, "")}
    assert s.retired_nodes() == {}


def test_worker_death_requeues_then_fails():
    s = Scheduler(["x"], ["a"], Policy(max_attempts=2))
    (slot, job), = s.assign()
    assert s.worker_died(slot).outcome == "requeued"
    (slot, job), = s.assign()
    assert job.attempt == 2
    assert s.worker_died(slot).outcome == FAILED
    assert s.done()
    assert outcomes(s) == {1: (FAILED, "worker died 2 times")}


def test_interrupt_leaves_pending_not_run_and_running_interrupted():
    s = Scheduler(["a", "b", "c"], ["n1"])
    (slot, job), = s.assign()
    s.interrupt()
    assert s.assign() == []
    assert not s.done()
    att = finish(s, slot, -15)
    assert att.outcome == "interrupted"
    assert s.done()
    assert outcomes(s) == {1: (NOT_RUN, "interrupted"), 2: (NOT_RUN, "interrupted"),
                           3: (NOT_RUN, "interrupted")}


def test_success_during_interrupt_still_counts():
    s = Scheduler(["a"], ["n1"])
    (slot, _), = s.assign()
    s.interrupt()
    finish(s, slot, 0)
    assert s.done() and s.jobs[1].outcome == SUCCEEDED


def test_shared_connections_open_one_slot_per_connection_first():
    s = Scheduler(["x"] * 6, ["a"] * 4, Policy(shared_connections=True, sessions_per_connection=2))
    first = s.assign()
    # four slots in two connection groups: one probe each
    assert [(i, j.connect) for i, j in first] == [(0, True), (2, True)]
    s.connected(0)
    second = s.assign()
    assert [(i, j.connect) for i, j in second] == [(1, False)]


def test_gate_probe_failure_retires_node_without_other_slots_trying():
    s = Scheduler(["x"] * 3, ["dead"] * 3 + ["good"], Policy(shared_connections=True))
    batch = s.assign()
    assert [s.slots[i].node for i, _ in batch] == ["dead", "good"]
    dead_slot = batch[0][0]
    finish(s, dead_slot, 255, ending=NEVER_RAN, reason="refused")
    assert s.retired_nodes() == {"dead": "refused"}
    assert all(s.slots[i].node == "good" for i, _ in s.assign())


def test_worker_death_during_probe_lets_another_slot_probe():
    s = Scheduler(["x", "y"], ["a", "a"], Policy(shared_connections=True))
    (slot, job), = s.assign()
    assert job.connect
    s.worker_died(slot)
    (slot2, job2), = s.assign()
    assert job2.connect


def test_pinned_jobs_run_on_their_node_only():
    s = Scheduler(["hostname"] * 3, ["a", "b", "dead"], pinned=["a", "b", "dead"])
    runs = drive(s, lambda node, job: ({"exit": 255, "ending": NEVER_RAN, "reason": "refused"}
                                       if node == "dead" else {"exit": 0}))
    assert sorted(runs) == [("a", 1), ("b", 2), ("dead", 3)]
    assert outcomes(s)[3] == (NOT_RUN, "node dead unreachable (refused)")


def test_pinned_job_failure_is_the_jobs():
    s = Scheduler(["false"] * 2, ["a", "b"], pinned=["a", "b"])
    drive(s, lambda node, job: {"exit": 1 if node == "a" else 0})
    assert outcomes(s) == {1: (FAILED, "exit 1"), 2: (SUCCEEDED, "")}


def test_bad_policy():
    with pytest.raises(ValueError):
        Policy(job_failures="sometimes")


def test_assign_at_most():
    s = Scheduler(["x"] * 5, ["a", "b", "c"])
    assert len(s.assign(1)) == 1
    assert len(s.assign(1)) == 1
    assert len(s.assign()) == 1
    assert s.assign() == []


def test_lost_slot_gives_its_job_back_first_and_runs_nothing_more():
    s = Scheduler(["j1", "j2", "j3"], ["a", "b"])
    batch = s.assign()
    assert [(slot, job.seq) for slot, job in batch] == [(0, 1), (1, 2)]
    s.slot_lost(1)  # b's worker could not start: job 2 never ran
    assert s.busy == 1 and s.pending() == 2
    finish(s, 0, exit=0)
    runs = drive(s, ok)
    assert runs == [("a", 2), ("a", 3)]  # the lost job first, all on a
    assert all(len(j.attempts) == 1 and j.outcome == SUCCEEDED for j in s.jobs.values())


def test_lost_slot_of_node_job_leaves_it_not_run_with_reason():
    s = Scheduler(["x", "x"], ["a", "b"], pinned=["a", "b"])
    assert len(s.assign()) == 2
    s.slot_lost(1)
    finish(s, 0, exit=0)
    assert s.done()
    assert outcomes(s) == {1: (SUCCEEDED, ""), 2: (NOT_RUN, "no slot of node b could run it")}


# ---- termination over every outcome sequence up to a length ------------------------
import itertools  # noqa: E402

OUTCOMES = {
    "ok": {"exit": 0},
    "exit1": {"exit": 1},
    "exit255": {"exit": 255},  # the job's own 255, known from its end mark
    "refused": {"exit": 255, "ending": NEVER_RAN, "reason": "refused"},
    "nomark": {"exit": 0, "ending": NEVER_RAN, "reason": "the login shell did not run the job (exit 0)"},
    "lost": {"exit": 255, "ending": LOST, "reason": "connection lost"},
    "killed": {"exit": 255, "ending": EXIT, "reason": "its shell was killed before its end mark"},  # kill -9 0, the node alive
    "timeout": {"exit": -15, "ending": TIMEOUT},
    "died": None,  # the worker died mid-job
    "nostart": None,  # the worker could not be started
    "interrupt": None,  # Ctrl-C during the attempt
}


def play(s, sequence, kinds=OUTCOMES, clock=False):
    """Drive ``s`` with attempt outcomes taken from ``sequence`` in turn, cyclically; returns attempts made.

    ``clock``: when nothing can start, the clock jumps to what is due next (a probe, a held slot,
    the end of the wait for nodes); without it, nothing to start while nothing runs is a failure.
    """
    made = 0
    while not s.done():
        batch = s.assign()
        if not batch and clock:
            s.tick(s.next_due())  # None (nothing due, yet nothing to start) fails here
            continue
        assert batch, "not done, yet nothing to assign and nothing running"
        for slot, job in batch:
            kind = sequence[made % len(sequence)]
            made += 1
            if kind == "deferred" and not job.lookup:
                kind = "closed"  # a worker defers only a job sent to look its node's jump host up first
            if kind == "died":
                s.worker_died(slot)
            elif kind == "nostart":
                s.slot_lost(slot)
            elif kind == "interrupt":
                s.interrupt()
                finish(s, slot, exit=-15)
            else:
                finish(s, slot, **kinds[kind])
        assert made < 10_000 and s.now < 10_000, ("the run does not end", sequence)
    return made


CONFIGS = [
    (["j1", "j2"], ["a", "b"], Policy()),
    (["j1", "j2"], ["a", "a", "b"], Policy(max_attempts=2)),
    (["j1", "j2"], ["a"], Policy(job_failures="job", retries=2, max_attempts=3)),
    (["j1", "j2", "j3"], ["a", "b"], Policy(job_failures="job", retries=1)),
    (["j1", "j2"], ["a", "b", "b"], Policy(job_failures="job", max_attempts=1, max_running=1)),
    (["j1", "j2", "j3"], ["a", "a", "b"], Policy(max_connecting=1, shared_connections=True, sessions_per_connection=8)),
    (["j1", "j2", "j3"], ["a", "b", "c"], Policy(job_failures="job", retries=1, max_connecting=1)),
]


@pytest.mark.parametrize("jobs,slots,policy", CONFIGS)
@pytest.mark.parametrize("pinned", [False, True])
def test_every_outcome_sequence_ends_with_one_outcome_per_job(jobs, slots, policy, pinned):
    """The docstring's termination argument, checked: every run ends within its bound, every job
    with exactly one final outcome and the counts agreeing."""
    nodes = sorted(set(slots))
    if pinned:
        jobs = ["e"] * len(nodes)
    bound = (len(jobs) * (2 * policy.max_attempts + policy.retries + 1) + len(nodes) + len(slots))
    for length in range(1, 5):
        for sequence in itertools.product(OUTCOMES, repeat=length):
            s = Scheduler(list(jobs), list(slots), Policy(**vars(policy)), pinned=nodes if pinned else None)
            made = play(s, sequence)
            assert made <= bound, (sequence, made, bound)
            assert s.busy == 0
            finals = [j.outcome for j in s.jobs.values()]
            assert all(o in (SUCCEEDED, FAILED, NOT_RUN) for o in finals), (sequence, finals)
            assert sum(s.counts().values()) == len(jobs)
            for j in s.jobs.values():
                assert (j.outcome == SUCCEEDED) == (bool(j.attempts) and j.attempts[-1].outcome == SUCCEEDED)
                if j.outcome == SUCCEEDED:
                    assert not j.reason
                else:
                    assert j.reason, (sequence, j)
                ran = [a for a in j.attempts if a.outcome != "requeued" or "unreachable" not in a.reason]
                assert j.own_failures <= policy.retries + 1 and len(ran) <= bound


def test_refused_node_does_not_eat_a_retry():
    s = Scheduler(["x"], ["a", "b"], Policy(job_failures="job", retries=1))
    runs = drive(s, lambda node, job: ({"exit": 255, "ending": NEVER_RAN, "reason": "refused"}
                                       if node == "a" else {"exit": 3}))
    assert [n for n, _ in runs] == ["a", "b", "b"]  # a refused it: b runs it, and retries it once
    assert outcomes(s) == {1: (FAILED, "exit 3")}


def test_jobs_own_255_fails_the_job_and_keeps_the_node():
    s = Scheduler(["x", "y"], ["a"], Policy(job_failures="job", retries=2))
    runs = drive(s, lambda node, job: {"exit": 255} if job.seq == 1 else {"exit": 0})
    assert len(runs) == 4
    assert outcomes(s) == {1: (FAILED, "exit 255"), 2: (SUCCEEDED, "")}
    assert s.retired_nodes() == {}


def test_has_future_tells_when_a_worker_can_go():
    s = Scheduler(["e", "e", "e"], ["a", "b", "c"], pinned=["a", "b", "c"])
    batch = dict(s.assign())
    assert all(s.has_future(i) is False for i in batch)  # each node's one job is out: nothing more
    s = Scheduler(["x"] * 3, ["a", "b"], Policy(max_node_uses=1))
    finish(s, s.assign()[0][0], 0)
    assert s.has_future(0) is False  # past --max-node-uses
    s = Scheduler(["x"] * 3, ["a", "b"], Policy(job_failures="job"))
    finish(s, s.assign()[0][0], 255, ending=NEVER_RAN, reason="refused")
    assert s.has_future(0) is False and s.has_future(1) is True  # a's node retired; b may get more
    s = Scheduler(["x"], ["a", "b"])
    finish(s, s.assign()[0][0], 0)
    assert s.has_future(0) is False  # nothing pending


def test_with_a_limit_slots_with_live_workers_are_filled_first():
    s = Scheduler(["x"] * 6, ["a", "b", "c", "d"], Policy(max_running=2))
    first = [i for i, _ in s.assign()]
    assert first == [0, 1]
    for i in first:
        finish(s, i, 0)
    assert [i for i, _ in s.assign(prefer={0, 1})] == [0, 1]  # not slots 2 and 3: no new workers


def test_max_connecting_bounds_connections_being_opened_not_running_jobs():
    # shared connections: only a connection's first job opens one; the others ride it once up
    s = Scheduler(["j"] * 8, ["a", "a", "b", "b", "c", "c"],
                  Policy(shared_connections=True, max_connecting=2, sessions_per_connection=8))
    assert [(i, j.connect) for i, j in s.assign()] == [(0, True), (2, True)]
    s.connected(0)
    assert [(i, j.connect) for i, j in s.assign()] == [(1, False), (4, True)]
    assert (s.connecting, s.busy) == (2, 4)
    # a slot of its own connection: its first job opens it, later ones ride it while it lasts
    s = Scheduler(["j"] * 6, ["a", "b", "c"], Policy(max_connecting=1))
    assert [i for i, _ in s.assign()] == [0]
    s.connected(0)
    assert [i for i, _ in s.assign()] == [1]
    finish(s, 0, 0)
    assert [i for i, _ in s.assign()] == [0]  # rides its connection while slot 1 still opens one
    assert s.connecting == 1
    finish(s, 0, 255, ending=LOST, reason="connection lost")  # its connection is gone: the next opens one
    finish(s, 1, 0)
    assert [i for i, _ in s.assign()] == [2]


# ---- nodes coming back: re-probing with back-off ----------------------------------------
from clstr.scheduler import PROBE  # noqa: E402

REFUSED = {"exit": 255, "ending": NEVER_RAN, "reason": "refused"}


def drive_clock(s, result):
    """As drive(), but when nothing can start, the clock jumps to the next thing due.

    ``result(node, job, now)`` gives the finished() keyword args; returns (node, seq, now) runs.
    """
    runs = []
    while not s.done():
        batch = s.assign()
        if not batch:
            due = s.next_due()
            assert due is not None and due > s.now, "not done, nothing to start and nothing due"
            s.tick(due)
            continue
        for slot, job in batch:
            node = s.slots[slot].node
            runs.append((node, job.seq, s.now))
            finish(s, slot, **result(node, job, s.now))
        assert len(runs) < 10_000, "the run does not end"
    return runs


def test_a_refused_node_is_probed_after_the_back_off_and_comes_back():
    s = Scheduler(["x"] * 6, ["a", "b"], Policy(reprobe=30, reprobe_max=600))
    s.tick(100.0)
    batch = dict(s.assign())
    finish(s, 1, **REFUSED)  # b refuses
    assert s.retired_nodes() == {"b": "refused"} and s.nodes["b"].next_probe == 130.0
    finish(s, 0, 0)
    assert [(i, j.seq) for i, j in s.assign()] == [(0, 2)]  # a only: b's probe is not due
    s.tick(130.0)
    probe = s.assign()
    assert [(i, j.seq, j.command) for i, j in probe] == [(1, PROBE, "exit 0")]
    assert s.busy == 2 and s.running() == {0: ("a", 2, "x")}  # a probe is not a job
    assert finish(s, 1, 0) is None  # no attempt, no job log row
    assert s.retired_nodes() == {} and s.nodes["b"].history[0].back == 130.0
    assert [i for i, _ in s.assign()] == [1]  # b takes jobs again
    assert [(n, what) for what, n in [(w, n.name) for w, n in s.news]] == [("b", "retired"), ("b", "back")]
    assert batch


def test_a_failing_probe_doubles_the_wait_up_to_the_most():
    s = Scheduler(["x"] * 3, ["a", "b"], Policy(reprobe=30, reprobe_max=100))
    s.assign()
    finish(s, 1, **REFUSED)  # a's job runs all along
    waits = []
    for _ in range(4):
        due = s.nodes["b"].next_probe
        waits.append(due - s.now)
        s.tick(due)
        probe = [(i, j) for i, j in s.assign() if j.seq == PROBE]
        assert [i for i, _ in probe] == [1]
        finish(s, 1, 255, ending=NEVER_RAN, reason="timed out")
    assert waits == [30, 60, 100, 100]
    assert s.nodes["b"].history[0].probes == 4 and s.retired_nodes() == {"b": "refused"}


@pytest.mark.parametrize("why", ["authentication", "host key", "unknown host"])
def test_configuration_errors_are_not_probed(why):
    s = Scheduler(["x"] * 3, ["a", "b"], Policy(reprobe=30))
    s.assign()
    finish(s, 1, 255, ending=NEVER_RAN, reason=why)
    finish(s, 0, 0)
    assert s.nodes["b"].permanent and s.nodes["b"].next_probe is None
    runs = drive_clock(s, lambda node, job, now: {"exit": 0})
    assert {n for n, _, _ in runs} == {"a"}


def test_a_node_a_job_filtered_out_comes_back_for_other_jobs_only():
    # job 1 fails everywhere (a node filter that says no); the others succeed
    s = Scheduler(["no", "x", "x", "x"], ["a", "b"], Policy(reprobe=30, max_attempts=2))
    runs = drive_clock(s, lambda node, job, now: {"exit": 1 if job.command == "no" else 0})
    assert s.jobs[1].outcome == FAILED and s.jobs[1].reason == "exit 1 on 2 nodes"
    for seq in (2, 3, 4):
        assert s.jobs[seq].outcome == SUCCEEDED
    assert [(n, seq) for n, seq, _ in runs].count(("a", 1)) == 1  # never twice where it failed


def test_a_node_a_job_filtered_out_is_let_back_after_its_back_off():
    s = Scheduler(["busy"] + ["x"] * 5, ["a", "b"], Policy(reprobe=30))
    s.tick(0.0)
    s.assign()
    finish(s, 0, 1)  # a: someone is logged in
    assert s.nodes["a"].by_job and s.nodes["a"].next_probe == 30.0
    s.tick(30.0)
    assert 0 in [i for i, _ in s.assign()]  # a is back: no probe, its next job filters it again
    assert s.nodes["a"].history[0].back == 30.0


def test_every_node_out_waits_for_a_probe_then_gives_up():
    # both nodes connected once, then dropped; they never answer again
    s = Scheduler(["x"] * 4, ["a", "b"], Policy(reprobe=30, reprobe_max=60, reprobe_for=200))
    s.tick(0.0)
    lost = {"exit": 255, "ending": LOST, "reason": "connection lost"}
    runs = drive_clock(s, lambda node, job, now: {"exit": 0} if now == 0 and job.seq <= 2 else
                       (lost if job.seq != PROBE else REFUSED))
    assert s.now == 200.0  # gave up at reprobe_for, not before, not never
    assert [(n, seq) for n, seq, _ in runs if seq == PROBE]  # probes were tried meanwhile
    assert all(j.outcome in (SUCCEEDED, NOT_RUN) for j in s.jobs.values())
    waited = [j.reason for j in s.jobs.values() if j.outcome == NOT_RUN]
    assert waited and all("waited 200 s for a retired node to come back" in r for r in waited)


def test_nodes_that_never_answered_do_not_hold_the_run():
    s = Scheduler(["x"] * 3, ["a", "b"], Policy(reprobe=30))
    s.tick(0.0)
    drive_clock(s, lambda node, job, now: REFUSED)
    assert s.now == 0.0 and all(j.outcome == NOT_RUN for j in s.jobs.values())


def test_a_node_down_at_the_start_joins_when_it_comes_up():
    s = Scheduler(["x"] * 40, ["a", "b"], Policy(reprobe=5, reprobe_max=5))
    s.tick(0.0)

    def world(node, job, now):
        if node == "b" and now < 12:
            return REFUSED
        s.tick(now + 1)  # each job takes a second
        return {"exit": 0}
    runs = drive_clock(s, world)
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())
    assert [seq for n, seq, _ in runs if n == "b" and seq != PROBE]  # b ran jobs once it was up
    assert s.nodes["b"].history[0].back is not None and not s.retired_nodes()


def play_clock(s, sequence, kinds=OUTCOMES):
    """play() with the clock, then: every job has one final outcome, with a reason unless it succeeded."""
    made = play(s, sequence, kinds, clock=True)
    assert s.busy == 0 and sum(s.counts().values()) == len(s.jobs)
    assert all(j.outcome in (SUCCEEDED, FAILED, NOT_RUN) and (j.outcome == SUCCEEDED or j.reason)
               for j in s.jobs.values()), sequence
    return made


@pytest.mark.parametrize("jobs,slots,policy", CONFIGS)
def test_every_outcome_sequence_ends_with_reprobing_on(jobs, slots, policy):
    """The termination argument holds with nodes coming back: a bounded wait, one outcome a job."""
    for length in range(1, 4):
        for sequence in itertools.product([k for k in OUTCOMES if k != "interrupt"], repeat=length):
            play_clock(Scheduler(list(jobs), list(slots), Policy(**dict(vars(policy), reprobe=10, reprobe_max=40,
                                                                             reprobe_for=100))), sequence)


def test_a_job_whose_only_node_lost_its_connection_waits_for_it_and_runs_again():
    """One node, a blip mid-job: the job is not failed "on every node"; it waits for the node as the
    waiting jobs do and runs there again once a probe brings the node back."""
    s = Scheduler(["j1", "j2"], ["a"], Policy(reprobe=1.0))
    s.tick(0.0)
    assert [(i, j.seq) for i, j in s.assign()] == [(0, 1)]
    att = finish(s, 0, 255, ending=LOST, reason="connection lost")
    assert (att.outcome, att.reason) == ("requeued", "connection lost") and s.retired_nodes() == {"a": "connection lost"}
    s.nodes["a"].seen_up = True
    assert not s.done() and s.next_due() == 1.0  # it waits for the node's probe
    s.tick(1.0)
    (slot, probe), = s.assign()
    assert probe.seq == PROBE
    finish(s, slot, 0)
    assert drive(s, ok) == [("a", 1), ("a", 2)]
    assert outcomes(s) == {1: (SUCCEEDED, ""), 2: (SUCCEEDED, "")}


def test_lost_connections_end_a_job_after_max_attempts_counted_per_attempt():
    s = Scheduler(["j1"], ["a", "b"], Policy(max_attempts=3, reprobe=None))
    runs = []
    for _ in range(3):
        s.tick(0.0)
        (slot, job), = s.assign()
        runs.append(s.slots[slot].node)
        finish(s, slot, 255, ending=LOST, reason="connection lost")
        for n in s.nodes.values():
            s.health.bring_back(n)  # the nodes come straight back: only the bound ends it
    assert s.jobs[1].outcome == FAILED and s.jobs[1].reason == "connection lost (3 times)"


def test_a_job_that_killed_its_wrapper_is_the_jobs_failure_not_the_nodes():
    s = Scheduler(["j1", "j2"], ["a"], Policy(job_failures="job"))
    s.assign()
    att = finish(s, 0, 255, ending=EXIT, reason="its shell was killed before its end mark")
    assert (att.outcome, att.reason) == (FAILED, "its shell was killed before its end mark")
    assert s.retired_nodes() == {}


# ---- a live node list: resize ---------------------------------------------------------
def test_resize_adds_nodes_and_slots_that_take_jobs_at_once():
    s = Scheduler(["x"] * 6, ["a"])
    assert [i for i, _ in s.assign()] == [0]
    added, removed = s.resize(["a", "b", "b"])
    assert (added, removed) == ([1, 2], 0)
    assert [(i, s.slots[i].node) for i, _ in s.assign()] == [(1, "b"), (2, "b")]
    assert s.slots[1].group != s.slots[0].group and s.nodes["b"].slots == [1, 2]


def test_resize_removes_idle_slots_first_and_lets_running_jobs_finish():
    s = Scheduler(["x"] * 8, ["a", "a", "b"])
    s.assign()
    finish(s, 1, 0)  # a's second slot is idle, its first busy
    added, removed = s.resize(["b"])
    assert (added, removed) == ([], 2) and s.nodes["a"].removed
    assert s.running() == {0: ("a", 1, "x"), 2: ("b", 3, "x")}  # a's running job goes on
    finish(s, 0, 0)
    assert s.has_future(0) is False  # its worker can go: no new job there
    finish(s, 2, 0)
    runs = drive(s, ok)
    assert {n for n, _ in runs} == {"b"}
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())


def test_resize_brings_removed_slots_back_and_shrinks_a_node():
    s = Scheduler(["x"] * 4, ["a", "a", "a"])
    assert s.resize(["a"]) == ([], 2)
    assert [i for i, _ in s.assign()] == [0]
    assert s.resize(["a", "a", "a", "a"]) == ([1, 2, 3], 0)  # its two slots back, one new
    assert sorted(i for i, _ in s.assign()) == [1, 2, 3]
    assert not s.nodes["a"].removed


def test_resize_to_nothing_leaves_jobs_not_run_with_why():
    s = Scheduler(["x"] * 3, ["a"])
    s.resize([])
    assert s.done() and all(j.outcome == NOT_RUN and j.reason == "no usable node left" for j in s.jobs.values())


# ---- a busy sshd: refusals are transient ------------------------------------------------


CLOSED = {"exit": 255, "ending": NEVER_RAN, "reason": "connection closed"}
SESSION = {"exit": 255, "ending": NEVER_RAN, "reason": "session refused"}


def test_a_refused_handshake_holds_the_slot_and_costs_nothing():
    s = Scheduler(["x"] * 4, ["a", "a"], Policy(refusal_wait=1.0), rng=random.Random(1))
    s.tick(10.0)
    s.assign()
    att = finish(s, 1, **CLOSED)
    assert att.outcome == "requeued" and "busy sshd" in att.reason
    assert s.retired_nodes() == {} and s.jobs[2].failed_nodes == frozenset()
    assert 10.5 <= s.slots[1].hold_until <= 11.5 and s.next_due() == s.slots[1].hold_until
    assert [i for i, _ in s.assign()] == []  # slot 0 busy, slot 1 held
    s.tick(s.slots[1].hold_until)
    assert s.nodes["a"].open_limit == 1  # one handshake at a time now:
    assert s.assign() == []  # slot 0's is in flight
    s.connected(0)
    assert [(i, j.seq) for i, j in s.assign()] == [(1, 2)]  # the refused job, on the slot held back
    assert s.nodes["a"].open_limit == 2


def test_refusals_in_a_row_retire_the_node_but_an_accepted_connection_resets_them():
    s = Scheduler(["x"] * 40, ["a"], Policy(refusals_max=4, refusal_wait=0.1), rng=random.Random(2))
    waits = []
    for k in range(3):
        s.assign()
        finish(s, 0, **CLOSED)
        waits.append(s.slots[0].hold_until - s.now)
        s.tick(s.slots[0].hold_until)
    assert s.nodes["a"].refusals == 3 and s.retired_nodes() == {}
    assert waits[2] > waits[0]  # the hold doubles (jitter of 0.5x-1.5x aside)
    s.assign()
    finish(s, 0, 0)  # a connection accepted: the count starts again
    assert s.nodes["a"].refusals == 0
    for _ in range(4):
        s.tick(s.slots[0].hold_until)
        s.assign()
        finish(s, 0, **CLOSED)
    assert s.retired_nodes() == {"a": "connection closed"} and s.nodes["a"].refused == 6  # the 4th retired it


def test_a_refused_session_moves_its_slot_to_a_connection_of_its_own():
    s = Scheduler(["x"] * 8, ["a", "a", "a"], Policy(shared_connections=True, sessions_per_connection=8),
                  rng=random.Random(3))
    assert [(i, j.connect) for i, j in s.assign()] == [(0, True)]
    s.connected(0)
    assert [i for i, _ in s.assign()] == [1, 2]
    finish(s, 2, **SESSION)  # the sshd allows two sessions a connection
    assert s.slots[2].group == ("a", 1) and s.slots[1].group == ("a", 0)
    s.tick(s.slots[2].hold_until)
    assert [(i, j.connect) for i, j in s.assign()] == [(2, True)]  # it opens its own connection


def test_pinned_job_refused_by_a_busy_sshd_waits_for_its_node():
    s = Scheduler(["e", "e"], ["a", "b"], pinned=["a", "b"], rng=random.Random(4))
    s.assign()
    finish(s, 0, **CLOSED)
    finish(s, 1, 0)
    assert not s.done() and s.pending() == 1
    runs = drive_clock(s, lambda node, job, now: {"exit": 0})
    assert runs == [("a", 1, s.slots[0].hold_until)]
    assert all(j.outcome == SUCCEEDED for j in s.jobs.values())



def test_nodes_behind_a_refusing_jump_host_open_fewer_handshakes_through_it_together():
    # ten nodes of one slot each: alone, each opens one connection, so only a limit shared through
    # their jump host j can slow their handshakes down
    nodes = [f"n{i}" for i in range(10)]
    s = Scheduler(["x"] * 40, nodes, Policy(refusal_wait=1.0), rng=random.Random(6))
    s.tick(10.0)
    assert len(s.assign()) == 10  # j unknown yet: all ten handshakes go at once
    finish(s, 0, **CLOSED, jump_host="j")  # n0's worker found ProxyJump j behind the refusal
    assert s.admission.jump_hosts["j"].open_limit == 5  # half of the ten that were in flight
    for i in range(1, 6):
        finish(s, i, **CLOSED, jump_host="j")  # begun before that cut: no further cut
    assert s.admission.jump_hosts["j"].open_limit == 5 and s.admission.jump_hosts["j"].refused == 6 and s.admission.jump_hosts["j"].nodes == set(nodes[:6])
    for i in range(6, 10):
        s.connected(i)  # not known to be behind j: no change to it
    assert s.admission.jump_hosts["j"].open_limit == 5
    s.tick(30.0)  # the holds are over
    assert [i for i, _ in s.assign()] == [0, 1, 2, 3, 4]  # six nodes behind j are free: five go through it
    s.connected(0)  # one got through: the limit grows about one a round
    assert s.admission.jump_hosts["j"].open_limit == 5.2
    assert [i for i, _ in s.assign()] == [5]
    finish(s, 1, **CLOSED)  # begun after the cut: cut again, to half of the five in flight
    assert s.admission.jump_hosts["j"].open_limit == 2 and s.admission.jump_hosts["j"].cuts == 2
    finish(s, 2, **CLOSED)  # begun in the same round: the limit stays
    assert s.admission.jump_hosts["j"].open_limit == 2
    assert s.retired_nodes() == {}



def test_once_a_jump_host_refused_other_nodes_look_theirs_up_before_connecting():
    s = Scheduler(["x"] * 6, ["a", "b", "c"], rng=random.Random(8))
    s.tick(10.0)
    assert [(i, j.lookup) for i, j in s.assign(most=2)] == [(0, False), (1, False)]  # no jump host refused yet
    finish(s, 0, **CLOSED, jump_host="j")
    finish(s, 1, 0, jump_host="")  # b's worker looked (after the refusal of a) and found none
    assert s.admission.jump_hosts["j"].open_limit == 1 and s.nodes["b"].jump_known and s.nodes["b"].jump_host is None
    # a is held; b is connected and known; c has not connected yet: it looks first
    assert sorted((i, j.lookup) for i, j in s.assign()) == [(1, False), (2, True)]
    seq = s.slots[2].busy
    before = list(s.jobs[seq].attempts)
    att = finish(s, 2, 255, deferred=True, jump_host="j")  # c is behind j too
    assert att is None and s.nodes["c"].jump_host == "j" and s.nodes["c"].jobs == 0 and s.slots[2].uses == 0
    assert s.jobs[seq].attempts == before and s.pending() == 4  # the job was not spent: it waits
    s.tick(30.0)  # a's hold is over; a and c share j's one handshake at a time
    assert [i for i, _ in s.assign()] == [0]
    s.connected(0)
    assert [(i, j.lookup) for i, j in s.assign()] == [(2, False)]



def test_a_deferred_job_pinned_to_its_node_waits_for_that_node():
    s = Scheduler(["e"] * 3, ["a", "b", "c"], pinned=["a", "b", "c"], rng=random.Random(9))
    s.assign(most=1)
    finish(s, 0, **CLOSED, jump_host="j")
    batch = s.assign()  # a is held; b and c look theirs up first: behind j too
    assert [(i, j.lookup) for i, j in batch] == [(1, True), (2, True)]
    assert [finish(s, i, 255, deferred=True, jump_host="j") for i, _ in batch] == [None, None]
    runs = drive_clock(s, lambda node, job, now: {"exit": 0})
    assert sorted(n for n, _, _ in runs) == ["a", "b", "c"]  # each job on its own node, once
    assert all(j.outcome == SUCCEEDED and len(j.attempts) == (2 if j.node == "a" else 1) for j in s.jobs.values())

def test_a_node_without_a_jump_host_gets_no_gate():
    s = Scheduler(["x"] * 4, ["a", "b"], rng=random.Random(7))
    s.assign()
    finish(s, 0, **CLOSED)  # the worker found no ProxyJump: gate None
    assert s.admission.jump_hosts == {} and s.nodes["a"].jump_host is None

@pytest.mark.parametrize("jobs,slots,policy", CONFIGS)
def test_every_outcome_sequence_ends_with_busy_sshd_refusals(jobs, slots, policy):
    """Termination with transient refusals and quarantine in the mix: every run ends, every job one
    outcome, and nothing is left that neither runs nor can start."""
    kinds = dict(OUTCOMES, closed=CLOSED, session=SESSION, jumped=dict(CLOSED, jump_host="j"),
                 deferred={"exit": 255, "deferred": True, "jump_host": "j"})
    for length in range(1, 4):
        for sequence in itertools.product(["ok", "exit1", "refused", "lost", "closed", "session", "jumped",
                                           "deferred"], repeat=length):
            s = Scheduler(list(jobs), list(slots), Policy(**dict(vars(policy), refusals_max=3, quarantine=1)),
                          rng=random.Random(5))
            play_clock(s, sequence, kinds)


# ---- black holes: quarantine --------------------------------------------------------------
def simulate(seed, nodes, slots, jobs, fails, quarantine=3, retries=2):
    """A run of the pure scheduler on a clock: attempts take 0.5-1.5 s, ``fails(node, rnd)`` says
    whether one fails. Returns (the scheduler, {node: attempts that ran there})."""
    rnd = random.Random(seed)
    s = Scheduler([f"j{i}" for i in range(jobs)], [n for n in nodes for _ in range(slots)],
                  Policy(job_failures="job", retries=retries, quarantine=quarantine), rng=random.Random(seed))
    now, running, ran = 0.0, [], {n: 0 for n in nodes}
    while True:
        s.tick(now)
        for slot, job in s.assign():
            heapq.heappush(running, (now + rnd.uniform(0.5, 1.5), slot))
        if not running:
            if s.done():
                return s, ran
            now = s.next_due()
            assert now is not None, "not done, nothing runs and nothing is due"
            continue
        now, slot = heapq.heappop(running)
        node = s.slots[slot].node
        ran[node] += 1
        finish(s, slot, 1 if fails(node, rnd) else 0)


def quarantined(s):
    return {n for n, h in s.history().items() if any(a.reason.startswith("quarantined") for a in h)}


@pytest.mark.parametrize("rate", [0.2, 1 / 3, 0.5])
def test_flaky_jobs_on_healthy_nodes_quarantine_nothing(rate):
    """Jobs that fail 1 time in 3 (or 5, or 2) on any node: failures alike everywhere retire none."""
    for seed in range(200):
        s, _ = simulate(seed, ["a", "b", "c"], 2, 120, lambda node, rnd: rnd.random() < rate)
        assert not quarantined(s), (seed, s.history())


@pytest.mark.parametrize("slots,most", [(1, 3), (2, 5)])
def test_a_node_failing_everything_is_caught_within_k_jobs(slots, most):
    """A black hole among good nodes fails its K jobs (plus those its other slots started meanwhile),
    is held back while the verdict comes, and is quarantined."""
    for seed in range(50):
        s, ran = simulate(seed, ["a", "b", "c", "d"], slots, 80, lambda node, rnd: node == "a")
        assert quarantined(s) == {"a"} and ran["a"] <= most, (seed, ran)
        assert all(j.outcome == SUCCEEDED for j in s.jobs.values())
        m = re.fullmatch(r"quarantined: (\d+) jobs failed here and succeeded on other nodes, (\d+) of its "
                         r"(\d+) runs failed", s.history()["a"][0].reason)
        assert int(m.group(1)) >= 3 and int(m.group(2)) == int(m.group(3)) == ran["a"]
    assert s.nodes["a"].by_job  # like a filter's: let back after the back-off, with a clean record


def test_a_black_hole_among_flaky_jobs_is_caught_and_the_run_ends():
    for seed in range(50):
        s, ran = simulate(seed, ["a", "b", "c"], 2, 120, lambda node, rnd: node == "a" or rnd.random() < 0.25)
        assert quarantined(s) == {"a"}, seed


@pytest.mark.parametrize("policy", [Policy(job_failures="job", retries=1, quarantine=None),
                                    Policy(job_failures="job", retries=0, quarantine=2),
                                    Policy(retries=1, quarantine=2)])
def test_no_quarantine_when_off_without_retries_or_in_node_mode(policy):
    s = Scheduler([f"x{i}" for i in range(6)], ["a", "b", "c"], policy)
    drive(s, lambda node, job: {"exit": 1 if node == "a" and job.seq <= 3 else 0})
    assert "quarantined" not in " ".join(s.retired_nodes().values())


def test_jobs_failing_everywhere_blame_no_node():
    s = Scheduler([f"x{i}" for i in range(6)], ["a", "b"], Policy(job_failures="job", retries=1, quarantine=2))
    drive(s, lambda node, job: {"exit": 1})
    assert s.retired_nodes() == {} and all(j.outcome == FAILED for j in s.jobs.values())


# ---- stragglers: --timeout N% ---------------------------------------------------------------
def test_a_straggler_moves_to_another_node_and_the_node_stays():
    s = Scheduler(["slow", "x", "x"], ["a", "b"])
    s.assign()
    att = finish(s, 0, -15, ending=STRAGGLER)
    assert (att.outcome, att.reason) == ("requeued", "straggler") and s.retired_nodes() == {}
    finish(s, 1, 0)
    runs = drive(s, ok)
    assert ("b", 1) in runs and ("a", 1) not in runs  # never again where it straggled (node mode)
    assert s.jobs[1].outcome == SUCCEEDED


def test_a_job_straggling_everywhere_fails_within_max_attempts():
    s = Scheduler(["slow"], ["a", "b", "c", "d"], Policy(job_failures="job", max_attempts=2))
    runs = drive(s, lambda node, job: {"exit": -15, "ending": STRAGGLER})
    assert len(runs) == 2 and outcomes(s) == {1: (FAILED, "straggler on 2 nodes")}


@pytest.mark.parametrize("runtimes,limit", [([1.0, 2.0], None), ([1.0, 2.0, 30.0], 4.0), ([1.0, 2.0, 3.0, 30.0], 5.0)])
def test_the_straggler_limit_is_a_percentage_of_the_median_of_succeeded_jobs(runtimes, limit):
    s = Scheduler(["x"] * 10, ["a"] * 4, Policy(straggler_percent=200))
    first = s.assign()
    assert [j.limit for _, j in first] == [None] * 4  # no median yet
    for (slot, _), rt in zip(first, runtimes):
        finish(s, slot, runtime=rt)
    assert s.straggler_limit() == limit
    # the slots still running (started before the median was known) get it, once
    assert s.unlimited() == ([(slot, limit) for slot, _ in first[len(runtimes):]] if limit else [])
    for slot, _ in s.unlimited():
        s.limit_given(slot)
    assert s.unlimited() == []
    assert {j.limit for _, j in s.assign()} == {limit}  # new attempts carry it from the start


def test_failed_and_requeued_attempts_do_not_make_the_median():
    s = Scheduler(["x"] * 8, ["a"] * 4, Policy(straggler_percent=100, job_failures="job"))
    batch = s.assign()
    for (slot, _), (rt, code) in zip(batch, [(1.0, 0), (100.0, 1), (2.0, 0), (3.0, 0)]):
        finish(s, slot, code, runtime=rt)
    assert s.straggler_limit() == 2.0


# ---- --halt --------------------------------------------------------------------------------
def test_halt_soon_stops_starting_jobs_and_lets_the_running_end():
    from clstr.scheduler import Halt
    s = Scheduler([f"j{i}" for i in range(6)], ["a", "a"], Policy(job_failures="job", halt=Halt("soon", "fail", 1)))
    (s0, _), (s1, _) = s.assign()
    finish(s, s0, 3)
    assert s.halted == "halted: 1 job failed" and s.assign() == [] and s.interrupted is None
    finish(s, s1, 0)
    assert s.done()
    assert [(j.outcome, j.reason) for j in s.jobs.values()] == [(FAILED, "exit 3"), (SUCCEEDED, "")] + [
        (NOT_RUN, "halted: 1 job failed")] * 4


def test_halt_now_counts_the_running_attempts_for_nothing():
    from clstr.scheduler import Halt
    s = Scheduler(["j1", "j2", "j3"], ["a", "a"], Policy(halt=Halt("now", "success", 1)))
    (s0, _), (s1, _) = s.assign()
    finish(s, s0, 0)
    assert s.interrupted == "halted: 1 job succeeded"
    att = finish(s, s1, -15, ending=LOST, reason="ssh killed by signal 15")
    assert (att.outcome, att.reason) == ("interrupted", "halted: 1 job succeeded") and s.retired_nodes() == {}
    assert s.done() and [j.outcome for j in s.jobs.values()] == [SUCCEEDED, NOT_RUN, NOT_RUN]


@pytest.mark.parametrize("jobs,slots,policy", CONFIGS[:4])
def test_every_outcome_sequence_ends_with_a_halt(jobs, slots, policy):
    from clstr.scheduler import Halt
    for when in ("soon", "now"):
        for length in range(1, 4):
            for sequence in itertools.product([k for k in OUTCOMES if k != "interrupt"], repeat=length):
                play_clock(Scheduler(list(jobs), list(slots), Policy(**dict(vars(policy), halt=Halt(when, "done", 1)))),
                           sequence)


def _connecting_and_ready(**policy):
    """n1 ran job 1 and is free with its connection up; hung still connects for job 2."""
    s = Scheduler(["a", "b"], ["n1", "hung"], Policy(**policy))
    assert [(slot, job.seq) for slot, job in s.assign()] == [(0, 1), (1, 2)]
    s.connected(0)
    finish(s, 0)
    return s


@pytest.mark.parametrize("shared", [True, False])
def test_a_job_waits_for_a_connecting_node_no_longer_than_for_a_ready_slot(shared):
    s = _connecting_and_ready(shared_connections=shared)
    assert s.withdrawals() == [(1, 0)]  # nothing queued, n1 ready, hung's job not started
    s.withdrawn(1, 0)
    assert s.running() == {}  # job 2 runs nowhere until n1 takes it
    assert [(slot, job.seq, job.attempt) for slot, job in s.assign()] == [(0, 2, 1)]  # its first attempt
    assert s.withdrawals() == []
    # hung's connection fails at last: its node is judged, no attempt of job 2 is recorded
    s.finished(Finished(1, 2, 255, 0.0, 0.0, NEVER_RAN, "timed out", None))
    assert not s.done()
    finish(s, 0)
    assert s.done()
    assert outcomes(s) == {1: (SUCCEEDED, ""), 2: (SUCCEEDED, "")}
    assert [a.node for a in s.jobs[2].attempts] == ["n1"]
    assert s.retired_nodes() == {"hung": "timed out"}


def test_the_run_does_not_wait_for_a_connection_whose_job_went_elsewhere():
    s = _connecting_and_ready()
    s.withdrawn(*s.withdrawals()[0])
    for slot, _ in s.assign():
        finish(s, slot)
    assert s.busy == 1  # hung still connects, with nothing to run
    assert s.done() and s.counts()[SUCCEEDED] == 2  # the run's end ends it


def test_no_job_is_taken_from_a_connecting_slot_while_others_wait_or_where_it_may_not_go():
    s = Scheduler(["a", "b", "c"], ["n1", "hung"], Policy())
    s.assign()
    s.connected(0)
    finish(s, 0)
    assert s.withdrawals() == []  # job 3 waits in the queue: n1 takes it, hung keeps its job
    s = Scheduler(["a", "b"], ["n1", "hung"], Policy())
    s.assign()
    finish(s, 0)  # n1's connection never said it was up: not ready
    assert s.withdrawals() == []
    s = Scheduler(["a", "b"], ["n1", "hung"], Policy(), pinned=["n1", "hung"])  # --on-each-node
    s.assign()
    s.connected(0)
    finish(s, 0)
    assert s.withdrawals() == []


def test_a_job_handed_to_a_slot_that_then_leaves_goes_back_to_the_queue():
    s = _connecting_and_ready()
    s.withdrawn(*s.withdrawals()[0])
    s.retire_node("n1", "gone")
    assert s.assign() == []
    assert s.pending() == 1  # job 2 waits, not lost
    s.finished(Finished(1, 2, 0, 0.0, 0.0, Ending.OK, None, None))  # hung came up after all
    assert [(slot, job.seq) for slot, job in s.assign()] == [(1, 2)]
    finish(s, 1)
    assert s.done() and outcomes(s)[2] == (SUCCEEDED, "")
