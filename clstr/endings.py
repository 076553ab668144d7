"""Pure: how the end of an attempt is recorded (the scheduler's collaborator).

An attempt ends in one of three ways, each told by its slot's kind: ``finished`` (an
events.Finished: the job's own end, a time limit, ssh's failure before or while it ran),
``deferred`` (it was not started: its node waits behind a jump host that refused handshakes) and
``worker_died``. Each frees its slot (or retires it), tells admission whether the node was
reached, and, for a job, records the Attempt and what it means for the job (verdicts.py): its
outcome, or back to the queue. A probe's end says whether its node is back (health.py).
"""
from .events import PROBE
from .result import FAILED, INTERRUPTED, NOT_RUN, REQUEUED, SUCCEEDED, Attempt, Ending
from .verdicts import JOB_FAILURES


class Endings:
    """The ends of a Scheduler's attempts."""

    def __init__(self, sched):
        self.sched = sched

    def finished(self, ev):
        """Record the end of an attempt (an events.Finished); returns the Attempt (a job log row), or
        None for a probe. A node it retires keeps ssh's own words for why (``ev.said``)."""
        node = self.sched.nodes[self.sched.slots[ev.slot].node]
        was_out = node.out
        att = self._finished(ev)
        if node.out and not was_out:
            node.said = ev.said or ""
        return att

    def _finished(self, ev):
        """See ``finished``.

        ``ev.ending`` says how it ended: NEVER_RAN (ssh failed before the job started: that costs
        the job nothing), LOST (it ran and its connection was lost), a time limit, or the job's
        own status (OK, EXIT); ``ev.reason`` says why ssh failed, or why the job is taken for failed
        without its end mark; ``ev.jump_host`` is the node's ProxyJump host, once the worker looked it up.
        """
        s, node = self._ended(ev.slot, ev.jump_host)
        never_ran = ev.ending is Ending.NEVER_RAN
        self.sched.admission.ended(s, connected=not never_ran)
        if ev.ending not in (Ending.OK, Ending.EXIT, Ending.FILE_FAILED):
            s.linked = False  # its session ended or never came up: the next attempt opens one
        if not never_ran:
            self.sched.admission.accepted(node)
            if ev.seq != PROBE:
                self.sched.health.empty_since = None  # a job ran: the wait for nodes (if any) starts afresh
        if s.withdrawn:  # its job went to a ready slot: only whether its node was reached counts
            self.sched.unwithdraw(s)
            if never_ran and self.sched.interrupted is None:
                self.sched.verdicts.unreached(node, ev, self.sched.now)
            self.sched.release(s)
            return None
        if ev.seq == PROBE:
            failed = ev.ending.timed_out or never_ran or ev.ending is Ending.LOST
            self._probed(s, node, ev.exit == 0 and not failed,
                         ev.reason if never_ran or ev.ending is Ending.LOST else
                         "timed out" if ev.ending.timed_out else f"probe exit {ev.exit}")
            return None
        job = self.sched.jobs[ev.seq]
        outcome, reason, ending = self.sched.verdicts.judge(job, node, ev, self.sched.interrupted, self.sched.now)
        att = Attempt(ev.seq, s.node, s.attempt, ev.start, ev.runtime, ev.exit, outcome, reason, job.command, s.index,
                      ending, ev.sent, ev.received, ev.transfer, ev.connect,
                      ev.began)
        job.attempts.append(att)
        job.exit, job.reason = ev.exit, reason
        if not job.pinned:
            job.node = s.node
        if outcome == REQUEUED:
            self.sched.queue.again(ev.seq, s.node)  # pinned (a busy sshd refused it): its node's, later
        elif outcome == INTERRUPTED:
            job.outcome, job.reason = NOT_RUN, self.sched.interrupted
        elif outcome in (SUCCEEDED, FAILED, NOT_RUN):
            job.outcome = outcome
        if outcome == SUCCEEDED:
            self.sched.verdicts.succeeded(ev.runtime)
        if job.outcome is not None and job.failed_nodes and self.sched.policy.quarantine \
                and self.sched.policy.job_failures == JOB_FAILURES:
            self.sched.quarantine.ended(job, s.node if job.outcome == SUCCEEDED else None)
        self.sched.halt_check(job)
        self.sched.release(s)
        return att

    def deferred(self, ev):
        """The attempt was not started (an events.Deferred): its node is behind a jump host that
        refused handshakes. The job goes back as if it had not been sent, to wait for a turn under
        that host's limit."""
        s, node = self._ended(ev.slot, ev.jump_host)
        self.sched.admission.ended(s, connected=False)
        s.linked = False
        s.uses -= 1
        node.jobs -= 1
        self.sched.queue.again(ev.seq, s.node)
        self.sched.release(s)

    def _ended(self, slot, jump_host):
        """The slot's attempt ended: (its Slot, its NodeState); the jump host learned, if told."""
        s, node = self.sched.vacate(slot)
        self.sched.admission.learned(node, jump_host)
        return s, node

    def _probed(self, s, node, ok, why):
        """A retired node's probe ended: it is back, or out until its next probe (health.probed)."""
        self.sched.health.probed(node, ok, why)
        if not ok:
            self.sched.release(s)

    def worker_died(self, slot, start=0.0, runtime=0.0):
        """The slot's worker process died: its job goes back to the queue (bounded by max_attempts).

        Returns the Attempt if the slot was running a job, else None.
        """
        if self.sched.slots[slot].busy is None:
            return None
        seq = self.sched.slots[slot].busy
        s, _ = self.sched.vacate(slot)
        self.sched.admission.ended(s, connected=False)
        s.linked = False
        if s.withdrawn:  # its job is elsewhere already
            self.sched.unwithdraw(s)
            self.sched.release(s)
            return None
        if seq == PROBE:
            self._probed(s, self.sched.nodes[s.node], False, "worker died")
            return None
        job = self.sched.jobs[seq]
        outcome, reason, ending = self.sched.verdicts.worker_died(job, self.sched.interrupted)
        if outcome == REQUEUED:
            self.sched.queue.again(seq, s.node)
        att = Attempt(seq, s.node, s.attempt, start, runtime, -9, outcome, reason, job.command, s.index, ending)
        job.attempts.append(att)
        self.sched.halt_check(job)
        self.sched.release(s)
        return att
