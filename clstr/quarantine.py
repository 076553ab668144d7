"""Pure: black holes (--quarantine, job failures mode): a node that fails the jobs that succeed elsewhere.

A node may be sick where each failure looks like the job's (a full disk, a broken library, a
missing mount). It is retired as a black hole when ``quarantine`` distinct jobs failed there and
then succeeded on other nodes, and its record stands out from the rest of the pool's: likelier,
by QUARANTINE_AT, for a node failing BLACK_HOLE of its runs than for one failing at the rest's
rate (Wald's sequential test). Flaky jobs, failing alike on every node, retire none. While its
failures wait for their verdict, a suspect gets no fresh job. It keeps its counts in the
scheduler's NodeState records (the fields given to it there) and the pool's totals here.
"""
import math

from .words import counted

# Quarantine.evidence: a black hole fails a run with this chance; a node is held
# back from fresh jobs while its failures wait for their re-runs once its record is this many
# times likelier for a black hole than for a node as good as the rest, and retired as one at
# QUARANTINE_AT (were the rest's rate known, a good node would get there with a chance of at most
# 1/QUARANTINE_AT in a run; estimated, measured about 1 run in 300 of 3 nodes with flaky jobs)
BLACK_HOLE = 0.95
SUSPECT_AT = 20.0
QUARANTINE_AT = 10000.0
HOLD_RUNS = 40  # a suspect is held while the rest runs this many jobs after its last failure


class Quarantine:
    """The quarantine rule over the scheduler's ``nodes`` and ``slots``; ``usable(slot)``,
    ``job_for(slot, peek=True)`` and ``retire(name, reason, by_job=True)`` are the scheduler's."""

    def __init__(self, policy, nodes, slots, usable, job_for, retire):
        self.policy = policy
        self.nodes = nodes
        self.slots = slots
        self.usable = usable
        self.job_for = job_for
        self.retire = retire
        self.runs = self.failed = 0  # the pool's runs to the job's own end, and its failures

    def ran(self, node, failed, seq=None):
        """An attempt (of job ``seq``) ran to the job's own end on ``node`` (job failures mode): the
        failure rates that tell a black hole from flaky jobs count it; a failure waits for the
        job's next run to tell whether it was the job or the node."""
        node.ran += 1
        self.runs += 1
        if failed:
            node.failed_runs += 1
            self.failed += 1
            node.failed_at = self.runs
            if self.policy.quarantine:
                node.unconfirmed.add(seq)

    def forget(self, node):
        """The node comes back (after its back-off): it starts with a clean record."""
        node.blamed = set()
        node.unconfirmed = set()
        self.runs -= node.ran
        self.failed -= node.failed_runs
        node.ran = node.failed_runs = node.failed_at = 0

    def evidence(self, node):
        """How much more likely ``node``'s record is for a black hole than for a node as good as
        the rest of the pool: the likelihood ratio of its f failures in n runs, a black hole failing
        a run with chance BLACK_HOLE and a good node with the rest's rate q.

        q = (failures + 1) / (runs + 2) of every other node's runs (one failure and one success
        assumed), then one standard error higher: a young pool does not make a few failures
        damning. As in Wald's sequential test, a node as good as the rest would ever reach a
        ratio of L with a chance of at most 1/L however often it is looked at, were q known:
        flaky jobs, failing alike everywhere, retire no node, while a node failing everything
        among good ones crosses it within a few runs.
        """
        n, f = node.ran, node.failed_runs
        runs = self.runs - n + 2
        q = (self.failed - f + 1) / runs
        q = min(q + math.sqrt(q * (1 - q) / runs), 0.5)  # the rest's rate is known only so well: err high
        return math.exp(f * math.log(BLACK_HOLE / q) + (n - f) * math.log((1 - BLACK_HOLE) / (1 - q)))

    def suspects(self):
        """Nodes that fresh jobs avoid for now, black holes found on the way (see _quarantine).

        A suspect has ``quarantine`` failures not yet cleared (pending, or confirmed as the
        node's) and a record already SUSPECT_AT times likelier for a black hole than for a node as
        good as the rest: it is held back while its failures' re-runs run elsewhere, and then while
        the rest of the pool runs HOLD_RUNS more jobs, the evidence that decides. So a node that
        fails at once cannot eat the queue meanwhile, and a good node that a few flaky jobs made
        look bad is let go again. Never every node that could run what waits: someone must.
        """
        k = self.policy.quarantine
        if not k or self.policy.job_failures != "job":
            return ()
        suspects = set()
        for n in self.nodes.values():
            if n.status != "up" or len(n.unconfirmed) + len(n.blamed) < k:
                continue
            evidence = self.evidence(n)
            if evidence >= QUARANTINE_AT and len(n.blamed) >= k:
                self._quarantine(n)
            elif evidence >= SUSPECT_AT and (n.unconfirmed or self.runs - n.failed_at < HOLD_RUNS):
                suspects.add(n.name)
        if suspects and not any(s.node not in suspects and self.usable(s)
                                and (s.busy is not None or self.job_for(s, peek=True) is not None)
                                for s in self.slots):
            return ()  # the other nodes cannot run what waits (the re-runs failed there): no hold
        return suspects

    def _quarantine(self, node):
        self.retire(node.name, f"quarantined: {counted(len(node.blamed), 'job')} failed here and succeeded on other "
                                    f"nodes, {node.failed_runs} of its {node.ran} runs failed", by_job=True)

    def ended(self, job, good):
        """A job that failed on some nodes has ended: if it succeeded (on ``good``), those nodes get
        the blame, and one that is now a black hole is retired (and, like a filter's, let back
        later): ``quarantine`` distinct jobs failed there and then succeeded elsewhere, and its
        record is QUARANTINE_AT times likelier for a black hole than for a node as good as the rest
        (evidence). Flaky jobs fail on every node alike: no node stands out, none is retired. If
        the job failed for good, it was the job: no blame."""
        k = self.policy.quarantine
        for name in job.failed_nodes - {good}:
            node = self.nodes[name]
            node.unconfirmed.discard(job.seq)
            if good is None:
                continue
            node.blamed.add(job.seq)
            if len(node.blamed) >= k and node.status == "up" and self.evidence(node) >= QUARANTINE_AT:
                self._quarantine(node)
