"""Pure: what an attempt's end means for its job and its node (the failure policy).

A job that succeeded is done. One that never ran cost the job nothing: its node is retired
(or, refused by a busy sshd, tried again after a hold). One that ran and lost its connection
goes back to the queue and its node is retired, at most ``max_attempts`` times. A straggler
(--timeout N%) moves to another node. The job's own failure, in node mode (the default), retires
its node and the job moves on, to at most ``max_attempts`` distinct nodes; in job mode it is
retried ``retries`` times and the node stays.
"""
import bisect

from . import sudo
from .result import FAILED, INTERRUPTED, NOT_RUN, REQUEUED, SUCCEEDED, Ending
from .words import counted

NODE_FAILURES = "node"  # the original clstr's: any non-zero exit retires the node
JOB_FAILURES = "job"  # only ssh failures retire the node
# refusals of a busy sshd (MaxStartups drops the handshake, MaxSessions refuses a session): the
# node is well, only busy; the attempt costs nothing and is tried again after a short back-off
TRANSIENT = ("connection closed", "session refused")
MEDIAN_AFTER = 3  # --timeout N%: stragglers are judged once this many jobs succeeded


def succeeds(ev):
    """Whether an attempt's end (an events.Finished) makes its job succeeded: it exited 0, its end
    mark seen or its connection lost only after."""
    return ev.exit == 0 and ev.ending in (Ending.OK, Ending.EXIT, Ending.LOST)


class Verdicts:
    """The failure policy over the scheduler's ``nodes`` and ``slots``: ``admission`` hears of busy
    sshds, ``health`` retires nodes; ``quarantine`` (set after) counts the runs of job mode."""

    def __init__(self, policy, nodes, slots, admission, health):
        self.policy = policy
        self.nodes = nodes
        self.slots = slots
        self.runtimes = []  # --timeout N%: the runtimes of the jobs that succeeded, sorted
        self.admission = admission
        self.health = health
        self.quarantine = None

    def unreached(self, node, ev, now):
        """An attempt's connection never came up (ending NEVER_RAN): a busy sshd's refusal holds the
        slot back (True); anything else retires the node (False)."""
        if ev.reason in TRANSIENT and self.admission.may_retry(node):
            self.admission.refused(self.slots[ev.slot], node, ev.reason, now)
            return True
        self.health.retire(node.name, ev.reason or f"ssh exit {ev.exit}")
        return False

    def judge(self, job, node, ev, interrupted, now):
        """What an attempt's end means for the job and its node: (outcome, reason, Ending).

        ``interrupted``: why the run is ending its running attempts (Ctrl-C, SIGTERM, SIGHUP, a
        --halt now): the attempt counts for nothing; ``now``:
        the scheduler's clock (a refused slot's hold starts then).
        """
        p = self.policy
        ending, exit = ev.ending, ev.exit
        if succeeds(ev):
            node.backoff = 0  # it works again: a later retirement starts the back-off afresh
            if p.job_failures == JOB_FAILURES:
                self.quarantine.ran(node, False)
            return SUCCEEDED, "", Ending.OK
        if interrupted:
            return INTERRUPTED, interrupted, Ending.INTERRUPTED
        if ending is Ending.NEVER_RAN:
            # the job did not start: the node's fault alone, no attempt of the job spent
            if self.unreached(node, ev, now):
                return REQUEUED, f"{ev.reason} (a busy sshd: tried again)", Ending.BUSY
            # reached, but its sudo refused (--sudo): "unreachable" would not be true
            state = "unusable" if ev.reason in sudo.REASONS else "unreachable"
            if job.pinned:
                return NOT_RUN, f"node {node.name} {state} ({node.reason})", ending
            return REQUEUED, f"node {state}: {node.reason}", ending
        if ending is Ending.FILE_FAILED:
            # this machine could not take a file back, or the job changed it as it came: not the node's
            return self._own_failure(job, ev.reason) + (ending,)
        if ending is Ending.STRAGGLER:
            # --timeout N%: far slower here than the median; run it elsewhere, the node stays
            return self._straggler(job, node) + (ending,)
        if ending.timed_out:
            return self._own_failure(job, ending.value) + (ending,)
        if ending is Ending.LOST:
            # the job ran and ssh failed under it (connection lost): the node goes, the job moves
            self.health.retire(node.name, ev.reason)
            return self._lost(job, ev.reason) + (ending,)
        why = ev.reason or (f"killed by signal {-exit}" if exit < 0 else f"exit {exit}")
        if p.job_failures == NODE_FAILURES:
            self.health.retire(node.name, f"job {job.seq} {why}", by_job=True)
            return self._node_failure(job, node, why) + (Ending.EXIT,)
        # job failures mode, the command's own non-zero exit: the node stays
        job.failed_nodes = job.failed_nodes | {node.name}
        self.quarantine.ran(node, True, job.seq)
        return self._own_failure(job, why) + (Ending.EXIT,)

    def _node_failure(self, job, node, why):
        """The attempt ran and cost its node: re-queued elsewhere, up to max_attempts nodes."""
        job.failed_nodes = job.failed_nodes | {node.name}
        job.node_failures += 1
        if job.pinned:
            return FAILED, why
        if len(job.failed_nodes) >= self.policy.max_attempts:
            return FAILED, f"{why} on {counted(len(job.failed_nodes), 'node')}"
        if job.node_failures >= self.policy.max_attempts:
            # the same node again (it came back, or every usable node had failed it): the bound holds
            return FAILED, f"{why} ({counted(job.node_failures, 'time')})"
        if set(self.nodes) <= job.failed_nodes:
            return FAILED, f"{why} on every node"
        return REQUEUED, why

    def _lost(self, job, why):
        """The attempt ran and its connection was lost: not the job's failure, and not its node's
        for good (the node is retired and probed again). The job goes back to the queue, even where
        every node is out (it waits for one to come back, as waiting jobs do), at most
        ``max_attempts`` lost connections in all, counted per attempt. A job pinned to its node
        (--on-each-node) fails: no other node can run it, and a fan-out does not wait for one node."""
        job.node_failures += 1
        if job.pinned:
            return FAILED, why
        if job.node_failures >= self.policy.max_attempts:
            return FAILED, f"{why} ({counted(job.node_failures, 'time')})"
        return REQUEUED, why

    def worker_died(self, job, interrupted):
        """(outcome, reason, Ending) of an attempt whose slot's worker died under it: the job goes
        back, at most ``max_attempts`` deaths; the job's outcome set where it ends so."""
        job.worker_deaths += 1
        if interrupted is not None:
            job.outcome, job.reason = NOT_RUN, interrupted
            return INTERRUPTED, interrupted, Ending.INTERRUPTED
        if job.worker_deaths >= self.policy.max_attempts:
            job.outcome = FAILED
            job.reason = f"worker died {counted(job.worker_deaths, 'time')}"
            return FAILED, job.reason, Ending.WORKER_DIED
        return REQUEUED, "worker died", Ending.WORKER_DIED

    def succeeded(self, runtime):
        """A job succeeded in ``runtime`` seconds: with --timeout N%, one more runtime to the median."""
        if self.policy.straggler_percent:
            bisect.insort(self.runtimes, runtime)

    def straggler_limit(self):
        """--timeout N%: N% of the median runtime of the jobs that succeeded, once enough have (None before)."""
        pct = self.policy.straggler_percent
        if not pct or len(self.runtimes) < MEDIAN_AFTER:
            return None
        n = len(self.runtimes)
        median = (self.runtimes[n // 2] + self.runtimes[(n - 1) // 2]) / 2
        return max(median * pct / 100, 0.001)

    def unlimited(self):
        """The slots whose running job started before the median was known: (slot, its straggler
        limit) for each, once there is one (the scheduler's ``limit_given`` marks a slot told)."""
        limit = self.straggler_limit()
        if limit is None:
            return []
        return [(s.index, limit) for s in self.slots if s.busy and not s.limited]

    def _straggler(self, job, node):
        """Ended for running far longer than the median: re-queued for another node (never this
        one again in node mode), at most max_attempts times in all."""
        job.failed_nodes = job.failed_nodes | {node.name}
        job.node_failures += 1
        if job.pinned:
            return FAILED, "straggler"
        if job.node_failures >= self.policy.max_attempts or set(self.nodes) <= job.failed_nodes:
            return FAILED, f"straggler on {counted(job.node_failures, 'node')}"
        return REQUEUED, "straggler"

    def _own_failure(self, job, why):
        """The job failed by itself (exit or timeout): re-run up to ``retries`` times, counting runs only."""
        job.own_failures += 1
        if self.policy.job_failures == JOB_FAILURES and not job.pinned and job.own_failures <= self.policy.retries:
            return REQUEUED, why
        return FAILED, why
