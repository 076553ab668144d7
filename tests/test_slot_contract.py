"""The slot contract (clstr/slots.py): the Supervisor drives a kind of slot of a test's own, with
no process at all, through a scripted run; it never branches on the kind."""
import io

from clstr import slots
from clstr.events import Connected, Finished, Output
from clstr.options import RunOptions
from clstr.output import Printer
from clstr.result import Ending
from clstr.scheduler import Policy, Scheduler
from clstr.supervisor import Supervisor


class Scripted(slots.Kind):
    """Takes every attempt and answers it from its command on the next tick: ``out:TEXT`` prints
    TEXT and succeeds, ``exit:N`` exits N, ``refuse:NODE`` is refused by NODE (else succeeds)."""

    def __init__(self):
        self.sup = None
        self.queue = []  # (slot, events) to hand over
        self.running = {}
        self.calls = []

    def take(self, idx, job):
        node = self.sup.sched.slots[idx].node
        self.running[idx] = job.seq
        self.calls.append(("take", idx, job.seq))
        kind, _, arg = job.command.partition(":")
        events = [Connected(idx)]
        if kind == "out":
            events += [Output(idx, job.seq, 1, f"{arg} {node}\n".encode()), Finished(idx, job.seq, 0, 0.0, 0.0)]
        elif kind == "exit":
            events.append(Finished(idx, job.seq, int(arg), 0.0, 0.0, Ending.EXIT))
        elif kind == "refuse" and arg == node:
            events.append(Finished(idx, job.seq, 255, 0.0, 0.0, Ending.NEVER_RAN, "refused"))
        else:
            events.append(Finished(idx, job.seq, 0, 0.0, 0.0))
        self.queue.append((idx, events))
        return slots.STARTED

    def runs(self, idx):
        return idx in self.running

    def ended(self, idx, keep):
        self.calls.append(("ended", idx, keep))

    def idle(self, is_idle):
        self.calls.append(("idle",))

    def next_due(self):
        return 0.0 if self.queue else None

    def tick(self, now):
        queue, self.queue = self.queue, []
        for idx, events in queue:
            self.running.pop(idx, None)
            self.sup.on_events(idx, events)

    def shutdown(self):
        self.calls.append(("shutdown",))


def drive(jobs, nodes, policy=None):
    kind = Scripted()
    out, err, logs = io.BytesIO(), io.BytesIO(), []
    sched = Scheduler(jobs, nodes, policy or Policy())
    sup = kind.sup = Supervisor(sched, RunOptions(multiplex=False), Printer(out, err), log=logs.append,
                                kinds=[kind])
    result = sup.run()
    return result, out.getvalue().decode().splitlines(), kind, sup, logs


def test_a_kind_of_the_tests_runs_every_job_and_no_worker_is_forked():
    result, out, kind, sup, _ = drive([f"out:j{i}" for i in range(20)], ["a", "b", "a", "b"])
    assert result.exit_code() == 0 and len(result.succeeded) == 20
    assert sorted(line.split()[0] for line in out) == sorted(f"j{i}" for i in range(20))
    assert sup.pool.count() == 0 and not sup.pool.live_slots()  # the forked kind was never asked to start
    taken = [c for c in kind.calls if c[0] == "take"]
    assert sorted(seq for _, _, seq in taken) == list(range(1, 21))
    assert ("shutdown",) in kind.calls and ("ended", 0, True) in kind.calls


def test_failures_through_a_kind_follow_the_failure_policy():
    result, _, kind, _, logs = drive(["refuse:a", "exit:3", "out:x"], ["a", "b"],
                                     Policy(job_failures="job", max_attempts=2))
    by = {j.seq: j for j in result.jobs}
    assert by[1].outcome == "succeeded" and by[1].node == "b"  # refused by a: moved to b
    assert (by[2].outcome, by[2].exit) == ("failed", 3)
    assert by[3].outcome == "succeeded"
    assert any("node a retired: refused" in line for line in logs)
    assert result.exit_code() == 1
