"""Pure: the jobs waiting for a slot, and which one a slot takes next.

Four queues, asked in this order by a slot: a job handed to that slot alone (taken from a slot
still connecting, scheduler.withdrawals), its node's own jobs (--on-each-node), the re-queued
jobs (few: scanned for one that did not fail on the slot's node), then the fresh ones in order.
It holds job numbers; the jobs themselves (their failed nodes, attempts, pins) are the scheduler's.
"""
from collections import deque

from .verdicts import NODE_FAILURES


class JobQueue:
    """``jobs``: the scheduler's {seq: JobResult}; ``policy``: its Policy; ``active_nodes()``: the
    names of the nodes in the run now (where a job may go again in job-failures mode)."""

    def __init__(self, jobs, policy, active_nodes):
        self.jobs = jobs
        self.policy = policy
        self.active_nodes = active_nodes
        self.fresh = deque()
        self.retry = []  # re-queued jobs: few, scanned for a node they have not failed on
        self.pinned = {}  # node -> its own jobs (--on-each-node)
        self.npinned = 0  # their count: pending() is asked once a dispatched job
        self.handoff = {}  # slot -> the job taken from a slot still connecting, for it alone

    def add(self, res):
        """A job of the run, waiting for its first attempt."""
        if res.pinned:
            self.pinned.setdefault(res.node, deque()).append(res.seq)
            self.npinned += 1
        else:
            self.fresh.append(res.seq)

    def __len__(self):
        return len(self.fresh) + len(self.retry) + self.npinned + len(self.handoff)

    def work_for(self, name):
        """Whether a job waits that node ``name`` could take (its own under --on-each-node, or one
        that did not fail there)."""
        if self.pinned.get(name):
            return True
        return bool(self.fresh) or any(name not in self.jobs[q].failed_nodes for q in self.retry)

    def has_own(self):
        """Whether the run's jobs are pinned to nodes (then a slot's future is its node's queue)."""
        return bool(self.npinned or self.pinned)

    def own(self, name):
        return bool(self.pinned.get(name))

    def next_for(self, slot, peek=False):
        """The job slot ``slot`` should run next, removed from its queue unless ``peek``."""
        if slot.index in self.handoff:
            return self.handoff[slot.index] if peek else self.handoff.pop(slot.index)
        q = self.pinned.get(slot.node)
        if q:
            if peek:
                return q[0]
            self.npinned -= 1
            return q.popleft()
        active = None
        for i, seq in enumerate(self.retry):
            failed = self.jobs[seq].failed_nodes
            if slot.node in failed:
                if self.policy.job_failures == NODE_FAILURES:
                    continue  # never twice on a node it failed on: this bounds reinstatement
                # only where every usable node has failed it already (job failures mode)
                if active is None:
                    active = set(self.active_nodes())
                if not active <= failed:
                    continue
            return seq if peek else self.retry.pop(i)
        if self.fresh:
            return self.fresh[0] if peek else self.fresh.popleft()
        return None

    def front(self, seq):
        """A job that did not start goes back to the front of its queue, at no cost."""
        job = self.jobs[seq]
        if job.pinned:
            self.pinned.setdefault(job.node, deque()).appendleft(seq)
            self.npinned += 1
        elif job.attempts:
            self.retry.insert(0, seq)
        else:
            self.fresh.appendleft(seq)

    def again(self, seq, node):
        """A job whose attempt ended without ending it: a pinned one waits for its ``node``, first;
        another goes to the re-queued, for any node it has not failed on."""
        if self.jobs[seq].pinned:
            self.pinned.setdefault(node, deque()).appendleft(seq)
            self.npinned += 1
        else:
            self.retry.append(seq)

    def hand(self, slot, seq):
        """Job ``seq`` is for slot ``slot`` alone, the next time it takes one."""
        self.handoff[slot] = seq

    def unhand(self, keep):
        """Jobs handed to slots that ``keep(slot)`` no longer holds go back to the front."""
        for slot, seq in list(self.handoff.items()):
            if not keep(slot):
                del self.handoff[slot]
                self.front(seq)

    def leftovers(self):
        """Empty the queues: [(seq, the node it is pinned to or None)] of every job still waiting."""
        self.unhand(lambda slot: False)
        out = [(seq, None) for seq in list(self.fresh) + self.retry]
        out += [(seq, name) for name, q in self.pinned.items() for seq in q]
        self.fresh.clear()
        self.retry.clear()
        self.pinned.clear()
        self.npinned = 0
        return out
