"""Pure: the health of the nodes: who is out of the run and why, when each is probed again or let
back, and how long a run with every node out waits for one.

A node leaves the run (is retired) for an ssh failure or, in node mode, a job's non-zero exit
(the filter ``[ -z "$(users)" ] && run``). A node out for an ssh failure is probed again
``reprobe`` seconds after it left, the wait doubling with each failed probe up to
``reprobe_max``; a filter's node is let back after the same wait, for the jobs that have not
failed there; a configuration error (authentication, host key, unknown host, a RemoteCommand
that the node's ssh_config gives it, which makes ssh refuse any other) is never probed.
When jobs wait and failing jobs retired every node, those nodes come back at once (a job never
returns to a node it failed on, so each round makes progress); when every node is out otherwise,
the run waits for one that answered earlier, at most ``reprobe_for`` seconds. Each change is
news (``news``: (what, NodeState)), which the supervisor says on stderr.
"""
from . import sudo
from .result import Absence

# ssh failures that are the configuration's, not the node's state: such a node is not probed again
# (sudo's refusals too: a password tried again could lock the account)
PERMANENT = ("authentication", "host key", "unknown host", "RemoteCommand in ssh_config") + sudo.REASONS


class Health:
    """The health of the scheduler's ``nodes``; ``free(node)`` makes the node's idle slots free
    again, ``could_run(node)`` says whether a waiting job could run there, ``forget(node)`` starts
    its quarantine record afresh; ``admission`` hears that its connections went."""

    def __init__(self, policy, nodes, free, could_run, forget, admission):
        self.policy = policy
        self.nodes = nodes
        self.free = free
        self.could_run = could_run
        self.forget = forget
        self.admission = admission
        self.now = 0.0  # the supervisor's clock: when probes are due
        self.wall = 0.0  # epoch seconds, for the nodes' history
        self.empty_since = None  # when every node was out with jobs waiting
        self.gave_up = None  # why waiting for retired nodes to come back ended
        self.news = []  # (what, NodeState): "retired", "back", "probe failed"; the supervisor takes them
        self._waiting = set()  # retired nodes with a probe (or a return) planned: the ones due() looks at

    def retired(self):
        return {n.name: n.reason for n in self.nodes.values() if n.out}

    def active(self):
        return [n.name for n in self.nodes.values() if not n.out]

    def history(self):
        """{node: [Absence, ...]} of the nodes that were out at some time."""
        return {n.name: list(n.history) for n in self.nodes.values() if n.history}

    def next_due(self):
        """When a probe, a return or the end of the wait for nodes is due (None: none)."""
        due = [n.next_probe for n in self._waiting if n.status == "retired" and n.next_probe is not None]
        if self.empty_since is not None:
            due.append(self.empty_since + self.policy.reprobe_for)
        return min(due) if due else None

    def retire(self, name, reason, by_job=False):
        node = self.nodes[name]
        if node.status == "up":
            node.status = "retired"
            node.reason = reason
            node.by_job = by_job
            node.history.append(Absence(self.wall, reason))
            self._plan(node, reason)
            self.news.append(("retired", node))

    def _plan(self, node, reason):
        """When the retired node is next probed (or, retired by a job's filter, let back)."""
        node.permanent = not node.by_job and reason in PERMANENT
        if self.policy.reprobe is None or node.permanent:
            node.next_probe = None
            return
        delay = min(self.policy.reprobe * 2 ** min(node.backoff, 30), self.policy.reprobe_max)
        node.backoff += 1
        node.next_probe = self.now + delay
        self._waiting.add(node)

    def reinstate(self, usable_slot_exists):
        """When jobs wait and no node is left, bring back the nodes that failing jobs retired.

        A job that exits non-zero retires its node (users filter nodes that
        way), but two broken jobs must not take a two-node run down. A node a
        job failed on never gets that job again, so every round of this makes
        progress and the run ends.
        """
        back = [n for n in self.nodes.values() if n.status == "retired" and n.by_job]
        for n in back:
            n.status = "up"
        if not usable_slot_exists():
            for n in back:
                n.status = "retired"  # no waiting job may run on them: they stay out
            return False
        for n in back:
            n.reinstated += 1
            self.bring_back(n)
        return True

    def due(self):
        """Retired nodes whose back-off has passed: a job's filter lets its node back, an ssh failure's
        node gets a probe (its free slots wait for it, one of them runs it)."""
        if not self._waiting:
            return
        for node in list(self._waiting):
            if node.status != "retired" or node.next_probe is None:
                self._waiting.discard(node)
                continue
            if node.next_probe > self.now:
                continue
            self._waiting.discard(node)
            node.next_probe = None
            if node.by_job:
                self.bring_back(node)
                continue
            node.status = "probe"
            self.admission.node_out(node)
            self.free(node)

    def bring_back(self, node):
        node.status, node.reason, node.by_job, node.next_probe = "up", "", False, None
        self.forget(node)  # a quarantined node that comes back starts with a clean record
        if node.history and node.history[-1].back is None:
            node.history[-1].back = self.wall
            node.returns += 1
            self.news.append(("back", node))
        self.free(node)

    def wait_for_nodes(self):
        """Every node is out and jobs wait: whether to wait for a node to come back.

        Only for a node that connected in this run (a run whose nodes never answered ends at
        once, as it always did), is not out for its configuration, could run a waiting job, and
        only for ``reprobe_for`` seconds from when every node was first out with no job run
        since (a node that answers probes and then refuses every job does not hold the run).
        """
        hope = [n for n in self.nodes.values() if n.out and self.could_run(n)
                and (n.status == "probe" or (n.seen_up and n.next_probe is not None))]
        if not hope:
            return False
        if self.empty_since is None:
            self.empty_since = self.now
        if self.now - self.empty_since < self.policy.reprobe_for:
            return True
        self.gave_up = f"waited {self.policy.reprobe_for:g} s for a retired node to come back"
        for n in self.nodes.values():
            n.next_probe = None
        self._waiting.clear()
        return False

    def probed(self, node, ok, why):
        """A retired node's probe ended: it is back, or out until its next probe."""
        node.probe_slot = None
        if ok:
            self.bring_back(node)
            return
        node.status = "retired"
        if node.history:
            node.history[-1].probes += 1
        self._plan(node, why)
        if node.permanent:
            node.reason = f"{node.reason}; probe: {why}"
        self.news.append(("probe failed", node))
